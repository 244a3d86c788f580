"""The repository's Go modules (the franz-go client, the Kubernetes node and control plane): `go vet` and
`go test` for each, so that their own tests run in the README's test command, not only by hand.

The environment is bootstrap's builds' (the module's go.mod/go.sum, read-only, modules from the Go module
proxy into the usual module cache), so these commands need no module the builds do not. The franz-go
client's tests run under the race detector: its program is concurrent (producers, sampler, flusher) and a
race there, as in TestConnectionRows before its sampler's stop waited, fails only under -race.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from k6suite_lib.stack.layout import REPO_ROOT

GO_TEST_TIMEOUT = "300s"  # go's own bound on a test binary: it panics with every goroutine's stack
COMMAND_TIMEOUT_S = 600  # ours on a command, compiling included (cold build cache, busy cores); pytest's is 900
RACE = {"clients/franzgo"}


def go_modules() -> list[str]:
    """Every folder of the repository with a go.mod, outside hidden folders (.cache, .venv, .git) and run archives."""
    found = []
    for folder, subfolders, files in os.walk(REPO_ROOT):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "outputs")
        if "go.mod" in files:
            found.append(Path(folder).relative_to(REPO_ROOT).as_posix())
    return found


def _go(module: str, *args: str) -> str:
    """Run one go command in the module and return its standard output; its whole output is the failure
    message when it fails."""
    if shutil.which("go") is None:
        pytest.fail("the Go toolchain is not on PATH (bin/bootstrap needs it too)")
    env = dict(os.environ, GOFLAGS="-mod=readonly -buildvcs=false")
    if module in RACE:
        env["CGO_ENABLED"] = "1"  # the race detector needs cgo
    argv = ["go", *args]
    # a session of its own: a timeout kills go and the test binary it started
    proc = subprocess.Popen(argv, cwd=REPO_ROOT / module, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"`{' '.join(argv)}` in {module} did not finish within {COMMAND_TIMEOUT_S} s:\n{out}{err}")
    assert proc.returncode == 0, f"`{' '.join(argv)}` in {module} failed (exit {proc.returncode}):\n{out}{err}"
    return out


def test_the_repository_has_its_go_modules():
    assert {"clients/franzgo", "k8s/node", "k8s/controlplane"} <= set(go_modules()), go_modules()


@pytest.mark.parametrize("module", go_modules())
def test_go_module_vets_and_passes_its_tests(module: str) -> None:
    if not _go(module, "list", "./...").strip():
        pytest.skip(f"{module} has no package without a build tag: a tools.go pinning what bootstrap builds, "
                    "whose build is its check")
    _go(module, "vet", "./...")
    race = ["-race"] if module in RACE else []
    _go(module, "test", "-count=1", f"-timeout={GO_TEST_TIMEOUT}", *race, "./...")
