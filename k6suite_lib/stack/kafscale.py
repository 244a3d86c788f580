"""The embedded KafScale cluster as local processes on 127.0.0.1.

Start order follows what each component needs: etcd -> MinIO -> Toxiproxy (one proxy in front
of MinIO, one in front of etcd) -> cluster snapshot in etcd -> brokers -> KafScale proxy.
Brokers do not register themselves: the broker list lives only in the snapshot, so adding a
broker means starting it and then compare-and-swapping it into the snapshot.

Every broker setting is explicit, because KafScale silently falls back to in-memory storage or
metadata when its S3 or etcd settings are incomplete; readiness therefore also checks the
broker's own log for the lines that say it uses etcd and S3.

Access control (a stack started with security, S8): v1.5.0 has ACLs but no authentication. The
principal is whatever client.id a client sends (KAFSCALE_PRINCIPAL_SOURCE=client_id, the default;
the proxy forwards it untouched), so the brokers get a deny-by-default ACL in which each tenant's
client.id may use its own topics and groups and the suite's admin client.id everything. There is
no TLS: no listener of v1.5.0 speaks it.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable

from k6suite_lib import metrics, probes
from k6suite_lib.probes import established_connections
from k6suite_lib.profiles import API_KEYS
from k6suite_lib.stack.base import (
    READY_TIMEOUT_S,
    S3_REGION,
    EmbeddedStack,
    Security,
    broker_id_of,
    http_ok,
    port_answers,
)
from k6suite_lib.stack.etcd import SNAPSHOT_KEY
from k6suite_lib.stack.layout import HOST, StackLayout
from k6suite_lib.stack.process import ProcessRecord, StackError, is_alive, log_since_start, stop, wait_ready
from k6suite_lib.stack.state import stack_credentials

S3_BUCKET = "kafscale"
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

# Lines a broker logs once it uses etcd, S3 and its listener; only those its binary contains are awaited.
BROKER_READY_LINES = ("using etcd-backed metadata store", "using AWS-compatible S3 client", "broker listening on")
PROXY_DISCOVERY_S = 15.0  # how long the proxy may take to list brokers learned from etcd
PROXY_SERVE_S = 30.0  # ... and with a static broker list
CAPS_PROBE_TOPIC = "k6suite-version-probe"
# kafka-python 3's fetcher asks Fetch v12 at most (it has no topic ids), below what its protocol classes know
CLIENT_ASKS = {"Fetch": 12}  # never created: an error answer proves the request was parsed


@functools.lru_cache(maxsize=64)
def binary_mentions(binary: str, text: str) -> bool:
    """Whether a binary contains a string (a setting it reads, a line it can log): the build's own
    configuration surface, read from the build instead of assumed from one version."""
    with open(binary, "rb") as handle:
        return text.encode() in handle.read()


def _telling_line(log: str) -> str:
    """The last warning or error a process logged, else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    telling = [line for line in lines if re.search(r"(?i)\b(warn|error|fatal|panic)", line)]
    return (telling or lines or ["(empty)"])[-1][:300]


class KafScaleStack(EmbeddedStack):
    """etcd, MinIO, Toxiproxy, KafScale brokers and the KafScale proxy (the single client endpoint)."""

    system = "kafscale"
    fault_paths = ("storage", "metadata")
    has_object_store = True
    no_tls_reason = ("KafScale has no TLS listener for Kafka clients (v1.5.0: no crypto/tls import and no TLS "
                     "setting in its source; docs/operations.md: 'broker/console TLS env flags are not wired in v1', "
                     "terminate TLS at a load balancer or ingress in front of the proxy; v1.6.0 and main 7aa2a11: "
                     "TLS settings only for the proxy's LFS HTTP API and its backends)")
    access_control = ("ACLs keyed by the client.id a client claims (KAFSCALE_ACL_JSON, default deny); no "
                      "authentication: no SASL, no TLS (the broker itself logs 'ACL enabled with client_id principal "
                      "source; client.id is spoofable without trusted edge auth')")

    @classmethod
    def addresses(cls, layout: StackLayout) -> dict[str, tuple[str, ...] | str]:
        return {
            "bootstrap_servers": (layout.proxy_address,),
            "metrics_urls": tuple(layout.broker_metrics_url(i) for i in range(layout.brokers)),
            "etcd_endpoints": (layout.etcd_url,),
            "object_store.endpoint": layout.minio_url,
            "object_store.bucket": S3_BUCKET,
        }

    def _start_components(self) -> None:
        self._start_etcd()
        self._start_minio()
        self._start_toxiproxy()
        self._seed_snapshot(range(self.layout.brokers))
        for broker_id in range(self.layout.brokers):
            self._spawn_broker(broker_id)
        for broker_id in range(self.layout.brokers):
            self._wait_broker(broker_id)
        self._start_proxy()
        self._require_proxy_serves()
        self._learn_client_caps()

    def _ready_check(self, record: ProcessRecord) -> Callable[[], str | None]:
        shared = self._shared_ready_check(record)
        if shared is not None:
            return shared
        if record.role == "broker":
            return lambda: self._broker_ready(record)
        return lambda: (port_answers(self.layout.proxy_port)
                        or http_ok(f"http://{HOST}:{self.layout.proxy_health_port}/readyz", "ready"))

    def _restart_component(self, record: ProcessRecord) -> None:
        if self._restart_shared(record):
            return
        if record.role == "broker":
            self.restart(broker_id_of(record))
        else:
            self._start_proxy()

    def heal(self) -> list[str]:
        """Restart dead components, and clear an etcd whose quota filled (KafScale can do that, OBS-10)."""
        repaired = []
        etcd = self.records.get("etcd")
        if etcd is not None and is_alive(etcd) and "NOSPACE" in (self._probe(etcd) or ""):
            self.etcd.clear_nospace()
            self.log("healed: etcd had filled its quota (NOSPACE); compacted, defragmented, alarm disarmed")
            repaired.append("etcd (NOSPACE alarm cleared)")
        return repaired + super().heal()

    # ------------------------------------------------------------------ brokers
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
            **(acl_settings(self.security) if self.security else {}),
        }

    def _spawn_broker(self, broker_id: int) -> ProcessRecord:
        layout = self.layout
        return self._start(f"broker-{broker_id}", "broker", [self.build.paths["kafscale-broker"]],
                           self.broker_env(broker_id),
                           [layout.broker_port(broker_id), layout.broker_metrics_port(broker_id),
                            layout.broker_control_port(broker_id)])

    def _broker_ready(self, record: ProcessRecord) -> str | None:
        broker_id = broker_id_of(record)
        log = log_since_start(record)
        if "using in-memory" in log:
            raise StackError(f"{record.name} fell back to in-memory storage or metadata; see {record.log}")
        # the lines this build can log at all (a newer build may word them otherwise, or not log them)
        broker = self.build.paths["kafscale-broker"]
        for needle in [n for n in BROKER_READY_LINES if binary_mentions(broker, n)] or ["broker listening on"]:
            if needle not in log:
                return f"log has no '{needle}' yet"
        return (port_answers(self.layout.broker_port(broker_id))
                or http_ok(f"http://{HOST}:{self.layout.broker_metrics_port(broker_id)}/readyz", "ready"))

    def _start_proxy(self) -> None:
        """The proxy learns the brokers from the etcd snapshot, unless start-up learned that this build
        needs them listed statically (KAFSCALE_PROXY_BACKENDS; see _require_proxy_serves)."""
        layout = self.layout
        env = {
            "KAFSCALE_PROXY_ADDR": layout.proxy_address,
            "KAFSCALE_PROXY_ADVERTISED_HOST": HOST,
            "KAFSCALE_PROXY_ADVERTISED_PORT": str(layout.proxy_port),
            "KAFSCALE_PROXY_ETCD_ENDPOINTS": layout.etcd_url,
            "KAFSCALE_PROXY_HEALTH_ADDR": f"{HOST}:{layout.proxy_health_port}",
            "KAFSCALE_PROXY_BACKEND_RETRIES": "6",
            "KAFSCALE_PROXY_BACKEND_BACKOFF_MS": "500",
            "KAFSCALE_PROXY_BACKEND_CACHE_TTL_SEC": "60",
        }
        if self.learned.get("proxy_backends"):
            env["KAFSCALE_PROXY_BACKENDS"] = self.learned["proxy_backends"]
        record = self._start("proxy", "proxy", [self.build.paths["kafscale-proxy"]], env,
                             [layout.proxy_port, layout.proxy_health_port])
        wait_ready(record, self._ready_check(record), READY_TIMEOUT_S)

    def _proxy_brokers(self) -> str | None:
        """None when the proxy's Metadata lists a broker (clients can bootstrap), else what it answered."""
        answer = probes.metadata(self.layout.proxy_address, version=1)
        if not answer.ok:
            return f"Metadata: {answer.describe()}"
        brokers = len(answer.response.brokers)
        return None if brokers else "the proxy lists 0 brokers in Metadata"

    def _wait_proxy_brokers(self, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        why = self._proxy_brokers()
        while why and time.monotonic() < deadline:
            time.sleep(0.5)
            why = self._proxy_brokers()
        return why

    def _require_proxy_serves(self) -> None:
        """Clients bootstrap from the proxy's Metadata: it must list a broker. A build whose proxy finds
        no brokers through etcd (v1.6.0's readiness needs KAFSCALE_PROXY_BACKENDS, its docs say) is
        started again with the static list when its binary reads that setting, and the report says so;
        a proxy that still lists none stops the run with one error naming why."""
        why = self._wait_proxy_brokers(PROXY_DISCOVERY_S)
        waited = PROXY_DISCOVERY_S
        if why and binary_mentions(self.build.paths["kafscale-proxy"], "KAFSCALE_PROXY_BACKENDS"):
            backends = ",".join(f"{HOST}:{self.layout.broker_port(b)}" for b in range(self.layout.brokers))
            self.log(f"{why} {PROXY_DISCOVERY_S:.0f} s after start with brokers from etcd; this build reads "
                     "KAFSCALE_PROXY_BACKENDS: starting the proxy again with the static broker list")
            stop(self.record("proxy"), 5.0)
            self._learn(proxy_backends=backends, notes=[*self.learned.get("notes", []), (
                f"the proxy listed no brokers {PROXY_DISCOVERY_S:.0f} s after start with brokers from the etcd "
                f"snapshot ({why}); it runs with KAFSCALE_PROXY_BACKENDS={backends}, so brokers added later "
                "are not reached through it")])
            self._start_proxy()
            why = self._wait_proxy_brokers(PROXY_SERVE_S)
            waited += PROXY_SERVE_S
        if why:
            record = self.record("proxy")
            raise StackError(f"{self.build.label} cannot serve clients: {why} {waited:.0f} s after start "
                             f"(proxy log {record.log}: {_telling_line(log_since_start(record))})")

    def _learn_client_caps(self) -> None:
        """The highest version of each data API that kafka-python would use and this build survives.

        ApiVersions says what the build advertises; a request shaped as real clients send it (Fetch
        naming its topic, Produce batching two partitions, both to a topic that does not exist) at the
        version kafka-python would pick says whether the build survives it: a closed connection or an
        undecodable answer refuses the version; an answer, or none within 5 s (the build waits for the
        missing topic), accepts it. Refused versions are stepped down until one is accepted, and that
        cap is recorded for every client of the stack (v1.5.0: Fetch 11, Produce 8).
        """
        address = self.layout.proxy_address
        versions = probes.api_versions(address)
        if not versions.ok:
            raise StackError(f"{self.build.label}: ApiVersions through the proxy: {versions.describe()}")
        advertised = {entry.api_key: (entry.min_version, entry.max_version) for entry in versions.response.api_keys}
        caps: dict[str, int] = {}
        refused: list[str] = []
        for api, probe in (("Fetch", probes.fetch_by_name), ("Produce", probes.produce_two_partitions)):
            low, high = advertised.get(API_KEYS[api], (-1, -1))
            client_high = CLIENT_ASKS.get(api, probes.client_range(API_KEYS[api])[1])
            version = min(high, client_high if client_high is not None else high)
            top = version
            while version >= max(low, 0):
                answer = probe(address, CAPS_PROBE_TOPIC, version)
                if answer.outcome in ("response", "timeout"):  # parsed: a missing topic may only delay the answer
                    break
                refused.append(f"{api} v{version}: {answer.describe()}")
                version -= 1
            if version < max(low, 0):
                raise StackError(f"{self.build.label} answers no {api} version kafka-python speaks "
                                 f"(advertised {low}-{high}): {'; '.join(refused)}")
            if version < top:
                caps[api] = version
        healed = self.heal()
        self._learn(client_caps=caps, caps_evidence=refused, caps_probe_killed=healed)
        if caps:
            self.log(f"client version caps learned from the build: {caps} ({'; '.join(refused)})")

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

    def snapshot_broker_ids(self) -> list[int]:
        raw, _ = self.etcd.get(SNAPSHOT_KEY)
        return sorted(b["NodeID"] for b in (json.loads(raw).get("Brokers") or [])) if raw else []

    def fault_target(self, topic: str | None = None) -> int:
        """The broker with the highest produce rate (its own kafscale_produce_rps), then the most
        established connections: behind the proxy, partition ownership is not visible to clients."""
        ids = self.broker_ids
        urls = {b: self.broker_metrics_url(b) for b in ids}
        samples = metrics.scrape(list(urls.values()), timeout_s=2.0)
        rates = metrics.series(samples, "kafscale_produce_rps").set_index("url")["value"]
        load = {b: (float(rates.get(urls[b], 0.0)), established_connections(self.broker_port(b))) for b in ids}
        return max(ids, key=lambda b: load[b])

    def broker_metrics_url(self, broker_id: int) -> str:
        return self.layout.broker_metrics_url(broker_id)

    def workload_load(self, broker_id: int, topic: str | None = None) -> dict:
        """Connections (from the proxy) and the broker's own produce rate (kafscale_produce_rps)."""
        load = super().workload_load(broker_id, topic)
        rates = metrics.series(metrics.scrape([self.broker_metrics_url(broker_id)], timeout_s=2.0),
                               "kafscale_produce_rps")
        if len(rates):
            load["produce_rps"] = float(rates["value"].iloc[0])
        return load


def acl_settings(security: Security) -> dict[str, str]:
    """Broker settings for v1.5.0's ACLs: deny by default; each tenant's client.id may do anything
    ("*") to the topics and groups of its scope, the admin's to everything. v1.5.0 checks CreateTopics
    and DeleteTopics against admin on the cluster, not on a topic (allowAdmin in cmd/broker/main.go),
    so no rule lets a tenant create or delete topics in its scope only; tenants get no cluster admin,
    which would reach every topic."""
    def rules(name: str) -> list[dict[str, str]]:
        return [{"action": "*", "resource": kind, "name": name} for kind in ("topic", "group")]

    principals = [{"name": security.admin, "allow": [{"action": "*", "resource": "*", "name": "*"}]}]
    principals += [{"name": tenant, "allow": rules(f"{security.scope(tenant)}*")} for tenant in security.tenants]
    return {"KAFSCALE_ACL_ENABLED": "true", "KAFSCALE_ACL_FAIL_OPEN": "false",
            "KAFSCALE_ACL_JSON": json.dumps({"default_policy": "deny", "principals": principals})}
