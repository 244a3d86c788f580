"""The reports in a real browser: headless Chromium loads report.html and the matrix report built from
small summaries with real matplotlib plots; every image must load, every link resolve inside the
archive, no table spill, and a screenshot must land beside the report. Defects planted in a page must
each be found, or the check could not fail.

Chromium missing is a failure, not a skip: bin/bootstrap installs it and CI runs bootstrap first, so a
skip would only hide that the reports were never opened.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from k6suite_lib import plots
from k6suite_lib.browser import VIEWPORT, BrowserCheck, check_report, find_chromium
from k6suite_lib.history import View
from k6suite_lib.matrix import build_matrix, matrix_html
from k6suite_lib.report import html_report
from tests import histories

pytestmark = pytest.mark.timeout(180)
LONG_TOKEN = "TOPIC_AUTHORIZATION_FAILED/" * 12  # one unbreakable word, like real S8 evidence
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def chromium() -> None:
    if find_chromium() is None:
        pytest.fail("no 'chromium' on PATH: run bin/bootstrap (it installs the Debian package)")


def _verdict(check: str, status: str, measured: str = "3", evidence: str = "") -> dict[str, Any]:
    return {"variant": "overlap", "check": check, "requirement": "F2", "measured": measured, "threshold": "== 0",
            "status": status, "passed": status != "FAIL", "evidence": evidence or f"evidence of {check}"}


def _summary(profile: str) -> dict[str, Any]:
    """Two scenarios, S3 with plots; long unbreakable values where real runs have them."""
    return {
        "run_id": "r1", "profile": profile, "system": f"{profile} 1.0", "tier": "smoke", "started": 1.8e9,
        "duration_s": 12.0, "passed": False, "stack_error": "",
        "counts": {"PASS": 2, "FAIL": 1, "ALLOWED": 0, "NOT TESTED": 1, "NOT PROMISED": 0},
        "target": {"endpoint": "127.0.0.1:29092", "cluster_id": "c1", "brokers": [f"127.0.0.1:{p}" for p in range(40)]},
        "scenarios": [
            {"scenario": "S1", "title": "Connectivity", "duration_s": 3, "passed": True, "folder": "S1-connectivity",
             "notebook": "executed.ipynb", "notebook_html": "executed.html", "artifacts": [],
             "measurements": {"client_log": {"ERROR kafka.net.connection": LONG_TOKEN}},
             "verdicts": [_verdict("Metadata lists only the endpoint", "PASS"), _verdict("tls", "NOT TESTED")]},
            {"scenario": "S3", "title": "Correctness", "duration_s": 9, "passed": False, "folder": "S3-correctness",
             "notebook": "executed.ipynb", "notebook_html": "executed.html",
             "artifacts": ["s3-timeline.png", "s3-latency.png"], "measurements": {},
             "verdicts": [_verdict("lost-write", "FAIL", evidence=LONG_TOKEN),
                          _verdict("duplicate", "PASS")]},
        ],
    }


def _archive(run_dir: Path, profile: str = "local") -> dict[str, Any]:
    """A run archive as the runner leaves it: scenario folders with real plots, then report.html."""
    summary = _summary(profile)
    view = View(histories.frame(histories.clean_rows(histories.Spec(3, 2, 200, 2), random.Random(1))))
    for scenario in summary["scenarios"]:
        folder = run_dir / scenario["folder"]
        folder.mkdir(parents=True)
        for name in ("executed.ipynb", "executed.html", "results.json"):
            (folder / name).write_text("{}")
    plots.timeline(view, "S3 overlap").savefig(run_dir / "S3-correctness" / "s3-timeline.png", dpi=60)
    plots.latency_cdf(view).savefig(run_dir / "S3-correctness" / "s3-latency.png", dpi=60)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "report.html").write_text(html_report(summary, run_dir))
    return summary


def _assert_screenshot(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= VIEWPORT[0] and height > VIEWPORT[1], (width, height)  # the whole page, not the window


def _assert_whole(check: BrowserCheck) -> None:
    assert check.ok, "\n".join(check.problems())


def test_report_with_plots_is_whole_in_a_browser(tmp_path):
    _archive(tmp_path)
    check = check_report(tmp_path / "report.html", tmp_path / "report.png")
    _assert_whole(check)
    assert check.images == 2 and check.links >= 8  # the plots; scenario anchors and notebook links
    _assert_screenshot(tmp_path / "report.png")  # how long it took: benchmarks/browser_check.py


def test_planted_defects_are_each_found(tmp_path):
    run_dir = tmp_path / "run"
    _archive(run_dir)
    (tmp_path / "outside.html").write_text("<p>not in the archive</p>")
    planted = """<img src="S3-correctness/missing.png" alt="gone">
<p><a href="S3-correctness/missing.html">a</a> <a href="#nowhere">b</a> <a href="report.html#S9">c</a>
<a href="../outside.html">d</a> <a href="https://example.org/">e</a></p>
<table><tr><td><span style="white-space:nowrap">{wide}</span></td></tr></table>
<table style="table-layout:fixed"><tr><td style="width:10em"><span style="white-space:nowrap">{cell}</span></td>
<td>fits</td></tr></table>
</body>""".format(wide="wide " * 400, cell="spills " * 40)
    page = run_dir / "report.html"
    page.write_text(page.read_text().replace("</body>", planted))
    check = check_report(page, run_dir / "report.png")
    assert check.broken_images == ["S3-correctness/missing.png"]
    assert check.broken_links == ["S3-correctness/missing.html (no such file)", "#nowhere (no element has this id)",
                                  "report.html#S9 (the file has no element with this id)",
                                  "../outside.html (outside the archive)", "https://example.org/ (leaves the archive)"]
    assert any("the table spans" in o and "wide wide" in o for o in check.overflows), check.overflows
    assert any("a td holds" in o and "spills spills" in o for o in check.overflows), check.overflows
    assert any(o.startswith("the page is") for o in check.overflows), check.overflows  # the wide table
    assert not check.ok and len(check.problems()) == 6 + len(check.overflows)
    _assert_screenshot(run_dir / "report.png")


def test_matrix_report_is_whole_in_a_browser(tmp_path):
    summaries = []
    for profile in ("local", "kafka"):
        summaries.append(_archive(tmp_path / profile, profile))
    summaries[1]["scenarios"][1]["verdicts"][0]["status"] = "PASS"
    matrix = build_matrix(summaries, "r1", "smoke", 1.8e9)
    (tmp_path / "report.html").write_text(matrix_html(matrix))
    check = check_report(tmp_path / "report.html", tmp_path / "matrix.png")
    _assert_whole(check)
    assert check.links > 2 * len(matrix["questions"])  # every cell links into a system's archive
    _assert_screenshot(tmp_path / "matrix.png")
