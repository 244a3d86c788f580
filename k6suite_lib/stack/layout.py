"""Where every component of an embedded stack listens, derived from one port base.

A stack occupies port_base .. port_base+129 (S6 adds a second stack at +200), so stacks 400 ports
apart never collide; keep bases below 32768, where Linux starts handing out outgoing ports.
All addresses are on 127.0.0.1. Brokers reach MinIO and etcd through Toxiproxy, so storage and
metadata faults can be injected on the broker paths without touching the clients' path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
MAX_BROKERS = 10


def outputs_root() -> Path:
    """Where run archives and live stack state go (K6SUITE_OUTPUTS overrides, e.g. in tests)."""
    return Path(os.environ.get("K6SUITE_OUTPUTS", REPO_ROOT / "outputs"))


@dataclass(frozen=True)
class StackLayout:
    port_base: int = 29000
    brokers: int = 3
    # dedicated KRaft controllers (Kafka); 0: the brokers are their own controllers (combined mode)
    controllers: int = 0
    outputs: Path = field(default_factory=outputs_root)

    @property
    def state_dir(self) -> Path:
        return self.outputs / "stack" / str(self.port_base)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    # object store
    @property
    def minio_port(self) -> int:
        return self.port_base

    @property
    def minio_console_port(self) -> int:
        return self.port_base + 1

    @property
    def storage_proxy_port(self) -> int:
        """Toxiproxy listener in front of MinIO: the brokers' S3 endpoint."""
        return self.port_base + 2

    @property
    def minio_url(self) -> str:
        return f"http://{HOST}:{self.minio_port}"

    # metadata store
    @property
    def etcd_port(self) -> int:
        return self.port_base + 10

    @property
    def etcd_peer_port(self) -> int:
        return self.port_base + 11

    @property
    def metadata_proxy_port(self) -> int:
        """Toxiproxy listener in front of etcd: the brokers' etcd endpoint."""
        return self.port_base + 12

    @property
    def etcd_url(self) -> str:
        return f"http://{HOST}:{self.etcd_port}"

    # fault proxy
    @property
    def toxiproxy_port(self) -> int:
        return self.port_base + 20

    @property
    def toxiproxy_url(self) -> str:
        return f"http://{HOST}:{self.toxiproxy_port}"

    # TLS listeners (systems that offer TLS)
    def broker_tls_port(self, broker_id: int) -> int:
        self._check_id(broker_id)
        return self.port_base + 30 + broker_id

    # KafScale
    @property
    def proxy_port(self) -> int:
        return self.port_base + 92

    @property
    def proxy_health_port(self) -> int:
        return self.port_base + 93

    @property
    def proxy_address(self) -> str:
        return f"{HOST}:{self.proxy_port}"

    def broker_port(self, broker_id: int) -> int:
        self._check_id(broker_id)
        return self.port_base + 100 + broker_id

    def broker_metrics_port(self, broker_id: int) -> int:
        self._check_id(broker_id)
        return self.port_base + 110 + broker_id

    def broker_control_port(self, broker_id: int) -> int:
        """A KRaft controller listener: a combined node's (by its id) or the dedicated controller's at that
        index (dedicated controllers and combined nodes never share a stack)."""
        self._check_id(broker_id)
        return self.port_base + 120 + broker_id

    def broker_metrics_url(self, broker_id: int) -> str:
        return f"http://{HOST}:{self.broker_metrics_port(broker_id)}/metrics"

    def ports(self) -> list[int]:
        """Every port the stack listens on at start-up."""
        fixed = [self.minio_port, self.minio_console_port, self.storage_proxy_port, self.etcd_port,
                 self.etcd_peer_port, self.metadata_proxy_port, self.toxiproxy_port, self.proxy_port,
                 self.proxy_health_port]
        per_broker = [port for b in range(self.brokers)
                      for port in (self.broker_port(b), self.broker_metrics_port(b), self.broker_control_port(b),
                                   self.broker_tls_port(b))]
        controllers = [self.broker_control_port(c) for c in range(self.brokers, self.controllers)]
        return fixed + per_broker + controllers

    @staticmethod
    def _check_id(broker_id: int) -> None:
        if not 0 <= broker_id < MAX_BROKERS:
            raise ValueError(f"broker id {broker_id} outside 0..{MAX_BROKERS - 1}")
