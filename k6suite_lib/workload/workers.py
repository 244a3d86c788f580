"""Worker processes: a workload's producers spread over several processes, each recording a history shard.

One Python process offers only what its interpreter can: the recording producer spends most of its
time in Python (payloads, rows, callbacks), so the harness, not the system, capped the load
(benchmarks/harness_ceiling.py). With ``WorkloadConfig.workers = N`` the producers run in N
processes, producer i in worker 1 + i mod N, with the workload's own client library: for kafka-python
and librdkafka processes of this module (``python -m k6suite_lib.workload.workers TASK``), which run
the same producer loop as in-process producers into a recorder of their own and save it as a Parquet
shard; for franz-go the Go program (clients/franzgo, role "worker"), whose producers write their rows
straight into a JSON-lines shard, so recording a send costs Go's time, not Python's
(benchmarks/recording_cpu.py). The workload merges the shards into its history (k6suite_lib/shards.py).
Consumers, the nemesis and the read-back stay in the workload's process.

Protocol, JSON lines on the worker's stdout and plain lines on its stdin:

- the worker imports and reads its task, then says ``{"event": "ready"}`` (imports take seconds; the
  workload launches workers before its clock starts, so they do not eat into its duration);
- ``go`` on stdin: it answers ``{"event": "go", "mono_ns": ...}`` (its CLOCK_MONOTONIC when it read
  the line, which the workload sets beside its own clock before and after: the clocks' agreement) and
  starts its producers;
- while they run, every RELAY_S ``{"acked": {producer: [seq, ...]}, "last_ack_ns": {partition: ns},
  "done": n}``: what the workload's waits need (the acknowledged identities, every partition's latest
  acknowledgement, n other outcomes), in bulk, so the workload's process spends no Python per send;
- any other line or the end of stdin stops its producers; it saves its shard and exits.

A worker that exited non-zero, was killed, or left a shard that cannot be read in full is the harness's
failure, not the system's: its producers' send rows are missing, so their records would read back as
never sent (corrupted) and their losses would not show. The workload raises WorkerFailure naming it
instead of returning a history to judge.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from k6suite_lib import history, shards
from k6suite_lib.history import Recorder
from k6suite_lib.profiles import load_profile
from k6suite_lib.workload.config import WorkloadConfig, error_text
from k6suite_lib.workload.context import ClientLog, RunContext, Tracker
from k6suite_lib.workload.producer import producer_loop

RELAY_S = 0.1
READY_TIMEOUT_S = 60.0  # importing pandas and the client libraries on a loaded machine
STOP_TIMEOUT_S = 60.0  # a worker flushes (up to the delivery timeout) and saves its shard after "stop"


class WorkerFailure(RuntimeError):
    """Worker processes whose histories are incomplete: a harness failure, so the run is not judged."""


@dataclass
class Worker:
    """One worker process as the workload sees it."""

    index: int  # 1..N: its shard's worker id
    producers: list[int]
    proc: subprocess.Popen
    shard: Path
    stderr: Any
    ready: threading.Event = field(default_factory=threading.Event)
    go_sent_ns: int = 0  # the workload's clock when it said go
    clock: dict[str, int] = field(default_factory=dict)
    feeder: threading.Thread | None = None
    failure: str = ""  # why its history is incomplete, once its feeder ended


def plan(producers: int, workers: int) -> list[list[int]]:
    """Producer indexes per worker: producer i runs in worker 1 + i mod workers."""
    return [[i for i in range(producers) if i % workers == k] for k in range(workers)]


def command(ctx: RunContext, library: str, worker: int, producers: list[int], shard: Path) -> list[str]:
    """The worker's command line: the franz-go program, or this module with the workload's library."""
    if library == "franz-go":
        from k6suite_lib.workload import franzgo

        return [str(franzgo.binary_path()), json.dumps(franzgo.worker_task(ctx, worker, producers, shard))]
    if library == "java":
        raise ValueError("the Java client runs in the workload's process only (no worker role): workers=0")
    if not Path(ctx.profile.source).is_file():
        raise ValueError(f"worker processes load the profile from its file; {ctx.profile.source!r} is none")
    task = {"profile": ctx.profile.source, "config": asdict(ctx.config), "run_id": ctx.run_id,
            "topic": ctx.topic, "worker": worker, "producers": producers, "shard": str(shard)}
    return [sys.executable, "-m", "k6suite_lib.workload.workers", json.dumps(task)]


def launch(ctx: RunContext, library: str) -> list[Worker]:
    """Start the workers and wait (bounded) until each has made its clients; a worker that did not is
    stopped and noted, and its producers' absence shows as no sends."""
    suffix = ".jsonl" if library == "franz-go" else ".parquet"
    started = []
    for k, producers in enumerate(plan(ctx.config.producers, ctx.config.workers), start=1):
        shard = Path(tempfile.gettempdir()) / f"k6suite-shard-{ctx.run_id}-{ctx.topic}-{k}{suffix}"
        stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - the feeder reads and closes it at the end
        proc = subprocess.Popen(command(ctx, library, k, producers, shard),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        worker = Worker(k, producers, proc, shard, stderr)
        worker.feeder = threading.Thread(target=_feed, args=(ctx, worker), name=f"worker-{k}", daemon=True)
        worker.feeder.start()
        threading.Thread(target=_stop_when_told, args=(ctx, worker), name=f"worker-{k}-stop", daemon=True).start()
        started.append(worker)
    deadline = time.monotonic() + READY_TIMEOUT_S
    for worker in started:
        if not worker.ready.wait(max(0.0, deadline - time.monotonic())):
            ctx.note(f"worker {worker.index} was not ready within {READY_TIMEOUT_S:.0f} s; it was stopped")
            _say(worker, "stop")
    return started


def go(workers: list[Worker]) -> list[threading.Thread]:
    """Let every ready worker start its producers; the threads that feed them end when they did."""
    for worker in workers:
        if worker.ready.is_set():
            worker.go_sent_ns = time.monotonic_ns()
            _say(worker, "go")
    return [worker.feeder for worker in workers]


def clock_agreement(workers: list[Worker]) -> list[dict[str, Any]]:
    """Per worker: its producers and how far its clock read from the workload's at 'go' (offset, and the
    bound half the round trip gives; on one machine both read one CLOCK_MONOTONIC, so |offset| <= bound)."""
    return [{"worker": w.index, "producers": [f"producer-{i}" for i in w.producers], **w.clock} for w in workers]


def _say(worker: Worker, line: str) -> None:
    with contextlib.suppress(Exception):
        worker.proc.stdin.write(line + "\n")
        worker.proc.stdin.flush()


def _stop_when_told(ctx: RunContext, worker: Worker) -> None:
    while not ctx.stop_producers.wait(0.1):
        if worker.proc.poll() is not None:
            return
    _say(worker, "stop")
    with contextlib.suppress(Exception):
        worker.proc.stdin.close()


def _feed(ctx: RunContext, worker: Worker) -> None:
    """The worker's relay into the workload's live bookkeeping; at its end, its shard into ctx.shards."""
    for text in worker.proc.stdout:
        if not text.startswith("{"):  # not the worker's: a library writing to stdout
            continue
        data = json.loads(text)
        event = data.get("event")
        if event == "ready":
            worker.ready.set()
        elif event == "go":
            received, sent = time.monotonic_ns(), worker.go_sent_ns
            worker.clock = {"clock_offset_ns": data["mono_ns"] - (sent + received) // 2,
                            "clock_bound_ns": (received - sent + 1) // 2}
        elif event == "not-idempotent":
            ctx.note(f"franz-go {data['name']} writes without idempotence: {data['why']}")
        elif event is None:
            ctx.tracker.settle(data["acked"], {int(p): ns for p, ns in data["last_ack_ns"].items()}, data["done"])
    try:
        worker.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        worker.proc.wait(5)
        ctx.note(f"worker {worker.index} did not stop within {STOP_TIMEOUT_S:.0f} s and was killed")
    if worker.clock and abs(worker.clock["clock_offset_ns"]) > worker.clock["clock_bound_ns"]:
        ctx.note(f"worker {worker.index}'s clock disagrees with the workload's: {worker.clock}")
    worker.stderr.seek(0)
    errors = worker.stderr.read()[-300:]
    worker.stderr.close()
    try:
        worker.failure = _collect(ctx, worker, errors)
    finally:
        worker.shard.unlink(missing_ok=True)


def _collect(ctx: RunContext, worker: Worker, errors: str) -> str:
    """The worker's shard into ctx.shards; why its history is incomplete ('' when it is whole)."""
    code = worker.proc.returncode
    ended = (f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}")
    name = f"worker {worker.index} ({', '.join(f'producer-{i}' for i in worker.producers)})"
    if not worker.shard.is_file():
        return f"{name} {ended} without a shard; its stderr: {errors}"
    try:
        frame, meta = shards.read(worker.shard)
    except Exception as exc:
        return f"{name} {ended} and left a shard that cannot be read ({error_text(exc)}); its stderr: {errors}"
    for note in meta.get("notes", []):
        ctx.note(f"worker {worker.index}: {note}")
    ctx.shards.append((frame, worker.index))
    if code == 0 and "cut_line_bytes" not in meta:
        return ""
    cut = f", after a cut last line ({meta['cut_line_bytes']} bytes, dropped)" if "cut_line_bytes" in meta else ""
    return f"{name} {ended}; its shard holds {len(frame)} rows{cut}; its stderr: {errors}"


def finish(pool: list[Worker]) -> None:
    """Raise WorkerFailure naming every worker whose history is incomplete. A worker still running when
    the workload ends (its feeder still reading it) is killed first: its shard is missing too."""
    for worker in pool:
        if worker.feeder is not None and worker.feeder.is_alive():
            worker.proc.kill()
            worker.feeder.join(STOP_TIMEOUT_S)
    failures = [worker.failure or f"worker {worker.index}'s feeder did not end" for worker in pool
                if worker.failure or (worker.feeder is not None and worker.feeder.is_alive())]
    if failures:
        raise WorkerFailure("the harness failed, not the system: " + "; ".join(failures))


class Relay(Tracker):
    """A worker's tracker: acknowledgements are also queued for the relay to the workload."""

    def __init__(self) -> None:
        super().__init__()
        self.fresh: list[tuple[tuple[str, int], int, int]] = []
        self.settled_other: list[None] = []

    def ack(self, identity: tuple[str, int], partition: int, complete_ns: int) -> None:
        super().ack(identity, partition, complete_ns)
        self.fresh.append((identity, partition, complete_ns))

    def done(self) -> None:
        super().done()
        self.settled_other.append(None)

    def take(self) -> dict[str, Any]:
        """What settled since the last call, in the relay's bulk form (appends racing with it land after the cut)."""
        count, done = len(self.fresh), len(self.settled_other)
        acked: dict[str, list[int]] = {}
        last: dict[int, int] = {}
        for (producer, seq), partition, complete_ns in self.fresh[:count]:
            acked.setdefault(producer, []).append(seq)
            last[partition] = max(complete_ns, last.get(partition, 0))
        del self.fresh[:count]
        del self.settled_other[:done]
        return {"acked": acked, "last_ack_ns": last, "done": done}


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _stop_on_input(ctx: RunContext) -> None:
    sys.stdin.readline()  # "stop", or the end of stdin: the workload is gone
    ctx.stop_producers.set()


def _senders(ctx: RunContext, indexes: list[int]) -> dict[int, Any]:
    """The producers' clients, made before the worker says ready, so that making them (and their first
    connections) stays off the workload's clock. A client that cannot be made is recorded, as in-process."""
    if ctx.config.library(ctx.profile) == "librdkafka":
        from k6suite_lib.workload.rdkafka import Sender
    else:
        from k6suite_lib.workload.producer import KafkaPythonSender as Sender
    senders = {}
    for index in indexes:
        try:
            senders[index] = Sender(ctx, f"producer-{index}")
        except Exception as exc:
            ctx.connect_failure(f"producer-{index}", exc)
    return senders


def main(task: dict[str, Any]) -> None:
    """One worker: its producers, relayed while they run, then its shard saved."""
    from k6suite_lib.workload.orchestrator import sample_clients

    config = WorkloadConfig(**task["config"])
    profile = load_profile(task["profile"])
    relay = Relay()
    ctx = RunContext(profile=profile, config=config, run_id=task["run_id"], topic=task["topic"],
                     recorder=Recorder(task["run_id"]), tracker=relay)
    logging.getLogger("kafka").addHandler(ClientLog(ctx.recorder))
    senders = _senders(ctx, task["producers"])
    _emit({"event": "ready"})
    if sys.stdin.readline().strip() == "go":
        _emit({"event": "go", "mono_ns": time.monotonic_ns()})
        threading.Thread(target=_stop_on_input, args=(ctx,), name="stop", daemon=True).start()
        producers = [threading.Thread(target=producer_loop, args=(ctx, i, sender), name=f"producer-{i}",
                                      daemon=True) for i, sender in senders.items()]
        for thread in producers:
            thread.start()
        sampler = None
        if config.client_metrics_s > 0:
            sampler = threading.Thread(target=sample_clients, args=(ctx,), name="client-metrics", daemon=True)
            sampler.start()
        while any(thread.is_alive() for thread in producers):
            time.sleep(RELAY_S)
            _emit(relay.take())
        ctx.stop_consumers.set()  # the sampler's end: this worker's clients are closed
        if sampler is not None:
            sampler.join(RELAY_S * 10)
    _emit(relay.take())
    history.save(ctx.recorder.frame(), task["shard"], {"run_id": ctx.run_id, "worker": task["worker"],
                                                        "notes": ctx.notes})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
