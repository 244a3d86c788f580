"""The operation history: what every client tried, and what it learned, with times.

One row per completed operation, Jepsen style: an invocation time and a completion time, and a
completion ``type`` of ``ok`` (it happened), ``fail`` (it certainly did not happen) or ``info``
(unknown: a timeout, a lost connection). A poll that returns n records is n rows sharing one
``op_id``. Faults are rows too (``f`` = ``fault``), so a history alone is enough to re-check a
run and to shade fault windows on a plot. The format is documented in docs/history-format.md.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 lacks record_run; it reads as "" (unknown)
READBACK = "readback"  # the process name of the final read-back

# column -> (pandas dtype, meaning); the order here is the order on disk
COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("string", "id of the run that recorded the row"),
    "op_id": ("int64", "operation id; the records of one poll share it"),
    "process": ("string", "the client: producer-N, consumer-N, readback, nemesis, client-log, workload, probe"),
    "f": ("string", "send | blocked | retry | poll | assign | revoke | commit | connect | fault | client-metrics"
                    " | client-log | phase | end-offsets | probe | metric"),
    "type": ("string", "ok | fail | info (indeterminate)"),
    "invoke_ns": ("int64", "time.monotonic_ns() when the operation started"),
    "complete_ns": ("int64", "time.monotonic_ns() when its outcome was known"),
    "wall_ns": ("int64", "time.time_ns() when the operation started"),
    "topic": ("string", "topic, empty when not applicable"),
    "partition": ("int64", "partition, -1 when unknown"),
    "offset": ("int64", "offset acknowledged (send) or read (poll), -1 when unknown"),
    "key": ("string", "record key, empty when none"),
    "producer": ("string", "record identity: the producer that created the record"),
    "seq": ("int64", "record identity: the producer's sequence number, -1 when none"),
    "checksum": ("int64", "record identity: CRC32 of the payload body as written"),
    "corrupt": ("bool", "poll: payload unparseable or its checksum does not match its body"),
    "record_run": ("string", "poll: the run id the record's payload carries; empty when unparseable"),
    "value_len": ("int64", "payload length in bytes"),
    "intended_ns": ("int64", "open-loop sends: when the send was due (monotonic), -1 otherwise"),
    "session": ("int64", "consumer: assignment epoch; offsets are compared only within one"),
    "error": ("string", "error class and message for fail/info"),
    "detail": ("string", "JSON: assignment, generation, fault parameters, ..."),
    "worker": ("int64", "the process that recorded the row: 0 the workload's own, k >= 1 its worker process k"),
}
_DEFAULTS: dict[str, Any] = {
    "topic": "", "partition": -1, "offset": -1, "key": "", "producer": "", "seq": -1, "checksum": -1,
    "corrupt": False, "record_run": "", "value_len": 0, "intended_ns": -1, "session": 0, "error": "", "detail": "",
    "worker": 0,
}
PAYLOAD_MAGIC = b"k6s1"
_SEP = b"|"


class HistoryError(ValueError):
    """A history file is missing columns or has the wrong format version."""


def encode_payload(run_id: str, producer: str, seq: int, size: int) -> tuple[bytes, int]:
    """A record value carrying its identity: magic|run|producer|seq|crc32(body)|body."""
    head = _SEP.join([PAYLOAD_MAGIC, run_id.encode(), producer.encode(), str(seq).encode()])
    body_len = max(0, size - len(head) - 10)
    body = (f"{producer}:{seq}:".encode() * (body_len // 8 + 1))[:body_len]
    crc = zlib.crc32(body)
    return _SEP.join([head, f"{crc:08x}".encode(), body]), crc


def decode_payload(value: bytes | None) -> dict[str, Any]:
    """Identity of a read record; corrupt=True when it cannot be parsed or fails its checksum."""
    if value is None:
        return {"producer": "", "seq": -1, "checksum": -1, "corrupt": True, "run_id": ""}
    parts = value.split(_SEP, 5)
    try:
        magic, run_id, producer, seq, crc, body = parts
        crc_value = int(crc, 16)
        seq_value = int(seq)
    except ValueError:
        return {"producer": "", "seq": -1, "checksum": -1, "corrupt": True, "run_id": ""}
    return {
        "producer": producer.decode(errors="replace"),
        "seq": seq_value,
        "checksum": crc_value,
        "corrupt": magic != PAYLOAD_MAGIC or zlib.crc32(body) != crc_value,
        "run_id": run_id.decode(errors="replace"),
    }


class Recorder:
    """History under construction, shared by client threads; frame() builds the DataFrame.

    No lock on the hot path: list.append and next() on itertools.count are atomic in CPython, and a
    per-send lock measurably slowed producers (benchmarks/recording_overhead.py).
    """

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._rows: list[dict[str, Any]] = []
        self._ids = itertools.count()

    def next_op(self) -> int:
        return next(self._ids)

    def record(self, **row: Any) -> None:
        row.setdefault("run_id", self.run_id)
        self._rows.append(row)

    def record_many(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            row.setdefault("run_id", self.run_id)
        self._rows.extend(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def frame(self) -> pd.DataFrame:
        return to_frame(self.rows())


def now() -> tuple[int, int]:
    """(monotonic ns, wall ns) at one instant."""
    return time.monotonic_ns(), time.time_ns()


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill optional columns with their defaults and give every column its documented dtype."""
    for column, default in _DEFAULTS.items():
        if column not in frame.columns or frame[column].isna().all():
            frame[column] = default
        else:
            frame[column] = frame[column].fillna(default)
    return frame[list(COLUMNS)].astype({c: dtype for c, (dtype, _) in COLUMNS.items()})


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> a history frame with every documented column and dtype, ordered by completion."""
    return in_order(_normalise(pd.DataFrame(rows, columns=list(COLUMNS))))


def in_order(frame: pd.DataFrame) -> pd.DataFrame:
    """A history's rows ordered by completion (the order on disk and the checkers' reading order)."""
    return frame.sort_values(["complete_ns", "op_id"], kind="stable").reset_index(drop=True)


def validate(frame: pd.DataFrame) -> pd.DataFrame:
    required = [c for c in COLUMNS if c not in _DEFAULTS]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise HistoryError(f"history lacks columns: {', '.join(missing)} (see docs/history-format.md)")
    return _normalise(frame.copy())


def save(frame: pd.DataFrame, path: Path | str, meta: dict[str, Any] | None = None) -> Path:
    """Parquet (.parquet) or JSON lines (.jsonl); meta (the workload config) travels with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, **(meta or {})}
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               b"k6suite": json.dumps(meta, default=str).encode()})
        pq.write_table(table, path)
    elif path.suffix == ".jsonl":
        with open(path, "w") as handle:
            handle.write(json.dumps({"k6suite": meta}, default=str) + "\n")
            frame.to_json(handle, orient="records", lines=True)
    else:
        raise HistoryError(f"{path}: history files are .parquet or .jsonl")
    return path


def load_meta(path: Path | str) -> dict[str, Any]:
    """A saved history's metadata without its rows (a calibration reads hundreds of them)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return json.loads((pq.read_schema(path).metadata or {}).get(b"k6suite", b"{}"))
    with open(path) as handle:
        header = json.loads(handle.readline() or "{}")
    return header.get("k6suite", {}) if isinstance(header, dict) else {}


def load(path: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A saved history and its metadata; raises HistoryError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise HistoryError(f"{path}: no such history file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw_meta = (table.schema.metadata or {}).get(b"k6suite", b"{}")
        meta = json.loads(raw_meta)
        frame = table.to_pandas()
    elif path.suffix == ".jsonl":
        with open(path) as handle:
            first = handle.readline()
            header = json.loads(first) if first.strip() else {}
            meta = header.get("k6suite", {}) if isinstance(header, dict) else {}
            frame = pd.read_json(handle, orient="records", lines=True) if "k6suite" in header else None
        if frame is None:
            frame = pd.read_json(path, orient="records", lines=True)
    else:
        raise HistoryError(f"{path}: history files are .parquet or .jsonl")
    version = meta.get("format_version", FORMAT_VERSION)
    if version not in READABLE_VERSIONS:
        raise HistoryError(f"{path}: format version {version}, this k6suite reads versions "
                           f"{', '.join(map(str, READABLE_VERSIONS))}")
    if frame.empty and not len(frame.columns):
        frame = pd.DataFrame(columns=list(COLUMNS))
    return in_order(validate(frame)), meta  # another tool's rows need not be in completion order


def append(frame: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The history with more rows (probes and samples taken beside the workload), in completion order."""
    return to_frame([*frame.to_dict("records"), *rows]) if rows else frame


def probe_row(run_id: str, kind: str, invoke_ns: int, detail: dict[str, Any], error: str = "",
              topic: str = "") -> dict[str, Any]:
    """An observation a check needs that is not a client operation (e.g. committed offsets read
    after a group left, connections counted per broker after a scale-out): ok, or info with the error."""
    return {"run_id": run_id, "op_id": -1, "process": "probe", "f": "probe", "type": "info" if error else "ok",
            "invoke_ns": invoke_ns, "complete_ns": time.monotonic_ns(), "wall_ns": time.time_ns(), "topic": topic,
            "error": error, "detail": json.dumps({"kind": kind, **detail}, default=str)}


def wall_windows(view: View) -> list[tuple[int, int, str]]:
    """Fault windows on the wall clock (start, end, fault), to set beside wall-clock evidence such as
    the Last-Modified of stored objects; the offset between the clocks comes from the history's rows."""
    frame = view.frame
    if frame.empty or view.windows.empty:
        return []
    offset = int((frame["wall_ns"] - frame["invoke_ns"]).median())
    return [(int(w.start_ns) + offset, int(w.end_ns) + offset, w.fault) for w in view.windows.itertuples()]


def fault_windows(frame: pd.DataFrame) -> pd.DataFrame:
    """Pair fault start and end rows into windows: fault, target, start_ns, end_ns, parameters.

    A start without an end (the run stopped first) closes at the history's last completion.
    """
    faults = frame[frame["f"] == "fault"].sort_values("complete_ns")
    open_windows: dict[str, dict[str, Any]] = {}
    windows = []
    for row in faults.itertuples():
        detail = json.loads(row.detail) if row.detail else {}
        name = detail.get("fault", "fault")
        if detail.get("phase") == "start":
            open_windows[name] = {"fault": name, "target": str(detail.get("target", "")), "start_ns": row.invoke_ns,
                                  "applied": row.type == "ok", "parameters": json.dumps(detail)}
        elif detail.get("phase") == "end" and name in open_windows:
            windows.append({**open_windows.pop(name), "end_ns": row.complete_ns})
    last = int(frame["complete_ns"].max()) if len(frame) else 0
    windows.extend({**w, "end_ns": last} for w in open_windows.values())
    return pd.DataFrame(windows, columns=["fault", "target", "start_ns", "end_ns", "applied", "parameters"])


def _detail(value: str) -> dict[str, Any]:
    return json.loads(value) if value else {}


class View:
    """Named slices of one history, each computed once: what every checker, measure and plot reads,
    so the masks that say "an acknowledged send" or "a live read" exist in one place only.

    meta is the metadata saved with the history; sidecar_dir is where files saved beside it live
    (e.g. the storage listing a storage checker compares with).
    """

    def __init__(self, frame: pd.DataFrame, meta: dict[str, Any] | None = None, sidecar_dir: Path | None = None):
        self.frame = frame
        self.meta = meta or {}
        self.sidecar_dir = sidecar_dir
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """compute() once per view: analyses several checkers share (e.g. the anomaly search)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @functools.cached_property
    def coded(self) -> pd.DataFrame:
        """The history with an int64 identity code per row: integer set operations keep a 1M-row check fast."""
        producer_codes, _ = pd.factorize(self.frame["producer"])
        code = (producer_codes.astype("int64") << 32) | (self.frame["seq"].to_numpy(dtype="int64") & 0xFFFFFFFF)
        return self.frame.assign(code=code)

    @functools.cached_property
    def sends(self) -> pd.DataFrame:
        return self.coded[self.coded["f"] == "send"]

    @functools.cached_property
    def acked(self) -> pd.DataFrame:
        return self.sends[self.sends["type"] == "ok"]

    @functools.cached_property
    def unacked(self) -> pd.DataFrame:
        """Sends that ended fail or info: refused, or of unknown outcome."""
        return self.sends[self.sends["type"] != "ok"]

    @functools.cached_property
    def blocked(self) -> pd.DataFrame:
        """Open-loop sends that fell due while their producer waited on its outstanding limit: offered
        by the application, never made (the target had stopped acknowledging)."""
        return self.frame[self.frame["f"] == "blocked"]

    @functools.cached_property
    def producers_stopped_ns(self) -> int | None:
        """When producers stopped (the producers-stop phase), or, in a history without it, the last
        moment a producer was still producing: a send due, made, or outstanding; None without any."""
        stop = self.phase("producers-stop")
        if stop is not None:
            return stop["t_ns"]
        offered = pd.concat([self.sends["invoke_ns"], self.sends["complete_ns"], self.blocked["invoke_ns"]])
        return int(offered.max()) if len(offered) else None

    @functools.cached_property
    def reads(self) -> pd.DataFrame:
        """Every record a poll returned (live consumers and the read-back)."""
        return self.coded[(self.coded["f"] == "poll") & (self.coded["type"] == "ok")]

    @functools.cached_property
    def foreign(self) -> pd.Series:
        """Per read: the payload names another run than the one that recorded the history."""
        reads = self.reads
        return (reads["record_run"] != "") & (reads["record_run"] != reads["run_id"]) & ~reads["corrupt"]

    @functools.cached_property
    def altered(self) -> pd.Series:
        """Per read: it names a send of this history (producer, seq) but carries another body checksum,
        length or key than that send wrote. Identity alone would pass a record whose bytes changed
        as intact; a send that did not record a checksum (-1) or length (0) is not compared on it."""
        reads = self.reads
        sends = self.sends.drop_duplicates("code")
        if not len(sends):
            return pd.Series(False, index=reads.index)
        at = pd.Index(sends["code"].to_numpy()).get_indexer(reads["code"].to_numpy())
        known = (at >= 0) & ~reads["corrupt"].to_numpy(dtype=bool) & ~self.foreign.to_numpy(dtype=bool)
        take = np.where(at >= 0, at, 0)
        checksum, length = sends["checksum"].to_numpy()[take], sends["value_len"].to_numpy()[take]
        key = sends["key"].to_numpy(dtype=object)[take]
        differs = (((checksum >= 0) & (reads["checksum"].to_numpy() != checksum))
                   | ((length > 0) & (reads["value_len"].to_numpy() != length))
                   | (reads["key"].to_numpy(dtype=object) != key))
        return pd.Series(known & differs, index=reads.index)

    @functools.cached_property
    def valid_reads(self) -> pd.DataFrame:
        """Reads that can be matched to a send: parseable, intact, of this run, and carrying the body,
        length and key that send wrote."""
        return self.reads[~self.reads["corrupt"] & ~self.foreign & ~self.altered]

    @functools.cached_property
    def live_reads(self) -> pd.DataFrame:
        return self.reads[self.reads["process"] != READBACK]

    @functools.cached_property
    def readback_reads(self) -> pd.DataFrame:
        return self.reads[self.reads["process"] == READBACK]

    @functools.cached_property
    def failed_polls(self) -> pd.DataFrame:
        return self.frame[(self.frame["f"] == "poll") & (self.frame["type"] != "ok")]

    @functools.cached_property
    def windows(self) -> pd.DataFrame:
        return fault_windows(self.frame)

    @property
    def first_fault_ns(self) -> int | None:
        return int(self.windows["start_ns"].min()) if len(self.windows) else None

    def phase(self, name: str) -> dict[str, Any] | None:
        """The detail of the first phase row of that name (with its time as "t_ns"), or None."""
        phases = self.frame[self.frame["f"] == "phase"]
        for detail, t_ns in zip(phases["detail"], phases["complete_ns"], strict=True):
            parsed = _detail(detail)
            if parsed.get("phase") == name:
                return {**parsed, "t_ns": int(t_ns)}
        return None

    @functools.cached_property
    def readback_ran(self) -> bool:
        return bool((self.frame["process"] == READBACK).any())

    @functools.cached_property
    def end_offsets(self) -> dict[int, int] | None:
        """Per partition, the end offset the target reported after producers stopped (None: not recorded)."""
        rows = self.frame[(self.frame["f"] == "end-offsets") & (self.frame["type"] == "ok")]
        if rows.empty:
            return None
        return {int(p): int(o) for p, o in _detail(rows["detail"].iloc[-1]).get("end_offsets", {}).items()}

    @functools.cached_property
    def readback_positions(self) -> dict[int, int] | None:
        """Per partition, where the final read-back stopped (the next offset it would have read)."""
        end = self.phase("readback-end")
        if end is None:
            return None
        return {int(p): int(o) for p, o in end.get("positions", {}).items()}

    @functools.cached_property
    def readback_probes(self) -> list[dict[str, Any]]:
        """The read-back's direct probes of unread ranges (``readback-probe`` phase rows), in order."""
        phases = self.frame.loc[self.frame["f"] == "phase", "detail"]
        return [d for d in map(_detail, phases) if d.get("phase") == "readback-probe"]

    @functools.cached_property
    def sequential_readback_reads(self) -> pd.DataFrame:
        """The read-back's reads from the beginning, without its probes' (which seek past gaps)."""
        probed = {int(p["session"]) for p in self.readback_probes if "session" in p}
        back = self.readback_reads
        return back[~back["session"].isin(probed)] if probed else back

    def probes(self, kind: str) -> list[dict[str, Any]]:
        """Details of probe rows of one kind (observations a check needs, made during the run)."""
        rows = self.frame[(self.frame["f"] == "probe")]
        details = [{**_detail(d), "type": t, "error": e}
                   for d, t, e in zip(rows["detail"], rows["type"], rows["error"], strict=True)]
        return [d for d in details if d.get("kind") == kind]

    @functools.cached_property
    def client_logs(self) -> pd.Series:
        return self.frame.loc[self.frame["f"] == "client-log", "error"]

    def group_events(self) -> pd.DataFrame:
        """Consumer-group assignments and revocations of live consumers, with their partitions."""
        events = self.frame[self.frame["f"].isin(["assign", "revoke"]) & (self.frame["process"] != READBACK)]
        details = events["detail"].map(_detail)
        return events.assign(partitions=details.map(lambda d: d.get("partitions")),
                             group=details.map(lambda d: bool(d.get("group"))).astype(bool))[
            ["process", "f", "type", "complete_ns", "session", "partitions", "group"]]
