"""S4 broker chaos: steady traffic through the endpoint while a broker dies (or freezes), then returns.

Kinds: kill (SIGKILL), terminate (SIGTERM, grace, then SIGKILL) and pause (SIGSTOP, later SIGCONT).
The fault hits the broker taking the most produce traffic at the moment it starts. Verdicts: no acknowledged write lost
or unseen after the final read-back, no inconsistent offsets, no client error beyond retry,
recovery (fault to first acknowledgement on every partition) under 5 s, no group rebalance.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from k6suite_lib.faults.process import BrokerKill, BrokerPause, BrokerTerminate
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import chaos
from k6suite_lib.workload import WorkloadConfig

KINDS = {"kill": BrokerKill, "terminate": BrokerTerminate, "pause": BrokerPause}


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    fault_s: float
    after_s: float


TIMINGS = {"smoke": Timing(8, 15, 8), "full": Timing(15, 30, 15)}


def _fault(sc: Scenario, kind: str):
    if sc.stack is not None:
        return KINDS[kind](sc.stack)  # aims at the busiest broker when the fault starts
    if sc.profile.faults.driver == "kubernetes" and kind in ("kill", "terminate"):
        from k6suite_lib.faults.kubernetes import KubernetesDriver, PodKill

        return PodKill(KubernetesDriver.from_profile(sc.profile), grace_s=0 if kind == "kill" else 30)
    return None


def broker_fault(sc: Scenario, kind: str, timing: Timing, rate: float = 100.0, producers: int = 1,
                 consumers: int = 2, partitions: int = 3, repeat: int = 1, repeats: int = 1) -> pd.DataFrame:
    variant = chaos.variant_name(kind, repeat, repeats)
    if kind not in KINDS:
        raise ValueError(f"unknown broker fault {kind!r}; known: {', '.join(KINDS)}")
    if not sc.require_target(variant):
        return pd.DataFrame()
    fault = _fault(sc, kind)
    if fault is None:
        sc.not_tested(variant, f"broker {kind}", "F4 / NFR1",
                      f"the profile's fault driver ({sc.profile.faults.driver}) cannot {kind} a broker")
        return pd.DataFrame()
    schedule = Schedule.window(fault, timing.warmup_s, timing.fault_s)
    config = WorkloadConfig(records=None, duration_s=timing.warmup_s + timing.fault_s + timing.after_s, rate=rate,
                            producers=producers, consumers=consumers, consumer_mode="group", partitions=partitions,
                            client_metrics_s=1.0, label=f"s4-{variant}", consume_grace_s=30, readback_timeout_s=60,
                            progress=False)
    result, verdict = chaos.run_with_faults(sc, variant, config, schedule)
    chaos.surfaced_errors(sc, variant, result.history)
    chaos.check_recovery(sc, variant, result.history)
    chaos.check_rebalances(sc, variant, result.history)
    sc.measure(f"{variant}.target", fault.target)
    return verdict.verdicts
