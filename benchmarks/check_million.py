"""Benchmark: how long judging a 1,000,000-operation history takes, with every checker a fault
scenario composes.

Builds a synthetic S4-like history (open-loop sends over several partitions with intended_ns,
fault windows that stall some partitions' acknowledgements, a few timed-out sends and failed polls,
duplicates written by retries, consumer-group members reading live, client-metrics, client-log and
metric rows, then the final read-back to the recorded end offsets), with about --ops operations in
total. Times, as the median of --repeats runs on the same history:

- new: compose() with exactly the composition S4 saves (chaos.fault_checks() plus recovery and
  rebalances), then latency_summary() and throughput() from checkers/measures.py, each on a fresh View;
- old: the core-only checker this package had before checkers were composed (commit OLD_COMMIT),
  check() then latency_summary() and throughput(), loaded from git at run time (`git show`) for the
  comparison only; when git or the commit is unavailable, the comparison is skipped and said so.

Wall time and this process's CPU time are both shown (CPU time is the steadier on a busy machine),
and the two are run interleaved so that both see the same load. The synthetic history plants
producer timeouts during the faults, so "client errors beyond retry" fails by design.

Prints numbers; asserts nothing. The goal: new (all checkers) <= old (core only), and 1M operations
per second.

    .venv/bin/python benchmarks/check_million.py [--ops 1000000] [--partitions 12] [--producers 100]
                                                 [--consumers 4] [--rate 5000] [--repeats 3]
                                                 [--breakdown] [--verdicts]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd

from k6suite_lib import history as hist
from k6suite_lib.checkers import CHECKERS, CheckSpec, compose
from k6suite_lib.checkers.measures import latency_summary, throughput
from k6suite_lib.faults.schedule import Schedule, Step
from k6suite_lib.history import View
from k6suite_lib.scenarios import chaos
from k6suite_lib.scenarios.s4_broker_chaos import RECOVERY_LIMIT_S
from k6suite_lib.workload import WorkloadConfig

OLD_COMMIT = "edae73d"  # the last commit with the core-only k6suite_lib/checker.py
ROOT = Path(__file__).resolve().parent.parent
RUN = "bench"
TOPIC = "bench"
MS = 1_000_000
S = 1_000_000_000


# --------------------------------------------------------------------------- the synthetic history
def _frame(**columns) -> pd.DataFrame:
    n = max(len(v) for v in columns.values() if np.ndim(v))
    return pd.DataFrame({k: (v if np.ndim(v) else np.full(n, v)) for k, v in columns.items()})


def _json_rows(process, f, type_, t_ns, details, error="", topic=TOPIC, **extra) -> pd.DataFrame:
    t_ns = np.asarray(t_ns, dtype="int64")
    return _frame(process=np.asarray(process, dtype=object) if np.ndim(process) else process, f=f, type=type_,
                  invoke_ns=t_ns, complete_ns=t_ns + MS, topic=topic,
                  detail=np.array([json.dumps(d) for d in details], dtype=object), error=error, **extra)


def synthetic_history(ops: int, partitions: int, producers: int, consumers: int, rate: float,
                      seed: int = 1) -> tuple[pd.DataFrame, list[tuple[str, int, int]]]:
    """(history, fault windows as (name, start_ns, end_ns)). Every send is read once live and once by
    the read-back, so about a third of the rows are sends."""
    rng = np.random.default_rng(seed)
    sends = max(1000, (ops - 1000) // 3)
    t0 = 10 * S
    duration = int(sends / rate * S)
    i = np.arange(sends, dtype="int64")
    producer = i % producers
    seq = i // producers
    intended = t0 + i * S // int(rate)
    invoke = intended + rng.exponential(0.2 * MS, sends).astype("int64")
    partition = rng.integers(0, partitions, sends)
    complete = invoke + 2 * MS + rng.exponential(3 * MS, sends).astype("int64")
    sent_type = np.full(sends, "ok", dtype=object)
    error = np.full(sends, "", dtype=object)
    copies = np.ones(sends, dtype="int64")

    # three fault windows; each stalls the acknowledgements of a third of the partitions until it ends
    length = min(3 * S, duration // 20)
    windows = [("broker-kill", t0 + duration // 5), ("broker-pause", t0 + duration // 2),
               ("network-partition", t0 + 3 * duration // 4)]
    windows = [(name, int(start), int(start + length)) for name, start in windows]
    for k, (_, start, end) in enumerate(windows):
        stalled = (invoke >= start) & (invoke < end) & (partition % 3 == k)
        index = np.flatnonzero(stalled)
        complete[index] = end + rng.integers(50 * MS, 400 * MS, len(index))
        timed_out = index[rng.random(len(index)) < 0.02]  # expired in the producer: outcome unknown
        sent_type[timed_out] = "info"
        error[timed_out] = "KafkaTimeoutError: Batch for TopicPartition expired"
        retried = index[rng.random(len(index)) < 0.02]  # written twice by a retry, acknowledged once
        copies[retried] = 2
    acked = sent_type == "ok"
    copies[~acked] = 0
    send_partition = np.where(acked, partition, -1)

    # the log: acked sends appended in invocation order per partition, acks in log order
    order = np.lexsort((invoke, partition))
    order = order[acked[order]]
    per_partition = pd.Series(complete[order]).groupby(partition[order]).cummax().to_numpy()
    complete[order] = per_partition
    log = np.repeat(order, copies[order])  # send index of each log entry
    log_partition = partition[log]
    log_offset = pd.Series(log_partition).groupby(log_partition).cumcount().to_numpy()
    send_offset = np.full(sends, -1, dtype="int64")
    send_offset[log] = log_offset  # a retried record is acknowledged at its last copy
    ends = {str(p): int((log_partition == p).sum()) for p in range(partitions)}

    names = np.array([f"producer-{p}" for p in range(producers)], dtype=object)
    send_rows = _frame(process=names[producer], f="send", type=sent_type, invoke_ns=invoke, complete_ns=complete,
                       topic=TOPIC, partition=send_partition, offset=send_offset, producer=names[producer], seq=seq,
                       checksum=0, value_len=128, intended_ns=intended, error=error, op_id=i)
    record = {"producer": names[producer[log]], "seq": seq[log], "partition": log_partition, "offset": log_offset,
              "topic": TOPIC, "checksum": 0, "value_len": 128, "record_run": RUN, "session": 1}

    # live group members: consumer c owns partitions p % consumers == c; polls every 5 ms per partition
    members = np.array([f"consumer-{c}" for c in range(consumers)], dtype=object)
    seen = complete[log] + 10 * MS
    slot = seen // (5 * MS)
    poll_keys = pd.MultiIndex.from_arrays([log_partition, slot])
    poll_id = sends + pd.factorize(poll_keys)[0]
    live = _frame(**record, process=members[log_partition % consumers], f="poll", type="ok",
                  invoke_ns=slot * 5 * MS, complete_ns=(slot + 1) * 5 * MS + MS, op_id=poll_id)
    last_live = int(live["complete_ns"].max())
    next_op = int(poll_id.max()) + 1

    # the final read-back: partition after partition, 500 records a poll, 2 ms each
    batch = np.arange(len(log)) // 500
    readback_start = last_live + 5 * S
    back = _frame(**record, process=hist.READBACK, f="poll", type="ok", invoke_ns=readback_start + batch * 2 * MS,
                  complete_ns=readback_start + (batch + 1) * 2 * MS, op_id=next_op + batch)
    readback_end = int(back["complete_ns"].max()) + MS
    next_op = int(back["op_id"].max()) + 1

    # everything else: faults, phases, assignments, failed polls, client logs and metrics, broker metrics
    extra = []
    for k, (name, start, end) in enumerate(windows):
        target = f"broker-{k}"
        extra.append(_json_rows("nemesis", "fault", "ok", [start, end - MS],
                                [{"fault": name, "phase": "start", "target": target},
                                 {"fault": name, "phase": "end", "target": target}]))
        failing = np.arange(start + S // 2, end, S // 2)
        extra.append(_json_rows(members[np.arange(len(failing)) % consumers], "poll", "info", failing,
                                [{} for _ in failing], error="KafkaConnectionError: connection reset", partition=-1))
        retries = np.arange(start, end, S // 10)
        extra.append(_json_rows("client-log", "client-log", "info", retries, [{} for _ in retries],
                                error="Got error produce response: NotLeaderForPartitionError. Retrying."))
    owned = [[p for p in range(partitions) if p % consumers == c] for c in range(consumers)]
    extra.append(_json_rows(members, "assign", "ok", t0 - 2 * S + np.arange(consumers) * MS,
                            [{"partitions": parts, "group": True} for parts in owned], session=1))
    stop = last_live + S
    extra.append(_json_rows(members, "revoke", "ok", stop + MS + np.arange(consumers) * MS,
                            [{"partitions": parts, "group": True} for parts in owned], session=1))
    last_send = int(complete.max())
    extra.append(_json_rows("workload", "phase", "ok", [t0 - S, last_send, stop],
                            [{"phase": "consumers-ready", "ready": consumers, "expected": consumers},
                             {"phase": "producers-stop"}, {"phase": "consumers-stop", "unseen": 0}]))
    extra.append(_json_rows(hist.READBACK, "end-offsets", "ok", [readback_start - S], [{"end_offsets": ends}]))
    extra.append(_json_rows("workload", "phase", "ok", [readback_end],
                            [{"phase": "readback-end", "positions": ends, "timed_out": False,
                              "elapsed_s": (readback_end - readback_start) / S}]))
    clients = [*names, *members]
    samples = np.arange(t0, last_send, 5 * S)
    for t in samples:
        faults_before = int(sum(start < t for _, start, _ in windows))
        extra.append(_json_rows(clients, "client-metrics", "ok", np.full(len(clients), t),
                                [{"connection-creation-total": 3 + faults_before, "connection-close-total":
                                  faults_before, "brokers": [1, 2, 3]}] * len(clients)))
    scrapes = np.arange(t0, last_send, 2 * S)
    extra.append(_json_rows("metrics", "metric", "ok", scrapes,
                            [{"family": "kafka_log_flush_time_ms", "url": "http://broker-1:9404/metrics",
                              "labels": {"quantile": "0.99"}, "value": float(v)}
                             for v in rng.uniform(1, 20, len(scrapes))]))
    others = pd.concat(extra, ignore_index=True)
    others["op_id"] = next_op + np.arange(len(others))

    frame = pd.concat([send_rows, live, back, others], ignore_index=True)
    frame["run_id"] = RUN
    frame["wall_ns"] = frame["invoke_ns"] + 1_700_000_000 * S
    frame = hist.validate(frame)
    frame = frame.sort_values(["complete_ns", "op_id"], kind="stable").reset_index(drop=True)
    return frame, windows


def s4_composition(windows: list, args: argparse.Namespace) -> list[CheckSpec]:
    """Exactly what S4 composes (chaos.fault_checks() plus its own two), for a non-idempotent
    producer with one request in flight: duplicates allowed, nothing else."""
    config = WorkloadConfig(records=None, duration_s=60.0, rate=args.rate, producers=args.producers,
                            consumers=args.consumers, consumer_mode="group", partitions=args.partitions,
                            idempotence=False, max_in_flight=1)
    faults = [object() for _ in windows]  # stand-ins: the composition counts faults, it does not run them
    steps = [Step(0.0, action, fault) for fault in faults for action in ("start", "stop")]
    return chaos.fault_checks(SimpleNamespace(profile=None), config, Schedule(steps), extra=(
        CheckSpec("recovery", {"limit_s": RECOVERY_LIMIT_S}), CheckSpec("rebalances", {"requirement": "F4.3"})))


# --------------------------------------------------------------------------- the old checker, from git
def old_checker() -> tuple[ModuleType | None, str]:
    """The pre-composition core-only checker, loaded from git for this comparison only."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:k6suite_lib/checker.py"],
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"comparison skipped: could not read the old checker from git ({exc})"
    with tempfile.NamedTemporaryFile("w", suffix="_old_checker.py", delete=False) as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("k6suite_old_checker", handle.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    Path(handle.name).unlink()
    return module, f"old checker: git show {OLD_COMMIT}:k6suite_lib/checker.py"


# --------------------------------------------------------------------------- timing
@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU time: steadier on a busy machine
    result: object = None

    def line(self, rows: int) -> str:
        wall, cpu = statistics.median(self.wall), statistics.median(self.cpu)
        return (f"{wall:6.2f} s wall ({', '.join(f'{t:.2f}' for t in self.wall)}), {cpu:6.2f} s CPU "
                f"({', '.join(f'{t:.2f}' for t in self.cpu)}); {rows / wall / 1e6:.2f} M rows/s")


def _timed(runs: dict, repeats: int) -> dict[str, Timing]:
    """Each run `repeats` times, interleaved (new, old, new, old, ...) so that both see the same load."""
    timings = {name: Timing() for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            timings[name].result = run()
            timings[name].cpu.append(time.process_time() - cpu)
            timings[name].wall.append(time.perf_counter() - wall)
    return timings


def _breakdown(frame: pd.DataFrame, specs: list[CheckSpec], repeats: int) -> None:
    """Median CPU time of each checker of the composition, in order, on a fresh view each repeat."""
    steps = [(spec.name, lambda view, spec=spec: CHECKERS[spec.name](view, **spec.params)) for spec in specs]
    steps += [("latency_summary", latency_summary), ("throughput", throughput)]
    cpu: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(repeats):
        view = View(frame)
        for name, step in steps:
            started = time.process_time()
            step(view)
            cpu[name].append(time.process_time() - started)
    for name, times in cpu.items():
        print(f"  {name:<22} {statistics.median(times):6.3f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--producers", type=int, default=100)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=5000.0, help="open-loop sends per second, all producers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--verdicts", action="store_true", help="print the new composition's verdict table")
    parser.add_argument("--breakdown", action="store_true", help="print each checker's time too")
    args = parser.parse_args()

    started = time.perf_counter()
    frame, windows = synthetic_history(args.ops, args.partitions, args.producers, args.consumers, args.rate)
    built = time.perf_counter() - started
    specs = s4_composition(windows, args)
    counts = frame["f"].value_counts()
    print(f"history rows:      {len(frame):>10,}  ({', '.join(f'{k} {v:,}' for k, v in counts.items())})")
    print(f"fault windows:     {len(windows):>10}  ({', '.join(name for name, _, _ in windows)})")
    print(f"build:             {built:10.2f} s (not measured)")

    def new() -> pd.DataFrame:
        view = View(frame)  # fresh: nothing cached from an earlier repeat
        verdicts = compose(view, specs)
        latency_summary(view)
        throughput(view)
        return verdicts

    runs = {"new": new}
    module, note = old_checker()
    if module is not None:
        config = module.CheckerConfig(allowed=frozenset({"duplicate"}))

        def old() -> object:
            result = module.check(frame, config)
            module.latency_summary(frame)
            module.throughput(frame)
            return result

        runs["old"] = old
    timed = _timed(runs, args.repeats)

    print(f"new, all checkers: {', '.join(s.name for s in specs)}, latency_summary, throughput")
    print(f"  median of {args.repeats}:    {timed['new'].line(len(frame))}")
    verdicts = timed["new"].result
    print(f"  verdicts:        {verdicts['status'].value_counts().to_dict()}")
    for row in verdicts[verdicts["status"] == "FAIL"].itertuples():  # client errors: timeouts planted in faults
        print(f"  FAIL {row.check}: {row.measured} ({row.evidence[:100]})")
    if args.verdicts:
        with pd.option_context("display.max_colwidth", 70, "display.width", 200):
            print(verdicts[["check", "measured", "threshold", "status"]].to_string(index=False))
    if args.breakdown:
        _breakdown(frame, specs, args.repeats)
    if module is None:
        print(note)
        return
    old = timed["old"]
    print(f"old, core only:    check, latency_summary, throughput ({note}, for this comparison only)")
    print(f"  median of {args.repeats}:    {old.line(len(frame))}; passed={old.result.passed}")
    ratio_wall = statistics.median(timed["new"].wall) / statistics.median(old.wall)
    ratio_cpu = statistics.median(timed["new"].cpu) / statistics.median(old.cpu)
    print(f"new / old:         {ratio_wall:10.2f} wall, {ratio_cpu:.2f} CPU (goal <= 1)")


if __name__ == "__main__":
    main()
