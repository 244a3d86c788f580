"""S4 broker chaos: steady traffic while a broker dies (or freezes), then returns.

Kinds: kill (SIGKILL), terminate (SIGTERM, grace, then SIGKILL) and pause (SIGSTOP, later SIGCONT).
The fault hits the broker the workload's writes depend on most when it starts (the stack decides:
behind KafScale's proxy the busiest broker, on Kafka the leader of most of the topic's
partitions). Verdicts: the shared fault checks (no acknowledged write lost, read-back to the end,
acks resume, fault-free throughput, client errors) plus the longest gap between acknowledgements
per partition from the fault's start (< 5 s, NFR1) and no consumer-group rebalance (F4.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from k6suite_lib.checkers import CheckSpec
from k6suite_lib.faults.process import BrokerKill, BrokerPause, BrokerTerminate
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import chaos
from k6suite_lib.workload import WorkloadConfig

KINDS = {"kill": BrokerKill, "terminate": BrokerTerminate, "pause": BrokerPause}
RECOVERY_LIMIT_S = 5.0


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    fault_s: float
    after_s: float


TIMINGS = {"smoke": Timing(8, 15, 8), "full": Timing(15, 30, 15)}


def _fault(sc: Scenario, kind: str, topic: str):
    if sc.stack is not None:
        return KINDS[kind](sc.stack, topic=topic)
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
    topic = re.sub(r"[^A-Za-z0-9._-]", "-", f"k6s-{sc.run_id}-s4-{variant}")
    fault = _fault(sc, kind, topic)
    if fault is None:
        sc.not_tested(variant, f"broker {kind}", "F4 / NFR1",
                      f"the profile's fault driver ({sc.profile.faults.driver}) cannot {kind} a broker")
        return pd.DataFrame()
    schedule = Schedule.window(fault, timing.warmup_s, timing.fault_s)
    config = WorkloadConfig(records=None, duration_s=timing.warmup_s + timing.fault_s + timing.after_s, rate=rate,
                            producers=producers, consumers=consumers, consumer_mode="group", partitions=partitions,
                            client_metrics_s=1.0, label=f"s4-{variant}", topic=topic, consume_grace_s=30,
                            after_faults_s=chaos.AFTER_FAULTS_S, after_faults_min_s=chaos.AFTER_FAULTS_MIN_S,
                            readback_timeout_s=60)
    checks = chaos.fault_checks(sc, config, schedule, extra=(
        CheckSpec("recovery", {"limit_s": RECOVERY_LIMIT_S}), CheckSpec("rebalances", {"requirement": "F4.3"})))
    _, judgement = chaos.run_with_faults(sc, variant, config, schedule, checks)
    sc.measure(f"{variant}.target", fault.target)
    return judgement.verdicts
