"""Synthetic histories for checker tests: clean ones, and plantings of exactly one anomaly class.

A clean history is what a correct Kafka produces: every send acknowledged at the next offset of
its partition, consumers reading their partitions in offset order, the end offsets recorded, and
a final read-back of everything up to them. Each planter returns (history rows, planted
identities) so a test can demand that the checker finds exactly those.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass

import pandas as pd

from k6suite_lib.history import to_frame

RUN = "test-run"
TOPIC = "t"


@dataclass
class Spec:
    producers: int
    partitions: int
    records: int
    consumers: int


def clean_rows(spec: Spec, rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    clock = [0]

    def tick() -> int:
        clock[0] += 1000
        return clock[0]

    next_offset = [0] * spec.partitions
    op = 0
    for i in range(spec.records):
        producer = f"producer-{i % spec.producers}"
        seq = i // spec.producers
        partition = rng.randrange(spec.partitions)
        invoke = tick()
        rows.append({"run_id": RUN, "op_id": op, "process": producer, "f": "send", "type": "ok",
                     "invoke_ns": invoke, "complete_ns": tick(), "wall_ns": invoke, "topic": TOPIC,
                     "partition": partition, "offset": next_offset[partition], "producer": producer,
                     "seq": seq, "checksum": 0, "value_len": 10})
        next_offset[partition] += 1
        op += 1
    by_partition = {p: sorted((r for r in rows if r["partition"] == p), key=lambda r: r["offset"])
                    for p in range(spec.partitions)}
    readers = [f"consumer-{c}" for c in range(spec.consumers)] + ["readback"]
    ends = {str(p): next_offset[p] for p in range(spec.partitions)}
    for reader in readers:
        if reader == "readback":
            t = tick()
            rows.append({"run_id": RUN, "op_id": op, "process": "readback", "f": "end-offsets", "type": "ok",
                         "invoke_ns": t, "complete_ns": t, "wall_ns": t, "topic": TOPIC,
                         "detail": json.dumps({"end_offsets": ends})})
            op += 1
        for partition, sends in by_partition.items():
            position = 0
            while position < len(sends):
                batch = sends[position:position + rng.randint(1, 5)]
                invoke = tick()
                complete = tick()
                for send in batch:
                    rows.append({"run_id": RUN, "op_id": op, "process": reader, "f": "poll", "type": "ok",
                                 "invoke_ns": invoke, "complete_ns": complete, "wall_ns": invoke,
                                 "topic": TOPIC, "partition": partition, "offset": send["offset"],
                                 "producer": send["producer"], "seq": send["seq"], "checksum": 0,
                                 "record_run": RUN, "value_len": 10, "session": 1})
                op += 1
                position += len(batch)
    t = tick()
    rows.append({"run_id": RUN, "op_id": op, "process": "workload", "f": "phase", "type": "ok", "invoke_ns": t,
                 "complete_ns": t, "wall_ns": t, "topic": TOPIC,
                 "detail": json.dumps({"phase": "readback-end", "positions": ends, "timed_out": False})})
    return rows


def frame(rows: list[dict]) -> pd.DataFrame:
    return to_frame(copy.deepcopy(rows))


def _ident(row: dict) -> str:
    return f"{row['producer']}#{row['seq']}"


def _sends(rows):
    return [r for r in rows if r["f"] == "send" and r["type"] == "ok"]


def _reads(rows, ident=None, process=None):
    return [r for r in rows if r["f"] == "poll" and (ident is None or _ident(r) == ident)
            and (process is None or r["process"] == process)]


def _max_offsets(rows) -> dict[int, int]:
    top: dict[int, int] = {}
    for send in _sends(rows):
        top[send["partition"]] = max(top.get(send["partition"], -1), send["offset"])
    return top


def _fresh_op(rows) -> int:
    return max(r["op_id"] for r in rows) + 1


def _late(rows) -> int:
    return max(r["complete_ns"] for r in rows) + 1000


def plant_lost_write(rows, k, rng):
    """Remove every read of k acked records that are not the last of their partition."""
    top = _max_offsets(rows)
    candidates = [s for s in _sends(rows) if s["offset"] < top[s["partition"]]]
    chosen = {_ident(s) for s in rng.sample(candidates, k)}
    return [r for r in rows if not (r["f"] == "poll" and _ident(r) in chosen)], chosen


def plant_unseen(rows, k, rng):
    """Remove every read of the last record of k partitions: nothing higher was ever read."""
    top = _max_offsets(rows)
    last = [s for s in _sends(rows) if s["offset"] == top[s["partition"]]]
    chosen = {_ident(s) for s in rng.sample(last, k)}
    return [r for r in rows if not (r["f"] == "poll" and _ident(r) in chosen)], chosen


def plant_duplicate(rows, k, rng):
    """consumer-0 reads k records again at fresh offsets past the end of their partition."""
    rows = list(rows)
    top = _max_offsets(rows)
    chosen = set()
    for send in rng.sample(_sends(rows), k):
        partition = send["partition"]
        top[partition] += 1
        rows.append({**send, "process": "consumer-0", "f": "poll", "op_id": _fresh_op(rows), "offset": top[partition],
                     "invoke_ns": _late(rows), "complete_ns": _late(rows), "session": 1})
        chosen.add(_ident(send))
    return rows, chosen


def plant_inconsistent(rows, k, rng):
    """k live reads return, at an acked slot, a record whose send was indeterminate."""
    rows = list(rows)
    by_slot = {(r["partition"], r["offset"]): r for r in _reads(rows) if r["process"] != "readback"}
    chosen = set()
    for n, slot in enumerate(rng.sample(sorted(by_slot), k)):
        read = by_slot[slot]
        ghost = {"producer": "ghost", "seq": n}
        rows.append({**read, **ghost, "f": "send", "type": "info", "process": "ghost", "op_id": _fresh_op(rows),
                     "partition": -1, "offset": -1, "session": 0})
        read.update(ghost)
        chosen.add((read["partition"], read["offset"]))
    return rows, chosen


def plant_aborted_read(rows, k, rng):
    """k records whose send failed are read anyway, at fresh offsets."""
    rows = list(rows)
    top = _max_offsets(rows)
    reader = "consumer-0"
    chosen = set()
    for n in range(k):
        partition = rng.choice(sorted(top))
        top[partition] += 1
        failed = {"run_id": RUN, "producer": "doomed", "seq": n, "topic": TOPIC, "checksum": 0, "value_len": 10}
        rows.append({**failed, "process": "doomed", "f": "send", "type": "fail", "op_id": _fresh_op(rows),
                     "invoke_ns": 1, "complete_ns": 2, "wall_ns": 1, "partition": partition, "offset": -1})
        rows.append({**failed, "process": reader, "f": "poll", "type": "ok", "op_id": _fresh_op(rows),
                     "invoke_ns": _late(rows), "complete_ns": _late(rows), "wall_ns": 1, "partition": partition,
                     "offset": top[partition], "session": 1})
        chosen.add(f"doomed#{n}")
    return rows, chosen


def plant_poll_skip(rows, k, rng):
    """k live reads vanish from the middle of their consumer's stream (others still read them)."""
    live = [r for r in _reads(rows) if r["process"] != "readback"]
    streams: dict[tuple, list] = {}
    for read in live:
        streams.setdefault((read["process"], read["partition"]), []).append(read)
    middle = [r for s in streams.values() for r in sorted(s, key=lambda r: r["offset"])[1:-1]]
    # never drop two neighbours in one stream: each drop must be its own jump
    rng.shuffle(middle)
    chosen, taken = [], set()
    for read in middle:
        key = (read["process"], read["partition"])
        if {(key, read["offset"] - 1), (key, read["offset"] + 1), (key, read["offset"])} & taken:
            continue
        chosen.append(read)
        taken.add((key, read["offset"]))
        if len(chosen) == k:
            break
    drop = {id(r) for r in chosen}
    return [r for r in rows if id(r) not in drop], {(r["process"], r["partition"], r["offset"]) for r in chosen}


def plant_nonmonotonic_poll(rows, k, rng):
    """k consumer streams read their last record once more."""
    rows = list(rows)
    streams: dict[tuple, dict] = {}
    for read in _reads(rows):
        if read["process"] != "readback":
            key = (read["process"], read["partition"])
            if key not in streams or read["offset"] > streams[key]["offset"]:
                streams[key] = read
    chosen = set()
    for key in rng.sample(sorted(streams), k):
        last = streams[key]
        rows.append({**last, "op_id": _fresh_op(rows), "invoke_ns": _late(rows), "complete_ns": _late(rows)})
        chosen.add(key)
    return rows, chosen


def plant_nonmonotonic_send(rows, k, rng):
    """Swap the identities of k disjoint pairs of a producer's neighbouring sends in one partition."""
    lanes: dict[tuple, list] = {}
    for send in _sends(rows):
        lanes.setdefault((send["producer"], send["partition"]), []).append(send)
    pairs = []
    for lane in lanes.values():
        lane.sort(key=lambda s: s["seq"])
        pairs.extend((lane[i], lane[i + 1]) for i in range(0, len(lane) - 1, 2))
    chosen_pairs = rng.sample(pairs, min(k, len(pairs)))  # small histories may offer fewer pairs than k
    swap = {}
    for a, b in chosen_pairs:
        swap[_ident(a)], swap[_ident(b)] = b["seq"], a["seq"]
    out = []
    for row in rows:
        if row["f"] in ("send", "poll") and _ident(row) in swap:
            row = {**row, "seq": swap[_ident(row)]}
        out.append(row)
    # the flagged send is the later one, which now sits at the earlier one's offset
    return out, {(a["producer"], a["partition"], a["offset"]) for a, _ in chosen_pairs}


def plant_corrupted(rows, k, rng):
    """k live reads return a payload that fails its checksum."""
    live = [r for r in _reads(rows) if r["process"] != "readback"]
    chosen = rng.sample(live, k)
    ids = {id(r) for r in chosen}
    return [{**r, "corrupt": True} if id(r) in ids else r for r in rows], {
        (r["process"], r["partition"], r["offset"]) for r in chosen}


def plant_position_mismatch(rows, k, rng):
    """Jepsen's case that identity checks miss: k acknowledged positions lose their record, while a
    copy of it (a retry, say) sits at a fresh offset at the end of the partition, read by everyone."""
    rows = list(rows)
    top = _max_offsets(rows)
    by_partition: dict[int, list] = {}
    for send in _sends(rows):
        by_partition.setdefault(send["partition"], []).append(send)
    victims = [rng.choice(sends) for sends in rng.sample(list(by_partition.values()), min(k, len(by_partition)))]
    gone = {(v["partition"], v["offset"]) for v in victims}
    out = [r for r in rows if not (r["f"] == "poll" and (r["partition"], r["offset"]) in gone)]
    for victim in victims:
        partition = victim["partition"]
        top[partition] += 1
        for reader in {r["process"] for r in _reads(rows)}:
            out.append({**victim, "process": reader, "f": "poll", "op_id": _fresh_op(out), "offset": top[partition],
                        "invoke_ns": _late(out), "complete_ns": _late(out), "session": 1, "record_run": RUN})
    for row in out:  # the end moved past the copies; the read-back read to it
        if row["f"] in ("end-offsets", "phase"):
            detail = json.loads(row["detail"])
            key = "end_offsets" if row["f"] == "end-offsets" else "positions"
            if key in detail:
                detail[key] = {str(p): o + 1 for p, o in top.items()}
                row["detail"] = json.dumps(detail)
    return out, {(v["partition"], v["offset"]) for v in victims}


def plant_foreign_record(rows, k, rng):
    """A live consumer reads k records of another run at fresh offsets past the end of their partition."""
    rows = list(rows)
    top = _max_offsets(rows)
    chosen = set()
    for n in range(k):
        partition = rng.choice(sorted(top))
        top[partition] += 1
        rows.append({"run_id": RUN, "op_id": _fresh_op(rows), "process": "consumer-0", "f": "poll", "type": "ok",
                     "invoke_ns": _late(rows), "complete_ns": _late(rows), "wall_ns": 1, "topic": TOPIC,
                     "partition": partition, "offset": top[partition], "producer": "producer-0", "seq": 10_000 + n,
                     "checksum": 0, "record_run": "an-earlier-run", "value_len": 10, "session": 1})
        chosen.add((partition, top[partition]))
    return rows, chosen


def plant_readback_missing(rows, k, rng):
    """The final read-back misses the last record of k partitions that live consumers did see."""
    top = _max_offsets(rows)
    last = [s for s in _sends(rows) if s["offset"] == top[s["partition"]]]
    chosen = {_ident(s) for s in rng.sample(last, k)}
    return [r for r in rows if not (r["process"] == "readback" and r["f"] == "poll" and _ident(r) in chosen)], chosen


def plant_ack_without_offset(rows, k, rng):
    """k acknowledgements carry offset -1 (a broker that answered no offset under acks=all); the records are
    where they are, and readers find them there."""
    chosen = {_ident(s) for s in rng.sample(_sends(rows), k)}
    return [{**r, "offset": -1} if r["f"] == "send" and r["type"] == "ok" and _ident(r) in chosen else r
            for r in rows], chosen


# ----------------------------------------------------------------------------- timelines for fault checks
S = 1_000_000_000  # one second in ns


class Timeline:
    """A hand-built history on a clock in seconds: sends, polls, faults, group events, samples."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.offsets: dict[int, int] = {}

    def _row(self, t: float, **row) -> dict:
        base = {"run_id": RUN, "op_id": len(self.rows), "invoke_ns": int(t * S), "complete_ns": int(t * S) + 1000,
                "wall_ns": int(t * S), "topic": TOPIC}
        self.rows.append({**base, **row})
        return self.rows[-1]

    def sends(self, start: float, end: float, rate: float, partitions: int = 1, outcome: str = "ok",
              latency: float = 0.001, producer: str = "producer-0") -> None:
        """Open-loop sends every 1/rate s in [start, end), round-robin over partitions."""
        n = round((end - start) * rate)
        for i in range(n):
            t = start + i / rate
            partition = i % partitions
            row = self._row(t, process=producer, f="send", type=outcome, producer=producer,
                            seq=len([r for r in self.rows if r["f"] == "send"]), partition=partition,
                            intended_ns=int(t * S), complete_ns=int((t + latency) * S),
                            error="" if outcome == "ok" else "KafkaTimeoutError: expired")
            if outcome == "ok":
                row["offset"] = self.offsets.get(partition, 0)
                self.offsets[partition] = row["offset"] + 1

    def fault(self, start: float, end: float, name: str = "broker-kill", applied: bool = True,
              served: dict | None = None, role: str = "broker", evidence: dict | None = None) -> None:
        """served: what the target carried of the workload just before (recorded with the start). A fault on a
        store's path (role storage or metadata) records what went through its proxy: evidence, with its end
        (a toxic's `through`) or, for an outage, with its start (`cut`)."""
        for t, phase in ((start, "start"), (end, "end")):
            extra = {"served": served} if served is not None else {}
            if evidence is not None and (phase == "start") == name.endswith("outage"):
                extra[("cut" if name.endswith("outage") else "through")] = evidence
            self._row(t, process="nemesis", f="fault", type="ok" if applied or phase == "end" else "info",
                      error="" if applied or phase == "end" else "StackError: nothing to kill",
                      detail=json.dumps({"fault": name, "phase": phase, "role": role, "target": "broker-1",
                                         **extra}))

    def blocked(self, start: float, end: float, rate: float, producer: str = "producer-0") -> None:
        """Sends due every 1/rate s in [start, end) that a producer blocked on its outstanding limit
        could not make (the rows the producer records for them)."""
        for i in range(round((end - start) * rate)):
            t = start + i / rate
            self._row(t, process=producer, f="blocked", type="fail", producer=producer, intended_ns=int(t * S),
                      error="not sent: 1001 sends outstanding (max_outstanding)")

    def phase(self, t: float, name: str, **detail) -> None:
        self._row(t, process="workload", f="phase", type="ok", detail=json.dumps({"phase": name, **detail}))

    def poll(self, t: float, process: str = "consumer-0", outcome: str = "ok", send: dict | None = None) -> None:
        fields = {} if send is None else {"partition": send["partition"], "offset": send["offset"],
                                          "producer": send["producer"], "seq": send["seq"], "record_run": RUN}
        self._row(t, process=process, f="poll", type=outcome, session=1, **fields,
                  error="" if outcome == "ok" else "KafkaConnectionError")

    def read_everything(self, t: float, process: str = "consumer-0") -> None:
        for send in [r for r in self.rows if r["f"] == "send" and r["type"] == "ok"]:
            self.poll(t, process, send=send)

    def group(self, t: float, process: str, partitions: list[int], f: str = "assign") -> None:
        self._row(t, process=process, f=f, type="ok", detail=json.dumps({"partitions": partitions, "group": True}))

    def client_metrics(self, t: float, process: str, created: int, brokers: list[str], closed: int = 0,
                       lagging: list[str] | None = None) -> None:
        """A usable sample (lagging: a librdkafka row whose statistics showed those handles UP before its log did)."""
        extra = {} if lagging is None else {"lagging": lagging}
        self._row(t, process=process, f="client-metrics", type="ok",
                  detail=json.dumps({"connection-creation-total": created, "connection-close-total": closed,
                                     "brokers": brokers, **extra}))

    def quiet_clients(self, *processes: str, at: tuple[float, ...] = (5, 25)) -> None:
        """Samples of clients that kept one connection throughout (before and after steady()'s fault): a check
        that needs every client that ran sampled (reconnections) judges the one a test is about beside them."""
        for process in processes:
            for t in at:
                self.client_metrics(t, process, 1, ["0@h:1"])

    def failed_client_metrics(self, t: float, process: str, error: str, as_ok_row: bool = False) -> None:
        """A sample the sampler could not take: a fail row naming the error (as_ok_row: as histories
        recorded it before issue 16, an ok row whose detail holds only the error)."""
        if as_ok_row:
            self._row(t, process=process, f="client-metrics", type="ok", detail=json.dumps({"error": error}))
        else:
            self._row(t, process=process, f="client-metrics", type="fail", error=error, detail="")

    def frame(self) -> pd.DataFrame:
        return frame(self.rows)


def stored_records(rows: list[dict], per_partition: bool = False) -> pd.DataFrame:
    """What a faithful object store holds for a history: every acknowledged record, intact, at its
    position; in one object per record, or (per_partition) one segment per partition from offset 0."""
    from k6suite_lib.storage import COLUMNS

    sends = [r for r in rows if r["f"] == "send" and r["type"] == "ok"]
    records = pd.DataFrame([{"object_key": f"default/t/{s['partition']}/segment-"
                                           f"{0 if per_partition else s['offset']:020d}.kfs",
                             "topic": "t", "partition": s["partition"], "offset": s["offset"],
                             "producer": s["producer"], "seq": s["seq"], "checksum": 0, "corrupt": False,
                             "run_id": RUN, "batch_crc_ok": True, "segment_ok": True, "value_len": 10,
                             "last_modified": 0} for s in sends], columns=list(COLUMNS))
    return records.astype({c: dtype for c, (dtype, _) in COLUMNS.items()})
