"""S8 permission boundary: two tenants with different credentials reach inside and outside their scope.

On an embedded profile S8 starts its own one-broker stack of the same system beside the profile's
(port base + 200, as S6 does) with access control (stack.base.Security): each tenant owns the topics
and groups named '<tenant>.*', and the suite's admin principal sets up. The profile's stack stays
PLAINTEXT without ACLs, so no other scenario is affected. What the system can enforce decides how
the tenants connect: SASL with their own passwords where it authenticates (PLAIN on Apache Kafka,
SCRAM-SHA-512 on Tansu with --authentication), else only a client.id naming the tenant (KafScale's
ACL principal).

Each tenant's own kafka-python clients (client.id = the tenant) try produce, consume, describe (Metadata
for a topic), list topics, join a group, commit, create a topic and delete a topic, inside the tenant's
scope (expected allowed) and in the other tenant's (expected denied). After each denied attempt the
same client does authorized work, which must still succeed. A client claiming the other tenant's
client.id reads the other tenant's topic, and the SASL exchange is tried with the other tenant's
password (on a raw connection that, as an intruder would, then asks for Metadata whatever the
exchange said). Where even the suite's admin cannot log in (Tansu: no user can be created), the
set-up is a failed attempt and only the logins run: the other checks say NOT TESTED. Every attempt
becomes a row (operation, tenant, target, expected, outcome, error, ms); the verdicts are read from
that table. Destructive attempts come last, so a system that lets one tenant
delete the other's topic does not spoil the other measurements.

Two kafka-python 3.0.12 habits are worked around so the table shows what the system answered: a
consumer of a topic whose Metadata says TOPIC_AUTHORIZATION_FAILED polls on silently (the refusal is
read from the consumer's own metadata), and a refused SASL login surfaces only as a lost connection
until the bootstrap times out (the login is therefore done on a raw connection).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from kafka import KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError, for_code
from kafka.net.sasl.scram import ScramClient
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from kafka.structs import OffsetAndMetadata

from k6suite_lib import clients
from k6suite_lib.checkers.verdicts import AtMost, Below, Equals, EveryOf, verdict
from k6suite_lib.probes import _read_exact
from k6suite_lib.profiles import Profile, SaslSettings, beside
from k6suite_lib.scenario import Scenario
from k6suite_lib.stack import EmbeddedStack, Security, open_stack
from k6suite_lib.workload.config import client_settings, library_version

VARIANT = "permissions"
TENANTS = ("tenant-a", "tenant-b")
SECURED_STACK_OFFSET = 200  # the secured stack's port base, relative to the profile's (see stack.layout)
RECORDS = 5  # each tenant's records, the ones the other tenant must not read
WAIT_S = 20.0  # any attempt gives up after this; judge() wants refusals within its bound_s
# The suite's group session (Tansu holds a new group's first JoinGroup for half of it; kafka-python's
# default of 45 s would hold it 22.5 s).
GROUP_SETTINGS = {"session_timeout_ms": 10000, "heartbeat_interval_ms": 1000}
# The refusals a client can act on: Kafka's authorization and authentication errors.
CLEAN_REFUSALS = {29: "TOPIC_AUTHORIZATION_FAILED", 30: "GROUP_AUTHORIZATION_FAILED",
                  31: "CLUSTER_AUTHORIZATION_FAILED", 58: "SASL_AUTHENTICATION_FAILED"}
COLUMNS = ["tenant", "client_id", "operation", "target", "expected", "outcome", "error", "ms", "records",
           "foreign_topics", "then_authorized", "detail"]
CHECKS = (
    ("every unauthorized operation is refused with a clean Kafka error", "F7.1 / F7.2"),
    ("refusals come within the bound", "F7.2"),
    ("after a refusal the same client still does authorized work", "F7.2"),
    ("every authorized operation inside the tenant's scope works", "F7"),
    ("0 records of one tenant readable by the other", "F7.3"),
    ("Metadata does not list the other tenant's topics", "F7.3"),
    ("a wrong password is refused", "F7.1"),
)


@dataclass(frozen=True)
class Done:
    """What an operation that worked returned, for the table."""

    records: int | None = None  # consumers only: records read of the topic owner's
    foreign_topics: int | None = None
    detail: str = ""


class NoAnswer(KafkaTimeoutError):
    """Neither worked nor refused within the wait (what a silent client looks like); keeps the records it
    did read, so a partial leak still counts."""

    def __init__(self, message: str, records: int | None = None):
        super().__init__(message)
        self.records = records


# ---------------------------------------------------------------------------------------------- profiles
def principal_profile(profile: Profile, stack: EmbeddedStack, principal: str) -> Profile:
    """How a principal connects: SASL/PLAIN with its own password (by variable name) where the system
    authenticates, else as the profile says (its client.id is then all that names it)."""
    if not stack.authenticates:
        return profile
    sasl = SaslSettings(mechanism=stack.sasl_mechanism, username=principal,
                        password_env=stack.password_env(principal))
    return dataclasses.replace(profile, client=dataclasses.replace(profile.client, security_protocol="SASL_PLAINTEXT",
                                                                   sasl=sasl))


def producer_settings(profile: Profile) -> dict[str, Any] | None:
    """The settings the tenants' producers (clients.producer) run with, as a calibration record keeps them
    (workload.config.client_settings): a change of clients.producer's settings makes S8's record stale."""
    given = clients.producer_config(profile)
    return client_settings({
        "client": "kafka-python", "client_version": library_version("kafka-python"),
        "idempotent": given.get("enable_idempotence", KafkaProducer.DEFAULT_CONFIG["enable_idempotence"]),
        "request_timeout_ms": given["request_timeout_ms"],
        "config": {"acks": given["acks"], "max_in_flight": given["max_in_flight_requests_per_connection"],
                   "linger_ms": given.get("linger_ms", KafkaProducer.DEFAULT_CONFIG["linger_ms"]),
                   "delivery_timeout_s": given["delivery_timeout_ms"] / 1000}})


# ---------------------------------------------------------------------------------------------- the steps
def attempt_all(sc: Scenario) -> pd.DataFrame:
    """Start the secured stack, make every attempt, stop the stack; the table of attempts (also saved
    as attempts.csv and in results.json)."""
    if sc.stack is None:
        for check, requirement in CHECKS:
            sc.not_tested(VARIANT, check, requirement, "S8 runs on a secured stack of an embedded system, which "
                          "generates the tenants' credentials; this profile names no tenants")
        return pd.DataFrame(columns=COLUMNS)
    # the tenants' producers differ from the scenario profile's only in address and credentials
    sc.client_settings[VARIANT] = producer_settings(sc.profile)
    profile, security = beside(sc.profile, SECURED_STACK_OFFSET, "secured"), Security(TENANTS)
    stack = open_stack(profile, log=lambda msg: print(f"[secured stack] {msg}"), security=security)
    client_log = ClientLog()
    stack.up()
    logging.getLogger("kafka").addHandler(client_log)
    try:
        table = Attempts(sc.run_id, stack, profile, security).run()
    finally:
        logging.getLogger("kafka").removeHandler(client_log)
        stack.down()
    sc.measure("client_log", dict(client_log.counts.most_common(20)))
    sc.measure("access_control", f"{stack.system}: {stack.access_control}")
    sc.measure("tenant_security_protocol", principal_profile(profile, stack, TENANTS[0]).client.security_protocol)
    sc.measure("attempts", table)
    path = sc.out_dir / "attempts.csv"
    table.to_csv(path, index=False)
    sc.artifacts.append(path.name)
    return table


def judge(sc: Scenario, table: pd.DataFrame, bound_s: float = 10.0) -> None:
    """Add the verdicts, each read from the attempts table (sc.finish() shows them)."""
    if table.empty:
        return
    system = sc.measurements.get("access_control", "")
    denied = table[table["expected"] == "denied"]
    allowed = table[table["expected"] == "allowed"]
    refused = denied[denied["outcome"] == "refused"]
    unclean = denied[denied["outcome"] != "refused"]
    leaks = denied[denied["records"].fillna(0) > 0]
    broken = refused[refused["then_authorized"].eq(False)]  # None: the attempt has no follow-up
    failed = allowed[allowed["outcome"] != "ok"]
    listing = table[table["operation"] == "list topics"]
    # reading none of the other's records proves nothing unless the other wrote them there first; a read
    # that returned records is a leak however the writes went
    unwritten = allowed[(allowed["operation"] == "produce") & (allowed["outcome"] != "ok")]
    consumes = denied[denied["operation"].str.startswith("consume")]
    reads = consumes if unwritten.empty or len(leaks) else denied.iloc[:0]
    logins = table[table["operation"] == "authenticate (wrong password)"]
    rows = [
        verdict(CHECKS[0][0], CHECKS[0][1], len(unclean), AtMost(0),
                f"{len(denied) - len(unclean)} of {len(denied)} denied attempts refused with "
                f"{'/'.join(CLEAN_REFUSALS.values())}. {_list(unclean)} System: {system}"),
        verdict(CHECKS[1][0], CHECKS[1][1], refused["ms"].max() if len(refused) else None,
                Below(bound_s * 1000, " ms"), f"slowest of {len(refused)} refusals" if len(refused)
                else "no attempt was refused, so no refusal could be timed", unit=" ms"),
        verdict(CHECKS[2][0], CHECKS[2][1], len(broken) if len(refused) else None, AtMost(0),
                (f"{len(refused) - len(broken)} of {len(refused)} refused clients then did authorized work on "
                 f"the same client (produce, consume, describe or ListOffsets in its own scope). {_list(broken)}")
                if len(refused) else "no attempt was refused"),
        verdict(CHECKS[3][0], CHECKS[3][1], len(failed), AtMost(0),
                f"{len(allowed) - len(failed)} of {len(allowed)} attempts inside the scope worked. {_list(failed)}"),
        verdict(CHECKS[4][0], CHECKS[4][1], int(leaks["records"].sum()) if len(reads) else None,
                AtMost(0, " records"),
                (f"consumers of the other tenant's topic (with their own identity, and claiming the other's "
                 f"client.id) read {int(leaks['records'].sum())} of its records. {_list(leaks)}") if len(reads)
                else f"a tenant's own records were never written, so reading none of them proves nothing. "
                f"{_list(unwritten)}" if len(unwritten)
                else f"no tenant could try to read the other's topic. {_list(failed)}", unit=" records"),
        verdict(CHECKS[5][0], CHECKS[5][1], int(listing["foreign_topics"].sum()) if len(listing) else None,
                AtMost(0, " topics"),
                "; ".join(f"{r.tenant}: {r.detail}" for r in listing.itertuples()) if len(listing)
                else f"no tenant could list topics. {_list(failed)}", unit=" topics"),
        verdict(CHECKS[6][0], CHECKS[6][1], dict(zip(logins["tenant"], _shown(logins), strict=True)),
                EveryOf(Equals("refused: SaslAuthenticationFailedError (58)", "SASL_AUTHENTICATION_FAILED"),
                        "tenant logging in with the other tenant's password"),
                _login_evidence(sc, logins)),
    ]
    sc.add_rows(VARIANT, rows)


def _shown(rows: pd.DataFrame) -> list[str]:
    return [f"{r.outcome}: {r.error}" if r.error else r.outcome for r in rows.itertuples()]


def _list(rows: pd.DataFrame, limit: int = 8) -> str:
    """The offending attempts, briefly (the table has them all)."""
    items = [f"{r.tenant} {r.operation} {r.target} -> {r.outcome}{' ' + r.error if r.error else ''}"
             + (f", read {int(r.records)} records" if pd.notna(r.records) and r.records else "")
             for r in rows.head(limit).itertuples()]
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return ("Offending: " + "; ".join(items) + more + ".") if items else ""


def _login_evidence(sc: Scenario, logins: pd.DataFrame) -> str:
    """The login attempts, and what the tenants needed to work at all."""
    detail = "; ".join(f"{r.tenant}: {r.detail or r.outcome} ({r.ms:.0f} ms)" for r in logins.itertuples())
    protocol = sc.measurements.get("tenant_security_protocol", "")
    if protocol == "PLAINTEXT":
        detail += ("; and no credentials are needed at all: every tenant attempt ran on PLAINTEXT, its client.id "
                   "the only claim of identity")
    return detail


class ClientLog(logging.Handler):
    """kafka-python's warnings and errors during the attempts, counted by message: evidence kept in
    results.json instead of dozens of lines in the notebook."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname} {record.name}: {record.getMessage()[:200]}"] += 1


# ---------------------------------------------------------------------------------------------- attempts
class Attempts:
    """The tenants' attempts on a running secured stack, row by row."""

    def __init__(self, run_id: str, stack: EmbeddedStack, profile: Profile, security: Security):
        self.stack = stack
        self.profile = profile
        self.security = security
        self.topic = {t: f"{self.security.scope(t)}{run_id}" for t in TENANTS}
        self.group = {t: f"{self.security.scope(t)}{run_id}-group" for t in TENANTS}
        self.created = {t: f"{self.security.scope(t)}{run_id}-created" for t in TENANTS}
        self.rows: list[dict[str, Any]] = []
        self.closers: list[Callable[[], None]] = []

    def run(self) -> pd.DataFrame:
        try:
            self.attempt(self.security.admin, self.security.admin, "set up: create each tenant's topic", "all",
                         "allowed", self._setup)
            if self.rows[-1]["outcome"] != "ok":  # no client of the suite's can work here; the logins still can
                for tenant, other in (TENANTS, TENANTS[::-1]):
                    self._logins(tenant, other)
                return pd.DataFrame(self.rows, columns=COLUMNS)
            clients_of = {t: self._clients(t) for t in TENANTS}
            for tenant in TENANTS:
                self._produce_own(tenant, clients_of[tenant]["producer"])
            for tenant, other in (TENANTS, TENANTS[::-1]):
                self._reads_and_writes(tenant, other, clients_of[tenant])
                self._groups(tenant, other)
                self._logins(tenant, other)
            for tenant, other in (TENANTS, TENANTS[::-1]):
                self._create(tenant, other, clients_of[tenant]["admin"])
            for tenant in TENANTS:
                self._delete_own(tenant, clients_of[tenant]["admin"])
            for tenant, other in (TENANTS, TENANTS[::-1]):  # last: it may succeed and take a tenant's topic
                self._delete_other(tenant, other, clients_of[tenant]["admin"])
        finally:
            for close in reversed(self.closers):
                try:
                    close()
                except Exception as exc:  # a client that cannot close is not a finding of S8
                    print(f"closing a client: {type(exc).__name__}")
        return pd.DataFrame(self.rows, columns=COLUMNS)

    # ------------------------------------------------------------------------------------ plumbing
    def _profile(self, principal: str) -> Profile:
        return principal_profile(self.profile, self.stack, principal)

    def _keep(self, client):
        self.closers.append(client.close)
        return client

    def _clients(self, tenant: str) -> dict[str, Any]:
        profile = self._profile(tenant)
        return {"producer": self._keep(clients.producer(profile, client_id=tenant)),
                "consumer": self._keep(clients.consumer(profile, client_id=tenant)),
                "admin": self._keep(clients.admin(profile, client_id=tenant))}

    def _setup(self) -> Done:
        """The suite's admin principal creates each tenant's topic, one per request (KafScale v1.5.0 cannot
        parse a CreateTopics naming two topics and drops the connection). Recorded as an attempt: on a
        system where the admin cannot log in, nothing else of the tenants' can run."""
        admin = self._keep(clients.admin(self._profile(self.security.admin), client_id=self.security.admin))
        for name in self.topic.values():
            admin.create_topics([NewTopic(name, 1, self.profile.client.replication_factor)])
        return Done(detail=f"created {', '.join(self.topic.values())}")

    def attempt(self, tenant: str, client_id: str, operation: str, target: str, expected: str,
                action: Callable[[], Done], follow_up: Callable[[], Any] | None = None) -> None:
        """Run one attempt and record it; after an attempt that should be denied, the same client's
        authorized follow-up (None: it has none)."""
        started = time.monotonic()
        try:
            done = action()
            outcome, error = "ok", ""
        except Exception as exc:  # every way an attempt ends is a row of the table
            code = getattr(exc, "errno", None)
            outcome = "refused" if code in CLEAN_REFUSALS else "failed"
            error = f"{type(exc).__name__} ({code})" if code is not None else type(exc).__name__
            done = Done(records=getattr(exc, "records", None), detail=_brief(exc))
        elapsed_ms = (time.monotonic() - started) * 1000
        then = None
        if expected == "denied" and follow_up is not None:
            try:
                follow_up()
                then = True
            except Exception as exc:  # the finding: a refusal broke the client
                then = False
                done = dataclasses.replace(done, detail=f"{done.detail}; then: {type(exc).__name__}: {_brief(exc)}")
        self.rows.append({"tenant": tenant, "client_id": client_id, "operation": operation, "target": target,
                          "expected": expected, "outcome": outcome, "error": error, "ms": round(elapsed_ms, 1),
                          "records": done.records, "foreign_topics": done.foreign_topics,
                          "then_authorized": then, "detail": done.detail})

    # ------------------------------------------------------------------------------------ attempts
    def _produce_own(self, tenant: str, producer) -> None:
        self.attempt(tenant, tenant, "produce", self.topic[tenant], "allowed",
                     lambda: _produce(producer, self.topic[tenant], tenant, RECORDS))

    def _reads_and_writes(self, tenant: str, other: str, own: dict[str, Any]) -> None:
        mine, theirs = self.topic[tenant], self.topic[other]
        producer, consumer, admin = own["producer"], own["consumer"], own["admin"]
        self.attempt(tenant, tenant, "produce", theirs, "denied", lambda: _produce(producer, theirs, tenant, 1),
                     lambda: _produce(producer, mine, tenant, 1))
        self.attempt(tenant, tenant, "consume", mine, "allowed", lambda: _consume(consumer, mine, tenant))
        self.attempt(tenant, tenant, "consume", theirs, "denied", lambda: _consume(consumer, theirs, other),
                     lambda: _consume(consumer, mine, tenant))
        impostor = self._keep(clients.consumer(self._profile(tenant), client_id=other))
        self.attempt(tenant, other, "consume (claiming the other's client.id)", theirs, "denied",
                     lambda: _consume(impostor, theirs, other))
        self.attempt(tenant, tenant, "describe", mine, "allowed", lambda: _describe(admin, mine))
        self.attempt(tenant, tenant, "describe", theirs, "denied", lambda: _describe(admin, theirs),
                     lambda: _describe(admin, mine))
        scope = self.security.scope(other)
        self.attempt(tenant, tenant, "list topics", "all topics", "allowed", lambda: _list_topics(admin, scope))

    def _groups(self, tenant: str, other: str) -> None:
        profile, mine = self._profile(tenant), TopicPartition(self.topic[tenant], 0)
        member = self._keep(clients.consumer(profile, client_id=tenant, group_id=self.group[tenant], **GROUP_SETTINGS))
        self.attempt(tenant, tenant, "join group", self.group[tenant], "allowed",
                     lambda: _join(member, self.topic[tenant]))
        self.attempt(tenant, tenant, "commit", self.group[tenant], "allowed", lambda: _commit(member, mine))
        member.close()  # leaves the group, so the other tenant's join attempt waits for no rebalance
        intruder = self._keep(clients.consumer(profile, client_id=tenant, group_id=self.group[other], **GROUP_SETTINGS))
        self.attempt(tenant, tenant, "join group", self.group[other], "denied",
                     lambda: _join(intruder, self.topic[tenant]), lambda: intruder.end_offsets([mine]))

        def commit_other() -> Done:
            intruder.unsubscribe()
            intruder.assign([mine])
            return _commit(intruder, mine)

        self.attempt(tenant, tenant, "commit", self.group[other], "denied", commit_other,
                     lambda: intruder.end_offsets([mine]))

    def _logins(self, tenant: str, other: str) -> None:
        address = self.profile.bootstrap_servers[0]
        mechanism = self.stack.sasl_mechanism
        if self.stack.authenticates:
            self.attempt(tenant, tenant, "authenticate", address, "allowed",
                         lambda: _authenticate(address, tenant, self.stack.password(tenant), WAIT_S, mechanism,
                                               verify=True))
        self.attempt(tenant, tenant, "authenticate (wrong password)", address, "denied",
                     lambda: _authenticate(address, tenant, self.stack.password(other), WAIT_S, mechanism,
                                           verify=False))

    def _create(self, tenant: str, other: str, admin) -> None:
        stolen = f"{self.security.scope(other)}created-by-{tenant}"
        self.attempt(tenant, tenant, "create topic", self.created[tenant], "allowed",
                     lambda: _create(admin, self.created[tenant]))
        self.attempt(tenant, tenant, "create topic", stolen, "denied", lambda: _create(admin, stolen),
                     lambda: _describe(admin, self.topic[tenant]))

    def _delete_own(self, tenant: str, admin) -> None:
        self.attempt(tenant, tenant, "delete topic", self.created[tenant], "allowed",
                     lambda: _delete(admin, self.created[tenant]))

    def _delete_other(self, tenant: str, other: str, admin) -> None:
        self.attempt(tenant, tenant, "delete topic", self.topic[other], "denied",
                     lambda: _delete(admin, self.topic[other]), lambda: _describe(admin, self.topic[tenant]))


# ---------------------------------------------------------------------------------------------- operations
def _brief(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:240]


def _produce(producer, topic: str, tenant: str, count: int) -> Done:
    futures = [producer.send(topic, f"{tenant} record {i}".encode()) for i in range(count)]
    offsets = [future.get(timeout=WAIT_S).offset for future in futures]
    return Done(detail=f"acknowledged at offsets {offsets}")


def _consume(consumer, topic: str, owner: str) -> Done:
    """Read the topic from the start until the owner's RECORDS records came, the system refused, or the
    wait ended; records counts only the owner's (a tenant that wrote into the other's topic reads its own
    record there too)."""
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    deadline = time.monotonic() + WAIT_S
    read = 0
    while read < RECORDS and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            read += sum(1 for r in records if r.value.startswith(f"{owner} record ".encode()))
        # kafka-python keeps polling a topic whose Metadata was refused; its own metadata says so
        if not read and topic in consumer._cluster.unauthorized_topics:
            raise TopicAuthorizationFailedError(f"Metadata for {topic} (read from the consumer's metadata)")
    if read < RECORDS:
        raise NoAnswer(f"read {read} of {owner}'s {RECORDS} records in {WAIT_S:.0f} s and no error", records=read)
    return Done(records=read, detail=f"read {read} records written by {owner}")


def _describe(admin, topic: str) -> Done:
    described = [t for t in admin.describe_topics([topic]) if t["name"] == topic]
    if not described:
        raise KafkaConnectionError(f"no Metadata entry for {topic}")
    if described[0]["error_code"]:
        raise for_code(described[0]["error_code"])(f"Metadata for {topic}")
    return Done(detail=f"{len(described[0]['partitions'])} partition(s)")


def _list_topics(admin, foreign_scope: str) -> Done:
    names = sorted(admin.list_topics())
    foreign = [n for n in names if n.startswith(foreign_scope)]
    return Done(foreign_topics=len(foreign),
                detail=f"{len(names)} topics listed, {len(foreign)} of the other tenant"
                       + (f" ({', '.join(foreign[:5])})" if foreign else ""))


def _join(consumer, topic: str) -> Done:
    # the topic's partitions first: a group leader without them assigns nothing (a kafka-python race)
    consumer.partitions_for_topic(topic)
    consumer.subscribe([topic])
    deadline = time.monotonic() + WAIT_S
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise NoAnswer(f"no partition assigned within {WAIT_S:.0f} s")
        consumer.poll(timeout_ms=200)
    return Done(detail=f"assigned {', '.join(f'{p.topic}/{p.partition}' for p in sorted(consumer.assignment()))}")


def _commit(consumer, partition: TopicPartition) -> Done:
    consumer.commit({partition: OffsetAndMetadata(RECORDS, "", -1)})
    return Done(detail=f"committed offset {RECORDS}")


def _create(admin, topic: str) -> Done:
    admin.create_topics([NewTopic(topic, 1, 1)])
    return Done(detail="created")


def _delete(admin, topic: str) -> Done:
    admin.delete_topics([topic])
    return Done(detail="deleted")


class LoginNotVerified(KafkaError):
    """The SCRAM exchange ended without the server's proof (RFC 5802 server-final 'v='): a client that checks
    it, as kafka-python does, gives up the connection."""


def _authenticate(address: str, username: str, password: str, timeout_s: float, mechanism: str,
                  verify: bool) -> Done:
    """A SASL login (PLAIN or SCRAM-SHA-*) on a raw connection, then one Metadata request on it: returns when
    the system serves that request, raises the system's own error, KafkaConnectionError when it closes
    without an answer, or LoginNotVerified (verify: as a real client checks the server's SCRAM proof; an
    intruder does not, and asks for Metadata whatever the exchange said). The password travels only in
    the request bytes, never in a message."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        handshake = _exchange(sock, SaslHandshakeRequest[1](mechanism=mechanism), SaslHandshakeResponse, 1)
        if handshake.error_code:
            raise for_code(handshake.error_code)(f"SaslHandshake: the system offers {handshake.mechanisms}")
        said = ""
        if mechanism == "PLAIN":
            answer = _sasl_step(sock, b"\0" + username.encode() + b"\0" + password.encode())
        else:
            scram = ScramClient(username, password, mechanism)
            scram.process_server_first_message(_sasl_step(sock, scram.first_message()).auth_bytes)
            answer = _sasl_step(sock, scram.final_message())
            said = answer.auth_bytes.decode(errors="replace")[:80]
            if verify:
                try:
                    scram.process_server_final_message(answer.auth_bytes)
                except Exception as exc:
                    raise LoginNotVerified(f"SaslAuthenticate answered NONE, but the SCRAM server-final message "
                                           f"is {said!r}, not the server's proof") from exc
        metadata = _exchange(sock, MetadataRequest[1](topics=[]), MetadataResponse, 1)
    return Done(detail="admitted: SaslAuthenticate answered NONE"
                       + (f", the SCRAM server-final message said {said!r}" if said else "")
                       + f", then the connection served Metadata ({len(metadata.brokers)} broker(s))")


def _sasl_step(sock: socket.socket, token: bytes):
    answer = _exchange(sock, SaslAuthenticateRequest[0](auth_bytes=token), SaslAuthenticateResponse, 0)
    if answer.error_code:
        raise for_code(answer.error_code)(answer.error_message or "")
    return answer


def _exchange(sock: socket.socket, request, response_cls, version: int):
    request.with_header(correlation_id=1, client_id="k6suite-s8")
    sock.sendall(request.encode(header=True, framed=True))
    head = _read_exact(sock, 4)
    payload = _read_exact(sock, struct.unpack(">i", head)[0]) if head else None
    if payload is None:
        raise KafkaConnectionError(f"the connection closed without answering {type(request).__name__}")
    return response_cls.decode(payload, version=version, header=True)
