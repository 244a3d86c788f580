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


def _question(start: str) -> report.Question:
    return next(q for q in report.QUESTIONS if q.text.startswith(start))


def test_answers_never_show_not_tested_as_yes():
    summary = _summary()
    assert report.answer(summary, report.Question("q", ("S1",), ("a",)))[0] == "YES"
    assert report.answer(summary, report.Question("q", ("S3",), ("b",)))[0] == "NO"
    assert report.answer(summary, report.Question("q", ("S4",), ())) == ("NOT TESTED", "S4 not run")
    assert report.answer(summary, report.Question("q", ("S8",), ()))[0] == "NOT TESTED"


def test_questions_count_only_their_own_checks():
    summary = _summary()
    s1 = summary["scenarios"][0]["verdicts"]
    s1.append(_verdict("survives: a probe", "FAIL", requirement="F2 / NFR4"))
    endpoint, protocol = _question("Can clients connect"), _question("Does the endpoint speak")
    s1.extend(_verdict(name, "PASS", requirement="F1") for name in endpoint.deciding)
    assert report.answer(summary, endpoint)[0] == "YES"
    assert report.answer(summary, protocol)[0] == "NO"


def test_broker_death_questions_need_storage_and_the_fault_itself():
    """The audit's cases: storage that lost a record, and a fault that never happened, left both S4
    questions at YES."""
    data, riding = _question("Is acknowledged data durable after broker death?"), _question("Do clients ride through")
    summary = _summary()
    summary["scenarios"].append({"scenario": "S4", "title": "Broker chaos", "duration_s": 1, "passed": False,
                                 "folder": "S4", "artifacts": [], "measurements": {}, "verdicts": [
                                     _verdict("lost-write", "PASS"), _verdict("client errors beyond retry", "PASS"),
                                     _verdict("every acknowledged record is in storage at its position, intact",
                                              "FAIL")]})
    assert report.answer(summary, data)[0] == "NO"
    summary["scenarios"][-1]["verdicts"] = [_verdict("lost-write", "PASS"), _verdict("client errors beyond retry",
                                                                                     "PASS"),
                                            _verdict("every fault took effect", "FAIL")]
    assert report.answer(summary, data)[0] == "NO"
    assert report.answer(summary, riding)[0] == "NO"


def test_21_3_durable_and_readable_are_separate_questions():
    """Records intact in storage that the system never serves break readability, not durability.
    Mutation tried: one data question for both (the old _data selector): durable reads NO, this fails."""
    from k6suite_lib.checkers.storage import LOST, UNREADABLE

    durable = _question("Is acknowledged data durable after broker")
    readable = _question("Is acknowledged data readable")
    summary = _summary()
    summary["scenarios"].append({"scenario": "S4", "title": "Broker chaos", "duration_s": 1, "passed": False,
                                 "folder": "S4", "artifacts": [], "measurements": {}, "verdicts": [
                                     _verdict(LOST, "PASS"), _verdict(UNREADABLE, "FAIL"),
                                     _verdict("readback-missing", "FAIL"),
                                     *(_verdict(c, "PASS") for c in durable.deciding if c != LOST)]})
    assert report.answer(summary, durable)[0] == "YES"
    assert report.answer(summary, readable)[0] == "NO"
    summary["scenarios"][-1]["verdicts"][0] = _verdict(LOST, "FAIL")
    assert report.answer(summary, durable)[0] == "NO"
    for scenario in ("S5", "S5b"):
        asked = {q.text for q in report.QUESTIONS if q.scenarios == (scenario,)}
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
    result, why = report.answer(summary, _question("Is acknowledged data durable through object-store"))
    assert result == "NOT TESTED" and "evidence of storage latency and outage" in why


def test_junit_maps_statuses(tmp_path):
    root = ET.fromstring(report.junit_xml(_summary()))
    checks = [s for s in root.findall("testsuite") if s.get("name") != "critical questions"]
    assert sum(len(s.findall("testcase")) for s in checks) == 6
    assert sum(len(s.findall(".//failure")) for s in checks) == 1
    assert sum(len(s.findall(".//skipped")) for s in checks) == 2
    failure = checks[1].find(".//failure")
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


# ----------------------------------------------------------------------------- issue 16: verdicts that cannot lie
def _scenario(sid: str, verdicts: list[dict], title: str = "") -> dict:
    return {"scenario": sid, "title": title or sid, "duration_s": 1, "passed": all(v["status"] != "FAIL"
                                                                                 for v in verdicts),
            "folder": sid, "artifacts": [], "measurements": {}, "verdicts": verdicts}


def _run(*scenarios: dict, not_promised: dict | None = None) -> dict:
    summary = {**_summary(), "scenarios": list(scenarios), "not_promised": not_promised or {}}
    statuses = [v["status"] for s in scenarios for v in s["verdicts"]]
    summary["counts"] = {s: statuses.count(s) for s in ("PASS", "FAIL", "ALLOWED", "NOT TESTED", "NOT PROMISED")}
    return summary


def _decided(question: report.Question, variant: str, status: str = "PASS", **instead: str) -> list[dict]:
    """Every deciding check of a question PASSing in one variant, except those named in `instead`
    (check -> status); the runner's stack check beside them."""
    from k6suite_lib.runner import STACK_CHECK

    return [*(_verdict(c, instead.get(c, status), variant=variant, requirement="F3") for c in question.deciding),
            _verdict(STACK_CHECK, "PASS", variant="stack", requirement="NFR4")]


def test_16_2_question_not_yes_without_deciding_checks():
    """The audit: with reconnections, metadata-unchanged and new-brokers-serve NOT TESTED, "Can brokers
    be added without clients noticing?" read YES (the data checks always run); S4's ride-through read
    YES with recovery and rebalances NOT TESTED; S4's durability with the fault never confirmed."""
    scale = _question("Can brokers be added")
    untested = {c: "NOT TESTED" for c in ("client reconnections after the fault", "metadata seen by clients unchanged",
                                          "new brokers serve requests")}
    result, why = report.answer(_run(_scenario("S6", _decided(scale, "1-to-3", **untested))), scale)
    assert result == "NOT TESTED" and "client reconnections after the fault not tested" in why, why
    assert report.answer(_run(_scenario("S6", _decided(scale, "1-to-3"))), scale)[0] == "YES"

    riding = _question("Do clients ride through")
    gap = "longest gap between acknowledgements per partition, from the fault's start"
    for missing in (gap, "consumer-group rebalances after the first fault"):
        verdicts = [v for v in _decided(riding, "kill") if v["check"] != missing]
        result, why = report.answer(_run(_scenario("S4", verdicts)), riding)
        assert result == "NOT TESTED" and missing in why, why
        # in one repeat of several is enough: every variant that ran must have run it
        result, _ = report.answer(_run(_scenario("S4", [*_decided(riding, "kill#1"),
                                                        *_decided(riding, "kill#2", **{missing: "NOT TESTED"})])),
                                  riding)
        assert result == "NOT TESTED"

    data = _question("Is acknowledged data durable after broker death")
    result, why = report.answer(_run(_scenario("S4", _decided(data, "kill", **{"every fault took effect":
                                                                              "NOT TESTED"}))), data)
    assert result == "NOT TESTED" and "every fault took effect" in why
    storage = _question("Is acknowledged data durable through object-store")
    stored = "every acknowledged record is in storage at its position, intact"
    result, why = report.answer(_run(_scenario("S5", _decided(storage, "storage-faults",
                                                              **{stored: "NOT TESTED"}))), storage)
    assert result == "NOT TESTED" and stored in why
    assert report.answer(_run(_scenario("S5", _decided(storage, "storage-faults"))), storage)[0] == "YES"
    # a deciding check the system never promised is not owed: YES, and the answer says what was waived
    result, why = report.answer(_run(_scenario("S5", _decided(storage, "storage-faults",
                                                              **{stored: "NOT PROMISED"}))), storage)
    assert result == "YES" and f"not promised: {stored}" in why
    # a failure still answers NO, whatever did not run
    result, _ = report.answer(_run(_scenario("S6", _decided(scale, "1-to-3", **{**untested, "lost-write": "FAIL"}))),
                              scale)
    assert result == "NO"


def test_16_2_deciding_checks_are_checks_the_suite_emits():
    """A deciding check renamed in its checker would leave its question NOT TESTED for ever: every
    name must be written somewhere in the package besides the question list."""
    from pathlib import Path

    import k6suite_lib

    root = Path(k6suite_lib.__file__).parent
    source = "\n".join(p.read_text() for p in root.rglob("*.py") if p.name != "report.py")
    constants = {report.ACKED_STORED, report.NOTHING_ELSE, report.EQUALS_READBACK, report.REACHED, report.PAST_ACKS,
                 report.PASSED_ACKS}
    for question in report.QUESTIONS:
        assert question.deciding, question.text
        for name in question.deciding:
            assert name in constants or f'"{name}"' in source, (question.text, name)


def test_16_3_exit_code_tells_untested_from_passed(tmp_path):
    """The audit: one YES and ten NOT TESTED questions exited 0 and showed PASS."""
    from k6suite_lib.cli import build_parser
    from k6suite_lib.matrix import build_matrix, matrix_html
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import build_summary

    s3 = _question("Do clients produce and consume")
    scale = _question("Can brokers be added")
    yes = _scenario("S3", _decided(s3, "overlap"))
    untested = _scenario("S6", _decided(scale, "1-to-3", **{"new brokers serve requests": "NOT TESTED"}))
    no = _scenario("S4", [_verdict("lost-write", "FAIL", variant="kill", requirement="F3 / NFR1")])
    profile = load_profile("local")

    def result(*scenarios):
        summary = build_summary([*scenarios], profile, "r1", "smoke", 1.8e9)
        return summary, report.EXIT_CODES[summary["result"]]

    assert result(yes)[1] == 0
    summary, code = result(yes, untested)
    assert code == 3 and summary["result"] == "NOT TESTED" and not summary["passed"]
    assert result(yes, untested, no)[1] == 1
    # the report's badge, JUnit and the help say so
    page = report.html_report(summary, tmp_path)
    assert '<span class="badge NOTTESTED">NOT TESTED</span>' in page
    assert 'class="badge PASS">PASS</span></h1>' not in page
    questions = ET.fromstring(report.junit_xml(summary)).find("testsuite[@name='critical questions']")
    properties = {p.get("name"): p.get("value") for p in questions.iter("property")}
    assert properties == {"k6suite.result": "NOT TESTED", "k6suite.exit_code": "3"}
    skipped = [c for c in questions.iter("testcase") if c.find("skipped") is not None]
    assert [c.get("name") for c in skipped] == [scale.text]
    assert "new brokers serve requests" in skipped[0].find("skipped").get("message")
    run_help = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    assert "3" in run_help.format_help() and "NOT TESTED" in run_help.format_help()
    # a matrix: any system with a NO fails it; else any NOT TESTED is 3; the matrix page says which
    kafka = build_summary([yes], load_profile("kafka"), "r1", "smoke", 1.8e9)
    for systems, expected in (([kafka, summary], "NOT TESTED"), ([kafka], "PASS"),
                              ([kafka, summary, result(no)[0]], "FAIL")):
        matrix = build_matrix([{**s, "profile": f"p{i}"} for i, s in enumerate(systems)], "r1", "smoke", 1.8e9)
        assert matrix["result"] == expected and matrix["passed"] == (expected == "PASS")
    assert '<td class="NOTTESTED">NOT TESTED' in matrix_html(build_matrix([summary], "r1", "smoke", 1.8e9))


def test_16_3_what_a_system_never_promised_is_not_promised_not_untested():
    """Apache Kafka has no object store: its storage checks and the S5 question were NOT TESTED, which
    under 16.3 would leave every Kafka run incomplete. The shipped kafka profile waives F6."""
    from k6suite_lib.checkers import CheckSpec, compose
    from k6suite_lib.checkers.verdicts import not_tested, verdict_frame
    from k6suite_lib.history import View
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import STACK_CHECK
    from tests import histories as h

    waived = load_profile("kafka").not_promised
    frame = h.frame(h.clean_rows(h.Spec(1, 1, 5, 0), __import__("random").Random(3)))
    table = compose(View(frame), [CheckSpec("storage", {"unavailable": "no object store to read"})], waived)
    table = table[table["check"].isin(report.STORED)]
    assert len(table) == 3 and set(table["status"]) == {"NOT PROMISED"}, table
    assert all("no object store to read" in e and "F6" in e for e in table["evidence"])
    # KafScale promises F6: a bucket it could not read stays NOT TESTED
    kafscale = compose(View(frame), [CheckSpec("storage", {"unavailable": "the profile names no object store"})],
                       load_profile("local").not_promised)
    assert set(kafscale.loc[kafscale["check"].isin(report.STORED), "status"]) == {"NOT TESTED"}
    # S5 on Kafka: the scenario's own "nothing to slow down" row, with the stack check beside it
    s5 = verdict_frame([not_tested("storage latency and outage", "F6", "no separate object store path")], waived)
    verdicts = [{**row, "variant": "storage-faults"} for row in s5.to_dict("records")]
    verdicts.append(_verdict(STACK_CHECK, "PASS", variant="stack", requirement="NFR4"))
    result, why = report.answer(_run(_scenario("S5", verdicts)),
                                _question("Is acknowledged data durable through object-store"))
    assert result == "NOT PROMISED" and "no object store" in why


def test_16_3_a_metadata_store_the_system_lacks_is_not_promised():
    """S5b on Kafka (KRaft keeps metadata on the brokers) or Tansu (metadata in the bucket): no profile waives
    NFR1, yet the question cannot be asked of a store that does not exist: NOT PROMISED, with the paths the
    stack has as the reason. A store that exists but could not be faulted stays NOT TESTED."""
    from k6suite_lib.checkers.verdicts import absent_component, not_tested, verdict_frame
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import STACK_CHECK

    questions = [q for q in report.QUESTIONS if q.scenarios == ("S5b",)]
    assert len(questions) == 3
    for row, expected in ((absent_component("metadata latency and outage", "F6 / NFR1",
                                            "the embedded kafka has no separate metadata store path"), "NOT PROMISED"),
                          (not_tested("metadata latency and outage", "F6 / NFR1", "no Toxiproxy"), "NOT TESTED")):
        frame = verdict_frame([row], load_profile("kafka").not_promised)
        verdicts = [{**r, "variant": "metadata-faults"} for r in frame.to_dict("records")]
        verdicts.append(_verdict(STACK_CHECK, "PASS", variant="stack", requirement="NFR4"))
        for question in questions:
            result, why = report.answer(_run(_scenario("S5b", verdicts)), question)
            assert result == expected, (question.text, result, why)


def test_16_8_why_names_the_worst_failure_first(tmp_path):
    """The audit: S4 on KafScale read "e.g. kill: nonmonotonic-poll" while 2,534 acknowledged records
    were missing from the read-back."""
    from k6suite_lib.matrix import build_matrix

    verdicts = [_verdict("nonmonotonic-poll", "FAIL", variant="kill", requirement="F2.5"),
                _verdict("acknowledgements resume after each fault ends", "FAIL", variant="kill", requirement="NFR1"),
                _verdict("poll-skip", "FAIL", variant="kill", requirement="F2.5"),
                {**_verdict("readback-missing", "FAIL", variant="kill", requirement="F3 / F6"), "measured": "2534"},
                _verdict("lost-write", "PASS", variant="kill", requirement="F3 / NFR1")]
    summary = _run(_scenario("S4", verdicts, "Broker chaos"))
    data = _question("Is acknowledged data readable again after broker")
    result, why = report.answer(summary, data)
    assert result == "NO" and why.endswith("worst: kill: readback-missing (2534)"), why
    matrix = build_matrix([summary], "r1", "smoke", 1.8e9)
    cell = next(q for q in matrix["questions"] if q["question"] == data.text)["cells"]["local"]
    assert "readback-missing" in cell["why"] and "nonmonotonic" not in cell["why"]
    rows = [c["check"] for c in next(q for q in matrix["questions"] if q["question"] == data.text)["checks"]]
    assert rows == ["readback-missing", "nonmonotonic-poll", "poll-skip", "lost-write"]  # failures, worst first
    page = report.html_report(summary, tmp_path)
    s4 = page[page.index('id="S4"'):]
    assert s4.index("readback-missing") < s4.index("nonmonotonic-poll") < s4.index("acknowledgements resume")
    assert [report.severity({"check": c}) for c in ("lost-write", "position-mismatch", "nonmonotonic-poll")] \
        == sorted(report.severity({"check": c}) for c in ("lost-write", "position-mismatch", "nonmonotonic-poll"))


def test_a_question_not_tested_because_nothing_was_acknowledged_does_not_hide_the_scenarios_fail(tmp_path):
    """S5 on KafScale with kafka-python's default producer acknowledged nothing: the run FAILs on "acknowledged
    sends", which the durability question does not count, and its durability checks are NOT TESTED, so its cell
    read a quiet grey NOT TESTED (audit20 L3). The answer stays NOT TESTED (nothing acknowledged is neither
    durable nor lost) but leads with the failure, in the report and the matrix; a NOT TESTED with no failure
    beside it reads as before."""
    from k6suite_lib import matrix

    durable = _question("Is acknowledged data durable through object-store")
    verdicts = [_verdict("acknowledged sends", "FAIL", "latency", "F2.1"),
                _verdict("every fault took effect", "PASS", "latency", "-"),
                *(_verdict(name, "NOT TESTED", "latency") for name in durable.deciding if name !=
                  "every fault took effect")]
    summary = {**_summary(), "scenarios": [{"scenario": "S5", "title": "Storage", "duration_s": 9, "passed": False,
                                            "folder": "S5", "artifacts": [], "measurements": {},
                                            "verdicts": verdicts}]}
    answer, why = report.answer(summary, durable)
    assert answer == "NOT TESTED" and why.startswith(
        "not judged, but the scenario FAILed beside it: latency: acknowledged sends (1); ")
    assert report.run_result(summary) == "FAIL"
    assert "(the scenario FAILed)" in report.html_report(summary, tmp_path, {})
    built = matrix.build_matrix([summary], "m", "smoke", 1.8e9, {})
    assert "(the scenario FAILed)" in matrix.matrix_html(built)
    verdicts[0] = _verdict("acknowledged sends", "PASS", "latency", "F2.1")
    answer, why = report.answer(summary, durable)
    assert answer == "NOT TESTED" and "FAILed" not in why
    assert "(the scenario FAILed)" not in report.html_report(summary, tmp_path, {})
