"""kafka-python clients built from a profile, with every network wait bounded.

Two profile settings change what the client library does:

- ``client.idempotence``: unset (every shipped profile), the library's default runs: kafka-python 3
  is idempotent, which needs InitProducerId. A profile never switches it off to get around a target
  without InitProducerId (KafScale): what the default producer meets there is the finding.
- ``client.max_api_versions``: kafka-python picks the highest version both sides advertise. A
  target that advertises a version it mishandles (KafScale v1.5.0 and Fetch v12) can be capped.
  An embedded stack learns its caps from the build at start (stack/kafscale.py), so its profile
  names none; an external target's profile may. The cap is process-wide (kafka-python negotiates
  per connection from one shared table), is recorded in every run's manifest, and S1 probes the
  uncapped version to report the defect.
"""

from __future__ import annotations

import contextlib
import ssl
import uuid
from typing import Any

import kafka.protocol.broker_version_data as broker_version_data
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import TopicAlreadyExistsError
from kafka.protocol.api_key import ApiKey

from k6suite_lib.profiles import API_KEYS, Profile, secret

_CAPS: dict[int, int] = {}
_original_api_version = broker_version_data.BrokerVersionData.api_version


def _capped_api_version(self, operation, min_version=0, max_version=float("inf")):
    key = operation.value if isinstance(operation, ApiKey) else operation.API_KEY
    if key in _CAPS:
        max_version = min(max_version, _CAPS[key])
    return _original_api_version(self, operation, min_version, max_version)


broker_version_data.BrokerVersionData.api_version = _capped_api_version


def apply_version_caps(caps: dict[str, int]) -> None:
    """Cap the API versions kafka-python negotiates (replaces any earlier caps)."""
    _CAPS.clear()
    _CAPS.update({API_KEYS[name]: version for name, version in caps.items()})


def version_caps(profile: Profile) -> dict[str, int]:
    """The caps the embedded stack learned from its build at start, under the profile's own."""
    learned: dict[str, int] = {}
    if profile.embedded and profile.stack is not None:
        from k6suite_lib.stack.layout import StackLayout
        from k6suite_lib.stack.state import read_state

        state = read_state(StackLayout(port_base=profile.stack.port_base).state_dir)
        learned = state.get("learned", {}).get("client_caps", {})
    return {**learned, **profile.client.max_api_versions}


def active_version_caps() -> dict[str, int]:
    names = {key: name for name, key in API_KEYS.items()}
    return {names[key]: version for key, version in sorted(_CAPS.items())}


def common_config(profile: Profile, client_id: str | None = None) -> dict[str, Any]:
    """Settings shared by producers, consumers and admin clients: endpoint, security, timeouts."""
    apply_version_caps(version_caps(profile))
    settings = profile.client
    config: dict[str, Any] = {
        "bootstrap_servers": list(profile.bootstrap_servers),
        "client_id": client_id or f"k6suite-{uuid.uuid4().hex[:8]}",
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
        "reconnect_backoff_max_ms": 1000,
    }
    if settings.api_version:
        config["api_version"] = tuple(int(part) for part in settings.api_version.split("."))
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.tls.cafile)
        context.check_hostname = settings.tls.check_hostname
        if settings.tls.certfile:
            context.load_cert_chain(settings.tls.certfile, settings.tls.keyfile)
        config["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        config["sasl_mechanism"] = settings.sasl.mechanism
        config["sasl_plain_username"] = settings.sasl.username or secret(settings.sasl.username_env)
        config["sasl_plain_password"] = secret(settings.sasl.password_env)
    return config


def producer(profile: Profile, client_id: str | None = None, **overrides: Any) -> KafkaProducer:
    return KafkaProducer(**producer_config(profile, client_id, **overrides))


def producer_config(profile: Profile, client_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A producer's settings; idempotence only when the profile names it (kafka-python reads a given None as
    off, so passing the unset value would switch its default off)."""
    timeout = profile.client.request_timeout_ms
    idempotence = {} if profile.client.idempotence is None else {"enable_idempotence": profile.client.idempotence}
    return {
        **common_config(profile, client_id),
        **idempotence,
        "acks": "all",
        "max_block_ms": timeout,
        "bootstrap_timeout_ms": timeout,
        "delivery_timeout_ms": max(30000, 3 * timeout),
        "max_in_flight_requests_per_connection": 1,
        **overrides,
    }


def consumer(profile: Profile, client_id: str | None = None, **overrides: Any) -> KafkaConsumer:
    timeout = profile.client.request_timeout_ms
    config = {
        **common_config(profile, client_id),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "bootstrap_timeout_ms": timeout,
        "fetch_max_wait_ms": 200,
        **overrides,
    }
    return KafkaConsumer(**config)


def admin(profile: Profile, client_id: str | None = None, **overrides: Any) -> KafkaAdminClient:
    config = {**common_config(profile, client_id), "bootstrap_timeout_ms": profile.client.request_timeout_ms,
              **overrides}
    return KafkaAdminClient(**config)


TOPIC_READY_TIMEOUT_MS = 15_000


def create_topic(profile: Profile, name: str, partitions: int) -> None:
    """Create a topic explicitly (the KafScale proxy does not auto-create), replicated as the profile
    says (existing is fine), and wait until Metadata shows a leader for every partition.

    Creation is acknowledged before the brokers' metadata has the topic (KRaft propagates it a moment
    later); a consumer group formed in that moment is assigned only the partitions its leader could
    see, and rebalances when the rest appear, which a fault scenario would count against the system.
    Raises KafkaTimeoutError when the topic is not ready within TOPIC_READY_TIMEOUT_MS.
    """
    client = admin(profile)
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            client.create_topics({name: {"num_partitions": partitions,
                                         "replication_factor": profile.client.replication_factor}})
        client.wait_for_topics([name], timeout_ms=TOPIC_READY_TIMEOUT_MS)
    finally:
        client.close()


_TOTALS = {"connections-created": "connection-creation-total", "connections-closed": "connection-close-total"}


def count_connections(client) -> None:
    """kafka-python reports connection churn only as a windowed rate; attach cumulative totals to the
    same sensors (group 'k6suite') so reconnections can be counted from the client's own metrics."""
    from kafka.metrics.stats import Total

    registry = getattr(client, "_metrics", None)
    if registry is None:
        return
    for sensor_name, metric in _TOTALS.items():
        sensor = registry.get_sensor(sensor_name)
        if sensor is not None:
            sensor.add(registry.metric_name(metric, "k6suite", f"total {sensor_name} since instrumented"), Total())


def client_view(client) -> dict[str, Any]:
    """Connection totals (see count_connections) and the brokers this client's metadata lists."""
    metrics = client.metrics() or {}
    view: dict[str, Any] = {name: int(metrics.get("k6suite", {}).get(name, 0)) for name in _TOTALS.values()}
    cluster = getattr(client, "_metadata", None) or getattr(getattr(client, "_client", None), "cluster", None)
    if cluster is not None:
        view["brokers"] = sorted(f"{b.node_id}@{b.host}:{b.port}" for b in cluster.brokers())
    return view
