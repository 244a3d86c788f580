"""S5 object-store slowness and outage, and S5b the same for the metadata store (etcd).

Faults act on the brokers' path to the store only (Toxiproxy), never on the clients' path.
Storage: latency 200 ms ± 50 ms, then a bandwidth limit, then a short full outage. Metadata store:
latency, then an outage. Verdicts: the shared fault checks (no loss, read-back to the end, acks
resume after each fault, most of the offered rate acknowledged outside the faults, client errors),
consumers catch up, and for storage: clients feel the latency (F6.3) and the brokers' own S3
latency metric names it (NFR5). Reported: publish latency per fault window (the S5b latency rise),
backpressure (errors during the faults).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from k6suite_lib import metrics
from k6suite_lib.checkers import CheckSpec
from k6suite_lib.checkers.measures import latency_by_window
from k6suite_lib.faults.network import Bandwidth, Latency, Outage
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.history import append
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import chaos
from k6suite_lib.workload import WorkloadConfig

# the brokers' own storage-latency gauge, per system (None: the system exposes none)
S3_LATENCY_METRIC = {"kafscale": "kafscale_s3_latency_ms_avg"}
STORE_NAMES = {"storage": "object store", "metadata": "metadata store"}
CATCH_UP_S = 30.0  # live consumers must have read what was acknowledged before the store came back by then


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    latency_s: float
    bandwidth_s: float
    outage_s: float
    after_s: float


TIMINGS = {"smoke": Timing(8, 20, 10, 5, 15), "full": Timing(15, 60, 30, 10, 30)}


def store_faults(sc: Scenario, role: str, timing: Timing, latency_ms: int = 200, jitter_ms: int = 50,
                 bandwidth_kb: int = 64, rate: float = 100.0, repeat: int = 1, repeats: int = 1) -> pd.DataFrame:
    variant = chaos.variant_name(f"{role}-faults", repeat, repeats)
    if not sc.require_target(variant):
        return pd.DataFrame()
    if sc.stack is None:
        sc.not_tested(variant, f"{role} latency and outage", "F6 / NFR1",
                      f"store faults need an embedded stack's Toxiproxy between brokers and the {STORE_NAMES[role]}")
        return pd.DataFrame()
    if role not in sc.stack.fault_paths:  # a store the system does not have cannot be slowed: not asked of it
        sc.absent_component(variant, f"{role} latency and outage", "F6" if role == "storage" else "F6 / NFR1",
                            f"the embedded {sc.stack.system} has no separate {STORE_NAMES[role]} path to slow down "
                            f"(its paths: {', '.join(sc.stack.fault_paths) or 'none: data lives on the brokers'})")
        return pd.DataFrame()
    proxy = sc.stack.toxiproxy
    windows = [(Latency(proxy, role, latency_ms, jitter_ms), timing.warmup_s, timing.latency_s)]
    start = timing.warmup_s + timing.latency_s
    if role == "storage":
        windows.append((Bandwidth(proxy, role, bandwidth_kb), start, timing.bandwidth_s))
        start += timing.bandwidth_s
    windows.append((Outage(proxy, role), start, timing.outage_s))
    schedule = Schedule.windows(windows)
    config = WorkloadConfig(records=None, duration_s=start + timing.outage_s + timing.after_s, rate=rate, producers=1,
                            consumers=2, partitions=3, label=f"s5-{variant}", consume_grace_s=45,
                            after_faults_s=chaos.AFTER_FAULTS_S, after_faults_min_s=chaos.AFTER_FAULTS_MIN_S,
                            readback_timeout_s=90)
    extra = [CheckSpec("catch-up", {"limit_s": CATCH_UP_S})]
    family = S3_LATENCY_METRIC.get(sc.stack.system)
    if role == "storage":
        latency_fault = windows[0][0].name
        extra.append(CheckSpec("latency-rise", {"fault": latency_fault, "min_rise_ms": latency_ms / 2,
                                                "requirement": "F6.3"}))
        extra.append(CheckSpec("metric-at-least", {"family": family, "minimum": latency_ms, "fault": latency_fault,
                                                   "requirement": "NFR5"}))
    checks = chaos.fault_checks(sc, config, schedule, extra=tuple(extra), errors_during_faults=False)
    with metrics.Sampler(sc.profile.metrics_urls, interval_s=1.0) as sampler:
        def with_samples(result):
            rows = metrics.sample_rows(sc.run_id, sampler.frame(), [family] if family else [])
            return dataclasses.replace(result, history=append(result.history, rows))

        _, judgement = chaos.run_with_faults(sc, variant, config, schedule, checks, before_judging=with_samples)
    view = judgement.view
    errors = view.frame[view.frame["f"].isin(["send", "poll"]) & (view.frame["type"] != "ok")
                        & (view.frame["invoke_ns"] >= (view.first_fault_ns or 0))]
    sc.measure(f"{variant}.latency_by_window", latency_by_window(view).round(1))
    sc.measure(f"{variant}.backpressure", {"errors_during_faults": len(errors),
                                           "by_error": errors["error"].str[:100].value_counts().head(5).to_dict()})
    return judgement.verdicts
