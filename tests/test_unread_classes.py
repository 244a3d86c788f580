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
from k6suite_lib.checkers.storage import LOST, MISSING, NOT_REACHED, UNREADABLE
from k6suite_lib.history import View
from k6suite_lib.storage import COLUMNS, OBJECT_COLUMNS, StorageListing
from k6suite_lib.workload.readback import probe_points
from tests import histories as h

STORE_REASON = "the kafka target keeps its data on the brokers' disks: there is no object store to read"


def _stored(rows: list[dict]) -> pd.DataFrame:
    """What a faithful object store holds: every acknowledged record, intact, at its position."""
    sends = [r for r in rows if r["f"] == "send" and r["type"] == "ok"]
    records = pd.DataFrame([{"object_key": f"default/t/{s['partition']}/segment-00000000000000000000.kfs",
                             "topic": "t", "partition": s["partition"], "offset": s["offset"],
                             "producer": s["producer"], "seq": s["seq"], "checksum": 0, "corrupt": False,
                             "run_id": h.RUN, "batch_crc_ok": True, "segment_ok": True, "value_len": 10,
                             "last_modified": 0} for s in sends], columns=list(COLUMNS))
    return records.astype({c: dtype for c, (dtype, _) in COLUMNS.items()})


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
