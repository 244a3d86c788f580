"""S5 object-store slowness and outage, and S5b the same for the metadata store (etcd).

Faults act on the brokers' path to the store only (Toxiproxy), never on the clients' path.
Storage: latency 200 ms ± 50 ms, then a bandwidth limit, then a short full outage. Metadata store:
latency, then an outage. Verdicts on loss and corruption; measured and reported: the latency rise
clients saw, backpressure (errors and rejections during the faults), and how long consumers took
to catch up after the last fault ended (they must, before the run ends).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from k6suite_lib import metrics
from k6suite_lib.faults.network import Bandwidth, Latency, Outage
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.history import fault_windows
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import chaos
from k6suite_lib.workload import WorkloadConfig


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    latency_s: float
    bandwidth_s: float
    outage_s: float
    after_s: float


TIMINGS = {"smoke": Timing(8, 20, 10, 5, 15), "full": Timing(15, 60, 30, 10, 30)}


def catch_up(history: pd.DataFrame, since_ns: int) -> float:
    """Seconds after since_ns until live consumers had read every record acknowledged before it
    (NaN if they never did)."""
    acked = history[(history["f"] == "send") & (history["type"] == "ok") & (history["complete_ns"] <= since_ns)]
    reads = history[(history["f"] == "poll") & (history["type"] == "ok") & (history["process"] != "readback")]
    first = reads.groupby(["producer", "seq"])["complete_ns"].min()
    keys = pd.MultiIndex.from_frame(acked[["producer", "seq"]])
    seen = first.reindex(keys)
    if acked.empty or seen.isna().any():
        return float("nan")
    return max(0.0, (seen.max() - since_ns) / 1e9)


def _latency_ms(history: pd.DataFrame, start_ns: int, end_ns: int) -> float:
    sends = history[(history["f"] == "send") & (history["type"] == "ok") & (history["invoke_ns"] >= start_ns)
                    & (history["invoke_ns"] < end_ns)]
    return float(((sends["complete_ns"] - sends["invoke_ns"]) / 1e6).median()) if len(sends) else float("nan")


def store_faults(sc: Scenario, role: str, timing: Timing, latency_ms: int = 200, jitter_ms: int = 50,
                 bandwidth_kb: int = 64, rate: float = 100.0, repeat: int = 1, repeats: int = 1) -> pd.DataFrame:
    variant = chaos.variant_name(f"{role}-faults", repeat, repeats)
    if not sc.require_target(variant):
        return pd.DataFrame()
    if sc.stack is None:
        sc.not_tested(variant, f"{role} latency and outage", "F6 / NFR1",
                      "store faults need the embedded stack's Toxiproxy between brokers and the store")
        return pd.DataFrame()
    proxy = sc.stack.toxiproxy
    windows = [(Latency(proxy, role, latency_ms, jitter_ms), timing.warmup_s, timing.latency_s)]
    start = timing.warmup_s + timing.latency_s
    if role == "storage":
        windows.append((Bandwidth(proxy, role, bandwidth_kb), start, timing.bandwidth_s))
        start += timing.bandwidth_s
    windows.append((Outage(proxy, role), start, timing.outage_s))
    schedule = Schedule.windows(windows)
    duration = start + timing.outage_s + timing.after_s
    config = WorkloadConfig(records=None, duration_s=duration, rate=rate, producers=1, consumers=2, partitions=3,
                            label=f"s5-{variant}", consume_grace_s=45, readback_timeout_s=90, client_metrics_s=0,
                            progress=False)
    with metrics.Sampler(sc.profile.metrics_urls, interval_s=1.0) as sampler:
        result, verdict = chaos.run_with_faults(sc, variant, config, schedule)
    history = result.history
    spans = fault_windows(history)
    first_start, last_end = int(spans["start_ns"].min()), int(spans["end_ns"].max())
    before = _latency_ms(history, 0, first_start)
    lat_window = spans.iloc[0]
    during = _latency_ms(history, int(lat_window["start_ns"]), int(lat_window["end_ns"]))
    if role == "storage":
        sc.add_check(variant, "slow storage shows as higher publish latency", "F6.3",
                     f"p50 {before:.0f} -> {during:.0f} ms", "higher during the latency window",
                     bool(during > before), "clients must feel storage slowness rather than lose data")
        s3 = metrics.series(sampler.frame(), "kafscale_s3_latency_ms_avg")
        peak = float(s3["value"].max()) if len(s3) else float("nan")
        sc.add_check(variant, "brokers' S3 latency metric shows the injected latency", "NFR5",
                     f"max {peak:.0f} ms", f">= {latency_ms} ms", bool(peak >= latency_ms),
                     "kafscale_s3_latency_ms_avg sampled every second on every broker")
    errors = history[(history["f"].isin(["send", "poll"])) & (history["type"] != "ok")
                     & (history["invoke_ns"] >= first_start)]
    sc.measure(f"{variant}.backpressure", {"errors_during_faults": len(errors),
                                           "by_error": errors["error"].str[:100].value_counts().head(5).to_dict(),
                                           "publish_p50_before_ms": before, "publish_p50_latency_window_ms": during})
    caught = catch_up(history, last_end)
    sc.add_check(variant, "consumers catch up after the faults", "F6 / S5",
                 "never" if np.isnan(caught) else f"{caught:.1f} s", "every record acked before the end is read",
                 not np.isnan(caught), "time from the last fault's end until live consumers had read all of it")
    return verdict.verdicts
