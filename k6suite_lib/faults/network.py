"""Storage and metadata-store faults: Toxiproxy toxics on the brokers' paths to MinIO and etcd.

A fault on a path nothing uses acts on nothing, so each records what its proxy received, from the kernel's
socket table (probes.tcp_traffic: the stack runs on this machine; Toxiproxy counts bytes only when a connection
closes): a toxic, the bytes its proxy received from any of its clients while it was in place (`through`, with
its end); an outage, which lets nothing through, the connections it cut and how recently they had received data
(`cut`, with its start). The bytes cannot be told apart by sender (keepalives count), so "every fault took
effect" judges them together with the workload's acknowledged sends in flight during the fault.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from k6suite_lib.faults.base import Fault
from k6suite_lib.probes import tcp_traffic
from k6suite_lib.stack.toxiproxy import METADATA_PROXY, STORAGE_PROXY, Toxiproxy

PROXY_FOR_ROLE = {"storage": STORAGE_PROXY, "metadata": METADATA_PROXY}
RECENT_MS = 10_000  # an outage cut a path in use when a connection it closed had received data this recently


def _connections(toxiproxy: Toxiproxy, role: str) -> list[dict[str, int]]:
    return tcp_traffic(toxiproxy.listen_port(PROXY_FOR_ROLE[role]))


def _error(exc: Exception) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}"[:200]}


class _ToxicFault(Fault):
    kind = ""

    def __init__(self, toxiproxy: Toxiproxy, role: str, streams: tuple[str, ...] = ("downstream", "upstream")):
        if role not in PROXY_FOR_ROLE:
            raise ValueError(f"network faults act on {', '.join(PROXY_FOR_ROLE)}, not {role!r}")
        self.toxiproxy, self.role, self.streams = toxiproxy, role, streams
        self.name = f"{role}-{self.kind}"
        self._toxics: list[str] = []
        self._before: dict[int, int] | dict[str, str] = {}
        self.through: dict = {}

    @property
    def target(self) -> str:
        return f"broker->{self.role} path"

    @abstractmethod
    def attributes(self) -> dict[str, Any]:
        """The toxic's attributes in Toxiproxy's terms."""

    def parameters(self) -> dict[str, Any]:
        return {"toxic": self.kind, "streams": list(self.streams), **self.attributes(),
                **({"through": self.through} if self.through else {})}

    def start(self) -> None:
        proxy = PROXY_FOR_ROLE[self.role]
        self.through = {}
        for stream in self.streams:
            self._toxics.append(self.toxiproxy.add_toxic(proxy, self.kind, self.attributes(), stream=stream,
                                                         name=f"k6s_{self.kind}_{stream}"))
        self._before = self._received()

    def stop(self) -> None:
        proxy = PROXY_FOR_ROLE[self.role]
        after = self._received()
        if "error" in self._before or "error" in after:
            self.through = {"error": str(self._before.get("error") or after.get("error"))}
        else:
            self.through = {"bytes": sum(max(0, n - self._before.get(port, 0)) for port, n in after.items()),
                            "connections": len(after)}
        while self._toxics:
            self.toxiproxy.remove_toxic(proxy, self._toxics.pop())

    def _received(self) -> dict[int, int] | dict[str, str]:
        """remote port -> bytes received, of every connection into the proxy (what a fault measures never
        stops it: an error is recorded instead)."""
        try:
            return {c["remote_port"]: c["bytes_received"] for c in _connections(self.toxiproxy, self.role)}
        except Exception as exc:
            return _error(exc)


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
        self.cut: dict = {}

    @property
    def target(self) -> str:
        return f"broker->{self.role} path"

    def parameters(self) -> dict[str, Any]:
        return {"cut": self.cut} if self.cut else {}

    def start(self) -> None:
        try:
            open_now = _connections(self.toxiproxy, self.role)
            used = [c["last_data_recv_ms"] for c in open_now if c["bytes_received"] > 0]
            self.cut = {"connections": len(open_now), "recent": sum(ms <= RECENT_MS for ms in used),
                        "recent_ms": RECENT_MS, "last_data_ms": min(used, default=None)}
        except Exception as exc:
            self.cut = _error(exc)
        self.toxiproxy.set_enabled(PROXY_FOR_ROLE[self.role], False)

    def stop(self) -> None:
        self.toxiproxy.set_enabled(PROXY_FOR_ROLE[self.role], True)
