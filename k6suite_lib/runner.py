"""The suite runner: scenario notebooks executed headless with papermill, evidence archived.

``outputs/<run-id>/`` receives, per scenario, the executed notebook and its HTML rendering, the
histories, plots and results.json the notebook wrote; then summary.json, junit.xml (one test
case per check), manifest.json (versions, the target's identity, sha256 of every file), the
embedded stack's logs (secrets redacted) and report.html. A failing notebook does not stop the
run: it is evidence, and its failure is a FAIL verdict. The exit code (report.EXIT_CODES) is 0 only
when every critical question asked is YES or NOT PROMISED and no check failed, 1 when any check
failed, 3 when nothing failed but some question asked was NOT TESTED.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from k6suite_lib import __version__, suite_version
from k6suite_lib.checkers.verdicts import STATUSES
from k6suite_lib.profiles import Profile, load_profile
from k6suite_lib.progress import HEADLESS_ENV, Progress, console_mode, read_state
from k6suite_lib.scenario import RESULTS_FILE
from k6suite_lib.secrets import redact
from k6suite_lib.stack.layout import REPO_ROOT, outputs_root

NOTEBOOKS = REPO_ROOT / "notebooks"


@dataclass(frozen=True)
class ScenarioSpec:
    id: str
    notebook: str
    title: str

    @property
    def folder(self) -> str:
        return Path(self.notebook).stem


SCENARIOS: dict[str, ScenarioSpec] = {spec.id: spec for spec in (
    ScenarioSpec("S1", "S1-connectivity.ipynb", "Connectivity through a single endpoint"),
    ScenarioSpec("S2", "S2-observability.ipynb", "Observability and connection storm"),
    ScenarioSpec("S3", "S3-correctness.ipynb", "Produce/consume correctness"),
    ScenarioSpec("S4", "S4-broker-chaos.ipynb", "Broker chaos"),
    ScenarioSpec("S5", "S5-storage-slowness.ipynb", "Object-store slowness and outage"),
    ScenarioSpec("S5b", "S5b-metadata-store.ipynb", "Metadata-store slowness and outage"),
    ScenarioSpec("S6", "S6-scale-out.ipynb", "Scale-out"),
    ScenarioSpec("S7", "S7-rolling-restart.ipynb", "Rolling restart"),
    ScenarioSpec("S8", "S8-permissions.ipynb", "Permission boundary"),
)}
TIERS = ("smoke", "full")


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    exit_code: int
    summary: dict[str, Any]


def run_suite(profile_name: str, scenarios: list[str] | None = None, tier: str = "smoke",
              out_root: Path | None = None, cell_timeout_s: int = 1800, parameters: dict[str, Any] | None = None,
              log: Callable[[str], None] = print, run_id: str = "", run_dir: Path | None = None,
              builds: dict[str, str] | None = None, client: str | None = None) -> RunOutcome:
    """Run the chosen scenarios against a profile's target and archive everything.

    parameters override notebook parameters (e.g. {"repeats": 3}) in every scenario that has them.
    builds (--build) choose the embedded system's build (stack/builds.py) over the profile's.
    client (--clients) chooses the recording client library over the profile's (client.library).
    The archive goes to run_dir (default: <out_root>/<run_id>/; a matrix gives each system a folder).
    """
    import papermill

    from k6suite_lib.stack import running
    from k6suite_lib.workload import new_run_id

    profile = load_profile(profile_name)
    chosen = _choose(scenarios)
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; known: {', '.join(TIERS)}")
    run_id = run_id or new_run_id()
    run_dir = run_dir or (out_root or outputs_root()) / run_id
    run_dir.mkdir(parents=True)
    profile = _with_client(_with_builds(profile, builds or {}, run_dir), client, run_dir)
    started = time.time()
    log(f"run {run_id}: profile {profile.name}, tier {tier}, scenarios {' '.join(s.id for s in chosen)}")
    results = []
    stack_error = ""
    try:
        with running(profile, log=lambda msg: log(f"  [stack] {msg}")) as stack:
            for index, spec in enumerate(chosen, 1):
                log(f"[{index}/{len(chosen)}] {spec.id} {spec.title} ...")
                result = _run_notebook(papermill, spec, profile, run_dir, run_id, tier, cell_timeout_s,
                                       parameters or {})
                if stack is not None:
                    checked = time.monotonic()
                    _check_stack_after(stack, spec, result, log)
                    _add_phase(result, "stack check after", time.monotonic() - checked)
                    result["wall_s"] = round(result["wall_s"] + result["phases"][-1]["duration_s"], 2)
                results.append(result)
                _write_json(run_dir / spec.folder / RESULTS_FILE, result)
                log(f"  {spec.id}: {_tally(result)} in {result.get('duration_s', 0):.0f} s")
            if stack is not None:
                _archive_logs(stack.log_files(since=started), run_dir / "stack")
    except Exception as exc:  # one FAIL that says why the stack cannot serve; what did not run is NOT TESTED
        stack_error = f"{type(exc).__name__}: {exc}"
        log(f"the run could not continue: {stack_error}")
        done = {r["scenario"] for r in results}
        left = [spec for spec in chosen if spec.id not in done]
        results.extend(_failed_result(spec, run_id, tier, profile, "the embedded stack serves clients", stack_error)
                       if index == 0 else _not_run_result(spec, run_id, tier, profile, stack_error)
                       for index, spec in enumerate(left))
    from k6suite_lib import report

    summary = build_summary(results, profile, run_id, tier, started, stack_error)
    _write_json(run_dir / "summary.json", summary)
    (run_dir / "junit.xml").write_text(report.junit_xml(summary))
    (run_dir / "report.html").write_text(report.html_report(summary, run_dir))
    _write_json(run_dir / "manifest.json", build_manifest(summary, profile, run_dir))
    exit_code = report.EXIT_CODES[summary["result"]]
    log(f"{summary['result']}: {summary['counts']} — report: {run_dir / 'report.html'}")
    return RunOutcome(run_id=run_id, run_dir=run_dir, exit_code=exit_code, summary=summary)


STACK_CHECK = "no component died or filled up outside the fault schedule"


def _check_stack_after(stack, spec: ScenarioSpec, result: dict[str, Any], log: Callable[[str], None]) -> None:
    """After each scenario: repair the embedded stack for the next one, and fail this one for every
    component that died (faults heal what they break themselves) or filled its store (an etcd quota)."""
    healed = stack.heal()
    if healed:
        result["healed_after"] = healed
        log(f"  the embedded stack needed repair after {spec.id}: {', '.join(healed)}")
    result["verdicts"].append({
        "variant": "stack", "check": STACK_CHECK, "requirement": "NFR4", "measured": ", ".join(healed) or "none",
        "threshold": "none", "status": "FAIL" if healed else "PASS", "passed": not healed,
        "evidence": "repaired after the scenario: " + ", ".join(healed) if healed
        else "every process of the embedded stack still ran, healthy stores"})
    result["passed"] = result.get("passed", True) and not healed
    unhealthy = stack.unhealthy()
    if unhealthy:  # later scenarios run on a degraded stack: the report must say so
        result["unhealthy_after"] = unhealthy
        log(f"  after {spec.id} the embedded stack is unhealthy: "
            + "; ".join(f"{name}: {why}" for name, why in unhealthy.items()))


def _choose(scenarios: list[str] | None) -> list[ScenarioSpec]:
    if not scenarios:
        return list(SCENARIOS.values())
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [SCENARIOS[s] for s in scenarios]


def _unix_socket_kernels(socket_dir: Path) -> type:
    """A kernel manager whose kernel talks to the runner over Unix sockets in socket_dir: no TCP port
    is opened for the kernel (so ipykernel has no plain-text-TCP warning to print)."""
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class UnixSocketKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:
            return str(socket_dir / "kernel")

    return UnixSocketKernelManager


def _run_notebook(papermill, spec: ScenarioSpec, profile: Profile, run_dir: Path, run_id: str, tier: str,
                  cell_timeout_s: int, overrides: dict[str, Any]) -> dict[str, Any]:
    out_dir = run_dir / spec.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / "executed.ipynb"
    started = time.time()
    error = ""
    watching = threading.Event()
    watcher = threading.Thread(target=_watch_progress, args=(out_dir, spec.id, watching), daemon=True)
    watcher.start()
    try:
        with tempfile.TemporaryDirectory(prefix="k6suite-kernel-") as sockets, _headless_kernels():
            papermill.execute_notebook(
                str(NOTEBOOKS / spec.notebook), str(executed), cwd=str(REPO_ROOT), progress_bar=False,
                execution_timeout=cell_timeout_s, kernel_name="python3",
                kernel_manager_class=_unix_socket_kernels(Path(sockets)),
                parameters={**_known(NOTEBOOKS / spec.notebook, overrides), "profile": profile.source,
                            "tier": tier, "out_dir": str(out_dir), "run_id": run_id})
    except Exception as exc:  # PapermillExecutionError, cell timeouts, kernel deaths: all are findings
        error = f"{type(exc).__name__}: {getattr(exc, 'ename', '')} {getattr(exc, 'evalue', exc)}".strip()[:1000]
    finally:
        watching.set()
        watcher.join(5)
    _render_html(executed)
    results_path = out_dir / RESULTS_FILE
    if results_path.is_file():
        result = json.loads(results_path.read_text())
    else:
        result = _failed_result(spec, run_id, tier, profile, "notebook wrote results", error or "no results.json")
        result["duration_s"] = round(time.time() - started, 2)
    if error:
        result["verdicts"].append({"variant": "notebook", "check": "notebook ran to the end", "requirement": "-",
                                   "measured": "error", "threshold": "no error", "status": "FAIL", "passed": False,
                                   "evidence": error})
        result["passed"] = False
        result["notebook_error"] = error
    result.update(notebook="executed.ipynb", notebook_html="executed.html", folder=spec.folder, title=spec.title)
    result["wall_s"] = round(time.time() - started, 2)
    _add_phase(result, "notebook overhead", result["wall_s"] - result.get("duration_s", 0.0))
    return result


def _add_phase(result: dict[str, Any], phase: str, seconds: float) -> None:
    """Time the runner spent on a scenario outside the notebook's own phases (kernel start, HTML
    rendering, the stack check after it), so the phases add up to the scenario's wall time."""
    result.setdefault("phases", []).append({"variant": "", "phase": phase, "started_s": None,
                                            "duration_s": round(max(seconds, 0.0), 2)})


@contextlib.contextmanager
def _headless_kernels() -> Iterator[None]:
    """Kernels started inside inherit HEADLESS_ENV: the notebook shows no progress bars (they would
    be saved in the executed notebook) and writes its live state for _watch_progress instead."""
    before = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = before


def _watch_progress(out_dir: Path, scenario: str, done: threading.Event) -> None:
    """Until done: show in this console what the headless notebook reports (a bar on a terminal, one
    line per phase in CI or a log)."""
    shown = Progress(scenario, mode=console_mode())
    seen: tuple | None = None
    while not done.wait(1.0):
        state = read_state(out_dir)
        if state is None:
            continue
        key = (state["variant"], state["phase"], state["phases_done"])
        if key != seen:
            shown.enter(state["phase"], state["variant"], state.get("expected_s"))
            seen = key
        shown.update(**state["counts"])
    shown.close()


def _known(notebook: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides this notebook's parameters cell declares (others would only draw warnings)."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    return {name: value for name, value in overrides.items() if name in declared}


def _failed_result(spec: ScenarioSpec, run_id: str, tier: str, profile: Profile, check: str,
                   evidence: str) -> dict[str, Any]:
    return {"scenario": spec.id, "title": spec.title, "run_id": run_id, "tier": tier, "profile": profile.name,
            "target": {}, "duration_s": 0.0, "passed": False, "measurements": {}, "artifacts": [],
            "folder": spec.folder,
            "verdicts": [{"variant": "run", "check": check, "requirement": "-", "measured": "no", "threshold": "yes",
                          "status": "FAIL", "passed": False, "evidence": evidence}]}


def _not_run_result(spec: ScenarioSpec, run_id: str, tier: str, profile: Profile, why: str) -> dict[str, Any]:
    result = _failed_result(spec, run_id, tier, profile, "scenario ran", why)
    result["passed"] = True  # nothing was judged: the stack error is the run's one failure
    result["verdicts"][0].update(status="NOT TESTED", passed=True, measured="not run",
                                 evidence=f"not run: the stack error above ({why[:200]})")
    return result


def _with_builds(profile: Profile, builds: dict[str, str], run_dir: Path) -> Profile:
    """The profile with --build applied, written into the archive as profile.yaml: notebook kernels load
    the profile from a file, and must start (or find) the same build."""
    import yaml

    from k6suite_lib.profiles import with_builds

    chosen = with_builds(profile, builds)
    if chosen is profile:
        return profile
    raw = yaml.safe_load(Path(profile.source).read_text())
    raw["build"] = chosen.build
    written = run_dir / "profile.yaml"
    written.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_profile(written)


def _with_client(profile: Profile, client: str | None, run_dir: Path) -> Profile:
    """The profile with its recording client chosen, written into the archive as profile.yaml (the
    notebooks load it from there) and named <profile>+<client>: a matrix column per system and client."""
    import yaml

    if client is None:
        return profile
    raw = yaml.safe_load(Path(profile.source).read_text())
    raw["name"] = f"{profile.name}+{client}"
    raw.setdefault("client", {})["library"] = client
    if profile.build:
        raw["build"] = profile.build
    written = run_dir / "profile.yaml"
    written.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_profile(written)


def _render_html(notebook: Path) -> None:
    """Redact the executed notebook in place (a traceback could quote anything), then render it."""
    if not notebook.is_file():
        return
    import nbformat
    from nbconvert import HTMLExporter

    notebook.write_text(redact(notebook.read_text()))
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    notebook.with_suffix(".html").write_text(redact(body))


def _archive_logs(files: list[Path], destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for path in files:
        (destination / path.name).write_text(redact(path.read_text(errors="replace")))


def _tally(result: dict[str, Any]) -> str:
    statuses = [v["status"] for v in result["verdicts"]]
    return ", ".join(f"{statuses.count(s)} {s}" for s in STATUSES if s in statuses)


def build_summary(results: list[dict[str, Any]], profile: Profile, run_id: str, tier: str, started: float,
                  stack_error: str = "") -> dict[str, Any]:
    """result: PASS, FAIL or NOT TESTED, from the critical questions the run asked (report.run_result)."""
    from k6suite_lib.report import run_result

    statuses = [v["status"] for r in results for v in r["verdicts"]]
    counts = {s: statuses.count(s) for s in STATUSES}
    target = next((r["target"] for r in results if r.get("target", {}).get("reachable")), None)
    if target is None:
        target = next((r["target"] for r in results if r.get("target")), {})
    from k6suite_lib.calibration import topology
    from k6suite_lib.identity import embedded_build

    built = embedded_build(profile) if profile.embedded else {}
    summary = {
        "run_id": run_id, "profile": profile.name, "system": profile.target_kind, "embedded": profile.embedded,
        "client": profile.client.library,
        "build": built.get("build"), "learned_at_start": built.get("learned_at_start"),
        "topology": topology(profile.summary()["stack"]) if profile.embedded else None,
        "not_promised": profile.not_promised, "tier": tier, "started": started,
        "duration_s": round(time.time() - started, 2), "target": target, "stack_error": stack_error,
        "counts": counts, "scenarios": results,
    }
    summary["result"] = run_result(summary)
    summary["passed"] = summary["result"] == "PASS"
    return summary


def build_manifest(summary: dict[str, Any], profile: Profile, run_dir: Path) -> dict[str, Any]:
    from k6suite_lib.stack import binaries

    packages = {}
    for name in ("kafka-python", "pandas", "papermill", "pyarrow", "matplotlib", "nbconvert", "minio", "kubernetes"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "suite": {"name": "k6suite", "version": __version__, **suite_version.identity()},
        "python": platform.python_version(), "platform": platform.platform(), "packages": packages,
        "run_id": summary["run_id"], "profile": profile.summary(), "target": summary["target"],
        "build": summary.get("build"), "learned_at_start": summary.get("learned_at_start"),
        "embedded_components": binaries.versions(profile.target_kind) if profile.embedded else None,
        "files": {str(p.relative_to(run_dir)): _sha256(p) for p in sorted(run_dir.rglob("*"))
                  if p.is_file() and p.name != "manifest.json"},
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(data, indent=2, default=str)))
