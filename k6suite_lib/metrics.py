"""Prometheus scrapes, parsed with prometheus_client's own text parser, as DataFrames.

A scrape of several URLs returns one row per sample; a failed URL is a row with an error rather
than an exception, because an unreachable metrics endpoint is a finding (NFR5), not a crash.
Sampling during a workload gives time series, so a check can say "the produce rate rose while
producing" with the numbers that decide it.
"""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families

SAMPLE_COLUMNS = ["url", "family", "type", "sample", "labels", "value", "t_wall", "error"]
# Series every KafScale broker exposes from start-up (v1.5.0 names; see shared reference notes).
# kafscale_admin_requests_total and kafscale_authz_denied_total appear only after their first event,
# so they are not expected from a fresh broker.
KAFSCALE_EXPECTED = (
    "kafscale_s3_health_state", "kafscale_s3_latency_ms_avg", "kafscale_s3_error_rate", "kafscale_produce_rps",
    "kafscale_fetch_rps", "kafscale_produce_latency_ms", "kafscale_consumer_lag", "kafscale_broker_uptime_seconds",
    "kafscale_broker_goroutines",
)


def scrape(urls: list[str] | tuple[str, ...], timeout_s: float = 5.0) -> pd.DataFrame:
    """One row per sample of every URL; an unreachable or unparsable URL gives one row with error set.
    All rows of one call share t_wall, so series can be summed over URLs per scrape."""
    rows = []
    now = time.time()
    for url in urls:
        try:
            response = requests.get(url, timeout=timeout_s)
            response.raise_for_status()
            families = list(text_string_to_metric_families(response.text))
        except Exception as exc:  # reported per URL, see module docstring
            rows.append({"url": url, "t_wall": now, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        for family in families:
            for sample in family.samples:
                rows.append({"url": url, "family": family.name, "type": family.type, "sample": sample.name,
                             "labels": json.dumps(sample.labels, sort_keys=True), "value": float(sample.value),
                             "t_wall": now, "error": ""})
    frame = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    frame["error"] = frame["error"].fillna("")
    return frame


def family_presence(samples: pd.DataFrame, expected: tuple[str, ...]) -> pd.DataFrame:
    """For each URL and expected family: present or not."""
    rows = []
    for url, group in samples.groupby("url", sort=False):
        names = set(group["family"].dropna())
        error = next((e for e in group["error"] if e), "")
        for family in expected:
            rows.append({"url": url, "family": family, "present": family in names, "error": error})
    return pd.DataFrame(rows, columns=["url", "family", "present", "error"])


class Sampler:
    """Scrapes in a background thread every interval_s until stopped; .frame() has every scrape."""

    def __init__(self, urls: list[str] | tuple[str, ...], interval_s: float = 1.0):
        self.urls, self.interval_s = list(urls), interval_s
        self._frames: list[pd.DataFrame] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._frames.append(scrape(self.urls, timeout_s=min(5.0, self.interval_s * 2)))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)

    def frame(self) -> pd.DataFrame:
        return pd.concat(self._frames, ignore_index=True) if self._frames else pd.DataFrame(columns=SAMPLE_COLUMNS)


def sample_rows(run_id: str, samples: pd.DataFrame, families: list[str]) -> list[dict]:
    """History rows (f = metric) for the samples of the given families, so checks on them can be
    re-run from the history alone; a URL that failed gives an info row with its error."""
    rows = []
    chosen = samples[samples["family"].isin(families) | (samples["error"] != "")] if families else samples.iloc[0:0]
    wall_to_monotonic = time.monotonic_ns() - time.time_ns()
    for sample in chosen.itertuples():
        t_ns = int(sample.t_wall * 1e9) + wall_to_monotonic
        rows.append({"run_id": run_id, "op_id": -1, "process": "metrics", "f": "metric",
                     "type": "info" if sample.error else "ok", "invoke_ns": t_ns, "complete_ns": t_ns,
                     "wall_ns": int(sample.t_wall * 1e9), "error": sample.error,
                     "detail": json.dumps({"family": None if sample.error else sample.family, "url": sample.url,
                                           "labels": None if sample.error else sample.labels,
                                           "value": None if sample.error else sample.value})})
    return rows


def series(samples: pd.DataFrame, sample_name: str, labels: dict | None = None) -> pd.DataFrame:
    """One sample name over time: t_wall, url, value (summed over label sets unless labels given)."""
    chosen = samples[samples["sample"] == sample_name]
    if labels is not None:
        chosen = chosen[chosen["labels"] == json.dumps(labels, sort_keys=True)]
    return chosen.groupby(["t_wall", "url"], as_index=False)["value"].sum()
