"""Named checkers and their composition (Jepsen's ``checker/compose``).

A checker is a pure function ``(view, **params) -> list of verdict rows``. A scenario composes
checkers as a list of CheckSpec (a name and its parameters); the list is saved in the history's
metadata, so ``k6suite check HISTORY`` runs exactly the same composition later and reproduces
the verdict table the scenario printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from k6suite_lib.checkers.verdicts import verdict_frame
from k6suite_lib.history import View

Checker = Callable[..., list[dict[str, Any]]]
CHECKERS: dict[str, Checker] = {}


def register(name: str) -> Callable[[Checker], Checker]:
    def add(function: Checker) -> Checker:
        if name in CHECKERS:
            raise ValueError(f"checker {name!r} registered twice")
        CHECKERS[name] = function
        return function
    return add


@dataclass(frozen=True)
class CheckSpec:
    """One checker in a composition: its registered name and keyword parameters (JSON-able)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckSpec:
        if not isinstance(data, dict) or "name" not in data:
            raise ValueError(f"a check is {{'name': ..., 'params': {{...}}}}, got {data!r}")
        return cls(name=str(data["name"]), params=dict(data.get("params") or {}))


def compose(view: View, specs: list[CheckSpec], not_promised: dict[str, str] | None = None) -> pd.DataFrame:
    """Run every checker of the composition on one history view; one verdict table, in order."""
    rows: list[dict[str, Any]] = []
    for spec in specs:
        if spec.name not in CHECKERS:
            raise ValueError(f"unknown checker {spec.name!r}; known: {', '.join(sorted(CHECKERS))}")
        rows.extend(CHECKERS[spec.name](view, **spec.params))
    return verdict_frame(rows, not_promised)


def specs_from_meta(meta: dict[str, Any]) -> list[CheckSpec]:
    """The composition a history was judged with (format 1 histories saved only the anomaly rules)."""
    if "checks" in meta:
        return [CheckSpec.from_json(item) for item in meta["checks"]]
    return [CheckSpec("anomalies", dict(meta.get("checker") or {}))]
