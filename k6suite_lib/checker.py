"""The checker: turns a history into anomalies, verdicts and latency statistics.

Anomaly classes follow Jepsen's Kafka workload (see shared reference anchors):

- lost-write: an acknowledged send never read, although a higher offset of its partition was read;
- unseen: an acknowledged send never read (not even by the final read-back) and not a lost-write;
- duplicate: one record identity at more than one (topic, partition, offset);
- inconsistent-offsets: one (topic, partition, offset) holding more than one identity;
- aborted-read: a record read whose send definitely failed;
- poll-skip: a consumer jumped over an offset known to exist, within one assignment session;
- nonmonotonic-poll: a consumer read an offset not above its previous one, within one session;
- nonmonotonic-send: a producer's later send landed at a lower offset of the same partition;
- corrupted: a record read whose payload fails its checksum, cannot be parsed, or was never sent;
- readback-missing: an acknowledged send that the final read-back (every partition from the
  beginning, after the workload and its faults) did not return, even if a live consumer saw it:
  a record that was served once and is gone from the system of record since.

Only acknowledged sends can be lost or unseen: a send of type ``info`` (timeout, unknown outcome)
is never counted against the system. Everything is vectorised so a million operations check in
seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ANOMALIES = (
    "lost-write", "unseen", "duplicate", "inconsistent-offsets", "aborted-read", "poll-skip",
    "nonmonotonic-poll", "nonmonotonic-send", "corrupted", "readback-missing",
)
REQUIREMENT = {
    "lost-write": "F3 / NFR1", "unseen": "F3 / NFR2", "duplicate": "F3 / NFR2",
    "inconsistent-offsets": "F2.5 / NFR2", "aborted-read": "F2", "poll-skip": "F2.5",
    "nonmonotonic-poll": "F2.5", "nonmonotonic-send": "F2.5 / NFR2", "corrupted": "F6 / NFR1",
    "readback-missing": "F3 / F6",
}
READBACK = "readback"
PERCENTILES = {"p50": 50, "p75": 75, "p95": 95, "p99": 99, "p99.9": 99.9, "p99.99": 99.99}
VERDICT_COLUMNS = ["check", "requirement", "measured", "threshold", "status", "passed", "evidence"]
EVIDENCE_ROWS = 5


@dataclass(frozen=True)
class CheckerConfig:
    """What a configuration legitimately produces, and what the workload must have achieved.

    allowed: anomaly classes reported but not failed (e.g. duplicates from retries without
    idempotence under faults). min_acked: a run that acknowledged fewer sends proves nothing.
    max_unacked: when set, sends that ended fail or info beyond this count fail the run.
    """

    allowed: frozenset[str] = frozenset()
    min_acked: int = 1
    max_unacked: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.allowed) - set(ANOMALIES)
        if unknown:
            raise ValueError(f"unknown anomaly classes: {', '.join(sorted(unknown))}")

    def to_json(self) -> dict:
        return {"allowed": sorted(self.allowed), "min_acked": self.min_acked, "max_unacked": self.max_unacked}

    @classmethod
    def from_json(cls, data: dict | None) -> CheckerConfig:
        data = data or {}
        return cls(allowed=frozenset(data.get("allowed", ())), min_acked=int(data.get("min_acked", 1)),
                   max_unacked=data.get("max_unacked"))


def default_allowed(idempotent: bool, faults: bool, max_in_flight: int) -> frozenset[str]:
    """Duplicates are legitimate only when a non-idempotent producer may have retried (under
    faults); reordering only when several requests per connection were in flight."""
    allowed = set()
    if faults and not idempotent:
        allowed.add("duplicate")
    if max_in_flight > 1 and not idempotent:
        allowed.add("nonmonotonic-send")
    return frozenset(allowed)


@dataclass
class CheckResult:
    counts: dict[str, int]
    anomalies: dict[str, pd.DataFrame]
    verdicts: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No check failed (NOT TESTED rows are neither passes nor failures)."""
        return not any(p is False for p in self.verdicts["passed"])


def _ident(frame: pd.DataFrame) -> pd.Series:
    """Readable record identity, producer#seq (only built for the few rows shown as evidence)."""
    return frame["producer"].astype(str) + "#" + frame["seq"].astype("int64").astype(str)


def _with_codes(history: pd.DataFrame) -> pd.DataFrame:
    """Add an int64 identity code per row; integer set operations keep a 1M-row check fast."""
    producer_codes, _ = pd.factorize(history["producer"])
    code = (producer_codes.astype("int64") << 32) | (history["seq"].to_numpy(dtype="int64") & 0xFFFFFFFF)
    return history.assign(code=code)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(ident=_ident(frame)) if len(frame) else frame.assign(ident=pd.Series(dtype="string"))


def find_anomalies(history: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Every anomaly class -> the offending rows (with an ident column); plus descriptive counts."""
    history = _with_codes(history)
    sends = history[history["f"] == "send"]
    acked = sends[sends["type"] == "ok"]
    failed_codes = sends.loc[sends["type"] == "fail", "code"].to_numpy()
    reads = history[(history["f"] == "poll") & (history["type"] == "ok")]
    bad = reads["corrupt"].to_numpy(dtype=bool) | ~np.isin(reads["code"].to_numpy(), sends["code"].to_numpy())
    valid = reads[~bad]
    found: dict[str, pd.DataFrame] = {"corrupted": reads[bad]}

    read_codes = np.unique(valid["code"].to_numpy())
    not_read = acked[~np.isin(acked["code"].to_numpy(), read_codes)]
    top_read = reads.groupby(["topic", "partition"])["offset"].max().rename("highest_read").reset_index()
    highest = not_read[["topic", "partition"]].merge(top_read, on=["topic", "partition"], how="left")
    is_lost = not_read["offset"].to_numpy() < highest["highest_read"].fillna(-1).to_numpy()
    found["lost-write"] = not_read[is_lost]
    found["unseen"] = not_read[~is_lost]

    cols = ["code", "producer", "seq", "topic", "partition", "offset"]
    positions = pd.concat([acked[cols], valid[cols]], ignore_index=True)
    positions = positions[positions["offset"] >= 0].drop_duplicates(["code", "topic", "partition", "offset"])
    per_code = positions.groupby("code")["offset"].transform("size")
    found["duplicate"] = positions[per_code > 1].sort_values(["code", "partition", "offset"])
    per_slot = positions.groupby(["topic", "partition", "offset"])["code"].transform("nunique")
    found["inconsistent-offsets"] = positions[per_slot > 1].sort_values(["topic", "partition", "offset"])

    found["aborted-read"] = valid[np.isin(valid["code"].to_numpy(), failed_codes)]
    found["poll-skip"], found["nonmonotonic-poll"] = _poll_order(reads, acked)
    found["nonmonotonic-send"] = _send_order(acked)
    readback_ran = bool((history["process"] == READBACK).any())
    read_back = np.unique(valid.loc[valid["process"] == READBACK, "code"].to_numpy())
    found["readback-missing"] = (acked[~np.isin(acked["code"].to_numpy(), read_back)] if readback_ran
                                 else acked.iloc[0:0])

    stats = {
        "sends": len(sends), "acked": len(acked), "failed": int((sends["type"] == "fail").sum()),
        "indeterminate": int((sends["type"] == "info").sum()), "reads": len(reads),
        "distinct_read": len(read_codes), "read_by_readback": len(read_back), "readback_ran": int(readback_ran),
    }
    return {name: _labelled(found[name]).drop(columns=["code"]) for name in ANOMALIES}, stats


def _poll_order(reads: pd.DataFrame, acked: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Consecutive reads of one partition within one consumer session must step to the next
    existing offset: going back is nonmonotonic, jumping over a known offset is a skip."""
    if reads.empty:
        return reads.iloc[0:0], reads.iloc[0:0]
    keys = ["process", "session", "topic", "partition"]
    ordered = reads.reset_index(drop=True)  # history order: completion time, then record order
    previous = ordered.groupby(keys, sort=False)["offset"].shift(1)
    has_prev = previous.notna()
    prev = previous.fillna(-1).astype("int64").to_numpy()
    offset = ordered["offset"].to_numpy()
    nonmonotonic = has_prev.to_numpy() & (offset <= prev)

    known = pd.concat([acked[["topic", "partition", "offset"]], reads[["topic", "partition", "offset"]]])
    known = known[known["offset"] >= 0].drop_duplicates()
    candidate = has_prev.to_numpy() & (offset > prev + 1)
    skip = np.zeros(len(ordered), dtype=bool)
    if candidate.any():
        cand = ordered[candidate].assign(prev=prev[candidate])
        for (topic, partition), group in cand.groupby(["topic", "partition"]):
            offs = np.sort(known[(known["topic"] == topic) & (known["partition"] == partition)]["offset"]
                           .to_numpy())
            inside = (np.searchsorted(offs, group["offset"].to_numpy(), "left")
                      - np.searchsorted(offs, group["prev"].to_numpy(), "right"))
            skip[group.index[inside > 0]] = True
    with_prev = ordered.assign(previous_offset=prev)
    return with_prev[skip], with_prev[nonmonotonic]


def _send_order(acked: pd.DataFrame) -> pd.DataFrame:
    if acked.empty:
        return acked
    ordered = acked[acked["offset"] >= 0].sort_values(["producer", "topic", "partition", "seq"])
    previous = ordered.groupby(["producer", "topic", "partition"])["offset"].shift(1)
    out = ordered[previous.notna() & (ordered["offset"] < previous)]
    return out.assign(previous_offset=previous[out.index].astype("int64"))


def _evidence(name: str, rows: pd.DataFrame) -> str:
    if rows.empty:
        return ""
    if name in ("duplicate", "inconsistent-offsets"):
        group_by = "ident" if name == "duplicate" else ["topic", "partition", "offset"]
        groups = []
        for key, group in list(rows.groupby(group_by, sort=False))[:EVIDENCE_ROWS]:
            if name == "duplicate":
                groups.append(f"{key} at " + ", ".join(f"p{p}@{o}" for p, o in
                                                        zip(group["partition"], group["offset"], strict=True)))
            else:
                groups.append(f"p{key[1]}@{key[2]} holds " + ", ".join(group["ident"]))
        return "; ".join(groups)
    if name in ("poll-skip", "nonmonotonic-poll"):
        jumps = rows.drop_duplicates(["process", "partition", "previous_offset", "offset"]).head(EVIDENCE_ROWS)
        return "; ".join(f"{r.process} p{r.partition}: {r.previous_offset} -> {r.offset}" for r in jumps.itertuples())
    sample = rows.head(EVIDENCE_ROWS)
    return "; ".join(f"{r.ident} p{r.partition}@{r.offset} ({r.process})" for r in sample.itertuples())


def check(history: pd.DataFrame, config: CheckerConfig | None = None) -> CheckResult:
    """Judge a history: one verdict row per check, each naming its measurement and threshold."""
    config = config or CheckerConfig()
    anomalies, stats = find_anomalies(history)
    counts = {name: int(anomaly_count(name, rows)) for name, rows in anomalies.items()}
    evidence = (f"{stats['sends']} sends: {stats['acked']} ok, {stats['failed']} fail, "
                f"{stats['indeterminate']} info")
    if stats["acked"] < config.min_acked:  # say why, from the operations themselves (not the client's logs)
        evidence += "; " + _top_errors(history[(history["type"] != "ok") & (history["f"] != "client-log")])
    rows = [{
        "check": "acknowledged sends", "requirement": "F2.1", "measured": stats["acked"],
        "threshold": f">= {config.min_acked}", "passed": stats["acked"] >= config.min_acked, "evidence": evidence,
    }]
    if config.max_unacked is not None:
        unacked = stats["failed"] + stats["indeterminate"]
        rows.append({
            "check": "unacknowledged sends", "requirement": "F2.1 / NFR1", "measured": unacked,
            "threshold": f"<= {config.max_unacked}", "passed": unacked <= config.max_unacked,
            "evidence": _top_errors(history[(history["f"] == "send") & (history["type"] != "ok")]),
        })
    for name in ANOMALIES:
        allowed = name in config.allowed
        if name == "readback-missing" and not stats["readback_ran"]:
            rows.append({"check": name, "requirement": REQUIREMENT[name], "measured": None,
                         "threshold": "== 0", "status": "NOT TESTED", "passed": None,
                         "evidence": "no final read-back in this history"})
            continue
        rows.append({
            "check": name, "requirement": REQUIREMENT[name], "measured": counts[name],
            "threshold": "reported (allowed here)" if allowed else "== 0",
            "passed": True if allowed else counts[name] == 0,
            "evidence": _evidence(name, anomalies[name]),
            "status": "ALLOWED" if allowed else None,
        })
    verdicts = verdict_frame(rows)
    return CheckResult(counts=counts, anomalies=anomalies, verdicts=verdicts, stats=stats)


def _top_errors(rows: pd.DataFrame, n: int = 3) -> str:
    errors = rows.loc[rows["error"] != "", "error"]
    return "; ".join(f"{count}× {error}" for error, count in errors.value_counts().head(n).items())


def anomaly_count(name: str, rows: pd.DataFrame) -> int:
    """Duplicates count identities, inconsistent offsets count slots, other classes count rows."""
    if rows.empty:
        return 0
    if name == "duplicate":
        return rows[["producer", "seq"]].drop_duplicates().shape[0]
    if name == "inconsistent-offsets":
        return len(rows[["topic", "partition", "offset"]].drop_duplicates())
    return len(rows)


def verdict_frame(rows: list[dict]) -> pd.DataFrame:
    """Normalise verdict rows: status is PASS/FAIL unless a row says otherwise (ALLOWED, NOT TESTED).

    A NOT TESTED row has passed=None: it is neither a pass nor a failure, and reports show it so.
    """
    frame = pd.DataFrame(rows)
    for column in VERDICT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    status = []
    for passed, given in zip(frame["passed"], frame["status"], strict=True):
        if isinstance(given, str) and given:
            status.append(given)
        else:
            status.append("PASS" if passed else "FAIL")
    frame["status"] = status
    frame["passed"] = [None if s == "NOT TESTED" else bool(p) for p, s in zip(frame["passed"], status, strict=True)]
    frame["measured"] = frame["measured"].map(_fmt)
    frame["evidence"] = frame["evidence"].fillna("")
    return frame[VERDICT_COLUMNS]


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# --------------------------------------------------------------------------- measurements
def latency_summary(history: pd.DataFrame) -> pd.DataFrame:
    """Publish latency, end-to-end latency and publish delay (ms) at OMB's percentiles."""
    sends = history[history["f"] == "send"]
    acked = sends[sends["type"] == "ok"]
    publish = (acked["complete_ns"] - acked["invoke_ns"]) / 1e6
    delay_rows = sends[sends["intended_ns"] >= 0]
    delay = (delay_rows["invoke_ns"] - delay_rows["intended_ns"]).clip(lower=0) / 1e6
    reads = history[(history["f"] == "poll") & (history["type"] == "ok") & (history["process"] != READBACK)
                    & ~history["corrupt"].astype(bool)]
    first_read = reads.groupby(["producer", "seq"])["complete_ns"].min()
    invoked = acked.set_index(["producer", "seq"])["invoke_ns"]
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


def throughput(history: pd.DataFrame, bin_s: float = 1.0) -> pd.DataFrame:
    """Per time bin since the first operation: acked sends, failed/indeterminate sends, reads."""
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


def unseen_over_time(history: pd.DataFrame) -> pd.DataFrame:
    """During the final read-back: acknowledged records not yet read by anyone, over time."""
    history = _with_codes(history)
    acked = history.loc[(history["f"] == "send") & (history["type"] == "ok"), "code"].to_numpy()
    reads = history[(history["f"] == "poll") & (history["type"] == "ok") & ~history["corrupt"].astype(bool)]
    live = reads.loc[reads["process"] != READBACK, "code"].to_numpy()
    remaining = np.setdiff1d(acked, live)
    back = reads[reads["process"] == READBACK]
    first = pd.DataFrame({"elapsed_s": [0.0], "unseen": [len(remaining)]})
    if back.empty:
        return first
    codes = back["code"]
    new = codes.isin(remaining) & ~codes.duplicated()
    elapsed = (back["complete_ns"] - back["invoke_ns"].min()) / 1e9
    frame = pd.DataFrame({"elapsed_s": elapsed.to_numpy(), "unseen": (len(remaining) - new.cumsum()).to_numpy()})
    return pd.concat([first, frame.groupby("elapsed_s", as_index=False)["unseen"].min()], ignore_index=True)


def group_events(history: pd.DataFrame) -> pd.DataFrame:
    """Consumer-group assignments and revocations, with the partitions in each."""
    events = history[history["f"].isin(["assign", "revoke"])]
    details = events["detail"].map(lambda d: json.loads(d) if d else {})
    return events.assign(partitions=details.map(lambda d: d.get("partitions")),
                         generation=details.map(lambda d: d.get("generation")))[
        ["process", "f", "type", "complete_ns", "session", "partitions", "generation"]]


def own_reads_missing(history: pd.DataFrame) -> pd.DataFrame:
    """Read-your-writes: acknowledged sends their own process never read back (at any offset)."""
    coded = _with_codes(history)
    acked = coded[(coded["f"] == "send") & (coded["type"] == "ok")]
    reads = coded[(coded["f"] == "poll") & (coded["type"] == "ok") & ~coded["corrupt"].astype(bool)]
    own = set(zip(reads["process"], reads["code"], strict=True))
    missing = [(p, c) not in own for p, c in zip(acked["process"], acked["code"], strict=True)]
    return _labelled(acked[missing]).drop(columns=["code"])


def final_assignments(history: pd.DataFrame) -> dict[str, list[int]]:
    """Each group consumer's assignment when the workload told consumers to stop (revocations after
    that moment are members leaving, not rebalances)."""
    stops = history[(history["f"] == "phase") & history["detail"].str.contains("consumers-stop", regex=False)]
    ends = stops["complete_ns"] if len(stops) else history["complete_ns"].nlargest(1)  # no marker: the end
    cutoff = int(ends.min()) if len(ends) else 0
    events = group_events(history[(history["process"] != READBACK) & (history["complete_ns"] <= cutoff)])
    events = events.sort_values("complete_ns")
    final: dict[str, list[int]] = {}
    for row in events.itertuples():
        final[row.process] = list(row.partitions or []) if row.f == "assign" else []
    return final


def last_commits(history: pd.DataFrame) -> dict[int, int]:
    """Per partition, the offset of the last successful commit (by completion time)."""
    commits = history[(history["f"] == "commit") & (history["type"] == "ok")].sort_values("complete_ns")
    last: dict[int, int] = {}
    for detail in commits["detail"]:
        for partition, offset in json.loads(detail).get("offsets", {}).items():
            last[int(partition)] = int(offset)
    return last
