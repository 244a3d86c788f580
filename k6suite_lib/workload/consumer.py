"""A recording consumer: reads by direct assignment or through a consumer group, recording every
record it sees, every assignment and revocation, and every commit."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from k6suite_lib import clients
from k6suite_lib.history import decode_payload, now
from k6suite_lib.workload.config import error_text
from k6suite_lib.workload.context import RunContext

POLL_MS = 200


@dataclass
class ConsumerSession:
    """One consumer client and its assignment epoch: offsets are compared only within one epoch."""

    name: str
    consumer: KafkaConsumer
    epoch: int = 0
    closing: bool = False  # the revocation close() triggers is shutdown, not a rebalance
    group: bool = False


@dataclass
class PollResult:
    """What one successful poll read: identities of intact records and the highest offset per partition."""

    identities: list[tuple[str, int]] = field(default_factory=list)
    highest: dict[int, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return len(self.identities)


def record_assignment(ctx: RunContext, session: ConsumerSession, kind: str, partitions: list[int]) -> None:
    if kind == "assign":
        session.epoch += 1
    t_ns, wall = now()
    ctx.recorder.record(op_id=ctx.recorder.next_op(), process=session.name, f=kind, type="ok", invoke_ns=t_ns,
                        complete_ns=t_ns, wall_ns=wall, topic=ctx.topic, session=session.epoch,
                        detail=json.dumps({"partitions": sorted(partitions), "group": session.group}))


def poll_once(ctx: RunContext, session: ConsumerSession) -> PollResult | None:
    """One poll, recorded; None when the poll itself failed (recorded as an info row)."""
    op = ctx.recorder.next_op()
    invoke_ns, wall_ns = now()
    try:
        batch = session.consumer.poll(timeout_ms=POLL_MS)
    except Exception as exc:
        ctx.recorder.record(op_id=op, process=session.name, f="poll", type="info", invoke_ns=invoke_ns,
                            complete_ns=time.monotonic_ns(), wall_ns=wall_ns, topic=ctx.topic,
                            session=session.epoch, error=error_text(exc))
        return None
    complete_ns = time.monotonic_ns()
    rows, result = [], PollResult()
    for tp, records in batch.items():
        for record in records:
            identity = decode_payload(record.value)
            rows.append({
                "op_id": op, "process": session.name, "f": "poll", "type": "ok", "invoke_ns": invoke_ns,
                "complete_ns": complete_ns, "wall_ns": wall_ns, "topic": tp.topic,
                "partition": tp.partition, "offset": record.offset,
                "key": record.key.decode(errors="replace") if record.key else "",
                "producer": identity["producer"], "seq": identity["seq"],
                "checksum": identity["checksum"], "corrupt": identity["corrupt"],
                "record_run": identity["run_id"], "value_len": len(record.value or b""), "session": session.epoch,
            })
            if not identity["corrupt"]:
                result.identities.append((identity["producer"], identity["seq"]))
            result.highest[tp.partition] = max(result.highest.get(tp.partition, -1), record.offset)
    if rows:
        ctx.recorder.record_many(rows)
    return result


def commit(ctx: RunContext, session: ConsumerSession) -> None:
    """A synchronous commit of the current positions, recorded with the offsets it committed."""
    op = ctx.recorder.next_op()
    invoke_ns, wall_ns = now()
    base = {"op_id": op, "process": session.name, "f": "commit", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
            "topic": ctx.topic, "session": session.epoch}
    consumer = session.consumer
    try:
        positions = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
        consumer.commit()
    except Exception as exc:
        ctx.recorder.record(**base, type="info", complete_ns=time.monotonic_ns(), error=error_text(exc))
        return
    ctx.recorder.record(**base, type="ok", complete_ns=time.monotonic_ns(), detail=json.dumps({"offsets": positions}))


class GroupListener(ConsumerRebalanceListener):
    """Records every revocation and assignment the group protocol hands this consumer."""

    def __init__(self, ctx: RunContext, session: ConsumerSession):
        self.ctx, self.session = ctx, session

    def on_partitions_revoked(self, revoked) -> None:
        self.ctx.assigned(self.session.name, self.ctx.owned.get(self.session.name, set())
                          - {tp.partition for tp in revoked})
        if not self.session.closing:
            record_assignment(self.ctx, self.session, "revoke", [tp.partition for tp in revoked])

    def on_partitions_assigned(self, assigned) -> None:
        self.ctx.assigned(self.session.name, {tp.partition for tp in assigned})
        if not self.session.closing:
            record_assignment(self.ctx, self.session, "assign", [tp.partition for tp in assigned])


def lane(ctx: RunContext, index: int) -> list[int]:
    """Partitions a directly-assigned consumer reads: consumers split the partitions round-robin."""
    lanes = min(ctx.config.consumers, ctx.config.partitions)
    return [p for p in range(ctx.config.partitions) if p % lanes == index % lanes]


def open_consumer(ctx: RunContext, name: str) -> KafkaConsumer:
    """A live consumer; a group member runs with kafka-python's session timeout and heartbeat interval unless the
    workload sets them (WorkloadConfig.group_settings), and says which it got (ctx.group_session): kafka-python
    picks its default session by the broker version it finds (30 s below 3.0, else 45 s)."""
    config = ctx.config
    consumer = clients.consumer(ctx.profile, client_id=f"{ctx.run_id}-{name}", group_id=config.group_id,
                                **config.group_settings())
    if config.consumer_mode == "group":
        ctx.group_session = {key: consumer.config[key] for key in ("session_timeout_ms", "heartbeat_interval_ms")}
    return consumer


def run_consumer(ctx: RunContext, index: int) -> None:
    """One live consumer thread: poll (and commit, in a group) until told to stop."""
    config, name = ctx.config, f"consumer-{index}"
    try:
        consumer = open_consumer(ctx, name)
    except Exception as exc:
        ctx.connect_failure(name, exc)
        return
    session = ConsumerSession(name, consumer, group=config.consumer_mode == "group")
    ctx.register(name, consumer)
    try:
        if session.group:
            _await_partitions(ctx, consumer)
            consumer.subscribe([ctx.topic], listener=GroupListener(ctx, session))
        else:
            partitions = [TopicPartition(ctx.topic, p) for p in lane(ctx, index)]
            record_assignment(ctx, session, "assign", [tp.partition for tp in partitions])
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ctx.assigned(name, {tp.partition for tp in partitions})
        _poll_loop(ctx, session, ctx.stop_consumers, commit_after_poll=session.group and config.commit)
    finally:
        session.closing = True
        ctx.clients.pop(name, None)
        with contextlib.suppress(Exception):
            consumer.close()


METADATA_WAIT_S = 10.0


def _await_partitions(ctx: RunContext, consumer: KafkaConsumer) -> None:
    """Until this client's own metadata lists every partition of the topic (bounded). A member that
    leads the group's assignment assigns only the partitions its metadata knows: joining earlier left
    partitions unowned until the next metadata refresh, which then rebalanced the group (seen on Kafka
    under faults, counted against the system)."""
    deadline = time.monotonic() + METADATA_WAIT_S
    while len(consumer.partitions_for_topic(ctx.topic)) < ctx.config.partitions:
        if time.monotonic() > deadline:
            ctx.note(f"a consumer's metadata did not list all {ctx.config.partitions} partitions of {ctx.topic} "
                     f"within {METADATA_WAIT_S:.0f} s; it joined the group anyway")
            return
        time.sleep(0.1)
        consumer.topics()  # a fresh metadata request: the cached topic may list too few partitions


def _poll_loop(ctx: RunContext, session: ConsumerSession, stop: threading.Event, commit_after_poll: bool) -> None:
    while not stop.is_set():
        if len(ctx.recorder) > ctx.config.max_history_rows:
            ctx.note(f"live consumers stopped early: the history passed {ctx.config.max_history_rows:,} rows")
            stop.set()
            break
        result = poll_once(ctx, session)
        if result is None:
            stop.wait(POLL_MS / 1000)
            continue
        ctx.polled.add(session.name)
        if result.highest:
            ctx.tracker.saw(result.identities, result.highest)
            if commit_after_poll and session.consumer.assignment():
                commit(ctx, session)
