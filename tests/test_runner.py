"""The runner end to end: papermill executes real notebooks against real targets and archives evidence."""

from __future__ import annotations

import json
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from k6suite_lib.runner import run_suite
from tests.conftest import write_profile

pytestmark = [pytest.mark.stack, pytest.mark.slow]
RUNNER_PORT_BASE = 22000


def _verdicts(summary, scenario):
    return next(s for s in summary["scenarios"] if s["scenario"] == scenario)["verdicts"]


def test_s1_and_s3_smoke_run_and_archive(tmp_path, monkeypatch):
    """S1 and S3-smoke with papermill on a one-broker embedded stack; secrets set in the environment
    must appear nowhere in the archive."""
    secret_key = "sk-" + secrets.token_hex(12)
    access_key = "ak-" + secrets.token_hex(6)
    monkeypatch.setenv("K6SUITE_S3_SECRET_KEY", secret_key)
    monkeypatch.setenv("K6SUITE_S3_ACCESS_KEY", access_key)
    monkeypatch.setenv("K6SUITE_TEST_PASSWORD", "pw-" + secrets.token_hex(8))
    profile = write_profile(tmp_path, "runner", RUNNER_PORT_BASE, 1)
    outcome = run_suite(str(profile), ["S1", "S3"], "smoke", out_root=tmp_path / "archive", cell_timeout_s=600,
                        log=lambda _msg: None)
    run_dir = outcome.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())

    for folder in ("S1-connectivity", "S3-correctness"):
        for name in ("executed.ipynb", "executed.html", "results.json"):
            assert (run_dir / folder / name).is_file(), f"{folder}/{name}"
    assert list((run_dir / "S3-correctness").glob("history-*.parquet"))
    assert list((run_dir / "S3-correctness").glob("*.png"))
    assert (run_dir / "stack" / "broker-0.log").is_file()

    # the main S3 variant is clean on one broker: the checker raises no false alarm on a real run
    overlap = [v for v in _verdicts(summary, "S3") if v["variant"] == "overlap"]
    failed = [{k: v[k] for k in ("check", "measured", "threshold", "evidence")}
              for v in overlap if v["status"] != "PASS"]
    assert overlap and not failed, failed
    # S1 decides the single-endpoint question from Metadata
    single = next(v for v in _verdicts(summary, "S1") if v["check"] == "Metadata lists only the endpoint")
    assert single["status"] == "PASS" and single["measured"] == f"127.0.0.1:{RUNNER_PORT_BASE + 92}"
    # exit code follows the verdicts
    assert outcome.exit_code == (0 if summary["counts"]["FAIL"] == 0 else 1)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["target"]["cluster_id"] == f"k6suite-{RUNNER_PORT_BASE}"
    assert manifest["embedded_components"]["kafscale-broker"]["version"] == "v1.5.0"
    assert "report.html" in manifest["files"] and "S3-correctness/executed.ipynb" in manifest["files"]

    junit = ET.parse(run_dir / "junit.xml").getroot()
    cases = junit.findall(".//testcase")
    assert len(cases) == sum(len(s["verdicts"]) for s in summary["scenarios"])
    assert len(junit.findall(".//failure")) == summary["counts"]["FAIL"]
    report = (run_dir / "report.html").read_text()
    assert "Critical questions" in report and "Does acknowledged data survive broker death?" in report

    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in (secret_key, access_key):
                assert value.encode() not in data, f"a secret leaked into {path.relative_to(run_dir)}"


@pytest.mark.timeout(600)  # a hang would be the defect; pytest stops the test and fails it
def test_unreachable_target_fails_fast_with_reason(tmp_path):
    """A profile with a wrong port: FAIL verdicts that say why, in bounded time, and a complete archive."""
    broken = yaml.safe_load(Path("profiles/kafka-local.yaml").read_text())
    broken.update(name="broken", bootstrap_servers=["127.0.0.1:19999"])
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    outcome = run_suite(str(path), ["S1", "S3"], "smoke", out_root=tmp_path / "archive", cell_timeout_s=300,
                        log=lambda _msg: None)
    assert outcome.exit_code == 1
    summary = outcome.summary
    for scenario in ("S1", "S3"):
        failed = [v for v in _verdicts(summary, scenario) if v["status"] == "FAIL"]
        assert failed, scenario
        assert any("127.0.0.1:19999" in v["evidence"] and "refused" in v["evidence"] for v in failed), failed
        assert (outcome.run_dir / f"{scenario}-{'connectivity' if scenario == 'S1' else 'correctness'}"
                / "executed.html").is_file()
    for name in ("summary.json", "junit.xml", "manifest.json", "report.html"):
        assert (outcome.run_dir / name).is_file()
    assert summary["target"]["reachable"] is False


def test_short_broker_kill_run_records_fault_windows(tmp_path):
    """S4 through the runner, one SIGKILL on a one-broker stack: faults land in the history, and every
    S4 check is decided (what KafScale does under the kill is the finding, not the test)."""
    profile = write_profile(tmp_path, "chaos", RUNNER_PORT_BASE + 400, 1)
    outcome = run_suite(str(profile), ["S4"], "smoke", out_root=tmp_path / "archive", cell_timeout_s=600,
                        parameters={"kinds": ["kill"], "rate": 50.0, "not_a_parameter": 1}, log=lambda _msg: None)
    folder = outcome.run_dir / "S4-broker-chaos"
    checks = {v["check"]: v for v in _verdicts(outcome.summary, "S4")}
    recovery = "recovery: longest time without an ack, per partition, after the fault starts"
    for name in ("lost-write", "unseen", "inconsistent-offsets", "readback-missing", "every fault took effect",
                 "client errors beyond retry", recovery, "consumer-group rebalances"):
        assert checks[name]["status"] in ("PASS", "FAIL"), (name, checks[name])
    assert checks["every fault took effect"]["status"] == "PASS"
    from k6suite_lib import history

    frame, meta = history.load(folder / "history-kill.parquet")
    windows = history.fault_windows(frame)
    assert list(windows["fault"]) == ["broker-kill"] and windows["applied"].all()
    assert meta["checker"]["allowed"] == ["duplicate"]  # a non-idempotent producer under faults may retry
    assert (folder / "s4-kill-timeline.png").is_file()
