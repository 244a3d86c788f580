"""Broker faults through signals to an embedded stack's real processes (any embedded system)."""

from __future__ import annotations

from typing import Any

from k6suite_lib.faults.base import Fault


class BrokerKill(Fault):
    """SIGKILL: the broker gets no chance to release anything; stop() restarts it with the same id.

    broker_id None: the broker the workload's writes depend on most when the fault starts (the
    stack decides: the busiest broker behind a proxy, the leader of the topic's partitions on Kafka).
    """

    name, role = "broker-kill", "broker"

    def __init__(self, stack, broker_id: int | None = None, topic: str | None = None):
        self.stack, self.broker_id, self.topic = stack, broker_id, topic
        self.served: dict = {}

    @property
    def target(self) -> str:
        return f"broker-{self.broker_id}" if self.broker_id is not None else "the busiest broker"

    def parameters(self) -> dict[str, Any]:
        return {"served": self.served} if self.served else {}

    def _choose(self) -> int:
        """The broker to hit, and what it carried of the workload just before (recorded as `served`)."""
        if self.broker_id is None:
            self.broker_id = self.stack.fault_target(self.topic)
        try:
            self.served = self.stack.workload_load(self.broker_id, self.topic)
        except Exception as exc:  # the fault still happens; the history says its reach is unknown
            self.served = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        return self.broker_id

    def start(self) -> None:
        self.stack.kill(self._choose())

    def stop(self) -> None:
        self.stack.restart(self.broker_id)


class BrokerTerminate(BrokerKill):
    """SIGTERM, then SIGKILL after the grace period; stop() restarts it."""

    name = "broker-terminate"

    def __init__(self, stack, broker_id: int | None = None, grace_s: float = 5.0, topic: str | None = None):
        super().__init__(stack, broker_id, topic)
        self.grace_s = grace_s
        self.ended = ""

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "grace_s": self.grace_s, "ended": self.ended}

    def start(self) -> None:
        self.ended = self.stack.terminate(self._choose(), self.grace_s)


class BrokerPause(BrokerKill):
    """SIGSTOP: the process stays, its sockets stay open, nothing answers; stop() sends SIGCONT."""

    name = "broker-pause"

    def start(self) -> None:
        self.stack.pause(self._choose())

    def stop(self) -> None:
        self.stack.resume(self.broker_id)


class BrokerRestart(BrokerTerminate):
    """A clean bounce (for rolling restarts): SIGTERM with grace, then start again at once."""

    name = "broker-restart"

    def start(self) -> None:
        super().start()
        self.stack.restart(self.broker_id)

    def stop(self) -> None:
        """Nothing to heal: start() already brought the broker back."""


class AddBrokers(Fault):
    """Start `count` new brokers and add them to the cluster snapshot (scale-out; nothing to heal)."""

    name, role = "add-brokers", "broker"

    def __init__(self, stack, count: int):
        self.stack, self.count = stack, count
        self.added: list[int] = []

    @property
    def target(self) -> str:
        return ", ".join(f"broker-{b}" for b in self.added) or f"{self.count} new broker(s)"

    def parameters(self) -> dict[str, Any]:
        return {"count": self.count, "added": self.added}

    def start(self) -> None:
        for _ in range(self.count):
            self.added.append(self.stack.add_broker())

    def stop(self) -> None:
        """Scale-out is the change under test: nothing to undo."""
