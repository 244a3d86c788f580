"""S6 scale-out: one broker under load, then two more, and clients must not notice.

On the embedded stack this scenario runs its own one-broker stack (so the profile's stack keeps
its size) and adds brokers to it; on Kubernetes it scales the KafscaleCluster. Verdicts: no client
reconnection (counted from the clients' own metrics), the broker list in the clients' metadata
unchanged, no client error, the new brokers serve requests, and no loss; throughput before and
after is measured.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from k6suite_lib import probes
from k6suite_lib.checker import throughput
from k6suite_lib.faults.process import AddBrokers
from k6suite_lib.faults.schedule import Schedule, Step
from k6suite_lib.profiles import StackSettings, embedded_addresses
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import chaos
from k6suite_lib.stack import EmbeddedStack, open_stack
from k6suite_lib.workload import WorkloadConfig

SCALE_STACK_OFFSET = 200  # the scale-out stack's port base, relative to the profile's (see stack.layout)


def scale_profile(sc: Scenario):
    """The profile of a one-broker embedded stack beside the profile's own."""
    stack = StackSettings(brokers=1, port_base=sc.profile.stack.port_base + SCALE_STACK_OFFSET)
    addresses = embedded_addresses(sc.profile.target_kind, stack)
    return dataclasses.replace(
        sc.profile, name=f"{sc.profile.name}-scaleout", stack=stack, bootstrap_servers=addresses["bootstrap_servers"],
        metrics_urls=addresses["metrics_urls"], etcd_endpoints=addresses["etcd_endpoints"],
        object_store=dataclasses.replace(sc.profile.object_store, endpoint=addresses["object_store.endpoint"]))


def scale_out(sc: Scenario, add: int = 2, warmup_s: float = 15, after_s: float = 20, rate: float = 100.0,
              repeat: int = 1, repeats: int = 1) -> pd.DataFrame:
    variant = chaos.variant_name(f"1-to-{1 + add}", repeat, repeats)
    if sc.stack is not None:
        profile = scale_profile(sc)
        stack = open_stack(profile, log=lambda msg: print(f"[scale-out stack] {msg}"))
        stack.up()
        try:
            return _scale_and_judge(sc, variant, profile, AddBrokers(stack, add), warmup_s, after_s, rate, stack)
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


def _scale_and_judge(sc: Scenario, variant: str, profile, fault, warmup_s: float, after_s: float, rate: float,
                     stack: EmbeddedStack | None = None) -> pd.DataFrame:
    """Run load against `profile`, apply the scale-out fault after warmup_s, judge what clients saw."""
    config = WorkloadConfig(records=None, duration_s=warmup_s + after_s, rate=rate, producers=2, consumers=2,
                            consumer_mode="assign", partitions=3, client_metrics_s=1.0, label=f"s6-{variant}",
                            consume_grace_s=30, readback_timeout_s=60, progress=False)
    original, sc.profile = sc.profile, profile
    try:
        result, verdict = chaos.run_with_faults(sc, variant, config, Schedule([Step(warmup_s, "start", fault)]))
    finally:
        sc.profile = original
    history = result.history
    scaled_at = int(history.loc[history["f"] == "fault", "complete_ns"].min())
    reconnections = chaos.client_reconnections(history, scaled_at)
    total = int(reconnections["reconnections"].sum()) if len(reconnections) else -1
    sc.add_check(variant, "client reconnections after scale-out", "F5.1 / NFR3", total, "== 0", total == 0,
                 "; ".join(f"{r.client}: {r.before} -> {r.after}" for r in reconnections.itertuples())
                 or "no client-metrics samples")
    views = chaos.client_metadata_views(history)
    changed = views[views["brokers"].map(len) > 1]
    sc.add_check(variant, "metadata seen by clients unchanged", "F5.3", len(changed), "== 0 clients",
                 not views.empty and changed.empty,
                 "; ".join(f"{r.process}: {r.brokers}" for r in views.head(3).itertuples()))
    chaos.surfaced_errors(sc, variant, history, requirement="F5 / NFR4")
    if stack is None:
        sc.not_tested(variant, "new brokers serve requests", "F4.5 / F5.4",
                      "per-broker connections are counted from this machine's socket table (embedded stack only)")
    else:
        serving = probes.connection_spread(probes.endpoint(profile),
                                           {b: stack.layout.broker_port(b) for b in stack.broker_ids}, 30)
        new = serving[serving["broker"].isin(fault.added)]
        sc.add_check(variant, "new brokers serve requests", "F4.5 / F5.4",
                     dict(zip(new["broker"], new["connections"], strict=True)), ">= 1 connection each",
                     len(new) == fault.count and bool((new["connections"] >= 1).all()),
                     "30 fresh connections through the endpoint, counted per broker")
    rates = throughput(history)
    start_s = (scaled_at - history["invoke_ns"].min()) / 1e9
    sc.measure(f"{variant}.throughput_acked_per_s", {
        "before": float(rates.loc[rates["t_s"] < start_s, "acked"].mean()),
        "after": float(rates.loc[(rates["t_s"] > start_s + 2) & (rates["t_s"] < start_s + after_s), "acked"].mean())})
    return verdict.verdicts
