"""Slow storage must show: clients feel it as higher publish latency, and the brokers' own metric
names it. Metric samples are recorded in the history as rows, so these are re-checkable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from k6suite_lib.checkers import measures
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import AtLeast, Threshold, not_tested, verdict
from k6suite_lib.history import View


@dataclass(frozen=True)
class Rises(Threshold):
    """(before, during): during must be higher by at least `by` (a share of the injected latency:
    a rise within noise is no sign the fault was felt)."""

    by: float
    unit: str = ""

    def holds(self, measured: Any) -> bool:
        before, during = measured
        return during - before >= self.by

    def text(self) -> str:
        return f"higher by >= {self.by:g}{self.unit} during the window than before the faults"


def _window(view: View, fault: str):
    windows = view.windows[view.windows["fault"] == fault]
    return None if windows.empty else (int(windows["start_ns"].iloc[0]), int(windows["end_ns"].iloc[0]))


@register("latency-rise")
def check_latency_rise(view: View, fault: str, min_rise_ms: float, requirement: str = "F6.3") -> list[dict]:
    """Median publish latency during the named fault's window at least min_rise_ms above the median
    before the first fault."""
    name = f"publish latency rises during {fault}"
    window = _window(view, fault)
    if window is None or view.first_fault_ns is None:
        return [not_tested(name, requirement, f"no {fault} window in the history")]
    start = int(view.sends["invoke_ns"].min()) if len(view.sends) else 0
    before = measures.median_publish_ms(view, start, view.first_fault_ns)
    during = measures.median_publish_ms(view, *window)
    if before != before or during != during:  # NaN: no acknowledged send in one of the two periods
        return [not_tested(name, requirement, f"no acknowledged send before the faults or during {fault} "
                                              f"(p50 {before:.0f} -> {during:.0f} ms)")]
    return [verdict(name, requirement, (round(before, 1), round(during, 1)), Rises(min_rise_ms, " ms"),
                    "median publish latency (ms) before the first fault -> during the window; clients must feel "
                    "storage slowness rather than lose data", unit=" ms")]


@register("metric-at-least")
def check_metric_at_least(view: View, family: str | None, minimum: float, fault: str,
                          requirement: str = "NFR5") -> list[dict]:
    """The largest sample of a metric family scraped during the named fault's window reached `minimum`
    (a spike in a later window, e.g. an outage, does not count for the latency it should name).
    With nothing acknowledged the brokers had nothing to write to the store, so the gauge timed no
    operation (KafScale with kafka-python's default producer: 0 ms): not tested, not a FAIL."""
    name = f"brokers' {family or 'storage-latency metric'} shows the injected {fault}"
    if family is None:
        return [not_tested(name, requirement, "this system exposes no storage-latency metric to compare with")]
    if view.acked.empty:
        return [not_tested(name, requirement, "nothing was acknowledged, so the brokers had no record to write to "
                                              "the store for the metric to time")]
    window = _window(view, fault)
    if window is None:
        return [not_tested(name, requirement, f"no {fault} window in the history")]
    rows = view.frame[(view.frame["f"] == "metric")]
    inside = rows[(rows["complete_ns"] >= window[0]) & (rows["complete_ns"] <= window[1])]
    values = [d["value"] for d in map(json.loads, inside["detail"]) if d.get("family") == family]
    if not values:
        errors = rows.loc[rows["type"] != "ok", "error"]
        return [not_tested(name, requirement, f"no sample of {family} during {fault}"
                           + (f": {errors.iloc[-1]}" if len(errors) else ""))]
    return [verdict(name, requirement, max(values), AtLeast(minimum),
                    f"{len(values)} samples of {family} during {fault} on every broker, largest shown")]
