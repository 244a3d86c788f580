"""One scenario run from a notebook: its target, its verdicts, its evidence, its results file.

A notebook opens a Scenario, hands it to the scenario module's steps (each adds verdicts and
returns frames to display), and finishes it, which writes ``results.json`` beside the histories
and plots. The runner and the report read only those files, so a notebook run by hand in
JupyterLab leaves the same evidence as one run by papermill.

Scenarios compose checkers; they do not judge. ``judge`` saves a workload's history with the
composition (and the profile's waived promises) in its metadata, then runs the same composition
that ``k6suite check HISTORY`` runs later, so the two tables are the same by construction.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from k6suite_lib import clients, history, profiles
from k6suite_lib.checkers import CheckSpec, compose, find_anomalies, verdict_frame
from k6suite_lib.checkers.measures import latency_summary
from k6suite_lib.identity import describe_target
from k6suite_lib.profiles import Profile, load_profile
from k6suite_lib.progress import Progress, in_notebook
from k6suite_lib.stack.layout import outputs_root
from k6suite_lib.workload import Nemesis, WorkloadConfig, WorkloadResult, run_workload
from k6suite_lib.workload.config import client_settings

RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class Judgement:
    """A judged history: its view (for measures and plots) and its verdict table."""

    view: history.View
    verdicts: pd.DataFrame


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
    progress: Progress = field(default_factory=lambda: Progress("", mode="quiet"))
    _verdicts: list[pd.DataFrame] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    judgements: dict[str, Judgement] = field(default_factory=dict)
    # variant -> the settings its clients ran with (workload.config.client_settings), which a verdict's
    # calibration record is held against; a variant without recording clients (probes) has none
    client_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: frozenset[str] | None = None  # a CI stage's subset of the scenario's variants; None: every one

    @classmethod
    def open(cls, scenario: str, title: str, profile: str | Profile, out_dir: str | Path = "", run_id: str = "",
             tier: str = "smoke") -> Scenario:
        """Resolve the profile, make sure an embedded stack runs, and record the target's identity."""
        from k6suite_lib.stack import open_stack
        from k6suite_lib.stack.binaries import install
        from k6suite_lib.workload import new_run_id

        started = time.time()
        profile = profile if isinstance(profile, Profile) else load_profile(profile)
        run_id = run_id or new_run_id()
        if not out_dir:
            out_dir = outputs_root() / "interactive" / f"{run_id}-{scenario}"
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        progress = Progress(scenario, out)
        progress.enter("stack checks")
        stack = None
        if profile.embedded:
            stack = open_stack(profile, log=lambda msg: print(f"[stack] {msg}"))
            if not stack.is_up():
                install(systems=[stack.system], log=lambda _msg: None, builds=profile.build)
                stack.up()
        clients.apply_version_caps(clients.version_caps(profile))
        return cls(scenario=scenario, title=title, profile=profile, out_dir=out, run_id=run_id, tier=tier,
                   target=describe_target(profile), stack=stack, started=started, progress=progress)

    def wants(self, variant: str) -> bool:
        """Whether this run includes the variant: a CI stage runs a scenario's core, not all of it."""
        return self.variants is None or variant in self.variants

    # ------------------------------------------------------------------ reachability
    @property
    def reachable(self) -> bool:
        return bool(self.target.get("reachable"))

    def require_target(self, variant: str) -> bool:
        """False (with a FAIL verdict naming the reason) when the endpoint did not answer at open().
        Every step of a scenario starts here, so its time counts as the variant's probes until the
        step enters a phase of its own (a workload's set-up)."""
        self.progress.enter("probes", variant)
        if self.reachable:
            return True
        self.add_check(variant, "target reachable", "F1.1", "no answer", "ApiVersions answered", False,
                       self.target.get("error", "unreachable"))
        return False

    # ------------------------------------------------------------------ verdicts
    def add_verdicts(self, variant: str, verdicts: pd.DataFrame) -> None:
        self._verdicts.append(verdicts.assign(variant=variant))

    def add_rows(self, variant: str, rows: list[dict[str, Any]]) -> None:
        """Verdict rows made outside a history (probes): checks of promises the system never made
        are shown as NOT PROMISED, like the history checks."""
        self.add_verdicts(variant, verdict_frame(rows, self.profile.not_promised))

    def add_check(self, variant: str, check_name: str, requirement: str, measured: Any, threshold: str,
                  passed: bool, evidence: str = "") -> None:
        """A probe verdict decided by the caller (S1, S2): measured and threshold as shown."""
        self.add_rows(variant, [{"check": check_name, "requirement": requirement, "measured": measured,
                                 "threshold": threshold, "status": "PASS" if passed else "FAIL",
                                 "evidence": evidence}])

    def not_tested(self, variant: str, check_name: str, requirement: str, reason: str) -> None:
        from k6suite_lib.checkers import not_tested

        self.add_rows(variant, [not_tested(check_name, requirement, reason)])

    def absent_component(self, variant: str, check_name: str, requirement: str, reason: str) -> None:
        from k6suite_lib.checkers.verdicts import absent_component

        self.add_rows(variant, [absent_component(check_name, requirement, reason)])

    def verdicts(self) -> pd.DataFrame:
        if not self._verdicts:
            return pd.DataFrame(columns=["variant", "check", "requirement", "measured", "threshold", "status",
                                         "passed", "evidence"])
        frame = pd.concat(self._verdicts, ignore_index=True)
        return frame[["variant", *[c for c in frame.columns if c != "variant"]]]

    # ------------------------------------------------------------------ workloads and evidence
    def run_workload(self, variant: str, config: WorkloadConfig, nemesis: Nemesis | None = None) -> WorkloadResult:
        """One workload of this scenario, its phases timed and shown under the variant's name."""
        self.progress.enter("set-up", variant)
        return run_workload(self.profile, config, run_id=self.run_id, nemesis=nemesis, progress=self.progress)

    def measure(self, key: str, value: Any) -> Any:
        self.measurements[key] = _jsonable(value)
        return value

    def judge(self, variant: str, result: WorkloadResult, checks: list[CheckSpec]) -> Judgement:
        """Save the history with the composition that judges it, run that composition, keep the verdicts.

        Every judged workload is also held against what the target's object store holds (F6): the
        bucket is read directly and saved beside the history, and the storage checker joins the
        composition (NOT TESTED with the reason where there is no object store to read).
        """
        self.progress.enter("judge", variant)
        storage_spec, sidecars = self._read_storage(variant, result)
        checks = [*checks, storage_spec]
        meta = {**result.meta(), "checks": [c.to_json() for c in checks], "not_promised": self.profile.not_promised,
                "scenario": self.scenario, "variant": variant, **sidecars}
        path = history.save(result.history, self.out_dir / f"history-{variant}.parquet", meta=meta)
        settings = client_settings(meta)
        if settings is not None:
            self.client_settings[variant] = settings
        view = history.View(result.history, meta, sidecar_dir=self.out_dir)
        verdicts = compose(view, checks, self.profile.not_promised)
        self.artifacts.append(path.name)
        self.add_verdicts(variant, verdicts)
        self.judgements[variant] = Judgement(view=view, verdicts=verdicts)
        _, stats = find_anomalies(view)
        self.measure(f"{variant}.stats", stats)
        self.measure(f"{variant}.latency_ms", latency_summary(view).round(2))
        if result.notes:
            self.measure(f"{variant}.notes", result.notes)
        if "storage" in sidecars:
            self._plot_storage(variant, view)
        return self.judgements[variant]

    def anomalies(self, per_class: int = 10) -> pd.DataFrame:
        """The offending history rows of every judged variant, at most per_class of each anomaly class:
        what a person debugging the run looks at first."""
        frames = []
        for variant, judgement in self.judgements.items():
            found, _ = find_anomalies(judgement.view)
            frames += [rows.head(per_class).assign(variant=variant, anomaly=name) for name, rows in found.items()
                       if len(rows)]
        if not frames:
            return pd.DataFrame(columns=["variant", "anomaly", *history.COLUMNS])
        shown = [c for c in ("variant", "anomaly", *history.COLUMNS) if c in frames[0].columns]
        return pd.concat(frames, ignore_index=True)[shown]

    def history(self, variant: str | None = None) -> pd.DataFrame:
        """A judged variant's history (every variant's, with a variant column, by default) to explore."""
        chosen = [variant] if variant else list(self.judgements)
        if not chosen:  # nothing was judged (an unreachable target): an empty history, not an error
            return pd.DataFrame(columns=[*history.COLUMNS, "variant"])
        return pd.concat([self.judgements[v].view.frame.assign(variant=v) for v in chosen], ignore_index=True)

    def _read_storage(self, variant: str, result: WorkloadResult) -> tuple[CheckSpec, dict[str, str]]:
        """The storage check for this target, and the sidecar it reads: the listing of the workload's
        topic, read from the bucket straight after the workload (or why it could not be)."""
        from k6suite_lib.storage import DATA_KIND, StorageError, read_bucket

        store = self.profile.object_store
        if self.profile.target_kind not in DATA_KIND or not store.endpoint:
            why = (f"the {self.profile.target_kind} target keeps its data on the brokers' disks: there is no object "
                   "store to read" if self.profile.target_kind == "kafka" else "the profile names no object store")
            return CheckSpec("storage", {"unavailable": why}), {}
        access, secret = profiles.secret(store.access_key_env), profiles.secret(store.secret_key_env)
        if not (access and secret):
            return CheckSpec("storage"), {"storage_error": f"no credentials in {store.access_key_env} and "
                                                           f"{store.secret_key_env}: the bucket cannot be read"}
        try:
            listing = read_bucket(self.profile.target_kind, store.endpoint, store.bucket, access, secret,
                                  topic=result.topic, prefix=storage_prefix(self.profile), timeout_s=60)
        except (StorageError, OSError) as exc:
            return CheckSpec("storage"), {"storage_error": f"reading the bucket failed: {exc}"}
        path = listing.save(self.out_dir / f"storage-{variant}.parquet")
        self.artifacts.append(path.name)
        return CheckSpec("storage"), {"storage": path.name}

    def _plot_storage(self, variant: str, view: history.View) -> None:
        from k6suite_lib.storage import StorageListing, storage_plot

        listing = StorageListing.load(self.out_dir / view.meta["storage"])
        if listing.objects.empty:
            return
        slug = re.sub(r"[^a-z0-9]+", "-", f"{self.scenario}-{variant}".lower())
        self.save_figure(storage_plot(listing, f"{self.scenario} {variant}: objects in storage",
                                      fault_windows=history.wall_windows(view)), f"{slug}-storage")

    def save_figure(self, figure, name: str) -> Path:
        """Saved for the report, and shown where the notebook's reader is (inside a notebook)."""
        path = self.out_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        self.artifacts.append(path.name)
        if in_notebook():
            from IPython.display import Image, display

            display(Image(filename=str(path)))
        return path

    # ------------------------------------------------------------------ results
    def finish(self) -> pd.DataFrame:
        """Write results.json and return the verdict table (the notebook's last output). A scenario
        in which no check ran fails: a run that judged nothing must never read as a pass."""
        if not self._verdicts:
            self.add_check("scenario", "at least one check ran", "-", 0, ">= 1", False,
                           "the parameters selected nothing to run (e.g. an empty kinds list or repeats=0)")
        self.progress.close()
        verdicts = self.verdicts()
        aggregate = aggregate_repeats(verdicts)
        payload = {
            "aggregate": None if aggregate is None else json.loads(aggregate.to_json(orient="records")),
            "scenario": self.scenario, "title": self.title, "run_id": self.run_id, "tier": self.tier,
            "profile": self.profile.name, "target": self.target, "started": self.started,
            "duration_s": round(time.time() - self.started, 2), "phases": self.progress.records(),
            "passed": not any(p is False for p in verdicts["passed"]),
            "verdicts": json.loads(verdicts.to_json(orient="records")),
            "measurements": self.measurements, "artifacts": sorted(set(self.artifacts)),
            "client_settings": self.client_settings,
        }
        (self.out_dir / RESULTS_FILE).write_text(json.dumps(payload, indent=2, default=str))
        return verdicts if aggregate is None else aggregate


def storage_prefix(profile: Profile) -> str:
    """Where the target's keys start in its bucket: KafScale's S3 namespace (KAFSCALE_S3_NAMESPACE; its
    operator sets the KafscaleCluster's namespace), "" for Tansu (every cluster is read)."""
    return profile.object_store.namespace if profile.target_kind == "kafscale" else ""


def aggregate_repeats(verdicts: pd.DataFrame) -> pd.DataFrame | None:
    """Variants run N times are named 'kill#1'..'kill#N'; fold them into one row per check whose
    measurement says how many repeats failed, so a probabilistic bug shows as k of N."""
    base = verdicts["variant"].str.replace(r"#\d+$", "", regex=True)
    if (base == verdicts["variant"]).all():
        return None
    rows = []
    for (variant, check_name), group in verdicts.assign(base=base).groupby(["base", "check"], sort=False):
        counts = group["status"].value_counts()
        failed, untested = int(counts.get("FAIL", 0)), int(counts.get("NOT TESTED", 0))
        if failed:
            status = "FAIL"
        elif set(counts.index) == {"NOT PROMISED"}:
            status = "NOT PROMISED"
        elif untested:  # a pass claims every repeat: one that measured nothing makes the fold untested
            status = "NOT TESTED"
        else:
            status = "ALLOWED" if "ALLOWED" in counts else "PASS"
        measured = f"{failed} of {len(group)} repeats failed" + (f", {untested} not tested" if untested else "")
        first_bad = group[group["status"] == "FAIL"]["evidence"]
        rows.append({"variant": variant, "check": check_name, "requirement": group["requirement"].iloc[0],
                     "measured": measured, "threshold": "0 of N", "status": status,
                     "passed": None if status in ("NOT TESTED", "NOT PROMISED") else not failed,
                     "evidence": first_bad.iloc[0] if len(first_bad) else group["evidence"].iloc[-1]})
    return pd.DataFrame(rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return json.loads(value.reset_index().to_json(orient="records"))
    if isinstance(value, pd.Series):
        return json.loads(value.to_json())
    return json.loads(json.dumps(value, default=str))
