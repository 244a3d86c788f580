"""What every embedded system offers the suite, over shared process management.

An embedded stack is a set of real local processes on 127.0.0.1, recorded on disk by PID and
start time (outputs/stack/<port_base>/state.json), so the CLI, the runner and notebook kernels
drive one stack and `k6suite stack down` stops it even after a crash. A system module (kafscale,
kafka, tansu) says how to start its components, how to tell each one is ready, how to add a
broker and where clients connect; everything else lives here: up/down/status/logs/heal, and the
process faults (kill, terminate with grace, pause/resume, restart) the nemesis applies to brokers.

Components every object-store system shares (etcd, MinIO, Toxiproxy in front of them) are
started by the helpers at the bottom, so two systems never diverge in how their stores run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import requests

from k6suite_lib.stack import binaries, builds
from k6suite_lib.stack.builds import Build
from k6suite_lib.stack.etcd import EtcdGateway
from k6suite_lib.stack.layout import HOST, StackLayout
from k6suite_lib.stack.process import (
    ProcessRecord,
    StackError,
    is_alive,
    log_tail,
    process_state,
    send_signal,
    spawn,
    stop,
    wait_dead,
    wait_ready,
)
from k6suite_lib.stack.state import read_state, stack_credentials, stack_secret, write_state
from k6suite_lib.stack.toxiproxy import METADATA_PROXY, STORAGE_PROXY, Toxiproxy

READY_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 2.0
ETCD_HISTORY = "1m"  # revisions older than this are compacted away
S3_REGION = "us-east-1"
# Every role any system uses, in start order; down() stops in the reverse order.
ROLE_ORDER = ("metadata", "storage", "fault-proxy", "control-plane", "node", "controller", "broker", "proxy")


def base_env() -> dict[str, str]:
    """Child processes get a minimal environment, never the caller's credentials or AWS_* settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "JAVA_HOME")
    return {k: os.environ[k] for k in keep if k in os.environ}


def port_answers(port: int) -> str | None:
    """None when something accepts connections on the port, else why not."""
    try:
        socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"{HOST}:{port} does not accept connections ({exc})"
    return None


def http_ok(url: str, expect: str | None = None) -> str | None:
    response = requests.get(url, timeout=PROBE_TIMEOUT_S)
    if response.status_code != 200:
        return f"{url} answered HTTP {response.status_code}"
    if expect and expect not in response.text:
        return f"{url} answered {response.text.strip()[:80]!r}"
    return None


def broker_id_of(record: ProcessRecord) -> int:
    return int(record.name.split("-")[1])


@dataclass(frozen=True)
class Security:
    """Access control a stack is started with (S8 starts such a stack beside the profile's). Each tenant
    owns the topics and groups whose names start with scope(tenant); admin is the suite's own principal
    and may do anything. A system applies what it has; the normal profiles' stacks have none of it."""

    tenants: tuple[str, ...]
    admin: str = "k6suite-admin"

    @staticmethod
    def scope(tenant: str) -> str:
        return f"{tenant}."

    @property
    def principals(self) -> tuple[str, ...]:
        return (self.admin, *self.tenants)


class EmbeddedStack(ABC):
    """One embedded system: start, stop, inspect and abuse its processes.

    Subclasses set ``system`` and ``fault_paths`` (roles reachable through Toxiproxy: "storage",
    "metadata"), and implement the abstract methods below.
    """

    system: ClassVar[str]
    fault_paths: ClassVar[tuple[str, ...]] = ()
    has_object_store: ClassVar[bool] = False
    # Why the system offers no TLS listener, with the evidence ("" when it offers one): S1 shows it for F1.3.
    no_tls_reason: ClassVar[str] = ""
    # Whether a secured stack checks credentials (SASL); if not, a principal is just a name a client claims.
    authenticates: ClassVar[bool] = False
    # The SASL mechanism a secured stack's principals log in with (where it authenticates).
    sasl_mechanism: ClassVar[str] = "PLAIN"
    # What a secured stack of this system enforces, in words (S8 shows it as evidence).
    access_control: ClassVar[str] = "nothing: no authentication and no authorization"

    def __init__(self, layout: StackLayout, log: Callable[[str], None] = print, security: Security | None = None,
                 build_sources: dict[str, str] | None = None):
        self.layout = layout
        self.log = log
        self.security = security
        # which build to start (stack/builds.py); once up, the build the stack runs is in its state
        self.build_sources = build_sources or {}

    # ------------------------------------------------------------------ what a system provides
    @classmethod
    @abstractmethod
    def addresses(cls, layout: StackLayout) -> dict[str, tuple[str, ...] | str]:
        """What a profile derives from the layout: bootstrap_servers, metrics_urls, etcd_endpoints,
        object_store.endpoint, object_store.bucket (only the keys the system has)."""

    @abstractmethod
    def _start_components(self) -> None:
        """Start every component from clean data, in order, each one ready before the next."""

    @abstractmethod
    def _spawn_broker(self, broker_id: int) -> ProcessRecord:
        """Start one broker process (not waiting for it)."""

    @abstractmethod
    def _broker_ready(self, record: ProcessRecord) -> str | None:
        """None when the broker serves, else why not yet."""

    @abstractmethod
    def _ready_check(self, record: ProcessRecord) -> Callable[[], str | None]:
        """A probe for any component: None when healthy, else the reason."""

    @abstractmethod
    def _restart_component(self, record: ProcessRecord) -> None:
        """Start a dead component again with its recorded identity (used by heal)."""

    @abstractmethod
    def add_broker(self) -> int:
        """Start a broker with the next free id and make the cluster use it; return its id."""

    @abstractmethod
    def fault_target(self, topic: str | None = None) -> int:
        """The broker a fault should hit now: the one the workload's writes depend on most."""

    def workload_load(self, broker_id: int, topic: str | None = None) -> dict:
        """What a broker carried of the workload just before a fault hits it, recorded with the fault:
        a kill of a broker that served none of it proves nothing. Here: the client (or proxy)
        connections it held; systems add what they know better (Kafka: the partitions it leads)."""
        from k6suite_lib.probes import established_connections

        return {"connections": established_connections(self.broker_port(broker_id))}

    def broker_port(self, broker_id: int) -> int:
        """Where a broker takes Kafka requests (its own listener, not the client endpoint)."""
        return self.layout.broker_port(broker_id)

    def tls_endpoint(self) -> str | None:
        """Where clients reach the system over TLS; None when it offers no TLS (see no_tls_reason)."""
        return None

    def ca_file(self) -> Path | None:
        """The CA certificate that signed the TLS endpoint's certificate; None without TLS."""
        return None

    def password_env(self, principal: str) -> str:
        """The variable naming a principal's password on this stack; up() generates the passwords of a
        secured stack into the 0600 secrets file, so they reach clients (and redaction) only by this name."""
        return f"K6SUITE_STACK_{self.layout.port_base}_{re.sub('[^A-Z0-9]', '_', principal.upper())}_PASSWORD"

    def password(self, principal: str) -> str:
        """A principal's password, for the system's own configuration (never for display)."""
        return stack_secret(self.password_env(principal))

    # ------------------------------------------------------------------ state
    @property
    def records(self) -> dict[str, ProcessRecord]:
        """The process records on disk: the one truth shared by the CLI, the runner and notebook kernels
        (a kernel may restart a broker the runner started)."""
        state = read_state(self.layout.state_dir)
        return {name: ProcessRecord.from_json(data) for name, data in state.get("processes", {}).items()}

    def _save(self, records: dict[str, ProcessRecord]) -> None:
        write_state(self.layout.state_dir, {
            **read_state(self.layout.state_dir), "system": self.system, "port_base": self.layout.port_base,
            "processes": {name: rec.to_json() for name, rec in records.items()},
        })

    @property
    def build(self) -> Build:
        """The build this stack runs: recorded at up(), so a notebook kernel or heal() restarting a broker
        runs the same binaries the stack started with; before up(), the build it would start."""
        recorded = read_state(self.layout.state_dir).get("build")
        if recorded:
            return Build.from_json(recorded)
        return builds.resolve(self.system, self.build_sources, self.log)

    @property
    def learned(self) -> dict[str, Any]:
        """What start-up learned from the build itself (client version caps it survives, settings it
        needed, ...), recorded in the stack's state for clients, reports and manifests."""
        return read_state(self.layout.state_dir).get("learned", {})

    def _learn(self, **facts: Any) -> None:
        state = read_state(self.layout.state_dir)
        write_state(self.layout.state_dir, {**state, "learned": {**state.get("learned", {}), **facts}})

    def _add(self, record: ProcessRecord) -> ProcessRecord:
        self._save({**self.records, record.name: record})
        return record

    def record(self, name: str) -> ProcessRecord:
        records = self.records
        if name not in records:
            raise StackError(f"no component {name!r} in this stack (known: {', '.join(records)})")
        return records[name]

    @property
    def broker_ids(self) -> list[int]:
        return sorted(broker_id_of(r) for r in self.records.values() if r.role == "broker")

    def is_up(self) -> bool:
        records = self.records
        return bool(records) and all(is_alive(r) for r in records.values())

    @property
    def toxiproxy(self) -> Toxiproxy:
        if not self.fault_paths:
            raise StackError(f"the embedded {self.system} has no storage or metadata path to inject faults on")
        return Toxiproxy(self.layout.toxiproxy_url)

    # ------------------------------------------------------------------ lifecycle
    def up(self) -> float:
        """Start every component from clean data; return the start-up time in seconds."""
        if any(is_alive(r) for r in self.records.values()):
            raise StackError(f"a stack is already running on port base {self.layout.port_base}; "
                             "run `k6suite stack down` first")
        busy = [port for port in self.layout.ports() if port_answers(port) is None]
        if busy:  # a stack of another checkout or session: its MinIO would answer with other credentials
            raise StackError(f"ports {', '.join(map(str, busy))} on {HOST} are already in use by processes this "
                             f"checkout did not start (a stack of another checkout or test session?); stop them "
                             "or choose another stack.port_base in the profile")
        started = time.monotonic()
        build = builds.resolve(self.system, self.build_sources, self.log)
        write_state(self.layout.state_dir, {"system": self.system, "port_base": self.layout.port_base,
                                            "processes": {}, "build": build.to_json(),
                                            "build_record": build.record(), "learned": {}})
        shutil.rmtree(self.layout.data_dir, ignore_errors=True)
        self.layout.data_dir.mkdir(parents=True, exist_ok=True)
        for principal in self.security.principals if self.security else ():
            self.password(principal)  # generated once, before any component reads it
        try:
            self._start_components()
        except BaseException:
            self.log("start-up failed; stopping what was started")
            self.down()
            raise
        elapsed = time.monotonic() - started
        self.log(f"{build.label} stack up on {HOST} (port base {self.layout.port_base}) in {elapsed:.1f} s; "
                 f"client endpoint {','.join(self.addresses(self.layout)['bootstrap_servers'])}")
        return elapsed

    def down(self, grace_s: float = 5.0) -> dict[str, str]:
        """Stop every recorded process, last started first; return how each one ended."""
        return stop_recorded(self.layout, grace_s)

    def status(self) -> pd.DataFrame:
        """One row per component: pid, process state, readiness probe, address, log file."""
        rows = []
        for record in sorted(self.records.values(), key=lambda r: (ROLE_ORDER.index(r.role), r.name)):
            state = process_state(record)
            probe = self._probe(record) if state == "running" else state
            rows.append({
                "component": record.name, "role": record.role, "pid": record.pid, "process": state,
                "healthy": probe is None, "detail": probe or "ready",
                "address": ", ".join(f"{HOST}:{p}" for p in record.ports), "log": record.log,
            })
        return pd.DataFrame(rows, columns=["component", "role", "pid", "process", "healthy", "detail",
                                           "address", "log"])

    def unhealthy(self) -> dict[str, str]:
        """Components that run but fail their health probe (e.g. etcd with a NOSPACE alarm), with why."""
        status = self.status()
        failing = status[(status["process"] == "running") & ~status["healthy"]]
        return dict(zip(failing["component"], failing["detail"], strict=True))

    def _probe(self, record: ProcessRecord) -> str | None:
        try:
            return self._ready_check(record)()
        except Exception as exc:  # a failing probe is a status, not an error
            return f"{type(exc).__name__}: {exc}"

    def heal(self) -> list[str]:
        """Restart every dead component in start order (a crash probe or a fault may kill some);
        return what was repaired, so a run can report that it had to."""
        dead = sorted((r for r in self.records.values() if not is_alive(r)), key=lambda r: ROLE_ORDER.index(r.role))
        for record in dead:
            self._restart_component(record)
            self.log(f"healed: restarted {record.name}")
        return [r.name for r in dead]

    def logs(self, name: str, lines: int = 50) -> str:
        return log_tail(self.record(name).log, lines)

    def log_files(self, since: float = 0.0) -> list[Path]:
        """The logs a run that started at `since` (epoch seconds) archives: every process log of the port
        base (each holds all starts of its component, marked, so it is taken whole)."""
        return sorted(self.layout.log_dir.glob("*.log"))

    # ------------------------------------------------------------------ process faults on brokers
    def kill(self, broker_id: int) -> None:
        """SIGKILL: the broker gets no chance to release anything."""
        record = self.record(f"broker-{broker_id}")
        if not send_signal(record, signal.SIGKILL):
            raise StackError(f"broker {broker_id} was not running")
        if not wait_dead(record, 10.0):
            raise StackError(f"broker {broker_id} survived SIGKILL")

    def terminate(self, broker_id: int, grace_s: float = 5.0) -> str:
        """SIGTERM, then SIGKILL after grace_s; returns 'terminated' or 'killed'. A broker that was not
        running is an error: a fault that hit nothing must not be recorded as applied."""
        ended = stop(self.record(f"broker-{broker_id}"), grace_s)
        if ended == "gone":
            raise StackError(f"broker {broker_id} was not running")
        return ended

    def pause(self, broker_id: int) -> None:
        """SIGSTOP; returns once the kernel reports the process stopped."""
        self._signal_until(broker_id, signal.SIGSTOP, "stopped")

    def resume(self, broker_id: int) -> None:
        """SIGCONT; returns once the process runs again."""
        self._signal_until(broker_id, signal.SIGCONT, "running")

    def _signal_until(self, broker_id: int, sig: signal.Signals, state: str, timeout_s: float = 5.0) -> None:
        record = self.record(f"broker-{broker_id}")
        if not send_signal(record, sig):
            raise StackError(f"broker {broker_id} was not running")
        deadline = time.monotonic() + timeout_s
        while process_state(record) != state:
            if time.monotonic() > deadline:
                raise StackError(f"broker {broker_id} is {process_state(record)}, not {state}, "
                                 f"{timeout_s:.0f} s after {sig.name}")
            time.sleep(0.01)

    def restart(self, broker_id: int) -> None:
        """Start a stopped broker again with the same id, settings and data."""
        record = self.record(f"broker-{broker_id}")
        if is_alive(record):
            raise StackError(f"broker {broker_id} is still running; stop it first")
        self._spawn_broker(broker_id)
        self._wait_broker(broker_id)

    def _wait_broker(self, broker_id: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        record = self.record(f"broker-{broker_id}")
        wait_ready(record, lambda: self._broker_ready(record), timeout_s)
        self.log(f"broker {broker_id} ready on {HOST}:{self.broker_port(broker_id)}")

    # ------------------------------------------------------------------ shared components
    def _start(self, name: str, role: str, argv: list[str], env: dict[str, str], ports: list[int],
               cwd: Path | None = None) -> ProcessRecord:
        return self._add(spawn(name, role, argv, {**base_env(), **env}, self.layout.log_dir / f"{name}.log",
                               ports, cwd=cwd))

    @property
    def etcd(self) -> EtcdGateway:
        return EtcdGateway(self.layout.etcd_url)

    def _start_etcd(self) -> None:
        layout = self.layout
        peer = f"http://{HOST}:{layout.etcd_peer_port}"
        record = self._start("etcd", "metadata", [
            str(binaries.binary_path("etcd")), "--name", "k6suite",
            "--data-dir", str(layout.data_dir / "etcd"),
            "--listen-client-urls", layout.etcd_url, "--advertise-client-urls", layout.etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"k6suite={peer}", "--log-level", "warn",
            # Operators run etcd with compaction; so does this stack. It bounds KafScale's history of
            # offsets and group state, but rewrites of a growing group record can still fill the
            # 2 GiB quota (OBS-10); heal() clears that between scenarios.
            "--auto-compaction-mode", "periodic", "--auto-compaction-retention", ETCD_HISTORY,
        ], {}, [layout.etcd_port, layout.etcd_peer_port])
        wait_ready(record, self.etcd.health, READY_TIMEOUT_S)

    def _minio_ready(self) -> str | None:
        return http_ok(f"{self.layout.minio_url}/minio/health/ready")

    def _start_minio(self) -> None:
        layout = self.layout
        access, secret = stack_credentials()
        record = self._start("minio", "storage", [
            str(binaries.binary_path("minio")), "server", "--quiet", "--anonymous",
            "--address", f"{HOST}:{layout.minio_port}",
            "--console-address", f"{HOST}:{layout.minio_console_port}",
            str(layout.data_dir / "minio"),
        ], {"MINIO_ROOT_USER": access, "MINIO_ROOT_PASSWORD": secret, "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off"}, [layout.minio_port])
        wait_ready(record, self._minio_ready, READY_TIMEOUT_S)

    def _toxiproxy_ready(self) -> str | None:
        return None if Toxiproxy(self.layout.toxiproxy_url).version() else "no version"

    def _start_toxiproxy(self) -> None:
        """Toxiproxy with one proxy per fault path: storage in front of MinIO, metadata in front of etcd."""
        layout = self.layout
        upstream = {STORAGE_PROXY: (layout.storage_proxy_port, layout.minio_port),
                    METADATA_PROXY: (layout.metadata_proxy_port, layout.etcd_port)}
        record = self._start("toxiproxy", "fault-proxy", [
            str(binaries.binary_path("toxiproxy-server")), "-host", HOST, "-port", str(layout.toxiproxy_port),
        ], {}, [layout.toxiproxy_port, *(upstream[p][0] for p in self.fault_paths)])
        wait_ready(record, self._toxiproxy_ready, READY_TIMEOUT_S)
        for path in self.fault_paths:
            listen, target = upstream[path]
            self.toxiproxy.ensure_proxy(path, f"{HOST}:{listen}", f"{HOST}:{target}")

    def _shared_ready_check(self, record: ProcessRecord) -> Callable[[], str | None] | None:
        """Probes for the shared components (None for a role the system defines itself)."""
        return {"metadata": self.etcd.health, "storage": self._minio_ready,
                "fault-proxy": self._toxiproxy_ready}.get(record.role)

    def _restart_shared(self, record: ProcessRecord) -> bool:
        """Restart a shared component; False when the role is the system's own."""
        starter = {"metadata": self._start_etcd, "storage": self._start_minio,
                   "fault-proxy": self._start_toxiproxy}.get(record.role)
        if starter is None:
            return False
        starter()
        return True


def stop_recorded(layout: StackLayout, grace_s: float = 5.0) -> dict[str, str]:
    """Stop every process recorded for a port base, whatever system started it; how each one ended."""
    state = read_state(layout.state_dir)
    records = [ProcessRecord.from_json(data) for data in state.get("processes", {}).values()]
    ended: dict[str, str] = {}
    for record in sorted(records, key=lambda r: ROLE_ORDER.index(r.role), reverse=True):
        ended[record.name] = stop(record, grace_s)
    write_state(layout.state_dir, {**state, "processes": {}})
    return ended
