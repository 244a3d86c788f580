"""Pictures of a history: timelines with fault windows shaded, latency CDFs, the read-back curve.

Figures are built with matplotlib's object API (no pyplot state), so a notebook shows each one
exactly once and headless runs need no display.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from k6suite_lib.checkers.measures import throughput, unseen_over_time
from k6suite_lib.history import READBACK, View

FAULT_COLOURS = ("#f4a582", "#92c5de", "#b8e186", "#d6604d", "#fddbc7")


def _shade(axes, view: View, start_ns: int, label: bool) -> None:
    for i, window in enumerate(view.windows.itertuples()):
        colour = FAULT_COLOURS[i % len(FAULT_COLOURS)]
        axes.axvspan((window.start_ns - start_ns) / 1e9, (window.end_ns - start_ns) / 1e9, color=colour, alpha=0.35,
                     label=f"{window.fault} ({window.target})" if label else None)


def latency_over_time(view: View, bin_s: float = 1.0) -> pd.DataFrame:
    """Publish latency (ms) per time bin of completion: p50, p99, max."""
    sends = view.acked
    if sends.empty:
        return pd.DataFrame(columns=["t_s", "p50", "p99", "max"])
    start = view.frame["invoke_ns"].min()
    bins = ((sends["complete_ns"] - start) / 1e9 // bin_s * bin_s).rename("t_s")
    latency = ((sends["complete_ns"] - sends["invoke_ns"]) / 1e6).groupby(bins)
    return pd.DataFrame({"p50": latency.median(), "p99": latency.quantile(0.99), "max": latency.max()}).reset_index()


def unread_over_time(view: View, bin_s: float = 1.0) -> pd.DataFrame:
    """Acknowledged records live consumers had not yet read, at the end of each time bin."""
    start = view.frame["invoke_ns"].min() if len(view.frame) else 0
    acked = view.acked
    live = view.valid_reads[view.valid_reads.index.isin(view.live_reads.index)]
    first_read = live.groupby("code")["complete_ns"].min()
    acked_bins = ((acked["complete_ns"] - start) / 1e9 // bin_s).value_counts().sort_index()
    read_bins = ((first_read - start) / 1e9 // bin_s).value_counts().sort_index()
    bins = acked_bins.index.union(read_bins.index)
    if bins.empty:
        return pd.DataFrame(columns=["t_s", "unread"])
    full = np.arange(0, bins.max() + 1)
    unread = acked_bins.reindex(full, fill_value=0).cumsum() - read_bins.reindex(full, fill_value=0).cumsum()
    return pd.DataFrame({"t_s": full * bin_s, "unread": unread.clip(lower=0).to_numpy()})


def timeline(view: View, title: str = "", bin_s: float = 1.0) -> Figure:
    """Throughput, publish latency, errors and acknowledged-but-unread records over time, faults shaded."""
    figure = Figure(figsize=(11, 9.5))
    axes = figure.subplots(4, 1, sharex=True)
    start = view.frame["invoke_ns"].min() if len(view.frame) else 0
    rates = throughput(view, bin_s)
    axes[0].plot(rates["t_s"], rates["acked"], label="acked sends/s")
    axes[0].plot(rates["t_s"], rates["read"], label="records read/s", alpha=0.8)
    axes[0].set_ylabel("records / s")
    latency = latency_over_time(view, bin_s)
    axes[1].plot(latency["t_s"], latency["p50"], label="publish p50")
    axes[1].plot(latency["t_s"], latency["p99"], label="publish p99")
    axes[1].set_ylabel("ms")
    if len(latency) and latency["p99"].max() > 20 * max(latency["p50"].min(), 0.1):
        axes[1].set_yscale("log")
    axes[2].bar(rates["t_s"], rates["failed"], width=bin_s, label="failed sends/s", color="#b2182b")
    axes[2].bar(rates["t_s"], rates["indeterminate"], width=bin_s, bottom=rates["failed"],
                label="indeterminate sends/s", color="#ef8a62")
    axes[2].set_ylabel("errors / s")
    unread = unread_over_time(view, bin_s)
    axes[3].plot(unread["t_s"], unread["unread"], color="#542788", label="acked, not yet read by consumers")
    axes[3].set_ylabel("records")
    axes[3].set_xlabel("seconds since the first operation")
    for i, ax in enumerate(axes):
        _shade(ax, view, start, label=i == 0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    figure.suptitle(title or "timeline")
    return figure


def latency_cdf(view: View, title: str = "") -> Figure:
    """CDF of publish latency; split into before / during / after faults when the history has any."""
    figure = Figure(figsize=(8, 4.5))
    ax = figure.subplots()
    sends = view.acked
    latency = (sends["complete_ns"] - sends["invoke_ns"]) / 1e6
    windows = view.windows
    if windows.empty:
        groups = {"all sends": latency}
    else:
        first, last = windows["start_ns"].min(), windows["end_ns"].max()
        during = np.zeros(len(sends), dtype=bool)
        for window in windows.itertuples():
            during |= ((sends["invoke_ns"] >= window.start_ns) & (sends["invoke_ns"] <= window.end_ns)).to_numpy()
        groups = {"before faults": latency[(sends["invoke_ns"] < first).to_numpy() & ~during],
                  "during faults": latency[during],
                  "after faults": latency[(sends["invoke_ns"] > last).to_numpy() & ~during]}
    for label, values in groups.items():
        if len(values):
            ordered = np.sort(values.to_numpy())
            ax.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), label=f"{label} (n={len(ordered)})")
    ax.set_xscale("log")
    ax.set_xlabel("publish latency (ms)")
    ax.set_ylabel("fraction of acknowledged sends")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or "publish latency CDF")
    return figure


def unseen_curve(view: View, title: str = "") -> Figure:
    """Acknowledged records not yet read by anyone, during the final read-back."""
    figure = Figure(figsize=(8, 3.5))
    ax = figure.subplots()
    curve = unseen_over_time(view)
    ax.step(curve["elapsed_s"], curve["unseen"], where="post")
    ax.set_xlabel("seconds into the final read-back")
    ax.set_ylabel("unseen acknowledged records")
    ax.grid(alpha=0.3)
    ax.set_title(title or "final read-back")
    return figure


def partition_timeline(view: View, topic: str, partition: int, centre_ns: int, span_s: float = 5.0,
                       highlight: pd.DataFrame | None = None, flagged: pd.DataFrame | None = None,
                       title: str = "") -> Figure:
    """Offsets acknowledged and read on one partition, span_s either side of centre_ns, faults shaded.

    One anomaly zoomed in, on the clock of timeline() (seconds since the first operation): sends that
    were not acknowledged and polls that failed carry no partition (-1), so they are drawn as ticks
    along the bottom for every partition. highlight: rows (complete_ns, offset) to ring, the anomaly;
    flagged: rows named by other anomalies, marked so the extent of a loss shows at a glance.
    """
    figure = Figure(figsize=(11, 4))
    ax = figure.subplots()
    frame = view.frame
    start = int(frame["invoke_ns"].min()) if len(frame) else 0
    low, high = centre_ns - int(span_s * 1e9), centre_ns + int(span_s * 1e9)
    near = frame[(frame["complete_ns"] >= low) & (frame["complete_ns"] <= high) & frame["f"].isin(["send", "poll"])]
    here = near[(near["topic"] == topic) & (near["partition"] == partition) & (near["type"] == "ok")]
    series = {"acknowledged sends": (here["f"] == "send", "o", "#2166ac"),
              "records read by consumers": ((here["f"] == "poll") & (here["process"] != READBACK), "x", "#1b7837"),
              "records read by the read-back": ((here["f"] == "poll") & (here["process"] == READBACK), "+", "#762a83")}
    for label, (mask, marker, colour) in series.items():
        rows = here[mask.to_numpy(dtype=bool)]
        if len(rows):
            ax.plot((rows["complete_ns"] - start) / 1e9, rows["offset"], marker, color=colour, markersize=4,
                    linestyle="none", label=f"{label} ({len(rows)})")
    failed = near[near["type"] != "ok"]
    for f, y, colour, label in (("send", 0.03, "#b2182b", "sends not acknowledged, any partition"),
                                ("poll", 0.08, "#ef8a62", "polls that failed, any partition")):
        rows = failed[failed["f"] == f]
        if len(rows):
            ax.plot((rows["complete_ns"] - start) / 1e9, [y] * len(rows), "|", color=colour, markersize=10,
                    transform=ax.get_xaxis_transform(), label=f"{label} ({len(rows)})")
    if flagged is not None and len(flagged):
        ax.plot((flagged["complete_ns"] - start) / 1e9, flagged["offset"], "s", markersize=6, markerfacecolor="none",
                markeredgecolor="#b2182b", label=f"rows of any anomaly ({len(flagged)})")
    if highlight is not None and len(highlight):
        ax.plot((highlight["complete_ns"] - start) / 1e9, highlight["offset"], "o", markersize=14,
                markerfacecolor="none", markeredgecolor="#d6604d", markeredgewidth=2, label="the anomaly")
    ax.axvline((centre_ns - start) / 1e9, color="#d6604d", linestyle="--", linewidth=1)
    _shade(ax, view, start, label=True)
    last = int(frame["complete_ns"].max()) if len(frame) else high
    ax.set_xlim((max(low, start) - start) / 1e9, (min(high, last) - start) / 1e9)
    ax.set_xlabel("seconds since the first operation")
    ax.set_ylabel(f"offset in partition {partition}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"partition {partition} around t = {(centre_ns - start) / 1e9:.2f} s")
    return figure
