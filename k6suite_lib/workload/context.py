"""What the threads of one workload share: the recorder, live bookkeeping, stop signals, notes."""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from k6suite_lib.history import Recorder, now
from k6suite_lib.profiles import Profile
from k6suite_lib.workload.config import WorkloadConfig, error_text

SETTLED_S = 1.0  # consumers' ownership unchanged this long counts as settled
_CLIENT_ID = re.compile(r"client_id=(\S+)")


class Tracker:
    """Live bookkeeping for the orchestrator: acknowledged identities, identities read, and the
    highest offset live consumers read per partition. Set updates, dict stores and list appends
    are atomic in CPython, so client threads share these without a lock."""

    def __init__(self) -> None:
        self.acked: set[tuple[str, int]] = set()
        self.read: set[tuple[str, int]] = set()
        self.highest_read: dict[int, int] = {}
        self.last_ack_ns: dict[int, int] = {}  # per partition
        self.last_read_ns = 0
        self.last_progress_ns = 0  # the last read of a record not seen before, or past the highest offset
        self._completed: list[None] = []

    @property
    def completed(self) -> int:
        return len(self._completed)

    def ack(self, identity: tuple[str, int], partition: int, complete_ns: int) -> None:
        """complete_ns: when the acknowledgement arrived (producers settle outcomes in batches, later)."""
        self.acked.add(identity)
        self.last_ack_ns[partition] = max(complete_ns, self.last_ack_ns.get(partition, 0))
        self._completed.append(None)

    def done(self) -> None:
        self._completed.append(None)

    def settle(self, acked: dict[str, list[int]], last_ack_ns: dict[int, int], others: int) -> None:
        """Outcomes a worker process relayed in bulk: acknowledged sequence numbers per producer, each
        partition's latest acknowledgement, and how many sends settled otherwise."""
        for producer, seqs in acked.items():
            self.acked.update(zip(itertools.repeat(producer), seqs))
            self._completed.extend(itertools.repeat(None, len(seqs)))
        for partition, complete_ns in last_ack_ns.items():
            self.last_ack_ns[partition] = max(complete_ns, self.last_ack_ns.get(partition, 0))
        self._completed.extend(itertools.repeat(None, others))

    def saw(self, identities: list[tuple[str, int]], offsets: dict[int, int]) -> None:
        """Reads of live consumers. Re-reading what was read before (a consumer reset to an earlier
        offset) is a read but not progress: draining waits for progress, not for activity."""
        before = len(self.read)
        self.read.update(identities)
        progressed = len(self.read) > before
        for partition, offset in offsets.items():
            if offset > self.highest_read.get(partition, -1):
                self.highest_read[partition] = offset
                progressed = True
        self.last_read_ns = time.monotonic_ns()
        if progressed:
            self.last_progress_ns = self.last_read_ns

    def reached(self, ends: dict[int, int]) -> bool:
        """Live consumers have read up to every partition's end offset."""
        return all(self.highest_read.get(p, -1) >= end - 1 for p, end in ends.items())

    def unseen(self) -> int:
        return len(self.acked - self.read)


@dataclass
class RunContext:
    """One workload run as its client threads see it."""

    profile: Profile
    config: WorkloadConfig
    run_id: str
    topic: str
    recorder: Recorder
    tracker: Tracker = field(default_factory=Tracker)
    stop_producers: threading.Event = field(default_factory=threading.Event)
    stop_consumers: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)
    polled: set[str] = field(default_factory=set)  # consumers that finished at least one poll
    owned: dict[str, set[int]] = field(default_factory=dict)  # live consumer -> partitions it reads now
    last_assignment_ns: int = 0  # the last assignment or revocation a consumer saw
    clients: dict[str, Any] = field(default_factory=dict)  # live clients, sampled for their metrics
    shards: list[tuple[pd.DataFrame, int]] = field(default_factory=list)  # (rows, worker id) of worker processes
    # group members' session timeout and heartbeat interval as their library reported them (kafka-python's consumers);
    # None: as WorkloadConfig.group_session says
    group_session: dict[str, int] | None = None

    def assigned(self, consumer: str, partitions: set[int]) -> None:
        self.owned[consumer] = partitions
        self.last_assignment_ns = time.monotonic_ns()

    def owners_settled(self, consumers: int) -> bool:
        """Consumers own every partition and nothing moved for SETTLED_S; in a group, as many members
        hold partitions as can (a poll returns early while a join is pending, so 'polled' is not 'joined')."""
        partitions = set(range(self.config.partitions))
        holding = [owned for owned in list(self.owned.values()) if owned]
        return (partitions <= set().union(*holding)
                and len(holding) >= min(consumers, len(partitions))
                and time.monotonic_ns() - self.last_assignment_ns >= SETTLED_S * 1e9)

    def steady(self, consumers: int) -> bool:
        """Traffic is steady: every consumer has polled, their ownership settled, and every partition
        has acknowledged a write (a fault before that would hit a group still forming)."""
        return (len(self.polled) >= consumers and (consumers == 0 or self.owners_settled(consumers))
                and set(range(self.config.partitions)) <= set(self.tracker.last_ack_ns))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def phase(self, phase: str, **detail: Any) -> None:
        """A marker row: what happens after it (e.g. revocations as members leave) is that phase."""
        t_ns, wall = now()
        self.recorder.record(op_id=self.recorder.next_op(), process="workload", f="phase", type="ok",
                             invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall, topic=self.topic,
                             detail=json.dumps({"phase": phase, **detail}))

    def connect_failure(self, process: str, exc: BaseException) -> None:
        t_ns, wall = now()
        self.recorder.record(op_id=self.recorder.next_op(), process=process, f="connect", type="fail",
                             invoke_ns=t_ns, complete_ns=time.monotonic_ns(), wall_ns=wall, error=error_text(exc))
        self.note(f"{process} could not connect: {error_text(exc)}")

    def register(self, name: str, client: Any) -> None:
        """Keep a client for metrics sampling (only when the workload samples clients)."""
        if self.config.client_metrics_s > 0:
            from k6suite_lib import clients

            clients.count_connections(client)
            self.clients[name] = client


class ClientLog(logging.Handler):
    """kafka-python's own warnings (retries, offset resets, disconnects) as history rows: errors the
    client handled itself never reach a send's outcome, so this is where "retried" errors show."""

    def __init__(self, recorder: Recorder):
        super().__init__(logging.WARNING)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        t_ns, wall = now()
        message = f"{record.levelname} {record.name}: {record.getMessage()}"[:500]
        self.recorder.record(op_id=self.recorder.next_op(), process="client-log", f="client-log", type="info",
                             invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall, error=message,
                             detail=json.dumps({"logger": record.name, "level": record.levelname}))
        retry = self._retry(record)
        if retry is not None:  # which producer resent which partition: what explains a duplicate
            producer, topic, partition = retry
            self.recorder.record(op_id=self.recorder.next_op(), process=producer, f="retry", type="info",
                                 invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall, producer=producer, topic=topic,
                                 partition=partition, error=message)

    def _retry(self, record: logging.LogRecord) -> tuple[str, str, int] | None:
        """(producer, topic, partition) of a produce batch kafka-python's sender re-enqueued, from its
        log record's arguments (the sender names its client id; the batch its TopicPartition)."""
        if not record.name.startswith("kafka.producer") or "retrying" not in str(record.msg):
            return None
        args = record.args if isinstance(record.args, tuple) else ()
        sender = _CLIENT_ID.search(str(args[0])) if args else None
        partition = next((a for a in args if hasattr(a, "topic") and hasattr(a, "partition")), None)
        prefix = f"{self.recorder.run_id}-"
        if sender is None or partition is None or not sender.group(1).startswith(prefix):
            return None
        return sender.group(1)[len(prefix):], str(partition.topic), int(partition.partition)
