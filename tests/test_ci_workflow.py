"""The CI workflow in docs/ is what a KafScale repository copies: actionlint (built into the cache by
bootstrap) finds nothing in it, and does find the faults planted in a broken copy of it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from k6suite_lib.stack import binaries

WORKFLOW = Path("docs/ci/k6suite-pr.yml")


def _actionlint(path: Path) -> subprocess.CompletedProcess:
    try:
        exe = binaries.binary_path("actionlint")
    except binaries.BinaryError as exc:
        pytest.fail(f"{exc} (bin/bootstrap builds it)")
    return subprocess.run([str(exe), "-no-color", str(path)], capture_output=True, text=True, timeout=120)


def test_the_pr_workflow_passes_actionlint():
    proc = _actionlint(WORKFLOW)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    text = WORKFLOW.read_text()  # the steps the workflow exists for
    for step in ("--stage pr", "--build \"kafscale=${GITHUB_WORKSPACE}/kafscale\"", "actions/upload-artifact",
                 "bin/bootstrap", "exit 1"):
        assert step in text, step


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    broken = WORKFLOW.read_text()
    broken = broken.replace("path: kafscale\n", "pth: kafscale\n", 1)  # an input actions/checkout does not have
    broken = broken.replace("steps.suite.outputs.exit_code", "steps.suit.outputs.exit_code")  # no such step
    planted = tmp_path / "broken.yml"
    planted.write_text(broken)
    proc = _actionlint(planted)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert '"pth" is not defined' in proc.stdout and '"suit"' in proc.stdout, proc.stdout
