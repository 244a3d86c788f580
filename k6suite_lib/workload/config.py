"""What a workload is asked to do, and what it hands back."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from k6suite_lib import clients
from k6suite_lib.profiles import Profile


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


# What each recording client library does when nobody configures idempotence (kafka-python 3 and
# franz-go and kafka-clients 4.x turn it on; librdkafka leaves it off), and how to name its version in a history.
DEFAULT_IDEMPOTENCE = {"kafka-python": True, "librdkafka": False, "franz-go": True, "java": True}
# Produce requests each library keeps in flight per connection when the suite leaves it alone
# (without idempotence, with idempotence): librdkafka's max.in.flight.requests.per.connection is
# 1000000, capped at 5 by enable.idempotence (its CONFIGURATION.md); franz-go's
# MaxProduceRequestsInflightPerBroker is 1 without idempotence and 5 with it (kgo config.go, sink.go);
# kafka-clients' max.in.flight.requests.per.connection is 5 either way (at most 5 with idempotence).
# kafka-python runs with the workload's max_in_flight.
DEFAULT_IN_FLIGHT = {"librdkafka": (1_000_000, 5), "franz-go": (1, 5), "java": (5, 5)}
# A group member's session timeout and heartbeat interval (ms) in each library when nobody sets them, which is how
# the suite runs them (issue 17: a user with the defaults would not meet what a shorter session does under a
# fault, e.g. a paused coordinator's members expired by its successor): kafka-python 3.0.12's KafkaConsumer
# DEFAULT_CONFIG (it takes 30 s instead where it judges the broker older than 3.0; its consumers then report
# theirs, consumer.run_consumer), librdkafka's session.timeout.ms and heartbeat.interval.ms (CONFIGURATION.md),
# franz-go v1.22.3's kgo defaultCfg, kafka-clients 4.1.1's ConsumerConfig.
DEFAULT_GROUP_SESSION = {library: {"session_timeout_ms": 45000, "heartbeat_interval_ms": 3000}
                         for library in ("kafka-python", "librdkafka", "franz-go", "java")}


# The settings each library's recording producers take from the workload and the profile (producer.py,
# rdkafka.py, franzgo.py); what a library is not given runs at its own default whatever the workload asks, so
# it is not among that library's settings. "options": the library's own options the suite derives from those
# (a history's metadata "client_options"; franz-go's produce deadline split, franzgo.producer_options).
APPLIED_SETTINGS = {
    "kafka-python": ("idempotent", "acks", "max_in_flight", "linger_ms", "delivery_timeout_s", "request_timeout_ms"),
    "librdkafka": ("idempotent", "acks", "delivery_timeout_s", "request_timeout_ms"),
    "franz-go": ("idempotent", "delivery_timeout_s", "request_timeout_ms", "options"),
    "java": ("idempotent", "delivery_timeout_s", "request_timeout_ms", "options"),
}


def client_settings(meta: dict[str, Any], request_timeout_ms: int | None = None) -> dict[str, Any] | None:
    """The settings a history's producers ran with, from its metadata: the library and its version, and what
    that library was given (APPLIED_SETTINGS); a verdict's calibration record must have been measured with the
    same. request_timeout_ms: the profile's, for histories written before their metadata carried it. A history
    written before its metadata carried the library options it was given has options None: not recorded, said
    beside a verdict, not a difference (calibration.RECORDED_LATER). A group workload's history adds its members'
    session timeout and heartbeat interval ("group_session"; a history written before it carried them has no such
    key: not recorded, not a difference). None for a history that does not say which library wrote it."""
    client, version = meta.get("client"), meta.get("client_version")
    if client not in APPLIED_SETTINGS or not version:
        return None
    given = {"idempotent": meta.get("idempotent"), "options": meta.get("client_options"),
             "request_timeout_ms": meta.get("request_timeout_ms", request_timeout_ms),
             **{key: (meta.get("config") or {}).get(key) for key in ("acks", "max_in_flight", "linger_ms",
                                                                     "delivery_timeout_s")}}
    group = {"group_session": meta["group_session"]} if "group_session" in meta else {}
    return {"client": version, **{key: given[key] for key in APPLIED_SETTINGS[client]}, **group}


def library_version(library: str) -> str:
    if library == "kafka-python":
        import kafka

        return f"kafka-python {kafka.__version__}"
    if library == "librdkafka":
        import confluent_kafka

        return f"librdkafka {confluent_kafka.libversion()[0]} (confluent-kafka {confluent_kafka.version()[0]})"
    if library == "java":
        from k6suite_lib.workload import javaclient

        return f"kafka-clients {javaclient.KAFKA_CLIENTS_VERSION} (Java)"
    from k6suite_lib.workload import franzgo

    return f"franz-go {franzgo.FRANZ_GO_VERSION}"


@dataclass(frozen=True)
class WorkloadConfig:
    producers: int = 1
    # > 0: the producers run in this many worker processes (workload/workers.py), each recording a history
    # shard that is merged into the history (load beyond what one Python process offers); 0: in this process
    workers: int = 0
    consumers: int = 1
    consumer_mode: str = "assign"  # assign | group | none
    partitions: int = 1
    records: int | None = 500  # total over all producers; None: run for duration_s
    duration_s: float | None = None
    # with a nemesis: producers keep going until the nemesis has finished (its last heal may take a
    # while, e.g. a restarted broker) and then until every partition acknowledged again and
    # after_faults_min_s passed, or at most after_faults_s, so recovery after the faults is observed
    after_faults_s: float = 0.0
    after_faults_min_s: float = 3.0
    rate: float = 0.0  # total sends per second; 0 = closed loop
    acks: str | int = "all"
    idempotence: bool | None = None  # None: the profile's setting
    client: str | None = None  # the recording client library (CLIENT_LIBRARIES); None: the profile's
    linger_ms: int = 0
    max_in_flight: int = 1  # kafka-python's; librdkafka and franz-go keep their own (in_flight)
    message_bytes: int = 128
    keyed: bool = False  # True: key = producer id (hash partitioning); False: explicit round-robin
    max_outstanding: int = 1000  # per producer: unacknowledged sends before send() waits for the oldest
    topic: str | None = None  # default: a fresh topic per run
    create_topic: bool = True
    group_id: str | None = None
    commit: bool = True  # group mode: commit synchronously after every non-empty poll
    # after producers stop, live consumers read on until they reach the end offsets (or, when those are
    # unknown, go quiet for drain_quiet_s with every acknowledged record seen), stop making progress,
    # or consume_grace_s passes
    consume_grace_s: float = 20.0
    drain_quiet_s: float = 3.0
    readback: bool = True
    readback_timeout_s: float = 30.0
    delivery_timeout_s: float = 30.0
    # group members' session timeout and heartbeat interval; None: the library's own (DEFAULT_GROUP_SESSION).
    # Set one only where a scenario needs it (none does today)
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    client_metrics_s: float = 0.0  # > 0: record each client's connection totals and metadata view this often
    # > 0: producers start only once every consumer has finished a poll (waiting at most this long),
    # so live reading overlaps producing by construction rather than by luck
    await_consumers_s: float = 0.0
    # A target that keeps resetting consumers to offset 0 can make live reads grow without bound; past
    # this many history rows live consumers stop (noted in the result) so the machine's memory holds.
    max_history_rows: int = 5_000_000
    label: str = "workload"

    def __post_init__(self) -> None:
        if self.consumer_mode not in ("assign", "group", "none"):
            raise ValueError(f"consumer_mode must be assign, group or none, got {self.consumer_mode!r}")
        if (self.records is None) == (self.duration_s is None):
            raise ValueError("give exactly one of records and duration_s")
        if self.producers < 1 or self.partitions < 1 or self.consumers < 0:
            raise ValueError("need at least one producer and one partition")
        if not 0 <= self.workers <= self.producers:
            raise ValueError(f"workers must be 0 (none) up to producers ({self.producers}), got {self.workers}")

    def idempotent(self, profile: Profile) -> bool:
        """The idempotence asked for: the workload's, else the profile's, else the library's default."""
        if self.idempotence is not None:
            return self.idempotence
        if profile.client.idempotence is not None:
            return profile.client.idempotence
        return DEFAULT_IDEMPOTENCE[self.library(profile)]

    def library(self, profile: Profile) -> str:
        return self.client or profile.client.library

    def in_flight(self, profile: Profile) -> int:
        """Produce requests per connection the recording producer may have in flight: what decides whether
        reordering is legitimate. The workload's max_in_flight configures kafka-python only; librdkafka and
        franz-go run with their own defaults (DEFAULT_IN_FLIGHT)."""
        library = self.library(profile)
        if library not in DEFAULT_IN_FLIGHT:
            return self.max_in_flight
        plain, idempotent = DEFAULT_IN_FLIGHT[library]
        return idempotent if self.idempotent(profile) else plain

    def group_settings(self) -> dict[str, int]:
        """The group session settings the workload gives its members' library: only what it sets."""
        return {key: value for key, value in (("session_timeout_ms", self.session_timeout_ms),
                                              ("heartbeat_interval_ms", self.heartbeat_interval_ms))
                if value is not None}

    def group_session(self, profile: Profile) -> dict[str, int] | None:
        """The session timeout and heartbeat interval group members run with: what the workload sets, else their
        library's default (DEFAULT_GROUP_SESSION); None for a workload without a group."""
        if self.consumer_mode != "group":
            return None
        return {**DEFAULT_GROUP_SESSION[self.library(profile)], **self.group_settings()}


@dataclass
class WorkloadResult:
    run_id: str
    topic: str
    config: WorkloadConfig
    history: pd.DataFrame
    profile: str
    idempotent: bool
    started_wall: float
    duration_s: float
    notes: list[str] = field(default_factory=list)
    client: str = "kafka-python"
    request_timeout_ms: int | None = None  # the profile's, which every recording producer is given
    max_in_flight: int = 1  # the recording producer's requests in flight per connection (WorkloadConfig.in_flight)
    workers: list[dict[str, Any]] = field(default_factory=list)  # worker processes: producers, clock agreement
    # the library options its producers were given beyond the settings above (franzgo.producer_options)
    client_options: dict[str, Any] | None = None
    # a group workload's: the session timeout and heartbeat interval its members ran with (WorkloadConfig.group_session)
    group_session: dict[str, int] | None = None

    def meta(self) -> dict[str, Any]:
        """What travels with a saved history so it can be re-checked and understood later."""
        return {"run_id": self.run_id, "topic": self.topic, "profile": self.profile,
                "config": asdict(self.config), "idempotent": self.idempotent, "max_in_flight": self.max_in_flight,
                "client": self.client, "client_version": library_version(self.client),
                **({"client_options": self.client_options} if self.client_options is not None else {}),
                **({"group_session": self.group_session} if self.group_session is not None else {}),
                "request_timeout_ms": self.request_timeout_ms, "started_wall": self.started_wall,
                "duration_s": self.duration_s, "notes": self.notes,
                "version_caps": clients.active_version_caps(), **({"workers": self.workers} if self.workers else {})}
