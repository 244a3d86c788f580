"""The Java client (kafka-clients, the Kafka release's own) as a recording client: the Java program in
clients/java/, one JVM per producer or consumer, speaking the franz-go program's protocol (its task as one
JSON argument, history rows and events as JSON lines on stdout, "stop" on stdin), so franzgo.Feed feeds its
rows into the run.

The program is compiled with javac against the Kafka cache's jars (stack/kafka.install_kafka: kafka-clients,
its slf4j binding and log4j2, Jackson) into the cache, named by the content of clients/java/ (`k6suite stack
install` and bin/bootstrap build it), and runs with that folder and those jars as its classpath.

How the contract's request timeout maps onto kafka-clients (producer_options): `request.timeout.ms` is the
request timeout, as kafka-python's request_timeout_ms and librdkafka's request.timeout.ms; `delivery.timeout.ms` is the
workload's delivery timeout, as librdkafka's message.timeout.ms, but kafka-clients refuses a delivery timeout
below `linger.ms` + `request.timeout.ms` (ProducerConfig: "delivery.timeout.ms should be equal to or larger
than linger.ms + request.timeout.ms"), so it is raised to that sum where the workload's is shorter. A consumer
gets `request.timeout.ms` only. Everything else is kafka-clients' default (idempotence, acks=all, 5 requests in
flight, linger 5 ms, retries bounded by the delivery timeout, `max.block.ms` 60 s: how long send() waits for
the topic's metadata). A history's metadata records these options ("client_options"). `max.block.ms` was the
request timeout at first, as kafka-python's max_block_ms: in S3 calibration runs 20261205T011916-479d and
20261205T012201-aa9f (load average 20-23, five producer JVMs starting at once) the first send of 2-3 producers per
workload failed after 4 s with "Topic ... not present in metadata after 4000 ms" on a topic that existed: a
failure of that setting under load, which a user with the default does not meet.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from k6suite_lib import clients
from k6suite_lib.stack.layout import REPO_ROOT
from k6suite_lib.workload import franzgo
from k6suite_lib.workload.context import RunContext

KAFKA_CLIENTS_VERSION = "4.1.1"  # the Kafka cache's kafka-clients jar (stack/kafka.KAFKA_VERSION)
SOURCE = REPO_ROOT / "clients" / "java"
MAIN_CLASS = "K6SuiteJavaClient"
LINGER_MS = 5  # kafka-clients 4.x's default linger.ms (KIP-1030), which bounds the delivery timeout from below
BUILD_TIMEOUT_S = 300
# JVM settings, not client settings: a small heap and the serial collector for a short-lived client on a
# machine shared with the systems under test; the JVM's own messages (unified logging, whose default output is
# stdout: "[warning][pagesize] ...", "[warning][os,thread] Failed to start thread ...", and VM output) go to
# stderr, since stdout carries rows only (a stray line there becomes a client-log row: franzgo.Feed.line)
JVM_OPTIONS = ("-XX:+UseSerialGC", "-Xms32m", "-Xmx256m",
               "-Xlog:disable", "-Xlog:all=warning:stderr", "-XX:+DisplayVMOutputToStderr")


def source_key() -> str:
    """A hash of the program's sources and the kafka-clients version: its class folder's name in the cache."""
    digest = hashlib.sha256(KAFKA_CLIENTS_VERSION.encode())
    for path in sorted(SOURCE.glob("*.java")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def classes_path() -> Path:
    from k6suite_lib.stack.binaries import cache_dir

    return cache_dir() / f"k6suite-java-{source_key()}"


def libs() -> Path:
    from k6suite_lib.stack.kafka import kafka_home

    return kafka_home(KAFKA_CLIENTS_VERSION) / "libs"


def install(log=print) -> Path:
    """Compile the program into the cache unless its current sources are compiled already (the Kafka jars it
    compiles against are fetched first when missing)."""
    from k6suite_lib.stack.binaries import BinaryError
    from k6suite_lib.stack.kafka import install_kafka

    path = classes_path()
    if (path / f"{MAIN_CLASS}.class").is_file():
        log(f"java client (kafka-clients {KAFKA_CLIENTS_VERSION}): cached at {path}")
        return path
    if shutil.which("javac") is None:
        raise BinaryError("javac (a Java 17 JDK) is not on PATH; it is needed to build the Java client")
    install_kafka(KAFKA_CLIENTS_VERSION, log)
    log(f"java client (kafka-clients {KAFKA_CLIENTS_VERSION}): compiling {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="k6suite-java-", dir=path.parent) as tmp:
        built = Path(tmp) / "classes"
        proc = subprocess.run(["javac", "-nowarn", "-cp", f"{libs()}/*", "-d", str(built),
                               *map(str, sorted(SOURCE.glob("*.java")))],
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if proc.returncode != 0:
            raise BinaryError(f"compiling the Java client failed:\n{proc.stderr[-2000:]}")
        built.rename(path)
    return path


def command(task: dict[str, Any]) -> list[str]:
    """The program's command line for one task."""
    return ["java", *JVM_OPTIONS, "-cp", f"{classes_path()}:{libs()}/*", MAIN_CLASS, json.dumps(task)]


def producer_options(request_timeout_ms: int, delivery_timeout_s: float) -> dict[str, int]:
    """The kafka-clients producer settings the suite derives from the contract (the module says why)."""
    return {"request.timeout.ms": request_timeout_ms,
            "delivery.timeout.ms": max(int(delivery_timeout_s * 1000), request_timeout_ms + LINGER_MS)}


def client_options(ctx: RunContext) -> dict[str, int]:
    return producer_options(ctx.profile.client.request_timeout_ms, ctx.config.delivery_timeout_s)


def task(ctx: RunContext, role: str, index: int) -> dict[str, Any]:
    """The franz-go program's task (the same fields), with kafka-clients' options instead of franz-go's."""
    if ctx.profile.client.security_protocol != "PLAINTEXT":
        raise ValueError("the Java client speaks PLAINTEXT only (S8 and TLS use kafka-python)")
    given = franzgo.task(ctx, role, index)
    given.pop("auto_create")  # kafka-clients producers ask for auto-creation by default
    given["options"] = (client_options(ctx) if role == "producer"
                        else {"request.timeout.ms": ctx.profile.client.request_timeout_ms})
    return given


# kafka-clients' Sender warning for a produce batch it re-enqueues after a retriable error (a request timeout
# comes as NETWORK_EXCEPTION "Disconnected from node N due to timeout"): "[Producer clientId=<run>-<producer>] Got
# error produce response with correlation id C on topic-partition <topic>-<partition>, retrying (N attempts left).
# Error: E" (or "in correlation id ..., splitting and retrying" for a batch split because it was too large)
RETRYING = re.compile(r"\[Producer clientId=(\S+)\] Got error produce response (?:with|in) correlation id \d+ "
                      r"on topic-partition (\S+)-(\d+), (?:splitting and )?retrying")


# kafka-clients' default batch.size (ProducerConfig; the suite does not set it): a batch takes no record that would
# carry it past this many bytes (MemoryRecordsBuilder.hasRoomFor; its first record always fits), compression off
BATCH_SIZE_BYTES = 16384
BATCH_HEADER_BYTES = 61  # DefaultRecordBatch.RECORD_BATCH_OVERHEAD
RECORD_OVERHEAD_BYTES = 7  # a DefaultRecord's least framing: length, attributes, deltas, key and value lengths, headers


def batch_bound(message_bytes: int) -> int:
    """How many records one failed kafka-clients batch can have held at most, from the least size each takes (its
    value plus the least framing). The Sender's warning names no count, so this is what a retry row can honestly
    claim (checkers/anomalies.batch_size)."""
    return max(1, (BATCH_SIZE_BYTES - BATCH_HEADER_BYTES) // (message_bytes + RECORD_OVERHEAD_BYTES))


class RetryFeed(franzgo.Feed):
    """The Java program's lines into the run, and for each client-log row that is its producer's sender
    re-enqueueing a batch of the workload's topic, a retry row of that producer and partition at the same moment
    (docs/history-format.md, "Retry rows"), as kafka-python's ClientLog does for its sender's log record, with the
    most records the batch can have held as `messages` (batch_bound)."""

    def take(self, data: dict[str, Any]) -> None:
        super().take(data)
        if data.get("f") != "client-log":
            return
        retrying = RETRYING.search(data["error"])
        if retrying is None or retrying.group(1) != f"{self.ctx.run_id}-{self.name}" \
                or retrying.group(2) != self.ctx.topic:
            return
        self.ctx.recorder.record(op_id=self.ctx.recorder.next_op(), process=self.name, f="retry", type="info",
                                 invoke_ns=data["invoke_ns"], complete_ns=data["complete_ns"],
                                 wall_ns=data["wall_ns"], producer=self.name, topic=self.ctx.topic,
                                 partition=int(retrying.group(3)), error=data["error"],
                                 detail=json.dumps({"messages": batch_bound(self.ctx.config.message_bytes)}))


def _run(ctx: RunContext, role: str, index: int) -> None:
    caps = clients.version_caps(ctx.profile)
    unapplied = f"kafka-clients cannot cap one API's version: the caps {caps} are recorded, not applied"
    if caps and unapplied not in ctx.notes:
        ctx.note(unapplied)
    franzgo.run_program(ctx, role, index, command(task(ctx, role, index)), "Java", RetryFeed)


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
