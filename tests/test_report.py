"""Reports and observations from synthetic summaries: answers, JUnit mapping, markdown write-ups."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from k6suite_lib import report
from k6suite_lib.observe import next_number, observe


def _verdict(check, status, variant="v", requirement="F1"):
    return {"variant": variant, "check": check, "requirement": requirement, "measured": "1", "threshold": "== 0",
            "status": status, "passed": {"PASS": True, "FAIL": False, "ALLOWED": True}.get(status),
            "evidence": f"evidence of {check}"}


def _summary():
    return {
        "run_id": "r1", "profile": "local", "tier": "smoke", "started": 1.8e9, "duration_s": 12.0, "passed": False,
        "stack_error": "", "counts": {"PASS": 2, "FAIL": 1, "ALLOWED": 1, "NOT TESTED": 2},
        "target": {"endpoint": "127.0.0.1:29092", "cluster_id": "c1", "reachable": True},
        "scenarios": [
            {"scenario": "S1", "title": "Connectivity", "duration_s": 3, "passed": True, "folder": "S1-connectivity",
             "artifacts": ["plot.png"], "measurements": {},
             "verdicts": [_verdict("a", "PASS"), _verdict("tls", "NOT TESTED")]},
            {"scenario": "S3", "title": "Correctness", "duration_s": 9, "passed": False, "folder": "S3-correctness",
             "artifacts": [], "measurements": {},
             "verdicts": [_verdict("lost-write", "FAIL"), _verdict("duplicate", "ALLOWED"), _verdict("b", "PASS")]},
            {"scenario": "S8", "title": "Permissions", "duration_s": 0, "passed": True, "folder": "S8",
             "artifacts": [], "measurements": {}, "verdicts": [_verdict("acl", "NOT TESTED")]},
        ],
    }


def test_answers_never_show_not_tested_as_yes():
    summary = _summary()
    assert report.answer(summary, ("S1",))[0] == "YES"
    assert report.answer(summary, ("S3",))[0] == "NO"
    assert report.answer(summary, ("S4",)) == ("NOT TESTED", "S4 not run")
    assert report.answer(summary, ("S8",))[0] == "NOT TESTED"


def test_questions_count_only_their_own_checks():
    summary = _summary()
    summary["scenarios"][0]["verdicts"].append(_verdict("survives: a probe", "FAIL", requirement="F2 / NFR4"))
    endpoint = next(q for q in report.QUESTIONS if q[0].startswith("Can clients connect"))
    protocol = next(q for q in report.QUESTIONS if q[0].startswith("Does the endpoint speak"))
    assert report.answer(summary, endpoint[1], endpoint[2])[0] == "YES"
    assert report.answer(summary, protocol[1], protocol[2])[0] == "NO"


def test_broker_death_questions_need_storage_and_the_fault_itself():
    """The audit's cases: storage that lost a record, and a fault that never happened, left both S4
    questions at YES."""
    data = next(q for q in report.QUESTIONS if q[0] == "Is acknowledged data durable after broker death?")
    riding = next(q for q in report.QUESTIONS if q[0].startswith("Do clients ride through broker death"))
    summary = _summary()
    summary["scenarios"].append({"scenario": "S4", "title": "Broker chaos", "duration_s": 1, "passed": False,
                                 "folder": "S4", "artifacts": [], "measurements": {}, "verdicts": [
                                     _verdict("lost-write", "PASS"), _verdict("client errors beyond retry", "PASS"),
                                     _verdict("every acknowledged record is in storage at its position, intact",
                                              "FAIL")]})
    assert report.answer(summary, data[1], data[2])[0] == "NO"
    summary["scenarios"][-1]["verdicts"] = [_verdict("lost-write", "PASS"), _verdict("client errors beyond retry",
                                                                                     "PASS"),
                                            _verdict("every fault took effect", "FAIL")]
    assert report.answer(summary, data[1], data[2])[0] == "NO"
    assert report.answer(summary, riding[1], riding[2])[0] == "NO"


def test_21_3_durable_and_readable_are_separate_questions():
    """Records intact in storage that the system never serves break readability, not durability.
    Mutation tried: one data question for both (the old _data selector): durable reads NO, this fails."""
    from k6suite_lib.checkers.storage import LOST, UNREADABLE

    durable = next(q for q in report.QUESTIONS if q[0] == "Is acknowledged data durable after broker death?")
    readable = next(q for q in report.QUESTIONS if q[0] == "Is acknowledged data readable again after broker death?")
    summary = _summary()
    summary["scenarios"].append({"scenario": "S4", "title": "Broker chaos", "duration_s": 1, "passed": False,
                                 "folder": "S4", "artifacts": [], "measurements": {}, "verdicts": [
                                     _verdict(LOST, "PASS"), _verdict(UNREADABLE, "FAIL"),
                                     _verdict("readback-missing", "FAIL"),
                                     _verdict("every acknowledged record is in storage at its position, intact",
                                              "PASS"), _verdict("every fault took effect", "PASS")]})
    assert report.answer(summary, durable[1], durable[2])[0] == "YES"
    assert report.answer(summary, readable[1], readable[2])[0] == "NO"
    summary["scenarios"][-1]["verdicts"][0] = _verdict(LOST, "FAIL")
    assert report.answer(summary, durable[1], durable[2])[0] == "NO"
    for scenario in ("S5", "S5b"):
        asked = {q[0] for q in report.QUESTIONS if q[1] == (scenario,)}
        assert any("durable" in q for q in asked) and any("readable again" in q for q in asked)


def test_a_scenario_that_judged_nothing_answers_not_tested_despite_the_stack_check():
    """Kafka has no object store: S5 measured nothing, and the runner's "no component died" PASS alone
    answered YES to "Does data survive object-store slowness and outages?"."""
    from k6suite_lib.runner import STACK_CHECK

    summary = _summary()
    summary["scenarios"].append({"scenario": "S5", "title": "Storage", "duration_s": 0, "passed": True,
                                 "folder": "S5", "artifacts": [], "measurements": {}, "verdicts": [
                                     _verdict("storage latency and outage", "NOT TESTED"),
                                     _verdict(STACK_CHECK, "PASS", variant="stack")]})
    result, why = report.answer(summary, ("S5",))
    assert result == "NOT TESTED" and why == "evidence of storage latency and outage"


def test_junit_maps_statuses(tmp_path):
    root = ET.fromstring(report.junit_xml(_summary()))
    assert len(root.findall(".//testcase")) == 6
    assert len(root.findall(".//failure")) == 1
    assert len(root.findall(".//skipped")) == 2
    failure = root.find(".//failure")
    assert "lost-write" in failure.get("message") and failure.text == "evidence of lost-write"


def test_html_report_lists_questions_and_failures_first(tmp_path):
    page = report.html_report(_summary(), tmp_path)
    assert page.index("Critical questions") < page.index("S3 — Correctness")
    s3 = page[page.index('id="S3"'):]
    assert s3.index("lost-write") < s3.index("duplicate") < s3.index(">b<")
    assert 'src="S1-connectivity/plot.png"' in page


def test_html_report_says_when_later_scenarios_ran_on_a_degraded_stack(tmp_path):
    summary = _summary()
    summary["scenarios"][0]["unhealthy_after"] = {"etcd": "etcd /health: ALARM NOSPACE"}
    page = report.html_report(summary, tmp_path)
    assert "embedded stack was unhealthy" in page and "etcd (etcd /health: ALARM NOSPACE)" in page


def test_observe_writes_a_numbered_markdown_write_up(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "S1-connectivity").mkdir(parents=True)
    (run_dir / "S1-connectivity" / "plot.png").write_bytes(b"\x89PNG")
    (run_dir / "summary.json").write_text(json.dumps(_summary()))
    out = tmp_path / "observations"
    first = observe(str(run_dir), scenario="S1", title="Endpoint works", note="It works.", out_root=out)
    second = observe(str(run_dir), checks=["lost"], out_root=out)
    assert first.name == "OBS-01-endpoint-works" and second.name.startswith("OBS-02-")
    assert next_number(out) == 3
    text = (first / "README.md").read_text()
    assert "# OBS-01: Endpoint works" in text and "It works." in text and "![plot.png](plot.png)" in text
    assert "bin/run-suite --profile local --scenarios S1 --tier smoke" in text
    assert (first / "plot.png").is_file()
    only_lost = (second / "README.md").read_text()
    assert "lost-write" in only_lost and "| S1 |" not in only_lost
