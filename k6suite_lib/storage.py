"""What a system actually stored: its bucket read directly and decoded into records (trust contract F6).

An acknowledged write is only as durable as the object behind it, so this module reads the bucket with
its own S3 client (on MinIO itself, not the brokers' path through Toxiproxy) and decodes every data
object into the records it holds, with the identity K6SUITE's payloads carry (history.decode_payload).
A checker can then hold a history's acknowledged (partition, offset, identity) against storage.

Layouts decoded (read from the systems' source):

- KafScale v1.5.0: ``<namespace>/<topic>/<partition>/segment-<base:020d>.kfs``: a 32-byte header
  ("KAFS", version 1, flags, base offset, record count, created ms, reserved), the producers' Kafka v2
  record batches with base offsets rewritten to absolute ones, and a 16-byte footer (CRC32C of the
  batches, last offset, "END!"), all big-endian. The ``.index`` beside each segment is listed, not read.
- Tansu v0.6.0-510f3e2: ``clusters/<id>/topics/<topic>/partitions/<p:010d>/records/<base:020d>.batch``: one raw
  v2 batch whose stored base offset is whatever the producer sent; the absolute base is in the key.

Reading never raises over what it finds: an object that cannot be decoded, or whose checksums or
header disagree, is evidence, kept in ``objects.error`` and ``errors``. Only a bucket that cannot be
listed at all raises StorageError. Credentials are arguments, given to the client only and redacted
from every message.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import numpy as np
import pandas as pd
import urllib3
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from minio import Minio
from minio.error import MinioException

from k6suite_lib.history import decode_payload
from k6suite_lib.secrets import redact

FORMAT_VERSION = 1
PARQUET_META_KEY = b"k6suite-storage"
# Where each system's keys start when no prefix is given: KafScale's default namespace, every Tansu cluster.
DEFAULT_PREFIX = {"kafscale": "default/", "tansu": "clusters/"}
DATA_KIND = {"kafscale": "segment", "tansu": "batch"}
SEGMENT_HEADER = struct.Struct(">4sHHqiqI")  # magic, version, flags, base offset, record count, created ms, reserved
SEGMENT_FOOTER = struct.Struct(">Iq4s")  # CRC32C of the body, last offset, magic
SEGMENT_MAGIC, SEGMENT_VERSION, FOOTER_MAGIC = b"KAFS", 1, b"END!"
BATCH_BASE_OFFSET = struct.Struct(">q")  # the first 8 bytes of a v2 batch; its CRC does not cover them
FETCH_THREADS = 4
CONNECT_TIMEOUT_S = 5.0
HTTP_RETRIES = 2

_KAFSCALE_KEY = re.compile(r"(?:^|/)(?P<topic>[^/]+)/(?P<partition>\d+)/segment-(?P<base>\d{20})\.(?P<ext>kfs|index)$")
_TANSU_KEY = re.compile(r"(?:^|/)topics/(?P<topic>[^/]+)/partitions/(?P<partition>\d{10})/"
                        r"(?:records/(?P<base>\d{20})\.batch|watermark\.json)$")
_TANSU_CLUSTER_ROOT = re.compile(r"clusters/[^/]+/")

# column -> (pandas dtype, meaning), like history.COLUMNS; one row per record found in storage
COLUMNS: dict[str, tuple[str, str]] = {
    "object_key": ("string", "the object the record was decoded from"),
    "topic": ("string", "topic, from the object key"),
    "partition": ("int64", "partition, from the object key"),
    "offset": ("int64", "absolute offset: batch base offset + offset delta (Tansu: base from the key)"),
    "producer": ("string", "record identity: the producer the payload names; empty when unparseable"),
    "seq": ("int64", "record identity: the producer's sequence number, -1 when unparseable"),
    "checksum": ("int64", "CRC32 of the payload body as the payload carries it, -1 when unparseable"),
    "corrupt": ("bool", "payload unparseable or its checksum does not match its body"),
    "run_id": ("string", "the run id the payload carries; empty when unparseable"),
    "batch_crc_ok": ("bool", "the Kafka batch's CRC32C matches its bytes"),
    "segment_ok": ("bool", "KafScale: header and footer sane, agree with the batches, footer CRC32C matches the "
                           "body; Tansu: the object is exactly one whole batch"),
    "value_len": ("int64", "payload length in bytes, -1 for a null value"),
    "last_modified": ("int64", "the object's Last-Modified, wall clock ns since the epoch"),
}
# one row per object listed
OBJECT_COLUMNS: dict[str, tuple[str, str]] = {
    "object_key": ("string", "the key"),
    "topic": ("string", "topic, from the key; empty when the key is not a topic's"),
    "partition": ("int64", "partition, from the key; -1 when none"),
    "kind": ("string", "KafScale: segment | index | other; Tansu: batch | watermark | other"),
    "base_offset": ("int64", "the base offset the key names, -1 when none"),
    "last_offset": ("int64", "the highest offset decoded from the object, -1 when none"),
    "records": ("int64", "records decoded from the object"),
    "size": ("int64", "size in bytes, as listed"),
    "last_modified": ("int64", "Last-Modified, wall clock ns since the epoch"),
    "fetched": ("bool", "its bytes were read (only data objects are: segments, batches)"),
    "decoded_ok": ("bool", "a data object parsed end to end (checksums are judged separately, per record)"),
    "error": ("string", "every problem found: not read, unparseable, checksum or header mismatch; empty when none"),
}


class StorageError(RuntimeError):
    """The bucket could not be listed, or a saved listing could not be read."""


@dataclass(frozen=True)
class StoredObject:
    """One listed object and, for data objects, its bytes (None when not read, with why in fetch_error)."""

    key: str
    size: int
    last_modified_ns: int
    data: bytes | None = None
    fetch_error: str = ""


@dataclass
class StorageListing:
    """What storage holds: records decoded, objects listed, and what could not be decoded.

    meta says where it was read (system, endpoint, bucket, prefix, topic) and when, never with credentials.
    """

    records: pd.DataFrame
    objects: pd.DataFrame
    errors: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path | str) -> Path:
        """Records as Parquet; objects, errors and meta in the schema metadata, so a run can be re-checked."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self.records, preserve_index=False)
        meta = {"format_version": FORMAT_VERSION, "meta": self.meta, "errors": self.errors,
                "objects": self.objects.to_dict(orient="list")}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               PARQUET_META_KEY: json.dumps(meta).encode()})
        pq.write_table(table, path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> StorageListing:
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise StorageError(f"{path}: no such storage listing")
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(PARQUET_META_KEY)
        if raw is None:
            raise StorageError(f"{path}: not a storage listing (no {PARQUET_META_KEY.decode()} metadata)")
        saved = json.loads(raw)
        if saved.get("format_version") != FORMAT_VERSION:
            raise StorageError(f"{path}: storage listing format {saved.get('format_version')}, "
                               f"this k6suite reads {FORMAT_VERSION}")
        objects = pd.DataFrame(saved["objects"], columns=list(OBJECT_COLUMNS))
        return cls(records=_typed(table.to_pandas(), COLUMNS), objects=_typed(objects, OBJECT_COLUMNS),
                   errors=list(saved["errors"]), meta=saved["meta"])


def _typed(frame: pd.DataFrame, columns: dict[str, tuple[str, str]]) -> pd.DataFrame:
    return frame[list(columns)].astype({c: dtype for c, (dtype, _) in columns.items()})


# ---------------------------------------------------------------------- keys
def classify(system: str, key: str) -> tuple[str, str, int, int]:
    """(kind, topic, partition, base offset) an object key names; ("other", "", -1, -1) for anything else."""
    if system == "kafscale":
        match = _KAFSCALE_KEY.search(key)
        if match:
            kind = "segment" if match["ext"] == "kfs" else "index"
            return kind, match["topic"], int(match["partition"]), int(match["base"])
    else:
        match = _TANSU_KEY.search(key)
        if match:
            if match["base"] is None:
                return "watermark", match["topic"], int(match["partition"]), -1
            return "batch", match["topic"], int(match["partition"]), int(match["base"])
    return "other", "", -1, -1


def listing_prefix(system: str, prefix: str, topic: str | None) -> str:
    """The narrowest prefix that still lists every object of the topic (all of the root without one)."""
    root = prefix or DEFAULT_PREFIX[system]
    root = root if root.endswith("/") else f"{root}/"
    if topic is None:
        return root
    if system == "kafscale":
        return f"{root}{topic}/"
    return f"{root}topics/{topic}/" if _TANSU_CLUSTER_ROOT.fullmatch(root) else root


# ---------------------------------------------------------------------- decoding
@dataclass
class _Contents:
    """One data object's records as parallel lists, and what was wrong with it."""

    offsets: list[int] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    batch_crc_ok: list[bool] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    parsed: bool = True  # the bytes parsed end to end
    wrapper_ok: bool = True  # KafScale: header/footer sane and consistent; Tansu: exactly one batch

    def malformed(self, problem: str) -> None:
        self.problems.append(problem)
        self.parsed = self.wrapper_ok = False

    def inconsistent(self, problem: str) -> None:
        self.problems.append(problem)
        self.wrapper_ok = False


def _read_batch(batch: DefaultRecordBatch, contents: _Contents) -> bool:
    """Append a batch's records (False: not a v2 batch). The CRC is verified first, because iterating
    decompresses the batch; a batch that breaks mid-way keeps the records read before the break."""
    if batch.magic != 2:
        contents.malformed(f"batch at offset {batch.base_offset}: magic {batch.magic}, not a v2 record batch")
        return False
    crc_ok = batch.validate_crc()
    if not crc_ok:
        contents.problems.append(f"batch at offset {batch.base_offset}: CRC32C does not match its bytes")
    if batch.is_control_batch:  # transaction markers, not records
        return True
    try:
        for record in batch:
            contents.offsets.append(record.offset)
            contents.values.append(record.value)
            contents.batch_crc_ok.append(crc_ok)
    except Exception as exc:  # a damaged record (or a missing codec) is evidence about this batch only
        contents.malformed(f"batch at offset {batch.base_offset}: undecodable: {type(exc).__name__}: {exc}")
    return True


def decode_kafscale_segment(data: bytes, key_base_offset: int, contents: _Contents) -> None:
    """A KafScale .kfs segment: header, batches with absolute base offsets, footer (see the module docstring)."""
    minimum = SEGMENT_HEADER.size + SEGMENT_FOOTER.size
    if len(data) < minimum:
        contents.malformed(f"{len(data)} bytes, shorter than a segment's header and footer ({minimum})")
        return
    magic, version, _flags, base_offset, record_count, _created_ms, _reserved = SEGMENT_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC or version != SEGMENT_VERSION:
        contents.malformed(f"header magic {magic!r} version {version}, not {SEGMENT_MAGIC!r} version "
                           f"{SEGMENT_VERSION}")
        return
    body_crc, last_offset, footer_magic = SEGMENT_FOOTER.unpack_from(data, len(data) - SEGMENT_FOOTER.size)
    has_footer = footer_magic == FOOTER_MAGIC
    body = data[SEGMENT_HEADER.size:len(data) - SEGMENT_FOOTER.size] if has_footer else data[SEGMENT_HEADER.size:]
    if not has_footer:
        contents.malformed(f"no footer (ends in {footer_magic!r}, not {FOOTER_MAGIC!r}): truncated or overwritten")
    elif calc_crc32c(body) != body_crc:
        contents.inconsistent("segment CRC32C in the footer does not match the body")
    if base_offset != key_base_offset:
        contents.inconsistent(f"header base offset {base_offset}, the key names {key_base_offset}")

    batches = MemoryRecords(body)
    first_base, last_batch_offset, held = None, None, 0
    while batches.has_next():  # each step consumes at least one batch header of the finite body
        batch = batches.next_batch()
        if not _read_batch(batch, contents):
            continue
        first_base = batch.base_offset if first_base is None else first_base
        last_batch_offset = batch.base_offset + batch.last_offset_delta
        held += batch.records_count
    trailing = len(body) - batches.valid_bytes()
    if trailing:
        contents.malformed(f"{trailing} bytes after the last whole batch")
    if first_base is not None and first_base != base_offset:
        contents.inconsistent(f"first readable batch starts at offset {first_base}, the header says {base_offset}")
    if held != record_count:
        contents.inconsistent(f"header counts {record_count} records, the batches hold {held}")
    if has_footer and last_batch_offset != last_offset:
        contents.inconsistent(f"footer last offset {last_offset}, the last batch ends at {last_batch_offset}")


def decode_tansu_batch(data: bytes, key_base_offset: int, contents: _Contents) -> None:
    """A Tansu .batch object: one raw v2 batch whose stored base offset is replaced by the key's."""
    header = DefaultRecordBatch.HEADER_STRUCT.size
    if len(data) < header:
        contents.malformed(f"{len(data)} bytes, shorter than a batch header ({header})")
        return
    patched = BATCH_BASE_OFFSET.pack(key_base_offset) + data[BATCH_BASE_OFFSET.size:]
    batch = DefaultRecordBatch(patched)
    if batch.size_in_bytes > len(data):
        contents.malformed(f"batch length says {batch.size_in_bytes} bytes, the object has {len(data)}: truncated")
    elif batch.size_in_bytes < len(data):
        contents.inconsistent(f"{len(data) - batch.size_in_bytes} bytes after the batch")
        batch = DefaultRecordBatch(patched[:batch.size_in_bytes])
    _read_batch(batch, contents)


DECODERS: dict[str, Callable[[bytes, int, _Contents], None]] = {
    "kafscale": decode_kafscale_segment,
    "tansu": decode_tansu_batch,
}


def _decode(system: str, data: bytes, key_base_offset: int) -> _Contents:
    contents = _Contents()
    try:
        DECODERS[system](data, key_base_offset, contents)
    except Exception as exc:  # whatever the bytes do to the parser is evidence about the object, kept with it
        contents.malformed(f"undecodable: {type(exc).__name__}: {exc}")
    return contents


def decode_objects(system: str, stored: Iterable[StoredObject], meta: dict[str, Any] | None = None) -> StorageListing:
    """Decode listed objects (bytes already read) into a listing; the seam between S3 and the decoders."""
    if system not in DECODERS:
        raise ValueError(f"system must be one of {', '.join(DECODERS)}, got {system!r}")
    object_rows: list[dict[str, Any]] = []
    offsets: list[int] = []
    values: list[bytes | None] = []
    batch_crc_ok: list[bool] = []
    owner: list[int] = []  # per record: its object's row number
    for index, item in enumerate(stored):
        kind, topic, partition, base_offset = classify(system, item.key)
        row = {"object_key": item.key, "topic": topic, "partition": partition, "kind": kind,
               "base_offset": base_offset, "last_offset": -1, "records": 0, "size": item.size,
               "last_modified": item.last_modified_ns, "fetched": item.data is not None, "decoded_ok": False,
               "error": item.fetch_error, "wrapper_ok": False}
        if kind == DATA_KIND[system] and item.data is not None:
            contents = _decode(system, item.data, base_offset)
            row.update(records=len(contents.offsets), last_offset=max(contents.offsets, default=-1),
                       decoded_ok=contents.parsed, wrapper_ok=contents.wrapper_ok, error="; ".join(contents.problems))
            offsets += contents.offsets
            values += contents.values
            batch_crc_ok += contents.batch_crc_ok
            owner += [index] * len(contents.offsets)
        object_rows.append(row)

    objects = pd.DataFrame(object_rows, columns=[*OBJECT_COLUMNS, "wrapper_ok"])
    identities = pd.DataFrame.from_records([decode_payload(v) for v in values],
                                           columns=["producer", "seq", "checksum", "corrupt", "run_id"])
    owner_rows = np.asarray(owner, dtype="int64")
    records = pd.DataFrame({
        **{c: objects[c].to_numpy()[owner_rows] for c in ("object_key", "topic", "partition", "last_modified")},
        "offset": offsets,
        **{c: identities[c].to_numpy() for c in identities.columns},
        "batch_crc_ok": batch_crc_ok,
        "segment_ok": objects["wrapper_ok"].to_numpy(dtype=bool)[owner_rows],
        "value_len": [-1 if v is None else len(v) for v in values],
    })
    records = _typed(records, COLUMNS).sort_values(["topic", "partition", "offset", "object_key"], kind="stable")
    objects = _typed(objects, OBJECT_COLUMNS).sort_values("object_key", kind="stable").reset_index(drop=True)
    errors = [f"{key}: {error}" for key, error in zip(objects["object_key"], objects["error"], strict=True) if error]
    return StorageListing(records=records.reset_index(drop=True), objects=objects, errors=errors,
                          meta={"system": system, **(meta or {})})


# ---------------------------------------------------------------------- S3
def s3_client(endpoint: str, access_key: str, secret_key: str, timeout_s: float = 30) -> Minio:
    """A MinIO client whose every request is bounded: connect and read timeouts, a few retries."""
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(CONNECT_TIMEOUT_S, timeout_s), read=timeout_s),
        retries=urllib3.Retry(total=HTTP_RETRIES, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        maxsize=FETCH_THREADS, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
    )
    return Minio(url.netloc, access_key=access_key, secret_key=secret_key, secure=url.scheme == "https",
                 http_client=http)


def _fetch(client: Minio, bucket: str, key: str, deadline: float, secrets: set[str]) -> tuple[bytes | None, str]:
    """An object's bytes, or None and why not (an unreadable object is evidence, not an exception)."""
    if time.monotonic() > deadline:
        return None, "not read: the read's time budget ran out"
    try:
        response = client.get_object(bucket, key)
        try:
            return response.read(), ""
        finally:
            response.close()
            response.release_conn()
    except (MinioException, urllib3.exceptions.HTTPError) as exc:
        return None, redact(f"not read: {type(exc).__name__}: {exc}", secrets)


def read_bucket(system: str, endpoint: str, bucket: str, access_key: str, secret_key: str, topic: str | None = None,
                prefix: str = "", timeout_s: float = 30) -> StorageListing:
    """List a system's bucket, read its data objects and decode them (only topic's objects when given).

    prefix is where the system's keys start; empty means its default (KafScale: ``default/``, its
    default namespace; Tansu: ``clusters/``, every cluster). timeout_s is the read's budget: it bounds
    every request, and no request starts once it has run out; objects left unread then are listed with
    fetched False and say so in their error. A listing that fails or overruns raises StorageError.
    """
    if system not in DECODERS:
        raise ValueError(f"system must be one of {', '.join(DECODERS)}, got {system!r}")
    started_wall, started = time.time_ns(), time.monotonic()
    deadline = started + timeout_s
    secrets = {access_key, secret_key}
    client = s3_client(endpoint, access_key, secret_key, timeout_s)
    where = listing_prefix(system, prefix, topic)
    listed = []
    try:
        for entry in client.list_objects(bucket, prefix=where, recursive=True):
            if time.monotonic() > deadline:
                raise StorageError(f"listing s3://{bucket}/{where} at {endpoint} took longer than {timeout_s} s")
            if topic is None or classify(system, entry.object_name)[1] == topic:
                listed.append(entry)
    except (MinioException, urllib3.exceptions.HTTPError) as exc:
        message = f"cannot list s3://{bucket}/{where} at {endpoint}: {type(exc).__name__}: {exc}"
        raise StorageError(redact(message, secrets)) from None

    def read_entry(entry) -> StoredObject:
        wanted = classify(system, entry.object_name)[0] == DATA_KIND[system]
        data, error = _fetch(client, bucket, entry.object_name, deadline, secrets) if wanted else (None, "")
        return StoredObject(key=entry.object_name, size=entry.size, data=data, fetch_error=error,
                            last_modified_ns=pd.Timestamp(entry.last_modified).value)

    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        stored = list(pool.map(read_entry, listed))
    listing = decode_objects(system, stored, meta={
        "endpoint": endpoint, "bucket": bucket, "prefix": where, "topic": topic, "read_wall_ns": started_wall,
        "bytes_read": sum(len(s.data) for s in stored if s.data is not None)})
    listing.meta["read_s"] = round(time.monotonic() - started, 3)
    return listing


# ---------------------------------------------------------------------- picture
def storage_plot(listing: StorageListing, title: str,
                 fault_windows: list[tuple[int, int, str]] | None = None) -> Figure:
    """Data objects per partition over offsets: a bar per object across the offsets it holds, red when
    anything in it is damaged (undecodable, a checksum or header mismatch, a corrupt payload), orange
    when it was written during a fault window (wall-clock start, end, name: Last-Modified inside)."""
    objects = listing.objects[listing.objects["kind"] == DATA_KIND[listing.meta["system"]]]
    records = listing.records
    bad_records = records.loc[records["corrupt"] | ~records["batch_crc_ok"] | ~records["segment_ok"], "object_key"]
    damaged = (objects["error"] != "") | objects["object_key"].isin(bad_records)
    rows = objects["topic"] + "/" + objects["partition"].astype("string")
    single_topic = objects["topic"].nunique() <= 1
    lanes = sorted(rows.unique(), key=lambda r: (r.rsplit("/", 1)[0], int(r.rsplit("/", 1)[1])))
    y = rows.map({lane: i for i, lane in enumerate(lanes)}).to_numpy(dtype=float)
    start = objects["base_offset"].to_numpy(dtype=float)
    end = np.maximum(objects["last_offset"].to_numpy(dtype=float), start)

    written = objects["last_modified"].to_numpy()
    during = np.zeros(len(objects), dtype=bool)
    for window_start, window_end, _ in fault_windows or []:
        during |= (written >= window_start) & (written <= window_end)
    colours = np.where(damaged, "#d62728", np.where(during, "#ff7f0e", "#1f77b4"))

    fig = Figure(figsize=(9, 1.5 + 0.5 * max(len(lanes), 1)))
    axes = fig.add_subplot()
    axes.hlines(y, start - 0.4, end + 0.4, colors=colours, linewidth=8)
    axes.set_yticks(range(len(lanes)), [lane.rsplit("/", 1)[1] if single_topic else lane for lane in lanes])
    axes.set_ylim(-0.8, max(len(lanes), 1) - 0.2)
    axes.set_xlabel("offset")
    axes.set_ylabel("partition" if single_topic else "topic/partition")
    axes.set_title(title)
    axes.legend(handles=[Line2D([], [], color="#1f77b4", linewidth=8, label="object (offsets held)"),
                         Line2D([], [], color="#ff7f0e", linewidth=8, label="written during a fault"),
                         Line2D([], [], color="#d62728", linewidth=8, label="damaged")],
                loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
