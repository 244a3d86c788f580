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
    find_anomalies,
    reordering_needs_retry,
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
    """Histories judged before duplicates and reorderings needed their producer's own retry as evidence
    stored a wholesale allowance; a run no longer grants one, so neither does a re-check: the duplicate
    (the reordering) is ALLOWED only where the history records that retry of the record (of the earlier
    send)."""
    allowed = spec.params.get("allowed") or ()
    if spec.name != "anomalies" or not {"duplicate", "nonmonotonic-send"} & set(allowed):
        return spec
    return CheckSpec(spec.name, {**spec.params, "allowed": [c for c in allowed if c not in ("duplicate",
                                                                                          "nonmonotonic-send")],
                                 "retried_duplicates": spec.params.get("retried_duplicates") or "duplicate" in allowed,
                                 "retried_reordering": spec.params.get("retried_reordering")
                                 or "nonmonotonic-send" in allowed})


def _reordering_of_its_client(spec: CheckSpec, meta: dict) -> CheckSpec:
    """Histories written before their metadata carried ``max_in_flight`` were judged with kafka-python's
    in-flight limit whatever library recorded them (WorkloadConfig.max_in_flight configures kafka-python
    only): a librdkafka producer without idempotence ran with its own 1,000,000 requests in flight and
    may reorder where it resent the earlier record, as a run now allows. Not S3's read-your-writes
    before its metadata carried request_timeout_ms: its producer was kafka-python whatever the metadata
    names, each writer waiting for its ack, so no reordering is its client's (as calibration's
    _settings_named)."""
    from k6suite_lib.workload.config import DEFAULT_IN_FLIGHT

    if spec.name != "anomalies" or "max_in_flight" in meta or meta.get("client") not in DEFAULT_IN_FLIGHT:
        return spec
    if (meta.get("scenario"), str(meta.get("variant", "")).split("#")[0]) == ("S3", "read-your-writes") \
            and "request_timeout_ms" not in meta:
        return spec
    idempotent = bool(meta.get("idempotent"))
    in_flight = DEFAULT_IN_FLIGHT[meta["client"]][1 if idempotent else 0]
    if not reordering_needs_retry(idempotent, in_flight):
        return spec
    return CheckSpec(spec.name, {**spec.params, "retried_reordering": True})


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
    "anomaly_count", "compose", "default_composition", "failed", "find_anomalies", "not_tested", "recheck",
    "recheck_composition", "reordering_needs_retry", "specs_from_meta", "untested_core", "verdict", "verdict_frame",
]
