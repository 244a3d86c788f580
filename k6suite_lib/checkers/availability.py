"""Availability under faults: the faults really happened, clients could keep writing around them,
acknowledgements came back after each one, and errors the application saw are counted apart
from errors the client retried on its own. Every fault scenario composes the same checkers, so a
run that stops accepting writes fails however few records it lost."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from k6suite_lib.checkers import measures
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import AtLeast, Below, Equals, not_tested, verdict
from k6suite_lib.history import View

PATH_ROLES = ("storage", "metadata")  # faults on the brokers' paths to their stores, through Toxiproxy
# live consumers that read nothing this long when the drain stopped them had stalled (the drain's STALL_S; a group's
# drain waits up to its session timeout, orchestrator.stall_s, so a group this quiet at the end of its grace too)
QUIET_S = 10.0


@register("faults-applied")
def check_faults_applied(view: View, rows: int) -> list[dict]:
    """Every fault of the schedule was applied and healed (a start and an end row each, ok): a fault
    that never happened would make every other verdict of the run meaningless. So would a fault that
    hit nothing the workload used: when the history records what each broker fault's target carried
    just before (`served`) and none carried any of the workload's traffic, this is NOT TESTED. A fault on a
    store's path (Toxiproxy) is judged on its proxy's traffic and on the workload's acknowledged sends in flight
    during it (_path_reach): one with either missing, or whose traffic was not measured, makes this NOT TESTED,
    never a PASS."""
    name = "every fault took effect"
    faults = view.frame[view.frame["f"] == "fault"]
    applied = int((faults["type"] == "ok").sum())
    errors = "; ".join(faults.loc[faults["type"] != "ok", "error"].head(3))
    targets = ", ".join(view.windows["fault"] + " on " + view.windows["target"])
    reach = _reach(faults)
    if applied == rows and reach and not any(carried for _, carried, _ in reach):
        return [not_tested(name, "-", "the faults were applied, but no target carried any of the workload's "
                                      "traffic just before: " + "; ".join(f"{f}: {shown}" for f, _, shown in reach))]
    paths = _path_reach(faults, view.acked)
    idle = [f"{f}: {shown}" for f, carried, shown in paths if not carried]
    if applied == rows and idle:
        return [not_tested(name, "-", "the faults were applied, but not every one is known to have acted on "
                                      "the workload: " + "; ".join(idle))]
    return [verdict(name, "-", applied, Equals(rows, f"{rows} (a start and an end per fault)"),
                    errors or targets + ("; just before: " + "; ".join(f"{f}: {shown}" for f, _, shown in reach)
                                         if reach else "")
                    + ("; " + "; ".join(f"{f}: {shown}" for f, _, shown in paths) if paths else ""))]


def _path_reach(faults: pd.DataFrame, acked: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """Per fault on a store's path (Toxiproxy, faults/network.py): whether it is known to have acted on the
    workload, and what was measured. Two measurements, both needed: the proxy's own traffic (a toxic's `through`,
    the bytes the proxy received while it was in place, on its end row; an outage's `cut`, whether a connection
    it cut had received data just before, on its start row), and the workload's acknowledged sends in flight
    during the fault (invoked before it ended, answered after it began). The proxy's bytes cannot be told apart
    by sender (an etcd keepalive or a storage health probe counts), so they alone do not show the workload used
    the path; with no acknowledged send in flight, the workload wrote nothing the fault could act on. No
    measurement (a history written before faults took one, or one that failed) is no evidence either: a PASS
    must rest on both."""
    windows: list[list] = []  # [fault, start_ns, end_ns, proxy measured something, what was measured]
    ok = faults[faults["type"] == "ok"].sort_values("complete_ns")
    for detail, t_ns in zip(ok["detail"], ok["complete_ns"], strict=True):
        parsed = json.loads(detail) if detail else {}
        if parsed.get("role") not in PATH_ROLES:
            continue
        fault = f"{parsed.get('fault')} on {parsed.get('target')}"
        evidence = parsed.get("through") if parsed.get("phase") == "end" else parsed.get("cut")
        if parsed.get("phase") == "start":
            windows.append([fault, int(t_ns), None, False, "no traffic through the proxy was measured"])
        mine = [w for w in windows if w[0] == fault]  # its latest window
        if not mine:
            continue
        if parsed.get("phase") == "end" and mine[-1][2] is None:
            mine[-1][2] = int(t_ns)
        if evidence is None:
            continue
        if "error" in evidence:
            mine[-1][3:] = [False, f"measuring the traffic through the proxy failed ({evidence['error']})"]
        elif "bytes" in evidence:
            mine[-1][3:] = [evidence["bytes"] > 0, f"{evidence['bytes']} bytes received by the proxy (from any "
                                                   f"of its clients) while it was in place "
                                                   f"({evidence['connections']} connections)"]
        elif parsed.get("phase") == "start":
            latest = evidence.get("last_data_ms")
            mine[-1][3:] = [evidence["recent"] > 0,
                            f"it cut {evidence['connections']} connections, {evidence['recent']} of them had "
                            f"received data (from any of its clients) in the {evidence['recent_ms']} ms before"
                            + (f" (the latest {latest} ms before)" if latest is not None else "")]
    invoked, answered = acked["invoke_ns"].to_numpy(), acked["complete_ns"].to_numpy()
    found = []
    for fault, start_ns, end_ns, measured, shown in windows:
        in_flight = int(((invoked <= (end_ns if end_ns is not None else np.iinfo("int64").max))
                         & (answered >= start_ns)).sum())
        found.append((fault, measured and in_flight > 0,
                      f"{shown}; {in_flight} acknowledged sends of the workload were in flight during it"))
    return found


def _reach(faults: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """Per applied fault start that recorded what its target carried (`served`): the fault, whether
    the target carried any of the workload's traffic, and what was measured. Leadership decides
    where it was measured (every Kafka client connects to every broker), else the target's own
    produce rate; connections only when nothing better is known (a pooled idle connection, which
    the kernel's socket table counts, carries no traffic)."""
    out = []
    for detail in faults.loc[faults["type"] == "ok", "detail"]:
        parsed = json.loads(detail) if detail else {}
        served = parsed.get("served")
        if parsed.get("phase") != "start" or not served or "error" in served:
            continue
        if "leads" in served:
            carried = bool(served["leads"])
        elif "produce_rps" in served:
            carried = served["produce_rps"] > 0
        else:
            carried = served.get("connections", 0) > 0
        shown = ", ".join(f"{k} {v}" for k, v in served.items())
        out.append((f"{parsed.get('fault')} on {parsed.get('target')}", carried, shown))
    return out


@register("recovery")
def check_recovery(view: View, limit_s: float = 5.0) -> list[dict]:
    """NFR1: from the first fault's start, no partition the workload writes goes limit_s without an ack."""
    name = "longest gap between acknowledgements per partition, from the fault's start"
    if view.first_fault_ns is None:
        return [not_tested(name, "NFR1", "no fault window in the history")]
    table = measures.unavailability(view, view.first_fault_ns)
    if table.empty:
        return [not_tested(name, "NFR1", "no partition had an acknowledged write before the fault")]
    worst = float(table["gap_s"].max())
    return [verdict(name, "NFR1", worst, Below(limit_s, " s"),
                    ", ".join(f"p{r.partition}: {r.gap_s:.2f} s" if r.resumed else f"p{r.partition}: acks never resumed"
                              for r in table.itertuples()), unit=" s")]


@register("acks-resume")
def check_acks_resume(view: View, bound_s: float = 10.0) -> list[dict]:
    """After each fault window ends, every partition written before the faults gets an ack within
    bound_s. No acknowledgement at all after a fault ended, until producers stopped, fails however
    soon they stopped (a producer blocked on its outstanding limit sends nothing more, so its last
    send says nothing): writes that never resume are what this check exists to catch."""
    name = "acknowledgements resume after each fault ends"
    windows = view.windows
    if windows.empty:
        return [not_tested(name, "NFR1 / NFR4", "no fault window in the history")]
    stopped = view.producers_stopped_ns or 0
    partitions = measures.acked_partitions_before(view, int(windows["start_ns"].min()))
    done, partition = view.acked["complete_ns"], view.acked["partition"]
    waits: list[tuple[str, float, int]] = []
    for faults, end_ns in fault_runs(windows):
        if stopped <= end_ns:
            continue  # producers stopped before this fault ended: nothing was owed after it
        later = (done > end_ns).to_numpy()
        firsts = done[later].groupby(partition[later]).min()
        wait = max(((firsts.get(p, math.inf) - end_ns) / 1e9 for p in partitions), default=math.inf)
        if math.isinf(wait) and later.any() and (stopped - end_ns) / 1e9 < bound_s:
            continue  # some partitions resumed; the rest might have, had producers not stopped first
        waits.append((faults, wait, end_ns))
    if not waits or not partitions:
        return [not_tested(name, "NFR1 / NFR4", "no partition was written before the faults" if not partitions
                           else f"producers stopped within {bound_s:g} s of every fault's end, after some "
                                "partitions acknowledged again")]
    shown = "; ".join(f"after {fault}: " + (f"{s:.2f} s" if not math.isinf(s) else
                                           f"never (no acknowledgement in the {(stopped - end) / 1e9:.1f} s "
                                           "until producers stopped)")
                      for fault, s, end in waits)
    return [verdict(name, "NFR1 / NFR4", max(s for _, s, _ in waits), Below(bound_s, " s"),
                    f"{shown} (slowest of partitions {partitions})", unit=" s")]


def resumed_after(view: View, end_ns: int) -> bool:
    """Whether any acknowledgement came after a moment (a fault's end)."""
    return bool((view.acked["complete_ns"] > end_ns).any())


def fault_runs(windows: pd.DataFrame, joined_s: float = 1.0) -> list[tuple[str, int]]:
    """Fault windows that follow one another within joined_s as one run (names, end of its last):
    acks are owed only after the last fault of a run ends, not in the next fault of it."""
    runs: list[tuple[list[str], int]] = []
    for window in windows.sort_values("start_ns").itertuples():
        if runs and window.start_ns <= runs[-1][1] + joined_s * 1e9:
            runs[-1] = ([*runs[-1][0], window.fault], max(runs[-1][1], int(window.end_ns)))
        else:
            runs.append(([window.fault], int(window.end_ns)))
    return [(" + ".join(names), end) for names, end in runs]


def offered_due_ns(view: View) -> tuple[np.ndarray, np.ndarray]:
    """When each offered send fell due: sends made (their `intended_ns`, or their invoke where no schedule was
    recorded) and sends a producer blocked on its outstanding limit could not make (its `blocked` rows); and
    for each, when it was acknowledged (-1: never, or not made)."""
    sends, blocked = view.sends, view.blocked
    intended, invoked = sends["intended_ns"].to_numpy(), sends["invoke_ns"].to_numpy()
    acked = np.where((sends["type"] == "ok").to_numpy(), sends["complete_ns"].to_numpy(), -1)
    due = np.concatenate([np.where(intended >= 0, intended, invoked), blocked["invoke_ns"].to_numpy()])
    return due.astype("int64"), np.concatenate([acked, np.full(len(blocked), -1)]).astype("int64")


def fault_free_seconds(view: View, settle_s: float) -> tuple[float, list[tuple[int, int]]]:
    """Seconds of producing outside every fault window (each extended by settle_s for recovery),
    and those intervals. Producing means sends due, made or not: a producer blocked on its outstanding
    limit still offers (its `blocked` rows), so a stall after the faults is judged, not skipped."""
    due, _ = offered_due_ns(view)
    if not len(due):
        return 0.0, []
    start, end = int(due.min()), int(due.max())
    blocked = sorted((int(w.start_ns), int(w.end_ns + settle_s * 1e9)) for w in view.windows.itertuples())
    intervals, cursor = [], start
    for a, b in blocked:
        if a > cursor:
            intervals.append((cursor, min(a, end)))
        cursor = max(cursor, b)
    if cursor < end:
        intervals.append((cursor, end))
    intervals = [(a, b) for a, b in intervals if b > a]
    return sum(b - a for a, b in intervals) / 1e9, intervals


@register("fault-free-acks")
def check_fault_free_acks(view: View, rate: float, fraction: float = 0.8, settle_s: float = 5.0) -> list[dict]:
    """Outside the faults (and settle_s after each), the target must take at least `fraction` of the writes the
    open-loop producers offered: a cluster that stops taking writes fails here. A write counts as taken when its
    send fell due in those intervals and was acknowledged within settle_s of falling due; the share is those per
    rate x seconds, so sends due but never made (a producer blocked on its outstanding limit), refused, timed out
    or acknowledged later count as offered and not taken. Judged by when each send fell due, not by when its
    acknowledgement came: counting acks completed in the intervals charged a steady latency L as L x rate
    missing acks at interval edges (the last sends' acks come after an interval, none come in its first L),
    which failed Apache Kafka's S7 at a 2.8 s warm-up latency. The bound keeps a system that acknowledges
    everything, only late, failing: an ack later than settle_s is not availability."""
    name = "acknowledgements outside the faults, as a share of the offered rate"
    if rate <= 0:
        return [not_tested(name, "NFR1 / NFR4", "closed-loop producers offer no rate to compare with")]
    seconds, intervals = fault_free_seconds(view, settle_s)
    if seconds < 1.0:
        return [not_tested(name, "NFR1 / NFR4", f"only {seconds:.1f} s of producing outside the faults")]
    due, acked = offered_due_ns(view)
    inside = np.zeros(len(due), dtype=bool)
    for a, b in intervals:
        inside |= (due >= a) & (due < b)
    answered = inside & (acked >= 0)
    taken = int((answered & (acked - due <= settle_s * 1e9)).sum())
    late = int(answered.sum()) - taken
    not_sent = int((inside[len(view.sends):]).sum())
    share = taken / (rate * seconds)
    return [verdict(name, "NFR1 / NFR4", share, AtLeast(fraction),
                    f"{taken} sends due in {seconds:.1f} s outside the faults (each fault + {settle_s:g} s) were "
                    f"acknowledged within {settle_s:g} s of falling due, at {rate:g}/s offered "
                    f"({rate * seconds:.0f} expected, {int(inside.sum())} due)"
                    + (f"; {late} more were acknowledged later than {settle_s:g} s" if late else "")
                    + (f"; {not_sent} due sends never made: producers blocked on their outstanding limit"
                       if not_sent else ""))]


@register("client-errors")
def check_client_errors(view: View, requirement: str = "NFR1", outside_faults_only: bool = False,
                        settle_s: float = 5.0) -> list[dict]:
    """Errors the application saw (sends ending fail/info, polls that raised, clients that could not
    connect) fail the check; errors the client handled itself (its own warnings: retries, resets)
    and failed commits are counted beside them.

    outside_faults_only: errors inside the fault windows (and settle_s after each) are backpressure
    the scenario reports, not failures (S5: "storage errors appear as backpressure") — but only of a
    window after which acknowledgements came back: timeouts that nothing resumed from are failures.
    """
    frame = view.frame
    surfaced = pd.concat([view.unacked, view.failed_polls, frame[(frame["f"] == "connect") & (frame["type"] != "ok")]])
    inside = np.zeros(len(surfaced), dtype=bool)
    stuck: list[str] = []
    if outside_faults_only:
        for window in view.windows.itertuples():
            if not resumed_after(view, int(window.end_ns)):
                stuck.append(window)
                continue
            inside |= ((surfaced["invoke_ns"] >= window.start_ns)
                       & (surfaced["invoke_ns"] <= window.end_ns + settle_s * 1e9)).to_numpy()
    counted, backpressure = surfaced[~inside], surfaced[inside]
    handled = view.client_logs
    commits = frame[(frame["f"] == "commit") & (frame["type"] != "ok")]
    retries = int(handled.str.contains("retr", case=False).sum())
    top = "; ".join(f"{n}× {e[:120]}" for e, n in counted["error"].value_counts().head(3).items())
    kinds = counted["f"].value_counts().to_dict()
    return [verdict("client errors beyond retry", requirement, len(counted), Equals(0),
                    f"surfaced: {kinds.get('send', 0)} sends, {kinds.get('poll', 0)} polls, "
                    f"{kinds.get('connect', 0)} connections"
                    + (f" (and {len(backpressure)} during the faults: backpressure, reported)" if outside_faults_only
                       else "")
                    + (f"; {_unresumed(view, stuck)}: their errors count" if stuck else "")
                    + f"; handled by the client: {len(handled)} ({retries} retries); failed commits: {len(commits)}"
                    + (f"; {top}" if top else ""))]


def _unresumed(view: View, windows: list) -> str:
    """What happened to acknowledgements around fault windows none came after: they never started (nothing
    acknowledged at all), never came before the window either, or stopped and never resumed."""
    done = view.acked["complete_ns"]
    if done.empty:
        return f"nothing was ever acknowledged (before, during or after {', '.join(w.fault for w in windows)})"
    return "; ".join(f"acks never resumed after {w.fault}" if (done < w.start_ns).any()
                     else f"no ack before {w.fault} nor after it" for w in windows)


@register("catch-up")
def check_catch_up(view: View, limit_s: float = 30.0, requirement: str = "F6 / S5") -> list[dict]:
    """Consumers catch up: every acknowledged record has been read by a live consumer within limit_s of
    when it was due, the last fault's end for a record acknowledged before it, its acknowledgement for a
    later one (their lag once the store is back, or, after a broker fault, that a group whose members all
    lost their session ever consumed again: nothing else in S4 or S7 asks, as the read-back is its own
    client and a group that never rejoins writes no assignment to count as a rebalance). Records
    acknowledged after the faults count too (audit23 M1): a group that died at a fault it had kept up
    with until then owes nothing from before the fault's end. Judged only on the time the consumers had:
    when the drain stopped them before limit_s passed while they were still reading, records not read yet
    are not counted as never read (NOT TESTED); they are when a record already came later than limit_s,
    when the consumers had reached the end offsets (`consumers-stop` reached_end: a record they passed over
    then is one they will never read), or when live consumers had read nothing for QUIET_S before the drain
    stopped them (audit23 H1: the drain gives up on consumers that read nothing new for that long, which a
    group that never rejoins does about 20 s after the fault, inside the limit)."""
    name = "consumers catch up after the faults"
    if view.windows.empty or view.acked.empty:
        return [not_tested(name, requirement, "no fault window or no acknowledged send")]
    live = view.valid_reads[view.valid_reads.index.isin(view.live_reads.index)]
    if live.empty:
        return [not_tested(name, requirement, "no live consumer read anything")]
    since = int(view.windows["end_ns"].max())
    due = view.acked.groupby("code")["complete_ns"].min().clip(lower=since)
    seen = live.groupby("code")["complete_ns"].min().reindex(due.index)
    lateness = ((seen - due) / 1e9).clip(lower=0.0)
    unread = int(seen.isna().sum())
    caught = math.inf if unread else float(lateness.max())
    stop = view.phase("consumers-stop")
    had_s = (stop["t_ns"] - since) / 1e9 if stop is not None else math.inf
    late = float(lateness.max()) if seen.notna().any() else 0.0
    passed = bool(stop and stop.get("reached_end"))
    quiet_s = (stop["t_ns"] - int(live["complete_ns"].max())) / 1e9 if stop is not None else 0.0
    stalled = quiet_s >= QUIET_S
    if math.isinf(caught) and had_s < limit_s and late < limit_s and not passed and not stalled:
        return [not_tested(name, requirement, f"{unread} of {len(due)} acknowledged records were not read by a "
                           f"live consumer, but the drain stopped the consumers {max(had_s, 0.0):.1f} s after the "
                           f"last fault ended, before the {limit_s:g} s limit, while they were still reading "
                           f"(the last read {quiet_s:.1f} s before)")]
    why = (", which had read to the end offsets and stopped: they passed over them" if passed
           else f"; live consumers had read nothing for {quiet_s:.1f} s when the drain stopped them "
                f"{max(had_s, 0.0):.1f} s after the last fault ended" if stalled else "")
    return [verdict(name, requirement, caught, Below(limit_s, " s"),
                    f"{unread} of {len(due)} acknowledged records were never read by a live consumer" + why
                    if math.isinf(caught) else
                    f"longest time from when a record was due (the last fault's end, or its acknowledgement "
                    f"if later) until a live consumer read it, over all {len(due)} acknowledged records",
                    unit=" s")]
