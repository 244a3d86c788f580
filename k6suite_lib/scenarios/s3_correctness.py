"""S3 correctness: produce and consume, judged by the truth core, in every shape the contract names.

Variants: produce and consume overlapping (the main one), a single record, shared-connection
read-your-writes, topic auto-creation, many producers into one consumer, and consumer groups on
the real group protocol. Normal operation has no faults, so nothing is allowed: every send must
be acknowledged, every acknowledged record read, no duplicates, order kept per partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from k6suite_lib import checker, plots
from k6suite_lib.checker import CheckerConfig
from k6suite_lib.scenario import Scenario
from k6suite_lib.workload import WorkloadConfig, WorkloadResult, read_your_writes, run_workload


@dataclass(frozen=True)
class Tier:
    producers: int
    consumers: int
    records: int
    partitions: int
    group_members: int
    rate: float  # overlap variant, total sends per second; 0 = as fast as acknowledgements allow


# 500 records go out in well under a second on one broker; paced at 100/s they take 5 s, so live
# consumers read while producers still produce. 100,000 records take minutes unpaced.
TIERS = {
    "smoke": Tier(producers=5, consumers=5, records=500, partitions=1, group_members=3, rate=100.0),
    "full": Tier(producers=100, consumers=100, records=100_000, partitions=10, group_members=10, rate=0.0),
}


def tier(name: str) -> Tier:
    if name not in TIERS:
        raise ValueError(f"unknown tier {name!r}; known: {', '.join(TIERS)}")
    return TIERS[name]


def strict_rules(sc: Scenario, config: WorkloadConfig, records: int) -> CheckerConfig:
    allowed = checker.default_allowed(config.idempotent(sc.profile), faults=False, max_in_flight=config.max_in_flight)
    return CheckerConfig(allowed=allowed, min_acked=records, max_unacked=0)


def _run(sc: Scenario, variant: str, config: WorkloadConfig) -> tuple[WorkloadResult | None, pd.DataFrame]:
    if not sc.require_target(variant):
        return None, pd.DataFrame()
    result = run_workload(sc.profile, config, run_id=sc.run_id)
    verdict = sc.judge(variant, result, strict_rules(sc, config, config.records or 1))
    return result, verdict.verdicts


def overlap(sc: Scenario, producers: int, consumers: int, records: int, partitions: int,
            rate: float = 0.0) -> pd.DataFrame:
    """Producers and consumers run at the same time; a final read-back follows. Producers start once
    every consumer has polled, at `rate` sends per second (0: closed loop)."""
    config = WorkloadConfig(producers=producers, consumers=consumers, partitions=partitions, records=records,
                            rate=rate, await_consumers_s=30, label="overlap", consume_grace_s=30,
                            readback_timeout_s=60)
    result, verdicts = _run(sc, "overlap", config)
    if result is not None:
        sends = result.history[result.history["f"] == "send"]
        live = result.history[(result.history["f"] == "poll") & (result.history["process"] != "readback")]
        overlapped = len(live) > 0 and live["complete_ns"].min() < sends["complete_ns"].max()
        sc.add_check("overlap", "produce and consume overlapped", "S3", overlapped, "True", overlapped,
                     "a live consumer read before the last send was acknowledged" if overlapped
                     else "no live read happened while producers were still producing")
        sc.save_figure(plots.timeline(result.history, "S3 overlap: produce and consume at once"), "s3-overlap-timeline")
        sc.save_figure(plots.latency_cdf(result.history, "S3 overlap: publish latency"), "s3-overlap-latency-cdf")
        sc.save_figure(plots.unseen_curve(result.history, "S3 overlap: final read-back"), "s3-overlap-readback")
    return verdicts


def single_record(sc: Scenario) -> pd.DataFrame:
    return _run(sc, "single-record", WorkloadConfig(records=1, label="single"))[1]


def multi_producer_single_consumer(sc: Scenario, producers: int, records: int) -> pd.DataFrame:
    config = WorkloadConfig(producers=producers, consumers=1, partitions=1, records=records, label="mpsc")
    return _run(sc, "many-producers-one-consumer", config)[1]


def topic_auto_create(sc: Scenario, records: int = 3) -> pd.DataFrame:
    """Produce to a topic nobody created; the client's metadata request asks for auto-creation."""
    config = WorkloadConfig(records=records, create_topic=False, label="autocreate", delivery_timeout_s=15)
    return _run(sc, "topic-auto-create", config)[1]


def shared_connection_read_your_writes(sc: Scenario, writers: int, records_each: int) -> pd.DataFrame:
    variant = "read-your-writes"
    if not sc.require_target(variant):
        return pd.DataFrame()
    result = read_your_writes(sc.profile, writers=writers, records_each=records_each, run_id=sc.run_id, timeout_s=5)
    total = writers * records_each
    rules = CheckerConfig(min_acked=total, max_unacked=0)
    verdict = sc.judge(variant, result, rules)
    missing = checker.own_reads_missing(result.history)
    sc.add_check(variant, "each writer reads its own write at once", "F2.1 / NFR2", len(missing), "== 0",
                 missing.empty, "; ".join(missing["ident"].head(5)) or f"{total} writes through one shared producer")
    return verdict.verdicts


def consumer_group(sc: Scenario, members: int, records: int, partitions: int) -> pd.DataFrame:
    """Members subscribe with one group id; the group protocol assigns partitions; commits recorded."""
    variant = "consumer-group"
    config = WorkloadConfig(producers=2, consumers=members, consumer_mode="group", partitions=partitions,
                            records=records, label="group", consume_grace_s=45)
    result, verdicts = _run(sc, variant, config)
    if result is None:
        return verdicts
    final = checker.final_assignments(result.history)
    owners: dict[int, list[str]] = {}
    for member, assigned in final.items():
        for partition in assigned:
            owners.setdefault(partition, []).append(member)
    uncovered = [p for p in range(partitions) if p not in owners]
    shared = {p: m for p, m in owners.items() if len(m) > 1}
    sc.add_check(variant, "every partition owned by exactly one member", "F2.4",
                 f"{len(owners)} of {partitions} owned, {len(shared)} shared", f"{partitions} owned, 0 shared",
                 not uncovered and not shared,
                 f"final assignments: {final}" + (f"; shared: {shared}" if shared else "")
                 + (f"; unowned: {uncovered}" if uncovered else ""))
    commits = result.history[result.history["f"] == "commit"]
    failed_commits = commits[commits["type"] != "ok"]
    sc.measure(f"{variant}.commits", {"ok": len(commits) - len(failed_commits), "failed": len(failed_commits),
                                      "errors": failed_commits["error"].value_counts().head(3).to_dict()})
    expected = checker.last_commits(result.history)
    stored = _committed(sc, result.config.group_id, result.topic, partitions)
    sc.add_check(variant, "committed offsets are what the group last committed", "F2.4", stored,
                 f"{expected} (last successful commit per partition)", bool(expected) and stored == expected,
                 f"{len(commits) - len(failed_commits)} commits ok, {len(failed_commits)} failed (failures during a "
                 "rebalance are normal Kafka behaviour); read back with OffsetFetch after the members left")
    events = checker.group_events(result.history)
    assigns = events[events["f"] == "assign"]
    sc.measure(f"{variant}.rebalances", int(max(0, len(assigns) - assigns["process"].nunique())))
    sc.measure(f"{variant}.final_assignments", final)
    return verdicts


def _committed(sc: Scenario, group: str, topic: str, partitions: int) -> dict[int, int] | str:
    """The group's committed offsets as the target reports them now (OffsetFetch via a client)."""
    from kafka import TopicPartition

    from k6suite_lib import clients

    try:
        consumer = clients.consumer(sc.profile, group_id=group)
        try:
            found = {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
        finally:
            consumer.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return {p: offset for p, offset in found.items() if offset is not None}
