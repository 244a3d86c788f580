"""Workloads: producers and consumers that run at the same time and record a history.

Producers send identified records (see history.encode_payload) closed-loop or at an open-loop
target rate; consumers read by direct assignment or through a consumer group, recording every
record they see, every assignment and every commit. When producers stop, consumers get a grace
period to catch up; then a final read-back assigns every partition from the beginning and reads
until every acknowledged record is seen or a deadline passes. Every network wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd
from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import TopicAuthorizationFailedError
from tqdm import tqdm

from k6suite_lib import clients
from k6suite_lib.history import Recorder, decode_payload, encode_payload, now
from k6suite_lib.profiles import Profile

POLL_MS = 200
JOIN_TIMEOUT_S = 30.0
# Errors whose send certainly did not happen: the broker refuses deterministically.
DEFINITE_SEND_ERRORS = (TopicAuthorizationFailedError,)
Nemesis = Callable[[Recorder, threading.Event], None]


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class WorkloadConfig:
    producers: int = 1
    consumers: int = 1
    consumer_mode: str = "assign"  # assign | group | none
    partitions: int = 1
    records: int | None = 500  # total over all producers; None: run for duration_s
    duration_s: float | None = None
    rate: float = 0.0  # total sends per second; 0 = closed loop
    acks: str | int = "all"
    idempotence: bool | None = None  # None: the profile's setting
    linger_ms: int = 0
    max_in_flight: int = 1
    message_bytes: int = 128
    keyed: bool = False  # True: key = producer id (hash partitioning); False: explicit round-robin
    max_outstanding: int = 1000  # per producer: unacknowledged sends before send() waits for the oldest
    topic: str | None = None  # default: a fresh topic per run
    create_topic: bool = True
    group_id: str | None = None
    commit: bool = True  # group mode: commit synchronously after every non-empty poll
    consume_grace_s: float = 20.0
    readback: bool = True
    readback_timeout_s: float = 30.0
    delivery_timeout_s: float = 30.0
    client_metrics_s: float = 0.0  # > 0: record each client's connection totals and metadata view this often
    # > 0: producers start only once every consumer has finished a poll (waiting at most this long),
    # so live reading overlaps producing by construction rather than by luck
    await_consumers_s: float = 0.0
    # A target that keeps resetting consumers to offset 0 can make live reads grow without bound; past
    # this many history rows live consumers stop (noted in the result) so the machine's memory holds.
    max_history_rows: int = 5_000_000
    progress: bool = True
    label: str = "workload"

    def __post_init__(self) -> None:
        if self.consumer_mode not in ("assign", "group", "none"):
            raise ValueError(f"consumer_mode must be assign, group or none, got {self.consumer_mode!r}")
        if (self.records is None) == (self.duration_s is None):
            raise ValueError("give exactly one of records and duration_s")
        if self.producers < 1 or self.partitions < 1 or self.consumers < 0:
            raise ValueError("need at least one producer and one partition")

    def idempotent(self, profile: Profile) -> bool:
        return profile.client.idempotence if self.idempotence is None else self.idempotence


@dataclass
class WorkloadResult:
    run_id: str
    topic: str
    config: WorkloadConfig
    history: pd.DataFrame
    profile: str
    idempotent: bool
    started_wall: float
    duration_s: float
    notes: list[str] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        """What travels with a saved history so it can be re-checked with the same rules."""
        return {"run_id": self.run_id, "topic": self.topic, "profile": self.profile,
                "config": asdict(self.config), "idempotent": self.idempotent, "started_wall": self.started_wall,
                "duration_s": self.duration_s, "notes": self.notes,
                "version_caps": clients.active_version_caps()}


class _Tracker:
    """Live bookkeeping for the coordinator: which identities are acked and which were read.

    Set updates and list appends are atomic in CPython, so client threads share these without a lock.
    """

    def __init__(self) -> None:
        self.acked: set[tuple[str, int]] = set()
        self.read: set[tuple[str, int]] = set()
        self._completed: list[None] = []

    @property
    def completed(self) -> int:
        return len(self._completed)

    def ack(self, ident: tuple[str, int]) -> None:
        self.acked.add(ident)
        self._completed.append(None)

    def done(self) -> None:
        self._completed.append(None)

    def saw(self, idents: list[tuple[str, int]]) -> None:
        self.read.update(idents)

    def unseen(self) -> int:
        return len(self.acked - self.read)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class _ClientLog(logging.Handler):
    """kafka-python's own warnings (retries, offset resets, disconnects) as history rows: errors the
    client handled itself never reach a send's outcome, so this is where "retried" errors show."""

    def __init__(self, recorder: Recorder):
        super().__init__(logging.WARNING)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        t_ns, wall = now()
        self.recorder.record(op_id=self.recorder.next_op(), process="client-log", f="client-log", type="info",
                             invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall,
                             error=f"{record.levelname} {record.name}: {record.getMessage()}"[:500],
                             detail=json.dumps({"logger": record.name, "level": record.levelname}))


class Workload:
    """One run of producers and consumers against a profile's target."""

    def __init__(self, profile: Profile, config: WorkloadConfig, run_id: str | None = None,
                 nemesis: Nemesis | None = None):
        self.profile = profile
        self.run_id = run_id or new_run_id()
        topic = config.topic or re.sub(r"[^A-Za-z0-9._-]", "-", f"k6s-{self.run_id}-{config.label}")
        group = config.group_id or (topic if config.consumer_mode == "group" else None)
        self.config = replace(config, topic=topic, group_id=group)
        self.topic = topic
        self.nemesis = nemesis
        self.recorder = Recorder(self.run_id)
        self.tracker = _Tracker()
        self.stop_producers = threading.Event()
        self.stop_consumers = threading.Event()
        self.stop_nemesis = threading.Event()
        self.notes: list[str] = []
        self._polled: set[str] = set()  # consumers that finished at least one poll
        self._clients: dict[str, Any] = {}  # live producers and consumers, for client metrics

    # ----------------------------------------------------------------- driver
    def run(self) -> WorkloadResult:
        client_log = _ClientLog(self.recorder)
        logging.getLogger("kafka").addHandler(client_log)
        try:
            return self._run()
        finally:
            logging.getLogger("kafka").removeHandler(client_log)

    def _run(self) -> WorkloadResult:
        config = self.config
        started_wall, started = time.time(), time.monotonic()
        if config.create_topic:
            try:
                clients.create_topic(self.profile, self.topic, config.partitions)
            except Exception as exc:  # recorded: the checker will find no acked sends and say why
                self._connect_failure("admin", exc)
        consumers = [threading.Thread(target=self._consume, args=(i,), name=f"consumer-{i}", daemon=True)
                     for i in range(config.consumers if config.consumer_mode != "none" else 0)]
        producers = [threading.Thread(target=self._produce, args=(i,), name=f"producer-{i}", daemon=True)
                     for i in range(config.producers)]
        for thread in consumers:
            thread.start()
        if consumers and config.await_consumers_s > 0:
            self._await_consumers(len(consumers))
        for thread in producers:
            thread.start()
        sampler = None
        if config.client_metrics_s > 0:
            sampler = threading.Thread(target=self._sample_clients, name="client-metrics", daemon=True)
            sampler.start()
        nemesis = None
        if self.nemesis is not None:
            nemesis = threading.Thread(target=self.nemesis, args=(self.recorder, self.stop_nemesis),
                                       name="nemesis", daemon=True)
            nemesis.start()
        self._wait_producers(producers, started)
        if nemesis is not None:
            self.stop_nemesis.set()
            nemesis.join(JOIN_TIMEOUT_S * 4)
            if nemesis.is_alive():
                self.notes.append("the nemesis did not finish within its join timeout")
        self._wait_consumers(consumers)
        if sampler is not None:
            sampler.join(JOIN_TIMEOUT_S)
        if config.readback and self.tracker.acked:
            self._readback()
        return WorkloadResult(run_id=self.run_id, topic=self.topic, config=config,
                              history=self.recorder.frame(), profile=self.profile.name,
                              idempotent=config.idempotent(self.profile),
                              started_wall=started_wall, duration_s=time.monotonic() - started, notes=self.notes)

    def _wait_producers(self, producers: list[threading.Thread], started: float) -> None:
        config = self.config
        total = config.records
        bar = tqdm(total=total, desc="sends completed", unit="op", disable=not config.progress, mininterval=1.0)
        limit = (config.duration_s or 0) + config.delivery_timeout_s + JOIN_TIMEOUT_S * 2
        deadline = time.monotonic() + limit + (total or 0) * 0.05
        last = 0
        while any(t.is_alive() for t in producers) and time.monotonic() < deadline:
            if config.duration_s is not None and time.monotonic() - started >= config.duration_s:
                self.stop_producers.set()
            time.sleep(0.2)
            completed = self.tracker.completed
            bar.update(completed - last)
            last = completed
        bar.close()
        self.stop_producers.set()
        for thread in producers:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                self.notes.append(f"{thread.name} did not stop within {JOIN_TIMEOUT_S:.0f} s")

    def _await_consumers(self, expected: int) -> None:
        deadline = time.monotonic() + self.config.await_consumers_s
        while len(self._polled) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = len(self._polled)
        self._phase("consumers-ready", ready=ready, expected=expected)
        if ready < expected:
            self.notes.append(f"only {ready} of {expected} consumers had polled after "
                              f"{self.config.await_consumers_s:.0f} s; producers started anyway")

    def _wait_consumers(self, consumers: list[threading.Thread]) -> None:
        deadline = time.monotonic() + self.config.consume_grace_s
        while consumers and time.monotonic() < deadline and self.tracker.unseen() > 0:
            time.sleep(0.2)
        self._phase("consumers-stop")
        self.stop_consumers.set()
        for thread in consumers:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                self.notes.append(f"{thread.name} did not stop within {JOIN_TIMEOUT_S:.0f} s")

    def _register(self, name: str, client) -> None:
        if self.config.client_metrics_s > 0:
            clients.count_connections(client)
            self._clients[name] = client

    def _sample_clients(self) -> None:
        """Until consumers stop: one client-metrics row per live client every client_metrics_s."""
        while not self.stop_consumers.wait(self.config.client_metrics_s):
            for name, client in list(self._clients.items()):
                t_ns, wall = now()
                try:
                    detail = json.dumps(clients.client_view(client))
                except Exception as exc:  # a closing client; the next sample will not include it
                    detail = json.dumps({"error": _error(exc)})
                self.recorder.record(op_id=self.recorder.next_op(), process=name, f="client-metrics", type="ok",
                                     invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall, detail=detail)

    def _phase(self, phase: str, **detail: Any) -> None:
        """A marker row: what happens after it (e.g. revocations as members leave) is shutdown."""
        t_ns, wall = now()
        self.recorder.record(op_id=self.recorder.next_op(), process="workload", f="phase", type="ok",
                             invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall,
                             detail=json.dumps({"phase": phase, **detail}))

    def _connect_failure(self, process: str, exc: BaseException) -> None:
        t_ns, wall = now()
        self.recorder.record(op_id=self.recorder.next_op(), process=process, f="connect", type="fail",
                             invoke_ns=t_ns, complete_ns=time.monotonic_ns(), wall_ns=wall, error=_error(exc))
        self.notes.append(f"{process} could not connect: {_error(exc)}")

    # ----------------------------------------------------------------- producers
    def _produce(self, index: int) -> None:
        config, name = self.config, f"producer-{index}"
        try:
            producer = clients.producer(
                self.profile, client_id=f"{self.run_id}-{name}", acks=config.acks,
                enable_idempotence=config.idempotent(self.profile), linger_ms=config.linger_ms,
                max_in_flight_requests_per_connection=config.max_in_flight,
                delivery_timeout_ms=int(config.delivery_timeout_s * 1000))
        except Exception as exc:
            self._connect_failure(name, exc)
            return
        self._register(name, producer)
        pending: dict[int, dict[str, Any]] = {}  # sends whose outcome is not known yet
        # The client's I/O thread only appends (op, completion time, metadata, error) here; rows are
        # built by this thread. Heavier callbacks slowed the I/O thread and every send with it.
        outcomes: list[tuple[int, int, Any, BaseException | None]] = []

        def settle(op: int, outcome: dict[str, Any]) -> None:
            base = pending.pop(op, None)
            if base is not None:
                self.recorder.record(**base, **outcome)
                if outcome["type"] == "ok":
                    self.tracker.ack((base["producer"], base["seq"]))
                else:
                    self.tracker.done()

        def drain() -> None:
            count = len(outcomes)
            batch = outcomes[:count]
            del outcomes[:count]  # appends racing with this land after index count
            for op, complete_ns, metadata, exc in batch:
                if exc is None:
                    settle(op, {"type": "ok", "complete_ns": complete_ns, "partition": metadata.partition,
                                "offset": metadata.offset})
                else:
                    outcome = "fail" if isinstance(exc, DEFINITE_SEND_ERRORS) else "info"
                    settle(op, {"type": outcome, "complete_ns": complete_ns, "error": _error(exc)})

        share = None
        if config.records is not None:
            share = config.records // config.producers + (1 if index < config.records % config.producers else 0)
        per_producer_rate = config.rate / config.producers if config.rate > 0 else 0.0
        start_ns = time.monotonic_ns()
        seq = 0
        while not self.stop_producers.is_set() and (share is None or seq < share):
            intended = -1
            if per_producer_rate:
                intended = start_ns + int(seq * 1e9 / per_producer_rate)
                wait = (intended - time.monotonic_ns()) / 1e9
                if wait > 0 and self.stop_producers.wait(wait):
                    break
            payload, crc = encode_payload(self.run_id, name, seq, config.message_bytes)
            partition = None if config.keyed else (seq + index) % config.partitions
            key = name.encode() if config.keyed else None
            op = self.recorder.next_op()
            invoke_ns, wall_ns = now()
            pending[op] = {"op_id": op, "process": name, "f": "send", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
                           "topic": self.topic, "key": name if config.keyed else "", "producer": name,
                           "seq": seq, "checksum": crc, "value_len": len(payload), "intended_ns": intended}
            seq += 1
            try:
                future = producer.send(self.topic, value=payload, key=key, partition=partition)
            except Exception as exc:  # raised before anything reached the network
                settle(op, {"type": "fail", "complete_ns": time.monotonic_ns(),
                            "partition": -1 if partition is None else partition, "error": _error(exc)})
                continue
            future.add_callback(lambda metadata, op=op: outcomes.append((op, time.monotonic_ns(), metadata, None)))
            future.add_errback(lambda exc, op=op: outcomes.append((op, time.monotonic_ns(), None, exc)))
            if len(outcomes) >= 256:
                drain()
            if len(pending) > config.max_outstanding:
                deadline = time.monotonic() + config.delivery_timeout_s
                while len(pending) > config.max_outstanding and time.monotonic() < deadline:
                    time.sleep(0.001)  # polling beats one Event wait per future (see benchmarks/)
                    drain()
        with contextlib.suppress(Exception):
            producer.flush(timeout=config.delivery_timeout_s)
        self._clients.pop(name, None)
        with contextlib.suppress(Exception):
            producer.close(timeout=5)
        drain()
        for op in list(pending):
            settle(op, {"type": "info", "complete_ns": time.monotonic_ns(),
                        "error": "no outcome before the producer closed"})

    # ----------------------------------------------------------------- consumers
    def _my_partitions(self, index: int) -> list[int]:
        lanes = min(self.config.consumers, self.config.partitions)
        return [p for p in range(self.config.partitions) if p % lanes == index % lanes]

    def _consume(self, index: int) -> None:
        config, name = self.config, f"consumer-{index}"
        try:
            consumer = clients.consumer(self.profile, client_id=f"{self.run_id}-{name}", group_id=config.group_id,
                                        session_timeout_ms=10000, heartbeat_interval_ms=1000)
        except Exception as exc:
            self._connect_failure(name, exc)
            return
        self._register(name, consumer)
        state = {"session": 0}
        try:
            if config.consumer_mode == "group":
                consumer.subscribe([self.topic], listener=_GroupListener(self, name, state))
            else:
                partitions = [TopicPartition(self.topic, p) for p in self._my_partitions(index)]
                self._record_assignment(name, "assign", [tp.partition for tp in partitions], state)
                consumer.assign(partitions)
                consumer.seek_to_beginning(*partitions)
            self._poll_loop(consumer, name, state, self.stop_consumers,
                            commit=config.consumer_mode == "group" and config.commit)
        finally:
            state["closing"] = 1  # the revocation that close() triggers is shutdown, not a rebalance
            self._clients.pop(name, None)
            with contextlib.suppress(Exception):
                consumer.close()

    def _record_assignment(self, name: str, kind: str, partitions: list[int], state: dict[str, int]) -> None:
        if kind == "assign":
            state["session"] += 1
        t_ns, wall = now()
        self.recorder.record(op_id=self.recorder.next_op(), process=name, f=kind, type="ok", invoke_ns=t_ns,
                             complete_ns=t_ns, wall_ns=wall, topic=self.topic, session=state["session"],
                             detail=json.dumps({"partitions": sorted(partitions)}))

    def _poll_loop(self, consumer, name: str, state: dict[str, int], stop: threading.Event,
                   commit: bool = False) -> None:
        while not stop.is_set():
            if len(self.recorder) > self.config.max_history_rows:
                note = f"live consumers stopped early: the history passed {self.config.max_history_rows:,} rows"
                if note not in self.notes:
                    self.notes.append(note)
                stop.set()
                break
            if self._poll_once(consumer, name, state) is None:
                stop.wait(POLL_MS / 1000)
                continue
            self._polled.add(name)
            if commit and consumer.assignment():
                self._commit(consumer, name, state)

    def _poll_once(self, consumer, name: str, state: dict[str, int]) -> list[tuple[str, int]] | None:
        """One poll, recorded; returns the identities read (None when the poll itself failed)."""
        op = self.recorder.next_op()
        invoke_ns, wall_ns = now()
        try:
            batch = consumer.poll(timeout_ms=POLL_MS)
        except Exception as exc:
            self.recorder.record(op_id=op, process=name, f="poll", type="info", invoke_ns=invoke_ns,
                                 complete_ns=time.monotonic_ns(), wall_ns=wall_ns, topic=self.topic,
                                 session=state["session"], error=_error(exc))
            return None
        complete_ns = time.monotonic_ns()
        rows, idents = [], []
        for tp, records in batch.items():
            for record in records:
                identity = decode_payload(record.value)
                rows.append({
                    "op_id": op, "process": name, "f": "poll", "type": "ok", "invoke_ns": invoke_ns,
                    "complete_ns": complete_ns, "wall_ns": wall_ns, "topic": tp.topic,
                    "partition": tp.partition, "offset": record.offset,
                    "key": record.key.decode(errors="replace") if record.key else "",
                    "producer": identity["producer"], "seq": identity["seq"],
                    "checksum": identity["checksum"], "corrupt": identity["corrupt"],
                    "value_len": len(record.value or b""), "session": state["session"],
                })
                if not identity["corrupt"]:
                    idents.append((identity["producer"], identity["seq"]))
        if rows:
            self.recorder.record_many(rows)
            self.tracker.saw(idents)
        return idents

    def _commit(self, consumer, name: str, state: dict[str, int]) -> None:
        op = self.recorder.next_op()
        invoke_ns, wall_ns = now()
        base = {"op_id": op, "process": name, "f": "commit", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
                "topic": self.topic, "session": state["session"]}
        try:
            positions = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
            consumer.commit()
        except Exception as exc:
            self.recorder.record(**base, type="info", complete_ns=time.monotonic_ns(), error=_error(exc))
            return
        self.recorder.record(**base, type="ok", complete_ns=time.monotonic_ns(),
                             detail=json.dumps({"offsets": positions}))

    # ----------------------------------------------------------------- final read-back
    def _readback(self) -> None:
        """Read every partition from the beginning until each acked record is seen, the end of
        every partition is reached with nothing new for 2 s, or readback_timeout_s passes."""
        config, name = self.config, "readback"
        wanted = set(self.tracker.acked)
        try:
            consumer = clients.consumer(self.profile, client_id=f"{self.run_id}-{name}", group_id=None)
        except Exception as exc:
            self._connect_failure(name, exc)
            return
        state = {"session": 0}
        partitions = [TopicPartition(self.topic, p) for p in range(config.partitions)]
        self._record_assignment(name, "assign", list(range(config.partitions)), state)
        bar = tqdm(total=len(wanted), desc="read-back", unit="rec", disable=not config.progress, mininterval=1.0)
        deadline = time.monotonic() + config.readback_timeout_s
        missing = set(wanted)
        drained_since: float | None = None
        try:
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            while missing and time.monotonic() < deadline:
                idents = self._poll_once(consumer, name, state)
                found = missing.intersection(idents or ())
                missing -= found
                bar.update(len(found))
                if not idents and self._at_end(consumer, partitions):
                    drained_since = drained_since or time.monotonic()
                    if time.monotonic() - drained_since > 2.0:
                        break
                else:
                    drained_since = None
        finally:
            bar.close()
            with contextlib.suppress(Exception):
                consumer.close()

    @staticmethod
    def _at_end(consumer, partitions: list[TopicPartition]) -> bool:
        try:
            ends = consumer.end_offsets(partitions)
            return all(consumer.position(tp) >= ends[tp] for tp in partitions)
        except Exception:  # an unanswered end-offset query just means "keep reading"
            return False


class _GroupListener(ConsumerRebalanceListener):
    """Records every revocation and assignment the group protocol hands this consumer."""

    def __init__(self, workload: Workload, name: str, state: dict[str, int]):
        self.workload, self.name, self.state = workload, name, state

    def on_partitions_revoked(self, revoked) -> None:
        if not self.state.get("closing"):
            self.workload._record_assignment(self.name, "revoke", [tp.partition for tp in revoked], self.state)

    def on_partitions_assigned(self, assigned) -> None:
        if not self.state.get("closing"):
            self.workload._record_assignment(self.name, "assign", [tp.partition for tp in assigned], self.state)


def run_workload(profile: Profile, config: WorkloadConfig, run_id: str | None = None,
                 nemesis: Nemesis | None = None) -> WorkloadResult:
    """Run one workload and return its history (see history.COLUMNS)."""
    return Workload(profile, config, run_id=run_id, nemesis=nemesis).run()


def read_your_writes(profile: Profile, writers: int = 5, records_each: int = 20, run_id: str | None = None,
                     timeout_s: float = 10.0, label: str = "read-your-writes") -> WorkloadResult:
    """Writers share one producer (one connection); after each acknowledgement a writer reads its
    record back at the acknowledged offset with its own consumer. A final read-back follows."""
    workload = Workload(profile, WorkloadConfig(records=writers * records_each, producers=writers, consumers=0,
                                                consumer_mode="none", label=label, progress=False), run_id=run_id)
    started_wall, started = time.time(), time.monotonic()
    clients.create_topic(profile, workload.topic, 1)
    shared = clients.producer(profile, client_id=f"{workload.run_id}-shared")
    tp = TopicPartition(workload.topic, 0)

    def writer(index: int) -> None:
        name = f"producer-{index}"
        consumer = clients.consumer(profile, client_id=f"{workload.run_id}-{name}-reader", group_id=None)
        consumer.assign([tp])
        state = {"session": 0}
        try:
            for seq in range(records_each):
                payload, crc = encode_payload(workload.run_id, name, seq, 128)
                op = workload.recorder.next_op()
                invoke_ns, wall_ns = now()
                base = {"op_id": op, "process": name, "f": "send", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
                        "topic": workload.topic, "producer": name, "seq": seq, "checksum": crc,
                        "value_len": len(payload)}
                try:
                    metadata = shared.send(workload.topic, value=payload, partition=0).get(timeout=timeout_s)
                except Exception as exc:
                    workload.recorder.record(**base, type="info", complete_ns=time.monotonic_ns(), error=_error(exc))
                    continue
                workload.recorder.record(**base, type="ok", complete_ns=time.monotonic_ns(), partition=0,
                                         offset=metadata.offset)
                workload.tracker.ack((name, seq))
                state["session"] += 1  # a seek starts a new session: going back is not a regression
                consumer.seek(tp, metadata.offset)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline and (name, seq) not in workload.tracker.read:
                    workload._poll_once(consumer, name, state)
        finally:
            consumer.close()

    threads = [threading.Thread(target=writer, args=(i,), name=f"writer-{i}", daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(records_each * timeout_s * 2 + JOIN_TIMEOUT_S)
        if thread.is_alive():
            workload.notes.append(f"{thread.name} did not finish in time")
    with contextlib.suppress(Exception):
        shared.close(timeout=5)
    workload._readback()
    return WorkloadResult(run_id=workload.run_id, topic=workload.topic, config=workload.config,
                          history=workload.recorder.frame(), profile=profile.name,
                          idempotent=workload.config.idempotent(profile), started_wall=started_wall,
                          duration_s=time.monotonic() - started, notes=workload.notes)
