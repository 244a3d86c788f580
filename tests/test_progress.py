"""Phases timed and shown: the numbers behind the report's time table, and the live display's modes."""

from __future__ import annotations

import json
import time

import pytest

from k6suite_lib import progress as progress_module
from k6suite_lib.progress import (
    MIN_PHASE_S,
    PROGRESS_FILE,
    Progress,
    display_mode,
    phase_table,
    read_state,
    scenario_times,
)
from k6suite_lib.workload.context import Tracker


class Clock:
    """Progress's clock, advanced by the test: durations are then exact, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module, "time", fake)
    return fake


def test_phases_are_timed_in_order_and_summed_per_phase(tmp_path, clock):
    progress = Progress("S4", tmp_path, mode="quiet")
    for variant in ("kill", "pause"):
        progress.enter("warm-up", variant)
        clock.sleep(0.05)
        progress.enter("fault")
        clock.sleep(0.1)
    progress.close()
    records = progress.records()
    assert [(r["variant"], r["phase"], r["started_s"], r["duration_s"]) for r in records] == [
        ("kill", "warm-up", 0.0, 0.05), ("kill", "fault", 0.05, 0.1),
        ("pause", "warm-up", 0.15, 0.05), ("pause", "fault", 0.2, 0.1)]
    table = phase_table(records).set_index("phase")
    assert table.loc["fault", "times"] == 2
    assert table.loc["fault", "seconds"] == 0.2


def test_a_phase_left_at_once_leaves_no_row(clock):
    progress = Progress("S3", mode="quiet")
    progress.enter("probes", "overlap")
    clock.sleep(MIN_PHASE_S / 2)
    progress.enter("set-up", "overlap")
    clock.sleep(0.5)
    progress.close()
    assert [r["phase"] for r in progress.records()] == ["set-up"]


def test_headless_notebooks_write_their_state_for_the_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("K6SUITE_HEADLESS", "1")
    assert display_mode() == "file"
    progress = Progress("S4", tmp_path)
    progress.enter("fault", "kill", expected_s=15)
    progress.update(acked=120, read=118, fault="broker-kill")
    state = read_state(tmp_path)
    assert state["phase"] == "fault" and state["variant"] == "kill" and state["expected_s"] == 15
    assert json.loads((tmp_path / PROGRESS_FILE).read_text())["scenario"] == "S4"
    assert read_state(tmp_path / "nowhere") is None


def test_ci_gets_one_line_per_phase_and_nothing_else(capsys, monkeypatch):
    monkeypatch.delenv("K6SUITE_HEADLESS", raising=False)
    monkeypatch.setenv("CI", "true")
    assert display_mode() == "lines"
    progress = Progress("S5")
    progress.enter("warm-up", "storage-faults", expected_s=8)
    for acked in range(50):
        progress.update(acked=acked)
    progress.enter("drain")
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["[S5] storage-faults warm-up (about 8 s)", "[S5] storage-faults drain"]


def test_scenario_times_put_phases_in_order_with_the_wall_time():
    scenarios = [
        {"scenario": "S3", "duration_s": 10, "wall_s": 14.0, "phases": [
            {"variant": "a", "phase": "read-back", "duration_s": 2.0},
            {"variant": "a", "phase": "set-up", "duration_s": 1.0},
            {"variant": "b", "phase": "read-back", "duration_s": 3.0},
            {"variant": "", "phase": "notebook overhead", "duration_s": 4.0}]},
        {"scenario": "S1", "duration_s": 5.0, "phases": [{"variant": "x", "phase": "probes", "duration_s": 5.0}]},
    ]
    times = scenario_times(scenarios)
    assert list(times.columns) == ["probes", "set-up", "read-back", "notebook overhead", "total"]
    assert times.loc["S3", "read-back"] == 5.0 and times.loc["S3", "total"] == 14.0
    assert times.loc["S1", "total"] == 5.0 and times.loc["S1", "read-back"] == 0.0
    assert phase_table([]).empty


def test_re_reading_old_records_is_activity_not_progress():
    """A consumer that a target keeps resetting to offset 0 reads all the time; a drain that waited
    for quiet waited out its whole grace period (30 s per S4 kind on KafScale)."""
    tracker = Tracker()
    tracker.saw([("p", 0), ("p", 1)], {0: 1})
    first = tracker.last_progress_ns
    time.sleep(0.01)
    tracker.saw([("p", 0)], {0: 0})
    assert tracker.last_read_ns > first and tracker.last_progress_ns == first
    tracker.saw([("p", 2)], {0: 2})
    assert tracker.last_progress_ns > first
    assert tracker.reached({0: 3}) and not tracker.reached({0: 4, 1: 1}) and tracker.reached({0: 3, 1: 0})
