"""audit21 H1: a retry row excuses only as many copies as its failed batch held, and only of records outstanding
when it came (pure: planted histories, librdkafka's real MSGSET lines through the real RetryLog; no stack).

librdkafka logs MsgId 0 for every batch of a producer without idempotence, so no row names the records it
resent; its line does name how many ("MessageSet with N message(s)"). A batch of N records resends at most N,
each once: one more copy of each at most.
"""

from __future__ import annotations

import logging
import random

import tests.histories as h
from k6suite_lib import history
from k6suite_lib.checkers import AnomalyRules, CheckSpec, recheck
from k6suite_lib.history import Recorder
from k6suite_lib.workload import rdkafka
from k6suite_lib.workload.context import RunContext
from tests.conftest import verdicts_of

LINE = ("[thrd:127.0.0.1:33001/1]: 127.0.0.1:33001/1: {topic} [0]: MessageSet with {n} message(s) "
        "(MsgId 0, BaseSeq -1) encountered error: Local: Request timed out (actions Retry,MsgPossiblyPersisted)")
RULES = AnomalyRules(min_acked=1, retried_duplicates=True, retried_reordering=True)


def _retry(n: int, at: int, op_id: int = 40_000) -> dict:
    """The retry row RetryLog records for one failed batch of n records of producer-0 on partition 0, at `at`."""
    recorder = Recorder(h.RUN)
    ctx = RunContext(profile=None, config=None, run_id=h.RUN, topic=h.TOPIC, recorder=recorder)
    rdkafka.RetryLog(ctx, "producer-0", logging.getLogger("k6suite-test-null")).log(
        logging.DEBUG, "%s [%s] %s", "MSGSET", "rdkafka#producer-1", LINE.format(topic=h.TOPIC, n=n))
    (row,) = recorder.rows()
    return {**row, "op_id": op_id, "invoke_ns": at, "complete_ns": at, "wall_ns": at}


def _pipelined(count: int, copies: int = 2) -> tuple[list[dict], int]:
    """A clean history of producer-0 on one partition whose sends seq 5.. 5+count-1 were all outstanding
    together (acknowledged at once, as pipelined requests are), each read `copies` times; and a moment
    while they all were outstanding."""
    rows = h.clean_rows(h.Spec(1, 1, 20, 1), random.Random(3))
    chosen = {s["seq"]: s for s in rows if s["f"] == "send" and 5 <= s["seq"] < 5 + count}
    acked = max(s["complete_ns"] for s in chosen.values())
    rows = [{**r, "complete_ns": acked} if r["f"] == "send" and r["seq"] in chosen else r for r in rows]
    top = max(r["offset"] for r in rows if r["f"] in ("send", "poll"))
    late = max(r["complete_ns"] for r in rows) + 1000
    for n, send in enumerate(s for s in rows if s["f"] == "send" and s["seq"] in chosen):
        for copy in range(copies - 1):
            top += 1
            rows.append({**send, "process": "consumer-0", "f": "poll", "op_id": 50_000 + 10 * n + copy,
                         "offset": top, "invoke_ns": late, "complete_ns": late, "session": 1, "record_run": h.RUN})
    return rows, max(s["invoke_ns"] for s in chosen.values()) + 1


def test_n_plus_one_duplicates_behind_one_n_message_retry_fail():
    """Four records outstanding together, each duplicated, and one failed batch of three: at most three of
    them were resent, so one duplicate is the system's (FAIL, saying the retries went to others); with four
    duplicates behind a batch of four, or behind two batches of two, every one is ALLOWED.
    Mutation tried: ignoring the batch's size (capacity unbounded, as before): ALLOWED, this test fails."""
    rows, at = _pipelined(4)
    row = verdicts_of(h.frame([*rows, _retry(3, at)]), RULES).loc["duplicate"]
    assert row["status"] == "FAIL" and row["measured"] == "1", row.to_dict()
    assert "3 explained by their producer's own retry" in row["evidence"]
    assert "1 of them had retries of their partition while outstanding, all given to other records" in row["evidence"]
    for retries in ([_retry(4, at)], [_retry(2, at), _retry(2, at + 1, op_id=40_001)]):
        row = verdicts_of(h.frame([*rows, *retries]), RULES).loc["duplicate"]
        assert row["status"] == "ALLOWED" and row["measured"] == "4", row.to_dict()


def test_a_duplicate_of_a_record_acknowledged_before_the_retry_fails():
    """The batch failed after the record's acknowledgement: that record was not in it, so its copy is the
    system's (FAIL), even with the batch large enough for every record; the same batch failing while it
    was outstanding ALLOWs it. Mutation tried: keeping a record acknowledged before the retry among those
    it may be given to: ALLOWED, this test fails."""
    rows, at = _pipelined(1)
    acked = next(r["complete_ns"] for r in rows if r["f"] == "send" and r["seq"] == 5)
    assert verdicts_of(h.frame([*rows, _retry(20, acked + 1)]), RULES).loc["duplicate", "status"] == "FAIL"
    assert verdicts_of(h.frame([*rows, _retry(20, at)]), RULES).loc["duplicate", "status"] == "ALLOWED"


def test_two_extra_copies_need_two_resends():
    """A record read at three offsets was written three times: one failed batch resends it once, so one
    retry leaves a copy unexplained (FAIL); two retries while it was outstanding ALLOW it. Mutation tried:
    a retry given to a record counting for all its copies: ALLOWED, this test fails."""
    rows, at = _pipelined(1, copies=3)
    assert verdicts_of(h.frame([*rows, _retry(5, at)]), RULES).loc["duplicate", "status"] == "FAIL"
    twice = [_retry(1, at), _retry(1, at + 1, op_id=40_001)]
    assert verdicts_of(h.frame([*rows, *twice]), RULES).loc["duplicate", "status"] == "ALLOWED"


def test_a_retry_row_without_a_size_still_ties_by_time():
    """kafka-python's and franz-go's retry rows name no batch size: such a row may be given to every record
    outstanding when it came (as before), once to each."""
    rows, at = _pipelined(4)
    unsized = {**_retry(1, at), "detail": "", "error": "kafka-python: retrying produce to partition 0"}
    assert verdicts_of(h.frame([*rows, unsized]), RULES).loc["duplicate", "status"] == "ALLOWED"


def _two_reorderings() -> tuple[list[dict], int]:
    """Two planted reorderings of producer-0 on its one partition whose earlier sends (those that landed
    higher) were outstanding together; and a moment while both were."""
    rows, _ = h.plant_nonmonotonic_send(h.clean_rows(h.Spec(1, 1, 20, 1), random.Random(5)), 2, random.Random(6))
    sends = sorted((r for r in rows if r["f"] == "send"), key=lambda r: r["seq"])
    earlier = {sends[i - 1]["seq"] for i in range(1, len(sends)) if sends[i]["offset"] < sends[i - 1]["offset"]}
    assert len(earlier) == 2
    start = min(s["invoke_ns"] for s in sends if s["seq"] in earlier)
    end = max(s["complete_ns"] for s in sends if s["seq"] in earlier)
    return [{**r, "invoke_ns": start, "complete_ns": end} if r["f"] == "send" and r["seq"] in earlier else r
            for r in rows], start + 1


def test_a_one_message_retry_explains_one_reordering():
    """Both earlier sends outstanding when one batch of one record failed: only one of them was resent, so
    one reordering is the system's (FAIL); a batch of two ALLOWs both. Mutation tried: ignoring the size:
    ALLOWED, this test fails."""
    rows, at = _two_reorderings()
    row = verdicts_of(h.frame([*rows, _retry(1, at)]), RULES).loc["nonmonotonic-send"]
    assert row["status"] == "FAIL" and row["measured"] == "1", row.to_dict()
    assert verdicts_of(h.frame([*rows, _retry(2, at)]), RULES).loc["nonmonotonic-send", "status"] == "ALLOWED"


def test_recheck_of_an_old_librdkafka_history_counts_batch_sizes(tmp_path):
    """A librdkafka history judged before sizes counted (stored rules allowed duplicates wholesale; its retry
    rows' detail also held MsgId, as before bf37a48): `k6suite check` gives each batch its size."""
    rows, at = _pipelined(2)
    old = {**_retry(1, at), "detail": '{"msgid": 0, "messages": 1, "actions": "Retry,MsgPossiblyPersisted"}'}
    spec = CheckSpec("anomalies", AnomalyRules(min_acked=1, allowed=frozenset({"duplicate"})).params())
    meta = {"run_id": h.RUN, "checks": [spec.to_json(), CheckSpec("readback").to_json()], "client": "librdkafka",
            "idempotent": False}
    path = history.save(h.frame([*rows, old]), tmp_path / "history-kill.parquet", meta=meta)
    row = recheck(str(path))[1].set_index("check").loc["duplicate"]
    assert row["status"] == "FAIL" and row["measured"] == "1", row.to_dict()
