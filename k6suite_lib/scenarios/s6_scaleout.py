"""S6 scale-out: one broker under load, then two more, and clients must not notice.

On an embedded system this scenario runs its own one-broker stack of the same system (so the
profile's stack keeps its size) and adds brokers to it; on Kubernetes it scales the
KafscaleCluster (of that one-broker stack when the cluster is embedded).
Verdicts: the shared fault checks, no client reconnection (counted from the
clients' own metrics), the broker list in the clients' metadata unchanged, and the new brokers
serve requests (connections through the endpoint counted per broker right after the scale-out,
recorded in the history); throughput before and after is measured.
"""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from k6suite_lib import probes
from k6suite_lib.checkers import CheckSpec
from k6suite_lib.checkers.measures import throughput
from k6suite_lib.faults.process import AddBrokers
from k6suite_lib.faults.schedule import Schedule, Step
from k6suite_lib.history import append, probe_row
from k6suite_lib.profiles import Profile, beside
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import chaos
from k6suite_lib.stack import EmbeddedStack, open_stack
from k6suite_lib.workload import WorkloadConfig, WorkloadResult

SCALE_STACK_OFFSET = 200  # the scale-out stack's port base, relative to the profile's (see stack.layout)
SPREAD_CONNECTIONS = 30


def scale_out(sc: Scenario, add: int = 2, warmup_s: float = 15, after_s: float = 20, rate: float = 100.0,
              repeat: int = 1, repeats: int = 1) -> pd.DataFrame:
    variant = chaos.variant_name(f"1-to-{1 + add}", repeat, repeats)
    if sc.stack is not None:
        profile = beside(sc.profile, SCALE_STACK_OFFSET, "scaleout")
        stack = open_stack(profile, log=lambda msg: print(f"[scale-out stack] {msg}"))
        stack.up()
        try:
            return _scale_and_judge(sc, variant, profile, _grow(profile, stack, add), warmup_s, after_s, rate, stack)
        finally:
            stack.down()
    if sc.profile.faults.driver == "kubernetes":
        from k6suite_lib.faults.kubernetes import KubernetesDriver, ScaleTo

        driver = KubernetesDriver.from_profile(sc.profile)
        desired, _ = driver.replicas()
        variant = chaos.variant_name(f"{desired}-to-{desired + add}", repeat, repeats)
        return _scale_and_judge(sc, variant, sc.profile, ScaleTo(driver, desired + add), warmup_s, after_s, rate)
    sc.not_tested(variant, "scale-out without clients noticing", "F5",
                  f"the profile's fault driver ({sc.profile.faults.driver}) cannot add brokers")
    return pd.DataFrame()


def _grow(profile: Profile, stack: EmbeddedStack, add: int):
    """The scale-out of the one-broker stack: through its KafscaleCluster when the profile's faults go
    through Kubernetes (the operator grows the StatefulSet), else new broker processes."""
    if profile.faults.driver == "kubernetes":
        from k6suite_lib.faults.kubernetes import ScaleTo

        return ScaleTo(stack.driver(), len(stack.broker_ids) + add)
    return AddBrokers(stack, add)


def _spread_probe(profile: Profile, stack: EmbeddedStack | None, fault):
    """After the run: connections through the endpoint counted per broker (embedded stacks only)."""
    def add_probe(result: WorkloadResult) -> WorkloadResult:
        invoked = time.monotonic_ns()
        if stack is None:
            row = probe_row(result.run_id, "connection-spread", invoked, {}, error="per-broker connections are "
                            "counted from this machine's socket table, which sees only embedded stacks")
        else:
            try:
                table = probes.connection_spread(probes.endpoint(profile),
                                                 {b: stack.broker_port(b) for b in stack.broker_ids},
                                                 SPREAD_CONNECTIONS)
                row = probe_row(result.run_id, "connection-spread", invoked, {
                    "connections": {str(b): int(n) for b, n in zip(table["broker"], table["connections"],
                                                                   strict=True)},
                    "added": [str(b) for b in fault.added], "total": SPREAD_CONNECTIONS})
            except Exception as exc:  # the probe's failure is the evidence
                row = probe_row(result.run_id, "connection-spread", invoked, {}, error=f"{type(exc).__name__}: {exc}")
        return dataclasses.replace(result, history=append(result.history, [row]))
    return add_probe


def _scale_and_judge(sc: Scenario, variant: str, profile: Profile, fault, warmup_s: float, after_s: float,
                     rate: float, stack: EmbeddedStack | None = None) -> pd.DataFrame:
    """Run load against `profile`, apply the scale-out after warmup_s, judge what clients saw."""
    config = WorkloadConfig(records=None, duration_s=warmup_s + after_s, rate=rate, producers=2, consumers=2,
                            consumer_mode="assign", partitions=3, client_metrics_s=1.0, label=f"s6-{variant}",
                            after_faults_s=chaos.AFTER_FAULTS_S, after_faults_min_s=chaos.AFTER_FAULTS_MIN_S,
                            consume_grace_s=30, readback_timeout_s=60)
    schedule = Schedule([Step(warmup_s, "start", fault)])
    checks = chaos.fault_checks(sc, config, schedule, errors_requirement="F5 / NFR4", extra=(
        CheckSpec("reconnections", {"requirement": "F5.1 / NFR3"}),
        CheckSpec("metadata-unchanged"), CheckSpec("new-brokers-serve")))
    original, sc.profile = sc.profile, profile
    try:
        _, judgement = chaos.run_with_faults(sc, variant, config, schedule, checks,
                                             before_judging=_spread_probe(profile, stack, fault))
    finally:
        sc.profile = original
    view = judgement.view
    rates = throughput(view)
    start_s = ((view.first_fault_ns or 0) - view.frame["invoke_ns"].min()) / 1e9
    sc.measure(f"{variant}.throughput_acked_per_s", {
        "before": float(rates.loc[rates["t_s"] < start_s, "acked"].mean()),
        "after": float(rates.loc[(rates["t_s"] > start_s + 2) & (rates["t_s"] < start_s + after_s), "acked"].mean())})
    return judgement.verdicts
