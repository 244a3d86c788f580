"""S1 connectivity: one endpoint, honest API versions, Metadata that shows only the endpoint, and a TLS
endpoint that verifies (F1.3).

Also re-tests the earlier suite's observations: OBS-01 (OffsetFetch versions) and OBS-02
(FindCoordinator must return a node that Metadata lists), and sends requests real clients send
that a target must survive (robustness probes; on by default only for the embedded stack,
because on KafScale v1.5.0 some of them crash processes).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pandas as pd

from k6suite_lib import clients, probes
from k6suite_lib.profiles import Profile, TlsSettings
from k6suite_lib.scenario import Scenario
from k6suite_lib.stack import tls as stack_tls

# APIs kafka-python needs for the produce/consume/group workloads of this suite
CLIENT_APIS = ("Produce", "Fetch", "ListOffsets", "Metadata", "OffsetCommit", "OffsetFetch", "FindCoordinator",
               "JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup", "ApiVersions", "CreateTopics")


def _begin(sc: Scenario, variant: str) -> tuple[str, pd.DataFrame] | None:
    """The endpoint and its API version table, or None (with a FAIL verdict) when it is unreachable."""
    if not sc.require_target(variant):
        return None
    address = probes.endpoint(sc.profile)
    return address, probes.api_versions_table(probes.api_versions(address))


def connect(sc: Scenario) -> pd.DataFrame:
    """Connect through the single endpoint with a real client (bounded by the profile's timeout)."""
    variant = "connect"
    if not sc.require_target(variant):
        return pd.DataFrame([sc.target])
    try:
        admin = clients.admin(sc.profile)
        cluster = admin.describe_cluster()
        admin.close()
        outcome, connected = "connected", True
        evidence = f"describe_cluster: {len(cluster.get('brokers', []))} broker(s), cluster {cluster.get('cluster_id')}"
    except Exception as exc:
        outcome, connected, evidence = type(exc).__name__, False, str(exc)[:300]
    sc.add_check(variant, "client connects through the endpoint", "F1.1", outcome, "connected", connected, evidence)
    return pd.DataFrame([{k: v for k, v in sc.target.items() if k != "embedded_components"}]).T.rename(
        columns={0: "target"})


TLS_CHECKS = (
    ("a client trusting the CA gets a verified TLS handshake and Kafka answers", "F1.3"),
    ("a client that does not trust the CA is refused", "F1.3"),
    ("plaintext on the TLS port gets no Kafka answer", "F1.3"),
)


def tls(sc: Scenario) -> pd.DataFrame:
    """F1.3: the TLS endpoint (the embedded stack's, or the profile's when it speaks SSL) verifies with its
    CA and answers; a client that does not trust the CA and a plaintext client get nothing."""
    variant = "tls"
    target = _tls_target(sc, variant)
    if target is None:
        return pd.DataFrame()
    profile, address, cafile = target
    trusted = stack_tls.handshake(address, cafile)
    client_ok, answer = _metadata_over_tls(profile)
    sc.add_check(variant, *TLS_CHECKS[0], f"{trusted.outcome}, {'Metadata answered' if client_ok else 'no Metadata'}",
                 "verified handshake, ApiVersions and Metadata answered", trusted.ok and client_ok,
                 f"{address}, CA {cafile.name if cafile else '(system trust store)'}: {trusted.describe()}; {answer}")
    untrusted = stack_tls.handshake(address, None) if cafile else None
    if untrusted is None:
        sc.not_tested(variant, *TLS_CHECKS[1], "the profile names no CA file: its CA is in the system trust store, "
                                               "so no client at hand distrusts it")
    else:
        sc.add_check(variant, *TLS_CHECKS[1], untrusted.outcome, "verify-failed", untrusted.outcome == "verify-failed",
                     f"a client with only the system trust store: {untrusted.describe()}")
    plain = probes.api_versions(address)
    sc.add_check(variant, *TLS_CHECKS[2], plain.outcome, "no ApiVersions answer", not plain.ok,
                 f"ApiVersions v0 in plaintext to {address}: {plain.describe()}")
    return pd.DataFrame([{"client": "trusts the CA", "got": trusted.describe(), "kafka-python": answer},
                         {"client": "does not trust the CA", "got": untrusted.describe() if untrusted else "n/a"},
                         {"client": "plaintext", "got": plain.describe()}])


def _tls_target(sc: Scenario, variant: str) -> tuple[Profile, str, Path | None] | None:
    """(a profile speaking SSL to it, the TLS address, the CA file), or None with the verdicts that say why
    there is nothing to test: a system without TLS FAILs, a PLAINTEXT external profile is not tested."""
    if sc.stack is not None:
        address, cafile = sc.stack.tls_endpoint(), sc.stack.ca_file()
        if address is None:  # what a TLS client meets at the client endpoint, and why
            tried = stack_tls.handshake(probes.endpoint(sc.profile), None)
            sc.add_check(variant, *TLS_CHECKS[0], f"no TLS listener (handshake at the endpoint: {tried.outcome})",
                         "a TLS endpoint", False, f"{sc.stack.no_tls_reason}. A TLS client at "
                         f"{probes.endpoint(sc.profile)}: {tried.describe()}")
            for check, requirement in TLS_CHECKS[1:]:
                sc.not_tested(variant, check, requirement, "the system offers no TLS endpoint")
            return None
        client = dataclasses.replace(sc.profile.client, security_protocol="SSL", tls=TlsSettings(cafile=str(cafile)))
        return dataclasses.replace(sc.profile, bootstrap_servers=(address,), client=client), address, cafile
    if sc.profile.client.security_protocol in ("SSL", "SASL_SSL"):
        cafile = sc.profile.client.tls.cafile
        return sc.profile, probes.endpoint(sc.profile), Path(cafile) if cafile else None
    for check, requirement in TLS_CHECKS:
        sc.not_tested(variant, check, requirement, "this profile's endpoint is PLAINTEXT and it names no TLS endpoint")
    return None


def _metadata_over_tls(profile: Profile) -> tuple[bool, str]:
    """Whether kafka-python, trusting the profile's CA, gets the brokers over TLS; what it got."""
    try:
        admin = clients.admin(profile)
        try:
            brokers = admin.describe_cluster().get("brokers", [])
        finally:
            admin.close()
    except Exception as exc:  # the failure is the evidence
        return False, f"kafka-python over TLS: {type(exc).__name__}: {str(exc)[:200]}"
    return bool(brokers), "kafka-python over TLS: Metadata lists " + (
        ", ".join(f"{b['host']}:{b['port']}" for b in brokers) or "no broker")


def api_versions(sc: Scenario) -> pd.DataFrame:
    """The ApiVersions table: target range, client range, negotiated version."""
    variant = "api-versions"
    if (begun := _begin(sc, variant)) is None:
        return pd.DataFrame()
    _, table = begun
    bogus = table[table["note"] != ""]
    sc.add_check(variant, "ApiVersions lists only supported APIs", "F2", len(bogus), "== 0", bogus.empty,
                 "advertised with versions -1..-1: " + ", ".join(bogus["api"]) if len(bogus) else "")
    versions = {api: probes.negotiated(table, api) for api in CLIENT_APIS}
    missing = [api for api, version in versions.items() if version is None]
    sc.add_check(variant, "a common version for every API the client needs", "F2", len(missing), "== 0",
                 not missing, ", ".join(missing) or ", ".join(f"{a} v{v}" for a, v in versions.items()))
    capped = table[table["capped_by_profile"]]
    if len(capped):
        sc.measure("api_versions.capped", capped[["api", "broker_max", "negotiated"]])
    sc.measure("api_versions.table", table)
    return table


def single_endpoint(sc: Scenario) -> pd.DataFrame:
    """Metadata (at the negotiated version) asked of the endpoint must list only that endpoint: no
    broker address leaks (a profile that lists several bootstrap addresses still has one endpoint
    probed, so listing the others fails)."""
    variant = "metadata"
    if (begun := _begin(sc, variant)) is None:
        return pd.DataFrame()
    address, table = begun
    version = probes.negotiated(table, "Metadata") or 1
    topic = f"k6s-{sc.run_id}-s1-meta"
    clients.create_topic(sc.profile, topic, 3)
    outcome = probes.metadata(address, version=version, topics=[topic])
    brokers = probes.metadata_brokers(outcome)
    leaked = sorted(set(brokers["address"]) - {address})
    sc.add_check(variant, "Metadata lists only the endpoint", "F1.2", ", ".join(brokers["address"]) or "nothing",
                 f"== {{{address}}}", outcome.ok and not leaked and not brokers.empty,
                 f"Metadata v{version}: {outcome.describe()}" + (f"; leaked: {', '.join(leaked)}" if leaked else ""))
    if outcome.ok:
        listed = set(brokers["node_id"])
        leaders = [(t.name, p.partition_index, p.leader_id) for t in outcome.response.topics for p in t.partitions]
        stray = [f"{t}/{p} leader {leader}" for t, p, leader in leaders if leader not in listed]
        sc.add_check(variant, "every partition leader is a listed node", "F2", len(stray), "== 0", not stray,
                     "; ".join(stray) or f"{len(leaders)} partitions led by node(s) {sorted(listed)}")
    return brokers


def coordinator(sc: Scenario) -> pd.DataFrame:
    """OBS-02: FindCoordinator must name a node that Metadata lists, at the same address."""
    variant = "coordinator"
    if (begun := _begin(sc, variant)) is None:
        return pd.DataFrame()
    address, table = begun
    group = f"k6s-{uuid.uuid4().hex[:8]}"
    version = probes.negotiated(table, "FindCoordinator") or 0
    found = probes.find_coordinator_settled(address, group, version)
    brokers = probes.metadata_brokers(probes.metadata(address, version=probes.negotiated(table, "Metadata") or 1))
    row = {"outcome": found.describe(), "version": version}
    if found.ok:
        answer = probes.coordinator(found)
        row.update(answer)
        listed = brokers[brokers["node_id"] == answer["node_id"]]
        same_address = bool(len(listed)) and listed["address"].iloc[0] == f"{answer['host']}:{answer['port']}"
        nodes = ", ".join(f"{n}@{a}" for n, a in zip(brokers["node_id"], brokers["address"], strict=True))
        sc.add_check(variant, "coordinator is a node Metadata lists (OBS-02)", "F2.4",
                     f"node {answer['node_id']} at {answer['host']}:{answer['port']}, error {answer['error_code']}",
                     f"error 0, one of {brokers['node_id'].tolist()} at its listed address",
                     answer["error_code"] == 0 and same_address,
                     f"FindCoordinator v{version}; Metadata nodes: {nodes}")
    else:
        sc.add_check(variant, "coordinator is a node Metadata lists (OBS-02)", "F2.4", found.outcome,
                     "a FindCoordinator response", False, found.describe())
    return pd.DataFrame([row])


def offset_fetch(sc: Scenario) -> pd.DataFrame:
    """OBS-01: OffsetFetch at the negotiated version, at an old version, and for an uncommitted group."""
    variant = "offset-fetch"
    if (begun := _begin(sc, variant)) is None:
        return pd.DataFrame()
    address, table = begun
    version = probes.negotiated(table, "OffsetFetch")
    topic = f"k6s-{sc.run_id}-s1-offsets"
    clients.create_topic(sc.profile, topic, 1)
    group = f"k6s-{uuid.uuid4().hex[:8]}"
    coordinator = _coordinator_address(address, group, table)  # OffsetFetch is the group coordinator's to answer
    rows = []
    current = None
    if version is not None:
        coordinator, current = probes.offset_fetch_settled(
            coordinator, lambda: _coordinator_address(address, group, table), group, topic, version)
    rows.append({"request": f"OffsetFetch v{version} (negotiated) to the coordinator {coordinator}",
                 "outcome": current.describe() if current else "no common version"})
    sc.add_check(variant, "OffsetFetch answers at the negotiated version", "F2.4",
                 current.outcome if current else "none", "response", bool(current and current.ok),
                 rows[-1]["outcome"])
    if current and current.ok:
        committed, error_code = probes.committed_offsets(current)
        sc.add_check(variant, "an uncommitted group reads offset -1", "F2.4", f"{committed}, error {error_code}",
                     "[-1], error 0", committed == [-1] and error_code == 0,
                     f"OffsetFetch v{version}: Kafka returns -1 when nothing is committed; 0 would make a consumer "
                     "skip auto.offset.reset and start at offset 0")
    old = probes.offset_fetch(coordinator, group, topic, 1)
    rows.append({"request": "OffsetFetch v1 (the earlier suite's client)", "outcome": old.describe()})
    prompt = old.outcome in ("response", "closed") and old.elapsed_ms < 5000
    sc.add_check(variant, "an unsupported old version is refused promptly (OBS-01)", "F2", old.describe(),
                 "an answer or a closed connection within 5 s, never a hang", prompt,
                 "ApiVersions advertises OffsetFetch "
                 f"{table.loc[table['api'] == 'OffsetFetch', ['broker_min', 'broker_max']].values.tolist()}")
    return pd.DataFrame(rows)


def _coordinator_address(address: str, group: str, table: pd.DataFrame) -> str:
    """Where the group's coordinator listens (FindCoordinator through the endpoint); the endpoint itself
    when the answer names none (the coordinator check above judges that answer)."""
    found = probes.find_coordinator_settled(address, group, probes.negotiated(table, "FindCoordinator") or 0)
    if not found.ok or probes.coordinator(found)["error_code"] != 0:
        return address
    answer = probes.coordinator(found)
    return f"{answer['host']}:{answer['port']}"


def spread(sc: Scenario, connections: int = 30) -> pd.DataFrame:
    """F1.4: client connections through the endpoint spread over the brokers behind it."""
    variant = "spread"
    if sc.stack is None:
        sc.not_tested(variant, "connections spread over brokers", "F1.4",
                      "per-broker connection counts are read from this machine's socket table, which only "
                      "sees the embedded stack; this target exposes no per-broker connection metric")
        return pd.DataFrame()
    if not sc.require_target(variant):
        return pd.DataFrame()
    ports = {b: sc.stack.layout.broker_port(b) for b in sc.stack.broker_ids}
    table = probes.connection_spread(probes.endpoint(sc.profile), ports, connections)
    fair = connections / len(ports)
    worst = table["connections"].max() if len(table) else 0
    ok = bool(len(table)) and table["connections"].min() >= 1 and worst <= 2 * fair
    sc.add_check(variant, "connections spread over brokers", "F1.4", dict(zip(table["broker"], table["connections"],
                                                                              strict=True)),
                 f"every broker >= 1 and none > 2 × fair share ({2 * fair:.0f})", ok,
                 f"{connections} connections through {probes.endpoint(sc.profile)}")
    return table


ROBUSTNESS_PROBES = (
    ("Fetch v12 naming its topic (kafka-python 3 sends this)", "fetch"),
    ("Produce v9 with two partitions in one request (a batching client)", "produce"),
    ("OffsetFetch with null topics (admin tools: all offsets of a group)", "offset-fetch-all"),
)


def robustness(sc: Scenario, enabled: bool | None = None) -> pd.DataFrame:
    """Requests real clients send; the target must answer and every process must survive.

    Off by default for targets the suite does not run itself (a failing probe can crash them).
    """
    variant = "robustness"
    enabled = sc.stack is not None if enabled is None else enabled
    if not enabled:
        for label, _ in ROBUSTNESS_PROBES:
            sc.not_tested(variant, f"survives: {label}", "F2 / NFR4",
                          "destructive probes are off for targets the suite does not run; set robustness_probes=True")
        return pd.DataFrame()
    if (begun := _begin(sc, variant)) is None:
        return pd.DataFrame()
    address, table = begun
    topic = f"k6s-{sc.run_id}-s1-robust"
    clients.create_topic(sc.profile, topic, 2)
    rows = []
    for label, kind in ROBUSTNESS_PROBES:
        if kind == "fetch":
            outcome = probes.fetch_by_name(address, topic, min(12, int(table.loc[table["api"] == "Fetch",
                                                                                   "broker_max"].iloc[0])))
        elif kind == "produce":
            outcome = probes.produce_two_partitions(address, topic, min(9, int(table.loc[table["api"] == "Produce",
                                                                                           "broker_max"].iloc[0])))
        else:
            outcome = probes.offset_fetch(address, f"k6s-{uuid.uuid4().hex[:8]}", None,
                                          probes.negotiated(table, "OffsetFetch") or 2)
        dead, healed = _casualties(sc)
        evidence = outcome.describe()
        if dead:
            evidence += f"; died: {', '.join(dead)} (restarted: {', '.join(healed)})"
        sc.add_check(variant, f"survives: {label}", "F2 / NFR4", outcome.outcome,
                     "a response, and every process still running", outcome.ok and not dead, evidence)
        rows.append({"probe": label, "outcome": outcome.describe(), "died": ", ".join(dead)})
    return pd.DataFrame(rows)


def _casualties(sc: Scenario) -> tuple[list[str], list[str]]:
    """Which processes a probe killed (embedded stack: process table; else: does the endpoint answer?);
    the embedded stack is healed so later steps and scenarios run on a whole cluster."""
    time.sleep(1.0)  # a crashing process needs a moment to exit
    if sc.stack is None:
        alive = probes.api_versions(probes.endpoint(sc.profile)).ok
        return ([] if alive else ["endpoint"]), []
    status = sc.stack.status()
    dead = status.loc[status["process"] == "dead", "component"].tolist()
    healed = sc.stack.heal() if dead else []
    return dead, healed
