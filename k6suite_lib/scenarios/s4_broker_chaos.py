"""S4 broker chaos: steady traffic while a broker dies (or freezes), then returns.

Kinds: kill (SIGKILL), terminate (SIGTERM, grace, then SIGKILL) and pause (SIGSTOP, later SIGCONT);
through the Kubernetes driver a pod deletion with grace 0 or 5 s (the StatefulSet makes the pod again
at once) and SIGSTOP of the pod's process where the node runs it on this machine.
The fault hits the broker the workload's writes depend on most when it starts (the stack decides:
behind KafScale's proxy the busiest broker, on Kafka the leader of most of the topic's
partitions). Verdicts: the shared fault checks (no acknowledged write lost, read-back to the end,
acks resume, fault-free throughput, client errors) plus the longest gap between acknowledgements
per partition from the fault's start (< 5 s, NFR1), no consumer-group rebalance (F4.3) and the group's
consumers reading again after the fault (catch-up: a group that lost every member's session and never
rejoined counts no rebalance and fails nothing else).
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
TERMINATE_GRACE_S = 5  # SIGTERM, then SIGKILL this long after: a process's terminate and a pod's deletion


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    fault_s: float
    after_s: float


TIMINGS = {"smoke": Timing(8, 15, 8), "full": Timing(15, 30, 15)}


def _fault(sc: Scenario, kind: str, topic: str):
    if sc.profile.faults.driver == "kubernetes":
        return _pod_fault(sc, kind, topic)
    if sc.stack is not None:
        if kind == "terminate":
            return BrokerTerminate(sc.stack, grace_s=TERMINATE_GRACE_S, topic=topic)
        return KINDS[kind](sc.stack, topic=topic)
    return None


def _pod_fault(sc: Scenario, kind: str, topic: str):
    """kill: pod deletion with grace 0; terminate: with TERMINATE_GRACE_S; pause: SIGSTOP to the pod's
    process, only where it is a process of this machine. On an embedded cluster the pod is the busiest
    broker's, chosen and measured as the process driver does."""
    from k6suite_lib.faults.kubernetes import KubernetesDriver, PodKill, PodPause

    driver = KubernetesDriver.from_profile(sc.profile)
    stack, choose, load = sc.stack, None, None
    if stack is not None:
        def choose() -> str:
            return f"{driver.statefulset}-{stack.fault_target(topic)}"

        def load(pod: str) -> dict:
            return stack.workload_load(int(pod.rsplit("-", 1)[1]), topic)
    if kind == "pause":
        return PodPause(driver, choose=choose, load=load) if PodPause.possible(driver) else None
    return PodKill(driver, grace_s=0 if kind == "kill" else TERMINATE_GRACE_S, choose=choose, load=load)


def checks(sc: Scenario, config: WorkloadConfig, schedule: Schedule) -> list[CheckSpec]:
    """S4's composition: the shared fault checks, the recovery gap, no rebalance, and the group reading again."""
    return chaos.fault_checks(sc, config, schedule, extra=(
        CheckSpec("recovery", {"limit_s": RECOVERY_LIMIT_S}), CheckSpec("rebalances", {"requirement": "F4.3"}),
        CheckSpec("catch-up", {"limit_s": chaos.CATCH_UP_S, "requirement": "F4"})))


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
        why = (" (its broker pods' containers are not processes of this machine)"
               if sc.profile.faults.driver == "kubernetes" else "")
        sc.not_tested(variant, f"broker {kind}", "F4 / NFR1",
                      f"the profile's fault driver ({sc.profile.faults.driver}) cannot {kind} a broker{why}")
        return pd.DataFrame()
    warmup_s = chaos.group_warmup_s(sc.profile, timing.warmup_s)
    schedule = Schedule.window(fault, warmup_s, timing.fault_s)
    config = WorkloadConfig(records=None, duration_s=warmup_s + timing.fault_s + timing.after_s, rate=rate,
                            producers=producers, consumers=consumers, consumer_mode="group", partitions=partitions,
                            client_metrics_s=1.0, label=f"s4-{variant}", topic=topic, consume_grace_s=30,
                            after_faults_s=chaos.AFTER_FAULTS_S, after_faults_min_s=chaos.AFTER_FAULTS_MIN_S,
                            readback_timeout_s=60)
    _, judgement = chaos.run_with_faults(sc, variant, config, schedule, checks(sc, config, schedule))
    sc.measure(f"{variant}.target", fault.target)
    return judgement.verdicts
