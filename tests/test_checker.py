"""The checker must find every planted anomaly, exactly, and nothing in clean histories."""

from __future__ import annotations

import json
import os
import random

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from k6suite_lib import checker
from k6suite_lib.checker import ANOMALIES, CheckerConfig, check, find_anomalies
from tests import histories as h

specs = st.builds(h.Spec, producers=st.integers(1, 4), partitions=st.integers(1, 3),
                  records=st.integers(12, 60), consumers=st.integers(1, 3))
# Deterministic by default so CI cannot flake; K6SUITE_EXAMPLES=500 runs a larger, random search.
_EXAMPLES = os.environ.get("K6SUITE_EXAMPLES")
PROPERTY = settings(max_examples=int(_EXAMPLES or 40), derandomize=_EXAMPLES is None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _counts(rows) -> dict[str, int]:
    anomalies, _ = find_anomalies(h.frame(rows))
    return {name: checker.anomaly_count(name, frame) for name, frame in anomalies.items()}


@PROPERTY
@given(spec=specs, seed=st.integers(0, 2**16))
def test_clean_histories_have_no_anomalies(spec, seed):
    result = check(h.frame(h.clean_rows(spec, random.Random(seed))), CheckerConfig(max_unacked=0))
    assert result.counts == dict.fromkeys(ANOMALIES, 0)
    assert result.passed
    assert set(result.verdicts["status"]) == {"PASS"}


# class -> (planter, how the planted things are identified in the offending rows, side effects allowed)
PLANTERS = {
    "lost-write": (h.plant_lost_write, lambda f: set(f["ident"]), {"poll-skip", "readback-missing"}),
    "unseen": (h.plant_unseen, lambda f: set(f["ident"]), {"readback-missing"}),
    "duplicate": (h.plant_duplicate, lambda f: set(f["ident"]), set()),
    "inconsistent-offsets": (h.plant_inconsistent, lambda f: set(zip(f["partition"], f["offset"], strict=True)),
                             set()),
    "aborted-read": (h.plant_aborted_read, lambda f: set(f["ident"]), set()),
    # a skip is reported at the read that lands after the gap; the gap starts after previous_offset
    "poll-skip": (h.plant_poll_skip,
                  lambda f: set(zip(f["process"], f["partition"], f["previous_offset"] + 1, strict=True)), set()),
    "nonmonotonic-poll": (h.plant_nonmonotonic_poll, lambda f: set(zip(f["process"], f["partition"], strict=True)),
                          set()),
    "nonmonotonic-send": (h.plant_nonmonotonic_send,
                          lambda f: set(zip(f["producer"], f["partition"], f["offset"], strict=True)), set()),
    "corrupted": (h.plant_corrupted, lambda f: set(zip(f["process"], f["partition"], f["offset"], strict=True)),
                  set()),
    "readback-missing": (h.plant_readback_missing, lambda f: set(f["ident"]), set()),
}


def test_every_anomaly_class_has_a_planting_test():
    assert set(PLANTERS) == set(ANOMALIES)


def _max_k(name: str, spec: h.Spec) -> int:
    if name in ("unseen", "readback-missing"):
        return spec.partitions
    if name == "nonmonotonic-poll":
        return spec.partitions if spec.consumers >= 1 else 0
    return 3


@pytest.mark.parametrize("name", ANOMALIES)
@PROPERTY
@given(spec=specs, seed=st.integers(0, 2**16), data=st.data())
def test_planted_anomalies_are_found_exactly(name, spec, seed, data):
    rng = random.Random(seed)
    clean = h.clean_rows(spec, rng)
    k = data.draw(st.integers(1, _max_k(name, spec)), label="k")
    planter, identify, side_effects = PLANTERS[name]
    rows, planted = planter(clean, k, rng)
    assume(planted)  # a tiny history may offer nothing to plant
    k = len(planted)
    anomalies, _ = find_anomalies(h.frame(rows))
    found = anomalies[name]
    assert checker.anomaly_count(name, found) == k
    assert identify(found) == planted
    for other in set(ANOMALIES) - {name} - side_effects:
        assert checker.anomaly_count(other, anomalies[other]) == 0, other
    verdict = check(h.frame(rows)).verdicts.set_index("check").loc[name]
    assert verdict["status"] == "FAIL" and verdict["measured"] == str(k)
    assert verdict["evidence"]


def test_allowed_classes_are_reported_not_failed():
    rows, _ = h.plant_duplicate(h.clean_rows(h.Spec(2, 2, 20, 1), random.Random(1)), 2, random.Random(2))
    result = check(h.frame(rows), CheckerConfig(allowed=frozenset({"duplicate"})))
    row = result.verdicts.set_index("check").loc["duplicate"]
    assert row["status"] == "ALLOWED" and row["measured"] == "2"
    assert result.passed


def test_unknown_allowed_class_is_rejected():
    with pytest.raises(ValueError, match="unknown anomaly classes: lost"):
        CheckerConfig(allowed=frozenset({"lost"}))


def test_indeterminate_sends_are_never_lost():
    """A send that timed out and was never read is neither lost nor unseen: it may not exist."""
    rows = h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(3))
    last = max((r for r in rows if r["f"] == "send"), key=lambda r: r["offset"])
    rows = [r for r in rows if not (r["f"] == "poll" and r["seq"] == last["seq"])]
    last.update(type="info", offset=-1, partition=-1, error="KafkaTimeoutError")
    result = check(h.frame(rows), CheckerConfig(max_unacked=1))
    assert result.counts["lost-write"] == 0 and result.counts["unseen"] == 0
    assert result.stats["indeterminate"] == 1
    assert result.passed


def test_indeterminate_send_later_read_is_fine():
    rows = h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(4))
    send = next(r for r in rows if r["f"] == "send" and r["offset"] == 3)
    send.update(type="info", offset=-1, error="KafkaTimeoutError")
    assert sum(_counts(rows).values()) == 0


def test_too_few_acked_sends_fail_the_run():
    rows = [{"run_id": "r", "op_id": 0, "process": "producer-0", "f": "connect", "type": "fail", "invoke_ns": 1,
             "complete_ns": 2, "wall_ns": 1, "error": "NoBrokersAvailable"}]
    result = check(h.frame(rows))
    row = result.verdicts.set_index("check").loc["acknowledged sends"]
    assert row["status"] == "FAIL" and not result.passed
    assert "NoBrokersAvailable" in row["evidence"]


def test_unacknowledged_sends_fail_only_when_limited():
    rows = h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(5))
    send = next(r for r in rows if r["f"] == "send" and r["offset"] == 3)
    send.update(type="info", offset=-1, error="KafkaTimeoutError: expired")
    assert check(h.frame(rows)).passed
    strict = check(h.frame(rows), CheckerConfig(max_unacked=0))
    row = strict.verdicts.set_index("check").loc["unacknowledged sends"]
    assert row["status"] == "FAIL" and "KafkaTimeoutError" in row["evidence"]


def test_missing_readback_is_not_tested_rather_than_passed():
    rows = [r for r in h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(6)) if r["process"] != "readback"]
    result = check(h.frame(rows))
    row = result.verdicts.set_index("check").loc["readback-missing"]
    assert row["status"] == "NOT TESTED" and row["passed"] is None
    assert result.passed


def test_default_allowed_follows_configuration():
    assert checker.default_allowed(idempotent=False, faults=True, max_in_flight=1) == {"duplicate"}
    assert checker.default_allowed(idempotent=False, faults=False, max_in_flight=1) == frozenset()
    assert checker.default_allowed(idempotent=True, faults=True, max_in_flight=5) == frozenset()
    assert "nonmonotonic-send" in checker.default_allowed(idempotent=False, faults=False, max_in_flight=5)


def test_latency_summary_percentiles():
    rows = h.clean_rows(h.Spec(1, 1, 100, 1), random.Random(7))
    for i, send in enumerate(r for r in rows if r["f"] == "send"):
        send["intended_ns"] = send["invoke_ns"]
        send["invoke_ns"] += 2_000_000  # every send started 2 ms late
        send["complete_ns"] = send["invoke_ns"] + (i + 1) * 1_000_000  # 1..100 ms
    table = checker.latency_summary(h.frame(rows))
    assert table.loc["publish_ms", "count"] == 100
    assert table.loc["publish_ms", "p50"] == pytest.approx(50.5)
    assert table.loc["publish_ms", "max"] == pytest.approx(100)
    assert table.loc["publish_delay_ms", "p99"] == pytest.approx(2.0)
    assert table.loc["end_to_end_ms", "count"] == 100


def test_throughput_and_unseen_over_time():
    rows = h.clean_rows(h.Spec(2, 2, 40, 1), random.Random(8))
    history = h.frame(rows)
    rates = checker.throughput(history, bin_s=1e-6)
    assert rates["acked"].sum() * 1e-6 == pytest.approx(40)
    readback_only = history[history["process"] != "consumer-0"]
    curve = checker.unseen_over_time(readback_only)
    assert curve["unseen"].iloc[0] == 40 and curve["unseen"].iloc[-1] == 0
    assert curve["unseen"].is_monotonic_decreasing


def test_verdict_frame_shows_not_tested_as_neither():
    frame = checker.verdict_frame([{"check": "a", "passed": True}, {"check": "b", "passed": False},
                                   {"check": "c", "passed": None, "status": "NOT TESTED"}])
    assert list(frame["status"]) == ["PASS", "FAIL", "NOT TESTED"]
    assert list(frame["passed"]) == [True, False, None]


def test_empty_history_checks_without_error():
    result = check(pd.DataFrame(columns=list(h.to_frame([]).columns)))
    assert not result.passed
    assert result.counts == dict.fromkeys(ANOMALIES, 0)


def test_final_assignments_stop_at_the_consumers_stop_marker():
    def event(process, f, partitions, t):
        return {"run_id": "r", "op_id": t, "process": process, "f": f, "type": "ok", "invoke_ns": t,
                "complete_ns": t, "wall_ns": t, "detail": json.dumps({"partitions": partitions})}

    rows = [event("consumer-0", "assign", [0, 1], 1), event("consumer-1", "assign", [], 2),
            event("consumer-0", "revoke", [0, 1], 3), event("consumer-0", "assign", [0], 4),
            event("consumer-1", "assign", [1], 5),
            {**event("workload", "phase", [], 6), "detail": json.dumps({"phase": "consumers-stop"})},
            event("consumer-1", "revoke", [1], 7), event("consumer-0", "revoke", [0], 8)]
    assert checker.final_assignments(h.frame(rows)) == {"consumer-0": [0], "consumer-1": [1]}
    without_marker = [r for r in rows if r["f"] != "phase"]
    assert checker.final_assignments(h.frame(without_marker)) == {"consumer-0": [], "consumer-1": []}
