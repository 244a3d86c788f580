"""The checker must find every planted anomaly, exactly, and nothing in clean histories."""

from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from k6suite_lib import checkers
from k6suite_lib.checkers import ANOMALIES, AnomalyRules, CheckSpec, anomaly_count, compose, find_anomalies, measures
from k6suite_lib.history import View
from tests import histories as h

specs = st.builds(h.Spec, producers=st.integers(1, 4), partitions=st.integers(1, 3),
                  records=st.integers(12, 60), consumers=st.integers(1, 3))
# Deterministic by default so CI cannot flake; K6SUITE_EXAMPLES=500 runs a larger, random search.
_EXAMPLES = os.environ.get("K6SUITE_EXAMPLES")
PROPERTY = settings(max_examples=int(_EXAMPLES or 40), derandomize=_EXAMPLES is None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def view(rows) -> View:
    """The history as a workload under acks=all saves it (its metadata says the acks: ack-without-offset)."""
    return View(h.frame(rows), {"config": {"acks": "all"}})


def check(rows, rules: AnomalyRules | None = None):
    """The anomalies checker and the read-back checker composed, as every scenario composes them."""
    rules = rules or AnomalyRules()
    return compose(view(rows), [CheckSpec("anomalies", rules.params()), CheckSpec("readback")]).set_index("check")


def _counts(rows) -> dict[str, int]:
    anomalies, _ = find_anomalies(view(rows))
    return {name: anomaly_count(name, frame) for name, frame in anomalies.items()}


@PROPERTY
@given(spec=specs, seed=st.integers(0, 2**16))
def test_clean_histories_have_no_anomalies(spec, seed):
    rows = h.clean_rows(spec, random.Random(seed))
    assert _counts(rows) == dict.fromkeys(ANOMALIES, 0)
    verdicts = check(rows, AnomalyRules(max_unacked=0))
    assert set(verdicts["status"]) == {"PASS"}, verdicts[verdicts["status"] != "PASS"]


# class -> (planter, how the planted things are identified in the offending rows, side effects allowed)
PLANTERS = {
    # a record the read-back did not return is also missing from its acknowledged position
    "lost-write": (h.plant_lost_write, lambda f: set(f["ident"]), {"poll-skip", "readback-missing",
                                                                     "position-mismatch"}),
    "unseen": (h.plant_unseen, lambda f: set(f["ident"]), {"readback-missing", "position-mismatch"}),
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
    "readback-missing": (h.plant_readback_missing, lambda f: set(f["ident"]), {"position-mismatch"}),
    # the copy at a fresh offset is a duplicate, and every reader jumps over the emptied slot
    "position-mismatch": (h.plant_position_mismatch, lambda f: set(zip(f["partition"], f["offset"], strict=True)),
                          {"duplicate", "poll-skip"}),
    "foreign-record": (h.plant_foreign_record, lambda f: set(zip(f["partition"], f["offset"], strict=True)), set()),
    "ack-without-offset": (h.plant_ack_without_offset, lambda f: set(f["ident"]), set()),
}


def test_every_anomaly_class_has_a_planting_test():
    assert set(PLANTERS) == set(ANOMALIES)


def _max_k(name: str, spec: h.Spec) -> int:
    if name in ("unseen", "readback-missing", "position-mismatch"):
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
    anomalies, _ = find_anomalies(view(rows))
    found = anomalies[name]
    assert anomaly_count(name, found) == k
    assert identify(found) == planted
    for other in set(ANOMALIES) - {name} - side_effects:
        assert anomaly_count(other, anomalies[other]) == 0, other
    verdict = check(rows).loc[name]
    assert verdict["status"] == "FAIL" and verdict["measured"] == str(k)
    assert verdict["evidence"]


def test_allowed_classes_are_reported_not_failed():
    rows, _ = h.plant_duplicate(h.clean_rows(h.Spec(2, 2, 20, 1), random.Random(1)), 2, random.Random(2))
    row = check(rows, AnomalyRules(allowed=frozenset({"duplicate"}))).loc["duplicate"]
    assert row["status"] == "ALLOWED" and row["measured"] == "2" and row["passed"]


def test_allowed_is_shown_only_when_the_anomaly_occurred():
    """Before: ALLOWED was shown for a class with count 0, as if something had happened."""
    rows = h.clean_rows(h.Spec(2, 2, 20, 1), random.Random(1))
    row = check(rows, AnomalyRules(allowed=frozenset({"duplicate"}))).loc["duplicate"]
    assert row["status"] == "PASS" and row["measured"] == "0"


def test_an_allowed_duplicate_cannot_hide_a_lost_acknowledged_position():
    """The audit's case: duplicates allowed (a non-idempotent producer under faults), a record acked at
    one offset is gone from there while a retry copy sits elsewhere. Identity checks all pass; the
    position check must not."""
    clean = h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(9))
    rows, _ = h.plant_position_mismatch(clean, 1, random.Random(9))
    verdicts = check(rows, AnomalyRules(allowed=frozenset({"duplicate"})))
    for identity_check in ("lost-write", "unseen", "readback-missing"):
        assert verdicts.loc[identity_check, "status"] == "PASS"
    assert verdicts.loc["duplicate", "status"] == "ALLOWED"
    mismatch = verdicts.loc["position-mismatch"]
    assert mismatch["status"] == "FAIL" and "absent" in mismatch["evidence"]


def test_a_position_holding_another_record_is_a_mismatch():
    rows = h.clean_rows(h.Spec(2, 1, 10, 0), random.Random(10))
    back = [r for r in rows if r["process"] == "readback" and r["f"] == "poll"]
    back[3]["seq"], back[3]["producer"] = back[4]["seq"], back[4]["producer"]  # slot 3 now holds record of slot 4
    found, _ = find_anomalies(view(rows))
    assert set(found["position-mismatch"]["offset"]) == {3}
    assert "producer" in found["position-mismatch"]["found"].iloc[0]


@pytest.mark.parametrize("name", sorted(checkers.NEVER_ALLOWED))
def test_classes_of_lost_or_wrong_data_can_never_be_allowed(name):
    with pytest.raises(ValueError, match="can never be allowed"):
        AnomalyRules(allowed=frozenset({name}))


def test_unknown_allowed_class_is_rejected():
    with pytest.raises(ValueError, match="unknown anomaly classes: lost"):
        AnomalyRules(allowed=frozenset({"lost"}))


def test_a_record_of_another_run_is_never_a_match():
    """Before: the payload's run id was parsed and thrown away, so an old run's record with the same
    identity counted as this run's send being read."""
    rows = h.clean_rows(h.Spec(1, 1, 5, 0), random.Random(11))
    for row in rows:
        if row["f"] == "poll" and row["offset"] == 2:
            row["record_run"] = "an-earlier-run"
    verdicts = check(rows)
    assert verdicts.loc["foreign-record", "status"] == "FAIL"
    assert verdicts.loc["readback-missing", "status"] == "FAIL"  # the real record at offset 2 was never read
    assert verdicts.loc["position-mismatch", "status"] == "FAIL"


def test_indeterminate_sends_are_never_lost():
    """A send that timed out and was never read is neither lost nor unseen: it may not exist."""
    rows = h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(3))
    last = max((r for r in rows if r["f"] == "send"), key=lambda r: r["offset"])
    rows = [r for r in rows if not (r["f"] == "poll" and r["seq"] == last["seq"])]
    last.update(type="info", offset=-1, partition=-1, error="KafkaTimeoutError")
    counts = _counts(rows)
    assert counts["lost-write"] == 0 and counts["unseen"] == 0 and counts["position-mismatch"] == 0
    verdicts = check(rows, AnomalyRules(max_unacked=1))
    assert not (verdicts["status"] == "FAIL").any(), verdicts


def test_indeterminate_send_later_read_is_fine():
    rows = h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(4))
    send = next(r for r in rows if r["f"] == "send" and r["offset"] == 3)
    send.update(type="info", offset=-1, error="KafkaTimeoutError")
    assert sum(_counts(rows).values()) == 0


def test_too_few_acked_sends_fail_the_run():
    rows = [{"run_id": "r", "op_id": 0, "process": "producer-0", "f": "connect", "type": "fail", "invoke_ns": 1,
             "complete_ns": 2, "wall_ns": 1, "error": "NoBrokersAvailable"}]
    row = check(rows).loc["acknowledged sends"]
    assert row["status"] == "FAIL" and "NoBrokersAvailable" in row["evidence"]


def test_an_empty_history_is_not_tested_rather_than_passed():
    """A build that acknowledged nothing: anomaly counts of 0 are NOT TESTED, not PASS."""
    rows = [{"run_id": "r", "op_id": i, "process": "producer-0", "f": "send", "type": "info", "invoke_ns": 2 * i + 1,
             "complete_ns": 2 * i + 2, "wall_ns": 1, "topic": "t", "partition": -1, "offset": -1,
             "producer": "producer-0", "seq": i, "error": "KafkaTimeoutError"} for i in range(5)]
    verdicts = check(rows)
    for name in ANOMALIES:
        assert verdicts.loc[name, "status"] == "NOT TESTED", name
    assert verdicts.loc["acknowledged sends", "status"] == "FAIL"


def test_unacknowledged_sends_fail_only_when_limited():
    rows = h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(5))
    send = next(r for r in rows if r["f"] == "send" and r["offset"] == 3)
    send.update(type="info", offset=-1, error="KafkaTimeoutError: expired")
    assert not (check(rows)["status"] == "FAIL").any()
    row = check(rows, AnomalyRules(max_unacked=0)).loc["unacknowledged sends"]
    assert row["status"] == "FAIL" and "KafkaTimeoutError" in row["evidence"]


def test_missing_readback_is_not_tested_rather_than_passed():
    rows = [r for r in h.clean_rows(h.Spec(1, 1, 10, 1), random.Random(6)) if r["process"] != "readback"]
    verdicts = check(rows)
    for name in ("readback-missing", "position-mismatch", "read-back reached the end offsets"):
        assert verdicts.loc[name, "status"] == "NOT TESTED" and verdicts.loc[name, "passed"] is None


def test_reordering_needs_retry_follows_configuration():
    assert not checkers.reordering_needs_retry(idempotent=False, max_in_flight=1)
    assert not checkers.reordering_needs_retry(idempotent=True, max_in_flight=5)
    assert checkers.reordering_needs_retry(idempotent=False, max_in_flight=5)


def test_latency_summary_percentiles():
    rows = h.clean_rows(h.Spec(1, 1, 100, 1), random.Random(7))
    for i, send in enumerate(r for r in rows if r["f"] == "send"):
        send["intended_ns"] = send["invoke_ns"]
        send["invoke_ns"] += 2_000_000  # every send started 2 ms late
        send["complete_ns"] = send["invoke_ns"] + (i + 1) * 1_000_000  # 1..100 ms
    table = measures.latency_summary(view(rows))
    assert table.loc["publish_ms", "count"] == 100
    assert table.loc["publish_ms", "p50"] == pytest.approx(50.5)
    assert table.loc["publish_ms", "max"] == pytest.approx(100)
    assert table.loc["publish_delay_ms", "p99"] == pytest.approx(2.0)
    assert table.loc["end_to_end_ms", "count"] == 100


def test_throughput_and_unseen_over_time():
    rows = h.clean_rows(h.Spec(2, 2, 40, 1), random.Random(8))
    rates = measures.throughput(view(rows), bin_s=1e-6)
    assert rates["acked"].sum() * 1e-6 == pytest.approx(40)
    readback_only = [r for r in rows if r["process"] != "consumer-0"]
    curve = measures.unseen_over_time(view(readback_only))
    assert curve["unseen"].iloc[0] == 40 and curve["unseen"].iloc[-1] == 0
    assert curve["unseen"].is_monotonic_decreasing


def test_empty_history_checks_without_error():
    verdicts = check([])
    assert verdicts.loc["acknowledged sends", "status"] == "FAIL"
    assert _counts([]) == dict.fromkeys(ANOMALIES, 0)


def test_final_assignments_stop_at_the_consumers_stop_marker():
    def event(process, f, partitions, t):
        return {"run_id": "r", "op_id": t, "process": process, "f": f, "type": "ok", "invoke_ns": t,
                "complete_ns": t, "wall_ns": t, "detail": json.dumps({"partitions": partitions, "group": True})}

    rows = [event("consumer-0", "assign", [0, 1], 1), event("consumer-1", "assign", [], 2),
            event("consumer-0", "revoke", [0, 1], 3), event("consumer-0", "assign", [0], 4),
            event("consumer-1", "assign", [1], 5),
            {**event("workload", "phase", [], 6), "detail": json.dumps({"phase": "consumers-stop"})},
            event("consumer-1", "revoke", [1], 7), event("consumer-0", "revoke", [0], 8)]
    assert measures.final_assignments(view(rows)) == {"consumer-0": [0], "consumer-1": [1]}
    without_marker = [r for r in rows if r["f"] != "phase"]
    assert measures.final_assignments(view(without_marker)) == {"consumer-0": [], "consumer-1": []}
