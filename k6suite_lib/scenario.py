"""One scenario run from a notebook: its target, its verdicts, its evidence, its results file.

A notebook opens a Scenario, hands it to the scenario module's steps (each adds verdicts and
returns frames to display), and finishes it, which writes ``results.json`` beside the histories
and plots. The runner and the report read only those files, so a notebook run by hand in
JupyterLab leaves the same evidence as one run by papermill.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from k6suite_lib import clients, history
from k6suite_lib.checker import CheckerConfig, CheckResult, check, latency_summary, verdict_frame
from k6suite_lib.identity import describe_target
from k6suite_lib.profiles import Profile, load_profile
from k6suite_lib.stack.layout import outputs_root
from k6suite_lib.workload import WorkloadResult

RESULTS_FILE = "results.json"


@dataclass
class Scenario:
    scenario: str
    title: str
    profile: Profile
    out_dir: Path
    run_id: str
    tier: str
    target: dict[str, Any]
    stack: Any = None  # the EmbeddedStack of an embedded profile, else None
    started: float = field(default_factory=time.time)
    _verdicts: list[pd.DataFrame] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, scenario: str, title: str, profile: str | Profile, out_dir: str | Path = "", run_id: str = "",
             tier: str = "smoke") -> Scenario:
        """Resolve the profile, make sure an embedded stack runs, and record the target's identity."""
        from k6suite_lib.stack import open_stack
        from k6suite_lib.stack.binaries import install
        from k6suite_lib.workload import new_run_id

        profile = profile if isinstance(profile, Profile) else load_profile(profile)
        clients.apply_version_caps(profile.client.max_api_versions)
        run_id = run_id or new_run_id()
        if not out_dir:
            out_dir = outputs_root() / "interactive" / f"{run_id}-{scenario}"
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stack = None
        if profile.embedded:
            stack = open_stack(profile, log=lambda msg: print(f"[stack] {msg}"))
            if not stack.is_up():
                install(systems=[stack.system], log=lambda _msg: None)
                stack.up()
        return cls(scenario=scenario, title=title, profile=profile, out_dir=out, run_id=run_id, tier=tier,
                   target=describe_target(profile), stack=stack)

    # ------------------------------------------------------------------ reachability
    @property
    def reachable(self) -> bool:
        return bool(self.target.get("reachable"))

    def require_target(self, variant: str) -> bool:
        """False (with a FAIL verdict naming the reason) when the endpoint did not answer at open()."""
        if self.reachable:
            return True
        self.add_check(variant, "target reachable", "F1.1", "no answer", "ApiVersions answered", False,
                       self.target.get("error", "unreachable"))
        return False

    # ------------------------------------------------------------------ verdicts
    def add_verdicts(self, variant: str, verdicts: pd.DataFrame) -> None:
        self._verdicts.append(verdicts.assign(variant=variant))

    def add_check(self, variant: str, check_name: str, requirement: str, measured: Any, threshold: str,
                  passed: bool | None, evidence: str = "", status: str | None = None) -> None:
        self.add_verdicts(variant, verdict_frame([{
            "check": check_name, "requirement": requirement, "measured": measured, "threshold": threshold,
            "passed": passed, "evidence": evidence, "status": status}]))

    def not_tested(self, variant: str, check_name: str, requirement: str, reason: str) -> None:
        self.add_check(variant, check_name, requirement, None, "n/a", None, reason, status="NOT TESTED")

    def verdicts(self) -> pd.DataFrame:
        if not self._verdicts:
            return pd.DataFrame(columns=["variant", "check", "requirement", "measured", "threshold", "status",
                                         "passed", "evidence"])
        frame = pd.concat(self._verdicts, ignore_index=True)
        return frame[["variant", *[c for c in frame.columns if c != "variant"]]]

    # ------------------------------------------------------------------ evidence
    def measure(self, key: str, value: Any) -> Any:
        self.measurements[key] = _jsonable(value)
        return value

    def judge(self, variant: str, result: WorkloadResult, rules: CheckerConfig) -> CheckResult:
        """Check a workload's history, keep the history on disk, record verdicts and latency."""
        verdict = check(result.history, rules)
        path = history.save(result.history, self.out_dir / f"history-{variant}.parquet",
                            meta={**result.meta(), "checker": rules.to_json(), "scenario": self.scenario,
                                  "variant": variant})
        self.artifacts.append(path.name)
        self.add_verdicts(variant, verdict.verdicts)
        self.measure(f"{variant}.stats", verdict.stats)
        self.measure(f"{variant}.latency_ms", latency_summary(result.history).round(2))
        if result.notes:
            self.measure(f"{variant}.notes", result.notes)
        return verdict

    def save_figure(self, figure, name: str) -> Path:
        path = self.out_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        self.artifacts.append(path.name)
        return path

    # ------------------------------------------------------------------ results
    def finish(self) -> pd.DataFrame:
        """Write results.json and return the verdict table (the notebook's last output)."""
        verdicts = self.verdicts()
        aggregate = aggregate_repeats(verdicts)
        payload = {
            "aggregate": None if aggregate is None else json.loads(aggregate.to_json(orient="records")),
            "scenario": self.scenario, "title": self.title, "run_id": self.run_id, "tier": self.tier,
            "profile": self.profile.name, "target": self.target, "started": self.started,
            "duration_s": round(time.time() - self.started, 2),
            "passed": not any(p is False for p in verdicts["passed"]),
            "verdicts": json.loads(verdicts.to_json(orient="records")),
            "measurements": self.measurements, "artifacts": sorted(set(self.artifacts)),
        }
        (self.out_dir / RESULTS_FILE).write_text(json.dumps(payload, indent=2, default=str))
        return verdicts if aggregate is None else aggregate


def aggregate_repeats(verdicts: pd.DataFrame) -> pd.DataFrame | None:
    """Variants run N times are named 'kill#1'..'kill#N'; fold them into one row per check whose
    measurement says how many repeats failed, so a probabilistic bug shows as k of N."""
    base = verdicts["variant"].str.replace(r"#\d+$", "", regex=True)
    if (base == verdicts["variant"]).all():
        return None
    rows = []
    for (variant, check_name), group in verdicts.assign(base=base).groupby(["base", "check"], sort=False):
        statuses = set(group["status"])
        failed = int((group["status"] == "FAIL").sum())
        if failed:
            status = "FAIL"
        elif statuses == {"NOT TESTED"}:
            status = "NOT TESTED"
        else:
            status = "ALLOWED" if "ALLOWED" in statuses else "PASS"
        first_bad = group[group["status"] == "FAIL"]["evidence"]
        rows.append({"variant": variant, "check": check_name, "requirement": group["requirement"].iloc[0],
                     "measured": f"{failed} of {len(group)} repeats failed", "threshold": "0 of N",
                     "status": status, "passed": None if status == "NOT TESTED" else not failed,
                     "evidence": first_bad.iloc[0] if len(first_bad) else group["evidence"].iloc[-1]})
    return pd.DataFrame(rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return json.loads(value.reset_index().to_json(orient="records"))
    if isinstance(value, pd.Series):
        return json.loads(value.to_json())
    return json.loads(json.dumps(value, default=str))
