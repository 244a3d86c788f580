"""audit21 H1: a retry row excuses only as many copies as its failed batch held, and only of records outstanding
when it came (pure: planted histories, librdkafka's real MSGSET lines through the real DebugLog; no stack).

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
    """The retry row DebugLog records for one failed batch of n records of producer-0 on partition 0, at `at`."""
    recorder = Recorder(h.RUN)
    ctx = RunContext(profile=None, config=None, run_id=h.RUN, topic=h.TOPIC, recorder=recorder)
    rdkafka.DebugLog(ctx, "producer-0", logging.getLogger("k6suite-test-null")).log(
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


def _reordered_and_duplicated(reorderings: int, others: int,
                              earlier_duplicated: bool = False) -> tuple[list[dict], int]:
    """`reorderings` planted reorderings of producer-0 whose earlier sends were outstanding together, `others`
    other records outstanding in that same window each read a second time at a new offset (duplicates of
    records that reordered nothing), and with earlier_duplicated each earlier send read a second time too
    (a record that both reorders and duplicates); and a moment while all were outstanding."""
    rows, _ = h.plant_nonmonotonic_send(h.clean_rows(h.Spec(1, 1, 20, 1), random.Random(5)), reorderings,
                                        random.Random(6))
    sends = sorted((r for r in rows if r["f"] == "send"), key=lambda r: r["seq"])
    earlier = {sends[i - 1]["seq"] for i in range(1, len(sends)) if sends[i]["offset"] < sends[i - 1]["offset"]}
    assert len(earlier) == reorderings
    start = min(s["invoke_ns"] for s in sends if s["seq"] in earlier)
    end = max(s["complete_ns"] for s in sends if s["seq"] in earlier)
    other = {s["seq"] for s in sends if s["seq"] not in earlier and s["seq"] - 1 not in earlier}
    copied = sorted(other)[:others] + (sorted(earlier) if earlier_duplicated else [])
    windowed = earlier | set(copied)
    rows = [{**r, "invoke_ns": start, "complete_ns": end} if r["f"] == "send" and r["seq"] in windowed else r
            for r in rows]
    top = max(r["offset"] for r in rows if r["f"] in ("send", "poll"))
    late = max(r["complete_ns"] for r in rows) + 1000
    for n, send in enumerate(s for s in rows if s["f"] == "send" and s["seq"] in copied):
        top += 1
        rows.append({**send, "process": "consumer-0", "f": "poll", "op_id": 60_000 + n, "offset": top,
                     "invoke_ns": late, "complete_ns": late, "session": 1, "record_run": h.RUN})
    return rows, start + 1


def _statuses(rows: list[dict]) -> dict[str, str]:
    verdicts = verdicts_of(h.frame(rows), RULES)
    return verdicts.loc[["duplicate", "nonmonotonic-send"], "status"].to_dict()


def test_one_batch_is_not_spent_by_duplicates_and_again_by_reorderings():
    """audit22 M1 (the audit's demo): one failed batch of 2 records, 2 duplicated records and 2 other records
    that landed above their next send: 4 resends of 4 records from a batch that resent at most 2. At least one
    class FAILs, and its evidence says its retries went to others; a batch of 4 ALLOWs both. Mutation tried:
    each class allotted apart (as before): both ALLOWED, this test fails."""
    rows, at = _reordered_and_duplicated(2, 2)
    statuses = _statuses([*rows, _retry(2, at)])
    assert "FAIL" in statuses.values(), statuses
    verdicts = verdicts_of(h.frame([*rows, _retry(2, at)]), RULES)
    failed = verdicts[verdicts["status"] == "FAIL"]
    assert failed["evidence"].str.contains("all given to other records").all(), failed.to_dict("index")
    assert _statuses([*rows, _retry(4, at)]) == {"duplicate": "ALLOWED", "nonmonotonic-send": "ALLOWED"}


def test_one_batch_of_two_explains_one_duplicate_and_one_reordering_of_other_records():
    """Different records share one batch's capacity, unit by unit: a batch of 2 resends the duplicated record
    and the earlier send of the reordering (ALLOWED both); a batch of 1 resends only one of them (a FAIL).
    Mutation tried: each class allotted apart: the batch of 1 ALLOWs both, this test fails."""
    rows, at = _reordered_and_duplicated(1, 1)
    assert _statuses([*rows, _retry(2, at)]) == {"duplicate": "ALLOWED", "nonmonotonic-send": "ALLOWED"}
    assert "FAIL" in _statuses([*rows, _retry(1, at)]).values()


def test_a_record_that_duplicates_and_reorders_uses_one_resend():
    """One resend of the earlier send both lands its second copy and puts it above the next send: a batch of
    one record explains both (ALLOWED); the same history without the retry FAILs both. Mutation tried: the
    two classes' resends of one record summed (2 needed): both FAIL, this test fails."""
    rows, at = _reordered_and_duplicated(1, 0, earlier_duplicated=True)
    assert _statuses([*rows, _retry(1, at)]) == {"duplicate": "ALLOWED", "nonmonotonic-send": "ALLOWED"}
    assert _statuses(rows) == {"duplicate": "FAIL", "nonmonotonic-send": "FAIL"}


def test_a_batch_size_in_compact_json_still_bounds():
    """audit22 L4: a retry row whose detail is compact JSON ({"messages":3}, as another encoder writes) is a
    batch of 3, not unbounded: four duplicates behind it FAIL one, as with DebugLog's own spacing (the row's
    line names no size here, so only the detail does). Mutations tried: the old regex '"messages": (\\d+)':
    ALLOWED; the detail ignored: FAIL 4; this test fails on both."""
    rows, at = _pipelined(4)
    compact = {**_retry(3, at), "detail": '{"messages":3,"actions":"Retry"}', "error": "librdkafka: a failed batch"}
    row = verdicts_of(h.frame([*rows, compact]), RULES).loc["duplicate"]
    assert row["status"] == "FAIL" and row["measured"] == "1", row.to_dict()


def test_a_librdkafka_row_without_a_readable_size_explains_nothing():
    """A librdkafka retry row should name its batch's size: one whose detail names none readable takes it from
    its MSGSET line, and one whose line is cut before the size explains nothing (FAIL), never everything;
    kafka-python's and franz-go's rows, which never name a size, stay unbounded (ALLOWED). Mutation tried: an
    unreadable size read as unbounded: ALLOWED, this test fails."""
    rows, at = _pipelined(2)
    no_detail = {**_retry(1, at), "detail": "not json"}
    assert verdicts_of(h.frame([*rows, no_detail]), RULES).loc["duplicate", "measured"] == "1"  # size 1 from the line
    cut = {**_retry(1, at), "detail": "", "error": "librdkafka: [thrd:127.0.0.1:33001/1]: 127.0.0.1:33001/1: "
                                                     f"{h.TOPIC} [0]: MessageSet wi"}
    assert verdicts_of(h.frame([*rows, cut]), RULES).loc["duplicate", "status"] == "FAIL"
    franz = {**_retry(1, at), "detail": "", "error": "WARN franz-go: batch in a produce request failed"}
    assert verdicts_of(h.frame([*rows, franz]), RULES).loc["duplicate", "status"] == "ALLOWED"
