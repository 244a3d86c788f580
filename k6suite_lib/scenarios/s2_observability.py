"""S2 observability: metrics parse, name the expected series, move under load; a connection storm.

NFR5 asks that the system be observable; S2 of the trust contract adds that 1,000+ connections
opened and closed at random cause no connection or handshake errors.
"""

from __future__ import annotations

import time

import pandas as pd
from matplotlib.figure import Figure

from k6suite_lib import metrics, probes
from k6suite_lib.history import View
from k6suite_lib.scenario import Scenario
from k6suite_lib.workload import WorkloadConfig


def scrape(sc: Scenario) -> pd.DataFrame:
    """Every metrics URL of the profile answers with Prometheus text that names the expected series."""
    variant = "scrape"
    if not sc.profile.metrics_urls:
        sc.not_tested(variant, "metrics endpoints answer", "NFR5", "the profile lists no metrics_urls")
        return pd.DataFrame()
    samples = metrics.scrape(sc.profile.metrics_urls)
    for url, group in samples.groupby("url", sort=False):
        error = next((e for e in group["error"] if e), "")
        sc.add_check(variant, f"parses: {url}", "NFR5", f"{group['family'].nunique()} families",
                     "Prometheus text with >= 1 family", not error and group["family"].nunique() > 0,
                     error or f"{len(group)} samples")
    if sc.profile.target_kind != "kafscale":
        sc.not_tested(variant, "expected KafScale series present", "NFR5",
                      f"a {sc.profile.target_kind} target has no KafScale series")
        return samples
    presence = metrics.family_presence(samples, metrics.KAFSCALE_EXPECTED)
    missing = presence[~presence["present"]]
    sc.add_check(variant, "expected KafScale series present", "NFR5",
                 f"{int(presence['present'].sum())} of {len(presence)}", f"all {len(presence)}", missing.empty,
                 "missing: " + ", ".join(f"{r.family} @ {r.url}" for r in missing.itertuples()) if len(missing)
                 else ", ".join(metrics.KAFSCALE_EXPECTED))
    return presence.pivot(index="family", columns="url", values="present")


def under_load(sc: Scenario, quiet_s: float = 4.0, load_s: float = 10.0, rate: float = 200.0) -> None:
    """Sample metrics before and during a workload: the produce and fetch rates must rise (the plot is
    shown inline by save_figure)."""
    variant = "under-load"
    if sc.profile.target_kind != "kafscale" or not sc.profile.metrics_urls:
        sc.not_tested(variant, "produce rate rises under load", "NFR5", "needs a KafScale target with metrics URLs")
        return
    if not sc.require_target(variant):
        return
    with metrics.Sampler(sc.profile.metrics_urls, interval_s=1.0) as sampler:
        time.sleep(quiet_s)
        load_started = time.time()
        result = sc.run_workload(variant, WorkloadConfig(records=None, duration_s=load_s, rate=rate, consumers=1,
                                                         partitions=1, label="s2-load"))
        load_ended = time.time()
        time.sleep(1.5)
    samples = sampler.frame()
    sc.measure("under_load.acked", len(View(result.history).acked))
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for ax, name in zip(axes, ("kafscale_produce_rps", "kafscale_fetch_rps"), strict=True):
        series = metrics.series(samples, name)
        total = series.groupby("t_wall")["value"].sum()
        before = total[total.index < load_started]
        during = total[(total.index >= load_started + 1) & (total.index <= load_ended + 1.5)]
        base, peak = (before.max() if len(before) else 0.0), (during.max() if len(during) else float("nan"))
        sc.add_check(variant, f"{name} rises under load", "NFR5", f"{base:.1f} -> {peak:.1f}",
                     "peak during load > level before", bool(len(during)) and peak > base,
                     f"sum over {series['url'].nunique()} brokers; {len(total)} scrapes at 1 s")
        for url, group in series.groupby("url"):
            ax.plot(group["t_wall"] - load_started, group["value"], label=url.split("//")[1].split("/")[0])
        ax.axvspan(0, load_ended - load_started, color="#b8e186", alpha=0.4, label="workload")
        ax.set_title(name)
        ax.set_xlabel("seconds since the workload started")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    sc.save_figure(figure, "s2-metrics-under-load")


def connection_storm(sc: Scenario, total: int = 1000, concurrent: int = 200) -> pd.DataFrame:
    """Open `total` connections (up to `concurrent` at once, closing at random): 0 errors allowed."""
    variant = "connection-storm"
    if not sc.require_target(variant):
        return pd.DataFrame()
    attempts = probes.connection_storm(probes.endpoint(sc.profile), total, concurrent)
    failures = attempts[attempts["outcome"] != "ok"]
    sc.add_check(variant, "connection and handshake errors", "S2 / NFR3", len(failures), "== 0",
                 failures.empty and len(attempts) == total,
                 f"{len(attempts)} of {total} attempts, up to {attempts['open'].max() if len(attempts) else 0} open; "
                 + "; ".join(f"{n}× {e}" for e, n in failures["error"].value_counts().head(3).items()))
    summary = attempts.groupby("outcome")["ms"].describe(percentiles=[0.5, 0.99])
    sc.measure("connection_storm", summary)
    return summary
