"""Verdict rows and the thresholds that decide them.

A threshold object both renders the text a reader sees and decides the result, so the text can
never drift from what was measured: ``verdict("recovery", "NFR1", 3.2, Below(5, " s"))`` shows
"< 5 s" and is PASS because 3.2 < 5. A missing measurement (None) is NOT TESTED with the reason,
never a pass. ALLOWED is shown only when an allowed anomaly actually occurred.

Statuses: PASS, FAIL, ALLOWED (an anomaly the configuration legitimately produces, reported),
NOT TESTED (no measurement: the reason says why), NOT PROMISED (the system never made the
promise the check judges; the measurement is still shown).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import pandas as pd

VERDICT_COLUMNS = ["check", "requirement", "measured", "threshold", "status", "passed", "evidence"]
STATUSES = ("PASS", "FAIL", "ALLOWED", "NOT TESTED", "NOT PROMISED")
_REQUIREMENT_TOKEN = re.compile(r"^(F[1-7]|NFR[1-5])(\.\d+)?$")


class Threshold(ABC):
    """What a measurement must satisfy; renders itself for the verdict table."""

    @abstractmethod
    def holds(self, measured: Any) -> bool: ...

    @abstractmethod
    def text(self) -> str: ...


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class AtMost(Threshold):
    limit: float
    unit: str = ""

    def holds(self, measured: Any) -> bool:
        return measured <= self.limit

    def text(self) -> str:
        return f"<= {_num(self.limit)}{self.unit}"


@dataclass(frozen=True)
class AtLeast(Threshold):
    limit: float
    unit: str = ""

    def holds(self, measured: Any) -> bool:
        return measured >= self.limit

    def text(self) -> str:
        return f">= {_num(self.limit)}{self.unit}"


@dataclass(frozen=True)
class Below(Threshold):
    limit: float
    unit: str = ""

    def holds(self, measured: Any) -> bool:
        return measured < self.limit

    def text(self) -> str:
        return f"< {_num(self.limit)}{self.unit}"


@dataclass(frozen=True)
class Equals(Threshold):
    expected: Any
    shown: str = ""  # how to show the expected value, when repr is unhelpful

    def holds(self, measured: Any) -> bool:
        return measured == self.expected

    def text(self) -> str:
        return f"== {self.shown or self.expected}"


@dataclass(frozen=True)
class IsTrue(Threshold):
    """A yes/no measurement; the text says what must be true."""

    statement: str

    def holds(self, measured: Any) -> bool:
        return measured is True

    def text(self) -> str:
        return self.statement


@dataclass(frozen=True)
class EveryOf(Threshold):
    """Every per-item measurement (a mapping item -> value) satisfies the inner threshold."""

    inner: Threshold
    what: str

    def holds(self, measured: Any) -> bool:
        return bool(measured) and all(self.inner.holds(v) for v in measured.values())

    def text(self) -> str:
        return f"{self.inner.text()} for every {self.what}"


def verdict(check: str, requirement: str, measured: Any, threshold: Threshold, evidence: str = "",
            unit: str = "") -> dict[str, Any]:
    """A decided row; measured None means nothing was measured: NOT TESTED with the evidence as reason."""
    if measured is None:
        return not_tested(check, requirement, evidence or "nothing was measured")
    passed = bool(threshold.holds(measured))
    return {"check": check, "requirement": requirement, "measured": _show(measured, unit),
            "threshold": threshold.text(), "status": "PASS" if passed else "FAIL", "passed": passed,
            "evidence": evidence}


def not_tested(check: str, requirement: str, reason: str) -> dict[str, Any]:
    return {"check": check, "requirement": requirement, "measured": "n/a", "threshold": "n/a",
            "status": "NOT TESTED", "passed": None, "evidence": reason}


def absent_component(check: str, requirement: str, reason: str) -> dict[str, Any]:
    """A promise about a component the system does not have (a metadata store apart from its brokers):
    the question cannot be asked of it, so NOT PROMISED with the architecture as the reason — read from the
    running stack, never a profile's waiver, so it cannot excuse a failure of something that exists."""
    return {"check": check, "requirement": requirement, "measured": "n/a", "threshold": "n/a",
            "status": "NOT PROMISED", "passed": None, "evidence": f"not promised by this system: {reason}"}


def allowed_verdict(check: str, requirement: str, count: int, evidence: str) -> dict[str, Any]:
    """An anomaly class this configuration legitimately produces: ALLOWED when it occurred, else PASS."""
    return {"check": check, "requirement": requirement, "measured": str(count),
            "threshold": "reported (allowed here)", "status": "ALLOWED" if count > 0 else "PASS", "passed": True,
            "evidence": evidence}


def _show(value: Any, unit: str = "") -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3g}{unit}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v, unit)}" for k, v in value.items()) or "{}"
    return f"{value}{unit}"


def not_promised_reason(requirement: str, not_promised: dict[str, str]) -> str | None:
    """Why the system never promised what a check judges: only when every requirement the check
    names is a contract id and is waived (a check that also judges a promised requirement, or names
    a scenario's own criterion such as "S5", stays judged)."""
    tokens = [t for t in re.split(r"[\s/,]+", str(requirement)) if t]
    if not tokens or not all(_REQUIREMENT_TOKEN.match(t) for t in tokens):
        return None
    reasons = []
    for token in tokens:
        waived = not_promised.get(token) or not_promised.get(token.split(".")[0])
        if waived is None:
            return None
        reasons.append(f"{token}: {waived}")
    return "; ".join(dict.fromkeys(reasons)) if reasons else None


def verdict_frame(rows: list[dict[str, Any]], not_promised: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows -> the verdict table, with checks of promises the system never made shown as NOT PROMISED."""
    frame = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    if frame.empty:
        return frame
    frame["evidence"] = frame["evidence"].fillna("").astype(str)
    frame["measured"] = frame["measured"].map(lambda v: "n/a" if v is None else v).astype(str)
    for index, requirement in frame["requirement"].items():
        reason = not_promised_reason(requirement, not_promised or {})
        if reason:  # a promise never made is not owed a test either: NOT PROMISED, whatever was measured
            judged = ("could not be measured: " if frame.at[index, "status"] == "NOT TESTED"
                      else f"judged it would be {frame.at[index, 'status']}. ")
            frame.at[index, "evidence"] = (f"not promised by this system ({reason}); {judged}"
                                           f"{frame.at[index, 'evidence']}").strip()
            frame.at[index, "status"] = "NOT PROMISED"
    frame["passed"] = [None if s in ("NOT TESTED", "NOT PROMISED") else s != "FAIL" for s in frame["status"]]
    unknown = set(frame["status"]) - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown verdict status {', '.join(sorted(unknown))}")
    return frame[VERDICT_COLUMNS]


def failed(verdicts: pd.DataFrame) -> bool:
    return bool((verdicts["status"] == "FAIL").any())
