"""Shared by the fault scenarios (S4, S5, S5b, S6, S7): run a workload beside a fault schedule and
compose the checkers that judge it.

Every fault scenario gets the same availability verdicts on top of the core anomalies and the
read-back: every fault took effect, acknowledgements resume within a bound after each fault ends,
the target acknowledges most of what open-loop producers offered outside the faults, each within the
settling time of falling due (a run that stops accepting writes, or acknowledges them only late, fails),
and client errors are counted as surfaced vs handled. Under faults a non-idempotent producer may
legitimately duplicate, but only a record its own recorded retry of that partition explains (a copy
on the same partition, retried while the send was outstanding); any other duplicate fails, and
nothing else is allowed beyond what the client settings produce.
"""

from __future__ import annotations

import re

from k6suite_lib import plots
from k6suite_lib.checkers import AnomalyRules, CheckSpec, reordering_needs_retry
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.history import View
from k6suite_lib.profiles import Profile
from k6suite_lib.scenario import Judgement, Scenario
from k6suite_lib.workload import WorkloadConfig, WorkloadResult

RESUME_BOUND_S = 10.0  # acknowledgements must come back this soon after a fault ends
AFTER_FAULTS_S = RESUME_BOUND_S + 2  # producers keep sending at most this long after the last heal, to see it
FAULT_FREE_SHARE = 0.8  # of the offered rate, outside the faults
SETTLE_S = 5.0  # after each fault, time the target may take to catch up before throughput is judged; also the
# longest an acknowledgement may take, from when its send fell due, to count as a write taken (fault-free-acks)
# producers keep sending at least this long after the last heal, once every partition acknowledged again:
# acks-resume can always be judged, and fault-free traffic after the settling time is judged too
AFTER_FAULTS_MIN_S = RESUME_BOUND_S
# live group consumers must have read every acknowledged record within this long of when it was due (the last
# fault's end, or its acknowledgement if later; S4, S7): 292 saved Kafka 4.1.1 S4/S7 histories of all three
# clients PASS (at most 10 s), the drain gives them AFTER_FAULTS_S + 30 s
CATCH_UP_S = 30.0


def variant_name(base: str, repeat: int, repeats: int) -> str:
    return f"{base}#{repeat}" if repeats > 1 else base


def fault_checks(sc: Scenario, config: WorkloadConfig, schedule: Schedule, errors_requirement: str = "NFR1",
                 extra: tuple[CheckSpec, ...] = (), errors_during_faults: bool = True) -> list[CheckSpec]:
    """The composition every fault scenario shares, plus the scenario's own checks. errors_during_faults
    False: errors inside the fault windows are backpressure to report (S5, S5b), not failures."""
    idempotent = config.idempotent(sc.profile)
    rules = AnomalyRules(min_acked=1, retried_duplicates=not idempotent,
                         retried_reordering=reordering_needs_retry(idempotent, config.in_flight(sc.profile)))
    return [
        CheckSpec("anomalies", rules.params()),
        CheckSpec("readback"),
        CheckSpec("faults-applied", {"rows": 2 * len({id(s.fault) for s in schedule.steps if s.action == "start"})}),
        CheckSpec("acks-resume", {"bound_s": RESUME_BOUND_S}),
        CheckSpec("fault-free-acks", {"rate": config.rate, "fraction": FAULT_FREE_SHARE, "settle_s": SETTLE_S}),
        CheckSpec("client-errors", {"requirement": errors_requirement, "outside_faults_only": not errors_during_faults,
                                    "settle_s": SETTLE_S}),
        *extra,
    ]


def group_warmup_s(profile: Profile, warmup_s: float) -> float:
    """The latest a group workload's first fault comes: its warm-up plus its members' session timeout
    (WorkloadConfig.group_session). A group may take that long to form (Tansu holds a new group's first JoinGroup
    for half of it: 22.5 s with the libraries' 45 s), and a fault before it formed leaves the group's checks NOT
    TESTED. The fault still comes BASELINE_S after the traffic is steady (faults.schedule), so a run whose group
    formed within the warm-up is the same run."""
    session = WorkloadConfig(consumer_mode="group").group_session(profile)
    return warmup_s + session["session_timeout_ms"] / 1000


def run_with_faults(sc: Scenario, variant: str, config: WorkloadConfig, schedule: Schedule,
                    checks: list[CheckSpec], before_judging=None) -> tuple[WorkloadResult, Judgement]:
    """Run the workload with the schedule as its nemesis, judge it with `checks`, save the plots.

    before_judging(result) -> result may add probe rows to the history first (they are evidence too).
    """
    result = sc.run_workload(variant, config, nemesis=schedule)
    if before_judging is not None:
        result = before_judging(result)
    judgement = sc.judge(variant, result, checks)
    save_plots(sc, variant, judgement.view)
    return result, judgement


def save_plots(sc: Scenario, variant: str, view: View) -> None:
    sc.progress.enter("plots", variant)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{sc.scenario}-{variant}".lower())
    sc.save_figure(plots.timeline(view, f"{sc.scenario} {variant}"), f"{slug}-timeline")
    sc.save_figure(plots.latency_cdf(view, f"{sc.scenario} {variant}: publish latency"), f"{slug}-latency-cdf")
    sc.save_figure(plots.unseen_curve(view, f"{sc.scenario} {variant}: final read-back"), f"{slug}-readback")
