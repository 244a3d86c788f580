"""S3 correctness: produce and consume, judged by the truth core, in every shape the contract names.

Variants: produce and consume overlapping (the main one), a single record, shared-connection
read-your-writes, topic auto-creation, many producers into one consumer, and consumer groups on
the real group protocol. Normal operation has no faults, so nothing is allowed: every send must
be acknowledged, every acknowledged record read, no duplicates, order kept per partition.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import pandas as pd

from k6suite_lib import clients, plots
from k6suite_lib.checkers import AnomalyRules, CheckSpec, reordering_needs_retry
from k6suite_lib.checkers.measures import final_assignments
from k6suite_lib.history import append, probe_row
from k6suite_lib.scenario import Judgement, Scenario
from k6suite_lib.workload import WorkloadConfig, WorkloadResult, read_your_writes


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


VARIANTS = ("overlap", "single-record", "read-your-writes", "topic-auto-create", "many-producers-one-consumer",
            "consumer-group")


def chosen(variants: list[str] | None) -> frozenset[str] | None:
    """The notebook's `variants` parameter checked against the variants S3 has (None: every one)."""
    if variants is None:
        return None
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown S3 variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    return frozenset(variants)


def tier(name: str) -> Tier:
    if name not in TIERS:
        raise ValueError(f"unknown tier {name!r}; known: {', '.join(TIERS)}")
    return TIERS[name]


def strict_checks(sc: Scenario, config: WorkloadConfig, records: int, *extra: CheckSpec) -> list[CheckSpec]:
    """Normal operation: every send acknowledged, nothing allowed beyond what the client settings
    themselves produce, the read-back reaches the end of the log."""
    idempotent = config.idempotent(sc.profile)
    rules = AnomalyRules(min_acked=records, max_unacked=0, retried_duplicates=not idempotent,
                         retried_reordering=reordering_needs_retry(idempotent, config.in_flight(sc.profile)))
    return [CheckSpec("anomalies", rules.params()),
            CheckSpec("readback"), *extra]


def _run(sc: Scenario, variant: str, config: WorkloadConfig, *extra: CheckSpec,
         probe=None) -> tuple[WorkloadResult | None, Judgement | None]:
    if not sc.wants(variant) or not sc.require_target(variant):
        return None, None
    result = sc.run_workload(variant, config)
    if probe is not None:
        result = probe(result)
    return result, sc.judge(variant, result, strict_checks(sc, config, config.records or 1, *extra))


def _verdicts(judgement: Judgement | None) -> pd.DataFrame:
    return pd.DataFrame() if judgement is None else judgement.verdicts


def overlap(sc: Scenario, producers: int, consumers: int, records: int, partitions: int,
            rate: float = 0.0) -> pd.DataFrame:
    """Producers and consumers run at the same time; a final read-back follows. Producers start once
    every consumer has polled, at `rate` sends per second (0: closed loop)."""
    config = WorkloadConfig(producers=producers, consumers=consumers, partitions=partitions, records=records,
                            rate=rate, await_consumers_s=30, label="overlap", consume_grace_s=30,
                            readback_timeout_s=60)
    _, judgement = _run(sc, "overlap", config, CheckSpec("overlap"))
    if judgement is not None:
        view = judgement.view
        sc.save_figure(plots.timeline(view, "S3 overlap: produce and consume at once"), "s3-overlap-timeline")
        sc.save_figure(plots.latency_cdf(view, "S3 overlap: publish latency"), "s3-overlap-latency-cdf")
        sc.save_figure(plots.unseen_curve(view, "S3 overlap: final read-back"), "s3-overlap-readback")
    return _verdicts(judgement)


def single_record(sc: Scenario) -> pd.DataFrame:
    return _verdicts(_run(sc, "single-record", WorkloadConfig(records=1, label="single"))[1])


def multi_producer_single_consumer(sc: Scenario, producers: int, records: int) -> pd.DataFrame:
    config = WorkloadConfig(producers=producers, consumers=1, partitions=1, records=records, label="mpsc")
    return _verdicts(_run(sc, "many-producers-one-consumer", config)[1])


def topic_auto_create(sc: Scenario, records: int = 3) -> pd.DataFrame:
    """Produce to a topic nobody created; the client's metadata request asks for auto-creation."""
    config = WorkloadConfig(records=records, create_topic=False, label="autocreate", delivery_timeout_s=15)
    return _verdicts(_run(sc, "topic-auto-create", config)[1])


def shared_connection_read_your_writes(sc: Scenario, writers: int, records_each: int) -> pd.DataFrame:
    variant = "read-your-writes"
    if not sc.wants(variant) or not sc.require_target(variant):
        return pd.DataFrame()
    sc.progress.enter("writes and own reads", variant)
    result = read_your_writes(sc.profile, writers=writers, records_each=records_each, run_id=sc.run_id, timeout_s=5,
                              progress=sc.progress)
    checks = [CheckSpec("anomalies", AnomalyRules(min_acked=writers * records_each, max_unacked=0).params()),
              CheckSpec("readback"), CheckSpec("own-reads")]
    return sc.judge(variant, result, checks).verdicts


def consumer_group(sc: Scenario, members: int, records: int, partitions: int) -> pd.DataFrame:
    """Members subscribe with one group id; the group protocol assigns partitions; commits recorded;
    after the members left, the group's committed offsets are read back (a probe row)."""
    config = WorkloadConfig(producers=2, consumers=members, consumer_mode="group", partitions=partitions,
                            records=records, label="group", consume_grace_s=45)

    def committed(result: WorkloadResult) -> WorkloadResult:
        invoked = time.monotonic_ns()
        try:
            offsets = _committed(sc, result.config.group_id, result.topic, partitions)
            row = probe_row(result.run_id, "committed-offsets", invoked, {"offsets": offsets}, topic=result.topic)
        except Exception as exc:  # the failure is the evidence
            row = probe_row(result.run_id, "committed-offsets", invoked, {}, error=f"{type(exc).__name__}: {exc}",
                            topic=result.topic)
        return dataclasses.replace(result, history=append(result.history, [row]))

    _, judgement = _run(sc, "consumer-group", config, CheckSpec("group-ownership", {"partitions": partitions}),
                        CheckSpec("committed-offsets"), probe=committed)
    if judgement is not None:
        sc.measure("consumer-group.final_assignments", final_assignments(judgement.view))
    return _verdicts(judgement)


def _committed(sc: Scenario, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as the target reports them now (OffsetFetch via a client)."""
    from kafka import TopicPartition

    consumer = clients.consumer(sc.profile, group_id=group)
    try:
        found = {p: consumer.committed(TopicPartition(topic, p), timeout_ms=10_000) for p in range(partitions)}
    finally:
        consumer.close()
    return {p: offset for p, offset in found.items() if offset is not None}
