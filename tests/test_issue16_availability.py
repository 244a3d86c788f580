"""Issue 16 items 1, 6 and 7 and issue 15's empty-history rule: planted histories that the checks
judged wrongly before (each test names its item), judged right now."""

from __future__ import annotations

import json
import logging
import random
import time

from kafka.structs import TopicPartition

from k6suite_lib import report
from k6suite_lib.checkers import AnomalyRules, CheckSpec, compose
from k6suite_lib.faults.process import BrokerKill, BrokerTerminate
from k6suite_lib.history import Recorder, View
from k6suite_lib.workload.context import ClientLog, RunContext
from k6suite_lib.workload.producer import _record_blocked
from tests import histories as h
from tests.histories import Timeline
from tests.test_checkers import run


# ----------------------------------------------------------------------------- 16.1
def _stalled(blocked: bool) -> Timeline:
    """The audit's S5 history: 100 acks in the warm-up, an outage at 10-15 s, the producer blocked on
    max_outstanding (its last sends at 10-11 s time out), producers stopped at 27 s, nothing acked
    after the outage. blocked: the producer recorded the sends it could not make."""
    t = Timeline()
    t.sends(0, 10, 10)
    t.fault(10, 15, "storage-outage")
    t.sends(10, 11, 10, outcome="info", latency=30)
    if blocked:
        t.blocked(11, 27, 10)
    t.phase(27, "producers-stop")
    t.read_everything(28)
    return t


def test_16_1_no_ack_after_fault_fails():
    for blocked in (False, True):
        row = run(_stalled(blocked), "acks-resume", bound_s=10)
        assert row["status"] == "FAIL" and "never (no acknowledgement in the 12.0 s" in row["evidence"], row
    history = _stalled(blocked=True)
    share = run(history, "fault-free-acks", rate=10.0, fraction=0.8, settle_s=5.0)
    assert share["status"] == "FAIL" and "due sends never made" in share["evidence"], share
    errors = run(history, "client-errors", outside_faults_only=True, settle_s=5.0)
    assert errors["status"] == "FAIL" and "acks never resumed after storage-outage" in errors["evidence"]


def test_client_errors_say_acks_never_started_when_nothing_was_ever_acknowledged():
    """S5 on KafScale with kafka-python's default producer: not one send was acknowledged, and the evidence said
    "acks never resumed after storage-latency" of acknowledgements that never started. It says what happened;
    acks that stopped at the fault still read "never resumed", and acks seen only during a fault say so."""
    t = Timeline()
    t.sends(0, 30, 10, outcome="info")
    t.fault(10, 15, "storage-latency")
    t.phase(30, "producers-stop")
    errors = run(t, "client-errors", outside_faults_only=True, settle_s=5.0)
    assert errors["status"] == "FAIL" and "never resumed" not in errors["evidence"], errors["evidence"]
    assert "nothing was ever acknowledged (before, during or after storage-latency): their errors count" in \
        errors["evidence"]
    during = Timeline()
    during.sends(0, 10, 10, outcome="info")
    during.sends(10, 12, 10)
    during.sends(12, 30, 10, outcome="info")
    during.fault(10, 15, "storage-latency")
    during.phase(30, "producers-stop")
    shown = run(during, "client-errors", outside_faults_only=True, settle_s=5.0)["evidence"]
    assert "no ack before storage-latency nor after it" in shown and "never resumed" not in shown, shown
    stalled = run(_stalled(blocked=False), "client-errors", outside_faults_only=True, settle_s=5.0)["evidence"]
    assert "acks never resumed after storage-outage: their errors count" in stalled


def test_16_1_writes_that_resume_still_pass_and_a_short_tail_with_some_acks_is_not_judged():
    t = Timeline()
    t.sends(0, 10, 10)
    t.fault(10, 15, "storage-outage")
    t.sends(10, 15, 10, outcome="info")
    t.sends(15, 30, 10)
    t.phase(30, "producers-stop")
    t.read_everything(31)
    assert run(t, "acks-resume", bound_s=10)["status"] == "PASS"
    assert run(t, "client-errors", outside_faults_only=True, settle_s=5.0)["status"] == "PASS"
    partial = Timeline()  # p0 acked again 1 s after the fault, p1 not yet when producers stopped at 3 s
    partial.sends(0, 10, 10, partitions=2)
    partial.fault(10, 15)
    partial._row(16, process="producer-0", f="send", type="ok", producer="producer-0", seq=999, partition=0,
                 offset=50)
    partial.phase(18, "producers-stop")
    assert run(partial, "acks-resume", bound_s=10)["status"] == "NOT TESTED"


def test_16_1_a_blocked_producer_records_the_sends_that_fell_due():
    ctx = RunContext(profile=None, config=None, run_id="r", topic="t", recorder=Recorder("r"))
    start = time.monotonic_ns() - 1_000_000_000  # due every 0.1 s for the last second: 10 sends
    slot = _record_blocked(ctx, "producer-0", start, rate=10.0, slot=0, outstanding=1001)
    rows = ctx.recorder.rows()
    assert slot == len(rows) and 10 <= len(rows) <= 11
    assert {r["f"] for r in rows} == {"blocked"} and rows[1]["intended_ns"] - rows[0]["intended_ns"] == 100_000_000
    assert "1001 sends outstanding" in rows[0]["error"]


# ----------------------------------------------------------------------------- 16.6a
def _duplicated(retry_partition: int | None, retry_offset_ns: int = 500) -> tuple[list[dict], dict]:
    """A clean history in which one acknowledged record landed twice (a second copy at the end of its
    partition, read by consumer-0), and optionally its producer's retry on some partition."""
    rows = h.clean_rows(h.Spec(1, 2, 20, 1), random.Random(3))
    rows, chosen = h.plant_duplicate(rows, 1, random.Random(4))
    ident = next(iter(chosen))
    send = next(r for r in rows if r["f"] == "send" and f"{r['producer']}#{r['seq']}" == ident)
    if retry_partition is not None:
        t = send["invoke_ns"] + retry_offset_ns
        rows.append({"run_id": h.RUN, "op_id": 10_000, "process": send["producer"], "f": "retry", "type": "info",
                     "invoke_ns": t, "complete_ns": t, "wall_ns": t, "topic": h.TOPIC, "partition": retry_partition,
                     "producer": send["producer"], "error": "WARNING kafka.producer.sender: retrying"})
    return rows, send


def _duplicate_row(rows, retried_duplicates: bool):
    rules = AnomalyRules(max_unacked=0, retried_duplicates=retried_duplicates)
    return compose(View(h.frame(rows)), [CheckSpec("anomalies", rules.params())]).set_index("check").loc["duplicate"]


def test_16_6a_duplicate_explained_by_retry_is_allowed():
    rows, send = _duplicated(retry_partition=None)
    rows, send = _duplicated(retry_partition=send["partition"])
    row = _duplicate_row(rows, retried_duplicates=True)
    assert row["status"] == "ALLOWED" and "explained by their producer's own retry" in row["evidence"], row
    assert _duplicate_row(rows, retried_duplicates=False)["status"] == "FAIL"  # idempotent: no excuse
    unexplained, _ = _duplicated(retry_partition=None)
    assert _duplicate_row(unexplained, retried_duplicates=True)["status"] == "FAIL"
    elsewhere, _ = _duplicated(retry_partition=1 - send["partition"])
    assert _duplicate_row(elsewhere, retried_duplicates=True)["status"] == "FAIL"
    too_late, _ = _duplicated(retry_partition=send["partition"], retry_offset_ns=5_000)
    assert _duplicate_row(too_late, retried_duplicates=True)["status"] == "FAIL"


def test_16_6a_kafka_python_retries_are_recorded_per_producer_and_partition():
    recorder = Recorder("run-1")
    handler = ClientLog(recorder)
    record = logging.LogRecord(
        "kafka.producer.sender", logging.WARNING, __file__, 1,
        "%s: Got error produce response on topic-partition %s, retrying (%s attempts left): %s%s",
        ("<Sender client_id=run-1-producer-3 transactional_id=None>", TopicPartition("t", 2), 5,
         "RequestTimedOutError", ""), None)
    handler.emit(record)
    rows = recorder.rows()
    retry = next(r for r in rows if r["f"] == "retry")
    assert (retry["process"], retry["producer"], retry["topic"], retry["partition"]) == ("producer-3", "producer-3",
                                                                                          "t", 2)
    assert any(r["f"] == "client-log" for r in rows)  # still counted among errors the client handled


# ----------------------------------------------------------------------------- 16.6b
def _lagging(consumers_stop: float) -> Timeline:
    t = Timeline()
    t.sends(0, 30, 10)
    t.fault(10, 20, "storage-outage")
    for send in [r for r in t.rows if r["f"] == "send" and r["invoke_ns"] < 10 * h.S]:
        t.poll(22, send=send)  # what was acked before 10 s is read; 10-20 s is not yet
    t.phase(consumers_stop, "consumers-stop", unseen=100, reached_end=False)
    return t


def test_16_6b_catch_up_judges_only_the_time_consumers_had():
    row = run(_lagging(consumers_stop=28), "catch-up", limit_s=30)
    assert row["status"] == "NOT TESTED" and "drain stopped the consumers 8.0 s after" in row["evidence"], row
    assert run(_lagging(consumers_stop=55), "catch-up", limit_s=30)["status"] == "FAIL"


# ----------------------------------------------------------------------------- 16.7
def test_16_7_fault_that_missed_the_workload_is_not_tested():
    def killed(served: dict | None) -> Timeline:
        t = Timeline()
        t.sends(0, 30, 10)
        t.fault(10, 20, served=served)
        t.read_everything(31)
        return t

    for idle in ({"connections": 4, "leads": []}, {"connections": 0}, {"connections": 0, "produce_rps": 0.0}):
        row = run(killed(idle), "faults-applied", rows=2)
        assert row["status"] == "NOT TESTED" and "no target carried" in row["evidence"], row
    for busy in ({"connections": 4, "leads": [0, 2]}, {"connections": 3}, {"connections": 0, "produce_rps": 9.5}):
        row = run(killed(busy), "faults-applied", rows=2)
        assert row["status"] == "PASS" and "just before" in row["evidence"], row
    assert run(killed(None), "faults-applied", rows=2)["status"] == "PASS"  # nothing recorded: as before


def test_16_7_broker_death_questions_are_not_yes_when_the_fault_missed():
    verdicts = [{"variant": "kill", "check": report.FAULT_APPLIED, "status": "NOT TESTED",
                 "evidence": "no target carried any of the workload's traffic just before: leads []"},
                {"variant": "kill", "check": "lost-write", "status": "PASS", "evidence": ""},
                {"variant": "kill", "check": "client errors beyond retry", "status": "PASS", "evidence": ""}]
    summary = {"scenarios": [{"scenario": "S4", "verdicts": verdicts}]}
    for question in report.QUESTIONS:
        if question.scenarios == ("S4",):
            answer, why = report.answer(summary, question)
            assert answer == "NOT TESTED" and f"kill: {report.FAULT_APPLIED} not tested (no target carried" in why, \
                (question.text, answer, why)


def test_16_7_broker_faults_record_what_their_target_carried():
    class Stack:
        def __init__(self) -> None:
            self.killed: list[int] = []

        def fault_target(self, topic):
            return 2

        def workload_load(self, broker_id, topic):
            return {"connections": 0, "leads": [] if broker_id == 2 else [0]}

        def kill(self, broker_id):
            self.killed.append(broker_id)

        def terminate(self, broker_id, grace_s):
            return "SIGTERM"

    kill = BrokerKill(Stack(), topic="t")
    kill.start()
    assert kill.stack.killed == [2] and kill.parameters() == {"served": {"connections": 0, "leads": []}}
    terminate = BrokerTerminate(Stack(), broker_id=1, topic="t")
    terminate.start()
    assert terminate.parameters()["served"] == {"connections": 0, "leads": [0]}
    assert json.dumps(terminate.parameters())  # recorded in the fault row's detail


# ----------------------------------------------------------------------------- issue 15: empty histories
def test_15_empty_history_is_not_tested_not_pass():
    t = Timeline()
    t.sends(0, 10, 10, outcome="info")  # nothing acknowledged
    t._row(11, process="readback", f="end-offsets", type="ok", detail=json.dumps({"end_offsets": {"0": 0}}))
    t.phase(12, "readback-end", positions={"0": 0}, timed_out=False)
    table = compose(View(t.frame()), [CheckSpec("anomalies"), CheckSpec("readback")]).set_index("check")
    assert table.loc["acknowledged sends", "status"] == "FAIL"
    assert (table.drop(index=["acknowledged sends", "read-back reached the end offsets"])["status"]
            == "NOT TESTED").all(), table[["status", "evidence"]]
    assert "nothing was acknowledged" in table.loc["lost-write", "evidence"]
    aborted = Timeline()  # a class with a finding still fails without acknowledged sends
    aborted.sends(0, 1, 10, outcome="fail")
    aborted.poll(2, send={**aborted.rows[0], "offset": 0})
    table = compose(View(aborted.frame()), [CheckSpec("anomalies")]).set_index("check")
    assert table.loc["aborted-read", "status"] == "FAIL"


def test_16_1_without_a_phase_row_a_send_outstanding_past_the_fault_shows_producers_ran_on():
    """A history from another tool: no producers-stop row, no blocked rows; its last sends timed out
    12 s after the outage ended, so the producer was still producing then."""
    t = Timeline()
    t.sends(0, 10, 10)
    t.fault(10, 15, "storage-outage")
    t.sends(10, 11, 10, outcome="info", latency=17)
    row = run(t, "acks-resume", bound_s=10)
    assert row["status"] == "FAIL" and "never" in row["evidence"], row
