"""Which suite measured something: its git commit and whether the tree had uncommitted changes.

A run's manifest records them, and each calibration case keeps those of its runs, so a case measured by
code that records or judges differently from the code in use can be told apart (calibration.suite_changes,
said beside a verdict).
Only the files that record or judge count (JUDGING_PATHS): a commit touching the notebooks, the docs or the
stacks leaves every case as it was. git missing, or a commit this clone does not hold (a shallow clone),
is unknown, never a difference.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from k6suite_lib.stack.layout import REPO_ROOT

# the suite's code that records a history (workloads, the franz-go and Java clients) or judges it (the checkers, the
# history view they read, and the scenarios, which choose each check's rules and thresholds)
JUDGING_PATHS = ("k6suite_lib/checkers", "k6suite_lib/workload", "k6suite_lib/scenarios", "k6suite_lib/history.py",
                 "clients")
# a client's own tests record and judge nothing
NOT_JUDGING = (":(exclude)clients/**/*_test.go",)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess | None:
    if shutil.which("git") is None:
        return None
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)


def identity(root: Path = REPO_ROOT) -> dict[str, str | bool | None]:
    """{"git_commit", "git_dirty"} of the checkout at root (None each where git cannot tell); dirty means a
    tracked file of JUDGING_PATHS differs from the commit: what the run recorded or judged with is not the
    commit's. Other changes (the calibration records a campaign writes between its runs, docs, untracked
    outputs) do not count."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"git_commit": None, "git_dirty": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *JUDGING_PATHS, *NOT_JUDGING)
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return {"git_commit": head.stdout.strip() or None, "git_dirty": dirty}


def changed_since(commit: str, root: Path | None = None) -> tuple[str, ...] | None:
    """The files of JUDGING_PATHS that differ between `commit` and the working tree at root (default the
    suite's own checkout; so uncommitted changes in use count too); None when git is missing or does not
    know the commit."""
    return _changed_since(commit, root or REPO_ROOT)


@functools.lru_cache(maxsize=256)
def _changed_since(commit: str, root: Path) -> tuple[str, ...] | None:
    """Cached: a report asks once per case, and a process judges with one tree."""
    known = _git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    if known is None or known.returncode != 0:
        return None
    diff = _git(root, "diff", "--name-only", commit, "--", *JUDGING_PATHS, *NOT_JUDGING)
    if diff is None or diff.returncode != 0:
        return None
    return tuple(line for line in diff.stdout.splitlines() if line)
