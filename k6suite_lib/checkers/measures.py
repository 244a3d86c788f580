"""Measurements of a history that checkers, scenarios and plots share: latency at OpenMessaging
Benchmark's percentiles, throughput over time, unavailability per partition, group assignments.

These describe; they do not judge. A checker turns one of them into a verdict with a threshold.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from k6suite_lib.history import View

PERCENTILES = {"p50": 50, "p75": 75, "p95": 95, "p99": 99, "p99.9": 99.9, "p99.99": 99.99}


def latency_summary(view: View) -> pd.DataFrame:
    """Publish latency, end-to-end latency and publish delay (ms) at OMB's percentiles."""
    acked = view.acked
    publish = (acked["complete_ns"] - acked["invoke_ns"]) / 1e6
    delay_rows = view.sends[view.sends["intended_ns"] >= 0]
    delay = (delay_rows["invoke_ns"] - delay_rows["intended_ns"]).clip(lower=0) / 1e6
    live = view.valid_reads[view.valid_reads.index.isin(view.live_reads.index)]
    first_read = live.groupby("code")["complete_ns"].min()
    invoked = acked.drop_duplicates("code").set_index("code")["invoke_ns"]
    e2e = (first_read - invoked.reindex(first_read.index)).dropna() / 1e6
    rows = {}
    for name, values in (("publish_ms", publish), ("end_to_end_ms", e2e), ("publish_delay_ms", delay)):
        values = pd.Series(values, dtype="float64")
        row = {"count": len(values)}
        for label, q in PERCENTILES.items():
            row[label] = float(np.percentile(values, q)) if len(values) else np.nan
        row["max"] = float(values.max()) if len(values) else np.nan
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def throughput(view: View, bin_s: float = 1.0) -> pd.DataFrame:
    """Per time bin since the first operation: acked sends, failed/indeterminate sends, reads."""
    history = view.frame
    if history.empty:
        return pd.DataFrame(columns=["t_s", "acked", "failed", "indeterminate", "read"])
    start = history["invoke_ns"].min()
    t = ((history["complete_ns"] - start) / 1e9 // bin_s * bin_s).rename("t_s")
    kind = np.select(
        [(history["f"] == "send") & (history["type"] == "ok"), (history["f"] == "send") & (history["type"] == "fail"),
         (history["f"] == "send") & (history["type"] == "info"), (history["f"] == "poll") & (history["type"] == "ok")],
        ["acked", "failed", "indeterminate", "read"], default="other")
    table = pd.crosstab(t, kind).reindex(columns=["acked", "failed", "indeterminate", "read"], fill_value=0)
    full = np.arange(0, table.index.max() + bin_s, bin_s) if len(table) else []
    table = table.reindex(full, fill_value=0) / bin_s
    return table.rename_axis(None, axis=1).reset_index().rename(columns={"index": "t_s"})


def unseen_over_time(view: View) -> pd.DataFrame:
    """During the final read-back: acknowledged records not yet read by anyone, over time."""
    acked = view.acked["code"].to_numpy()
    valid = view.valid_reads
    back = view.readback_reads
    live = valid.loc[~valid.index.isin(back.index), "code"].to_numpy()
    remaining = np.setdiff1d(acked, live)
    first = pd.DataFrame({"elapsed_s": [0.0], "unseen": [len(remaining)]})
    back = back[back.index.isin(valid.index)]
    if back.empty:
        return first
    codes = back["code"]
    new = codes.isin(remaining) & ~codes.duplicated()
    elapsed = (back["complete_ns"] - back["invoke_ns"].min()) / 1e9
    frame = pd.DataFrame({"elapsed_s": elapsed.to_numpy(), "unseen": (len(remaining) - new.cumsum()).to_numpy()})
    return pd.concat([first, frame.groupby("elapsed_s", as_index=False)["unseen"].min()], ignore_index=True)


def acked_partitions_before(view: View, t_ns: int) -> list[int]:
    """Partitions the workload had written (acknowledged) before a moment: the ones a fault can stall."""
    return sorted(int(p) for p in view.acked.loc[view.acked["invoke_ns"] < t_ns, "partition"].unique() if p >= 0)


def unavailability(view: View, since_ns: int) -> pd.DataFrame:
    """Per partition written before since_ns: the longest gap between consecutive acknowledgements
    that ends after since_ns (the outage clients saw), and whether acks resumed at all."""
    acked = view.acked
    rows = []
    for partition in acked_partitions_before(view, since_ns):
        times = np.sort(acked.loc[acked["partition"] == partition, "complete_ns"].to_numpy())
        before = times[times < since_ns]
        later = times[times >= since_ns]
        if len(later) == 0:
            rows.append({"partition": partition, "gap_s": np.inf, "resumed": False})
            continue
        start = before.max() if len(before) else since_ns
        gaps = np.diff(np.concatenate([[start], later]))
        rows.append({"partition": partition, "gap_s": float(gaps.max()) / 1e9, "resumed": True})
    return pd.DataFrame(rows, columns=["partition", "gap_s", "resumed"])


def median_publish_ms(view: View, start_ns: int, end_ns: int) -> float:
    """Median publish latency of acknowledged sends invoked in [start_ns, end_ns)."""
    acked = view.acked
    inside = acked[(acked["invoke_ns"] >= start_ns) & (acked["invoke_ns"] < end_ns)]
    return float(((inside["complete_ns"] - inside["invoke_ns"]) / 1e6).median()) if len(inside) else float("nan")


def latency_by_window(view: View) -> pd.DataFrame:
    """Median publish latency before the first fault, in each fault window, and after the last."""
    if view.sends.empty:
        return pd.DataFrame(columns=["period", "p50_publish_ms", "acked"])
    start, end = int(view.sends["invoke_ns"].min()), int(view.sends["invoke_ns"].max()) + 1
    windows = view.windows
    periods = [("before faults", start, int(windows["start_ns"].min()) if len(windows) else end)]
    periods += [(w.fault, int(w.start_ns), int(w.end_ns)) for w in windows.itertuples()]
    if len(windows):
        periods.append(("after faults", int(windows["end_ns"].max()), end))
    acked = view.acked
    return pd.DataFrame([{"period": name, "p50_publish_ms": median_publish_ms(view, a, b),
                          "acked": int(((acked["invoke_ns"] >= a) & (acked["invoke_ns"] < b)).sum())}
                         for name, a, b in periods])


def final_assignments(view: View) -> dict[str, list[int]]:
    """Each group consumer's assignment when the workload told consumers to stop (revocations after
    that moment are members leaving, not rebalances)."""
    stop = view.phase("consumers-stop")
    cutoff = stop["t_ns"] if stop else int(view.frame["complete_ns"].max()) if len(view.frame) else 0
    events = view.group_events()
    events = events[events["complete_ns"] <= cutoff].sort_values("complete_ns")
    final: dict[str, list[int]] = {}
    for row in events.itertuples():
        final[row.process] = list(row.partitions or []) if row.f == "assign" else []
    return final


def last_commits(view: View) -> dict[int, int]:
    """Per partition, the offset of the last successful commit (by completion time)."""
    commits = view.frame[(view.frame["f"] == "commit") & (view.frame["type"] == "ok")].sort_values("complete_ns")
    last: dict[int, int] = {}
    for detail in commits["detail"]:
        for partition, offset in json.loads(detail).get("offsets", {}).items():
            last[int(partition)] = int(offset)
    return last


def client_samples(view: View) -> pd.DataFrame:
    """Client-metrics rows parsed: process, complete_ns, connection totals, brokers in its metadata."""
    samples = view.frame[view.frame["f"] == "client-metrics"]
    rows = []
    for process, complete_ns, detail in zip(samples["process"], samples["complete_ns"], samples["detail"],
                                            strict=True):
        parsed = json.loads(detail) if detail else {}
        rows.append({"process": process, "complete_ns": int(complete_ns),
                     "created": parsed.get("connection-creation-total"), "brokers": tuple(parsed.get("brokers") or ())})
    return pd.DataFrame(rows, columns=["process", "complete_ns", "created", "brokers"])


def client_reconnections(view: View, since_ns: int) -> pd.DataFrame:
    """Per client sampled before since_ns: connections it created after since_ns (its own metrics)."""
    samples = client_samples(view).dropna(subset=["created"])
    rows = []
    for process, group in samples.groupby("process"):
        before = group[group["complete_ns"] <= since_ns]["created"]
        if before.empty:
            continue
        after = int(group["created"].iloc[-1])
        rows.append({"client": process, "before": int(before.iloc[-1]), "after": after,
                     "reconnections": after - int(before.iloc[-1])})
    return pd.DataFrame(rows, columns=["client", "before", "after", "reconnections"])
