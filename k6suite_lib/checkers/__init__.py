"""Checkers: pure functions of a history that return verdict rows, composed per scenario.

- ``verdicts``: verdict rows, statuses and the thresholds that decide them;
- ``registry``: named checkers, CheckSpec and ``compose`` (Jepsen's checker/compose);
- ``anomalies``: the core: lost writes, duplicates, inconsistent offsets, positions, ...;
- ``readback``: the final read-back against the end of the log;
- ``availability``: faults applied, recovery, acks resuming, fault-free throughput, client errors;
- ``clients``: rebalances, reconnections, metadata changes, new brokers serving;
- ``groups``, ``reads``, ``slowness``: group protocol, overlap and read-your-writes, slow storage;
- ``storage``: the bucket read directly, held against acknowledgements and the read-back (F6);
- ``measures``: latency, throughput and other descriptions the checkers and plots share.

``judge(view, specs)`` runs a composition; ``k6suite check`` does the same from a saved history.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from k6suite_lib import history
from k6suite_lib.checkers import (  # noqa: F401 - importing registers their checkers
    availability,
    clients,
    groups,
    readback,
    reads,
    slowness,
    storage,
)
from k6suite_lib.checkers.anomalies import (
    ANOMALIES,
    NEVER_ALLOWED,
    AnomalyRules,
    anomaly_count,
    default_allowed,
    find_anomalies,
)
from k6suite_lib.checkers.readback import PASSED_ACKS, PAST_ACKS, REACHED
from k6suite_lib.checkers.registry import CHECKERS, CheckSpec, compose, specs_from_meta
from k6suite_lib.checkers.verdicts import VERDICT_COLUMNS, failed, not_tested, verdict, verdict_frame
from k6suite_lib.history import View
from k6suite_lib.profiles import UNWAIVABLE

# every history is judged by these, whatever composition it carries: what was acknowledged against
# what was read, how far the read-back got, and (where a listing exists) what storage holds
CORE_CHECKS = ("anomalies", "readback", "storage")
RESUME_BOUND_S = 10.0  # the fault scenarios' bound (scenarios/chaos.py)
# the rows of the anomalies and readback checkers: a run's correctness and durability answers rest on
# them, so a re-check that left one NOT TESTED is not a pass (storage judges only where a listing exists)
CORE_ROWS = frozenset({"acknowledged sends", "unacknowledged sends", *ANOMALIES, REACHED, PAST_ACKS, PASSED_ACKS})


def default_composition(frame: pd.DataFrame, meta: dict) -> list[CheckSpec]:
    """For a history that carries no composition (format 1, or written by another tool): the core
    checks, and when it records faults the availability checks every fault scenario runs."""
    specs = [CheckSpec("anomalies", dict(meta.get("checker") or {})), CheckSpec("readback"), CheckSpec("storage")]
    faults = frame[frame["f"] == "fault"]
    if faults.empty:
        return specs
    starts = sum(1 for d in faults["detail"] if d and json.loads(d).get("phase") == "start")
    specs += [CheckSpec("faults-applied", {"rows": 2 * starts}), CheckSpec("acks-resume", {"bound_s": RESUME_BOUND_S}),
              CheckSpec("client-errors")]
    rate = (meta.get("config") or {}).get("rate")
    if rate:
        specs.append(CheckSpec("fault-free-acks", {"rate": float(rate)}))
    return specs


def recheck_composition(frame: pd.DataFrame, meta: dict) -> tuple[list[CheckSpec], list[str]]:
    """The composition a saved history is re-judged with, held to the rules of a run: its stored
    one completed with any core check it lacks (or the default one), and the names added.

    Raises ValueError when its metadata waives a promise no system may waive (as a profile would)."""
    waived = sorted(r for r in (meta.get("not_promised") or {}) if str(r).split(".")[0] in UNWAIVABLE)
    if waived:
        raise ValueError(f"the history's metadata waives {', '.join(waived)}: {', '.join(UNWAIVABLE)} cannot be "
                         "waived, a waiver would hide lost or wrong data")
    if "checks" not in meta:
        return default_composition(frame, meta), []
    specs = [_reordering_of_its_client(_duplicates_need_evidence(s), meta) for s in specs_from_meta(meta)]
    added = [CheckSpec(name) for name in CORE_CHECKS if name not in {s.name for s in specs}]
    return [*added, *specs], [s.name for s in added]


def _duplicates_need_evidence(spec: CheckSpec) -> CheckSpec:
    """Histories judged before duplicates needed their producer's own retry as evidence stored a wholesale
    allowance; a run no longer grants one, so neither does a re-check: the duplicate is ALLOWED only where
    the history records that retry."""
    allowed = spec.params.get("allowed") or ()
    if spec.name != "anomalies" or "duplicate" not in allowed:
        return spec
    return CheckSpec(spec.name, {**spec.params, "allowed": [c for c in allowed if c != "duplicate"],
                                 "retried_duplicates": True})


def _reordering_of_its_client(spec: CheckSpec, meta: dict) -> CheckSpec:
    """Histories written before their metadata carried ``max_in_flight`` were judged with kafka-python's
    in-flight limit whatever library recorded them (WorkloadConfig.max_in_flight configures kafka-python
    only): a librdkafka producer without idempotence ran with its own 1,000,000 requests in flight and
    may reorder, as a run now allows."""
    from k6suite_lib.workload.config import DEFAULT_IN_FLIGHT

    if spec.name != "anomalies" or "max_in_flight" in meta or meta.get("client") not in DEFAULT_IN_FLIGHT:
        return spec
    idempotent = bool(meta.get("idempotent"))
    in_flight = DEFAULT_IN_FLIGHT[meta["client"]][1 if idempotent else 0]
    allowed = set(spec.params.get("allowed") or ()) | default_allowed(idempotent, in_flight)
    return CheckSpec(spec.name, {**spec.params, "allowed": sorted(allowed)})


def recheck(path, anomaly_overrides: dict | None = None) -> tuple[View, pd.DataFrame]:
    """Judge a saved history again with the composition saved in it, completed with the core checks
    (anomaly rules overridable); see recheck_composition.

    Raises ValueError for an override no configuration may make (e.g. allowing lost writes)."""
    frame, meta = history.load(path)
    specs, _ = recheck_composition(frame, meta)
    if anomaly_overrides:
        specs = [CheckSpec(s.name, {**s.params, **anomaly_overrides}) if s.name == "anomalies" else s for s in specs]
    for spec in specs:
        if spec.name == "anomalies":  # validates before judging: a refused rule (stored or given) is a usage error
            AnomalyRules(allowed=frozenset(spec.params.get("allowed", ())), min_acked=spec.params.get("min_acked", 1))
    view = View(frame, meta, sidecar_dir=Path(path).parent)
    return view, compose(view, specs, meta.get("not_promised") or {})


def untested_core(verdicts: pd.DataFrame) -> list[str]:
    """The core rows (CORE_ROWS) a judgement left NOT TESTED, in order."""
    return list(verdicts[verdicts["check"].isin(CORE_ROWS) & (verdicts["status"] == "NOT TESTED")]["check"])


__all__ = [
    "ANOMALIES", "CHECKERS", "CORE_ROWS", "NEVER_ALLOWED", "VERDICT_COLUMNS", "AnomalyRules", "CheckSpec",
    "anomaly_count", "compose", "default_allowed", "default_composition", "failed", "find_anomalies", "not_tested",
    "recheck", "recheck_composition", "specs_from_meta", "untested_core", "verdict", "verdict_frame",
]
