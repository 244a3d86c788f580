"""Calibration as data: records folded from runs, the negative side, staleness, and what reports show.

One test writes records from real runs (S1 twice on a real Apache Kafka stack with dedicated controllers);
the others fold synthetic run summaries, which is what the command does with real ones.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from k6suite_lib import calibration, matrix, report, suite_version
from k6suite_lib.checkers import ANOMALIES
from k6suite_lib.profiles import load_profile
from tests.conftest import port_base_for, write_profile

KAFKA = {"system": "kafka", "source": "4.1.1", "version": "4.1.1", "commit": None, "dirty": None,
         "label": "kafka 4.1.1", "binaries": {"kafka-libs": "e894"}}
RECOVERY = "longest gap between acknowledgements per partition, from the fault's start"


def _verdict(check: str, status: str, variant: str, measured) -> dict:
    return {"variant": variant, "check": check, "requirement": "NFR1", "measured": measured, "threshold": "< 5 s",
            "status": status, "passed": status == "PASS", "evidence": f"{check} measured {measured}"}


def _summary(run_id: str, gaps: list[float], build: dict | None = None, system: str = "kafka",
             client: str = "kafka-python") -> dict:
    verdicts = [_verdict(RECOVERY, "PASS" if gap < 5 else "FAIL", f"kill#{i}", f"{gap} s")
                for i, gap in enumerate(gaps, 1)]
    verdicts += [_verdict("lost-write", "PASS", f"kill#{i}", 0) for i in range(1, len(gaps) + 1)]
    return {"run_id": run_id, "profile": "kafka", "system": system, "client": client, "build": build or KAFKA,
            "tier": "smoke",
            "started": 1.8e9, "duration_s": 60.0, "stack_error": "", "counts": {}, "target": {},
            "scenarios": [{"scenario": "S4", "title": "Broker chaos", "duration_s": 60, "passed": True,
                           "folder": "S4-broker-chaos", "artifacts": [], "measurements": {}, "verdicts": verdicts}]}


SETTINGS = {"client": "kafka-python 3.0.12", "idempotent": True, "acks": "all", "max_in_flight": 1, "linger_ms": 0,
            "delivery_timeout_s": 30.0, "request_timeout_ms": 4000}


NEGATIVES = {"planted": {"lost-write": ["tests/test_checker.py::test_planted_anomalies_are_found_exactly[lost-write]"]},
             "systems": {"lost-write": [{"system": "KafScale v1.5.0", "evidence": "OBS-04"}]}}


def _records(summaries: list[dict]) -> dict:
    return calibration.build_records(summaries, NEGATIVES, {}, "k6suite calibrate -n 3", "2026-12-04T12:00:00Z",
                                     {"n": 2, "p50": 3.0, "p95": 9.0, "max": 9.0}, {"brokers": 3, "controllers": 3})


def test_records_fold_k_of_n_with_the_distribution_per_variant():
    records = _records([_summary("a", [2.5, 5.87]), _summary("b", [2.6])])
    gap = records[RECOVERY]
    assert (gap["passes"], gap["judged"]) == (2, 3)
    assert gap["measured"] == {"n": 3, "p50": 2.6, "p95": 5.87, "max": 5.87}
    assert [(c["scenario"], c["variant"], c["passes"], c["judged"]) for c in gap["cases"]] == [("S4", "kill", 2, 3)]
    assert gap["failures"][0].startswith("a kill#2: 5.87 s")
    assert gap["baseline"]["build"]["label"] == "kafka 4.1.1" and gap["baseline"]["topology"]["controllers"] == 3
    with pytest.raises(ValueError, match="different builds"):
        _records([_summary("a", [1.0]), _summary("b", [1.0], build={**KAFKA, "version": "4.0.0"})])


def test_a_check_without_a_negative_case_is_unproven_and_one_with_them_names_them():
    records = _records([_summary("a", [1.0])])
    assert calibration.unproven(records[RECOVERY])
    assert "unproven: no known case where it fails" in calibration.note(records[RECOVERY], "S4", "kill#1")["text"]
    lost = calibration.note(records["lost-write"], "S4", "kill")
    assert not lost["unproven"]
    assert lost["text"] == ("Kafka 4.1.1 with kafka-python: 1 of 1 (p50 0.0, p95 0.0, max 0.0); "
                            "fails on: planted in 1 test, KafScale v1.5.0 (OBS-04); "
                            "client settings of the baseline not recorded; suite commit not recorded")


def test_a_record_of_another_build_is_flagged_stale():
    record = _records([_summary("a", [1.0])])[RECOVERY]
    assert not calibration.note(record, "S4", "kill", KAFKA)["stale"]
    newer = {**KAFKA, "version": "4.2.0", "label": "kafka 4.2.0"}
    stale = calibration.note(record, "S4", "kill", newer)
    assert stale["stale"] and "STALE: measured on kafka 4.1.1, in use kafka 4.2.0" in stale["text"]
    assert calibration.note(record, "S4", "kill", {**KAFKA, "dirty": True})["stale"]
    # a KafScale run holds the Kafka record against Kafka's default build, which it was measured on
    in_use = calibration.baselines_in_use([_summary("k", [9.0], build={"system": "kafscale", "version": "v1.5.0"})])
    row = _verdict(RECOVERY, "FAIL", "kill", 9)
    assert not calibration.verdict_note({RECOVERY: record}, in_use, "S4", row)["stale"]


def test_a_no_resting_only_on_a_check_the_baseline_does_not_always_pass_says_so():
    records = _records([_summary("a", [2.5, 5.87, 2.6])])
    shaky = [{**_verdict(RECOVERY, "FAIL", "kill", "9 s"), "scenario": "S4"}]
    assert calibration.caveat("NO", shaky, records) == f"{RECOVERY} passes on baseline 2 of 3"
    solid = [*shaky, {**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}]
    assert calibration.caveat("NO", solid, records) == ""  # a check the baseline always passes decides it
    assert calibration.caveat("YES", [], records) == ""
    assert calibration.caveat("NO", [{**_verdict("new", "FAIL", "v", 1), "scenario": "S3"}], records) == \
        "new not calibrated on the baseline"


def test_the_report_and_the_matrix_show_the_calibration_beside_every_verdict(tmp_path):
    records = _records([_summary("a", [2.5, 5.87, 2.6])])
    kafscale = _summary("k", [30.0], build={"system": "kafscale", "source": "v1.5.0", "version": "v1.5.0",
                                            "commit": None, "dirty": None, "label": "kafscale v1.5.0",
                                            "binaries": {}}, system="kafscale")
    kafscale["profile"] = "local"
    page = report.html_report(kafscale, tmp_path, records)
    assert "Kafka 4.1.1 with kafka-python: 2 of 3 (p50 2.6, p95 5.87, max 5.87); unproven" in page
    assert f"<b>NO</b> (<span class=\"caveat\">{RECOVERY.replace(chr(39), '&#39;')} passes on baseline 2 of 3" in page
    built = matrix.build_matrix([kafscale, _summary("a", [2.5])], "m", "smoke", 1.8e9, records)
    rows = [row for q in built["questions"] for row in q["checks"] if row["check"] == RECOVERY]
    assert rows and rows[0]["calibration"]["kafka-python"]["text"].startswith("Kafka 4.1.1 with kafka-python: 2 of 3")
    caveats = {q["cells"]["local"]["caveat"] for q in built["questions"] if q["cells"]["local"]["answer"] == "NO"}
    assert f"{RECOVERY} passes on baseline 2 of 3" in caveats
    assert "passes on baseline 2 of 3" in matrix.matrix_html(built)


def test_an_unfinished_run_is_rejudged_from_its_saved_histories(tmp_path):
    """A calibration run stopped by a timeout has no summary.json; its saved histories count, re-judged:
    here a clean one and one with a planted lost write, beside a finished run that names the build."""
    import random

    from k6suite_lib import history
    from k6suite_lib.checkers import CheckSpec
    from tests import histories as h

    clean = h.clean_rows(h.Spec(2, 2, 30, 1), random.Random(16))
    lost, _ = h.plant_lost_write(clean, 2, random.Random(4))
    unfinished = tmp_path / "unfinished"
    for variant, rows in (("kill#1", clean), ("kill#2", lost)):
        history.save(h.frame(rows), unfinished / "S4-broker-chaos" / f"history-{variant}.parquet",
                     meta={"run_id": h.RUN, "scenario": "S4", "variant": variant, "started_wall": 1.8e9,
                           "duration_s": 30.0,
                           "checks": [CheckSpec("anomalies").to_json(), CheckSpec("readback").to_json()]})
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "summary.json").write_text(json.dumps(_summary("done", [1.0])))
    summaries = calibration._summaries_of([finished, unfinished])
    assert summaries[1]["unfinished"] and summaries[1]["build"] == KAFKA
    records = _records(summaries)
    assert (records["lost-write"]["passes"], records["lost-write"]["judged"]) == (2, 3)
    assert records["lost-write"]["failures"][0].startswith("unfinished kill#2: 2")
    with pytest.raises(ValueError, match="must have finished"):
        calibration._summaries_of([unfinished])


def test_observations_name_the_real_systems_that_failed_a_check():
    observed = calibration.observed_failures()
    assert {"system": "Tansu v0.6.0-510f3e2", "evidence": "OBS-12"} in observed["end offset >= highest acknowledged "
                                                                                "offset + 1"]
    assert {"system": "KafScale v1.5.0", "evidence": "OBS-04"} in observed["lost-write"]
    assert {"system": "KafScale main 7aa2a11", "evidence": "OBS-14"} in observed["lost-write"]
    permissions = observed["0 records of one tenant readable by the other"]  # OBS-13: a table per system
    assert {"system": "KafScale v1.5.0", "evidence": "OBS-13"} in permissions
    assert not any(s["system"].startswith("Apache Kafka") for found in observed.values() for s in found)


def _test_ids(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_planted_negative_names_a_test_that_exists():
    """negatives.json is kept by hand: each test it names must exist (a parametrized one with a known id)."""
    negatives = calibration.load_negatives()
    assert negatives["planted"], "no planted negatives"
    for check, test_ids in negatives["planted"].items():
        assert test_ids, check
        for test_id in test_ids:
            match = re.fullmatch(r"(tests/test_\w+\.py)::(test_\w+)(?:\[([\w-]+)\])?", test_id)
            assert match, test_id
            assert match.group(2) in _test_ids(Path(match.group(1))), test_id
            if match.group(3):
                assert match.group(3) in ANOMALIES, test_id
    for check in ANOMALIES:
        assert f"tests/test_checker.py::test_planted_anomalies_are_found_exactly[{check}]" in \
            negatives["planted"][check]


def test_committed_records_cover_every_negative_and_say_how_they_were_made():
    """calibration/ as committed: every check with a planted negative has a record; each record names its
    build, runs, command and date; the recovery record was measured on the dedicated-controller topology;
    README.md is the one calibration.readme generates from the records."""
    records = calibration.load_records()
    assert records, "calibration/checks/ is empty"
    # S5's latency checks and catch-up are never judged on Kafka (no object store: F6 not promised)
    uncalibrated = {"publish latency rises during storage-latency", "consumers catch up after the faults",
                    "brokers' kafscale_s3_latency_ms_avg shows the injected storage-latency"}
    assert set(calibration.load_negatives()["planted"]) - set(records) <= uncalibrated
    for check, record in records.items():
        assert record["runs"] and record["command"].startswith("k6suite calibrate"), check
        assert record["baseline"]["build"]["label"] == "kafka 4.1.1" and record["date"].startswith("2026"), check
    assert records[RECOVERY]["baseline"]["topology"] == {"brokers": 3, "controllers": 3}
    assert {c["variant"] for c in records[RECOVERY]["cases"] if c["scenario"] == "S4"} == {"kill", "terminate", "pause"}
    # the bar: every check seen at least 5 times on the baseline, each S4 recovery case 20 times with kafka-python
    # and 5 times with each other recording client (issue 17: S3, S4 and S7 per client)
    for check, record in records.items():
        assert sum(record["statuses"].values()) + record.get("lost", 0) >= 5, check
    s4 = [c for c in records[RECOVERY]["cases"] if c["scenario"] == "S4"]
    assert all(sum(c["statuses"].values()) >= (20 if c["client"] == "kafka-python" else 5) for c in s4)
    assert {c["client"] for c in s4} == {"kafka-python", "librdkafka", "franz-go"}
    assert (calibration.CALIBRATION_DIR / "README.md").read_text() == calibration.readme(records), \
        "calibration/README.md is not what the records, negatives.json and observations/ say now: " \
        "run `k6suite calibrate --render`"


@pytest.mark.stack
def test_records_are_written_from_real_runs_on_kafka(tmp_path, isolated_outputs):
    """S1 twice on a real Apache Kafka stack (3 controllers, 3 brokers), folded into records."""
    profile = write_profile(tmp_path, "kafka-cal", port_base_for(22800), 3, like="kafka")
    written = calibration.calibrate(str(profile), ["S1"], 2, directory=tmp_path / "cal", out_root=tmp_path / "runs",
                                    command="k6suite calibrate -n 2 -s S1", log=lambda _msg: None)
    records = calibration.load_records(tmp_path / "cal")
    assert {p.name for p in written} == {f"{calibration.slug(c)}.json" for c in records}
    stack_check = records["no component died or filled up outside the fault schedule"]
    assert (stack_check["passes"], stack_check["judged"]) == (2, 2)
    assert len(stack_check["runs"]) == 2 and stack_check["baseline"]["build"]["label"] == "kafka 4.1.1"
    assert stack_check["baseline"]["topology"] == {"brokers": 3, "controllers": 3}
    assert all(r["command"] == "k6suite calibrate -n 2 -s S1" for r in records.values())
    judged = [r for r in records.values() if r["judged"]]
    assert all(r["judged"] % 2 == 0 for r in judged)  # every S1 check twice
    assert (tmp_path / "cal" / "README.md").read_text().count("| Kafka 4.1.1 |") == len(records)
    assert json.loads(written[0].read_text())["date"].startswith("20")


def test_a_malformed_or_old_record_is_shown_unreadable_and_never_crashes_a_report(tmp_path):
    """An old-schema record (no cases) and a file that is no JSON load as "record unreadable"; the report
    and the caveat read them without raising."""
    folder = tmp_path / "checks"
    folder.mkdir()
    good = _records([_summary("a", [1.0])])
    old = {k: v for k, v in good[RECOVERY].items() if k != "cases"}
    (folder / f"{calibration.slug(RECOVERY)}.json").write_text(json.dumps(old))
    (folder / "lost-write.json").write_text("{not json")
    bad_measured = {**good["lost-write"], "check": "bad measured", "measured": "0.0"}
    (folder / "bad-measured.json").write_text(json.dumps(bad_measured))
    records = calibration.load_records(tmp_path)
    assert records[RECOVERY]["unreadable"] and records["lost-write"]["unreadable"]
    assert "measured" in records["bad measured"]["unreadable"]
    shown = calibration.note(records[RECOVERY], "S4", "kill")
    assert shown["text"].startswith("record unreadable") and not shown["calibrated"]
    failed = [{**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}]
    assert calibration.caveat("NO", failed, records) == "lost-write calibration record unreadable"
    kafscale = _summary("k", [30.0], build={**KAFKA, "system": "kafscale", "label": "kafscale v1.5.0"},
                        system="kafscale")
    assert "record unreadable" in report.html_report(kafscale, tmp_path, records)
    assert "Unreadable records" in calibration.readme(records)


def test_calibrate_refuses_runs_of_another_system_and_a_run_given_twice(tmp_path):
    kafscale = _summary("k", [1.0], build={**KAFKA, "system": "kafscale", "label": "kafscale v1.5.0"})
    with pytest.raises(ValueError, match="not the baseline kafka"):
        _records([kafscale])
    assert calibration.build_records([kafscale], {}, {}, "c", "d", baseline="kafscale")
    with pytest.raises(ValueError, match="more than once"):
        _records([_summary("a", [1.0]), _summary("a", [1.0])])
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(_summary("a", [1.0, 2.0])))
    calibration.calibrate("kafka", None, 1, [run, tmp_path / "." / "run"], directory=tmp_path / "cal")
    assert calibration.load_records(tmp_path / "cal")[RECOVERY]["judged"] == 2


def _run_dir(folder: Path, summary: dict, controllers: int, request_timeout_ms: int = 4000) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    profile = {"target_kind": "kafka", "embedded": True, "client": {"request_timeout_ms": request_timeout_ms},
               "faults": {"driver": "local"}, "stack": {"brokers": 3, "port_base": 27000 + controllers,
                                                         "controllers": controllers, "kubernetes": None}}
    (folder / "manifest.json").write_text(json.dumps({"profile": profile}))
    return folder


def test_a_record_of_another_topology_or_an_unknown_build_is_stale():
    record = _records([_summary("a", [1.0])])[RECOVERY]  # measured with 3 brokers, 3 controllers
    dedicated = {**KAFKA, "topology": {"brokers": 3, "controllers": 3}}
    assert not calibration.note(record, "S4", "kill", dedicated)["stale"]
    combined = calibration.note(record, "S4", "kill", {**KAFKA, "topology": {"brokers": 3, "controllers": 0}})
    assert combined["stale"] and "STALE: measured on topology brokers 3, controllers 3, in use brokers 3, " \
                                 "controllers 0" in combined["text"]
    unknown = {**record, "baseline": {**record["baseline"], "build": None}}
    assert calibration.stale(unknown, None) and "unknown build" in calibration.note(unknown, "S4", "kill")["text"]
    combined_run = {**_summary("c", [1.0]), "topology": {"brokers": 3, "controllers": 0}}
    assert calibration.baselines_in_use([combined_run])["kafka"]["topology"] == {"brokers": 3, "controllers": 0}
    assert calibration.topology({"brokers": 3, "port_base": 1, "controllers": 3, "kubernetes": None}) == \
        {"brokers": 3, "controllers": 3}


def test_a_run_of_the_kafka_profile_holds_the_committed_records_current():
    """The topology a kafka-profile run records is the one the committed records were measured on."""
    from k6suite_lib.profiles import load_profile

    shape = calibration.topology(load_profile("kafka").summary()["stack"])
    in_use = {**KAFKA, "topology": shape}
    assert not calibration.stale(calibration.load_records()[RECOVERY], in_use)
    assert calibration.topology(load_profile("local").summary()["stack"]) == {"brokers": 3, "controllers": 0}


def test_runs_of_different_topologies_or_profile_settings_are_not_folded_into_one_record(tmp_path):
    dedicated = _run_dir(tmp_path / "d", _summary("d", [1.0]), 3)
    combined = _run_dir(tmp_path / "c", _summary("c", [1.0]), 0)
    with pytest.raises(ValueError, match="differ in topology"):
        calibration.calibrate("kafka", None, 1, [dedicated, combined], directory=tmp_path / "cal")
    slower = _run_dir(tmp_path / "s", _summary("s", [1.0]), 3, request_timeout_ms=30000)
    with pytest.raises(ValueError, match="differ in topology or profile settings"):
        calibration.calibrate("kafka", None, 1, [dedicated, slower], directory=tmp_path / "cal")
    combined_summary = {**_summary("c2", [1.0]), "topology": {"brokers": 3, "controllers": 0}}
    with pytest.raises(ValueError, match="different topologies"):
        _records([_summary("d2", [1.0]), combined_summary])  # measured with 3 controllers
    same = _run_dir(tmp_path / "e", _summary("e", [1.0]), 3)
    calibration.calibrate("kafka", None, 1, [dedicated, same], directory=tmp_path / "cal")
    assert calibration.load_records(tmp_path / "cal")[RECOVERY]["baseline"]["topology"] == \
        {"brokers": 3, "controllers": 3}


def test_a_no_resting_on_a_stale_record_says_stale_rather_than_calibrated():
    records = _records([_summary("a", [1.0, 2.0])])
    failed = [{**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}]
    current = {"kafka": {**KAFKA, "topology": {"brokers": 3, "controllers": 3}}}
    assert calibration.caveat("NO", failed, records, current) == ""
    newer = {"kafka": {**KAFKA, "version": "4.2.0", "label": "kafka 4.2.0"}}
    assert calibration.caveat("NO", failed, records, newer) == \
        "lost-write calibration stale (measured on kafka 4.1.1, in use kafka 4.2.0)"


def _pauses(run_id: str, gaps: list[float]) -> dict:
    summary = _summary(run_id, gaps)
    for v in summary["scenarios"][0]["verdicts"]:
        v["variant"] = v["variant"].replace("kill", "pause")
    return summary


def test_calibrating_a_subset_merges_its_cases_into_the_record_and_a_missing_case_is_not_calibrated(tmp_path):
    calibration.write_records(_records([_summary("a", [1.0, 6.0])]), tmp_path)
    calibration.write_records(_records([_pauses("b", [2.0])]), tmp_path)
    record = calibration.load_records(tmp_path)[RECOVERY]
    assert [(c["scenario"], c["variant"], c["passes"], c["judged"], c["runs"]) for c in record["cases"]] == \
        [("S4", "kill", 1, 2, ["a"]), ("S4", "pause", 1, 1, ["b"])]
    assert (record["passes"], record["judged"], record["runs"]) == (2, 3, ["a", "b"])
    assert record["statuses"] == {"FAIL": 1, "PASS": 2} and record["failures"][0].startswith("a kill#2")
    calibration.write_records(_records([_summary("c", [1.0])]), tmp_path)  # kill again: replaces kill only
    record = calibration.load_records(tmp_path)[RECOVERY]
    assert [(c["variant"], c["judged"]) for c in record["cases"]] == [("pause", 1), ("kill", 1)]
    terminate = calibration.note(record, "S4", "terminate#1")
    assert terminate["text"].startswith("Kafka 4.1.1 with kafka-python: not calibrated for S4 terminate")
    assert not terminate["calibrated"]
    failed = [{**_verdict("lost-write", "FAIL", "terminate#1", 3), "scenario": "S4"}]
    assert calibration.caveat("NO", failed, calibration.load_records(tmp_path)) == \
        "lost-write not calibrated for S4 terminate"


def test_an_unfinished_run_of_another_profile_is_refused(tmp_path):
    """A results.json or saved history naming another profile than the finished runs' is not folded in
    under their build."""
    import random

    from k6suite_lib import history
    from k6suite_lib.checkers import CheckSpec
    from k6suite_lib.scenario import RESULTS_FILE
    from tests import histories as h

    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "summary.json").write_text(json.dumps(_summary("done", [1.0])))
    results = tmp_path / "results-only" / "S1-basic"
    results.mkdir(parents=True)
    result = {"scenario": "S1", "profile": "local", "started": 1.8e9, "duration_s": 5.0,
              "verdicts": [_verdict("lost-write", "PASS", "basic", 0)]}
    (results / RESULTS_FILE).write_text(json.dumps(result))
    with pytest.raises(ValueError, match="ran on profile 'local'"):
        calibration._summaries_of([finished, results.parent])
    (results / RESULTS_FILE).write_text(json.dumps({**result, "profile": "kafka"}))
    assert calibration._summaries_of([finished, results.parent])[1]["scenarios"][0]["scenario"] == "S1"
    clean = h.clean_rows(h.Spec(2, 2, 30, 1), random.Random(16))
    saved = tmp_path / "history-only"
    history.save(h.frame(clean), saved / "S4-broker-chaos" / "history-kill#1.parquet",
                 meta={"run_id": h.RUN, "profile": "local", "scenario": "S4", "variant": "kill#1",
                       "started_wall": 1.8e9, "duration_s": 30.0, "checks": [CheckSpec("anomalies").to_json()]})
    with pytest.raises(ValueError, match="ran on profile 'local'"):
        calibration._summaries_of([finished, saved])


def test_a_table_under_a_heading_naming_a_system_is_that_systems(tmp_path):
    """OBS-13 holds a KafScale table and a Tansu one under "## Tansu v0.6.0-510f3e2 with ..."; each FAIL
    belongs to the system its heading names, not to the observation's components."""
    observed = calibration.observed_failures()
    assert {"system": "Tansu v0.6.0-510f3e2", "evidence": "OBS-13"} in observed["a wrong password is refused"]
    row = "| S8 | permissions | {} | F7 | 1 | <= 0 | **FAIL** | evidence |"
    folder = tmp_path / "OBS-99-two-systems"
    folder.mkdir()
    (folder / "README.md").write_text("\n".join([
        "# OBS-99: two systems", "- **Components**: kafscale-broker v1.5.0", "",
        "## Verdicts (1 shown, 1 failed)", row.format("kafscale check"), "",
        "## Tansu v0.6.0-510f3e2 with `--authentication` (run `x`)", row.format("tansu check"), "",
        "## Reproduce", row.format("default again")]))
    found = calibration.observed_failures(tmp_path)
    assert found == {"kafscale check": [{"system": "KafScale v1.5.0", "evidence": "OBS-99"}],
                     "tansu check": [{"system": "Tansu v0.6.0-510f3e2", "evidence": "OBS-99"}],
                     "default again": [{"system": "KafScale v1.5.0", "evidence": "OBS-99"}]}


def test_a_planted_negative_is_listed_under_the_check_its_test_fails():
    """The allowed-duplicate test plants a position held by another record: position-mismatch FAILs,
    lost-write PASSes (it asserts so), so it is a negative of position-mismatch only."""
    planted = calibration.load_negatives()["planted"]
    test_id = "tests/test_checker.py::test_an_allowed_duplicate_cannot_hide_a_lost_acknowledged_position"
    assert test_id in planted["position-mismatch"]
    assert [check for check, ids in planted.items() if test_id in ids] == ["position-mismatch"]


def test_a_planned_repeat_that_left_no_verdict_counts_as_lost_not_as_nothing(tmp_path):
    """S4 asked for 3 kills and 3 pauses (the executed notebook's parameters); kill#2 hung and every pause
    too, so they left no verdicts: the record says 2 of 3, 1 lost, and 0 of 3, 3 lost, both short of every
    time; a check judged once per scenario (variant 'stack') is not a repeat and loses nothing."""
    summary = _summary("a", [1.0, 2.0, 3.0])
    verdicts = summary["scenarios"][0]["verdicts"]
    summary["scenarios"][0]["verdicts"] = [v for v in verdicts if v["variant"] != "kill#2"] + \
        [_verdict("stack check", "PASS", "stack", 0)]
    run = tmp_path / "run"
    (run / "S4-broker-chaos").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary))
    cell = {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
            "source": ["repeats = 3\n", 'kinds = ["kill", "pause"]\n', 'profile = "kafka"\n']}
    (run / "S4-broker-chaos" / "executed.ipynb").write_text(json.dumps({"cells": [cell]}))
    assert calibration.planned_repeats(run) == {"S4": {"kill": 3, "pause": 3}}
    calibration.calibrate("kafka", None, 1, [run], directory=tmp_path / "cal")
    records = calibration.load_records(tmp_path / "cal")
    gap = records[RECOVERY]
    assert [(c["variant"], c["passes"], c["judged"], c["lost"]) for c in gap["cases"]] == \
        [("kill", 2, 2, 1), ("pause", 0, 0, 3)]
    kill = calibration.note(gap, "S4", "kill#1")
    assert kill["text"].startswith("Kafka 4.1.1 with kafka-python: 2 of 3, 1 lost") and kill["shaky"]
    assert calibration.note(gap, "S4", "pause#1")["text"].startswith("Kafka 4.1.1 with kafka-python: 0 of 3, 3 lost")
    failed = [{**_verdict(RECOVERY, "FAIL", "kill#1", 9), "scenario": "S4"}]
    assert calibration.caveat("NO", failed, records) == f"{RECOVERY} passes on baseline 2 of 3, 1 lost"
    assert [c["lost"] for c in records["stack check"]["cases"]] == [0]
    assert "2 of 6, 4 lost" in (tmp_path / "cal" / "README.md").read_text()


def test_records_keep_a_case_per_client_and_a_verdict_is_shown_beside_its_own_clients():
    """Runs of kafka-python and librdkafka fold into one record with a case per client; a librdkafka verdict
    reads librdkafka's k of N, a franz-go verdict (never measured) reads "not calibrated for franz-go", and a
    NO of franz-go resting on it says so."""
    records = _records([_summary("a", [1.0, 2.0]), _summary("b", [6.0, 7.0, 1.0], client="librdkafka")])
    gap = records[RECOVERY]
    assert [(c["client"], c["variant"], c["passes"], c["judged"]) for c in gap["cases"]] == \
        [("kafka-python", "kill", 2, 2), ("librdkafka", "kill", 1, 3)]
    assert gap["clients"] == ["kafka-python", "librdkafka"] and (gap["passes"], gap["judged"]) == (3, 5)
    assert calibration.note(gap, "S4", "kill#1")["text"].startswith("Kafka 4.1.1 with kafka-python: 2 of 2")
    rdkafka = calibration.note(gap, "S4", "kill#1", client="librdkafka")
    assert rdkafka["text"].startswith("Kafka 4.1.1 with librdkafka: 1 of 3") and rdkafka["shaky"]
    franz = calibration.note(gap, "S4", "kill#1", client="franz-go")
    assert franz["text"].startswith("Kafka 4.1.1: not calibrated for franz-go") and not franz["calibrated"]
    failed = [{**_verdict(RECOVERY, "FAIL", "kill#1", 9), "scenario": "S4"}]
    assert calibration.caveat("NO", failed, records, client="franz-go") == f"{RECOVERY} not calibrated for franz-go"
    assert calibration.caveat("NO", failed, records, client="librdkafka") == f"{RECOVERY} passes on baseline 1 of 3"
    assert calibration.caveat("NO", failed, records) == ""  # kafka-python's record: 2 of 2, solid
    assert "librdkafka: S4 kill 1/3" in calibration.readme(records)


def test_the_report_and_the_matrix_read_the_record_of_each_runs_client(tmp_path):
    records = _records([_summary("a", [1.0]), _summary("b", [9.0], client="librdkafka")])
    kafscale = {**_summary("k", [30.0], build={**KAFKA, "system": "kafscale", "label": "kafscale v1.5.0"},
                           system="kafscale", client="librdkafka"), "profile": "local+librdkafka"}
    assert "Kafka 4.1.1 with librdkafka: 0 of 1" in report.html_report(kafscale, tmp_path, records)
    franz = {**kafscale, "profile": "local+franz-go", "client": "franz-go"}
    assert "Kafka 4.1.1: not calibrated for franz-go" in report.html_report(franz, tmp_path, records)
    built = matrix.build_matrix([kafscale, franz], "m", "smoke", 1.8e9, records)
    row = next(row for q in built["questions"] for row in q["checks"] if row["check"] == RECOVERY)
    assert row["calibration"]["librdkafka"]["text"].startswith("Kafka 4.1.1 with librdkafka: 0 of 1")
    assert row["calibration"]["franz-go"]["text"].startswith("Kafka 4.1.1: not calibrated for franz-go")
    assert "kafka-python" not in row["calibration"]  # no column recorded with it
    page = matrix.matrix_html(built)
    assert "Kafka 4.1.1 with librdkafka: 0 of 1" in page and "not calibrated for franz-go" in page


def test_a_record_written_before_cases_named_their_client_loads_as_kafka_pythons(tmp_path):
    """The committed records' cases name no client (all were measured with kafka-python): they load as
    kafka-python's, and calibrating librdkafka afterwards adds its cases beside them."""
    record = _records([_summary("a", [1.0, 2.0])])[RECOVERY]
    old = {**record, "cases": [{k: v for k, v in c.items() if k != "client"} for c in record["cases"]]}
    del old["clients"]
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / f"{calibration.slug(RECOVERY)}.json").write_text(json.dumps(old))
    loaded = calibration.load_records(tmp_path)[RECOVERY]
    assert [c["client"] for c in loaded["cases"]] == ["kafka-python"] and loaded["clients"] == ["kafka-python"]
    assert calibration.note(loaded, "S4", "kill")["text"].startswith("Kafka 4.1.1 with kafka-python: 2 of 2")
    assert calibration.note(loaded, "S4", "kill", client="librdkafka")["text"].startswith(
        "Kafka 4.1.1: not calibrated for librdkafka")
    calibration.write_records(_records([_summary("b", [7.0], client="librdkafka")]), tmp_path)
    merged = calibration.load_records(tmp_path)[RECOVERY]
    assert [(c["client"], c["judged"]) for c in merged["cases"]] == [("kafka-python", 2), ("librdkafka", 1)]
    assert calibration.load_records()[RECOVERY]["clients"] == ["franz-go", "kafka-python", "librdkafka"]  # committed


def test_runs_of_two_clients_fold_into_one_record_from_their_archives(tmp_path):
    """`k6suite calibrate --from` takes the client from each run's summary; the profile's client library
    does not count as a differing profile setting (its cases are apart), its other client settings do."""
    plain = _run_dir(tmp_path / "p", _summary("p", [1.0]), 3)
    rdkafka = _run_dir(tmp_path / "r", _summary("r", [8.0], client="librdkafka"), 3)
    manifest = json.loads((rdkafka / "manifest.json").read_text())
    manifest["profile"]["client"]["library"] = "librdkafka"
    (rdkafka / "manifest.json").write_text(json.dumps(manifest))
    calibration.calibrate("kafka", None, 1, [plain, rdkafka], directory=tmp_path / "cal")
    gap = calibration.load_records(tmp_path / "cal")[RECOVERY]
    assert {c["client"]: (c["passes"], c["judged"]) for c in gap["cases"]} == \
        {"kafka-python": (1, 1), "librdkafka": (0, 1)}


def _names_in_code() -> tuple[set[str], list[re.Pattern]]:
    """Every string literal of k6suite_lib, and every f-string as a pattern ({...} matches anything): a check
    name the code produces is one of them."""
    literals, patterns = set(), []
    for path in Path("k6suite_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
            elif isinstance(node, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values]
                patterns.append(re.compile("".join(parts)))
    return literals, patterns


# check names observations still use that no longer count against a system, and why
RETIRED = {"consumer-group rebalances": "counted the group's start-up joins as rebalances (replaced by "
                                        "'consumer-group rebalances after the first fault')"}


def test_every_check_name_the_negative_side_uses_is_one_the_code_produces():
    """A planted or observed FAIL under a name no check produces attaches to no record (audit19 L2: the
    observations' "recovery: longest time without an ack ..." and "consumer-group rebalances")."""
    literals, patterns = _names_in_code()

    def produced(name: str) -> bool:
        return name in literals or any(p.fullmatch(name) for p in patterns)

    negatives = calibration.load_negatives()
    named = {*negatives["planted"], *negatives["systems"], *negatives["notes"], *calibration.observed_failures()}
    assert not {name for name in named if not produced(name)}
    assert all(produced(new) for new in calibration.RENAMED.values())
    for folder in sorted(calibration.OBSERVATIONS_DIR.glob("OBS-*")):
        for line in (folder / "README.md").read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| S") else []
            if len(cells) >= 8 and cells[6] == "**FAIL**":
                assert produced(cells[2]) or cells[2] in calibration.RENAMED or cells[2] in RETIRED, \
                    (folder.name, cells[2])


def test_a_renamed_check_keeps_its_observed_failures_and_a_retired_one_does_not():
    """OBS-07's pause FAILed the recovery check under its old name (same measurement, same 5 s): it counts.
    OBS-05/07/08's "consumer-group rebalances" FAILs do not count for the check that replaced it."""
    observed = calibration.observed_failures()
    assert {"system": "KafScale v1.5.0", "evidence": "OBS-07"} in observed[RECOVERY]
    assert "recovery: longest time without an ack, per partition, after the fault starts" not in observed
    assert not any(s["evidence"] in ("OBS-05", "OBS-08")
                   for s in observed.get("consumer-group rebalances after the first fault", []))


def test_real_system_negatives_cite_an_observation_or_a_test_that_exists():
    """A negative citing a run nobody can open (audit19 M4: "matrix 20261204T064311-1e11", a README
    mention) is not evidence: every one names an OBS-NN folder or a test that exists."""
    observations = {"-".join(p.name.split("-", 2)[:2]) for p in calibration.OBSERVATIONS_DIR.glob("OBS-*")}
    for check, found in calibration.load_negatives()["systems"].items():
        for entry in found:
            match = re.fullmatch(r"(tests/test_\w+\.py)::(test_\w+)", entry["evidence"])
            assert entry["evidence"] in observations or (match and match.group(2) in _test_ids(Path(match.group(1)))), \
                (check, entry)
    records = calibration.load_records()
    assert {"system": "KafScale v1.5.0", "evidence": "OBS-16"} in \
        records["acknowledgements resume after each fault ends"]["fails_on"]["systems"]
    assert {"system": "Tansu v0.6.0-510f3e2", "evidence": "OBS-16"} in records[RECOVERY]["fails_on"]["systems"]


def test_the_negative_side_is_read_as_it_is_now_not_as_it_was_when_measured(tmp_path):
    """A planted test added to negatives.json after a record was measured counts at once: `calibrate --render`
    rewrites README.md from it without measuring again."""
    calibration.write_records(_records([_summary("a", [1.0])]), tmp_path)
    assert calibration.unproven(calibration.load_records(tmp_path)[RECOVERY])
    (tmp_path / calibration.NEGATIVES_FILE).write_text(json.dumps(
        {"planted": {RECOVERY: ["tests/test_checkers.py::test_a_gap_that_never_closes_counts_to_the_last_send"]},
         "systems": {}, "notes": {RECOVERY: "a note"}}))
    record = calibration.load_records(tmp_path)[RECOVERY]
    assert record["fails_on"]["planted"] and record["note"] == "a note"
    stored = json.loads((tmp_path / "checks" / f"{calibration.slug(RECOVERY)}.json").read_text())
    assert stored["fails_on"]["planted"] == []  # the record itself is not rewritten
    from k6suite_lib.cli import main

    assert main(["calibrate", "--render", "--dir", str(tmp_path)]) == 0
    assert "planted in 1 test" in (tmp_path / "README.md").read_text()


def test_each_matrix_column_is_held_against_its_own_baseline_topology():
    """Two Kafka columns of different topologies in one matrix: the 3+3 column's NO rests on a current
    record, the 1-broker column's on a stale one (the matrix once held every column against the last)."""
    records = _records([_summary("a", [1.0, 2.0])])
    failed = [{**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}]
    three = {"profile": "k3", "build": KAFKA, "topology": {"brokers": 3, "controllers": 3}}
    one = {"profile": "k1", "build": KAFKA, "topology": {"brokers": 1, "controllers": 0}}
    for order in ([three, one], [one, three]):
        in_use = calibration.baselines_in_use(order)
        assert calibration.caveat("NO", failed, records, matrix._own(in_use, three)) == ""
        assert "stale" in calibration.caveat("NO", failed, records, matrix._own(in_use, one))


def test_verdicts_of_scenarios_that_always_use_kafka_python_are_calibrated_as_kafka_pythons():
    """`--clients franz-go` chooses the workloads' client; S1's probes, S8's tenants and S3's read-your-writes
    are kafka-python whatever the run's client, so their records are kafka-python's (audit20 M3: a solid S8
    NO read 'not calibrated for franz-go')."""
    assert calibration.client_of("S8", "permissions", "franz-go") == "kafka-python"
    assert calibration.client_of("S3", "read-your-writes", "librdkafka") == "kafka-python"
    assert calibration.client_of("S4", "kill#2", "franz-go") == "franz-go"
    leak = {"check": "0 records of one tenant readable by the other", "variant": "permissions", "status": "FAIL",
            "scenario": "S8"}
    committed = calibration.load_records()
    shown = calibration.verdict_note(committed, {}, "S8", leak, "franz-go")
    assert shown["calibrated"] and "with kafka-python" in shown["text"]
    # read against kafka-python's committed S8 case (measured with recorded settings); a verdict whose run recorded
    # none is said to be not compared, which names no difference that would weaken the NO
    assert "client settings of this run not recorded" in shown["text"] and not shown["stale"]
    assert calibration.caveat("NO", [leak], committed, None, "franz-go") == ""
    s8 = {**_summary("s8", [1.0]), "scenarios": [{"scenario": "S8", "client_settings": {"permissions": SETTINGS},
                                                  "verdicts": [{**leak, "status": "PASS", "measured": 0,
                                                                "requirement": "F7", "threshold": "== 0"}]}]}
    measured = _records([s8])
    assert calibration.caveat("NO", [{**leak, "client_settings": SETTINGS}], measured, None, "franz-go") == ""
    summary = {"run_id": "r", "client": "franz-go", "scenarios": [{"scenario": "S8", "verdicts": [leak]}]}
    assert calibration.verdict_rows([summary])[0]["client"] == "kafka-python"


def test_k_of_n_says_how_often_the_baseline_left_a_check_untested():
    """17 of 17 judged while 3 more were NOT TESTED must not read as a plain 17 of 17 (audit20 L2)."""
    tally = {"passes": 17, "judged": 17, "statuses": {"PASS": 17, "NOT TESTED": 3}}
    assert calibration.k_of_n(tally) == "17 of 17 (+3 not tested)"
    assert calibration.k_of_n({**tally, "statuses": {"PASS": 17}}) == "17 of 17"
    assert calibration.k_of_n({"passes": 1, "judged": 2, "lost": 1, "statuses": {}}) == "1 of 3, 1 lost"


def _with_settings(summary: dict, settings: dict | None) -> dict:
    """The summary as a run that recorded its S4 repeats' client settings writes it."""
    scenario = summary["scenarios"][0]
    recorded = {v["variant"]: settings for v in scenario["verdicts"]} if settings is not None else {}
    return {**summary, "scenarios": [{**scenario, "client_settings": recorded}]}


def test_records_keep_each_cases_client_settings_and_a_verdict_of_other_settings_reads_stale():
    """audit20 M4: S8's and read-your-writes' producers became idempotent (1ad1005) after their records were
    measured, and nothing said so. A case keeps the settings its runs recorded; a verdict run with other
    settings reads STALE naming the difference, and a NO resting on it says so."""
    records = _records([_with_settings(_summary("a", [1.0, 2.0]), SETTINGS)])
    lost = records["lost-write"]
    assert lost["cases"][0]["settings"] == SETTINGS
    row = {**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}
    assert not calibration.verdict_note(records, {}, "S4", {**row, "client_settings": SETTINGS})["stale"]
    other = {**SETTINGS, "idempotent": False, "request_timeout_ms": 30000}
    changed = calibration.verdict_note(records, {}, "S4", {**row, "client_settings": other})
    assert changed["stale"] and changed["text"].endswith(
        "STALE: client settings differ: idempotent True measured, False in use; "
        "request_timeout_ms 4000 measured, 30000 in use")
    assert calibration.caveat("NO", [{**row, "client_settings": other}], records).startswith(
        "lost-write calibration stale (client settings differ: idempotent True measured, False in use")
    assert calibration.caveat("NO", [{**row, "client_settings": SETTINGS}], records) == ""
    # a verdict whose run recorded no settings (probes, or a run made before runs recorded them): not compared
    assert not calibration.verdict_note(records, {}, "S4", row)["stale"]
    # a case whose runs recorded none, held against a verdict that did: an unknown, said, not a difference
    unrecorded = _records([_summary("b", [1.0])])
    assert unrecorded["lost-write"]["cases"][0]["settings"] is None
    shown = calibration.verdict_note(unrecorded, {}, "S4", {**row, "client_settings": SETTINGS})
    assert not shown["stale"] and "client settings of the baseline not recorded" in shown["text"]
    assert calibration.caveat("NO", [{**row, "client_settings": SETTINGS}], unrecorded) == ""
    with pytest.raises(ValueError, match="different client settings"):
        _records([_with_settings(_summary("a", [1.0]), SETTINGS), _with_settings(_summary("c", [1.0]), other)])
    # runs that recorded settings folded with runs that did not (made before runs recorded them): not recorded
    mixed = _records([_with_settings(_summary("a", [1.0]), SETTINGS), _summary("d", [1.0])])
    assert mixed["lost-write"]["cases"][0]["settings"] is None


def test_a_record_written_before_cases_kept_client_settings_reads_not_recorded_and_is_not_stale(tmp_path):
    """A committed case without the field is not given settings it was not measured with: it loads as it is and
    every verdict read against it says "client settings ... not recorded", as information: an unknown names no
    difference, so it is not stale and weakens no NO (audit21 M3: every committed case lacked the field, so
    every NO carried "calibration stale"); measuring the case again writes its settings."""
    record = _records([_with_settings(_summary("a", [1.0]), SETTINGS)])["lost-write"]
    old = {**record, "cases": [{k: v for k, v in c.items() if k != "settings"} for c in record["cases"]]}
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "lost-write.json").write_text(json.dumps(old))
    loaded = calibration.load_records(tmp_path)["lost-write"]
    assert "settings" not in loaded["cases"][0]
    for settings in (SETTINGS, None):
        shown = calibration.note(loaded, "S4", "kill", client="kafka-python", settings=settings)
        assert not shown["stale"] and shown["text"].endswith(
            "; client settings of the baseline not recorded (measured before records kept them); "
            "suite commit not recorded")
    assert not calibration.note(loaded)["stale"]  # the check overall, as the calibration README reads it
    calibration.write_records(_records([_with_settings(_summary("b", [1.0]), SETTINGS)]), tmp_path)
    assert calibration.load_records(tmp_path)["lost-write"]["cases"][0]["settings"] == SETTINGS
    broken = {**old, "cases": [{**old["cases"][0], "settings": "idempotent"}]}
    (tmp_path / "checks" / "lost-write.json").write_text(json.dumps(broken))
    assert "case.settings is not an object" in calibration.load_records(tmp_path)["lost-write"]["unreadable"]


def test_only_a_named_settings_difference_makes_a_no_stale_and_probes_depend_on_no_setting(monkeypatch):
    """audit21 M3: a NO is weakened only by a real, named difference of recorded settings. The committed S1 probe
    record (no settings) beside a probe verdict says nothing of settings; the committed lost-write record beside
    a verdict whose run recorded none says the unknown, and neither NO carries a caveat. Planted: the same case
    with recorded settings that differ from the verdict's is STALE and caveats the NO. (The suite the committed
    cases were measured with is held current here: a later change to the checkers must not fail this test.)"""
    monkeypatch.setattr(suite_version, "changed_since", lambda commit, root=None: ())
    committed = calibration.load_records()
    probe = "a client that does not trust the CA is refused"
    shown = calibration.note(committed[probe], "S1", "tls", None, None, None)
    assert not shown["stale"] and "settings" not in shown["text"], shown
    failed = [{"check": probe, "scenario": "S1", "variant": "tls", "status": "FAIL", "client_settings": None}]
    assert calibration.caveat("NO", failed, committed) == ""
    assert not calibration.note(committed[probe], "S1", "tls", None, None, SETTINGS)["stale"]  # never on settings
    lost = [{"check": "lost-write", "scenario": "S3", "variant": "overlap", "status": "FAIL", "client_settings": None}]
    assert calibration.caveat("NO", lost, committed) == ""
    assert "client settings of this run not recorded" in \
        calibration.verdict_note(committed, {}, "S3", lost[0])["text"]
    record = _records([_with_settings(_summary("a", [1.0, 2.0]), SETTINGS)])
    row = {**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}
    assert calibration.caveat("NO", [{**row, "client_settings": SETTINGS}], record) == ""
    other = {**SETTINGS, "acks": 1}
    assert calibration.caveat("NO", [{**row, "client_settings": other}], record) == \
        "lost-write calibration stale (client settings differ: acks all measured, 1 in use)"
    assert "client settings of this run not recorded" in calibration.verdict_note(record, {}, "S4", row)["text"]


def test_calibrating_run_archives_reads_client_settings_from_their_saved_histories(tmp_path):
    """A run made before results recorded client settings (the lead's campaigns) still has them in its
    histories' metadata, with the request timeout in its manifest; a history whose metadata names another
    library than recorded it (S3's read-your-writes once named the run's) gives none."""
    from k6suite_lib import history
    from k6suite_lib.workload.config import client_settings

    run = _run_dir(tmp_path / "r", _summary("r", [1.0, 2.0], client="librdkafka"), 3)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["profile"]["client"]["library"] = "librdkafka"
    (run / "manifest.json").write_text(json.dumps(manifest))
    config = {"acks": "all", "max_in_flight": 1, "linger_ms": 0, "delivery_timeout_s": 30.0}
    meta = {"run_id": "r", "scenario": "S4", "client": "librdkafka", "client_version": "librdkafka 2.12.0",
            "idempotent": False, "config": config}
    empty = history.to_frame([])
    for variant in ("kill#1", "kill#2"):
        history.save(empty, run / "S4-broker-chaos" / f"history-{variant}.parquet", meta={**meta, "variant": variant})
    history.save(empty, run / "S3-correctness" / "history-read-your-writes.parquet",
                 meta={**meta, "scenario": "S3", "variant": "read-your-writes"})
    summary = calibration.with_settings(run, json.loads((run / "summary.json").read_text()))
    expected = {"client": "librdkafka 2.12.0", "idempotent": False, "acks": "all", "delivery_timeout_s": 30.0,
                "request_timeout_ms": 4000}
    assert summary["scenarios"][0]["client_settings"] == {"kill#1": expected, "kill#2": expected}
    assert client_settings({**meta, "request_timeout_ms": 9000}, 4000)["request_timeout_ms"] == 9000
    s3 = {**summary["scenarios"][0], "scenario": "S3", "client_settings": None}
    assert calibration.with_settings(run, {**summary, "scenarios": [
        {k: v for k, v in s3.items() if k != "client_settings"}]})["scenarios"][0]["client_settings"] == {}
    calibration.calibrate("kafka", None, 1, [run], directory=tmp_path / "cal")
    gap = calibration.load_records(tmp_path / "cal")[RECOVERY]
    assert [(c["client"], c["settings"]) for c in gap["cases"]] == [("librdkafka", expected)]
    assert calibration.render(tmp_path / "cal").is_file()
    # a kafka-python run's read-your-writes: trusted only once its producer took the settings its metadata names
    python = {**meta, "scenario": "S3", "variant": "read-your-writes", "client": "kafka-python",
              "client_version": "kafka-python 3.0.12", "idempotent": True}
    s3_only = {**summary, "client": "kafka-python", "scenarios": [{"scenario": "S3", "verdicts": []}]}
    for named, recorded in (({}, {}), ({"request_timeout_ms": 4000}, {"read-your-writes": {
            "client": "kafka-python 3.0.12", "idempotent": True, "acks": "all", "max_in_flight": 1, "linger_ms": 0,
            "delivery_timeout_s": 30.0, "request_timeout_ms": 4000}})):
        history.save(empty, run / "S3-correctness" / "history-read-your-writes.parquet", meta={**python, **named})
        assert calibration.with_settings(run, s3_only)["scenarios"][0]["client_settings"] == recorded


def test_the_report_and_the_matrix_hold_each_verdict_against_its_runs_client_settings(tmp_path):
    """The run's results carry each variant's client settings; a report and a matrix column whose settings
    differ from the record's show STALE beside the verdict and in the NO's caveat."""
    records = _records([_with_settings(_summary("a", [1.0, 2.0]), SETTINGS)])
    other = {**SETTINGS, "idempotent": False}
    kafscale = {**_with_settings(_summary("k", [30.0], build={**KAFKA, "system": "kafscale",
                                                              "label": "kafscale v1.5.0"}, system="kafscale"),
                                 other), "profile": "local"}
    kafscale["scenarios"][0]["verdicts"][1]["status"] = "FAIL"  # a lost write
    page = report.html_report(kafscale, tmp_path, records)
    assert "STALE: client settings differ: idempotent True measured, False in use" in page
    assert "lost-write calibration stale (client settings differ" in page
    same = {**_with_settings(kafscale, SETTINGS), "profile": "local-same"}
    built = matrix.build_matrix([kafscale, same], "m", "smoke", 1.8e9, records)
    caveats = {p: q["cells"][p]["caveat"] for q in built["questions"] for p in ("local", "local-same")
               if q["cells"][p]["answer"] == "NO" and q["cells"][p]["caveat"]}
    assert "client settings differ" in caveats.get("local", "") and "local-same" not in caveats
    row = next(row for q in built["questions"] for row in q["checks"] if row["check"] == "lost-write")
    assert "STALE: client settings differ" in row["calibration"]["kafka-python"]["text"]  # the first column's


def test_a_franz_go_case_measured_before_its_produce_timeout_split_reads_stale():
    """Issue 17: franz-go deadlines a produce at RequestTimeoutOverhead + ProduceRequestTimeout, and 729486b split
    the request timeout between them; a case measured before looked like one measured after (both recorded only
    request_timeout_ms 4000). The program's producers take the options their task names and a history's metadata
    records them: a case that recorded other options (56b9dd8's 4000 + 4000) differs, named. A case that recorded
    none (measured before histories kept them) is not thereby stale (audit22 M2: the S4 cases measured at 729486b
    with today's very split all read "options None measured"): the unknown is said beside the verdict."""
    from k6suite_lib.workload import WorkloadConfig, franzgo
    from k6suite_lib.workload.config import client_settings
    from k6suite_lib.workload.orchestrator import client_options, workload_context

    profile = load_profile("kafka")
    ctx = workload_context(replace(profile, client=replace(profile.client, library="franz-go")), WorkloadConfig())
    split = {"ProduceRequestTimeout_ms": 2000, "RequestTimeoutOverhead_ms": 2000}
    assert franzgo.task(ctx, "producer", 0)["options"] == client_options(ctx) == split
    meta = {"client": "franz-go", "client_version": "franz-go v1.22.3", "idempotent": True, "request_timeout_ms": 4000,
            "config": {"delivery_timeout_s": 30.0}}
    before, after = client_settings(meta), client_settings({**meta, "client_options": split})
    assert before["options"] is None and after["options"] == split
    doubled = {"ProduceRequestTimeout_ms": 4000, "RequestTimeoutOverhead_ms": 4000}
    assert calibration.settings_staleness({"settings": {**before, "options": doubled}}, after) == (
        f"client settings differ: options {doubled} measured, {split} in use")
    assert calibration.settings_staleness({"settings": after}, after) == ""
    unknown = "client setting options of the baseline not recorded, so not compared"
    committed = {key: value for key, value in before.items() if key != "options"}  # as the committed cases hold it
    for case in ({"settings": before}, {"settings": committed}):
        assert calibration.settings_staleness(case, after) == ""
        assert calibration.settings_unrecorded(case, after) == unknown
    assert calibration.settings_unrecorded({"settings": after}, before) == (
        "client setting options of this run not recorded, so not compared")
    # an unknown option hides no other difference
    assert calibration.settings_staleness({"settings": {**committed, "request_timeout_ms": 30000}}, after) == (
        "client settings differ: request_timeout_ms 30000 measured, 4000 in use")
    kafka_python = workload_context(profile, WorkloadConfig())
    assert client_options(kafka_python) is None  # its producers are given nothing beyond the settings


@pytest.mark.parametrize("request_timeout_ms", [4000, 30000, 3001])
def test_franz_go_produce_deadline_is_the_request_timeout(request_timeout_ms):
    """A produce's client-side deadline (overhead + the broker's wait) is the contract's request timeout, and the
    broker's wait stays a usable share of it."""
    from k6suite_lib.workload import franzgo

    options = franzgo.producer_options(request_timeout_ms)
    wait, overhead = options["ProduceRequestTimeout_ms"], options["RequestTimeoutOverhead_ms"]
    assert wait + overhead == request_timeout_ms and request_timeout_ms // 2 <= overhead and wait >= overhead - 1


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=k6suite-test", "-c", "user.email=test@k6suite.invalid", *args],
                          cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def _commit(root: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "change")
    return _git(root, "rev-parse", "HEAD")


@pytest.fixture
def suite_repo(tmp_path, monkeypatch):
    """A git checkout standing in for the suite's own (a real repository of its layout, real git): the suite
    commits a case was measured with are held against it."""
    root = tmp_path / "suite"
    root.mkdir()
    _git(root, "init", "-q")
    monkeypatch.setattr(suite_version, "REPO_ROOT", root)
    suite_version._changed_since.cache_clear()
    yield root
    suite_version._changed_since.cache_clear()


def _case_of(commit: str | None, dirty: bool | None = False) -> dict:
    summary = {**_summary("a", [1.0]), "suite": {"git_commit": commit, "git_dirty": dirty}}
    return _records([summary])


def test_a_case_measured_before_the_suites_recording_or_judging_code_changed_names_the_files(suite_repo):
    """audit21 L5/L7: a case keeps the suite commit its runs were made with, and once the code that records or
    judges (checkers, workloads, clients) differs from the tree in use, committed or not, the verdict's note
    names the files; a change elsewhere (docs, notebooks, a client's own tests) is not named. Named, not held
    stale: a NO resting on such a case keeps its strength (every checker commit would otherwise caveat every
    NO). Mutations tried: comparing commits instead of those files (the docs-only step is named), and holding
    the change stale again (the caveat assertion fails)."""
    measured = _commit(suite_repo, {"k6suite_lib/checkers/anomalies.py": "v1\n", "docs/a.md": "a\n",
                                    "clients/franzgo/main.go": "v1\n"})
    records = _case_of(measured)
    assert records["lost-write"]["cases"][0]["suite"] == [{"commit": measured, "dirty": False}]
    row = {**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}
    _commit(suite_repo, {"docs/a.md": "b\n", "notebooks/x.ipynb": "{}\n", "clients/franzgo/main_test.go": "t\n"})
    shown = calibration.verdict_note(records, {}, "S4", row)
    assert not shown["stale"] and "suite" not in shown["text"], shown
    assert calibration.caveat("NO", [row], records) == ""
    (suite_repo / "clients/franzgo/main.go").write_text("v2\n")  # uncommitted, in use
    suite_version._changed_since.cache_clear()
    shown = calibration.verdict_note(records, {}, "S4", row)
    assert not shown["stale"] and shown["text"].endswith(
        f"suite changed since measured, in the code that records or judges ({measured[:10]}: "
        "clients/franzgo/main.go)"), shown
    assert calibration.caveat("NO", [row], records) == ""
    now = _commit(suite_repo, {"k6suite_lib/checkers/anomalies.py": "v2\n"})
    suite_version._changed_since.cache_clear()
    assert "clients/franzgo/main.go, k6suite_lib/checkers/anomalies.py)" in \
        calibration.verdict_note(records, {}, "S4", row)["text"]
    assert "suite changed" not in calibration.verdict_note(_case_of(now), {}, "S4", row)["text"]


def test_a_suite_commit_git_cannot_find_or_a_dirty_one_is_said_not_stale(suite_repo, monkeypatch):
    """What cannot be compared weakens no NO but is said: a commit this clone does not hold (a shallow clone), a
    run that recorded none, a tree with uncommitted changes when measured, no git at all."""
    now = _commit(suite_repo, {"k6suite_lib/workload/producer.py": "v1\n"})
    row = {**_verdict("lost-write", "FAIL", "kill", 3), "scenario": "S4"}
    cases = {"0123456789" * 4: "suite commit 0123456789 unknown (no git, or not in this clone's history)",
             None: "suite commit not recorded"}
    for commit, said in cases.items():
        shown = calibration.verdict_note(_case_of(commit), {}, "S4", row)
        assert not shown["stale"] and shown["text"].endswith(said), shown
    dirty = calibration.verdict_note(_case_of(now, dirty=True), {}, "S4", row)
    assert not dirty["stale"] and dirty["text"].endswith(
        f"measured with uncommitted changes to suite commit {now[:10]}")
    monkeypatch.setattr(suite_version.shutil, "which", lambda name: None)
    suite_version._changed_since.cache_clear()
    assert suite_version.changed_since(now) is None
    assert suite_version.identity(suite_repo) == {"git_commit": None, "git_dirty": None}


def test_a_runs_manifest_names_its_suite_commit_and_whether_its_judging_code_was_changed(suite_repo, tmp_path):
    """The manifest's suite identity (what a case folds): dirty only for a changed tracked file of the code that
    records or judges, not for the outputs a run writes or the calibration records a campaign rewrites between
    its runs (the campaign of this change read dirty from its second client on); calibrating run archives takes
    each run's from its manifest. Mutation tried: dirty for any tracked change: the records step fails."""
    commit = _commit(suite_repo, {"k6suite_lib/checkers/anomalies.py": "v1\n", "calibration/checks/x.json": "{}\n"})
    assert suite_version.identity(suite_repo) == {"git_commit": commit, "git_dirty": False}
    (suite_repo / "outputs").mkdir()
    (suite_repo / "outputs" / "run.txt").write_text("x\n")
    (suite_repo / "calibration/checks/x.json").write_text('{"cases": []}\n')
    assert suite_version.identity(suite_repo)["git_dirty"] is False
    (suite_repo / "k6suite_lib/checkers/anomalies.py").write_text("v2\n")
    assert suite_version.identity(suite_repo) == {"git_commit": commit, "git_dirty": True}
    run = _run_dir(tmp_path / "run", _summary("r1", [1.0]), 3)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "suite": {"git_commit": commit, "git_dirty": True}}))
    calibration.calibrate("kafka", None, 1, runs=[run], directory=tmp_path / "cal", command="k6suite calibrate")
    case = calibration.load_records(tmp_path / "cal")["lost-write"]["cases"][0]
    assert case["suite"] == [{"commit": commit, "dirty": True}]
