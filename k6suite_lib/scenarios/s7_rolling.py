"""S7 rolling restart: every broker bounced in turn (SIGTERM with grace, start again) under load;
on Kubernetes, a rollout restart of the broker StatefulSet.

Verdicts: the shared fault checks (no loss, acks resume after each bounce, fault-free throughput,
no produce or consume error), no group rebalance, the group's consumers reading again after the last
bounce (catch-up), and no reconnect storm (a client reconnecting
more than once per restart, counted from the clients' own metrics).
"""

from __future__ import annotations

import pandas as pd

from k6suite_lib.checkers import CheckSpec
from k6suite_lib.faults.process import BrokerRestart
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import chaos
from k6suite_lib.workload import WorkloadConfig


def checks(sc: Scenario, config: WorkloadConfig, schedule: Schedule, restarts: int) -> list[CheckSpec]:
    """S7's composition: the shared fault checks, no rebalance, no reconnect storm, the group reading again."""
    return chaos.fault_checks(sc, config, schedule, errors_requirement="NFR4", extra=(
        CheckSpec("rebalances", {"requirement": "NFR4"}),
        CheckSpec("reconnections", {"requirement": "S7", "restarts": restarts}),
        CheckSpec("catch-up", {"limit_s": chaos.CATCH_UP_S, "requirement": "NFR4"})))


def rolling_restart(sc: Scenario, warmup_s: float = 8, interval_s: float = 10, after_s: float = 10,
                    rate: float = 100.0, grace_s: float = 5.0, repeat: int = 1, repeats: int = 1) -> pd.DataFrame:
    variant = chaos.variant_name("rolling", repeat, repeats)
    if not sc.require_target(variant):
        return pd.DataFrame()
    warmup_s = chaos.group_warmup_s(sc.profile, warmup_s)
    if sc.profile.faults.driver == "kubernetes":
        from k6suite_lib.faults.kubernetes import KubernetesDriver, RolloutRestart

        driver = KubernetesDriver.from_profile(sc.profile)
        restarts = driver.replicas()[0]
        schedule = Schedule.windows([(RolloutRestart(driver), warmup_s, 0.1)])
    elif sc.stack is not None:
        restarts = len(sc.stack.broker_ids)
        # a window per bounce: it lasts as long as the restart takes (start() returns once the broker is back)
        schedule = Schedule.windows([(BrokerRestart(sc.stack, b, grace_s), warmup_s + i * interval_s, 0.1)
                                     for i, b in enumerate(sc.stack.broker_ids)])
    else:
        sc.not_tested(variant, "rolling restart", "NFR4",
                      f"the profile's fault driver ({sc.profile.faults.driver}) cannot restart brokers")
        return pd.DataFrame()
    config = WorkloadConfig(records=None, duration_s=warmup_s + restarts * interval_s + after_s, rate=rate,
                            producers=1, consumers=2, consumer_mode="group", partitions=3, client_metrics_s=1.0,
                            label=f"s7-{variant}", consume_grace_s=30, readback_timeout_s=60,
                            after_faults_s=chaos.AFTER_FAULTS_S, after_faults_min_s=chaos.AFTER_FAULTS_MIN_S)
    _, judgement = chaos.run_with_faults(sc, variant, config, schedule, checks(sc, config, schedule, restarts))
    return judgement.verdicts
