"""History shards: the rows each process of one workload recorded, merged into one history.

A workload whose producers run in worker processes (WorkloadConfig.workers, workload/workers.py)
records one shard per process: shard 0 is the workload's own process (consumers, read-back,
nemesis, phases), shard k >= 1 worker process k. Every shard is a history in the usual format. The
checkers judge the merged history and do not know it had shards, so merging keeps what they rely
on: one run; record identities unique (a producer's sends, retries and blocked offers come from one
shard only, else two writers shared an id and a read could not name its send); operation ids unique
(the records of one poll keep sharing theirs); rows in completion order on one time line. Every
process on one machine reads the same CLOCK_MONOTONIC, so no shard's times are shifted
(docs/history-format.md, "History shards").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from k6suite_lib import history
from k6suite_lib.history import COLUMNS, in_order, validate

WRITES = ("send", "blocked", "retry")  # rows whose producer column names the writer that recorded them


class ShardError(ValueError):
    """Shards that cannot make one history: several runs, a repeated worker id, a writer in two shards."""


def read(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A shard and its metadata. A JSON-lines shard (the franz-go worker's: a row per send, hundreds of
    thousands a run) is parsed column by column by Arrow, with the history's columns as its schema, so
    reading it costs no Python per row; a Parquet shard is read as any history. A JSON-lines shard whose
    writer died mid-write ends in a cut line: it is dropped and its length kept in the metadata
    (``cut_line_bytes``), so the rows before it still count and the cut is not hidden."""
    if path.suffix != ".jsonl":
        return history.load(path)
    import pyarrow as pa
    import pyarrow.json as pj

    text = path.read_bytes()
    complete, _, tail = text.rpartition(b"\n")
    cut = tail.strip() != b"" and not _is_json(tail)
    if cut:
        text = complete + b"\n"
    head, _, body = text.partition(b"\n")
    meta = json.loads(head).get("k6suite") if head.strip() else None
    if meta is None:  # no metadata line: the first line is a row
        meta, body = {}, head + b"\n" + body
    if cut:
        meta["cut_line_bytes"] = len(tail)
    arrow = {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_()}
    schema = pa.schema([(column, arrow[dtype]) for column, (dtype, _) in COLUMNS.items()])
    if not body.strip():
        return validate(pd.DataFrame(columns=list(COLUMNS))), meta
    table = pj.read_json(pa.BufferReader(body), parse_options=pj.ParseOptions(explicit_schema=schema))
    return validate(table.to_pandas()), meta


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def merge(shards: list[tuple[pd.DataFrame, int]]) -> pd.DataFrame:
    """One history from (frame, worker id) shards: each row's ``worker`` is its shard's id, operation
    ids are offset per shard so they stay unique, and rows are ordered by completion time."""
    workers = [worker for _, worker in shards]
    if not workers:
        raise ShardError("no shards to merge")
    if len(set(workers)) != len(workers):
        raise ShardError(f"worker ids repeat among the shards: {sorted(workers)}")
    writers: dict[str, int] = {}
    runs: set[str] = set()
    parts, base = [], 0
    for frame, worker in sorted(shards, key=lambda shard: shard[1]):
        frame = validate(frame)
        runs.update(frame["run_id"].unique())
        writes = frame["f"].isin(WRITES) & (frame["producer"] != "")
        for producer in frame.loc[writes, "producer"].unique():
            if writers.setdefault(producer, worker) != worker:
                raise ShardError(f"record identities collide: writer {producer} recorded in shard "
                                 f"{writers[producer]} and in shard {worker}")
        ops = frame["op_id"]
        frame["op_id"] = ops.where(ops < 0, ops + base)  # -1: rows outside any operation (probes)
        base += int(ops.max()) + 1 if (ops >= 0).any() else 0
        frame["worker"] = worker
        parts.append(frame)
    if len(runs) > 1:
        raise ShardError(f"shards of several runs: {', '.join(sorted(runs))}")
    return in_order(pd.concat(parts, ignore_index=True))
