"""`k6suite compare`: planted changes between run summaries are found, identical runs show none, and
two real runs of the same build regress nothing while a planted PASS->FAIL copy of one exits 1."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from k6suite_lib import compare
from k6suite_lib.browser import check_report
from k6suite_lib.cli import main
from tests.conftest import port_base_for, write_profile

COMPARE_PORT_BASE = port_base_for(21200)
GAP = "longest gap between acknowledgements per partition, from the fault's start"


def _verdict(variant: str, check: str, status: str, measured: str = "0", requirement: str = "F2.1") -> dict:
    return {"variant": variant, "check": check, "requirement": requirement, "measured": measured,
            "threshold": "== 0", "status": status, "passed": None if status == "NOT TESTED" else status != "FAIL",
            "evidence": f"{check} {status}"}


def _summary(run_id: str, verdicts: dict[str, list[dict]], latency_p99: float = 80.0,
             build: dict | None = None) -> dict:
    scenarios = []
    for sid, rows in verdicts.items():
        measurements = {f"{v}.latency_ms": [{"index": "publish_ms", "count": 10, "p99": latency_p99},
                                            {"index": "publish_delay_ms", "count": 10, "p99": 1.0}]
                        for v in {r["variant"] for r in rows}}
        scenarios.append({"scenario": sid, "folder": f"{sid}-x", "notebook_html": "executed.html", "verdicts": rows,
                          "measurements": measurements})
    statuses = [v["status"] for rows in verdicts.values() for v in rows]
    summary = {"run_id": run_id, "profile": "local", "system": "kafscale", "tier": "smoke",
               "passed": "FAIL" not in statuses,
               "counts": {s: statuses.count(s) for s in ("PASS", "FAIL", "ALLOWED", "NOT TESTED", "NOT PROMISED")},
               "scenarios": scenarios}
    if build is not None:
        summary["build"] = build
    return summary


def _write(root: Path, summary: dict) -> Path:
    path = root / summary["run_id"]
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps(summary))
    return path


BASE = {"S3": [_verdict("overlap", "lost-write", "PASS"), _verdict("overlap", "duplicate", "PASS"),
               _verdict("overlap", "unseen", "FAIL", "3"), _verdict("consumer-group", "committed offsets", "PASS"),
               _verdict("topic-auto-create", "acknowledged sends", "FAIL", "0")],
        "S4": [_verdict(f"kill#{i}", GAP, "PASS", f"{gap} s", "NFR1") for i, gap in ((1, 2.0), (2, 2.4), (3, 2.2))]}


def test_change_names_every_transition():
    assert compare.change("PASS", "FAIL") == compare.REGRESSED
    assert compare.change("ALLOWED", "FAIL") == compare.REGRESSED
    assert compare.change("NOT TESTED", "FAIL") == compare.NEWLY_FAILING
    assert compare.change(None, "FAIL") == compare.NEWLY_FAILING
    assert compare.change("FAIL", "PASS") == compare.FIXED
    assert compare.change("FAIL", "FAIL") == compare.STILL_FAILING
    assert compare.change("PASS", "NOT TESTED") == compare.NEWLY_NOT_TESTED
    assert compare.change("FAIL", None) == compare.NEWLY_NOT_TESTED
    for same in (("PASS", "PASS"), ("NOT TESTED", "NOT TESTED"), ("NOT PROMISED", "NOT PROMISED"), ("PASS", "ALLOWED"),
                 (None, "PASS")):
        assert compare.change(*same) == "", same


def test_identical_runs_change_nothing(tmp_path):
    a = _write(tmp_path, _summary("a", BASE))
    b = _write(tmp_path, _summary("b", BASE))
    result = compare.compare(compare.load_columns([str(a), str(b)]), b)
    assert result["exit_code"] == 0 and not result["regressed"]
    tally = result["tally"]["B"]
    assert tally[compare.STILL_FAILING] == 2 and tally["moved"] == 0
    assert sum(tally[w] for w in compare.CHANGES if w != compare.STILL_FAILING) == 0


def test_planted_changes_are_found_and_gate(tmp_path, capsys):
    after = copy.deepcopy(BASE)
    after["S3"][0] = _verdict("overlap", "lost-write", "FAIL", "7")  # regressed
    after["S3"][2] = _verdict("overlap", "unseen", "PASS")  # fixed
    after["S3"][3] = _verdict("consumer-group", "committed offsets", "NOT TESTED", "n/a")  # newly not tested
    after["S4"] = [_verdict(f"kill#{i}", GAP, "PASS", f"{gap} s", "NFR1") for i, gap in ((1, 4.0), (2, 4.3), (3, 4.1))]
    a = _write(tmp_path, _summary("a", BASE))
    b = _write(tmp_path, _summary("b", after, latency_p99=400.0, build={"system": "kafscale", "version": "v1.6.0",
                                                                         "commit": "abcdef0123456789", "dirty": True}))
    assert main(["compare", str(a), str(b)]) == 1
    printed = capsys.readouterr().out
    assert "REGRESSED: S3 overlap: lost-write (PASS 0 -> FAIL 7)" in printed
    assert "FIXED: S3 overlap: unseen" in printed and "NEWLY NOT TESTED: S3 consumer-group" in printed
    assert "kafscale v1.6.0 commit abcdef012345 (dirty)" in printed  # the build the archive names
    result = json.loads((b / "compare.json").read_text())
    tally = result["tally"]["B"]
    assert (tally[compare.REGRESSED], tally[compare.FIXED], tally[compare.NEWLY_NOT_TESTED]) == (1, 1, 1)
    produce = next(q for q in result["questions"] if q["question"] == "Do clients produce and consume correctly?")
    assert produce["changes"]["B"] == compare.STILL_FAILING  # NO before (unseen), NO after (lost-write)
    moved = {(m["variant"], m["metric"]): m["changes"]["B"] for m in result["measurements"]}
    gap = moved[("kill", GAP)]  # three repeats each: the spread is their range, 0.4 s
    assert gap["spread_from"] == "repeats" and gap["tolerance"] == pytest.approx(0.4) and gap["moved"] == "worse"
    latency = moved[("overlap", "p99 publish_ms")]  # one value each: the default tolerance
    assert latency["spread_from"] == "default tolerance" and latency["moved"] == "worse"
    assert moved[("overlap", "lost-write (count)")]["moved"] == "worse"  # 0 -> 7: any change from 0 moves
    assert ("overlap", "p99 publish_delay_ms") not in moved  # only publish and end-to-end latency
    html = (b / "compare.html").read_text()
    assert "REGRESSED" in html and 'class="regressed"' in html and "../a/report.html" in html


def test_nothing_regressed_but_untested_exits_3(tmp_path):
    after = copy.deepcopy(BASE)
    after["S3"][1] = _verdict("overlap", "duplicate", "NOT TESTED", "n/a")
    a, b = _write(tmp_path, _summary("a", BASE)), _write(tmp_path, _summary("b", after))
    assert compare.compare_command([str(a), str(b)], tmp_path / "out") == 3
    assert (tmp_path / "out" / "compare.html").is_file()


# audit finding 3: a new waiver hid a FAIL and the question's NO -> NOT TESTED counted nowhere
EQUALS = "storage equals the final read-back"
WAIVED_BEFORE = {"S3": [_verdict("overlap", "lost-write", "PASS"), _verdict("overlap", "duplicate", "FAIL", "2"),
                        _verdict("overlap", EQUALS, "PASS", "0", "F6")]}
WAIVED_AFTER = {"S3": [_verdict("overlap", "lost-write", "PASS"), _verdict("overlap", "duplicate", "NOT PROMISED", "2"),
                       _verdict("overlap", EQUALS, "NOT PROMISED", "0", "F6")]}
CORRECT = "Do clients produce and consume correctly?"


def test_audit_3_new_waiver_gates(tmp_path, capsys):
    """FAIL -> NOT PROMISED and PASS -> NOT PROMISED gate like a regression. Mutation tried: change()
    without its judged -> NOT PROMISED branch: every count 0 and exit 0, so this test fails."""
    for before in ("PASS", "ALLOWED", "FAIL"):
        assert compare.change(before, "NOT PROMISED") == compare.NEWLY_NOT_PROMISED
    assert compare.change("NOT PROMISED", "FAIL") == compare.NEWLY_FAILING  # a promise newly made, and broken
    a, b = _write(tmp_path, _summary("a", WAIVED_BEFORE)), _write(tmp_path, _summary("b", WAIVED_AFTER))
    assert main(["compare", str(a), str(b)]) == 1
    printed = capsys.readouterr().out
    assert "NEWLY NOT PROMISED: S3 overlap: duplicate (FAIL 2 -> NOT PROMISED 2)" in printed
    assert "NEWLY NOT PROMISED: nothing failed, but a new waiver can hide a regression" in printed
    result = json.loads((b / "compare.json").read_text())
    assert result["tally"]["B"][compare.NEWLY_NOT_PROMISED] == 2 and result["regressed"]
    assert 'class="newlynotpromised"' in (b / "compare.html").read_text()


def test_audit_3_question_change_counts(tmp_path, capsys):
    """A question's change is tallied and decides the exit code even where no check's change does.
    Mutation tried: exit_code() reading only the checks' tally: a question YES -> NO exits 0 and this
    test fails."""
    a, b = _write(tmp_path, _summary("a", WAIVED_BEFORE)), _write(tmp_path, _summary("b", WAIVED_AFTER))
    result = compare.compare(compare.load_columns([str(a), str(b)]), b)
    question = next(q for q in result["questions"] if q["question"] == CORRECT)
    assert (question["cells"]["A"]["answer"], question["cells"]["B"]["answer"]) == ("NO", "NOT TESTED")
    assert question["changes"]["B"] == compare.NEWLY_NOT_TESTED and question["changed"]
    assert result["tally"]["B"]["questions"][compare.NEWLY_NOT_TESTED] == 1
    assert f"QUESTION NEWLY NOT TESTED: {CORRECT} (NO -> NOT TESTED)" in compare.summary_text(result)

    def questions_only(what: str) -> dict:
        return {"B": {**dict.fromkeys([*compare.CHANGES, "moved"], 0),
                      "questions": {**dict.fromkeys(compare.CHANGES, 0), what: 1}}}

    assert compare.exit_code(questions_only(compare.change("PASS", "FAIL"))) == 1  # YES -> NO
    assert compare.exit_code(questions_only(compare.change("PASS", "NOT TESTED"))) == 3  # YES -> NOT TESTED
    assert compare.exit_code(questions_only(compare.change("FAIL", "NOT TESTED"))) == 3  # NO -> NOT TESTED
    assert compare.exit_code(questions_only(compare.change("PASS", "NOT PROMISED"))) == 1  # YES -> NOT PROMISED
    assert compare.exit_code(questions_only(compare.STILL_FAILING)) == 0
    assert compare.exit_code(questions_only(compare.FIXED)) == 0


def test_measurements_within_their_spread_do_not_move():
    assert compare.moved([2.0, 2.4, 2.2], [2.3, 2.1, 2.5], "s")["moved"] == ""
    assert compare.moved([100.0], [140.0], "ms")["moved"] == ""  # within half the baseline
    assert compare.moved([10.0], [25.0], "ms")["moved"] == ""  # within the 20 ms floor
    assert compare.moved([100.0], [30.0], "ms")["moved"] == "better"
    assert compare.moved([0.0], [0.0], "count")["moved"] == ""


def test_matrix_columns_are_compared_with_the_first(tmp_path):
    run = tmp_path / "matrix-run"
    after = copy.deepcopy(BASE)
    after["S3"][1] = _verdict("overlap", "duplicate", "FAIL", "2")
    for name, verdicts in (("v150", BASE), ("v160", after), ("main", BASE)):
        (run / name).mkdir(parents=True)
        (run / name / "summary.json").write_text(json.dumps(dict(_summary(name, verdicts), profile=name)))
    (run / "matrix.json").write_text(json.dumps({"systems": [{"profile": p} for p in ("v150", "v160", "main")]}))
    result = compare.compare(compare.load_columns([str(run)]), run)
    assert [c["key"] for c in result["columns"]] == ["v150", "v160", "main"]
    assert result["tally"]["v160"][compare.REGRESSED] == 1 and result["tally"]["main"][compare.REGRESSED] == 0
    assert result["exit_code"] == 1
    with pytest.raises(ValueError, match="matrix run"):
        compare.load_columns([str(run), str(run / "v150")])


def test_build_text_reads_what_the_archive_has():
    assert compare.build_text(None) == ""
    assert compare.build_text({"system": "kafscale", "version": "v1.5.0", "commit": None}) == "kafscale v1.5.0"
    assert compare.build_text({"system": "kafscale", "version": "v1.6.0", "label": "kafscale v1.6.0 @7aa2a11"}) == (
        "kafscale v1.6.0 @7aa2a11")
    per_system = {"kafscale": {"system": "kafscale", "source": "/src/platform", "commit": "0123456789abcdef",
                               "dirty": False}}
    assert compare.build_text(per_system) == "kafscale /src/platform commit 0123456789ab"


@pytest.mark.stack
@pytest.mark.slow
def test_two_real_runs_and_a_planted_regression(tmp_path):
    """Two real runs of S3's single-record variant on a one-broker KafScale: nothing regressed. A copy
    of the second whose summary turns one PASS into a FAIL: the regression is found and compare exits 1."""
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import run_suite
    from k6suite_lib.stack import binaries, open_stack

    profile = write_profile(tmp_path, "compare", COMPARE_PORT_BASE, 1)
    stack = open_stack(load_profile(profile), log=lambda _msg: None)
    binaries.install(systems=[stack.system], log=lambda _msg: None)
    stack.up()  # both runs on one stack: the runner leaves a stack it did not start running
    try:
        runs = [run_suite(str(profile), ["S3"], "smoke", out_root=tmp_path / "archive", cell_timeout_s=300,
                          parameters={"variants": ["single-record"]}, log=lambda _msg: None) for _ in range(2)]
    finally:
        stack.down()
    a, b = (outcome.run_dir for outcome in runs)
    verdicts = runs[1].summary["scenarios"][0]["verdicts"]
    assert {v["variant"] for v in verdicts} == {"single-record", "stack"}  # the stage's subset, nothing else
    assert main(["compare", str(a), str(b)]) == 0
    result = json.loads((b / "compare.json").read_text())
    assert not result["regressed"] and not any(result["tally"]["B"][w] for w in compare.GATING)
    seen = check_report(b / "compare.html", tmp_path / "compare.png")  # links into A's archive leave B's by design
    assert not [p for p in seen.problems() if "outside the archive" not in p], seen.problems()

    planted = tmp_path / "planted"
    shutil.copytree(b, planted)
    summary = json.loads((planted / "summary.json").read_text())
    target = next(v for v in summary["scenarios"][0]["verdicts"] if v["check"] == "lost-write")
    assert target["status"] == "PASS"
    target.update(status="FAIL", passed=False, measured="1")
    (planted / "summary.json").write_text(json.dumps(summary))
    assert main(["compare", str(a), str(planted), "--out", str(tmp_path / "cmp")]) == 1
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    regressed = [(c["variant"], c["check"]) for q in result["questions"] for c in q["checks"]
                 if c["changes"]["B"] == compare.REGRESSED]
    assert regressed == [("single-record", "lost-write")]
