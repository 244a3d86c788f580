"""The embedded KafScale cluster as local processes on 127.0.0.1.

Start order follows what each component needs: etcd -> MinIO -> Toxiproxy (one proxy in front
of MinIO, one in front of etcd) -> cluster snapshot in etcd -> brokers -> KafScale proxy.
Brokers do not register themselves: the broker list lives only in the snapshot, so adding a
broker means starting it and then compare-and-swapping it into the snapshot.

Every broker setting is explicit, because KafScale silently falls back to in-memory storage or
metadata when its S3 or etcd settings are incomplete; readiness therefore also checks the
broker's own log for the lines that say it uses etcd and S3.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import requests

from k6suite_lib.stack import binaries
from k6suite_lib.stack.etcd import SNAPSHOT_KEY, EtcdGateway
from k6suite_lib.stack.layout import HOST, StackLayout
from k6suite_lib.stack.process import (
    ProcessRecord,
    StackError,
    is_alive,
    log_since_start,
    log_tail,
    process_state,
    send_signal,
    spawn,
    stop,
    wait_dead,
    wait_ready,
)
from k6suite_lib.stack.state import read_state, stack_credentials, write_state
from k6suite_lib.stack.toxiproxy import METADATA_PROXY, STORAGE_PROXY, Toxiproxy

READY_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 2.0
ETCD_HISTORY = "1m"  # revisions older than this are compacted away
S3_BUCKET = "kafscale"
S3_REGION = "us-east-1"
S3_NAMESPACE = "default"
# Settings every broker gets; the S3 health window is short so storage faults heal within seconds.
BROKER_SETTINGS = {
    "KAFSCALE_PRODUCE_SYNC_FLUSH": "true",
    "KAFSCALE_FLUSH_INTERVAL_MS": "500",
    "KAFSCALE_SEGMENT_BYTES": "4194304",
    "KAFSCALE_AUTO_CREATE_TOPICS": "true",
    "KAFSCALE_AUTO_CREATE_PARTITIONS": "1",
    "KAFSCALE_ALLOW_ADMIN_APIS": "true",
    "KAFSCALE_S3_HEALTH_WINDOW_SEC": "5",
    "KAFSCALE_S3_LATENCY_WARN_MS": "500",
    "KAFSCALE_S3_LATENCY_CRIT_MS": "3000",
    "KAFSCALE_S3_ERROR_RATE_WARN": "0.2",
    "KAFSCALE_S3_ERROR_RATE_CRIT": "0.6",
    "KAFSCALE_S3_PATH_STYLE": "true",
    "KAFSCALE_STARTUP_TIMEOUT_SEC": "30",
    # debug is the only level at which the broker logs which metadata store and S3 client it uses
    "KAFSCALE_LOG_LEVEL": "debug",
}
ROLE_ORDER = ("metadata", "storage", "fault-proxy", "broker", "proxy")


def _base_env() -> dict[str, str]:
    """Child processes get a minimal environment, never the caller's credentials or AWS_* settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _port_answers(port: int) -> str | None:
    try:
        socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"{HOST}:{port} does not accept connections ({exc})"
    return None


def _http_ok(url: str, expect: str | None = None) -> str | None:
    response = requests.get(url, timeout=PROBE_TIMEOUT_S)
    if response.status_code != 200:
        return f"{url} answered HTTP {response.status_code}"
    if expect and expect not in response.text:
        return f"{url} answered {response.text.strip()[:80]!r}"
    return None


class LocalStack:
    """Start, stop and abuse the embedded cluster; state survives in outputs/stack/<port_base>/."""

    def __init__(self, layout: StackLayout, log: Callable[[str], None] = print):
        self.layout = layout
        self.log = log

    @property
    def records(self) -> dict[str, ProcessRecord]:
        """The process records on disk: the one truth shared by the CLI, the runner and notebook kernels
        (a kernel may restart a broker the runner started)."""
        state = read_state(self.layout.state_dir)
        return {name: ProcessRecord.from_json(data) for name, data in state.get("processes", {}).items()}

    @classmethod
    def for_profile(cls, profile, log: Callable[[str], None] = print) -> LocalStack:
        if not profile.embedded or profile.stack is None:
            raise StackError(f"profile {profile.name!r} does not describe an embedded stack")
        return cls(StackLayout(port_base=profile.stack.port_base, brokers=profile.stack.brokers), log=log)

    # ------------------------------------------------------------------ state
    def _save(self, records: dict[str, ProcessRecord]) -> None:
        write_state(self.layout.state_dir, {
            "port_base": self.layout.port_base,
            "processes": {name: rec.to_json() for name, rec in records.items()},
        })

    def _add(self, record: ProcessRecord) -> ProcessRecord:
        self._save({**self.records, record.name: record})
        return record

    @property
    def etcd(self) -> EtcdGateway:
        return EtcdGateway(self.layout.etcd_url)

    @property
    def toxiproxy(self) -> Toxiproxy:
        return Toxiproxy(self.layout.toxiproxy_url)

    @property
    def broker_ids(self) -> list[int]:
        return sorted(int(n.split("-")[1]) for n in self.records if n.startswith("broker-"))

    def record(self, name: str) -> ProcessRecord:
        records = self.records
        if name not in records:
            raise StackError(f"no component {name!r} in this stack (known: {', '.join(records)})")
        return records[name]

    def is_up(self) -> bool:
        records = self.records
        return bool(records) and all(is_alive(r) for r in records.values())

    # ------------------------------------------------------------------ lifecycle
    def up(self) -> float:
        """Start every component from clean data; return the start-up time in seconds."""
        if any(is_alive(r) for r in self.records.values()):
            raise StackError(f"a stack is already running on port base {self.layout.port_base}; "
                             "run `k6suite stack down` first")
        busy = [port for port in self.layout.ports() if _port_answers(port) is None]
        if busy:  # a stack of another checkout or session: its MinIO would answer with other credentials
            raise StackError(f"ports {', '.join(map(str, busy))} on {HOST} are already in use by processes this "
                             f"checkout did not start (a stack of another checkout or test session?); stop them "
                             "or choose another stack.port_base in the profile")
        started = time.monotonic()
        self._save({})
        shutil.rmtree(self.layout.data_dir, ignore_errors=True)
        self.layout.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_etcd()
            self._start_minio()
            self._start_toxiproxy()
            self._seed_snapshot(range(self.layout.brokers))
            for broker_id in range(self.layout.brokers):
                self._spawn_broker(broker_id)
            for broker_id in range(self.layout.brokers):
                self._wait_broker(broker_id)
            self._start_proxy()
        except BaseException:
            self.log("start-up failed; stopping what was started")
            self.down()
            raise
        elapsed = time.monotonic() - started
        self.log(f"stack up on 127.0.0.1 (port base {self.layout.port_base}) in {elapsed:.1f} s; "
                 f"client endpoint {self.layout.proxy_address}")
        return elapsed

    def down(self, grace_s: float = 5.0) -> dict[str, str]:
        """Stop every recorded process, last started first; return how each one ended."""
        ended: dict[str, str] = {}
        by_role = sorted(self.records.values(), key=lambda r: ROLE_ORDER.index(r.role), reverse=True)
        for record in by_role:
            ended[record.name] = stop(record, grace_s)
        self._save({})
        return ended

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

    def _ready_check(self, record: ProcessRecord) -> Callable[[], str | None]:
        layout = self.layout
        if record.role == "metadata":
            return self.etcd.health
        if record.role == "storage":
            return lambda: _http_ok(f"{layout.minio_url}/minio/health/ready")
        if record.role == "fault-proxy":
            return lambda: None if self.toxiproxy.version() else "no version"
        if record.role == "broker":
            return lambda: self._broker_ready(record)
        return lambda: (_port_answers(layout.proxy_port)
                        or _http_ok(f"http://{HOST}:{layout.proxy_health_port}/readyz", "ready"))

    # ------------------------------------------------------------------ components
    def _start(self, name: str, role: str, argv: list[str], env: dict[str, str], ports: list[int]) -> ProcessRecord:
        return self._add(spawn(name, role, argv, {**_base_env(), **env},
                               self.layout.log_dir / f"{name}.log", ports))

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
        wait_ready(record, self._ready_check(record), READY_TIMEOUT_S)

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
        wait_ready(record, self._ready_check(record), READY_TIMEOUT_S)

    def _start_toxiproxy(self) -> None:
        layout = self.layout
        record = self._start("toxiproxy", "fault-proxy", [
            str(binaries.binary_path("toxiproxy-server")), "-host", HOST, "-port", str(layout.toxiproxy_port),
        ], {}, [layout.toxiproxy_port, layout.storage_proxy_port, layout.metadata_proxy_port])
        wait_ready(record, self._ready_check(record), READY_TIMEOUT_S)
        self.toxiproxy.ensure_proxy(STORAGE_PROXY, f"{HOST}:{layout.storage_proxy_port}",
                                    f"{HOST}:{layout.minio_port}")
        self.toxiproxy.ensure_proxy(METADATA_PROXY, f"{HOST}:{layout.metadata_proxy_port}",
                                    f"{HOST}:{layout.etcd_port}")

    def _broker_entry(self, broker_id: int) -> dict:
        return {"NodeID": broker_id, "Host": HOST, "Port": self.layout.broker_port(broker_id), "Rack": None}

    def _seed_snapshot(self, broker_ids) -> None:
        snapshot = {
            "Brokers": [self._broker_entry(i) for i in broker_ids],
            "ControllerID": 0,
            "Topics": [],
            "ClusterName": "k6suite-embedded",
            "ClusterID": f"k6suite-{self.layout.port_base}",
        }
        self.etcd.put(SNAPSHOT_KEY, json.dumps(snapshot))

    def broker_env(self, broker_id: int) -> dict[str, str]:
        layout = self.layout
        access, secret = stack_credentials()
        return {
            **BROKER_SETTINGS,
            "KAFSCALE_BROKER_ID": str(broker_id),
            "KAFSCALE_BROKER_ADDR": f"{HOST}:{layout.broker_port(broker_id)}",
            "KAFSCALE_METRICS_ADDR": f"{HOST}:{layout.broker_metrics_port(broker_id)}",
            "KAFSCALE_CONTROL_ADDR": f"{HOST}:{layout.broker_control_port(broker_id)}",
            "KAFSCALE_ETCD_ENDPOINTS": f"http://{HOST}:{layout.metadata_proxy_port}",
            "KAFSCALE_S3_BUCKET": S3_BUCKET,
            "KAFSCALE_S3_REGION": S3_REGION,
            "KAFSCALE_S3_NAMESPACE": S3_NAMESPACE,
            "KAFSCALE_S3_ENDPOINT": f"http://{HOST}:{layout.storage_proxy_port}",
            "KAFSCALE_S3_ACCESS_KEY": access,
            "KAFSCALE_S3_SECRET_KEY": secret,
        }

    def _spawn_broker(self, broker_id: int) -> ProcessRecord:
        layout = self.layout
        return self._start(f"broker-{broker_id}", "broker", [str(binaries.binary_path("kafscale-broker"))],
                           self.broker_env(broker_id),
                           [layout.broker_port(broker_id), layout.broker_metrics_port(broker_id),
                            layout.broker_control_port(broker_id)])

    def _broker_ready(self, record: ProcessRecord) -> str | None:
        broker_id = int(record.name.split("-")[1])
        log = log_since_start(record)
        if "using in-memory" in log:
            raise StackError(f"{record.name} fell back to in-memory storage or metadata; see {record.log}")
        for needle in ("using etcd-backed metadata store", "using AWS-compatible S3 client",
                       f"broker listening on {HOST}:{self.layout.broker_port(broker_id)}"):
            if needle not in log:
                return f"log has no '{needle}' yet"
        return (_port_answers(self.layout.broker_port(broker_id))
                or _http_ok(f"http://{HOST}:{self.layout.broker_metrics_port(broker_id)}/readyz", "ready"))

    def _wait_broker(self, broker_id: int) -> None:
        record = self.record(f"broker-{broker_id}")
        wait_ready(record, lambda: self._broker_ready(record), READY_TIMEOUT_S)
        self.log(f"broker {broker_id} ready on {HOST}:{self.layout.broker_port(broker_id)}")

    def _start_proxy(self) -> None:
        layout = self.layout
        record = self._start("proxy", "proxy", [str(binaries.binary_path("kafscale-proxy"))], {
            "KAFSCALE_PROXY_ADDR": layout.proxy_address,
            "KAFSCALE_PROXY_ADVERTISED_HOST": HOST,
            "KAFSCALE_PROXY_ADVERTISED_PORT": str(layout.proxy_port),
            "KAFSCALE_PROXY_ETCD_ENDPOINTS": layout.etcd_url,
            "KAFSCALE_PROXY_HEALTH_ADDR": f"{HOST}:{layout.proxy_health_port}",
            "KAFSCALE_PROXY_BACKEND_RETRIES": "6",
            "KAFSCALE_PROXY_BACKEND_BACKOFF_MS": "500",
            "KAFSCALE_PROXY_BACKEND_CACHE_TTL_SEC": "60",
        }, [layout.proxy_port, layout.proxy_health_port])
        wait_ready(record, self._ready_check(record), READY_TIMEOUT_S)

    # ------------------------------------------------------------------ broker operations
    def kill(self, broker_id: int) -> None:
        """SIGKILL: the broker gets no chance to release anything."""
        record = self.record(f"broker-{broker_id}")
        if not send_signal(record, signal.SIGKILL):
            raise StackError(f"broker {broker_id} was not running")
        if not wait_dead(record, 10.0):
            raise StackError(f"broker {broker_id} survived SIGKILL")

    def terminate(self, broker_id: int, grace_s: float = 5.0) -> str:
        """SIGTERM, then SIGKILL after grace_s; returns 'terminated' or 'killed'."""
        return stop(self.record(f"broker-{broker_id}"), grace_s)

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
        """Start a stopped broker again with the same id and settings."""
        record = self.record(f"broker-{broker_id}")
        if is_alive(record):
            raise StackError(f"broker {broker_id} is still running; stop it first")
        self._spawn_broker(broker_id)
        self._wait_broker(broker_id)

    def add_broker(self) -> int:
        """Start a broker with the next free id, then append it to the snapshot (compare-and-swap)."""
        broker_id = max(self.broker_ids, default=-1) + 1
        self._spawn_broker(broker_id)
        self._wait_broker(broker_id)
        for _ in range(20):
            raw, revision = self.etcd.get(SNAPSHOT_KEY)
            snapshot = json.loads(raw) if raw else {"Brokers": [], "ControllerID": 0, "Topics": []}
            if not any(b["NodeID"] == broker_id for b in snapshot.get("Brokers") or []):
                snapshot["Brokers"] = [*(snapshot.get("Brokers") or []), self._broker_entry(broker_id)]
            if self.etcd.compare_and_swap(SNAPSHOT_KEY, revision, json.dumps(snapshot)):
                return broker_id
            time.sleep(0.05)
        raise StackError(f"could not add broker {broker_id} to the snapshot: 20 compare-and-swap conflicts")

    def heal(self) -> list[str]:
        """Restart every dead component in start order (a crash probe or a fault may kill some) and
        clear a filled etcd; returns what was repaired, so a run can report that it had to."""
        dead = [r for r in self.records.values() if not is_alive(r)]
        repaired = []
        etcd = self.records.get("etcd")
        if etcd is not None and is_alive(etcd) and "NOSPACE" in (self._probe(etcd) or ""):
            self.etcd.clear_nospace()
            self.log("healed: etcd had filled its quota (NOSPACE); compacted, defragmented, alarm disarmed")
            repaired.append("etcd (NOSPACE alarm cleared)")
        restart = {
            "metadata": lambda r: self._start_etcd(),
            "storage": lambda r: self._start_minio(),
            "fault-proxy": lambda r: self._start_toxiproxy(),
            "broker": lambda r: self.restart(int(r.name.split("-")[1])),
            "proxy": lambda r: self._start_proxy(),
        }
        for record in sorted(dead, key=lambda r: ROLE_ORDER.index(r.role)):
            restart[record.role](record)
            self.log(f"healed: restarted {record.name}")
        return repaired + [r.name for r in dead]

    def snapshot_broker_ids(self) -> list[int]:
        raw, _ = self.etcd.get(SNAPSHOT_KEY)
        return sorted(b["NodeID"] for b in (json.loads(raw).get("Brokers") or [])) if raw else []

    def logs(self, name: str, lines: int = 50) -> str:
        return log_tail(self.record(name).log, lines)

    def log_files(self) -> list[Path]:
        return sorted(self.layout.log_dir.glob("*.log"))


@contextmanager
def running(profile, log: Callable[[str], None] = print) -> Iterator[LocalStack | None]:
    """The profile's embedded stack, started unless it already runs and stopped afterwards only if
    started here. Yields None for profiles that describe an external system."""
    if not profile.embedded:
        yield None
        return
    stack = LocalStack.for_profile(profile, log=log)
    if stack.is_up():
        yield stack
        return
    binaries.install(log=lambda _msg: None)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
