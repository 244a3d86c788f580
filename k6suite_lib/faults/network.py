"""Storage and metadata-store faults: Toxiproxy toxics on the brokers' paths to MinIO and etcd."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from k6suite_lib.faults.base import Fault
from k6suite_lib.stack.toxiproxy import METADATA_PROXY, STORAGE_PROXY, Toxiproxy

PROXY_FOR_ROLE = {"storage": STORAGE_PROXY, "metadata": METADATA_PROXY}


class _ToxicFault(Fault):
    kind = ""

    def __init__(self, toxiproxy: Toxiproxy, role: str, streams: tuple[str, ...] = ("downstream", "upstream")):
        if role not in PROXY_FOR_ROLE:
            raise ValueError(f"network faults act on {', '.join(PROXY_FOR_ROLE)}, not {role!r}")
        self.toxiproxy, self.role, self.streams = toxiproxy, role, streams
        self.name = f"{role}-{self.kind}"
        self._toxics: list[str] = []

    @property
    def target(self) -> str:
        return f"broker->{self.role} path"

    @abstractmethod
    def attributes(self) -> dict[str, Any]:
        """The toxic's attributes in Toxiproxy's terms."""

    def parameters(self) -> dict[str, Any]:
        return {"toxic": self.kind, "streams": list(self.streams), **self.attributes()}

    def start(self) -> None:
        proxy = PROXY_FOR_ROLE[self.role]
        for stream in self.streams:
            self._toxics.append(self.toxiproxy.add_toxic(proxy, self.kind, self.attributes(), stream=stream,
                                                         name=f"k6s_{self.kind}_{stream}"))

    def stop(self) -> None:
        proxy = PROXY_FOR_ROLE[self.role]
        while self._toxics:
            self.toxiproxy.remove_toxic(proxy, self._toxics.pop())


class Latency(_ToxicFault):
    """Every chunk waits latency_ms ± jitter_ms (each direction)."""

    kind = "latency"

    def __init__(self, toxiproxy: Toxiproxy, role: str, latency_ms: int, jitter_ms: int = 0):
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms
        super().__init__(toxiproxy, role)

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.latency_ms, "jitter": self.jitter_ms}


class Bandwidth(_ToxicFault):
    """Throughput limited to rate_kb kilobytes per second (each direction)."""

    kind = "bandwidth"

    def __init__(self, toxiproxy: Toxiproxy, role: str, rate_kb: int):
        self.rate_kb = rate_kb
        super().__init__(toxiproxy, role)

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.rate_kb}


class BlackHole(_ToxicFault):
    """Data goes in, nothing comes back, connections are not closed (Toxiproxy timeout=0)."""

    kind = "timeout"

    def __init__(self, toxiproxy: Toxiproxy, role: str):
        super().__init__(toxiproxy, role, streams=("downstream",))

    def attributes(self) -> dict[str, Any]:
        return {"timeout": 0}


class ResetPeer(_ToxicFault):
    """Connections are reset (TCP RST) after timeout_ms."""

    kind = "reset_peer"

    def __init__(self, toxiproxy: Toxiproxy, role: str, timeout_ms: int = 0):
        self.timeout_ms = timeout_ms
        super().__init__(toxiproxy, role, streams=("downstream",))

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.timeout_ms}


class Outage(Fault):
    """The proxy is disabled: open connections close and new ones are refused."""

    def __init__(self, toxiproxy: Toxiproxy, role: str):
        if role not in PROXY_FOR_ROLE:
            raise ValueError(f"network faults act on {', '.join(PROXY_FOR_ROLE)}, not {role!r}")
        self.toxiproxy, self.role = toxiproxy, role
        self.name = f"{role}-outage"

    @property
    def target(self) -> str:
        return f"broker->{self.role} path"

    def start(self) -> None:
        self.toxiproxy.set_enabled(PROXY_FOR_ROLE[self.role], False)

    def stop(self) -> None:
        self.toxiproxy.set_enabled(PROXY_FOR_ROLE[self.role], True)
