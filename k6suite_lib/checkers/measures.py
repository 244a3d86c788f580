"""Measurements of a history that checkers, scenarios and plots share: latency at OpenMessaging
Benchmark's percentiles, throughput over time, unavailability per partition, group assignments.

These describe; they do not judge. A checker turns one of them into a verdict with a threshold.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from k6suite_lib.history import READBACK, View

PERCENTILES = {"p50": 50, "p75": 75, "p95": 95, "p99": 99, "p99.9": 99.9, "p99.99": 99.99}


def latency_summary(view: View) -> pd.DataFrame:
    """Publish latency, end-to-end latency and publish delay (ms) at OMB's percentiles."""
    # single columns throughout: taking whole rows of a million-row history is what costs
    acked = view.acked
    publish = (acked["complete_ns"] - acked["invoke_ns"]) / 1e6
    due = (view.sends["intended_ns"] >= 0).to_numpy()
    delay = (view.sends["invoke_ns"][due] - view.sends["intended_ns"][due]).clip(lower=0) / 1e6
    e2e = _end_to_end_ms(view)
    rows = {}
    for name, values in (("publish_ms", publish), ("end_to_end_ms", e2e), ("publish_delay_ms", delay)):
        values = pd.Series(values, dtype="float64")
        row = {"count": len(values)}
        at = np.percentile(values, list(PERCENTILES.values())) if len(values) else [np.nan] * len(PERCENTILES)
        row.update({label: float(v) for label, v in zip(PERCENTILES, at, strict=True)})
        row["max"] = float(values.max()) if len(values) else np.nan
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _end_to_end_ms(view: View) -> np.ndarray:
    """Per acknowledged record a live consumer read: its first live read's completion minus the invocation
    of its (first) acknowledged send, in ms; in no particular order."""
    live = view.valid_reads.index.isin(view.live_reads.index)
    codes, seen = view.valid_reads["code"].to_numpy()[live], view.valid_reads["complete_ns"].to_numpy()[live]
    first_ack = ~view.acked["code"].duplicated().to_numpy()
    at = pd.Index(view.acked["code"].to_numpy()[first_ack]).get_indexer(codes)  # -1: read, never acknowledged
    first_read = np.full(int(first_ack.sum()), np.iinfo("int64").max)
    np.minimum.at(first_read, at[at >= 0], seen[at >= 0])
    read = first_read != np.iinfo("int64").max
    first_read, invoked = first_read[read], view.acked["invoke_ns"].to_numpy()[first_ack][read]
    if (at < 0).any():  # as a join with missing rows computes it: in float64
        return (first_read.astype("float64") - invoked.astype("float64")) / 1e6
    return (first_read - invoked) / 1e6


def throughput(view: View, bin_s: float = 1.0) -> pd.DataFrame:
    """Per time bin since the first operation: acked sends, failed/indeterminate sends, reads."""
    history = view.frame
    if history.empty:
        return pd.DataFrame(columns=["t_s", "acked", "failed", "indeterminate", "read"])
    start = history["invoke_ns"].min()
    t = ((history["complete_ns"] - start) / 1e9 // bin_s * bin_s).to_numpy()
    send, poll = (history["f"] == "send").to_numpy(dtype=bool), (history["f"] == "poll").to_numpy(dtype=bool)
    ok = (history["type"] == "ok").to_numpy(dtype=bool)
    kinds = ["acked", "failed", "indeterminate", "read"]
    kind = np.select([send & ok, send & (history["type"] == "fail").to_numpy(dtype=bool),
                      send & (history["type"] == "info").to_numpy(dtype=bool), poll & ok], range(4), default=len(kinds))
    # counted per bin with integer arithmetic; a row counts only in a bin that equals its t exactly
    full = np.arange(0, t.max() + bin_s, bin_s)
    at = np.minimum(np.searchsorted(full, t), max(len(full) - 1, 0))
    counted = (full[at] == t) if len(full) else np.zeros(len(t), dtype=bool)
    return pd.DataFrame({"t_s": full, **{name: np.bincount(at[counted & (kind == i)], minlength=len(full)) / bin_s
                                          for i, name in enumerate(kinds)}})


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


def readback_reach(view: View) -> dict[int, int]:
    """Per partition, how far the read-back got from the beginning: its final position, or past the
    highest offset it read (its probes, which seek past what it could not read, do not count)."""
    reached = (view.sequential_readback_reads.groupby("partition")["offset"].max() + 1).astype(int).to_dict()
    for partition, position in (view.readback_positions or {}).items():
        reached[partition] = max(reached.get(partition, 0), position)
    return reached


def no_acked_position(view: View) -> str:
    """Why no acknowledged send names a position (partition and offset) to look for, "" when one does: nothing
    acknowledged, or acknowledgements that carried offset -1 (acks=0, or a broker that answered no offset),
    which say nothing of where a record is."""
    if view.acked.empty:
        return "nothing was acknowledged, so a count of 0 proves nothing"
    if (view.acked["offset"] >= 0).any():
        return ""
    return (f"{len(view.acked)} sends were acknowledged, none with an offset (every one -1: acks=0, or a broker "
            "that answered no offset), so there is no acknowledged position to look for")


def unplaced_acks(view: View) -> str:
    """What a position check must say it did not judge ("" when every acknowledgement named its offset): the
    acknowledgements that carried offset -1 name no position (the anomaly ack-without-offset judges them)."""
    unplaced = int((view.acked["offset"] < 0).sum())
    return f"; {unplaced} of {len(view.acked)} acknowledgements carried no offset and are not judged here" \
        if unplaced else ""


def acked_partitions_before(view: View, t_ns: int) -> list[int]:
    """Partitions the workload had written (acknowledged) before a moment: the ones a fault can stall."""
    return sorted(int(p) for p in view.acked.loc[view.acked["invoke_ns"] < t_ns, "partition"].unique() if p >= 0)


def unavailability(view: View, since_ns: int) -> pd.DataFrame:
    """Per partition written before since_ns: the longest gap between consecutive acknowledgements
    that ends after since_ns (the outage clients saw), and whether acks resumed at all. A gap still
    open when producers stopped counts up to their last send: acks that trickle on into a fault and
    then stop for good do not hide it."""
    done, written = view.acked["complete_ns"].to_numpy(), view.acked["partition"].to_numpy()
    last_send = int(view.sends["invoke_ns"].max()) if len(view.sends) else since_ns
    rows = []
    for partition in acked_partitions_before(view, since_ns):
        times = np.sort(done[written == partition])
        before = times[times < since_ns]
        later = times[times >= since_ns]
        if len(later) == 0:
            rows.append({"partition": partition, "gap_s": np.inf, "resumed": False})
            continue
        start = before.max() if len(before) else since_ns
        gaps = np.diff(np.concatenate([[start], later, [max(later[-1], last_send)]]))
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
    """Client-metrics rows parsed: process, complete_ns, connection totals, brokers in its metadata, the
    sampler's error when the sample failed (a fail row; older histories: an ok row whose detail holds only an
    error), and the handles its counts lagged (a librdkafka row whose statistics showed them UP before its
    broker state log did, docs/history-format.md)."""
    samples = view.frame[view.frame["f"] == "client-metrics"]
    rows = []
    for process, complete_ns, kind, error, detail in zip(samples["process"], samples["complete_ns"], samples["type"],
                                                         samples["error"], samples["detail"], strict=True):
        parsed = json.loads(detail) if detail else {}
        failed = (str(error or "") or "sample failed") if kind != "ok" else str(parsed.get("error") or "")
        rows.append({"process": process, "complete_ns": int(complete_ns),
                     "created": parsed.get("connection-creation-total"), "closed": parsed.get("connection-close-total"),
                     "brokers": tuple(parsed.get("brokers") or ()), "error": failed,
                     "lagging": tuple(parsed.get("lagging") or ())})
    return pd.DataFrame(rows, columns=["process", "complete_ns", "created", "closed", "brokers", "error", "lagging"])


def usable_samples(view: View) -> pd.DataFrame:
    """The samples a connection count can be read from, in time order (a history from another tool need not be in
    completion order): not failed, counting connections, not lagging their log."""
    samples = client_samples(view)
    usable = (samples["error"] == "") & samples["created"].notna() & (samples["lagging"].map(len) == 0)
    return samples[usable].sort_values("complete_ns", kind="stable")


def sampler_failures(view: View) -> str:
    """The clients' failed metrics samples, and those that lagged their log, said in a sentence ("" when none)."""
    samples = client_samples(view)
    failed = samples[samples["error"] != ""]
    lagged = samples[(samples["error"] == "") & (samples["lagging"].map(len) > 0)]
    said = []
    if len(failed):
        top = "; ".join(f"{n}× {e[:120]}" for e, n in failed["error"].value_counts().head(2).items())
        said.append(f"{len(failed)} of {len(samples)} client-metrics samples failed ({top})")
    if len(lagged):
        said.append(f"{len(lagged)} of {len(samples)} client-metrics samples lagged their broker state log, not read "
                    f"({', '.join(sorted(lagged['process'].unique())[:4])})")
    return "; ".join(said)


def client_reconnections(view: View, since_ns: int, until_ns: int) -> pd.DataFrame:
    """Per client with a usable sample at or before since_ns and one after until_ns (the last fault window's
    end): connections it created between its latest before and its latest after, and how many it held open just
    before (created minus closed), from its own metrics. A client sampled only until the fault is not judged: its
    reconnections during the faults are unknown (audit24 M1)."""
    samples = usable_samples(view)
    rows = []
    for process, group in samples.groupby("process"):
        before, after = group[group["complete_ns"] <= since_ns], group[group["complete_ns"] > until_ns]
        if before.empty or after.empty:
            continue
        created_before, created_after = int(before["created"].iloc[-1]), int(after["created"].iloc[-1])
        open_before = created_before - int(before["closed"].fillna(0).iloc[-1])
        rows.append({"client": process, "before": created_before, "after": created_after, "open_before": open_before,
                     "reconnections": created_after - created_before})
    return pd.DataFrame(rows, columns=["client", "before", "after", "open_before", "reconnections"])


CLIENT_OPS = ("send", "blocked", "retry", "poll", "assign", "revoke", "commit", "connect")


def expected_clients(view: View) -> set[str]:
    """The clients that ran, sampled or not: those that recorded a client operation (the read-back aside, which
    is not sampled) and, when the saved config sampled clients, every producer and consumer it ran, so that one
    that died before writing anything is still missed (audit23 L3)."""
    frame = view.frame
    ran = set(frame.loc[frame["f"].isin(CLIENT_OPS) & (frame["process"] != READBACK), "process"])
    config = view.meta.get("config") or {}
    if (config.get("client_metrics_s") or 0) > 0:
        consumers = int(config.get("consumers") or 0) if config.get("consumer_mode") != "none" else 0
        ran |= {f"producer-{i}" for i in range(int(config.get("producers") or 0))}
        ran |= {f"consumer-{i}" for i in range(consumers)}
    return ran


def unsampled_clients(view: View, since_ns: int) -> list[str]:
    """The clients that ran or wrote client-metrics rows with no usable sample at or before since_ns, none at all
    included: client_reconnections cannot judge them, and a check must say so."""
    usable = usable_samples(view)
    usable = usable[usable["complete_ns"] <= since_ns]
    return sorted((set(client_samples(view)["process"]) | expected_clients(view)) - set(usable["process"]))


def unfinished_clients(view: View, since_ns: int, until_ns: int) -> list[str]:
    """The clients with a usable sample at or before since_ns but none after until_ns (one that stopped sampling,
    hung or died during the faults, or whose later samples failed or lagged): not judged either."""
    usable = usable_samples(view)
    before = set(usable.loc[usable["complete_ns"] <= since_ns, "process"])
    return sorted(before - set(usable.loc[usable["complete_ns"] > until_ns, "process"]))
