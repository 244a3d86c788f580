"""Protocol probes: single requests on raw sockets, to see exactly what a target answers.

A Kafka client hides most protocol behaviour behind retries and version negotiation; these probes
do not. Each sends one request of a chosen version and reports what came back: a decoded
response, a closed connection, a refused connection or a timeout. S1 uses them for the API
version table, the single-endpoint check (Metadata lists only the endpoint), the coordinator
check (FindCoordinator returns a node that Metadata lists) and the robustness probes (requests
real clients send that a target must survive).
"""

from __future__ import annotations

import itertools
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kafka.admin  # noqa: F401 - imports every request/response class into kafka-python's registry
import pandas as pd
from kafka.protocol.api_header import ResponseClassRegistry
from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from k6suite_lib.clients import active_version_caps
from k6suite_lib.profiles import API_KEYS, Profile

_correlation = itertools.count(1)


@dataclass
class ProbeOutcome:
    """What one request got: 'response', 'closed', 'refused', 'timeout' or 'error'."""

    outcome: str
    response: Any = None
    error: str = ""
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "response"

    def describe(self) -> str:
        if self.ok:
            return f"response in {self.elapsed_ms:.0f} ms"
        return f"{self.outcome}{': ' + self.error if self.error else ''} after {self.elapsed_ms:.0f} ms"


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data.extend(chunk)
    return bytes(data)


def call(address: str, request_cls, response_cls, version: int, timeout_s: float = 5.0, **fields) -> ProbeOutcome:
    """Send one request of the given version on a fresh connection and decode the answer."""
    host, port = address.rsplit(":", 1)
    request = request_cls[version](**fields)
    request.with_header(correlation_id=next(_correlation), client_id="k6suite-probe")
    started = time.monotonic()

    def elapsed() -> float:
        return (time.monotonic() - started) * 1000

    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            sock.sendall(request.encode(header=True, framed=True))
            head = _read_exact(sock, 4)
            if head is None:
                return ProbeOutcome("closed", error="the target closed the connection without answering",
                                    elapsed_ms=elapsed())
            payload = _read_exact(sock, struct.unpack(">i", head)[0])
            if payload is None:
                return ProbeOutcome("closed", error="the connection closed in the middle of the answer",
                                    elapsed_ms=elapsed())
    except ConnectionRefusedError as exc:
        return ProbeOutcome("refused", error=str(exc), elapsed_ms=elapsed())
    except ConnectionResetError as exc:
        return ProbeOutcome("closed", error=f"reset: {exc}", elapsed_ms=elapsed())
    except TimeoutError:
        return ProbeOutcome("timeout", error=f"no answer within {timeout_s:.0f} s", elapsed_ms=elapsed())
    except OSError as exc:
        return ProbeOutcome("error", error=f"{type(exc).__name__}: {exc}", elapsed_ms=elapsed())
    try:
        response = response_cls.decode(payload, version=version, header=True)
    except Exception as exc:  # an undecodable answer is itself a finding
        return ProbeOutcome("error", error=f"undecodable response: {type(exc).__name__}: {exc}",
                            elapsed_ms=elapsed())
    return ProbeOutcome("response", response=response, elapsed_ms=elapsed())


def endpoint(profile: Profile) -> str:
    return profile.bootstrap_servers[0]


def api_versions(address: str, timeout_s: float = 5.0) -> ProbeOutcome:
    return call(address, ApiVersionsRequest, ApiVersionsResponse, 0, timeout_s)


def client_range(api_key: int) -> tuple[int | None, int | None]:
    response_cls = ResponseClassRegistry._response_class_registry.get(api_key)
    if response_cls is None:
        return None, None
    return response_cls.min_version, response_cls.max_version


def api_versions_table(outcome: ProbeOutcome) -> pd.DataFrame:
    """Per API the target advertises: its range, kafka-python's range, and what they negotiate."""
    caps = {API_KEYS[name]: version for name, version in active_version_caps().items()}
    rows = []
    for entry in outcome.response.api_keys if outcome.ok else []:
        key, low, high = entry.api_key, entry.min_version, entry.max_version
        client_low, client_high = client_range(key)
        usable_high = min(v for v in (high, client_high, caps.get(key, high)) if v is not None)
        usable_low = max(low, client_low or 0)
        negotiated = usable_high if client_high is not None and low >= 0 and usable_low <= usable_high else None
        rows.append({
            "api_key": key, "api": ApiKey(key).name if key in ApiKey._value2member_map_ else f"key {key}",
            "broker_min": low, "broker_max": high, "client_min": client_low, "client_max": client_high,
            "negotiated": negotiated, "capped_by_profile": key in caps,
            "note": "advertised with version -1 (unsupported)" if low < 0 or high < 0 else "",
        })
    columns = ["api_key", "api", "broker_min", "broker_max", "client_min", "client_max", "negotiated",
               "capped_by_profile", "note"]
    table = pd.DataFrame(rows, columns=columns)
    versions = {c: "Int64" for c in ("broker_min", "broker_max", "client_min", "client_max", "negotiated")}
    return table.astype(versions).sort_values("api_key").reset_index(drop=True)


def negotiated(table: pd.DataFrame, api: str) -> int | None:
    """The version client and target agree on for an API (None: none, or the API is not offered)."""
    row = table[table["api"] == api]
    if row.empty or pd.isna(row["negotiated"].iloc[0]):
        return None
    return int(row["negotiated"].iloc[0])


def metadata(address: str, version: int = 12, topics: list[str] | None = None) -> ProbeOutcome:
    fields: dict[str, Any] = {"topics": None if topics is None else [
        MetadataRequest.MetadataRequestTopic(name=t) for t in topics]}
    if version >= 4:
        fields["allow_auto_topic_creation"] = False
    if 8 <= version <= 10:
        fields["include_cluster_authorized_operations"] = False
    if version >= 8:
        fields["include_topic_authorized_operations"] = False
    return call(address, MetadataRequest, MetadataResponse, version, **fields)


def metadata_brokers(outcome: ProbeOutcome) -> pd.DataFrame:
    brokers = outcome.response.brokers if outcome.ok else []
    return pd.DataFrame([{"node_id": b.node_id, "host": b.host, "port": b.port, "address": f"{b.host}:{b.port}"}
                         for b in brokers], columns=["node_id", "host", "port", "address"])


# FindCoordinator answers that mean "ask again soon" (a fresh Kafka creates __consumer_offsets first)
COORDINATOR_RETRIABLE = (14, 15)  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE
NOT_COORDINATOR = 16
BATCHED_FIND_COORDINATOR = 4  # from v4 the request names keys and the answer lists coordinators
BATCHED_OFFSET_FETCH = 8  # from v8 the request and the answer are per group


def find_coordinator(address: str, group: str, version: int = 3) -> ProbeOutcome:
    if version >= BATCHED_FIND_COORDINATOR:
        return call(address, FindCoordinatorRequest, FindCoordinatorResponse, version, key_type=0,
                    coordinator_keys=[group])
    return call(address, FindCoordinatorRequest, FindCoordinatorResponse, version, key=group, key_type=0)


def coordinator(outcome: ProbeOutcome) -> dict[str, Any]:
    """node_id, host, port and error_code of a FindCoordinator answer, at any version."""
    response = outcome.response
    entry = response.coordinators[0] if response.coordinators else response
    return {"node_id": entry.node_id, "host": entry.host, "port": entry.port, "error_code": entry.error_code}


def find_coordinator_settled(address: str, group: str, version: int, timeout_s: float = 15.0) -> ProbeOutcome:
    """FindCoordinator, asked again (bounded) while the target says the coordinator is not ready yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = find_coordinator(address, group, version)
        if (not outcome.ok or coordinator(outcome)["error_code"] not in COORDINATOR_RETRIABLE
                or time.monotonic() > deadline):
            return outcome
        time.sleep(0.5)


def offset_fetch(address: str, group: str, topic: str | None, version: int) -> ProbeOutcome:
    """topic=None asks for every committed offset of the group (null topics), as admin tools do."""
    if version >= BATCHED_OFFSET_FETCH:
        group_cls = OffsetFetchRequest.OffsetFetchRequestGroup
        topics = None if topic is None else [group_cls.OffsetFetchRequestTopics(name=topic, partition_indexes=[0])]
        return call(address, OffsetFetchRequest, OffsetFetchResponse, version,
                    groups=[group_cls(group_id=group, topics=topics)], require_stable=False)
    topics = None if topic is None else [OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])]
    return call(address, OffsetFetchRequest, OffsetFetchResponse, version, group_id=group, topics=topics)


def offset_fetch_settled(address: str, find: Callable[[], str], group: str, topic: str, version: int,
                         timeout_s: float = 15.0) -> tuple[str, ProbeOutcome]:
    """OffsetFetch at the group's coordinator, asked again (bounded) while the answer says the coordinator is
    loading, unavailable or has moved (NOT_COORDINATOR, which a fresh Kafka answers while the group's
    coordinator is still being elected): a real client retries those, so a probe that stopped there would
    report a refusal no client sees. ``find`` names the coordinator again before every retry."""
    deadline = time.monotonic() + timeout_s
    coordinator_address = address
    while True:
        outcome = offset_fetch(coordinator_address, group, topic, version)
        if not outcome.ok or committed_offsets(outcome)[1] not in (*COORDINATOR_RETRIABLE, NOT_COORDINATOR) \
                or time.monotonic() > deadline:
            return coordinator_address, outcome
        time.sleep(0.5)
        coordinator_address = find()


def committed_offsets(outcome: ProbeOutcome) -> tuple[list[int], int]:
    """The committed offsets an OffsetFetch answer lists, and its (group or top-level) error code."""
    response = outcome.response
    if response.groups:
        group = response.groups[0]
        return [p.committed_offset for t in group.topics for p in t.partitions], group.error_code
    return [p.committed_offset for t in response.topics for p in t.partitions], response.error_code


def fetch_by_name(address: str, topic: str, version: int = 12) -> ProbeOutcome:
    """A Fetch that names its topic, at a version where names are still used (v12 is the last)."""
    partition = FetchRequest.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                                      last_fetched_epoch=-1, log_start_offset=-1,
                                                      partition_max_bytes=1 << 20)
    return call(address, FetchRequest, FetchResponse, version, replica_id=-1, max_wait_ms=100, min_bytes=1,
                max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                topics=[FetchRequest.FetchTopic(topic=topic, partitions=[partition])], forgotten_topics_data=[],
                rack_id="")


def produce_two_partitions(address: str, topic: str, version: int = 9) -> ProbeOutcome:
    """One Produce request carrying batches for partitions 0 and 1 (what a batching client sends)."""
    from kafka.record.memory_records import MemoryRecordsBuilder

    def batch() -> bytes:
        builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 16)
        builder.append(timestamp=None, key=None, value=b"k6suite-probe", headers=[])
        builder.close()
        return builder.buffer()

    data = ProduceRequest.TopicProduceData
    partitions = [data.PartitionProduceData(index=p, records=batch()) for p in (0, 1)]
    return call(address, ProduceRequest, ProduceResponse, version, transactional_id=None, acks=-1,
                timeout_ms=5000, topic_data=[data(name=topic, partition_data=partitions)])


def established_connections(port: int) -> int:
    """Established TCP connections whose local end is port (server side), from /proc/net/tcp*."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]  # noqa: SIM115 - tiny procfs file
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


# the kernel's socket diagnostics (linux/sock_diag.h, inet_diag.h, tcp.h): a dump of established TCP sockets
# with each one's tcp_info, where tcpi_last_data_recv (ms) lies at byte 52 and tcpi_bytes_received at 128
_SOCK_DIAG, _BY_FAMILY, _DUMP_REQUEST, _DONE, _ERROR = 4, 20, 0x301, 3, 2
_DIAG_MSG, _INFO_ATTR, _ESTABLISHED = 72, 2, 1


def tcp_traffic(port: int) -> list[dict[str, int]]:
    """Every established TCP connection whose local end is port (server side), with the bytes it has received
    and the milliseconds since it last received data, from the kernel's socket diagnostics (the embedded stack
    runs on this machine): what went through a listener, e.g. Toxiproxy's, over a while is the difference."""
    found = []
    for family in (socket.AF_INET, socket.AF_INET6):
        request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 1 << (_INFO_ATTR - 1), 1 << _ESTABLISHED)
        request += bytes(48)  # every socket: the kernel filters by state only, the port is checked here
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _SOCK_DIAG) as diag:
            diag.settimeout(5)
            diag.send(struct.pack("=IHHII", 16 + len(request), _BY_FAMILY, _DUMP_REQUEST, 1, 0) + request)
            done = False
            while not done:
                data, offset = diag.recv(1 << 16), 0
                while offset < len(data) and not done:
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == _ERROR:
                        errno = -struct.unpack_from("=i", data, offset + 16)[0]
                        raise OSError(f"socket diagnostics refused the dump (errno {errno})")
                    done = kind == _DONE
                    if not done:
                        found.extend(_connection(data[offset + 16:offset + length], port))
                    offset += (length + 3) & ~3
    return found


def _connection(message: bytes, port: int) -> list[dict[str, int]]:
    local, remote = struct.unpack_from(">HH", message, 4)
    at = _DIAG_MSG
    while local == port and at + 4 <= len(message):
        length, kind = struct.unpack_from("=HH", message, at)
        if length < 4:
            break
        if kind == _INFO_ATTR and length - 4 >= 136:
            return [{"remote_port": remote, "last_data_recv_ms": struct.unpack_from("=I", message, at + 4 + 52)[0],
                     "bytes_received": struct.unpack_from("=Q", message, at + 4 + 128)[0]}]
        at += (length + 3) & ~3
    return []


def connection_spread(address: str, broker_ports: dict[int, int], connections: int,
                      group: str = "k6suite-spread") -> pd.DataFrame:
    """Open client connections to the endpoint, make each one reach a broker, and count per broker
    (from the kernel's socket table: the embedded stack runs on this machine) how many landed."""
    from kafka.protocol.admin import ListGroupsRequest

    version = negotiated(api_versions_table(api_versions(address)), "ListGroups")
    if version is None:
        raise ValueError(f"{address} does not offer ListGroups, which the spread probe forwards to a broker")
    before = {b: established_connections(port) for b, port in broker_ports.items()}
    host, port = address.rsplit(":", 1)
    sockets = []
    try:
        for _ in range(connections):
            sock = socket.create_connection((host, int(port)), timeout=5)
            request = ListGroupsRequest[version]()
            request.with_header(correlation_id=next(_correlation), client_id=group)
            sock.sendall(request.encode(header=True, framed=True))
            head = _read_exact(sock, 4)
            if head is not None:
                _read_exact(sock, struct.unpack(">i", head)[0])
            sockets.append(sock)
        after = {b: established_connections(p) for b, p in broker_ports.items()}
    finally:
        for sock in sockets:
            sock.close()
    return pd.DataFrame([{"broker": b, "port": broker_ports[b], "connections": after[b] - before[b]}
                         for b in sorted(broker_ports)])


def connection_storm(address: str, total: int, concurrent: int, seed: int = 1, timeout_s: float = 5.0,
                     deadline_s: float = 120.0) -> pd.DataFrame:
    """Open `total` connections, keeping up to `concurrent` open, closing random ones to make room;
    each new connection performs the ApiVersions handshake. One row per attempt: outcome, ms."""
    import random
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < concurrent + 256 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, concurrent + 1024), hard))
    rng = random.Random(seed)
    host, port = address.rsplit(":", 1)
    request = ApiVersionsRequest[0]()
    open_socks: list[socket.socket] = []
    rows = []
    stop_at = time.monotonic() + deadline_s
    try:
        for attempt in range(total):
            if time.monotonic() > stop_at:
                break
            while len(open_socks) >= concurrent:
                open_socks.pop(rng.randrange(len(open_socks))).close()
            started = time.monotonic()
            try:
                sock = socket.create_connection((host, int(port)), timeout=timeout_s)
                request.with_header(correlation_id=next(_correlation), client_id="k6suite-storm")
                sock.sendall(request.encode(header=True, framed=True))
                head = _read_exact(sock, 4)
                if head is None or _read_exact(sock, struct.unpack(">i", head)[0]) is None:
                    sock.close()
                    outcome = "closed"
                else:
                    open_socks.append(sock)
                    outcome = "ok"
                error = ""
            except OSError as exc:
                outcome, error = "error", f"{type(exc).__name__}: {exc}"
            rows.append({"attempt": attempt, "outcome": outcome, "error": error, "open": len(open_socks),
                         "ms": (time.monotonic() - started) * 1000})
    finally:
        for sock in open_socks:
            sock.close()
    return pd.DataFrame(rows, columns=["attempt", "outcome", "error", "open", "ms"])
