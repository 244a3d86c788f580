"""Every checker beyond the core anomalies: a history that must pass and one that must fail, and the
cases an audit found passing while the system misbehaved (each named in its test's docstring)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from k6suite_lib.checkers import CHECKERS, AnomalyRules, CheckSpec, compose, specs_from_meta
from k6suite_lib.checkers.registry import Checker
from k6suite_lib.checkers.verdicts import AtMost, Below, Equals, verdict, verdict_frame
from k6suite_lib.history import View, probe_row
from tests import histories as h
from tests.histories import Timeline

EXERCISED: set[str] = set()  # the registered checkers this module's tests ran, through compose()


@pytest.fixture(scope="module", autouse=True)
def record_exercised_checkers() -> Iterator[None]:
    """Wrap every registered checker, for this module's tests only, to note that it ran: the last test
    compares the registry with what ran, so a checker added without a test here fails it."""
    originals = dict(CHECKERS)

    def noting(name: str, checker: Checker) -> Checker:
        def noted(view, **params):
            EXERCISED.add(name)
            return checker(view, **params)
        return noted

    CHECKERS.update({name: noting(name, checker) for name, checker in originals.items()})
    try:
        yield
    finally:
        CHECKERS.update(originals)


def run(history: pd.DataFrame | Timeline, name: str, **params) -> pd.Series:
    """The one verdict row a single-row checker returns."""
    frame = history.frame() if isinstance(history, Timeline) else history
    table = compose(View(frame), [CheckSpec(name, params)])
    assert len(table) == 1, table
    return table.iloc[0]


def steady(fault: tuple[float, float] | None = (10, 20), rate: float = 10, until: float = 30,
           partitions: int = 2) -> Timeline:
    """Sends at `rate` for `until` s, all acknowledged, one broker fault in between, everything read."""
    t = Timeline()
    t.sends(0, until, rate, partitions)
    if fault:
        t.fault(*fault)
    t.read_everything(until + 1)
    return t


# ----------------------------------------------------------------------------- verdicts and composition
def test_threshold_objects_render_the_text_that_decides():
    row = verdict("recovery", "NFR1", 3.2, Below(5, " s"), unit=" s")
    assert (row["measured"], row["threshold"], row["status"]) == ("3.2 s", "< 5 s", "PASS")
    assert verdict("recovery", "NFR1", 5.0, Below(5, " s"))["status"] == "FAIL"
    assert verdict("errors", "NFR1", 1, Equals(0))["threshold"] == "== 0"
    assert verdict("errors", "NFR1", 3, AtMost(2))["status"] == "FAIL"


def test_a_missing_measurement_is_not_tested_never_a_pass():
    row = verdict("reconnections", "F5.1", None, Equals(0), "no client-metrics sample")
    assert row["status"] == "NOT TESTED" and row["passed"] is None and "no client-metrics" in row["evidence"]


def test_checks_of_promises_never_made_are_not_promised_with_their_measurement():
    rows = [verdict("Metadata lists only the endpoint", "F1.2", "a, b, c", Equals("a"), "three brokers"),
            verdict("lost-write", "F3 / NFR1", 0, Equals(0)),
            verdict("corrupted", "F6 / NFR1", 0, Equals(0))]
    table = verdict_frame(rows, {"F1.2": "clients connect to every broker", "F6": "no object store"})
    assert list(table["status"]) == ["NOT PROMISED", "PASS", "PASS"]  # NFR1 is still promised
    assert table["passed"].iloc[0] is None
    assert "clients connect to every broker" in table["evidence"].iloc[0] and table["measured"].iloc[0] == "a, b, c"


def test_unknown_checker_is_refused_and_compositions_round_trip_json():
    with pytest.raises(ValueError, match="unknown checker 'nope'"):
        compose(View(h.frame([])), [CheckSpec("nope")])
    specs = [CheckSpec("anomalies", {"allowed": ["duplicate"], "min_acked": 3}), CheckSpec("readback")]
    assert specs_from_meta(json.loads(json.dumps({"checks": [s.to_json() for s in specs]}))) == specs
    assert specs_from_meta({"checker": {"min_acked": 2}}) == [CheckSpec("anomalies", {"min_acked": 2})]


# ----------------------------------------------------------------------------- read-back to the end
def _readback_rows(ends: dict[int, int], positions: dict[int, int], timed_out: bool = False) -> list[dict]:
    rows = h.clean_rows(h.Spec(1, len(ends), 12, 0), random.Random(1))
    for row in rows:
        if row["f"] == "end-offsets":
            row["detail"] = json.dumps({"end_offsets": ends})
        if row["f"] == "phase":
            row["detail"] = json.dumps({"phase": "readback-end", "positions": positions, "timed_out": timed_out,
                                        "elapsed_s": 60})
    return rows


def test_readback_to_the_end_passes_when_it_reached_every_end_offset():
    rows = h.clean_rows(h.Spec(2, 3, 30, 1), random.Random(2))
    table = compose(View(h.frame(rows)), [CheckSpec("readback")])
    assert list(table["status"]) == ["PASS", "PASS", "PASS"]


def test_a_readback_that_stopped_short_of_the_end_fails_and_says_it_timed_out():
    """Before: the read-back stopped once every acknowledged record was seen, so records after the last
    acknowledgement (timeouts that landed, retry copies, corrupt bytes) were never read."""
    rows = _readback_rows({"0": 12}, {"0": 9}, timed_out=True)
    table = compose(View(h.frame(rows)), [CheckSpec("readback")]).set_index("check")
    reached = table.loc["read-back reached the end offsets"]
    assert reached["status"] == "FAIL" and "timed out" in reached["evidence"] and "p0 at 9 of 12" in reached["evidence"]


def test_an_end_offset_below_an_acknowledged_offset_fails():
    rows = _readback_rows({"0": 5}, {"0": 5})
    past = compose(View(h.frame(rows)), [CheckSpec("readback")]).set_index("check").loc[
        "end offset >= highest acknowledged offset + 1"]
    assert past["status"] == "FAIL" and "end 5 but offset 11 was acknowledged" in past["evidence"]


def test_readback_without_end_offsets_still_must_pass_every_acknowledged_offset():
    """The audit's case: the end-offset query failed, the read-back stopped early, an acknowledged record
    at the end of the log was gone and a retry copy of it sat at a lower offset. Identity checks pass,
    positions beyond the read-back's reach are not positional evidence: the read-back's reach is."""
    rows = [r for r in h.clean_rows(h.Spec(1, 1, 5, 0), random.Random(3)) if r["f"] != "end-offsets"]
    table = compose(View(h.frame(rows)), [CheckSpec("readback")]).set_index("check")
    assert table.loc["read-back reached the end offsets", "status"] == "NOT TESTED"
    assert table.loc["read-back passed every acknowledged offset", "status"] == "PASS"
    last = max(r["offset"] for r in rows if r["f"] == "send")
    cut = [r for r in rows if not (r["f"] == "poll" and r["offset"] == last)
           and r["f"] != "phase"]  # the read-back stopped before the last acknowledged offset
    row = compose(View(h.frame(cut)), [CheckSpec("readback")]).set_index("check").loc[
        "read-back passed every acknowledged offset"]
    assert row["status"] == "FAIL" and f"offset {last} was acknowledged" in row["evidence"]


# ----------------------------------------------------------------------------- availability under faults
def test_faults_applied_counts_steps_that_did_not_take_effect():
    assert run(steady(), "faults-applied", rows=2)["status"] == "PASS"
    failed = Timeline()
    failed.sends(0, 5, 10)
    failed.fault(1, 2, applied=False)
    row = run(failed, "faults-applied", rows=2)
    assert row["status"] == "FAIL" and "nothing to kill" in row["evidence"]
    assert run(steady(), "faults-applied", rows=4)["status"] == "FAIL"  # a fault that never ran


def _store_faults(latency: dict | None, outage: dict | None) -> Timeline:
    """S5's storage faults (a latency toxic, then an outage) under steady writes, with what went through the
    proxy as each recorded it (None: nothing measured, as histories before faults measured it)."""
    t = Timeline()
    t.sends(0, 30, 10)
    t.fault(5, 10, "storage-latency", role="storage", evidence=latency)
    t.fault(15, 20, "storage-outage", role="storage", evidence=outage)
    t.read_everything(31)
    return t


def test_store_path_faults_take_effect_only_on_traffic_measured_through_their_proxy():
    """A Toxiproxy fault records no `served`, so "every fault took effect" PASSed on its start and end rows
    even when nothing went through the proxy (S5 on KafScale with kafka-python's default producer: nothing
    acknowledged, nothing written to the store). It is judged on the bytes through the toxic while in place,
    and on whether the connections an outage cut had just carried data; without a measurement it is NOT
    TESTED, never a PASS."""
    through = {"bytes": 48_213, "connections": 3}
    cut = {"connections": 3, "recent": 2, "recent_ms": 10_000, "last_data_ms": 41}
    row = run(_store_faults(through, cut), "faults-applied", rows=4)
    assert row["status"] == "PASS", row["evidence"]
    assert "48213 bytes received by the proxy" in row["evidence"] and "2 of them had received data" in row["evidence"]
    assert "acknowledged sends of the workload were in flight during it" in row["evidence"]
    for latency, outage, why in (
            ({"bytes": 0, "connections": 2}, cut, "storage-latency on broker-1: 0 bytes received by the proxy"),
            (through, {**cut, "recent": 0, "last_data_ms": 60_000},
             "0 of them had received data (from any of its clients) in the 10000 ms before"),
            (None, cut, "storage-latency on broker-1: no traffic through the proxy was measured"),
            (through, None, "storage-outage on broker-1: no traffic through the proxy was measured"),
            ({"error": "OSError: refused"}, cut, "measuring the traffic through the proxy failed (OSError")):
        row = run(_store_faults(latency, outage), "faults-applied", rows=4)
        assert row["status"] == "NOT TESTED" and why in row["evidence"], row["evidence"]
    unapplied = _store_faults(through, cut)
    assert run(unapplied, "faults-applied", rows=6)["status"] == "FAIL"  # a fault that never ran still FAILs


def test_store_path_faults_take_effect_only_while_the_workload_had_acknowledged_sends_in_flight():
    """audit21 L1: the proxy's bytes cannot be told apart by sender, so an etcd keepalive or a health probe made
    every path fault 'take effect'. The audit20 S5 case (nothing acknowledged, every send timed out) with one
    byte through the toxic and a connection used 9.9 s before the outage is NOT TESTED, and so is a fault
    during which the workload wrote nothing (acks before and after it only); steady acknowledged writes PASS."""
    latency, outage = {"bytes": 1, "connections": 1}, {"connections": 1, "recent": 1, "recent_ms": 10_000,
                                                       "last_data_ms": 9_900}
    timed_out = Timeline()
    timed_out.sends(0, 30, 10, outcome="info")
    timed_out.fault(5, 10, "storage-latency", role="storage", evidence=latency)
    timed_out.fault(15, 20, "storage-outage", role="storage", evidence=outage)
    row = run(timed_out, "faults-applied", rows=4)
    assert row["status"] == "NOT TESTED", row["evidence"]
    assert "storage-latency on broker-1: 1 bytes received by the proxy" in row["evidence"]
    assert "0 acknowledged sends of the workload were in flight during it" in row["evidence"]
    idle = Timeline()
    idle.sends(0, 4, 10)
    idle.sends(21, 30, 10)
    idle.fault(5, 10, "metadata-latency", role="metadata", evidence=latency)
    idle.fault(15, 20, "metadata-outage", role="metadata", evidence=outage)
    idle.read_everything(31)
    row = run(idle, "faults-applied", rows=4)
    assert row["status"] == "NOT TESTED" and "metadata-outage on broker-1" in row["evidence"], row["evidence"]
    steady_faults = _store_faults(latency, outage)
    assert run(steady_faults, "faults-applied", rows=4)["status"] == "PASS"


def test_recovery_is_the_longest_gap_between_acks_from_the_fault_start():
    """Before: the text said "fault to first acknowledgement" while it measured the longest gap."""
    quick = Timeline()
    quick.sends(0, 10, 10, partitions=2)
    quick.sends(12, 30, 10, partitions=2)  # 2 s without acks after the fault at 10 s
    quick.fault(10, 20)
    row = run(quick, "recovery", limit_s=5.0)
    assert row["status"] == "PASS" and row["check"].startswith("longest gap between acknowledgements")
    slow = Timeline()
    slow.sends(0, 10, 10, partitions=2)
    slow.sends(17, 30, 10, partitions=2)
    slow.fault(10, 20)
    assert run(slow, "recovery", limit_s=5.0)["status"] == "FAIL"
    never = Timeline()
    never.sends(0, 10, 10)
    never.fault(10, 20)
    row = run(never, "recovery", limit_s=5.0)
    assert row["status"] == "FAIL" and "never resumed" in row["evidence"]
    assert run(steady(fault=None), "recovery")["status"] == "NOT TESTED"


def test_acks_must_resume_within_a_bound_after_each_fault_ends():
    assert run(steady(), "acks-resume", bound_s=10)["status"] == "PASS"
    late = Timeline()
    late.sends(0, 10, 10)
    late.sends(35, 40, 10)  # 15 s after the fault ended at 20 s
    late.fault(10, 20)
    row = run(late, "acks-resume", bound_s=10)
    assert row["status"] == "FAIL" and "after broker-kill" in row["evidence"]
    assert run(steady(fault=None), "acks-resume")["status"] == "NOT TESTED"


def test_a_target_that_stops_accepting_writes_fails_even_without_loss():
    """The audit's S5 case: 100 acks in the warm-up, then 4,900 timeouts, was PASS (one ack was enough,
    and catch-up measured 0.0 s). Nothing was lost, but the cluster accepted no writes."""
    t = Timeline()
    t.sends(0, 10, 10)  # 100 acknowledged
    t.fault(10, 15, "storage-outage")
    t.sends(10, 500, 10, outcome="info")  # 4,900 timeouts
    t.read_everything(501)
    history = t.frame()
    share = run(history, "fault-free-acks", rate=10.0, fraction=0.8, settle_s=5.0)
    assert share["status"] == "FAIL" and float(share["measured"]) < 0.05
    assert run(history, "acks-resume", bound_s=10)["status"] == "FAIL"
    assert run(history, "client-errors")["status"] == "FAIL"
    anomalies = compose(View(history), [CheckSpec("anomalies")])  # 100 acked: the old rule was satisfied
    assert not (anomalies["status"] == "FAIL").any()


def test_fault_free_acks_pass_a_healthy_run_and_need_an_offered_rate():
    assert run(steady(), "fault-free-acks", rate=10.0)["status"] == "PASS"
    assert run(steady(), "fault-free-acks", rate=0.0)["status"] == "NOT TESTED"


def _rolling(latency: float) -> Timeline:
    """S7's shape: an open-loop producer at 10/s for 50 s, every send acknowledged `latency` s after it, nothing
    lost; three broker restarts back to back after 8 s of warm-up, so the fault-free intervals are short: the
    warm-up (0-8 s) and the 5 s from the last restart's end plus the 5 s settling to the producers' stop."""
    t = Timeline()
    t.sends(0, 50, 10, partitions=2, latency=latency)
    for start, end in ((8, 20), (20, 32), (32, 40)):
        t.fault(start, end, "broker-restart")
    t.read_everything(51 + latency)
    return t


def test_fault_free_acks_do_not_charge_a_steady_latency_as_missing_acks():
    """Apache Kafka 4.1.1, librdkafka S7 run 20261205T010638-0ea6 rolling#1: produce latency ~2.8 s in the
    warm-up (__consumer_offsets being created), nothing lost, every send acknowledged, and 0.799 < 0.8. Acks were
    counted by when they came: the first interval had none for its first 2.8 s and the acks of its last 2.8 s of
    sends came in the fault after it (0.78 here). A system that takes writes with 2.8 s latency took them."""
    row = run(_rolling(2.8), "fault-free-acks", rate=10.0, fraction=0.8, settle_s=5.0)
    assert row["status"] == "PASS" and float(row["measured"]) > 0.95, row
    assert "acknowledged within 5 s of falling due" in row["evidence"]


def test_fault_free_acks_fail_a_system_that_acknowledges_everything_late():
    """Every write taken, nothing lost, but each acknowledged 25 s after it was sent: no availability."""
    row = run(_rolling(25.0), "fault-free-acks", rate=10.0, fraction=0.8, settle_s=5.0)
    assert row["status"] == "FAIL" and float(row["measured"]) == 0.0, row
    assert "acknowledged later than 5 s" in row["evidence"]
    assert run(_rolling(6.0), "fault-free-acks", rate=10.0, fraction=0.8, settle_s=5.0)["status"] == "FAIL"


def test_fault_free_acks_judge_a_send_from_when_it_fell_due():
    """An open-loop producer whose send() call held it (a client blocking the application on a full buffer) makes
    its sends late: the system took them 8 s after they were offered, though 1 s after each was made."""
    t = Timeline()
    t.sends(0, 30, 10, latency=1.0)
    for row in t.rows:
        if row["f"] == "send" and row["invoke_ns"] >= 20 * h.S:
            row["invoke_ns"] += 7 * h.S
            row["complete_ns"] += 7 * h.S
    t.fault(5, 6, "broker-restart")
    row = run(t, "fault-free-acks", rate=10.0, fraction=0.8, settle_s=5.0)
    assert row["status"] == "FAIL" and "99 more were acknowledged later than 5 s" in row["evidence"], row["evidence"]


def test_client_errors_count_surfaced_and_report_handled_apart():
    clean = steady()
    clean._row(12, process="client-log", f="client-log", type="info", error="WARNING kafka: retrying produce")
    row = run(clean, "client-errors")
    assert row["status"] == "PASS" and "handled by the client: 1 (1 retries)" in row["evidence"]
    failing = steady()
    failing.poll(12, outcome="info")
    assert run(failing, "client-errors")["status"] == "FAIL"


def test_catch_up_after_the_faults():
    assert run(steady(), "catch-up", limit_s=60)["status"] == "PASS"
    unread = Timeline()
    unread.sends(0, 30, 10)
    unread.fault(10, 20)
    unread.poll(31, send=next(r for r in unread.rows if r["f"] == "send"))
    row = run(unread, "catch-up", limit_s=60)
    assert row["status"] == "FAIL" and "never read by a live consumer" in row["evidence"]


# ----------------------------------------------------------------------------- what clients noticed
def _group(after_fault_assign: bool) -> Timeline:
    t = steady()
    t.group(0.5, "consumer-0", [0, 1])  # start-up join
    t.group(1.0, "consumer-0", [0, 1], f="revoke")  # a second member joins: start-up, not the fault
    t.group(1.2, "consumer-0", [0])
    t.group(1.2, "consumer-1", [1])
    if after_fault_assign:
        t.group(12, "consumer-1", [0, 1])
    return t


def test_rebalances_count_only_after_the_group_was_stable_and_the_fault_started():
    """Before: start-up joins counted as rebalances (the count ran from t=0)."""
    assert run(_group(False), "rebalances")["status"] == "PASS"
    row = run(_group(True), "rebalances")
    assert row["status"] == "FAIL" and row["measured"] == "1"
    assert run(steady(), "rebalances")["status"] == "NOT TESTED"  # no group member


def test_reconnections_without_client_samples_are_not_tested():
    """Before: reconnection totals defaulted to 0 when the clients' metrics were never read, so S6 and
    S7 passed on nothing."""
    row = run(steady(), "reconnections", requirement="F5.1")
    assert row["status"] == "NOT TESTED" and "no client-metrics sample" in row["evidence"]


def test_reconnections_count_connections_made_after_the_fault():
    t = steady()
    t.quiet_clients("consumer-0")
    t.client_metrics(5, "producer-0", 2, ["0@h:1"])
    t.client_metrics(25, "producer-0", 4, ["0@h:1"])
    assert run(t, "reconnections", requirement="F5.1")["measured"] == "2"
    assert run(t, "reconnections", requirement="F5.1")["status"] == "FAIL"
    assert run(t, "reconnections", requirement="S7", restarts=1)["status"] == "PASS"  # 2 open, 2 new


def test_a_reconnect_storm_is_more_than_one_reconnection_per_connection_per_restart():
    """Kafka's S7 FAILed at "one per restart": a consumer holds a connection to its partitions' leader and
    one to its group coordinator, and a bounced broker can be both (4 reconnections, 3 restarts)."""
    t = steady()
    t.quiet_clients("producer-0", "consumer-0")
    t.client_metrics(5, "consumer-1", 2, ["0@h:1"])  # 2 created, none closed: 2 open
    t.client_metrics(25, "consumer-1", 6, ["0@h:1"])  # 4 new: within 2 held + 3 restarts
    assert run(t, "reconnections", requirement="S7", restarts=3)["status"] == "PASS"
    t.client_metrics(26, "consumer-1", 9, ["0@h:1"])  # 7 new: every connection again at every restart
    row = run(t, "reconnections", requirement="S7", restarts=3)
    assert row["status"] == "FAIL" and "consumer-1: 2," in row["measured"]


def test_metadata_seen_by_clients():
    same = steady()
    same.client_metrics(5, "producer-0", 1, ["0@h:1"])
    same.client_metrics(25, "producer-0", 1, ["0@h:1"])
    assert run(same, "metadata-unchanged")["status"] == "PASS"
    moved = steady()
    moved.client_metrics(5, "producer-0", 1, ["0@h:1"])
    moved.client_metrics(25, "producer-0", 1, ["0@h:1", "1@h:2"])
    assert run(moved, "metadata-unchanged")["status"] == "FAIL"
    assert run(steady(), "metadata-unchanged")["status"] == "NOT TESTED"


def test_16_2_a_failed_client_metrics_sampler_is_named_not_dropped():
    """Before: a sample that raised was an ok row with an error in its detail, dropped by the checks,
    so reconnections and metadata-unchanged went NOT TESTED ("no client-metrics sample") and the
    sampler's failure appeared nowhere."""
    from k6suite_lib import report

    error = "AttributeError: 'NoneType' object has no attribute 'brokers'"
    for as_ok_row in (False, True):
        t = steady()
        for second in (5, 25):
            t.failed_client_metrics(second, "producer-0", error, as_ok_row=as_ok_row)
        for check, params in (("reconnections", {"requirement": "F5.1"}), ("metadata-unchanged", {})):
            row = run(t, check, **params)
            assert row["status"] == "NOT TESTED" and "2 of 2 client-metrics samples failed" in row["evidence"] \
                and error in row["evidence"], (as_ok_row, row["evidence"])
        # the question these checks decide says why it is not answered: the sampler's error
        verdicts = compose(View(t.frame()), [CheckSpec("reconnections", {"requirement": "F5.1 / NFR3"}),
                                             CheckSpec("metadata-unchanged")]).assign(variant="1-to-3")
        question = next(q for q in report.QUESTIONS if q.text.startswith("Can brokers be added"))
        result, why = report.answer({"scenarios": [{"scenario": "S6", "verdicts": verdicts.to_dict("records")}]},
                                    question)
        assert result == "NOT TESTED" and error in why, why
    # samples that worked still decide; the ones that failed are named beside them
    t = steady()
    t.quiet_clients("consumer-0")
    t.client_metrics(5, "producer-0", 2, ["0@h:1"])
    t.failed_client_metrics(15, "producer-0", error)
    t.client_metrics(25, "producer-0", 2, ["0@h:1"])
    for check, params in (("reconnections", {"requirement": "F5.1"}), ("metadata-unchanged", {})):
        row = run(t, check, **params)
        assert row["status"] == "PASS" and "1 of 5 client-metrics samples failed" in row["evidence"], row["evidence"]


def test_new_brokers_serve_from_the_recorded_probe():
    def probe(connections, error=""):
        detail = {} if error else {"connections": connections, "added": ["1", "2"], "total": 30}
        rows = [*steady().rows, probe_row(h.RUN, "connection-spread", 1, detail, error=error)]
        return run(h.frame(rows), "new-brokers-serve")

    assert probe({"0": 10, "1": 10, "2": 10})["status"] == "PASS"
    assert probe({"0": 30, "1": 0, "2": 0})["status"] == "FAIL"
    assert probe({}, error="ConnectionRefusedError")["status"] == "NOT TESTED"
    assert run(steady(), "new-brokers-serve")["status"] == "NOT TESTED"


# ----------------------------------------------------------------------------- reads and groups
def test_overlap_needs_a_read_not_a_failed_poll():
    """Before: a poll that raised counted as a live read, so "produce and consume overlapped" passed
    with consumers that never read anything while producers ran."""
    t = Timeline()
    t.sends(0, 5, 10)
    t.poll(1, outcome="info")  # failed polls while producing
    t.read_everything(6)  # the first real read after the last acknowledgement
    assert run(t, "overlap")["status"] == "FAIL"
    t.poll(2, send=next(r for r in t.rows if r["f"] == "send"))
    assert run(t, "overlap")["status"] == "PASS"


def test_own_reads_need_the_writer_itself_to_read_its_record():
    t = Timeline()
    t.sends(0, 1, 5, producer="producer-0")
    for send in [r for r in t.rows if r["f"] == "send"][:4]:
        t.poll(2, process="producer-0", send=send)
    row = run(t, "own-reads")
    assert row["status"] == "FAIL" and row["measured"] == "1" and "producer-0#4" in row["evidence"]


def test_own_reads_with_nothing_acknowledged_are_not_tested():
    """Seen on KafScale v1.5.0 with kafka-python's default, idempotent producer: every send failed
    (no InitProducerId), and the check crashed the S3 notebook (KeyError 'producer') instead of saying so."""
    t = Timeline()
    t.sends(0, 1, 5, producer="producer-0", outcome="fail")
    row = run(t, "own-reads")
    assert row["status"] == "NOT TESTED" and "nothing was acknowledged" in row["evidence"]


def test_group_ownership_and_committed_offsets():
    t = Timeline()
    t.sends(0, 1, 4, partitions=2)
    t.group(0.1, "consumer-0", [0])
    t.group(0.1, "consumer-1", [1])
    t._row(2, process="consumer-0", f="commit", type="ok", detail=json.dumps({"offsets": {"0": 2}}))
    t._row(2, process="consumer-1", f="commit", type="ok", detail=json.dumps({"offsets": {"1": 2}}))
    assert run(t, "group-ownership", partitions=2)["status"] == "PASS"
    assert run(t, "group-ownership", partitions=3)["status"] == "FAIL"  # partition 2 unowned
    rows = [*t.rows, probe_row(h.RUN, "committed-offsets", 3, {"offsets": {"0": 2, "1": 2}})]
    assert run(h.frame(rows), "committed-offsets")["status"] == "PASS"
    rows = [*t.rows, probe_row(h.RUN, "committed-offsets", 3, {"offsets": {"0": 0, "1": 2}})]
    assert run(h.frame(rows), "committed-offsets")["status"] == "FAIL"
    rows = [*t.rows, probe_row(h.RUN, "committed-offsets", 3, {}, error="GroupAuthorizationFailedError")]
    assert run(h.frame(rows), "committed-offsets")["status"] == "FAIL"


# ----------------------------------------------------------------------------- slow storage
def test_latency_rise_and_the_metric_that_names_it():
    t = Timeline()
    t.sends(0, 10, 10, latency=0.005)
    t.sends(10, 20, 10, latency=0.250)
    t.sends(20, 30, 10, latency=0.005)
    t.fault(10, 20, "storage-latency")
    t.read_everything(31)
    row = run(t, "latency-rise", fault="storage-latency", min_rise_ms=100)
    assert row["status"] == "PASS" and row["measured"] == "(5.0, 250.0) ms"
    assert run(t, "latency-rise", fault="storage-latency", min_rise_ms=300)["status"] == "FAIL"  # too small a rise
    flat = steady(fault=(10, 20))
    assert run(flat, "latency-rise", fault="broker-kill", min_rise_ms=1)["status"] == "FAIL"
    assert run(flat, "latency-rise", fault="storage-latency", min_rise_ms=1)["status"] == "NOT TESTED"
    metric = {"family": "kafscale_s3_latency_ms_avg", "minimum": 200, "fault": "storage-latency"}
    t._row(15, process="metrics", f="metric", type="ok",
           detail=json.dumps({"family": "kafscale_s3_latency_ms_avg", "url": "u", "value": 231.0}))
    assert run(t, "metric-at-least", **metric)["status"] == "PASS"
    assert run(t, "metric-at-least", **{**metric, "minimum": 300})["status"] == "FAIL"
    assert run(t, "metric-at-least", **{**metric, "family": None})["status"] == "NOT TESTED"


def test_a_metric_spike_outside_the_latency_window_does_not_count():
    """The audit's case: the gauge stayed at 4 ms during the latency window and spiked to 5,000 ms in a
    later outage; the largest value of the whole run passed "the metric shows the injected latency"."""
    t = steady(fault=(10, 20))
    t.fault(10, 20, "storage-latency")
    for at, value in ((15, 4.0), (25, 5000.0)):
        t._row(at, process="metrics", f="metric", type="ok",
               detail=json.dumps({"family": "m", "url": "u", "value": value}))
    assert run(t, "metric-at-least", family="m", minimum=200, fault="storage-latency")["status"] == "FAIL"


def test_the_storage_metric_is_not_judged_when_nothing_was_acknowledged():
    """S5 on KafScale v1.5.0 with kafka-python's default producer: every send failed (no InitProducerId),
    the brokers wrote nothing to the store, their S3 latency gauge stayed at 0 ms and "the metric shows
    the injected latency" FAILed, blaming the metric for a write that never happened."""
    metric = {"family": "m", "minimum": 200, "fault": "storage-latency"}
    for outcome in ("info", "ok"):
        t = Timeline()
        t.sends(0, 30, 10, outcome=outcome)
        t.fault(10, 20, "storage-latency")
        t._row(15, process="metrics", f="metric", type="ok",
               detail=json.dumps({"family": "m", "url": "u", "value": 0.0}))
        row = run(t, "metric-at-least", **metric)
        if outcome == "info":
            assert row["status"] == "NOT TESTED" and "nothing was acknowledged" in row["evidence"]
        else:  # the same flat gauge under acknowledged writes is the anomaly the check exists for
            assert row["status"] == "FAIL" and row["measured"] == "0"


# ----------------------------------------------------------------------------- storage as the system of record
def _stored(rows: list[dict]) -> pd.DataFrame:
    return h.stored_records(rows)


def _judge_storage(tmp_path, rows: list[dict], records: pd.DataFrame) -> pd.DataFrame:
    from k6suite_lib.storage import OBJECT_COLUMNS, StorageListing

    objects = pd.DataFrame(columns=list(OBJECT_COLUMNS)).astype({c: d for c, (d, _) in OBJECT_COLUMNS.items()})
    StorageListing(records=records, objects=objects, errors=[], meta={"system": "kafscale"}).save(
        tmp_path / "storage-x.parquet")
    view = View(h.frame(rows), {"run_id": h.RUN, "storage": "storage-x.parquet"}, sidecar_dir=tmp_path)
    return compose(view, [CheckSpec("storage")]).set_index("check")


def test_storage_holding_exactly_what_was_acknowledged_passes(tmp_path):
    rows = h.clean_rows(h.Spec(2, 2, 20, 1), random.Random(12))
    table = _judge_storage(tmp_path, rows, _stored(rows))
    assert set(table["status"]) == {"PASS"}, table


def test_storage_anomalies_are_found(tmp_path):
    rows = h.clean_rows(h.Spec(2, 2, 20, 1), random.Random(13))
    stored = _stored(rows)
    stored.loc[0, "batch_crc_ok"] = False  # damaged bytes at an acknowledged position
    stored = pd.concat([stored.drop(index=1), stored.iloc[[2]].assign(seq=999)], ignore_index=True)  # lost + twice
    table = _judge_storage(tmp_path, rows, stored)
    acked = table.loc["every acknowledged record is in storage at its position, intact"]
    assert acked["status"] == "FAIL" and acked["measured"] == "2" and "1 damaged" in acked["evidence"]
    other = table.loc["storage holds no record never sent, no offset twice, no undecodable object"]
    assert other["status"] == "FAIL" and "1 records never sent" in other["evidence"] and "1 offsets stored twice" in \
        other["evidence"]
    assert table.loc["storage equals the final read-back, both directions", "status"] == "FAIL"


def test_storage_and_the_classes_judge_nothing_when_nothing_was_acknowledged(tmp_path):
    """KafScale with kafka-python's default producer acknowledged none of S3's sends (no InitProducerId),
    and "every acknowledged record is in storage" and "0 lost", "0 unreadable" PASSed on none. A bucket
    holding a record nobody sent still FAILs."""
    sent = h.clean_rows(h.Spec(1, 1, 3, 0), random.Random(15))
    rows = [{**r, "type": "info", "offset": -1, "error": "IncompatibleBrokerVersion"} if r["f"] == "send" else r
            for r in sent if not (r["process"] == "readback" and r["f"] == "poll")]
    table = _judge_storage(tmp_path, rows, _stored(sent).iloc[:0])
    for check in ("every acknowledged record is in storage at its position, intact",
                  "acknowledged records lost (not read back, not in storage)",
                  "acknowledged records unreadable (intact in storage, never served)"):
        assert table.loc[check, "status"] == "NOT TESTED" and "nothing was acknowledged" in table.loc[check, "evidence"]
    assert table.loc["storage holds no record never sent, no offset twice, no undecodable object", "status"] == "PASS"
    stranger = _judge_storage(tmp_path, rows, _stored(sent).iloc[:1].assign(seq=999))
    assert stranger.loc["storage holds no record never sent, no offset twice, no undecodable object",
                        "status"] == "FAIL"


def test_acknowledgements_without_an_offset_are_not_judged_as_positions_and_say_so(tmp_path):
    """Acks that carry offset -1 (acks=0, or a broker that answers no offset) name no position: the storage
    check said "nothing was acknowledged" of 3 acknowledged sends (audit20 L1), and the read-back's "end offset
    past every acknowledged offset" PASSed comparing nothing. The same sends with their offsets are judged."""
    from k6suite_lib.checkers.readback import PASSED_ACKS, PAST_ACKS

    sent = h.clean_rows(h.Spec(1, 1, 3, 0), random.Random(15))
    unplaced = [{**r, "offset": -1} if r["f"] == "send" else r for r in sent]
    table = _judge_storage(tmp_path, unplaced, _stored(sent))
    stored = table.loc["every acknowledged record is in storage at its position, intact"]
    assert stored["status"] == "NOT TESTED" and "3 sends were acknowledged, none with an offset" in stored["evidence"]
    readback = compose(View(h.frame(unplaced)), [CheckSpec("readback")]).set_index("check")
    for check in (PAST_ACKS, PASSED_ACKS):
        assert readback.loc[check, "status"] == "NOT TESTED", readback.loc[check, "evidence"]
        assert "none with an offset" in readback.loc[check, "evidence"]
    placed = compose(View(h.frame(sent)), [CheckSpec("readback")]).set_index("check")
    assert set(placed.loc[[PAST_ACKS, PASSED_ACKS], "status"]) == {"PASS"}
    assert _judge_storage(tmp_path, sent, _stored(sent)).loc[
        "every acknowledged record is in storage at its position, intact", "status"] == "PASS"


def test_an_acknowledgement_the_client_completed_without_an_offset_says_so_in_the_evidence():
    """audit24 L1: kafka-clients completes a batch answered DUPLICATE_SEQUENCE_NUMBER as a success without an
    offset; the Java program's send row says so in its detail (OFFSET_UNKNOWN in clients/java), and the
    ack-without-offset FAIL quotes it, so the reader sees the client's doing; an ack without that note reads
    as before.
    Mutation tried: evidence() without the detail's note: the quote is missing, this test fails."""
    note = ("kafka-clients completed the send as a success without an offset (as its Sender does for "
            "DUPLICATE_SEQUENCE_NUMBER)")
    sent = h.clean_rows(h.Spec(1, 1, 20, 0), random.Random(15))
    first, second = sorted(r["seq"] for r in sent if r["f"] == "send")[:2]
    noted = json.dumps({"offset_unknown": note})
    rows = [{**r, "offset": -1, "detail": noted} if r["f"] == "send" and r["seq"] == first
            else {**r, "offset": -1} if r["f"] == "send" and r["seq"] == second else r for r in sent]
    specs = [CheckSpec("anomalies", AnomalyRules(min_acked=20, max_unacked=0).params())]
    row = compose(View(h.frame(rows), {"config": {"acks": "all"}}), specs).set_index("check").loc["ack-without-offset"]
    assert row["status"] == "FAIL" and row["measured"] == "2", row.to_dict()
    assert f"producer-0#{first} p0@-1 (producer-0): {note}; producer-0#{second} p0@-1 (producer-0)" in row["evidence"]
    java = (Path(__file__).parent.parent / "clients" / "java" / "K6SuiteJavaClient.java").read_text()
    assert note in java  # the very text the Java program writes


def test_an_acknowledgement_without_an_offset_fails_unless_acks_0_owed_none(tmp_path):
    """audit21 M4: 19 of 20 acknowledgements carry offset -1 and one its offset. Under acks=all a broker owes the
    offset it wrote each record at: ack-without-offset FAILs saying how many, and the position checks, judging
    the one placed ack, say the 19 they did not judge. Under acks=0 no offset is owed (NOT TESTED, as a history
    that does not say its acks); the same history with every offset PASSes."""
    from k6suite_lib.checkers.readback import PASSED_ACKS, PAST_ACKS

    sent = h.clean_rows(h.Spec(1, 1, 20, 0), random.Random(15))
    first = min(r["seq"] for r in sent if r["f"] == "send")
    rows = [{**r, "offset": -1} if r["f"] == "send" and r["seq"] != first else r for r in sent]
    specs = [CheckSpec("anomalies", AnomalyRules(min_acked=20, max_unacked=0).params()), CheckSpec("readback")]
    table = compose(View(h.frame(rows), {"config": {"acks": "all"}}), specs).set_index("check")
    row = table.loc["ack-without-offset"]
    assert row["status"] == "FAIL" and row["measured"] == "19", row.to_dict()
    assert row["evidence"].startswith("19 of 20 acknowledgements carried no offset (acks=all): producer-0#")
    for check in (PAST_ACKS, PASSED_ACKS):
        assert table.loc[check, "status"] == "PASS"
        assert "19 of 20 acknowledgements carried no offset and are not judged here" in table.loc[check, "evidence"]
    stored = _judge_storage(tmp_path, rows, _stored(sent)).loc[
        "every acknowledged record is in storage at its position, intact"]
    assert "19 of 20 acknowledgements carried no offset" in stored["evidence"]
    for meta, why in (({"config": {"acks": 0}}, "acks=0, which owes no offset"),
                      ({}, "does not record its producers' acks")):
        row = compose(View(h.frame(rows), meta), specs).set_index("check").loc["ack-without-offset"]
        assert row["status"] == "NOT TESTED" and why in row["evidence"], row.to_dict()
    placed = compose(View(h.frame(sent), {"config": {"acks": "all"}}), specs).set_index("check")
    assert placed.loc["ack-without-offset", "status"] == "PASS"
    assert "carried no offset" not in placed.loc[PASSED_ACKS, "evidence"]


def test_storage_not_read_is_not_tested_with_the_reason(tmp_path):
    rows = h.clean_rows(h.Spec(1, 1, 5, 0), random.Random(14))
    table = compose(View(h.frame(rows), {"storage_error": "reading the bucket failed: timeout"}),
                    [CheckSpec("storage")])
    assert set(table["status"].iloc[:3]) == {"NOT TESTED"} and "timeout" in table["evidence"].iloc[0]
    kafka = compose(View(h.frame(rows)), [CheckSpec("storage", {"unavailable": "no object store"})])
    assert set(kafka["status"].iloc[:3]) == {"NOT TESTED"}
    # what the read-back returned still decides the classes: everything was read back, nothing is missing
    assert set(kafka["status"].iloc[3:]) == {"PASS"} and "missing" in kafka["check"].iloc[-1]


# ----------------------------------------------------------------------------- the audit's other cases
def test_a_gap_that_never_closes_counts_to_the_last_send():
    """Acks that trickle on into the fault and then stop for good were measured as a 0.1 s gap."""
    t = Timeline()
    t.sends(0, 10.2, 10)  # acks until 10.1 s, 0.1 s into the fault
    t.sends(10.2, 30, 10, outcome="info")  # then nothing is acknowledged
    t.fault(10, 20)
    row = run(t, "recovery", limit_s=5.0)
    assert row["status"] == "FAIL" and float(row["measured"].split()[0]) > 19


def test_catch_up_is_the_lag_after_the_faults_not_the_run_length():
    def lagging(read_at: float) -> Timeline:
        t = Timeline()
        t.sends(0, 40, 10)
        t.fault(10, 20, "storage-outage")
        for send in [r for r in t.rows if r["f"] == "send"]:
            t.poll(read_at if send["invoke_ns"] < 20 * h.S else send["invoke_ns"] / h.S + 0.01, send=send)
        return t

    assert run(lagging(21.0), "catch-up", limit_s=30)["measured"] == "1 s"
    assert run(lagging(64.0), "catch-up", limit_s=30)["status"] == "FAIL"


def test_rebalances_are_not_judged_when_the_group_never_owned_every_partition():
    """Seen on Kafka: the member that computed the assignment did not know all partitions yet, so the
    group owned one of two, and the metadata refresh a fault caused rebalanced it: a suite artefact."""
    t = steady()
    t.group(0.5, "consumer-0", [])
    t.group(0.5, "consumer-1", [1])
    t.group(12, "consumer-1", [0, 1])
    row = run(t, "rebalances")
    assert row["status"] == "NOT TESTED" and "had not formed" in row["evidence"]


def test_rebalances_are_not_judged_while_the_group_is_still_forming():
    t = steady()
    t.group(0.5, "consumer-0", [0, 1])
    t.group(12, "consumer-1", [1])  # joined only after the fault at 10 s started
    row = run(t, "rebalances")
    assert row["status"] == "NOT TESTED" and "still forming" in row["evidence"]


def test_clients_that_could_not_connect_are_surfaced_errors():
    t = steady()
    t._row(1, process="consumer-0", f="connect", type="fail", error="NoBrokersAvailable")
    row = run(t, "client-errors")
    assert row["status"] == "FAIL" and "1 connections" in row["evidence"]


def test_storage_backpressure_inside_the_faults_is_reported_not_failed():
    t = Timeline()
    t.sends(0, 10, 10)
    t.sends(10, 15, 10, outcome="info")  # timeouts while the store is out
    t.sends(15, 40, 10)
    t.fault(10, 15, "storage-outage")
    t.read_everything(41)
    row = run(t, "client-errors", outside_faults_only=True, settle_s=5.0)
    assert row["status"] == "PASS" and "50 during the faults" in row["evidence"]
    assert run(t, "client-errors")["status"] == "FAIL"


def test_acks_are_owed_after_a_run_of_back_to_back_faults_not_inside_it():
    """S5's bandwidth window is followed at once by the outage; acks owed after the bandwidth window
    cannot come while the store is out."""
    t = Timeline()
    t.sends(0, 10, 10)
    t.sends(20.3, 40, 10)
    t.fault(0.5, 10, "storage-bandwidth")
    t.fault(10, 20, "storage-outage")
    row = run(t, "acks-resume", bound_s=10)
    assert row["status"] == "PASS" and "storage-bandwidth + storage-outage" in row["evidence"]


def test_a_scenario_criterion_beside_a_waived_promise_keeps_the_check_judged():
    rows = [verdict("consumers catch up after the faults", "F6 / S5", 99.0, Below(30, " s"))]
    assert verdict_frame(rows, {"F6": "no object store"})["status"].iloc[0] == "FAIL"


# ----------------------------------------------------------------------------- last: the registry
def test_item_20_5_every_registered_checker_was_exercised_by_a_test_here(request):
    """Last in the module: every checker in the registry ran in one of this module's tests (noted by
    record_exercised_checkers), so a new checker without a planted history here fails this."""
    defined = {name for name in vars(request.module) if name.startswith("test_")}
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    if selected != defined:
        pytest.skip("only part of tests/test_checkers.py was selected; run the whole module to compare")
    assert EXERCISED, "no checker ran: the recorder is not in place"
    assert set(CHECKERS) <= EXERCISED, f"registered but never run by a test here: {sorted(set(CHECKERS) - EXERCISED)}"
