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
from k6suite_lib.checkers.registry import CHECKERS, CheckSpec, compose, specs_from_meta
from k6suite_lib.checkers.verdicts import VERDICT_COLUMNS, failed, not_tested, verdict, verdict_frame
from k6suite_lib.history import View


def recheck(path, anomaly_overrides: dict | None = None) -> tuple[View, pd.DataFrame]:
    """Judge a saved history again with the composition saved in it (anomaly rules overridable).

    Raises ValueError for an override no configuration may make (e.g. allowing lost writes)."""
    frame, meta = history.load(path)
    specs = specs_from_meta(meta)
    if anomaly_overrides:
        specs = [CheckSpec(s.name, {**s.params, **anomaly_overrides}) if s.name == "anomalies" else s for s in specs]
        for spec in specs:
            if spec.name == "anomalies":  # validates before judging: a refused class is a usage error
                AnomalyRules(allowed=frozenset(spec.params.get("allowed", ())))
    view = View(frame, meta, sidecar_dir=Path(path).parent)
    return view, compose(view, specs, meta.get("not_promised") or {})


__all__ = [
    "ANOMALIES", "CHECKERS", "NEVER_ALLOWED", "VERDICT_COLUMNS", "AnomalyRules", "CheckSpec", "anomaly_count",
    "compose", "default_allowed", "failed", "find_anomalies", "not_tested", "recheck", "specs_from_meta", "verdict",
    "verdict_frame",
]
