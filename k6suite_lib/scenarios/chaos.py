"""Shared by the fault scenarios (S4-S7, S5b): run a workload beside a fault schedule and judge it.

Under faults a non-idempotent producer may legitimately duplicate (it retried), and sends may end
indeterminate; neither is a loss. What is judged on top of the checker: every fault took effect,
surfaced client errors, recovery time, consumer-group rebalances, client reconnections.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from k6suite_lib import checker, plots
from k6suite_lib.checker import CheckerConfig, CheckResult
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.history import fault_windows
from k6suite_lib.scenario import Scenario
from k6suite_lib.workload import WorkloadConfig, WorkloadResult, run_workload


def variant_name(base: str, repeat: int, repeats: int) -> str:
    return f"{base}#{repeat}" if repeats > 1 else base


def chaos_rules(sc: Scenario, config: WorkloadConfig) -> CheckerConfig:
    allowed = checker.default_allowed(config.idempotent(sc.profile), faults=True, max_in_flight=config.max_in_flight)
    return CheckerConfig(allowed=allowed, min_acked=1)


def run_with_faults(sc: Scenario, variant: str, config: WorkloadConfig,
                    schedule: Schedule) -> tuple[WorkloadResult, CheckResult]:
    result = run_workload(sc.profile, config, run_id=sc.run_id, nemesis=schedule)
    verdict = sc.judge(variant, result, chaos_rules(sc, config))
    faults = result.history[result.history["f"] == "fault"]
    failed = faults[faults["type"] != "ok"]
    applied = len(faults) - len(failed)
    sc.add_check(variant, "every fault took effect", "-", f"{applied} of {len(faults)} fault steps",
                 f"all {len(schedule.steps)}", failed.empty and len(faults) >= len(schedule.steps),
                 "; ".join(failed["error"].head(3)) or ", ".join(fault_windows(result.history)["fault"]))
    slug = re.sub(r"[^a-z0-9]+", "-", f"{sc.scenario}-{variant}".lower())
    sc.save_figure(plots.timeline(result.history, f"{sc.scenario} {variant}"), f"{slug}-timeline")
    sc.save_figure(plots.latency_cdf(result.history, f"{sc.scenario} {variant}: publish latency"),
                   f"{slug}-latency-cdf")
    sc.save_figure(plots.unseen_curve(result.history, f"{sc.scenario} {variant}: final read-back"),
                   f"{slug}-readback")
    return result, verdict


def surfaced_errors(sc: Scenario, variant: str, history: pd.DataFrame, requirement: str = "NFR1") -> int:
    """Errors the application saw (sends ending fail/info, polls that raised) fail the check;
    errors the client handled itself (its own warnings: retries, resets) are counted beside them."""
    sends = history[(history["f"] == "send") & (history["type"] != "ok")]
    polls = history[(history["f"] == "poll") & (history["type"] != "ok")]
    handled = history.loc[history["f"] == "client-log", "error"]
    total = len(sends) + len(polls)
    errors = pd.concat([sends["error"], polls["error"]])
    sc.measure(f"{variant}.client_errors", {
        "surfaced": total, "handled_by_client": len(handled),
        "handled_retries": int(handled.str.contains("retr", case=False).sum()),
        "handled_top": handled.str.replace(r"\d+", "N", regex=True).value_counts().head(5).to_dict()})
    sc.add_check(variant, "client errors beyond retry", requirement, total, "== 0", total == 0,
                 f"{len(sends)} sends and {len(polls)} polls surfaced errors ({len(handled)} more handled by the "
                 "client itself); " + "; ".join(f"{n}× {e[:120]}" for e, n in errors.value_counts().head(3).items()))
    return total


def unavailability(history: pd.DataFrame, since_ns: int) -> pd.DataFrame:
    """Per partition written before since_ns: the longest gap between consecutive acknowledgements
    that ends after since_ns (the outage clients saw), and whether acks resumed at all."""
    acked = history[(history["f"] == "send") & (history["type"] == "ok")]
    rows = []
    for partition in sorted(acked.loc[acked["invoke_ns"] < since_ns, "partition"].unique()):
        times = np.sort(acked.loc[acked["partition"] == partition, "complete_ns"].to_numpy())
        last_before = times[times < since_ns].max()
        later = times[times >= since_ns]
        if len(later) == 0:
            rows.append({"partition": int(partition), "gap_s": np.nan, "resumed": False})
            continue
        gaps = np.diff(np.concatenate([[last_before], later]))
        rows.append({"partition": int(partition), "gap_s": float(gaps.max()) / 1e9, "resumed": True})
    return pd.DataFrame(rows, columns=["partition", "gap_s", "resumed"])


def check_recovery(sc: Scenario, variant: str, history: pd.DataFrame, limit_s: float = 5.0) -> float:
    """NFR1: after the fault starts, no partition goes longer than limit_s without an acknowledgement."""
    windows = fault_windows(history)
    if windows.empty:
        sc.not_tested(variant, "recovery time", "NFR1", "no fault window in the history")
        return float("nan")
    table = unavailability(history, int(windows["start_ns"].iloc[0]))
    resumed = bool(len(table)) and bool(table["resumed"].all())
    worst = float(table["gap_s"].max()) if resumed else float("nan")
    sc.measure(f"{variant}.unavailability_s", table)
    sc.add_check(variant, "recovery: longest time without an ack, per partition, after the fault starts", "NFR1",
                 round(worst, 2) if resumed else "acks never resumed", f"< {limit_s} s", resumed and worst < limit_s,
                 ", ".join(f"p{r.partition}: {r.gap_s:.2f} s" if r.resumed else f"p{r.partition}: never resumed"
                           for r in table.itertuples()))
    return worst


def check_rebalances(sc: Scenario, variant: str, history: pd.DataFrame, requirement: str = "F4.3") -> int:
    """Group assignments after each member's first one: rebalances the fault caused."""
    events = checker.group_events(history[history["process"] != checker.READBACK])
    assigns = events[events["f"] == "assign"]
    if assigns.empty:
        sc.not_tested(variant, "consumer-group rebalances", requirement, "no consumer-group member in this workload")
        return 0
    count = int(len(assigns) - assigns["process"].nunique())
    sc.add_check(variant, "consumer-group rebalances", requirement, count, "== 0", count == 0,
                 f"{len(assigns)} assignments to {assigns['process'].nunique()} members")
    return count


def client_reconnections(history: pd.DataFrame, since_ns: int) -> pd.DataFrame:
    """Per client: connections created after since_ns, from the client's own metrics samples."""
    samples = history[history["f"] == "client-metrics"]
    rows = []
    for process, group in samples.groupby("process"):
        totals = group.assign(total=group["detail"].map(lambda d: json.loads(d).get("connection-creation-total")))
        totals = totals.dropna(subset=["total"])
        before = totals[totals["complete_ns"] <= since_ns]["total"]
        if before.empty or totals.empty:
            continue
        rows.append({"client": process, "before": int(before.iloc[-1]), "after": int(totals["total"].iloc[-1]),
                     "reconnections": int(totals["total"].iloc[-1] - before.iloc[-1])})
    return pd.DataFrame(rows, columns=["client", "before", "after", "reconnections"])


def client_metadata_views(history: pd.DataFrame) -> pd.DataFrame:
    """Distinct broker lists each client's own metadata showed during the run."""
    history = history[history["f"] == "client-metrics"]
    seen: dict[str, set[tuple[str, ...]]] = {}
    for process, detail in zip(history["process"], history["detail"], strict=True):
        brokers = tuple(json.loads(detail).get("brokers") or ()) if detail else ()
        if brokers:
            seen.setdefault(process, set()).add(brokers)
    return pd.DataFrame([{"process": p, "brokers": sorted(v)} for p, v in sorted(seen.items())],
                        columns=["process", "brokers"])
