"""audit21 H2/M1/M2/L3: a reordering is the producer's own only where the earlier send has a retry of its
own; statistics-derived retry rows are no evidence (pure: planted histories, librdkafka's real log lines
through the real DebugLog; no stack).

Each planted-anomaly test is one of the audit's demonstrations (A2, A4, A5) turned into a FAIL; its clean
counterpart ALLOWs the same anomaly once the tied evidence is there. A1 (a retry of another batch of the
partition) cannot be tied by record: librdkafka logs MsgId 0 for every batch of a producer without
idempotence; a batch's size bounds what it explains instead (tests/test_retry_sizes.py).
"""

from __future__ import annotations

import logging
import random
from types import SimpleNamespace

import tests.histories as h
from k6suite_lib import history
from k6suite_lib.checkers import AnomalyRules, CheckSpec, recheck
from k6suite_lib.history import Recorder
from k6suite_lib.profiles import load_profile
from k6suite_lib.scenarios.chaos import fault_checks
from k6suite_lib.scenarios.s3_correctness import strict_checks
from k6suite_lib.workload import WorkloadConfig, rdkafka
from k6suite_lib.workload.context import RunContext
from tests.conftest import verdicts_of

# librdkafka 2.16's debug line (context msg) for a failed Produce request (src/rdkafka_request.c)
LINE = ("[thrd:127.0.0.1:33001/1]: 127.0.0.1:33001/1: {topic} [{partition}]: MessageSet with {n} message(s) "
        "(MsgId {msgid}, BaseSeq -1) encountered error: {error} (actions {actions})")


def _logged(partition: int, msgid: int, n: int, error: str = "Local: Request timed out",
            actions: str = "Retry,MsgPossiblyPersisted") -> list[dict]:
    """The rows DebugLog records for one failed-batch line of producer-0."""
    recorder = Recorder(h.RUN)
    ctx = RunContext(profile=None, config=None, run_id=h.RUN, topic=h.TOPIC, recorder=recorder)
    rdkafka.DebugLog(ctx, "producer-0", logging.getLogger("k6suite-test-null")).log(
        logging.DEBUG, "%s [%s] %s", "MSGSET", "rdkafka#producer-1",
        LINE.format(topic=h.TOPIC, partition=partition, n=n, msgid=msgid, error=error, actions=actions))
    return recorder.rows()


def _retry(partition: int, at: int) -> dict:
    row = _logged(partition, 0, 1)[0]
    return {**row, "op_id": 40_000, "invoke_ns": at, "complete_ns": at, "wall_ns": at}


def _dup_history() -> tuple[list[dict], dict]:
    rows = h.clean_rows(h.Spec(1, 1, 20, 1), random.Random(3))
    dup = sorted((r for r in rows if r["f"] == "send"), key=lambda r: r["seq"])[10]
    top = max(r["offset"] for r in rows if r.get("partition") == dup["partition"] and r["f"] in ("send", "poll"))
    late = max(r["complete_ns"] for r in rows) + 1000
    return [*rows, {**dup, "process": "consumer-0", "f": "poll", "op_id": 50_000, "offset": top + 1,
                    "invoke_ns": late, "complete_ns": late, "session": 1, "record_run": h.RUN}], dup


def test_A4_statistics_retry_rows_are_no_evidence_on_recheck(tmp_path):
    """A librdkafka history from before 56ba339 whose only retry row comes from txretries: `k6suite check`
    FAILs the duplicate and says why; a MSGSET retry row at the same moment ALLOWs it. Mutation tried:
    keeping statistics rows in tied_retries: ALLOWED, this test fails."""
    rows, dup = _dup_history()
    spec = CheckSpec("anomalies", AnomalyRules(min_acked=1, allowed=frozenset({"duplicate"})).params())
    meta = {"run_id": h.RUN, "checks": [spec.to_json(), CheckSpec("readback").to_json()], "client": "librdkafka",
            "idempotent": False}
    real = history.save(h.frame([*rows, _retry(dup["partition"], dup["invoke_ns"] + 1)]),
                        tmp_path / "history-real.parquet", meta=meta)
    assert recheck(str(real))[1].set_index("check").loc["duplicate", "status"] == "ALLOWED"
    at = dup["invoke_ns"] + 1
    rows.append({"run_id": h.RUN, "op_id": 40_001, "process": "producer-0", "f": "retry", "type": "info",
                 "invoke_ns": at - 200_000_000, "complete_ns": at, "wall_ns": at, "producer": "producer-0",
                 "topic": h.TOPIC, "partition": dup["partition"],
                 "error": "librdkafka: 1 request retries to b1 (statistics txretries)"})
    spec = CheckSpec("anomalies", AnomalyRules(min_acked=1, allowed=frozenset({"duplicate"})).params())
    meta = {"run_id": h.RUN, "checks": [spec.to_json(), CheckSpec("readback").to_json()], "client": "librdkafka",
            "idempotent": False}
    path = history.save(h.frame(rows), tmp_path / "history-kill.parquet", meta=meta)
    row = recheck(str(path))[1].set_index("check").loc["duplicate"]
    assert row["status"] == "FAIL" and "statistics (statistics txretries) are no evidence" in row["evidence"], row


def _reordered() -> tuple[list[dict], dict, dict]:
    """A planted reordering of producer-0 on its one partition: the later send (flagged) and the earlier one
    that landed higher."""
    rows, _ = h.plant_nonmonotonic_send(h.clean_rows(h.Spec(1, 1, 20, 1), random.Random(5)), 1, random.Random(6))
    sends = sorted((r for r in rows if r["f"] == "send"), key=lambda r: r["seq"])
    later = next(s for i, s in enumerate(sends) if i and s["offset"] < sends[i - 1]["offset"])
    earlier = next(s for s in sends if s["seq"] == later["seq"] - 1)
    return rows, earlier, later


def _librdkafka_rules(build) -> AnomalyRules:
    profile = load_profile("kafka")
    config = WorkloadConfig(client="librdkafka", records=20)
    params = next(s.params for s in build(SimpleNamespace(profile=profile), config) if s.name == "anomalies")
    return AnomalyRules(**params | {"min_acked": 1, "allowed": frozenset(params["allowed"])})


RULE_BUILDERS = (lambda sc, c: strict_checks(sc, c, 20), lambda sc, c: fault_checks(sc, c, SimpleNamespace(steps=[])))


def test_A5_a_librdkafka_reordering_without_a_retry_of_the_earlier_send_fails():
    """The rules S3 and the fault scenarios build for a non-idempotent librdkafka producer no longer allow
    reordering wholesale: with no retry row, or a retry only while the later send was outstanding, FAIL.
    Mutation tried: default_allowed back in strict_checks/fault_checks: ALLOWED, this test fails."""
    rows, earlier, later = _reordered()
    for build in RULE_BUILDERS:
        rules = _librdkafka_rules(build)
        assert rules.retried_reordering and "nonmonotonic-send" not in rules.allowed
        assert verdicts_of(h.frame(rows), rules).loc["nonmonotonic-send", "status"] == "FAIL"
        own = _retry(0, later["invoke_ns"] + 1)
        assert not earlier["invoke_ns"] <= own["complete_ns"] <= earlier["complete_ns"]
        assert verdicts_of(h.frame([*rows, own]), rules).loc["nonmonotonic-send", "status"] == "FAIL"


def test_a_reordering_whose_earlier_send_was_resent_is_allowed():
    """The earlier send's own batch failed while it was outstanding: its resend landed above the later send,
    ALLOWED with that retry named. Mutation tried: tying the retry to the later (flagged) send instead of
    previous_seq: FAIL, this test fails."""
    rows, earlier, _ = _reordered()
    retry = _retry(0, earlier["invoke_ns"] + 1)
    for build in RULE_BUILDERS:
        row = verdicts_of(h.frame([*rows, retry]), _librdkafka_rules(build)).loc["nonmonotonic-send"]
        assert row["status"] == "ALLOWED" and "retried" in row["evidence"], row.to_dict()


def test_kafka_python_with_requests_in_flight_ties_reordering_by_time():
    """Any client with several requests in flight without idempotence: kafka-python's retry rows name no batch,
    so the earlier send's retry ties by time; none at all FAILs."""
    rows, earlier, _ = _reordered()
    rules = AnomalyRules(min_acked=1, retried_reordering=True)
    assert verdicts_of(h.frame(rows), rules).loc["nonmonotonic-send", "status"] == "FAIL"
    at = earlier["invoke_ns"] + 1
    unnamed = {**_retry(0, at), "detail": "", "error": "kafka-python: retrying produce to partition 0"}
    assert verdicts_of(h.frame([*rows, unnamed]), rules).loc["nonmonotonic-send", "status"] == "ALLOWED"


def _old_history(tmp_path, rows: list[dict], **meta) -> str:
    spec = CheckSpec("anomalies", AnomalyRules(min_acked=1, max_unacked=0).params())
    meta = {"run_id": h.RUN, "checks": [spec.to_json(), CheckSpec("readback").to_json()], "client": "librdkafka",
            "idempotent": False, **meta}
    return str(history.save(h.frame(rows), tmp_path / "history-x.parquet", meta=meta))


def test_A2_recheck_keeps_old_read_your_writes_reordering_failed(tmp_path):
    """An S3 read-your-writes history from before its metadata carried request_timeout_ms: its producer was
    kafka-python writing synchronously, so even a retry row does not make its reordering the client's.
    Mutation tried: dropping the read-your-writes exclusion in _reordering_of_its_client: ALLOWED."""
    rows, earlier, _ = _reordered()
    retry = _retry(0, earlier["invoke_ns"] + 1)
    path = _old_history(tmp_path, [*rows, retry], scenario="S3", variant="read-your-writes")
    assert recheck(path)[1].set_index("check").loc["nonmonotonic-send", "status"] == "FAIL"


def test_recheck_of_an_old_librdkafka_fault_history_needs_the_earlier_sends_retry(tmp_path):
    """Another old non-idempotent librdkafka history (no max_in_flight in its metadata): the reordering is
    ALLOWED with the earlier send's tied retry, FAIL without (no longer wholesale)."""
    rows, earlier, _ = _reordered()
    retry = _retry(0, earlier["invoke_ns"] + 1)
    status = {name: recheck(_old_history(tmp_path / name, planted, scenario="S4", variant="kill#1"))[1]
              .set_index("check").loc["nonmonotonic-send", "status"]
              for name, planted in (("bare", rows), ("retried", [*rows, retry]))}
    assert status == {"bare": "FAIL", "retried": "ALLOWED"}


def test_L3_a_request_that_timed_out_in_queue_writes_no_retry_row():
    """librdkafka never sent a request that timed out still queued ("Local: Timed out in queue", actions
    Retry,MsgNotPersisted; rd_kafka_buf_was_sent false): no retry row, so no evidence. A request that timed
    out in flight keeps its row."""
    assert _logged(0, 5, 2, error="Local: Timed out in queue", actions="Retry,MsgNotPersisted") == []
    assert len(_logged(0, 5, 2, error="Local: Request timed out")) == 1
