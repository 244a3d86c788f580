"""Availability under faults: the faults really happened, clients could keep writing around them,
acknowledgements came back after each one, and errors the application saw are counted apart
from errors the client retried on its own. Every fault scenario composes the same checkers, so a
run that stops accepting writes fails however few records it lost."""

from __future__ import annotations

import math

import pandas as pd

from k6suite_lib.checkers import measures
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import AtLeast, Below, Equals, not_tested, verdict
from k6suite_lib.history import View


@register("faults-applied")
def check_faults_applied(view: View, rows: int) -> list[dict]:
    """Every fault of the schedule was applied and healed (a start and an end row each, ok): a fault
    that never happened would make every other verdict of the run meaningless."""
    faults = view.frame[view.frame["f"] == "fault"]
    applied = int((faults["type"] == "ok").sum())
    errors = "; ".join(faults.loc[faults["type"] != "ok", "error"].head(3))
    return [verdict("every fault took effect", "-", applied, Equals(rows, f"{rows} (a start and an end per fault)"),
                    errors or ", ".join(view.windows["fault"] + " on " + view.windows["target"]))]


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
    """After each fault window ends, every partition written before the faults gets an ack within bound_s."""
    name = "acknowledgements resume after each fault ends"
    windows = view.windows
    if windows.empty:
        return [not_tested(name, "NFR1 / NFR4", "no fault window in the history")]
    last_send = int(view.sends["invoke_ns"].max()) if len(view.sends) else 0
    partitions = measures.acked_partitions_before(view, int(windows["start_ns"].min()))
    done, partition = view.acked["complete_ns"], view.acked["partition"]
    waits: list[tuple[str, float]] = []
    for window in windows.itertuples():
        later = (done > window.end_ns).to_numpy()
        firsts = done[later].groupby(partition[later]).min()
        wait = max(((firsts.get(p, math.inf) - window.end_ns) / 1e9 for p in partitions), default=math.inf)
        if math.isinf(wait) and (last_send - window.end_ns) / 1e9 < bound_s:
            continue  # producers stopped before the bound passed: this window cannot be judged
        waits.append((window.fault, wait))
    if not waits or not partitions:
        return [not_tested(name, "NFR1 / NFR4", "no partition was written before the faults" if not partitions
                           else f"producers stopped within {bound_s:g} s of every fault's end")]
    shown = "; ".join(f"after {fault}: {'never' if math.isinf(s) else f'{s:.2f} s'}" for fault, s in waits)
    return [verdict(name, "NFR1 / NFR4", max(s for _, s in waits), Below(bound_s, " s"),
                    f"{shown} (slowest of partitions {partitions})", unit=" s")]


def fault_free_seconds(view: View, settle_s: float) -> tuple[float, list[tuple[int, int]]]:
    """Seconds of producing outside every fault window (each extended by settle_s for recovery),
    and those intervals."""
    if view.sends.empty:
        return 0.0, []
    start, end = int(view.sends["invoke_ns"].min()), int(view.sends["invoke_ns"].max())
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
    """Outside the faults (and settle_s after each), the target must acknowledge at least `fraction`
    of what the open-loop producers offered: a cluster that stops taking writes fails here."""
    name = "acknowledgements outside the faults, as a share of the offered rate"
    if rate <= 0:
        return [not_tested(name, "NFR1 / NFR4", "closed-loop producers offer no rate to compare with")]
    seconds, intervals = fault_free_seconds(view, settle_s)
    if seconds < 1.0:
        return [not_tested(name, "NFR1 / NFR4", f"only {seconds:.1f} s of producing outside the faults")]
    done = view.acked["complete_ns"].to_numpy()
    acks = int(sum(((done >= a) & (done < b)).sum() for a, b in intervals))
    share = acks / (rate * seconds)
    return [verdict(name, "NFR1 / NFR4", share, AtLeast(fraction),
                    f"{acks} acks in {seconds:.1f} s outside the faults (each fault + {settle_s:g} s) at {rate:g}/s "
                    f"offered ({rate * seconds:.0f} expected)")]


@register("client-errors")
def check_client_errors(view: View, requirement: str = "NFR1") -> list[dict]:
    """Errors the application saw (sends ending fail/info, polls that raised) fail the check; errors
    the client handled itself (its own warnings: retries, resets) are counted beside them."""
    sends, polls, handled = view.unacked, view.failed_polls, view.client_logs
    errors = pd.concat([sends["error"], polls["error"]])
    retries = int(handled.str.contains("retr", case=False).sum())
    top = "; ".join(f"{n}× {e[:120]}" for e, n in errors.value_counts().head(3).items())
    return [verdict("client errors beyond retry", requirement, len(sends) + len(polls), Equals(0),
                    f"surfaced: {len(sends)} sends, {len(polls)} polls; handled by the client: {len(handled)} "
                    f"({retries} retries)" + (f"; {top}" if top else ""))]


@register("catch-up")
def check_catch_up(view: View, limit_s: float = 60.0) -> list[dict]:
    """Live consumers read every record acknowledged before producers stopped, within limit_s of the
    last fault's end."""
    name = "consumers catch up after the faults"
    if view.windows.empty or view.acked.empty:
        return [not_tested(name, "F6 / S5", "no fault window or no acknowledged send")]
    live = view.valid_reads[view.valid_reads.index.isin(view.live_reads.index)]
    if live.empty:
        return [not_tested(name, "F6 / S5", "no live consumer read anything")]
    since = int(view.windows["end_ns"].max())
    first = live.groupby("code")["complete_ns"].min()
    seen = first.reindex(view.acked["code"].unique())
    caught = math.inf if seen.isna().any() else max(0.0, (float(seen.max()) - since) / 1e9)
    return [verdict(name, "F6 / S5", caught, Below(limit_s, " s"),
                    f"{int(seen.isna().sum())} of {len(seen)} acknowledged records never read by a live consumer"
                    if math.isinf(caught) else "time from the last fault's end until live consumers had read every "
                    "acknowledged record", unit=" s")]
