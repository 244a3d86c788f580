"""`k6suite check` holds a saved history to the rules of a run (issue 16, item 4), and a record read
back is compared with what was sent (item 5). Planted histories; each test names its item."""

from __future__ import annotations

import json
import random

import pytest

from k6suite_lib import history
from k6suite_lib.checkers import CheckSpec, compose, recheck
from k6suite_lib.checkers.readback import PASSED_ACKS, REACHED
from k6suite_lib.cli import main
from k6suite_lib.history import View
from tests import histories as h


def _clean() -> list[dict]:
    return h.clean_rows(h.Spec(2, 2, 30, 1), random.Random(16))


def _lost_write() -> list[dict]:
    rows, _ = h.plant_lost_write(_clean(), 2, random.Random(4))
    return rows


def _save(tmp_path, rows: list[dict], meta: dict) -> str:
    return str(history.save(h.frame(rows), tmp_path / "history-x.parquet", meta={"run_id": h.RUN, **meta}))


def _status(table, check: str) -> str:
    return table.set_index("check").loc[check, "status"]


def test_16_4a_waivers_stored_in_a_history_are_refused(tmp_path, capsys):
    """Mutation tried: passing the stored not_promised through: the lost write reads NOT PROMISED
    and the re-check passes, so this test fails."""
    checks = [CheckSpec("anomalies").to_json(), CheckSpec("readback").to_json()]
    path = _save(tmp_path, _lost_write(), {"checks": checks, "not_promised": {"F3": "x", "NFR1": "y"}})
    with pytest.raises(ValueError, match="waives F3, NFR1"):
        recheck(path)
    assert main(["check", path]) == 2
    assert "cannot be waived" in capsys.readouterr().err
    fine = _save(tmp_path, _clean(), {"checks": checks, "not_promised": {"F1.2": "lists every broker"}})
    assert main(["check", fine]) == 0


def test_16_4b_a_stored_composition_without_the_core_checks_is_completed(tmp_path, capsys):
    """Mutation tried: running only the stored composition: 'PASS: 0 of 1 checks failed' and this
    test fails."""
    path = _save(tmp_path, _lost_write(), {"checks": [CheckSpec("client-errors").to_json()]})
    _, table = recheck(path)
    assert _status(table, "lost-write") == "FAIL" and _status(table, PASSED_ACKS) == "PASS"
    assert main(["check", path]) == 1
    assert "completed with anomalies, readback, storage" in capsys.readouterr().err


def test_16_4c_a_history_without_a_composition_gets_the_full_default(tmp_path):
    """The read-back never passed an acknowledged offset (its record was read elsewhere, by a live
    consumer): a FAIL. Mutation tried: the format-1 rule (anomalies alone): no read-back row at all."""
    rows = _clean()
    top = max(r["offset"] for r in rows if r["f"] == "send" and r["partition"] == 0)
    rows = [r for r in rows if not (r["process"] == "readback" and r["f"] == "poll" and r["partition"] == 0
                                    and r["offset"] == top)]
    for row in rows:
        if row["f"] == "phase":
            detail = json.loads(row["detail"])
            detail["positions"]["0"] = top
            row["detail"] = json.dumps(detail)
    t = h._late(rows)
    rows += [{"run_id": h.RUN, "op_id": -1, "process": "nemesis", "f": "fault", "type": "ok", "invoke_ns": t + i,
              "complete_ns": t + i, "wall_ns": t, "detail": json.dumps({"fault": "broker-kill", "phase": phase})}
             for i, phase in enumerate(("start", "end"))]
    _, table = recheck(_save(tmp_path, rows, {"format_version": 1, "checker": {"min_acked": 1}}))
    assert _status(table, PASSED_ACKS) == "FAIL"
    assert _status(table, "every fault took effect") == "PASS"
    assert "acknowledgements resume after each fault ends" in set(table["check"])


def test_16_5_body_mismatch_is_corrupted():
    """Mutation tried: matching reads to sends by (producer, seq) alone: 0 corrupted, this test fails."""
    rows = _clean()
    reads = [r for r in rows if r["f"] == "poll" and r["process"] == "readback"]
    reads[0]["checksum"] = 12345
    reads[1]["value_len"] = 11
    reads[2]["key"] = "another-key"
    table = compose(View(h.frame(rows)), [CheckSpec("anomalies")]).set_index("check")
    assert table.loc["corrupted", "status"] == "FAIL" and table.loc["corrupted", "measured"] == "3"
    # the record as written was never read back: its identity alone does not make it returned
    assert table.loc["readback-missing", "measured"] == "3"
    clean = compose(View(h.frame(_clean())), [CheckSpec("anomalies")]).set_index("check")
    assert clean.loc["corrupted", "status"] == "PASS"


def test_16_5_a_send_without_checksum_or_length_is_not_compared_on_them():
    """Histories of other tools may not record a checksum (-1) or length (0) of their sends."""
    rows = _clean()
    for row in rows:
        if row["f"] == "send":
            row.update(checksum=-1, value_len=0)
    table = compose(View(h.frame(rows)), [CheckSpec("anomalies")]).set_index("check")
    assert table.loc["corrupted", "status"] == "PASS"


def test_16_4_a_stored_wholesale_duplicate_allowance_needs_evidence_again(tmp_path):
    """Fault-scenario histories recorded before duplicates needed their producer's own retry stored
    ``allowed: [duplicate]``; a run no longer grants that, so a re-check does not either: without a
    recorded retry the duplicate FAILs. Mutation tried: returning the stored spec unchanged: the
    duplicate reads ALLOWED and this test fails."""
    rows, _ = h.plant_duplicate(_clean(), 1, random.Random(7))
    checks = [CheckSpec("anomalies", {"allowed": ["duplicate", "nonmonotonic-send"]}).to_json(),
              CheckSpec("readback").to_json()]
    _, table = recheck(_save(tmp_path, rows, {"checks": checks}))
    assert _status(table, "duplicate") == "FAIL"
    assert _status(table, "nonmonotonic-send") in ("PASS", "ALLOWED")


@pytest.mark.parametrize(("meta", "status"), [
    ({"client": "librdkafka", "idempotent": False}, "FAIL"),
    ({"client": "librdkafka", "idempotent": True}, "FAIL"),
    ({"client": "kafka-python", "idempotent": False}, "FAIL"),
    ({"client": "librdkafka", "idempotent": False, "max_in_flight": 1}, "FAIL"),
])
def test_a_librdkafka_history_from_before_max_in_flight_may_reorder(tmp_path, meta, status):
    """Histories written before their metadata said how many requests the producer had in flight stored
    kafka-python's rules for every client; a re-check of one that librdkafka wrote without idempotence
    (1,000,000 in flight by default) judges its reordering as a run now does: FAIL without a retry of the
    earlier send (ALLOWED with one: tests/test_audit21_retries.py). A history that names its limit, or
    another client's, keeps its stored rules."""
    rows, _ = h.plant_nonmonotonic_send(_clean(), 1, random.Random(8))
    checks = [CheckSpec("anomalies").to_json(), CheckSpec("readback").to_json()]
    _, table = recheck(_save(tmp_path, rows, {"checks": checks, **meta}))
    assert _status(table, "nonmonotonic-send") == status


def test_audit_4_check_exit_3_when_nothing_judged(tmp_path, capsys):
    """Audit finding 4: `k6suite check` said PASS (exit 0) for a history whose core checks judged
    nothing. Mutation tried: the verdict line and exit code from the FAIL count alone (as before): the
    history without a read-back exits 0 and this test fails."""
    checks = [CheckSpec("anomalies").to_json(), CheckSpec("readback").to_json()]
    no_readback = [r for r in _clean() if r["process"] != "readback"]
    path = _save(tmp_path, no_readback, {"checks": checks})
    assert main(["check", path]) == 3
    printed = capsys.readouterr().out
    assert "NOT TESTED: 0 of 23 checks failed; core checks not tested: readback-missing" in printed
    assert REACHED in printed.splitlines()[-1]
    assert main(["check", path, "--json"]) == 3
    capsys.readouterr()
    # the audit's repro: one phase row, no operation, a stored min_acked of 0 (or --min-acked 0) is refused
    phase_only = [r for r in _clean() if r["f"] == "phase"]
    zero = [CheckSpec("anomalies", {"min_acked": 0}).to_json(), CheckSpec("readback").to_json()]
    assert main(["check", _save(tmp_path, phase_only, {"checks": zero})]) == 2
    assert "min_acked must be at least 1, got 0" in capsys.readouterr().err
    assert main(["check", _save(tmp_path, phase_only, {"checks": checks}), "--min-acked", "0"]) == 2
    assert "min_acked must be at least 1, got 0" in capsys.readouterr().err
    assert main(["check", _save(tmp_path, phase_only, {"checks": checks})]) == 1  # acknowledged sends 0 >= 1 FAILs
    assert main(["check", _save(tmp_path, _clean(), {"checks": checks})]) == 0  # a judged clean history passes
