"""What the threads of one workload share: the recorder, live bookkeeping, stop signals, notes."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from k6suite_lib.history import Recorder, now
from k6suite_lib.profiles import Profile
from k6suite_lib.workload.config import WorkloadConfig, error_text


class Tracker:
    """Live bookkeeping for the orchestrator: acknowledged identities, identities read, and the
    highest offset live consumers read per partition. Set updates, dict stores and list appends
    are atomic in CPython, so client threads share these without a lock."""

    def __init__(self) -> None:
        self.acked: set[tuple[str, int]] = set()
        self.read: set[tuple[str, int]] = set()
        self.highest_read: dict[int, int] = {}
        self.last_read_ns = 0
        self._completed: list[None] = []

    @property
    def completed(self) -> int:
        return len(self._completed)

    def ack(self, identity: tuple[str, int]) -> None:
        self.acked.add(identity)
        self._completed.append(None)

    def done(self) -> None:
        self._completed.append(None)

    def saw(self, identities: list[tuple[str, int]], offsets: dict[int, int]) -> None:
        self.read.update(identities)
        for partition, offset in offsets.items():
            if offset > self.highest_read.get(partition, -1):
                self.highest_read[partition] = offset
        self.last_read_ns = time.monotonic_ns()

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
    clients: dict[str, Any] = field(default_factory=dict)  # live clients, sampled for their metrics

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
        self.recorder.record(op_id=self.recorder.next_op(), process="client-log", f="client-log", type="info",
                             invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall,
                             error=f"{record.levelname} {record.name}: {record.getMessage()}"[:500],
                             detail=json.dumps({"logger": record.name, "level": record.levelname}))
