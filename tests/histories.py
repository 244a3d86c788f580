"""Synthetic histories for checker tests: clean ones, and plantings of exactly one anomaly class.

A clean history is what a correct Kafka produces: every send acknowledged at the next offset of
its partition, consumers reading their partitions in offset order, a final read-back of
everything. Each planter returns (history rows, planted identities) so a test can demand that
the checker finds exactly those.
"""

from __future__ import annotations

import copy
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
    for reader in readers:
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
                                 "value_len": 10, "session": 1})
                op += 1
                position += len(batch)
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


def plant_readback_missing(rows, k, rng):
    """The final read-back misses the last record of k partitions that live consumers did see."""
    top = _max_offsets(rows)
    last = [s for s in _sends(rows) if s["offset"] == top[s["partition"]]]
    chosen = {_ident(s) for s in rng.sample(last, k)}
    return [r for r in rows if not (r["process"] == "readback" and r["f"] == "poll" and _ident(r) in chosen)], chosen
