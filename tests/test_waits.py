"""Waits that end when their outcome is decided, and only then: the decisions behind the faster runs.

Each case below is one an adversarial audit of the faster waits raised; they run without a stack
(the orchestrator's decisions are functions of the shared bookkeeping, the schedule is driven with a
fault that only records when it was applied).
"""

from __future__ import annotations

import json
import threading
import time

from k6suite_lib.faults.base import Fault
from k6suite_lib.faults.schedule import BASELINE_S, Schedule
from k6suite_lib.history import Recorder
from k6suite_lib.profiles import load_profile
from k6suite_lib.progress import Progress
from k6suite_lib.workload import WorkloadConfig
from k6suite_lib.workload.context import RunContext
from k6suite_lib.workload.orchestrator import _recovered
from tests.histories import Timeline
from tests.test_checkers import run


class Marker(Fault):
    """A fault that only notes when the schedule applied it (no process is harmed)."""

    name, role = "marker", "none"

    def __init__(self) -> None:
        self.started_at: float | None = None

    @property
    def target(self) -> str:
        return "nothing"

    def start(self) -> None:
        self.started_at = time.monotonic()

    def stop(self) -> None:
        """Nothing to heal."""


def context(partitions: int = 2, consumer_mode: str = "group", **config) -> RunContext:
    cfg = WorkloadConfig(records=None, duration_s=10, partitions=partitions, consumers=2,
                         consumer_mode=consumer_mode, **config)
    return RunContext(profile=load_profile("local"), config=cfg, run_id="r", topic="t", recorder=Recorder("r"))


def test_acks_settled_late_do_not_count_as_resumed():
    """Audit finding: producers settle outcomes in batches, so an ack from before the heal was stamped
    after it; producers stopped at the minimum and acks-resume was NOT TESTED where it had FAILed."""
    ctx = context(after_faults_s=12, after_faults_min_s=0)
    heal = time.monotonic()
    before_heal_ns = time.monotonic_ns() - 3_000_000_000
    ctx.tracker.ack(("p", 0), 0, before_heal_ns)  # settled now, arrived 3 s before the heal
    ctx.tracker.ack(("p", 1), 1, time.monotonic_ns())
    assert not _recovered(ctx, heal, True)
    ctx.tracker.ack(("p", 2), 0, time.monotonic_ns())
    assert _recovered(ctx, heal, True)


def test_producers_run_at_least_the_minimum_and_at_most_the_bound_after_the_faults():
    ctx = context(after_faults_s=0.3, after_faults_min_s=0.2)
    heal = time.monotonic()
    for partition in (0, 1):
        ctx.tracker.ack(("p", partition), partition, time.monotonic_ns())
    assert not _recovered(ctx, heal, True)  # resumed, but not yet the minimum
    time.sleep(0.2)
    assert _recovered(ctx, heal, True)
    silent = context(after_faults_s=0.3, after_faults_min_s=0.1)  # never resumed: the bound ends it
    heal = time.monotonic()
    time.sleep(0.3)
    assert _recovered(silent, heal, True)


def test_a_group_is_steady_only_when_its_members_hold_every_partition_and_stopped_moving():
    """Audit finding: a poll returns early while a join is pending, so 'every consumer polled' was true
    while one member owned everything and the second was about to join: faults hit a forming group."""
    ctx = context()
    ctx.polled.update({"consumer-0", "consumer-1"})
    for partition in (0, 1):
        ctx.tracker.ack(("p", partition), partition, time.monotonic_ns())
    ctx.assigned("consumer-0", {0, 1})
    assert not ctx.steady(2)  # one member holds both partitions: the other has not joined
    ctx.assigned("consumer-0", {0})
    ctx.assigned("consumer-1", {1})
    assert not ctx.steady(2)  # just reassigned
    ctx.last_assignment_ns -= 2_000_000_000
    assert ctx.steady(2)
    unwritten = context(partitions=3)
    unwritten.polled.update({"consumer-0", "consumer-1"})
    unwritten.assigned("consumer-0", {0, 1})
    unwritten.assigned("consumer-1", {2})
    unwritten.last_assignment_ns -= 2_000_000_000
    assert not unwritten.steady(2)  # no partition acknowledged yet


def test_a_schedule_starts_early_once_steady_but_keeps_a_baseline():
    """Timed relative to the moment steady is set, and with the fault scheduled far later (60 s) than
    the baseline, so a loaded machine's late wake-ups cannot make a correct schedule fail: every wait
    can only end late, and the bounds that face lateness have tens of seconds of slack."""
    scheduled_s = 60.0
    fault = Marker()
    schedule = Schedule.window(fault, scheduled_s, 0.1)
    recorder, stop = Recorder("r"), threading.Event()
    nemesis = threading.Thread(target=schedule, args=(recorder, stop), daemon=True)
    started = time.monotonic()
    nemesis.start()
    time.sleep(0.5)
    steady_at = time.monotonic()
    schedule.steady.set()
    nemesis.join(BASELINE_S + 20)
    stop.set()
    nemesis.join(5)
    assert fault.started_at is not None, "the fault did not come early once the traffic was steady"
    # never sooner than the baseline after steady (a margin for the two clock reads that start a schedule)
    assert fault.started_at - steady_at >= BASELINE_S - 0.2, fault.started_at - steady_at
    # early by what it says, and by about the time between steady and the scheduled start less the baseline
    came = fault.started_at - started
    assert came + schedule.shifted_s >= scheduled_s - 0.2, (came, schedule.shifted_s)
    slack_s = scheduled_s - BASELINE_S - (steady_at - started)  # the shift if steady were seen at once
    assert slack_s - 15 < schedule.shifted_s <= slack_s + 0.2, (schedule.shifted_s, slack_s)
    assert [json.loads(r["detail"])["phase"] for r in recorder.rows()] == ["start", "end"]


def test_a_schedule_nobody_calls_steady_keeps_its_times():
    fault = Marker()
    schedule = Schedule.window(fault, 0.5, 0.1)
    started = time.monotonic()
    schedule(Recorder("r"), threading.Event())
    assert fault.started_at - started >= 0.45 and schedule.shifted_s == 0.0


def test_members_leaving_at_the_end_are_not_rebalances():
    """With a drain that stops as soon as consumers reached the end, the members' leaving reassigns
    the others right after consumers-stop: that is shutdown, not the fault."""
    t = Timeline()
    t.sends(0, 30, 10, 2)
    t.fault(10, 20)
    t.read_everything(31)
    t.group(0.5, "consumer-0", [0])
    t.group(0.5, "consumer-1", [1])
    t._row(32, process="workload", f="phase", type="ok", detail=json.dumps({"phase": "consumers-stop"}))
    t.group(32.5, "consumer-1", [0, 1])
    assert run(t, "rebalances")["status"] == "PASS"
    t.group(25, "consumer-1", [0, 1])  # during the run: the fault's doing
    assert run(t, "rebalances")["status"] == "FAIL"


def test_the_display_never_fails_a_run(tmp_path):
    """Audit finding: writing progress.json from inside the workload's loops could raise (a removed
    folder, a full disk) and was then recorded as a broken read-back."""
    gone = tmp_path / "gone"
    gone.mkdir()
    progress = Progress("S4", gone, mode="file")
    gone.rmdir()
    progress.enter("read-back", "kill", expected_s=5)
    progress.update(read=10)
    progress.close()
    assert [r["phase"] for r in progress.records()] in ([], ["read-back"])
