"""Acknowledged records the read-back did not return, classified (issue 21): lost (not in storage),
unreadable (intact in storage, never served), not reached (the harness stopped first) and, without a
readable store, missing. Planted histories with storage listings; each test names its item.
"""

from __future__ import annotations

import json
import random

import pandas as pd

from k6suite_lib.checkers import CheckSpec, compose
from k6suite_lib.checkers.anomalies import find_anomalies
from k6suite_lib.checkers.storage import (
    ACKED_STORED,
    EQUALS_READBACK,
    LOST,
    MISSING,
    NOT_REACHED,
    NOTHING_ELSE,
    UNREADABLE,
)
from k6suite_lib.history import View
from k6suite_lib.storage import OBJECT_COLUMNS, StorageListing
from k6suite_lib.workload.readback import probe_points
from tests import histories as h

STORE_REASON = "the kafka target keeps its data on the brokers' disks: there is no object store to read"


def _stored(rows: list[dict]) -> pd.DataFrame:
    return h.stored_records(rows, per_partition=True)


def _judge(tmp_path, rows: list[dict], stored: pd.DataFrame | None) -> pd.DataFrame:
    """The storage checker's table, with a listing saved beside the history (None: no store)."""
    if stored is None:
        view = View(h.frame(rows), {"run_id": h.RUN})
        return compose(view, [CheckSpec("storage", {"unavailable": STORE_REASON})]).set_index("check")
    objects = pd.DataFrame(columns=list(OBJECT_COLUMNS)).astype({c: d for c, (d, _) in OBJECT_COLUMNS.items()})
    StorageListing(records=stored, objects=objects, errors=[], meta={"system": "kafscale"}).save(
        tmp_path / "storage-x.parquet")
    view = View(h.frame(rows), {"run_id": h.RUN, "storage": "storage-x.parquet"}, sidecar_dir=tmp_path)
    return compose(view, [CheckSpec("storage")]).set_index("check")


def _clean() -> list[dict]:
    return h.clean_rows(h.Spec(2, 2, 40, 1), random.Random(21))


def _stop_readback(rows: list[dict], partition: int, at: int, timed_out: bool) -> list[dict]:
    """The read-back of `partition` returned nothing from offset `at` on, and stopped there: stalled
    (the system's doing) or timed out (the harness's). Live consumers still read everything."""
    kept = [r for r in rows if not (r["f"] == "poll" and r["process"] == "readback" and r["partition"] == partition
                                    and r["offset"] >= at)]
    for row in kept:
        if row["f"] == "phase" and json.loads(row["detail"]).get("phase") == "readback-end":
            detail = json.loads(row["detail"])
            detail["positions"][str(partition)] = at
            detail.update(timed_out=timed_out, stalled=not timed_out, elapsed_s=30.0)
            row["detail"] = json.dumps(detail)
    return kept


def _acked_from(rows: list[dict], partition: int, at: int) -> int:
    return sum(1 for r in rows if r["f"] == "send" and r["partition"] == partition and r["offset"] >= at)


def _probe(rows: list[dict], partition: int, start: int, reached: int, session: int = 2) -> list[dict]:
    """A read-back probe seeking to `start` that was served up to `reached` (exclusive)."""
    sends = {r["offset"]: r for r in rows if r["f"] == "send" and r["partition"] == partition}
    t = h._late(rows)
    added = [{**sends[o], "process": "readback", "f": "poll", "op_id": h._fresh_op(rows), "invoke_ns": t,
              "complete_ns": t, "record_run": h.RUN, "session": session} for o in range(start, reached)]
    added.append({"run_id": h.RUN, "op_id": h._fresh_op(rows) + 1, "process": "workload", "f": "phase",
                  "type": "ok", "invoke_ns": t + 1, "complete_ns": t + 1, "wall_ns": t, "topic": h.TOPIC,
                  "detail": json.dumps({"phase": "readback-probe", "partition": partition, "session": session,
                                        "start": start, "stop": start + 100, "reached": reached,
                                        "served": reached - start, "reason": "nothing new for 3 s"})})
    return [*rows, *added]


def test_21_1_clean_history_has_no_class_and_passes(tmp_path):
    rows = _clean()
    table = _judge(tmp_path, rows, _stored(rows))
    assert table.loc[LOST, "status"] == "PASS" and table.loc[UNREADABLE, "status"] == "PASS"
    assert NOT_REACHED not in table.index and MISSING not in table.index


def test_21_1_unreadable_class(tmp_path):
    """Mutation tried: classifying every unread record as lost (ignoring storage): this test fails."""
    rows = _stop_readback(_clean(), partition=0, at=3, timed_out=False)
    table = _judge(tmp_path, rows, _stored(rows))
    unread = _acked_from(rows, 0, 3)
    assert unread > 0
    assert table.loc[UNREADABLE, "status"] == "FAIL" and table.loc[UNREADABLE, "measured"] == str(unread)
    assert table.loc[UNREADABLE, "requirement"] == "F2 / F3"
    assert f"{unread} of them read once by a live consumer" in table.loc[UNREADABLE, "evidence"]
    assert table.loc[LOST, "status"] == "PASS"
    assert NOT_REACHED not in table.index


def test_21_1_lost_class(tmp_path):
    """Mutation tried: matching storage on identity only (not position): the moved record passes as
    held and this test fails."""
    rows = _stop_readback(_clean(), partition=1, at=2, timed_out=False)
    stored = _stored(rows)
    gone = (stored["partition"] == 1) & (stored["offset"] >= 4)
    moved = (stored["partition"] == 1) & (stored["offset"] == 2)
    stored.loc[moved, "offset"] = 999  # its identity survives elsewhere, not at its acknowledged position
    stored = stored[~gone]
    table = _judge(tmp_path, rows, stored)
    lost = _acked_from(rows, 1, 4) + 1
    assert table.loc[LOST, "status"] == "FAIL" and table.loc[LOST, "measured"] == str(lost)
    assert table.loc[LOST, "requirement"] == "F3 / F6"
    assert table.loc[UNREADABLE, "status"] == "FAIL" and table.loc[UNREADABLE, "measured"] == "1"  # offset 3
    assert "share their offset" not in table.loc[UNREADABLE, "evidence"]
    twice = pd.concat([stored, stored[(stored["partition"] == 1) & (stored["offset"] == 3)].assign(seq=999)])
    crowded = _judge(tmp_path, rows, twice)
    assert "1 of them share their offset in storage with another record" in crowded.loc[UNREADABLE, "evidence"]


def test_21_1_not_reached_class(tmp_path):
    """Mutation tried: treating a timed-out read-back like a stalled one: the records are called
    unreadable and this test fails."""
    rows = _stop_readback(_clean(), partition=0, at=3, timed_out=True)
    table = _judge(tmp_path, rows, _stored(rows))
    unread = _acked_from(rows, 0, 3)
    row = table.loc[NOT_REACHED]
    assert row["status"] == "NOT TESTED" and str(unread) in row["evidence"] and "timed out" in row["evidence"]
    assert table.loc[UNREADABLE, "status"] == "NOT TESTED"  # none found, but not all were asked for
    assert table.loc[LOST, "status"] == "PASS"


def test_21_1_not_reached_records_missing_from_storage_are_still_lost(tmp_path):
    rows = _stop_readback(_clean(), partition=0, at=3, timed_out=True)
    stored = _stored(rows)
    table = _judge(tmp_path, rows, stored[~((stored["partition"] == 0) & (stored["offset"] >= 3))])
    assert table.loc[LOST, "status"] == "FAIL" and table.loc[LOST, "measured"] == str(_acked_from(rows, 0, 3))
    assert NOT_REACHED not in table.index


def test_21_1_missing_class_without_a_store(tmp_path):
    """Mutation tried: judging lost as 0 without a store (no listing means nothing missing from it):
    lost would PASS and this test fails."""
    rows = _stop_readback(_clean(), partition=0, at=3, timed_out=False)
    table = _judge(tmp_path, rows, None)
    unread = _acked_from(rows, 0, 3)
    assert table.loc[MISSING, "status"] == "FAIL" and table.loc[MISSING, "measured"] == str(unread)
    assert "cannot be told from unreadable" in table.loc[MISSING, "evidence"]
    for name in (LOST, UNREADABLE):
        assert table.loc[name, "status"] == "NOT TESTED" and "cannot be told" in table.loc[name, "evidence"]


def test_21_1_without_a_store_a_complete_read_back_proves_nothing_lost(tmp_path):
    table = _judge(tmp_path, _clean(), None)
    assert {table.loc[n, "status"] for n in (LOST, UNREADABLE, MISSING)} == {"PASS"}


def test_21_2_probe_points_spread_over_the_unread_range():
    assert probe_points(163, 1117) == [163, 401, 640, 878]
    assert probe_points(5, 7) == [5, 6]
    assert probe_points(7, 7) == []


def test_21_2_probes_decide_which_offsets_are_served_and_do_not_extend_the_sequential_reach(tmp_path):
    """A stalled read-back, then a probe served offsets 8..10 of partition 0. Mutation tried: letting
    probe reads count as the sequential reach: position-mismatch counts offsets 3..7 as passed and
    found absent, and this test fails."""
    rows = _probe(_stop_readback(_clean(), partition=0, at=3, timed_out=False), partition=0, start=8, reached=11)
    view = View(h.frame(rows))
    found, _ = find_anomalies(view)
    assert len(found["position-mismatch"]) == 0
    missing = found["readback-missing"]
    assert set(missing.loc[missing["partition"] == 0, "offset"]) == set(range(3, 8)) | set(
        range(11, 3 + _acked_from(rows, 0, 3)))
    table = _judge(tmp_path, rows, _stored(rows))
    assert table.loc[UNREADABLE, "measured"] == str(len(missing))


def test_21_2_a_probe_asks_for_offsets_a_timed_out_read_back_never_reached(tmp_path):
    """Timed out at 3; a probe at 8 was served nothing: offset 8 was asked for and never served
    (unreadable), the rest not reached. Mutation tried: ignoring probes' ranges: offset 8 is called
    not reached and this test fails."""
    rows = _probe(_stop_readback(_clean(), partition=0, at=3, timed_out=True), partition=0, start=8, reached=8)
    table = _judge(tmp_path, rows, _stored(rows))
    assert table.loc[UNREADABLE, "status"] == "FAIL" and table.loc[UNREADABLE, "measured"] == "1"
    assert table.loc[NOT_REACHED, "status"] == "NOT TESTED"
    assert str(_acked_from(rows, 0, 3) - 1) in table.loc[NOT_REACHED, "evidence"]


NOT_READ = "not read: the read's time budget ran out"


def _judge_objects(tmp_path, rows: list[dict], stored: pd.DataFrame,
                   unread: dict[int, tuple[int, int | None]]) -> pd.DataFrame:
    """The storage checker's table over a listing of one segment per partition from offset 0, and per
    partition in `unread` a segment over offsets [start, end) whose bytes the read's budget left unread
    (end None: to the partition's end; else a read segment follows from end). The listing's errors are
    what decode_objects gives."""
    segments = []
    for partition, held in stored.groupby("partition"):
        start, end = unread.get(partition, (None, None))
        bases = [0] if start is None else [0, start] if end is None else [0, start, end]
        for base, upto in zip(bases, [*bases[1:], None], strict=True):
            mine = held[(held["offset"] >= base) & (held["offset"] < (upto if upto is not None else 1 << 62))]
            read = base != start
            segments.append({"partition": partition, "base_offset": base, "fetched": read, "decoded_ok": read,
                             "records": len(mine) if read else 0, "error": "" if read else NOT_READ,
                             "last_offset": int(mine["offset"].max()) if read and len(mine) else -1})
            stored = stored.drop(index=[] if read else mine.index)
    objects = pd.DataFrame([{"object_key": f"default/t/{s['partition']}/segment-{s['base_offset']:020d}.kfs",
                             "topic": "t", "kind": "segment", "size": 100, "last_modified": 0, **s} for s in segments],
                           columns=list(OBJECT_COLUMNS)).astype({c: d for c, (d, _) in OBJECT_COLUMNS.items()})
    errors = [f"{r.object_key}: {r.error}" for r in objects.itertuples() if r.error]
    StorageListing(records=stored, objects=objects, errors=errors, meta={"system": "kafscale"}).save(
        tmp_path / "storage-x.parquet")
    view = View(h.frame(rows), {"run_id": h.RUN, "storage": "storage-x.parquet"}, sidecar_dir=tmp_path)
    return compose(view, [CheckSpec("storage")]).set_index("check")


def test_audit_1_unread_object_is_not_loss(tmp_path):
    """Audit finding 1: partition 0's segment from offset 1 was not read (the listing's budget ran out)
    and the read-back stalled at 3. Nothing is known lost; what the segment would decide is NOT TESTED
    with the object named, and the records the system did not serve are missing (F3 broken either way).
    Mutation tried: ignoring objects not read (the checker before this fix): stored, lost, equality and
    nothing-else FAIL on records nobody read, and this test fails."""
    rows = _stop_readback(_clean(), partition=0, at=3, timed_out=False)
    table = _judge_objects(tmp_path, rows, _stored(rows), unread={0: (1, None)})
    key = "default/t/0/segment-00000000000000000001.kfs"
    unread = _acked_from(rows, 0, 3)
    for name in (ACKED_STORED, NOTHING_ELSE, EQUALS_READBACK):
        assert table.loc[name, "status"] == "NOT TESTED", table.loc[name]
        assert f"1 storage objects not read: {key} ({NOT_READ})" in table.loc[name, "evidence"]
    assert f"{_acked_from(rows, 0, 1)} acknowledged records in them" in table.loc[ACKED_STORED, "evidence"]
    for name in (LOST, UNREADABLE):
        assert table.loc[name, "status"] == "NOT TESTED" and "cannot be told" in table.loc[name, "evidence"]
    assert table.loc[MISSING, "status"] == "FAIL" and table.loc[MISSING, "measured"] == str(unread)
    assert key in table.loc[MISSING, "evidence"]
    assert NOT_REACHED not in table.index


def test_audit_1_what_was_read_is_still_judged(tmp_path):
    """Beside objects not read (partition 0 from offset 3; partition 1's offsets 2 and 3, a read segment
    from 4 after it), a record gone from a read object is lost, one stored twice or never sent fails, and
    the read-back still has to equal what was read; the read-back timed out (at 3 of partition 0, 5 of
    1), so partition 0's unread records were not reached and missing is NOT TESTED. Mutation tried: an
    object not read covering every offset above its base (ignoring the read segment after it): p1@5 is
    undecided, lost is NOT TESTED and this test fails."""
    rows = _stop_readback(_stop_readback(_clean(), partition=0, at=3, timed_out=True), partition=1, at=5,
                          timed_out=True)
    stored = _stored(rows)
    gone = (stored["partition"] == 1) & (stored["offset"] == 5)
    stranger = stored[(stored["partition"] == 1) & (stored["offset"] == 6)].assign(seq=999)
    table = _judge_objects(tmp_path, rows, pd.concat([stored[~gone], stranger], ignore_index=True),
                           unread={0: (3, None), 1: (2, 4)})
    assert table.loc[ACKED_STORED, "status"] == "FAIL" and table.loc[ACKED_STORED, "measured"] == "1"
    assert "p1@5" in table.loc[ACKED_STORED, "evidence"]
    assert "2 storage objects not read" in table.loc[ACKED_STORED, "evidence"]
    assert f"{_acked_from(rows, 0, 3) + 2} acknowledged records in them" in table.loc[ACKED_STORED, "evidence"]
    assert table.loc[NOTHING_ELSE, "status"] == "FAIL" and table.loc[NOTHING_ELSE, "measured"] == "2"
    assert "0 objects undecodable" in table.loc[NOTHING_ELSE, "evidence"]
    equals = table.loc[EQUALS_READBACK]  # the stranger, and what the read-back did not reach on partition 1
    assert equals["status"] == "FAIL" and equals["measured"] == str(1 + _acked_from(rows, 1, 6))
    assert "2 records read back at offsets they may hold were not compared" in equals["evidence"]
    assert table.loc[LOST, "status"] == "FAIL" and table.loc[LOST, "measured"] == "1"
    assert "not read back whose storage object was not read" in table.loc[LOST, "evidence"]
    assert table.loc[UNREADABLE, "status"] == "NOT TESTED"
    assert table.loc[MISSING, "status"] == "NOT TESTED" and "not reached" in table.loc[MISSING, "evidence"]
    assert table.loc[NOT_REACHED, "status"] == "NOT TESTED"


def test_audit_9_missing_not_pass_when_all_not_reached(tmp_path):
    """Audit finding 9: no store, the read-back timed out at offset 3 of partition 0: every unread
    record was not reached, so none was judged missing. Mutation tried: the guard only for unreadable
    (the checker before this fix): missing PASSes with 0 and this test fails."""
    rows = _stop_readback(_clean(), partition=0, at=3, timed_out=True)
    table = _judge(tmp_path, rows, None)
    assert _acked_from(rows, 0, 3) > 0
    for name in (LOST, UNREADABLE, MISSING, NOT_REACHED):
        assert table.loc[name, "status"] == "NOT TESTED", table.loc[name]
    assert "not reached" in table.loc[MISSING, "evidence"] and "timed out" in table.loc[MISSING, "evidence"]
