"""franz-go as a recording client: the Go program in clients/franzgo/, one process per producer or
consumer, writing history rows as JSON lines that this module feeds into the run's recorder.

The program is built from this repository (its own go.mod/go.sum pin franz-go FRANZ_GO_VERSION) into
the cache, named by the content of clients/franzgo/ (``k6suite stack install`` and bin/bootstrap
build it), so a changed program is rebuilt and two checkouts never share a stale binary. Its rows
carry CLOCK_MONOTONIC times, the clock of time.monotonic_ns() here: one time line for the run.
Each process's operation ids are renumbered from the run's recorder (the records of one poll keep
sharing one id).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from k6suite_lib import clients
from k6suite_lib.history import now
from k6suite_lib.profiles import API_KEYS
from k6suite_lib.stack.layout import REPO_ROOT
from k6suite_lib.workload.consumer import lane
from k6suite_lib.workload.context import RunContext

FRANZ_GO_VERSION = "v1.22.3"
SOURCE = REPO_ROOT / "clients" / "franzgo"
BUILD_TIMEOUT_S = 600
STOP_TIMEOUT_S = 30.0


def source_key() -> str:
    """A hash of the program's sources (go.mod, go.sum, *.go but its tests): the binary's name in the cache."""
    digest = hashlib.sha256()
    for path in sorted(p for p in SOURCE.iterdir() if (p.suffix == ".go" and not p.name.endswith("_test.go"))
                       or p.name in ("go.mod", "go.sum")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary_path() -> Path:
    from k6suite_lib.stack.binaries import cache_dir

    return cache_dir() / f"k6suite-franzgo-{source_key()}"


def install(log=print) -> Path:
    """Build the program into the cache unless its current sources are built already."""
    from k6suite_lib.stack.binaries import BinaryError

    path = binary_path()
    if path.is_file():
        log(f"franz-go client {FRANZ_GO_VERSION}: cached at {path}")
        return path
    if shutil.which("go") is None:
        raise BinaryError("the Go toolchain is not on PATH; it is needed to build the franz-go client")
    log(f"franz-go client {FRANZ_GO_VERSION}: building {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="k6suite-franzgo-") as tmp:
        built = Path(tmp) / "franzgo"
        proc = subprocess.run(["go", "build", "-trimpath", "-o", str(built), "."], cwd=SOURCE,
                              env=dict(os.environ, CGO_ENABLED="0"), capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
        if proc.returncode != 0:
            raise BinaryError(f"building the franz-go client failed:\n{proc.stderr[-2000:]}")
        staged = path.with_suffix(".partial")
        shutil.copy2(built, staged)
        staged.rename(path)
    return path


def producer_options(request_timeout_ms: int) -> dict[str, int]:
    """franz-go's two produce timeouts, split so that a produce request's client-side deadline is the contract's
    request timeout, as kafka-python's request_timeout_ms and librdkafka's request.timeout.ms are: franz-go
    deadlines a produce's read at RequestTimeoutOverhead + ProduceRequestTimeout (kgo/client.go
    connTimeouter.timeouts: `case *produceRequest: return def + millis(t.timeout), def`), so with both set to
    the timeout a paused broker held a produce twice as long. The broker gets half to answer (the request's
    TimeoutMillis); the rest is the overhead, also the deadline of the producer's other requests (metadata,
    InitProducerID) and of a new connection's ApiVersions. The program sets exactly these (its task says them),
    and a history's metadata records them ("client_options"): a calibration case measured with another split
    reads stale."""
    broker_wait = request_timeout_ms // 2
    return {"ProduceRequestTimeout_ms": broker_wait, "RequestTimeoutOverhead_ms": request_timeout_ms - broker_wait}


def task(ctx: RunContext, role: str, index: int) -> dict[str, Any]:
    """What the program is asked to do, from the workload's configuration and the profile."""
    config, profile = ctx.config, ctx.profile
    if profile.client.security_protocol != "PLAINTEXT":
        raise ValueError("the franz-go client speaks PLAINTEXT only (S8 and TLS use kafka-python)")
    share = -1
    if config.records is not None:
        share = config.records // config.producers + (1 if index < config.records % config.producers else 0)
    caps = {API_KEYS[name]: version for name, version in clients.version_caps(profile).items()}
    return {"role": role, "name": f"{role}-{index}", "run_id": ctx.run_id, "topic": ctx.topic,
            "brokers": list(profile.bootstrap_servers), "request_timeout_ms": profile.client.request_timeout_ms,
            "delivery_timeout_s": config.delivery_timeout_s, "idempotent": config.idempotent(profile), "caps": caps,
            "index": index, "records": share, "rate": config.rate / config.producers if config.rate > 0 else 0.0,
            "partitions": config.partitions, "keyed": config.keyed, "message_bytes": config.message_bytes,
            "max_outstanding": config.max_outstanding, "group": config.group_id or "", "commit": config.commit,
            "lane": lane(ctx, index) if role == "consumer" and config.consumer_mode != "group" else [],
            "session_timeout_ms": config.session_timeout_ms or 0,
            "heartbeat_interval_ms": config.heartbeat_interval_ms or 0, "auto_create": not config.create_topic,
            "client_metrics_s": config.client_metrics_s,
            "options": producer_options(profile.client.request_timeout_ms) if role == "producer" else {}}


def worker_task(ctx: RunContext, worker: int, producers: list[int], shard: Path) -> dict[str, Any]:
    """A worker process's task (k6suite_lib/workload/workers.py): its producers' tasks, and the shard
    file their rows go to instead of stdout."""
    return {"role": "worker", "name": f"worker-{worker}", "run_id": ctx.run_id, "worker": worker,
            "shard": str(shard), "producers": [task(ctx, "producer", index) for index in producers]}


class Feed:
    """Rows of one program into the run: renumbered op ids, and the live bookkeeping the orchestrator
    waits on (acknowledgements, reads, assignments, first polls)."""

    def __init__(self, ctx: RunContext, name: str) -> None:
        self.ctx, self.name = ctx, name
        self.last_op: tuple[int, int] = (-1, -1)  # the program's op id -> the run's

    def line(self, text: str) -> None:
        """One line of the program's stdout: a row or an event, else a client-log row quoting it (a stray
        line, such as the JVM's own warning, must not stop the reading: the program would block on a full
        pipe while its records still land)."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and ("event" in data or {"op_id", "f"} <= data.keys()):
            self.take(data)
        else:
            self.stray(text)

    def stray(self, text: str) -> None:
        t_ns, wall = now()
        self.ctx.recorder.record(op_id=self.ctx.recorder.next_op(), process="client-log", f="client-log",
                                 type="info", invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall,
                                 error=f"{self.name} wrote a line that is no row: {text.rstrip()[:400]}",
                                 detail=json.dumps({"logger": "stdout", "process": self.name}))

    def take(self, data: dict[str, Any]) -> None:
        """One parsed row or event into the run."""
        if "event" in data:
            if data["event"] == "polled":
                self.ctx.polled.add(self.name)
            elif data["event"] == "not-idempotent":
                self.ctx.note(f"franz-go {data['name']} writes without idempotence: {data['why']}")
            return
        ctx = self.ctx
        if data["op_id"] != self.last_op[0]:
            self.last_op = (data["op_id"], ctx.recorder.next_op())
        data["op_id"] = self.last_op[1]
        ctx.recorder.record(**data)
        f = data["f"]
        if f == "send":
            if data["type"] == "ok":
                ctx.tracker.ack((data["producer"], data["seq"]), data["partition"], data["complete_ns"])
            else:
                ctx.tracker.done()
        elif f == "poll" and data["type"] == "ok":
            identities = [] if data["corrupt"] else [(data["producer"], data["seq"])]
            ctx.tracker.saw(identities, {data["partition"]: data["offset"]})
        elif f in ("assign", "revoke"):
            partitions = set(json.loads(data["detail"])["partitions"])
            owned = partitions if f == "assign" else ctx.owned.get(self.name, set()) - partitions  # assign: all held
            ctx.assigned(self.name, owned)


def _run(ctx: RunContext, role: str, index: int) -> None:
    run_program(ctx, role, index, [str(binary_path()), json.dumps(task(ctx, role, index))], "franz-go")


def run_program(ctx: RunContext, role: str, index: int, argv: list[str], library: str,
                feed: type[Feed] = Feed) -> None:
    """Run one client program speaking this program's protocol (also the Java client's) until the run stops it,
    its lines fed into the run by feed."""
    name = f"{role}-{index}"
    stop = ctx.stop_producers if role == "producer" else ctx.stop_consumers
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except Exception as exc:
        ctx.connect_failure(name, exc)
        return
    lines = feed(ctx, name)
    stopper = threading.Thread(target=_stop_when, args=(stop, proc), name=f"{name}-stop", daemon=True)
    stopper.start()
    try:
        for text in proc.stdout:
            lines.line(text)
    finally:
        with contextlib.suppress(Exception):
            proc.wait(STOP_TIMEOUT_S)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
            ctx.note(f"the {library} {name} did not stop within {STOP_TIMEOUT_S:.0f} s and was killed")
        if proc.returncode:
            ctx.note(f"the {library} {name} exited {proc.returncode}: {proc.stderr.read()[-300:]}")


def _stop_when(stop: threading.Event, proc: subprocess.Popen) -> None:
    """Tell the program to stop once the run says so (or stop waiting once it exited on its own)."""
    while not stop.wait(0.1):
        if proc.poll() is not None:
            return
    with contextlib.suppress(Exception):
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.stdin.close()


def run_producer(ctx: RunContext, index: int) -> None:
    try:
        _run(ctx, "producer", index)
    except Exception as exc:  # e.g. a profile the program cannot serve: recorded, the checks say why
        ctx.connect_failure(f"producer-{index}", exc)


def run_consumer(ctx: RunContext, index: int) -> None:
    try:
        _run(ctx, "consumer", index)
    except Exception as exc:
        ctx.connect_failure(f"consumer-{index}", exc)
