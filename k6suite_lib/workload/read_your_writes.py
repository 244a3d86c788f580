"""Read-your-writes, a workload of its own: writers share one producer (one connection); after each
acknowledgement a writer reads its record back at the acknowledged offset with its own consumer,
then the next write follows. A final read-back reads the topic to its end afterwards."""

from __future__ import annotations

import contextlib
import threading
import time

from kafka import TopicPartition

from k6suite_lib import clients
from k6suite_lib.history import encode_payload, now
from k6suite_lib.profiles import Profile
from k6suite_lib.progress import Progress
from k6suite_lib.workload.config import WorkloadConfig, WorkloadResult, error_text
from k6suite_lib.workload.consumer import ConsumerSession, poll_once
from k6suite_lib.workload.context import RunContext
from k6suite_lib.workload.orchestrator import JOIN_TIMEOUT_S, result_of, workload_context
from k6suite_lib.workload.producer import kafka_python_producer
from k6suite_lib.workload.readback import read_back


def read_your_writes(profile: Profile, writers: int = 5, records_each: int = 20, run_id: str | None = None,
                     timeout_s: float = 10.0, label: str = "read-your-writes",
                     progress: Progress | None = None) -> WorkloadResult:
    # kafka-python whatever the profile's recording library: the history's metadata names the library and the
    # settings the shared producer ran with (a librdkafka profile once had it say librdkafka, not idempotent)
    config = WorkloadConfig(records=writers * records_each, producers=writers, consumers=0, consumer_mode="none",
                            client="kafka-python", label=label)
    ctx = workload_context(profile, config, run_id)
    started_wall, started = time.time(), time.monotonic()
    clients.create_topic(profile, ctx.topic, 1)
    shared = kafka_python_producer(ctx, "shared")
    threads = [threading.Thread(target=_writer, args=(ctx, shared, i, records_each, timeout_s), name=f"writer-{i}",
                                daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(records_each * timeout_s * 2 + JOIN_TIMEOUT_S)
        if thread.is_alive():
            ctx.note(f"{thread.name} did not finish in time")
    with contextlib.suppress(Exception):
        shared.close(timeout=5)
    ctx.phase("producers-stop")
    progress = progress or Progress(label, mode="quiet")
    progress.enter("read-back", expected_s=config.readback_timeout_s)
    read_back(ctx, progress)
    return result_of(ctx, started_wall, started)


def _writer(ctx: RunContext, shared, index: int, records_each: int, timeout_s: float) -> None:
    name = f"producer-{index}"
    tp = TopicPartition(ctx.topic, 0)
    try:
        reader = clients.consumer(ctx.profile, client_id=f"{ctx.run_id}-{name}-reader", group_id=None)
    except Exception as exc:
        ctx.connect_failure(name, exc)
        return
    session = ConsumerSession(name, reader)
    own_reads: set[tuple[str, int]] = set()  # identities this writer's own reader returned
    reader.assign([tp])
    try:
        for seq in range(records_each):
            payload, crc = encode_payload(ctx.run_id, name, seq, 128)
            op = ctx.recorder.next_op()
            invoke_ns, wall_ns = now()
            base = {"op_id": op, "process": name, "f": "send", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
                    "topic": ctx.topic, "producer": name, "seq": seq, "checksum": crc, "value_len": len(payload)}
            try:
                metadata = shared.send(ctx.topic, value=payload, partition=0).get(timeout=timeout_s)
            except Exception as exc:
                ctx.recorder.record(**base, type="info", complete_ns=time.monotonic_ns(), error=error_text(exc))
                continue
            ctx.recorder.record(**base, type="ok", complete_ns=time.monotonic_ns(), partition=0,
                                offset=metadata.offset)
            ctx.tracker.ack((name, seq), 0, time.monotonic_ns())
            session.epoch += 1  # a seek starts a new epoch: going back is not a regression
            reader.seek(tp, metadata.offset)
            deadline = time.monotonic() + timeout_s
            # Wait for THIS reader to return the record. ctx.tracker.read is shared by every writer: all
            # readers read the one partition, so another writer's reader often returns this record
            # before this thread even wakes from get() -- stopping on that skipped this writer's read
            # altogether, and own-reads (which counts reads by the writer's own process) reported it.
            while time.monotonic() < deadline and (name, seq) not in own_reads:
                result = poll_once(ctx, session)
                if result is not None:
                    ctx.tracker.saw(result.identities, result.highest)
                    own_reads.update(result.identities)
    finally:
        reader.close()
