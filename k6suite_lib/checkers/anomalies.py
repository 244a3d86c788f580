"""The core checker: turns a history into anomalies, Jepsen style, and anomalies into verdicts.

Anomaly classes (see the shared reference anchors for Jepsen's Kafka workload):

- lost-write: an acknowledged send never read, although a higher offset of its partition was read;
- unseen: an acknowledged send never read (not even by the final read-back) and not a lost-write;
- duplicate: one record identity at more than one (topic, partition, offset);
- inconsistent-offsets: one (topic, partition, offset) holding more than one identity;
- aborted-read: a record read whose send definitely failed;
- poll-skip: a consumer jumped over an offset known to exist, within one assignment session;
- nonmonotonic-poll: a consumer read an offset not above its previous one, within one session;
- nonmonotonic-send: a producer's later send landed at a lower offset of the same partition;
- corrupted: a record read whose payload fails its checksum, cannot be parsed, was never sent, or
  carries another body checksum, length or key than its send wrote;
- readback-missing: an acknowledged send that the final read-back did not return, even if a live
  consumer saw it: a record that was served once and is gone from the system of record since;
- position-mismatch: an acknowledged (topic, partition, offset) that the final read-back passed
  and found absent or holding another record. Acknowledged positions are facts: a retry copy of
  the same record elsewhere does not excuse a position that lost its record;
- foreign-record: a record whose payload carries another run's id (left over from an earlier run,
  or served from another topic): never matched to this run's sends;
- ack-without-offset: an acknowledged send whose acknowledgement carried no offset (-1). Under any acks but 0
  the broker answers the offset it wrote the record at, so an ok without one breaks the protocol's promise
  (F2) and leaves the record nowhere to look for; under acks=0 no answer is owed, so it is NOT TESTED there
  (the producers' acks come from the history's metadata, config.acks).

Only acknowledged sends can be lost or unseen: a send of type ``info`` (timeout, unknown outcome)
is never counted against the system. Classes that say acknowledged data is gone or wrong can never
be allowed. Everything is vectorised so a million operations check in about a second.
"""

from __future__ import annotations

import heapq
import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from k6suite_lib.checkers.measures import readback_reach
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import AtLeast, AtMost, Equals, allowed_verdict, not_tested, verdict
from k6suite_lib.history import READBACK, View

ANOMALIES = (
    "lost-write", "unseen", "duplicate", "inconsistent-offsets", "aborted-read", "poll-skip",
    "nonmonotonic-poll", "nonmonotonic-send", "corrupted", "readback-missing", "position-mismatch",
    "foreign-record", "ack-without-offset",
)
# acknowledged data gone, wrong or unreadable, or acknowledged nowhere: no configuration makes these legitimate
# (acks=0, which owes no offset, leaves ack-without-offset NOT TESTED, not allowed)
NEVER_ALLOWED = frozenset({"lost-write", "unseen", "readback-missing", "corrupted", "inconsistent-offsets",
                           "position-mismatch", "foreign-record", "ack-without-offset"})
REQUIREMENT = {
    "lost-write": "F3 / NFR1", "unseen": "F3 / NFR2", "duplicate": "F3 / NFR2",
    "inconsistent-offsets": "F2.5 / NFR2", "aborted-read": "F2", "poll-skip": "F2.5",
    "nonmonotonic-poll": "F2.5", "nonmonotonic-send": "F2.5 / NFR2", "corrupted": "F6 / NFR1",
    "readback-missing": "F3 / F6", "position-mismatch": "F3 / NFR2", "foreign-record": "F2 / NFR2",
    "ack-without-offset": "F2",
}
READBACK_CLASSES = ("readback-missing", "position-mismatch")
EVIDENCE_ROWS = 5


@dataclass(frozen=True)
class AnomalyRules:
    """What a configuration legitimately produces, and what the workload must have achieved.

    allowed: anomaly classes reported but not failed (e.g. reordering with several requests in
    flight without idempotence); never one of NEVER_ALLOWED. min_acked: a run that acknowledged
    fewer sends proves nothing. max_unacked: when set, sends that ended fail or info beyond this
    count fail the run. retried_duplicates: a duplicate that its own producer's recorded retry on
    that partition explains (the retry came while the send was outstanding, every copy is on that
    partition) is ALLOWED, with the retry as evidence; only for producers without idempotence, whose
    retries may land twice. retried_reordering: a later send that landed below an earlier one is ALLOWED
    when the earlier one (the one that landed higher) has a recorded retry of its own while outstanding;
    only for producers with several requests in flight without idempotence. A broker handles one
    connection's requests in order, so a reordering without that resend is the system's.
    """

    allowed: frozenset[str] = frozenset()
    min_acked: int = 1
    max_unacked: int | None = None
    retried_duplicates: bool = False
    retried_reordering: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.allowed) - set(ANOMALIES)
        if unknown:
            raise ValueError(f"unknown anomaly classes: {', '.join(sorted(unknown))}")
        forbidden = set(self.allowed) & NEVER_ALLOWED
        if forbidden:
            raise ValueError(f"{', '.join(sorted(forbidden))} can never be allowed: acknowledged data that is "
                             "gone or wrong is a failure in every configuration")
        if self.min_acked < 1:  # with 0, a history that acknowledged nothing would pass 'acknowledged sends'
            raise ValueError(f"min_acked must be at least 1, got {self.min_acked}: a history without an "
                             "acknowledged send proves nothing")

    def params(self) -> dict:
        return {"allowed": sorted(self.allowed), "min_acked": self.min_acked, "max_unacked": self.max_unacked,
                "retried_duplicates": self.retried_duplicates, "retried_reordering": self.retried_reordering}


def reordering_needs_retry(idempotent: bool, max_in_flight: int) -> bool:
    """Whether a reordering can be the producer's own: only with several requests per connection in
    flight without idempotence, and then only where the send that landed higher was resent
    (AnomalyRules.retried_reordering). Neither duplicates nor reorderings are ever allowed wholesale."""
    return max_in_flight > 1 and not idempotent


def ident(frame: pd.DataFrame) -> pd.Series:
    """Readable record identity, producer#seq (only built for the few rows shown as evidence)."""
    return frame["producer"].astype(str) + "#" + frame["seq"].astype("int64").astype(str)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    labelled = frame.assign(ident=ident(frame)) if len(frame) else frame.assign(ident=pd.Series(dtype="string"))
    return labelled.drop(columns=["code"], errors="ignore")


def _isin(values: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Membership by hashing: np.isin (and np.unique) sort, several times slower at a million rows."""
    return pd.Series(values, copy=False).isin(test).to_numpy()


def find_anomalies(view: View) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Every anomaly class -> the offending rows (with an ident column); plus descriptive counts.
    Computed once per view: the checker, the scenario's evidence and explore share it."""
    return view.memo("anomalies", lambda: _find_anomalies(view))


def _find_anomalies(view: View) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    sends, acked, reads = view.sends, view.acked, view.reads
    failed_codes = sends.loc[sends["type"] == "fail", "code"].to_numpy()
    foreign = view.foreign.to_numpy(dtype=bool)
    unknown = ~_isin(reads["code"].to_numpy(), sends["code"].to_numpy())
    bad = reads["corrupt"].to_numpy(dtype=bool) | (unknown & ~foreign) | view.altered.to_numpy(dtype=bool)
    valid = view.valid_reads
    found: dict[str, pd.DataFrame] = {"corrupted": reads[bad], "foreign-record": reads[foreign]}

    valid_codes = valid["code"].to_numpy()
    read_codes = pd.unique(valid_codes)
    not_read = acked[~_isin(acked["code"].to_numpy(), read_codes)]
    if len(not_read):
        top_read = reads.groupby(["topic", "partition"])["offset"].max().rename("highest_read").reset_index()
        highest = not_read[["topic", "partition"]].merge(top_read, on=["topic", "partition"], how="left")
        is_lost = not_read["offset"].to_numpy() < highest["highest_read"].fillna(-1).to_numpy()
    else:
        is_lost = np.zeros(0, dtype=bool)
    found["lost-write"] = not_read[is_lost]
    found["unseen"] = not_read[~is_lost]

    cols = ["code", "producer", "seq", "topic", "partition", "offset"]
    positions = pd.concat([acked[cols], valid[cols]], ignore_index=True)
    positions = positions[positions["offset"] >= 0]
    # the rows below are only those of identities at several slots and of slots holding several
    # identities, found on integer arrays first: grouping all million positions is what was slow
    code, slot = positions["code"].to_numpy(), _slot_ids(positions)
    shared_codes, crowded_slots = _shared_and_crowded(code, slot)
    dedupe = ["code", "topic", "partition", "offset"]
    shared = positions[_isin(code, shared_codes)].drop_duplicates(dedupe)
    per_code = shared.groupby("code")["offset"].transform("size")
    found["duplicate"] = shared[per_code > 1].sort_values(["code", "partition", "offset"])
    crowded = positions[_isin(slot, crowded_slots)].drop_duplicates(dedupe)
    per_slot = crowded.groupby(["topic", "partition", "offset"])["code"].transform("nunique")
    found["inconsistent-offsets"] = crowded[per_slot > 1].sort_values(["topic", "partition", "offset"])

    found["aborted-read"] = valid[_isin(valid_codes, failed_codes)]
    found["poll-skip"], found["nonmonotonic-poll"] = _poll_order(reads, acked)
    found["nonmonotonic-send"] = _send_order(acked)
    read_back = pd.unique(valid_codes[(valid["process"] == READBACK).to_numpy(dtype=bool)])
    found["readback-missing"] = (acked[~_isin(acked["code"].to_numpy(), read_back)] if view.readback_ran
                                 else acked.iloc[0:0])
    found["position-mismatch"] = _position_mismatches(view) if view.readback_ran else acked.iloc[0:0]
    found["ack-without-offset"] = acked[acked["offset"] < 0]

    stats = {
        "sends": len(sends), "acked": len(acked), "failed": int((sends["type"] == "fail").sum()),
        "indeterminate": int((sends["type"] == "info").sum()), "reads": len(reads),
        "distinct_read": len(read_codes), "read_by_readback": len(read_back), "readback_ran": int(view.readback_ran),
    }
    return {name: _labelled(found[name]) for name in ANOMALIES}, stats


def _slot_ids(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (topic, partition, offset) of the frame: equal exactly when the slots are equal."""
    if frame.empty:
        return np.zeros(0, dtype="int64")
    topics = frame["topic"]
    if (topics == topics.iloc[0]).all():  # one topic, as usual: nothing to factorize
        topic = np.zeros(len(frame), dtype="int64")
    else:
        topic = pd.factorize(topics)[0].astype("int64")
    partition, offset = frame["partition"].to_numpy(dtype="int64"), frame["offset"].to_numpy(dtype="int64")
    low, span = int(partition.min()), int(partition.max()) - int(partition.min()) + 1
    offsets = int(offset.max()) - int(offset.min()) + 1
    if (int(topic.max()) + 1) * span * offsets < 2**63:
        return (topic * span + (partition - low)) * offsets + (offset - int(offset.min()))
    return frame.groupby(["topic", "partition", "offset"], sort=False).ngroup().to_numpy(dtype="int64")


def _shared_and_crowded(code: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identities found at more than one slot, and slots holding more than one identity (one sort)."""
    order = np.argsort(slot, kind="stable")
    slot, code = slot[order], code[order]
    same_slot, other_code = slot[1:] == slot[:-1], code[1:] != code[:-1]
    crowded = np.unique(slot[1:][same_slot & other_code])
    # the distinct (slot, identity) pairs: where a run of equal rows starts, deduplicated in crowded
    # slots only, where identities may interleave
    starts = np.concatenate([np.ones(min(len(slot), 1), dtype=bool), ~same_slot | other_code])
    pairs = pd.DataFrame({"slot": slot[starts], "code": code[starts]})
    in_crowded = _isin(pairs["slot"].to_numpy(), crowded)
    codes = pd.concat([pairs[~in_crowded], pairs[in_crowded].drop_duplicates()])["code"]
    return np.unique(codes[codes.duplicated()].to_numpy()), crowded


def _position_mismatches(view: View) -> pd.DataFrame:
    """Acknowledged positions the read-back passed without finding their record there.

    The read-back covered a partition up to where it stopped (its recorded final position, or past
    the highest offset it read); positions beyond that were not reached, which the read-back checks
    judge on their own, so they are not counted here.
    """
    keys = ["topic", "partition", "offset", "code"]
    acked = view.acked[keys]  # the key columns only: the few rows found wrong are taken whole below
    back = view.readback_reads
    reached = readback_reach(view)
    offset = acked["offset"].to_numpy()
    covered = (offset >= 0) & (offset < acked["partition"].map(reached).fillna(0).to_numpy())
    good = ~back["corrupt"].to_numpy(dtype=bool) & ~view.foreign.loc[back.index].to_numpy(dtype=bool)
    matched = _held(acked[covered], back.loc[good, keys])
    wrong = view.acked.iloc[np.flatnonzero(covered)[~matched]]
    slots = ["topic", "partition", "offset"]  # what the read-back found, described only where it is shown
    near = back.merge(wrong[slots].drop_duplicates(), on=slots) if len(wrong) else back.iloc[0:0]
    slot = near.assign(found=ident(near).where(~near["corrupt"], "a corrupt record"))
    slot = slot.groupby(slots)["found"].agg(lambda s: ", ".join(sorted(set(s))))
    keys = pd.MultiIndex.from_frame(wrong[slots])
    return wrong.assign(found=slot.reindex(keys).fillna("absent").to_numpy())


def _held(rows: pd.DataFrame, held: pd.DataFrame) -> np.ndarray:
    """Per row: held has a row with the same topic, partition, offset and code."""
    slots = _slot_ids(pd.concat([rows[["topic", "partition", "offset"]], held[["topic", "partition", "offset"]]]))
    held_slots = pd.Index(slots[len(rows):])
    if held_slots.is_unique:  # one record per slot, as the read-back reads each offset once: a lookup
        at = held_slots.get_indexer(slots[:len(rows)])
        codes = held["code"].to_numpy()
        return (at >= 0) & (codes[at] == rows["code"].to_numpy()) if len(codes) else np.zeros(len(rows), bool)
    keys = ["topic", "partition", "offset", "code"]
    matched = rows.merge(held.drop_duplicates().assign(held=True), on=keys, how="left")["held"].fillna(False)
    return matched.to_numpy(dtype=bool)


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

    candidate = has_prev.to_numpy() & (offset > prev + 1)
    skip = np.zeros(len(ordered), dtype=bool)
    if candidate.any():  # offsets known to exist: only needed where a consumer stepped over some
        known = pd.concat([acked[["topic", "partition", "offset"]], reads[["topic", "partition", "offset"]]])
        known = known[known["offset"] >= 0].drop_duplicates()
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
    ordered = acked[acked["offset"] >= 0]
    ordered = ordered[_reordered(ordered)].sort_values(["producer", "topic", "partition", "seq"])
    previous = ordered.groupby(["producer", "topic", "partition"])["offset"].shift(1)
    earlier = ordered.groupby(["producer", "topic", "partition"])["seq"].shift(1)
    out = ordered[previous.notna() & (ordered["offset"] < previous)]
    return out.assign(previous_offset=previous[out.index].astype("int64"),
                      previous_seq=earlier[out.index].astype("int64"))


def _reordered(sends: pd.DataFrame) -> np.ndarray:
    """Per send: its (producer, topic, partition) has a later send (by seq) at a lower offset.
    Integer codes and one stable sort, so that only those few groups are sorted as frames."""
    group = np.zeros(len(sends), dtype="int64")
    for column in ("producer", "topic", "partition"):
        codes = pd.factorize(sends[column])[0]
        group = pd.factorize(group * (int(codes.max(initial=0)) + 1) + codes)[0].astype("int64")
    order = np.lexsort((sends["seq"].to_numpy(), group))
    ranked, offset = group[order], sends["offset"].to_numpy()[order]
    lower = ranked[1:][(ranked[1:] == ranked[:-1]) & (offset[1:] < offset[:-1])]
    return _isin(group, lower)


def anomaly_count(name: str, rows: pd.DataFrame) -> int:
    """Duplicates count identities, inconsistent offsets count slots, other classes count rows."""
    if rows.empty:
        return 0
    if name == "duplicate":
        return rows[["producer", "seq"]].drop_duplicates().shape[0]
    if name == "inconsistent-offsets":
        return len(rows[["topic", "partition", "offset"]].drop_duplicates())
    return len(rows)


def evidence(name: str, rows: pd.DataFrame) -> str:
    """A few offending rows, written so a reader can find them in the history."""
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
    if name == "position-mismatch":
        return "; ".join(f"{r.ident} acked at p{r.partition}@{r.offset}, read-back found {r.found}"
                         for r in sample.itertuples())
    if name == "foreign-record":
        return "; ".join(f"p{r.partition}@{r.offset} carries run {r.record_run} ({r.process})"
                         for r in sample.itertuples())
    if name == "ack-without-offset":  # the client's own word on why, where it gave one (the Java client's)
        return "; ".join(f"{r.ident} p{r.partition}@{r.offset} ({r.process})" + _offset_unknown(r.detail)
                         for r in sample.itertuples())
    return "; ".join(f"{r.ident} p{r.partition}@{r.offset} ({r.process})" for r in sample.itertuples())


def _offset_unknown(detail: str) -> str:
    """": <why>" for a send whose client said it completed without an offset (its detail's offset_unknown)."""
    try:
        parsed = json.loads(detail) if detail else None
    except ValueError:
        return ""
    why = parsed.get("offset_unknown") if isinstance(parsed, dict) else None
    return f": {why}" if why else ""


def _top_errors(rows: pd.DataFrame, n: int = 3) -> str:
    errors = rows.loc[rows["error"] != "", "error"]
    return "; ".join(f"{count}× {error}" for error, count in errors.value_counts().head(n).items())


# the error text of the retry rows written from librdkafka's statistics before 56ba339: txretries never
# counts a Produce requeue and the row was stamped on every partition its broker led, so it ties no record
STATISTICS_RETRY = "(statistics txretries)"


# librdkafka's line for a failed batch names its size (the DebugLog row keeps it as `messages` in `detail`)
BATCH_SIZE = re.compile(r"MessageSet with (\d+) message\(s\)")


def batch_size(detail: str, error: str) -> float:
    """How many records a retry row's failed batch held: `messages` in its JSON `detail`, else the size its
    librdkafka line names (the Java client's rows carry the most its batch.size can hold: javaclient.batch_bound).
    inf (unbounded) only for a row whose client names no size (kafka-python, franz-go: no `messages`, no
    librdkafka line); a row that should name one and names none readable (another
    encoder's detail, a truncated line) is 0 and ties nothing: an unknown size is no licence for any."""
    try:
        parsed = json.loads(detail) if detail else None
    except ValueError:
        parsed = None
    named = parsed.get("messages") if isinstance(parsed, dict) else None
    if isinstance(named, int) and not isinstance(named, bool) and named >= 0:
        return float(named)
    in_line = BATCH_SIZE.search(error)
    if in_line:
        return float(in_line[1])
    sized = error.startswith("librdkafka") or '"messages"' in detail or "MessageSet" in error
    return 0.0 if sized else np.inf


def _retry_points(view: View) -> pd.DataFrame:
    """The retry rows that may tie a record: producer, topic, partition, `retry_ns` and `capacity`, how
    many records the failed batch held (batch_size). Rows derived from statistics (STATISTICS_RETRY) tie
    nothing."""
    frame = view.frame
    rows = frame[(frame["f"] == "retry") & ~frame["error"].str.endswith(STATISTICS_RETRY)]
    size = [batch_size(str(d), str(e)) for d, e in zip(rows["detail"], rows["error"], strict=True)]
    return pd.DataFrame({"producer": rows["producer"], "topic": rows["topic"], "partition": rows["partition"],
                         "retry_ns": rows["complete_ns"], "capacity": pd.Series(size, index=rows.index, dtype=float)})


def allot_retries(view: View, needs: pd.DataFrame, sized: bool = True) -> pd.DataFrame:
    """The needs the recorded retries meet, with the earliest retry given to each as `retry_ns`.

    needs: producer, seq, topic, partition (the partition the retry must name), invoke_ns, complete_ns
    and `resends`, how many resends of that record it takes (a copy more per resend). A retry row is
    tied to a record of its producer and partition that was outstanding when the row was written
    (between the send's invocation and completion: librdkafka serves the line before the delivery
    report of every record of its batch). No row names the records of its batch (librdkafka logs MsgId
    0 for every batch of a producer without idempotence: rd_kafka_msgbatch_set_first_msg sets it only
    with a producer id), but librdkafka's names its size: a failed batch of N records resends at most N
    of them, each once. So retries are given out, in the order they came, each to at most `capacity`
    outstanding records and once to a record, the records whose acknowledgement came first served first
    (earliest deadline first: exact when each record needs one resend, the usual case). sized=False
    ignores the sizes (what a retry could tie at all, said beside a FAIL)."""
    keys, where = ["producer", "seq", "topic", "partition"], ["producer", "topic", "partition"]
    points = _retry_points(view)
    met: list[tuple] = []
    if not (points.empty or needs.empty):
        by_place = dict(list(points.groupby(where, sort=False)))
        for place, want in needs.groupby(where, sort=False):
            if place in by_place:
                given = _allot(want, by_place[place], sized)
                met.extend((*place[:1], seq, *place[1:], at) for seq, at in given.items())
    return pd.DataFrame(met, columns=[*keys, "retry_ns"]).astype({"seq": "int64", "partition": "int64",
                                                                  "retry_ns": "int64"})


def _allot(want: pd.DataFrame, points: pd.DataFrame, sized: bool) -> dict[int, int]:
    """One place's allotment (see allot_retries): seq -> the first retry given, for the records given all
    the resends they need."""
    order = want.sort_values("invoke_ns")
    records = list(zip(order["invoke_ns"], order["complete_ns"], order["seq"], order["resends"], strict=True))
    left = {int(seq): int(resends) for _, _, seq, resends in records}
    first: dict[int, int] = {}
    outstanding: list[tuple[int, int]] = []
    taken_in = 0
    for at, capacity in sorted(zip(points["retry_ns"].astype("int64"), points["capacity"], strict=True)):
        while taken_in < len(records) and records[taken_in][0] <= at:
            heapq.heappush(outstanding, (int(records[taken_in][1]), int(records[taken_in][2])))
            taken_in += 1
        given: list[tuple[int, int]] = []
        while outstanding and (not sized or len(given) < capacity):
            complete, seq = heapq.heappop(outstanding)
            if complete >= at:  # acknowledged before this retry: no later retry is its either
                given.append((complete, seq))
        for complete, seq in given:
            left[seq] -= 1
            first.setdefault(seq, int(at))
            if left[seq]:
                heapq.heappush(outstanding, (complete, seq))
    return {seq: at for seq, at in first.items() if not left[seq]}


KEYS = ["producer", "seq", "topic", "partition"]


def duplicate_needs(view: View, duplicates: pd.DataFrame) -> pd.DataFrame:
    """The resends the duplicates need (allot_retries' needs): every copy sits on one partition, the one
    the send went to (where its row names it), one resend per copy beyond the first. A resend of a
    request that had in fact been written lands a second copy on the partition it was sent to, never on
    another one; a copy with no retry of its own is the system's, whatever the producer's settings."""
    who = ["producer", "seq"]
    slots = duplicates[KEYS].drop_duplicates()
    sends = view.sends[[*KEYS, "invoke_ns", "complete_ns"]].drop_duplicates(who)
    sent_to = sends.loc[sends["partition"] >= 0, KEYS].merge(slots[who].drop_duplicates(), on=who)
    places = pd.concat([slots, sent_to]).drop_duplicates()
    one_place = places[places.groupby(who)["partition"].transform("size") == 1]
    copies = duplicates.groupby(who).size().rename("copies").reset_index()
    timed = one_place.merge(sends[[*who, "invoke_ns", "complete_ns"]], on=who).merge(copies, on=who)
    return timed.assign(resends=timed["copies"] - 1).drop(columns="copies")


def reordering_needs(view: View, reordered: pd.DataFrame) -> pd.DataFrame:
    """The resends the reorderings need: one of each earlier send (previous_seq, the one that landed higher)."""
    earlier = reordered[["producer", "previous_seq", "topic", "partition"]].rename(columns={"previous_seq": "seq"})
    sends = view.sends[[*KEYS, "invoke_ns", "complete_ns"]].drop_duplicates(KEYS)
    return sends.merge(earlier.drop_duplicates(), on=KEYS).assign(resends=1)


def joint_met(view: View, needs: list[pd.DataFrame], sized: bool = True) -> pd.DataFrame:
    """allot_retries over the needs of every class judged against retries at once: one failed batch of N
    records resent N records, whichever anomaly each resend explains. A record both classes need resent
    (its copy is a duplicate, and it landed above the next send) needs as many resends as the larger of
    the two, not their sum: one resend does both."""
    joint = pd.concat([n[needs[0].columns] for n in needs])
    joint = joint.groupby(KEYS, as_index=False, sort=False).agg(invoke_ns=("invoke_ns", "first"),
                                                                complete_ns=("complete_ns", "first"),
                                                                resends=("resends", "max"))
    return allot_retries(view, joint, sized)


def retry_explained(duplicates: pd.DataFrame, met: pd.DataFrame | None) -> pd.DataFrame:
    """The duplicate rows of identities the allotment (joint_met) explains, with the first retry's time as
    `retry_ns`."""
    if duplicates.empty or met is None:
        return duplicates.assign(retry_ns=pd.Series(dtype="int64"))
    return duplicates.merge(met, on=KEYS)


def _statistics_note(view: View) -> str:
    """Why old statistics-derived retry rows, where a history has them, explained nothing."""
    frame = view.frame
    count = int(((frame["f"] == "retry") & frame["error"].str.endswith(STATISTICS_RETRY)).sum())
    if not count:
        return ""
    return (f"{count} retry rows derived from librdkafka's statistics {STATISTICS_RETRY} are no evidence: "
            "txretries never counts a Produce requeue and such a row was stamped on every partition its broker led")


def _duplicate_verdict(view: View, rows: pd.DataFrame, met: pd.DataFrame | None) -> dict:
    """Duplicates that a recorded retry explains are ALLOWED; any other duplicate fails. met: the joint
    allotment of the retries (joint_met), which the reorderings share."""
    explained = retry_explained(rows, met)
    unexplained = rows[~rows.set_index(["producer", "seq"]).index.isin(explained.set_index(["producer", "seq"]).index)]
    count = anomaly_count("duplicate", unexplained)
    why = (f"{anomaly_count('duplicate', explained)} explained by their producer's own retry on that partition "
           "(a resend of a request already written): " + evidence("duplicate", explained)) if len(explained) else ""
    if count:
        return verdict("duplicate", REQUIREMENT["duplicate"], count, Equals(0),
                       "; ".join(filter(None, [evidence("duplicate", unexplained), why,
                                               _spent_note(view, unexplained, duplicate_needs, retry_explained),
                                               _statistics_note(view)])))
    return allowed_verdict("duplicate", REQUIREMENT["duplicate"], anomaly_count("duplicate", explained), why)


def resent_earlier(reordered: pd.DataFrame, met: pd.DataFrame | None) -> pd.DataFrame:
    """The reordered rows whose earlier send (previous_seq, the one that landed higher) was given a retry
    of its own while outstanding in the allotment (joint_met), with that retry's time as `retry_ns`."""
    if reordered.empty or met is None:
        return reordered.assign(retry_ns=pd.Series(dtype="int64"))
    return reordered.merge(met.rename(columns={"seq": "previous_seq"}), on=["producer", "previous_seq", "topic",
                                                                            "partition"])


def _spent_note(view: View, unexplained: pd.DataFrame, needs_of, explained_by) -> str:
    """How many of the unexplained had retries of their partition while outstanding, every one given to
    other records (a failed batch of N records resends at most N): what sizes, not windows, refused."""
    spent = explained_by(unexplained, joint_met(view, [needs_of(view, unexplained)], sized=False))
    count = len(spent[["producer", "seq"]].drop_duplicates())
    return (f"{count} of them had retries of their partition while outstanding, all given to other records "
            "(a failed batch of N records resends at most N, each once)") if count else ""


def _reordering_verdict(view: View, rows: pd.DataFrame, met: pd.DataFrame | None) -> dict:
    """Reorderings whose earlier send was resent are ALLOWED; any other fails. met: the joint allotment of
    the retries (joint_met), which the duplicates share."""
    name = "nonmonotonic-send"
    explained = resent_earlier(rows, met)
    keys = ["producer", "seq", "topic", "partition"]
    unexplained = rows[~rows.set_index(keys).index.isin(explained.set_index(keys).index)]
    why = (f"{len(explained)} explained by a retry of the earlier send that landed higher: "
           + "; ".join(f"{r.ident} below {r.producer}#{r.previous_seq} (retried)"
                       for r in explained.head(EVIDENCE_ROWS).itertuples())) if len(explained) else ""
    if len(unexplained):
        return verdict(name, REQUIREMENT[name], len(unexplained), Equals(0),
                       "; ".join(filter(None, [evidence(name, unexplained) + " (the earlier send has no retry of "
                                               "its own)", why,
                                               _spent_note(view, unexplained, reordering_needs, resent_earlier),
                                               _statistics_note(view)])))
    return allowed_verdict(name, REQUIREMENT[name], len(explained), why)


@register("anomalies")
def check_anomalies(view: View, allowed: list[str] | tuple[str, ...] = (), min_acked: int = 1,
                    max_unacked: int | None = None, retried_duplicates: bool = False,
                    retried_reordering: bool = False) -> list[dict]:
    """Acknowledged sends, unacknowledged sends (when limited) and one row per anomaly class. With
    no acknowledged send, a class nothing was found in is NOT TESTED: an empty history proves nothing."""
    rules = AnomalyRules(allowed=frozenset(allowed), min_acked=min_acked, max_unacked=max_unacked,
                         retried_duplicates=retried_duplicates, retried_reordering=retried_reordering)
    found, stats = find_anomalies(view)
    summary = f"{stats['sends']} sends: {stats['acked']} ok, {stats['failed']} fail, {stats['indeterminate']} info"
    if stats["acked"] < rules.min_acked:  # say why, from the operations themselves (not the client's logs)
        summary += "; " + _top_errors(view.frame[(view.frame["type"] != "ok") & (view.frame["f"] != "client-log")])
    rows = [verdict("acknowledged sends", "F2.1", stats["acked"], AtLeast(rules.min_acked), summary)]
    needs = _judged_needs(view, found, rules)
    met = joint_met(view, needs) if needs else None
    if rules.max_unacked is not None:
        unacked = stats["failed"] + stats["indeterminate"]
        rows.append(verdict("unacknowledged sends", "F2.1 / NFR1", unacked, AtMost(rules.max_unacked),
                            _top_errors(view.unacked)))
    for name in ANOMALIES:
        if name in READBACK_CLASSES and not stats["readback_ran"]:
            rows.append(not_tested(name, REQUIREMENT[name], "no final read-back in this history"))
            continue
        count = anomaly_count(name, found[name])
        if name == "ack-without-offset" and count and _owed_no_offset(view):
            rows.append(not_tested(name, REQUIREMENT[name], f"{count} of {stats['acked']} acknowledgements "
                                                            f"carried no offset, but {_owed_no_offset(view)}"))
        elif count == 0 and stats["acked"] == 0:  # an empty history finds nothing: that is no pass
            rows.append(not_tested(name, REQUIREMENT[name], "nothing was acknowledged, so a count of 0 proves "
                                                            "nothing"))
        elif name == "duplicate" and rules.retried_duplicates and name not in rules.allowed:
            rows.append(_duplicate_verdict(view, found[name], met))
        elif name == "nonmonotonic-send" and rules.retried_reordering and name not in rules.allowed:
            rows.append(_reordering_verdict(view, found[name], met))
        elif name in rules.allowed:
            rows.append(allowed_verdict(name, REQUIREMENT[name], count, evidence(name, found[name])))
        elif name == "ack-without-offset":
            rows.append(verdict(name, REQUIREMENT[name], count, Equals(0),
                                f"{count} of {stats['acked']} acknowledgements carried no offset (acks="
                                f"{_acks(view)}): " + evidence(name, found[name]) if count else ""))
        else:
            rows.append(verdict(name, REQUIREMENT[name], count, Equals(0), evidence(name, found[name])))
    return rows


def _judged_needs(view: View, found: dict[str, pd.DataFrame], rules: AnomalyRules) -> list[pd.DataFrame]:
    """The resends the duplicates and the reorderings judged against retries need, allotted together
    (joint_met), so a failed batch of N records excuses N resends in all, not N of each (audit22 M1)."""
    judged = (("duplicate", rules.retried_duplicates, duplicate_needs),
              ("nonmonotonic-send", rules.retried_reordering, reordering_needs))
    return [needs_of(view, found[name]) for name, by_retry, needs_of in judged
            if by_retry and name not in rules.allowed and not found[name].empty]


def _acks(view: View) -> str | None:
    """The acks the history's producers ran with (its metadata's config.acks), None when it does not say."""
    acks = (view.meta.get("config") or {}).get("acks")
    return None if acks is None else str(acks)


def _owed_no_offset(view: View) -> str:
    """Why an acknowledgement without an offset breaks no promise here ("" when it does): acks=0 asks for no
    answer, and a history that does not say its acks cannot tell."""
    acks = _acks(view)
    if acks is None:
        return "the history does not record its producers' acks (config.acks), so whether one was owed is unknown"
    return "the producers ran with acks=0, which owes no offset" if acks == "0" else ""
