"""A recording producer: sends identified records (closed loop or at an open-loop rate) and records
every send with its outcome: ok at (partition, offset), fail (certainly not written) or info."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from k6suite_lib import clients
from k6suite_lib.history import encode_payload, now
from k6suite_lib.workload.config import error_text
from k6suite_lib.workload.context import RunContext

# Errors whose send certainly did not happen: the broker refuses deterministically.
DEFINITE_SEND_ERRORS = (TopicAuthorizationFailedError,)


Done = Callable[[int, int, int, str, str], None]  # complete_ns, partition, offset, type, error


class KafkaPythonSender:
    """kafka-python 3 behind the producer loop: its futures' callbacks run on the client's I/O thread."""

    library = "kafka-python"

    def __init__(self, ctx: RunContext, name: str) -> None:
        self.producer = kafka_python_producer(ctx, name)

    def send(self, topic: str, payload: bytes, key: bytes | None, partition: int | None, done: Done) -> None:
        future = self.producer.send(topic, value=payload, key=key, partition=partition)
        future.add_callback(lambda md: done(time.monotonic_ns(), md.partition, md.offset, "ok", ""))
        future.add_errback(lambda exc: done(time.monotonic_ns(), -1, -1, send_outcome(exc), error_text(exc)))

    def service(self) -> None:
        """Nothing to serve: kafka-python's I/O thread runs the callbacks."""

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self.producer.close(timeout=5)


def kafka_python_producer(ctx: RunContext, name: str) -> KafkaProducer:
    """A kafka-python producer given the workload's settings (those its history's metadata names, see
    config.client_settings), kept for metrics sampling."""
    config = ctx.config
    producer = clients.producer(
        ctx.profile, client_id=f"{ctx.run_id}-{name}", acks=config.acks,
        enable_idempotence=config.idempotent(ctx.profile), linger_ms=config.linger_ms,
        max_in_flight_requests_per_connection=config.max_in_flight,
        delivery_timeout_ms=int(config.delivery_timeout_s * 1000))
    ctx.register(name, producer)
    return producer


def send_outcome(exc: BaseException) -> str:
    """kafka-python: fail only when the broker refused deterministically; anything else may have landed."""
    return "fail" if isinstance(exc, DEFINITE_SEND_ERRORS) else "info"


def run_producer(ctx: RunContext, index: int) -> None:
    """One kafka-python producer thread (see producer_loop)."""
    name = f"producer-{index}"
    try:
        sender = KafkaPythonSender(ctx, name)
    except Exception as exc:
        ctx.connect_failure(name, exc)
        return
    producer_loop(ctx, index, sender)


def producer_loop(ctx: RunContext, index: int, sender) -> None:
    """One producer thread whatever its library: its share of the records (or until told to stop),
    then flush and close. sender: send/service/flush/close (KafkaPythonSender, rdkafka.Sender)."""
    config, name = ctx.config, f"producer-{index}"
    pending: dict[int, dict[str, Any]] = {}  # sends whose outcome is not known yet
    # The client's I/O thread only appends (op, completion time, partition, offset, type, error) here;
    # rows are built by this thread. Heavier callbacks slowed the I/O thread and every send with it.
    outcomes: list[tuple[int, int, int, int, str, str]] = []

    def settle(op: int, outcome: dict[str, Any]) -> None:
        base = pending.pop(op, None)
        if base is not None:
            ctx.recorder.record(**base, **outcome)
            if outcome["type"] == "ok":
                ctx.tracker.ack((base["producer"], base["seq"]), outcome["partition"], outcome["complete_ns"])
            else:
                ctx.tracker.done()

    def drain() -> None:
        sender.service()
        count = len(outcomes)
        batch = outcomes[:count]
        del outcomes[:count]  # appends racing with this land after index count
        for op, complete_ns, partition, offset, kind, error in batch:
            if kind == "ok":
                settle(op, {"type": "ok", "complete_ns": complete_ns, "partition": partition, "offset": offset})
            else:
                settle(op, {"type": kind, "complete_ns": complete_ns, "error": error})

    share = None
    if config.records is not None:
        share = config.records // config.producers + (1 if index < config.records % config.producers else 0)
    per_producer_rate = config.rate / config.producers if config.rate > 0 else 0.0
    start_ns = time.monotonic_ns()
    seq = 0
    slot = 0  # open loop: the next due send (sends skipped while blocked advance it, not seq)
    while not ctx.stop_producers.is_set() and (share is None or seq < share):
        intended = -1
        if per_producer_rate:
            intended = start_ns + int(slot * 1e9 / per_producer_rate)
            slot += 1
            wait = (intended - time.monotonic_ns()) / 1e9
            if wait > 0 and ctx.stop_producers.wait(wait):
                break
        payload, crc = encode_payload(ctx.run_id, name, seq, config.message_bytes)
        partition = None if config.keyed else (seq + index) % config.partitions
        key = name.encode() if config.keyed else None
        op = ctx.recorder.next_op()
        invoke_ns, wall_ns = now()
        pending[op] = {"op_id": op, "process": name, "f": "send", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
                       "topic": ctx.topic, "key": name if config.keyed else "", "producer": name,
                       "seq": seq, "checksum": crc, "value_len": len(payload), "intended_ns": intended}
        seq += 1
        try:
            sender.send(ctx.topic, payload, key, partition,
                        lambda t, p, o, kind, error, op=op: outcomes.append((op, t, p, o, kind, error)))
        except Exception as exc:  # raised before anything reached the network
            settle(op, {"type": "fail", "complete_ns": time.monotonic_ns(),
                        "partition": -1 if partition is None else partition, "error": error_text(exc)})
            continue
        if len(outcomes) >= 256:
            drain()
        if len(pending) > config.max_outstanding:
            deadline = time.monotonic() + config.delivery_timeout_s
            while (len(pending) > config.max_outstanding and time.monotonic() < deadline
                   and not ctx.stop_producers.is_set()):
                time.sleep(0.001)  # polling beats one Event wait per future (see benchmarks/)
                drain()
            if per_producer_rate:  # due sends that passed while blocked: offered, but never made
                slot = _record_blocked(ctx, name, start_ns, per_producer_rate, slot, len(pending))
    with contextlib.suppress(Exception):
        sender.flush(config.delivery_timeout_s)
    ctx.clients.pop(name, None)
    drain()
    with contextlib.suppress(Exception):
        sender.close()
    drain()
    for op in list(pending):
        settle(op, {"type": "info", "complete_ns": time.monotonic_ns(),
                    "error": "no outcome before the producer closed"})


def _record_blocked(ctx: RunContext, name: str, start_ns: int, rate: float, slot: int, outstanding: int) -> int:
    """One `blocked` row per send that fell due while the producer waited on max_outstanding (the
    target stopped acknowledging): a stall shows in the history as offers not made, and the rate
    offered outside the faults is judged on them too. Returns the next due slot (skipped ones are
    not sent late: an open-loop producer offers at its rate, it does not burst a backlog)."""
    due_until = time.monotonic_ns()
    _, wall = now()
    rows = []
    while start_ns + int(slot * 1e9 / rate) < due_until and not ctx.stop_producers.is_set():
        due = start_ns + int(slot * 1e9 / rate)
        rows.append({"op_id": ctx.recorder.next_op(), "process": name, "f": "blocked", "type": "fail",
                     "invoke_ns": due, "complete_ns": due_until, "wall_ns": wall - (due_until - due),
                     "topic": ctx.topic, "producer": name, "intended_ns": due,
                     "error": f"not sent: {outstanding} sends outstanding (max_outstanding)"})
        slot += 1
    ctx.recorder.record_many(rows)
    return slot
