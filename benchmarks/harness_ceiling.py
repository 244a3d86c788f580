"""Benchmark: the harness ceiling, i.e. the highest open-loop rate the suite can offer before its own
producer, not the system under test, shapes the measurement.

For each embedded system (profile `local` = KafScale with 3 brokers, `kafka` = Apache Kafka with
3 nodes, `tansu` = Tansu with 3 brokers) the script starts the stack on a port base of its own, and
searches, per client, the highest rate of 128-byte records the client sustains:

  suite         the workload's recording producer (k6suite_lib.workload via run_workload: identity
                payloads, callbacks, history rows), exactly the code path the scenarios use, with the
                profile's client library (today kafka-python);
  workers       the suite's recording librdkafka producers in --workers worker processes (one producer
                each; WorkloadConfig.workers), their history shards merged into one history;
  franzgo-workers  the same with the suite's recording franz-go producers: --workers processes of the Go
                program, each writing its rows straight into a shard file (no Python per send), with
                franz-go's defaults (idempotent where the system grants a producer id) plus the contract;
  kafka-python  a bare kafka-python producer built by k6suite_lib.clients with the same settings;
  librdkafka    a bare confluent-kafka (librdkafka) producer with the recording librdkafka producer's
                settings (rdkafka.producer_config) and no recording;
  franzgo       bare franz-go: the franzgo-workers' Go program as bare workers (same --workers processes,
                --producers producers, schedule and client settings) that record nothing: one fixed
                payload, no rows, no relay, each send's due and acknowledgement time kept in memory and
                written out at the end. franzgo-workers/franzgo is the cost of recording and nothing else.

Settings shared by suite and kafka-python, from the workload's defaults and the profile: acks=all,
idempotence as the profile says, linger 0 ms, 1 request in flight per connection, the profile's request
timeout, 30 s delivery timeout, at most 1,000 unacknowledged sends per producer, records spread
round-robin over --partitions explicit partitions of one topic (the worker clients' --producers share the
rate; each has its own 1,000). librdkafka, bare or recording, runs as
the suite's librdkafka client does (docs/clients.md): its own defaults (linger 5 ms, no idempotence, many
requests in flight) plus acks=all and the timeouts, so workers/librdkafka is the cost of recording and
nothing else. Library defaults nobody sets (e.g. batch size) stay each library's own.

A trial offers one rate for --trial-s seconds on a fixed schedule (send i is due at start + i/rate; a
late send goes out at once). Publish delay = acknowledgement time minus the time the send was due,
so queueing behind a slow client counts (no coordinated omission); a send due in the judged window
that was never sent or never acknowledged counts as infinitely late. The first --warmup-s seconds
of a trial are sent but not judged (connection and metadata set-up). A trial sustains its rate when
the acknowledgements that arrive in the judged window reach 95 % of the offered rate (throughput: any
send's; a client that cannot keep up acknowledges fewer per second, whatever it sent) and the publish
delay's p99 of the sends due in the window is below --p99-ms (latency, queueing included). Counting
only the window's own sends acknowledged within it, as this benchmark did before, also failed every
rate whose mean delay exceeded 5 % of the judged window (125 ms of 2.5 s): a latency bound stricter
than --p99-ms, which at a load average of 21 failed the suite at 3,250/s (p99 243 ms) and the franz-go
workers at 4,000/s (p99 378 ms) while bare franz-go sustained 96,000/s.

Search, per client: from --start-rate, double while trials sustain (or halve while they fail, down
to --min-rate, up to --max-rate) until a sustained and a failed rate bracket the ceiling, then
bisect the bracket --bisections times. A failed trial is tried again up to --retries times before the
search counts it (the search never goes back above a failed rate, so on a machine shared with other
load one unlucky trial would cap it for good); the progress lines show every try.
The clients' searches advance in turn, one trial each (and its retries),
so a drift of the machine or the system hits all of them alike; each is preceded by --warmup-trials
unjudged warm-up trials at the start rate (a first failure would halve the search for good, and a
freshly started Apache Kafka answers slowly for its first tens of seconds). Trials stop when every
search is done or --budget-s passed for the system (checked before each round of one trial per
client; the report then says so). Trial count is bounded by the rate limits and bisections, time by
the budget plus one round.

Each trial's line also says where the machine's CPU went during it, in cores (CPU seconds per wall
second): "harness" this process (the suite's Python parent, or the bare kafka-python and librdkafka
clients), "workers" its worker processes (Python or Go, bare franz-go's too), "stack" the system's
processes (the brokers' JVMs, MinIO, etcd), "other" the rest of the machine (other users' load). A
client whose own share is small while stack and other fill the cores is capped by the machine and the
system, not by the harness.

Prints progress lines, then a table (ceiling, p99 and achieved rate at the ceiling, the lowest
failed rate and its p99) and the ratios suite/kafka-python, suite/librdkafka, workers/librdkafka,
workers/suite, franzgo-workers/librdkafka, franzgo-workers/suite, franzgo-workers/franzgo and
franzgo/librdkafka per system, of the clients measured
(--clients). Asserts nothing.
Stacks listen on 127.0.0.1 only (port bases: local 26400, kafka 26800, tansu 27200, or --port-base),
keep their state in a temporary K6SUITE_OUTPUTS that is removed afterwards, and are stopped by PID. Object
store keys come from K6SUITE_S3_ACCESS_KEY / K6SUITE_S3_SECRET_KEY, or are generated into that
temporary folder.

    .venv/bin/python benchmarks/harness_ceiling.py [--systems local kafka tansu] [--trial-s 3]
        [--clients suite workers franzgo-workers librdkafka franzgo] [--workers 2] [--port-base 31000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import confluent_kafka
import numpy as np
import yaml

from k6suite_lib import clients
from k6suite_lib.cli import interrupt_on_sigterm
from k6suite_lib.history import Recorder, encode_payload
from k6suite_lib.profiles import PROFILES_DIR, Profile, load_profile
from k6suite_lib.stack import binaries, open_stack
from k6suite_lib.workload import WorkloadConfig, franzgo, rdkafka, run_workload, workers
from k6suite_lib.workload.context import RunContext

PORT_BASES = {"local": 26400, "kafka": 26800, "tansu": 27200}  # this benchmark's own, clear of others'
RECORD_BYTES = 128
ACHIEVED_SHARE = 0.95  # of the offered rate
TAIL_S = 1.0  # sending goes on this long past the judged window, so producer start-up never cuts it short


@dataclass(frozen=True)
class Sends:
    """What one client did in a trial: when its schedule started, when each send was due, and when
    each was acknowledged (-1: never)."""

    start_ns: int
    intended_ns: np.ndarray
    completed_ns: np.ndarray


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far, by whom: where a trial's time went decides what caps a client."""

    harness: float  # this process: the suite's Python parent, and the bare kafka-python/librdkafka clients
    workers: float  # its waited children: the worker processes (Python or the Go program), bare franz-go's too
    stack: float  # its live descendants: the system's processes (JVMs, brokers, MinIO, etcd)
    machine: float  # every process on the machine (/proc/stat): the rest is other users' load

    @staticmethod
    def now() -> Cpu:
        tick = os.sysconf("SC_CLK_TCK")
        own = os.times()
        parents, used = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone since the listing
                continue
            pid = int(stat.parent.name)
            parents[pid], used[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick

        def descends(pid: int) -> bool:
            for _ in range(64):  # bounded walk up the process tree
                pid = parents.get(pid, 0)
                if pid == os.getpid():
                    return True
                if pid <= 1:
                    return False
            return False

        # the machine's first line: user nice system idle iowait irq softirq steal, in ticks
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        machine = (sum(ticks) - ticks[3] - ticks[4]) / tick
        return Cpu(own.user + own.system, own.children_user + own.children_system,
                   sum(used[pid] for pid in used if descends(pid)), machine)

    def since(self, before: Cpu, wall_s: float) -> str:
        """Each share of the CPU between the two readings, in cores (CPU seconds per wall second)."""
        shares = {name: (getattr(self, name) - getattr(before, name)) / wall_s
                  for name in ("harness", "workers", "stack", "machine")}
        other = shares.pop("machine") - sum(shares.values())
        return " ".join(f"{name} {share:.2f}" for name, share in {**shares, "other": other}.items())


@dataclass(frozen=True)
class Trial:
    """One offered rate, judged: the search's unit of evidence."""

    rate: float
    achieved: float  # sends due and acknowledged in the judged window, per second
    p99_ms: float  # of the publish delay; inf when more than 1 % of due sends were never acknowledged
    sustained: bool
    cpu: str = ""  # cores used during the trial by the harness, its workers, the stack and the rest


Client = Callable[[Profile, WorkloadConfig], Sends]


def suite_sends(profile: Profile, config: WorkloadConfig) -> Sends:
    """The workload's own recording producer; its history says when each send was due and acknowledged."""
    return history_sends(run_workload(profile, config).history)


def workers_sends(profile: Profile, config: WorkloadConfig) -> Sends:
    """The suite's recording librdkafka producers, one per worker process (WorkloadConfig.workers), their
    shards merged into one history: what a scenario asking for workers offers."""
    return history_sends(run_workload(profile, replace(config, client="librdkafka")).history)


def franzgo_workers_sends(profile: Profile, config: WorkloadConfig) -> Sends:
    """The suite's recording franz-go producers, one per worker process of the Go program, each writing
    its shard itself; merged into one history as for the librdkafka workers."""
    return history_sends(run_workload(profile, replace(config, client="franz-go")).history)


def franzgo_sends(profile: Profile, config: WorkloadConfig) -> Sends:
    """Bare franz-go: the franz-go workers' Go program as bare workers (clients/franzgo, "bare"), the same
    processes, producers, schedule and client settings, recording nothing (one fixed payload, no rows, no
    relay); each keeps its sends' due and acknowledgement times and writes them out at its end. What the
    franzgo-workers are measured against: the difference is the recording and nothing else."""
    config = replace(config, client="franz-go")
    ctx = RunContext(profile=profile, config=config, run_id=f"ceiling-{uuid.uuid4().hex[:8]}", topic=config.topic,
                     recorder=Recorder("ceiling"))
    share = math.ceil(config.duration_s * config.rate / config.producers) + 1  # each producer's capacity
    with tempfile.TemporaryDirectory(prefix="k6suite-bare-franzgo-") as tmp, contextlib.ExitStack() as running:
        pool = []
        for k, indexes in enumerate(workers.plan(config.producers, config.workers), start=1):
            task = franzgo.worker_task(ctx, k, indexes, Path(tmp) / f"{k}.bin")
            task["bare"] = True
            for producer in task["producers"]:
                producer["records"] = share
            proc = subprocess.Popen([str(franzgo.binary_path()), json.dumps(task)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            running.callback(proc.kill)  # a no-op once it exited
            pool.append(proc)
        for proc in pool:  # its clients are made: the schedule starts at "go", as the workers' does
            while (line := proc.stdout.readline()) and '"ready"' not in line:
                pass
            if not line:
                raise RuntimeError(f"a bare franz-go worker ended before it was ready: {proc.stderr.read()[-300:]}")
        for proc in pool:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        time.sleep(config.duration_s)
        for proc in pool:  # the end of its input stops its producers; they flush, it writes its send times
            _, errors = proc.communicate(timeout=config.delivery_timeout_s + 30)
            if proc.returncode:
                raise RuntimeError(f"a bare franz-go worker exited {proc.returncode}: {errors[-300:]}")
        pairs = np.concatenate([np.fromfile(Path(tmp) / f"{k}.bin", dtype="<i8") for k in range(1, len(pool) + 1)])
    intended, completed = pairs[0::2], pairs[1::2]
    return Sends(int(intended.min()) if len(intended) else time.monotonic_ns(), intended, completed)


def history_sends(history) -> Sends:
    sends = history[history["f"] == "send"]
    intended = sends["intended_ns"].to_numpy()
    completed = np.where((sends["type"] == "ok").to_numpy(), sends["complete_ns"].to_numpy(), -1)
    return Sends(int(intended.min()) if len(intended) else time.monotonic_ns(), intended, completed)


@dataclass
class Acks:
    """Acknowledgement times by sequence number (-1: none), written by the client's delivery callbacks."""

    at: np.ndarray
    settled: int = 0  # acknowledged or failed; written only by callbacks, which run on one thread

    def ok(self, seq: int) -> None:
        self.at[seq] = time.monotonic_ns()
        self.settled += 1

    def failed(self, seq: int) -> None:
        self.settled += 1


def open_loop(config: WorkloadConfig, send: Callable[[int, Acks], None], idle: Callable[[float], None]) -> Sends:
    """The workload producer's schedule for a bare client: send i due at start + i/rate until the
    duration ends, at most max_outstanding unacknowledged. The returned arrays are views that delivery
    callbacks still fill, so the caller flushes before judging."""
    count = math.ceil(config.duration_s * config.rate)
    acks, intended = Acks(np.full(count, -1, dtype=np.int64)), np.empty(count, dtype=np.int64)
    start = time.monotonic_ns()
    stop = start + int(config.duration_s * 1e9)
    sent = refused = 0  # refused: raised before anything reached the network, so never acknowledged
    for seq in range(count):
        due = start + int(seq * 1e9 / config.rate)
        while (now := time.monotonic_ns()) < due:
            idle((due - now) / 1e9)
        while seq - refused - acks.settled > config.max_outstanding and time.monotonic_ns() < stop:
            idle(0.001)
        if time.monotonic_ns() >= stop:
            break
        intended[seq] = due
        try:
            send(seq, acks)
        except Exception:
            refused += 1
        sent += 1
    return Sends(start, intended[:sent], acks.at[:sent])


def kafka_python_sends(profile: Profile, config: WorkloadConfig) -> Sends:
    """Bare kafka-python with the recording producer's client settings, no history."""
    producer = clients.producer(profile, acks=config.acks, enable_idempotence=config.idempotent(profile),
                                linger_ms=config.linger_ms,
                                max_in_flight_requests_per_connection=config.max_in_flight,
                                delivery_timeout_ms=int(config.delivery_timeout_s * 1000))
    payload, _ = encode_payload("bench", "bare", 0, config.message_bytes)

    def send(seq: int, acks: Acks) -> None:
        future = producer.send(config.topic, value=payload, partition=seq % config.partitions)
        future.add_callback(lambda _metadata, seq=seq: acks.ok(seq))
        future.add_errback(lambda _exc, seq=seq: acks.failed(seq))

    try:
        sends = open_loop(config, send, time.sleep)
        producer.flush(timeout=config.delivery_timeout_s)
    finally:
        producer.close(timeout=5)
    return sends


def librdkafka_sends(profile: Profile, config: WorkloadConfig) -> Sends:
    """A native client with the settings of the suite's recording librdkafka producer (librdkafka's
    defaults plus the contract, rdkafka.producer_config) and no recording: what the machine allows one
    Python process to offer with it, and what the recording workers are measured against."""
    producer = confluent_kafka.Producer(rdkafka.producer_config(
        profile, replace(config, client="librdkafka"), f"ceiling-{uuid.uuid4().hex[:8]}"))
    payload, _ = encode_payload("bench", "bare", 0, config.message_bytes)

    def send(seq: int, acks: Acks) -> None:
        def delivered(err: confluent_kafka.KafkaError | None, _msg: confluent_kafka.Message) -> None:
            if err is None:
                acks.ok(seq)
            else:
                acks.failed(seq)

        producer.produce(config.topic, value=payload, partition=seq % config.partitions, on_delivery=delivered)

    # idling in poll() serves delivery callbacks as acknowledgements arrive, so their times are taken then
    sends = open_loop(config, send, producer.poll)
    producer.flush(config.delivery_timeout_s)
    return sends


CLIENTS: dict[str, Client] = {"suite": suite_sends, "workers": workers_sends, "franzgo-workers": franzgo_workers_sends,
                              "kafka-python": kafka_python_sends, "librdkafka": librdkafka_sends,
                              "franzgo": franzgo_sends}
WORKER_CLIENTS = ("workers", "franzgo-workers", "franzgo")
# the ratios printed, where both clients were measured: what the targets compare
RATIOS = (("suite", "kafka-python"), ("suite", "librdkafka"), ("workers", "librdkafka"), ("workers", "suite"),
          ("franzgo-workers", "librdkafka"), ("franzgo-workers", "suite"), ("franzgo-workers", "franzgo"),
          ("franzgo", "librdkafka"))


def judge(sends: Sends, rate: float, trial_s: float, warmup_s: float, p99_ms: float) -> Trial:
    """Publish delay of the sends due in [start + warmup_s, start + trial_s), and the throughput: the
    acknowledgements that arrived in that window."""
    low, high = sends.start_ns + int(warmup_s * 1e9), sends.start_ns + int(trial_s * 1e9)
    in_window = (sends.intended_ns >= low) & (sends.intended_ns < high)
    completed, intended = sends.completed_ns[in_window], sends.intended_ns[in_window]
    delays = np.where(completed >= 0, (completed - intended) / 1e6, np.inf)
    due = math.ceil(trial_s * rate) - math.ceil(warmup_s * rate)
    delays = np.concatenate([delays, np.full(max(0, due - len(delays)), np.inf)])  # due, never sent
    p99 = float(np.percentile(delays, 99, method="higher")) if len(delays) else math.inf
    acked = int(((sends.completed_ns >= low) & (sends.completed_ns < high)).sum())  # any send's, in the window
    achieved = acked / (trial_s - warmup_s)
    return Trial(rate, achieved, p99, achieved >= ACHIEVED_SHARE * rate and p99 < p99_ms)


@dataclass
class Search:
    """Bracket the ceiling by doubling (halving while the first rates fail), then bisect the bracket."""

    start: float
    low: float
    high: float
    bisections: int
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None  # the highest sustained trial
    failed: Trial | None = None  # the lowest failed trial
    bisected: int = 0

    @property
    def bracketed(self) -> bool:
        """A sustained and a failed rate enclose the ceiling: it is measured, not only bounded."""
        return self.best is not None and self.failed is not None

    def next_rate(self) -> float | None:
        """The rate to try next, or None when the search is done."""
        if not self.trials:
            return self.start
        if self.bracketed:
            middle = round((self.best.rate + self.failed.rate) / 2)
            return middle if self.bisected < self.bisections and self.best.rate < middle < self.failed.rate else None
        if self.best:
            return self.best.rate * 2 if self.best.rate * 2 <= self.high else None
        return round(self.failed.rate / 2) if self.failed.rate / 2 >= self.low else None

    def record(self, trial: Trial) -> None:
        self.bisected += self.bracketed
        self.trials.append(trial)
        if trial.sustained and (self.best is None or trial.rate > self.best.rate):
            self.best = trial
        if not trial.sustained and (self.failed is None or trial.rate < self.failed.rate):
            self.failed = trial

    def ceiling(self) -> str:
        """The ceiling as printed: '<' below the lowest rate tried, '>=' when no rate failed."""
        if self.best is None:
            return f"<{self.failed.rate:.0f}" if self.failed else "n/a"
        return f"{'' if self.failed else '>='}{self.best.rate:.0f}"


@contextmanager
def embedded(name: str, directory: Path, port_base: int | None = None) -> Iterator[Profile]:
    """The profile's embedded stack on this benchmark's port base (or port_base; as tests/conftest.py writes
    profiles, so a user's stack is never touched), stopped by PID afterwards even on failure."""
    raw = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())
    raw.update(name=f"ceiling-{name}", stack={**raw["stack"], "port_base": port_base or PORT_BASES[name]})
    path = directory / f"ceiling-{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    profile = load_profile(path)
    stack = open_stack(profile, log=lambda _msg: None)
    binaries.install(systems=[stack.system], log=lambda _msg: None)
    try:
        print(f"[{name}] starting {stack.system}: {profile.stack.brokers} brokers, port base "
              f"{profile.stack.port_base}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
              flush=True)
        print(f"[{name}] up in {stack.up():.1f} s", flush=True)
        yield profile
    finally:
        stack.down()
        print(f"[{name}] stopped", flush=True)


def measure(name: str, profile: Profile, args: argparse.Namespace) -> tuple[dict[str, Search], bool]:
    """The clients' searches on one running stack, a trial each in turn; whether the budget ran out."""
    topic = f"ceiling-{uuid.uuid4().hex[:8]}"
    clients.create_topic(profile, topic, args.partitions)

    def trial(client: str, rate: float) -> Trial:
        processes = args.workers if client in WORKER_CLIENTS else 0
        producers = (args.producers or args.workers) if processes else 1
        config = WorkloadConfig(records=None, duration_s=args.trial_s + TAIL_S, rate=rate, producers=producers,
                                workers=processes, consumers=0, consumer_mode="none", partitions=args.partitions,
                                readback=False, topic=topic, create_topic=False, message_bytes=RECORD_BYTES,
                                label="ceiling")
        before, started = Cpu.now(), time.monotonic()
        sends = CLIENTS[client](profile, config)
        cpu = Cpu.now().since(before, time.monotonic() - started)
        return replace(judge(sends, rate, args.trial_s, args.warmup_s, args.p99_ms), cpu=cpu)

    def show(client: str, result: Trial, what: str) -> None:
        verdict = "sustained" if result.sustained else "not sustained"
        print(f"[{name}] {what:8s} {client:15s} offered {result.rate:8.0f}/s  achieved {result.achieved:8.0f}/s  "
              f"p99 {result.p99_ms:9.1f} ms  {verdict:13s}  cores: {result.cpu}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)

    for _ in range(args.warmup_trials):  # a fresh stack is slow at first (JVMs compiling): searches start after
        for client in args.clients:
            show(client, trial(client, args.start_rate), "warm-up")
    searches = {client: Search(args.start_rate, args.min_rate, args.max_rate, args.bisections)
                for client in args.clients}
    deadline = time.monotonic() + args.budget_s
    for _round in range(100):  # the searches' own limits end them after about 20 rounds
        due = [(client, rate) for client, search in searches.items() if (rate := search.next_rate()) is not None]
        if not due:
            return searches, False
        if time.monotonic() >= deadline:  # checked per round, so every client has had as many trials
            print(f"[{name}] budget of {args.budget_s:.0f} s spent; reporting the searches as they stand")
            return searches, True
        for client, rate in due:
            result = trial(client, rate)
            show(client, result, "trial")
            for _retry in range(args.retries):
                if result.sustained:
                    break
                result = trial(client, rate)
                show(client, result, "retry")
            searches[client].record(result)
    return searches, True


def report(results: dict[str, tuple[dict[str, Search], bool]], args: argparse.Namespace) -> None:
    print()
    print(f"Harness ceiling: highest open-loop rate of {RECORD_BYTES}-byte records with publish delay "
          f"(ack - due) p99 < {args.p99_ms:g} ms and >= {ACHIEVED_SHARE:.0%} of the offered rate acknowledged")
    print(f"({args.trial_s:g} s trials, first {args.warmup_s:g} s not judged, {args.partitions} partitions, "
          f"acks=all; suite and kafka-python linger 0 ms, 1 request in flight, librdkafka, workers, franzgo and "
          f"franzgo-workers their library's defaults; "
          f"{args.workers} workers, {args.producers or args.workers} producers; "
          f"kafka-python {version('kafka-python')}, "
          f"confluent-kafka {version('confluent-kafka')}, librdkafka {confluent_kafka.libversion()[0]})")
    print()
    print(f"{'system':8s} {'client':16s} {'ceiling/s':>10s} {'p99 ms':>8s} {'achieved/s':>11s} "
          f"{'failed at/s':>12s} {'its p99 ms':>11s} {'trials':>7s}")
    for name, (searches, _) in results.items():
        for client, search in searches.items():
            best, failed = search.best, search.failed
            print(f"{name:8s} {client:16s} {search.ceiling():>10s} "
                  f"{f'{best.p99_ms:.1f}' if best else '-':>8s} {f'{best.achieved:.0f}' if best else '-':>11s} "
                  f"{f'{failed.rate:.0f}' if failed else '-':>12s} {f'{failed.p99_ms:.1f}' if failed else '-':>11s} "
                  f"{len(search.trials):7d}")
    print()
    pairs = [(a, b) for a, b in RATIOS if a in args.clients and b in args.clients]
    print(f"{'system':8s} " + " ".join(f"{f'{a}/{b}':>19s}" for a, b in pairs))
    for name, (searches, over_budget) in results.items():
        ratios = []
        for client, base in pairs:
            top, bottom = searches[client], searches[base]
            if top.best is None or bottom.best is None:
                ratios.append("n/a")
            else:
                bound = "" if top.bracketed and bottom.bracketed else "*"
                ratios.append(f"{top.best.rate / bottom.best.rate:.2f}{bound}")
        note = "  (budget ran out)" if over_budget else ""
        print(f"{name:8s} " + " ".join(f"{ratio:>19s}" for ratio in ratios) + note)
    print("* a ceiling in the ratio is only a bound (no rate failed, or none sustained)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", choices=list(PORT_BASES), default=list(PORT_BASES),
                        help="embedded systems to measure, one stack at a time (default: all three)")
    parser.add_argument("--trial-s", type=float, default=3.0, help="judged length of one trial (default 3)")
    parser.add_argument("--warmup-s", type=float, default=0.5,
                        help="first seconds of a trial sent but not judged (default 0.5)")
    parser.add_argument("--p99-ms", type=float, default=10.0, help="publish delay p99 bound (default 10)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the topic (default 3)")
    parser.add_argument("--start-rate", type=float, default=250.0, help="first rate tried, records/s (default 250)")
    parser.add_argument("--min-rate", type=float, default=25.0, help="halving stops below this (default 25)")
    parser.add_argument("--max-rate", type=float, default=256_000.0, help="doubling stops above this (default 256000)")
    parser.add_argument("--bisections", type=int, default=4,
                        help="bisections of the bracket; 4 narrow a doubling bracket to 1/16 (default 4)")
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="search time per system, after start-up and warm-up (default 240)")
    parser.add_argument("--clients", nargs="+", choices=list(CLIENTS), default=list(CLIENTS),
                        help="clients to measure (default: all)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes of the worker clients (default 2)")
    parser.add_argument("--producers", type=int,
                        help="producers of the worker clients, spread over the workers, each with the workload's "
                             "max_outstanding (default: one per worker)")
    parser.add_argument("--retries", type=int, default=1,
                        help="tries again of a failed trial before the search counts it (default 1)")
    parser.add_argument("--warmup-trials", type=int, default=1,
                        help="unjudged trials per client at the start rate before the searches (default 1)")
    parser.add_argument("--port-base", type=int, help="port base of every stack (default: this benchmark's own)")
    args = parser.parse_args()
    if not 0 <= args.warmup_s < args.trial_s:
        parser.error("--warmup-s must be at least 0 and shorter than --trial-s")
    if args.producers is not None and args.producers < args.workers:
        parser.error("--producers must be at least --workers (every worker runs a producer)")
    interrupt_on_sigterm()  # a terminated run still stops its stacks
    if {"franzgo-workers", "franzgo"} & set(args.clients):
        franzgo.install(log=lambda _msg: None)
    results = {}
    with tempfile.TemporaryDirectory(prefix="k6suite-ceiling-") as outputs:
        os.environ["K6SUITE_OUTPUTS"] = outputs  # stack state and logs stay out of the checkout
        for name in args.systems:
            with embedded(name, Path(outputs), args.port_base) as profile:
                results[name] = measure(name, profile, args)
    report(results, args)


if __name__ == "__main__":
    main()
