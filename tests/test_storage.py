"""Object storage read directly (k6suite_lib.storage): the decoders on bytes, then real buckets.

The unit tests build objects from real kafka-python record batches laid out as the systems' source
writes them; the layouts are spelled out here independently of the module (struct formats from the
KafScale v1.5.0 and Tansu v0.6.0-510f3e2 source), so a wrong format in the module cannot agree with itself.
The stack tests read a one-broker embedded KafScale's MinIO directly, and plant damage in it; a
bucket that a real Tansu wrote is decoded in tests/test_stack_tansu.py, so the Tansu cases here are
only what a real Tansu does not write for the suite (transaction markers, trailing bytes).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

import pandas as pd
import pytest
from kafka.record.memory_records import MemoryRecordsBuilder
from kafka.record.util import calc_crc32c

from k6suite_lib.history import encode_payload
from k6suite_lib.profiles import Profile, load_profile
from k6suite_lib.stack import open_stack
from k6suite_lib.stack.state import stack_credentials
from k6suite_lib.storage import (
    StorageError,
    StorageListing,
    StoredObject,
    decode_objects,
    listing_prefix,
    read_bucket,
    s3_client,
    storage_plot,
)
from k6suite_lib.workload import WorkloadConfig, run_workload
from tests.conftest import port_base_for, write_profile

STORAGE_PORT_BASE = port_base_for(24800)
RUN = "run-storage"
SEGMENT_KEY = "default/orders/3/segment-00000000000000000010.kfs"
INDEX_KEY = "default/orders/3/segment-00000000000000000010.index"
TANSU_PARTITION = "clusters/k6suite/topics/events/partitions/{:010d}"
# KafScale segment.go: header "KAFS" | version u16 | flags u16 | base i64 | count i32 | created ms i64 | reserved u32;
# footer CRC32C(body) u32 | last offset i64 | "END!"; big-endian
KAFSCALE_HEADER, KAFSCALE_FOOTER = ">4sHHqiqI", ">Iq4s"


def payload(seq: int) -> bytes:
    return encode_payload(RUN, "producer-0", seq, 64)[0]


def batch(seqs: range, base_offset: int = 0) -> bytes:
    """A v2 batch as kafka-python's producer builds it (base offset 0), with base_offset written over
    its first 8 bytes, as KafScale does before storing it (the batch CRC does not cover them)."""
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    for seq in seqs:
        builder.append(timestamp=None, key=None, value=payload(seq))
    builder.close()
    return struct.pack(">q", base_offset) + bytes(builder.buffer())[8:]


def control_batch() -> bytes:
    """A batch marked transactional + control (a transaction marker), its CRC32C recomputed."""
    data = bytearray(batch(range(1)))
    struct.pack_into(">h", data, 21, struct.unpack_from(">h", data, 21)[0] | 0x30)
    struct.pack_into(">I", data, 17, calc_crc32c(memoryview(data)[21:]))
    return bytes(data)


def kafscale_segment(batches: list[bytes], base_offset: int, records: int, last_offset: int) -> bytes:
    body = b"".join(batches)
    return (struct.pack(KAFSCALE_HEADER, b"KAFS", 1, 0, base_offset, records, 1_700_000_000_000, 0) + body
            + struct.pack(KAFSCALE_FOOTER, calc_crc32c(body), last_offset, b"END!"))


def good_segment() -> bytes:
    """Offsets 10-12 (seq 0-2) in one batch, 13-14 (seq 3-4) in another."""
    return kafscale_segment([batch(range(3), 10), batch(range(3, 5), 13)], base_offset=10, records=5, last_offset=14)


def flip_last_byte_of(data: bytes, value: bytes) -> bytes:
    """The same bytes with the last byte of one record value flipped (length kept)."""
    position = data.index(value) + len(value) - 1
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


def kafscale_listing(data: bytes) -> StorageListing:
    return decode_objects("kafscale", [StoredObject(SEGMENT_KEY, len(data), 1_000, data),
                                       StoredObject(INDEX_KEY, 28, 2_000)])


# ---------------------------------------------------------------------- decoders on bytes
def test_a_kafscale_segment_decodes_to_partition_offset_and_identity():
    listing = kafscale_listing(good_segment())

    records = listing.records
    assert records["offset"].tolist() == [10, 11, 12, 13, 14]
    assert (records["partition"] == 3).all() and (records["topic"] == "orders").all()
    assert records["seq"].tolist() == list(range(5))
    assert records["checksum"].tolist() == [zlib.crc32(payload(s).split(b"|", 5)[5]) for s in range(5)]
    assert (records["producer"] == "producer-0").all() and (records["run_id"] == RUN).all()
    assert not records["corrupt"].any()
    assert records["batch_crc_ok"].all() and records["segment_ok"].all()
    assert (records["value_len"] == 64).all() and (records["last_modified"] == 1_000).all()
    assert listing.errors == []
    objects = listing.objects.set_index("kind")
    assert objects.loc["segment", "decoded_ok"] and objects.loc["segment", "records"] == 5
    assert (objects.loc["segment", "base_offset"], objects.loc["segment", "last_offset"]) == (10, 14)
    assert not objects.loc["index", "fetched"] and objects.loc["index", "base_offset"] == 10


def test_a_flipped_payload_byte_is_found_by_every_checksum():
    listing = kafscale_listing(flip_last_byte_of(good_segment(), payload(1)))

    records = listing.records.set_index("offset")
    assert records["corrupt"].to_dict() == {10: False, 11: True, 12: False, 13: False, 14: False}
    assert records["batch_crc_ok"].to_dict() == {10: False, 11: False, 12: False, 13: True, 14: True}
    assert not records["segment_ok"].any()
    assert records.loc[11, "seq"] == 1  # the identity is still readable: only the body was hit
    [error] = listing.errors
    assert error.startswith(SEGMENT_KEY)
    assert "segment CRC32C" in error and "batch at offset 10: CRC32C" in error
    assert listing.objects.set_index("kind").loc["segment", "decoded_ok"]  # damaged, yet parsed end to end


@pytest.mark.parametrize(("keep", "offsets", "why"), [
    (-20, [10, 11, 12], "no footer"),  # the cut goes through the second batch and the footer
    (80, [], "48 bytes after the last whole batch"),  # the header and part of the first batch
    (10, [], "shorter than a segment's header and footer"),
])
def test_a_truncated_segment_lands_in_errors_not_an_exception(keep, offsets, why):
    data = good_segment()[:keep]
    listing = kafscale_listing(data)

    assert listing.records["offset"].tolist() == offsets
    assert not listing.records["segment_ok"].any()
    [error] = listing.errors
    assert why in error
    segment = listing.objects.set_index("kind").loc["segment"]
    assert segment["fetched"] and not segment["decoded_ok"] and segment["size"] == len(data)


def test_a_damaged_batch_does_not_hide_the_batches_after_it():
    data = bytearray(good_segment())
    data[32 + 16] = 1  # the first batch's magic byte: v1, which no v2 parser reads
    listing = kafscale_listing(bytes(data))

    assert listing.records["offset"].tolist() == [13, 14]
    assert "batch at offset 10: magic 1, not a v2 record batch" in listing.errors[0]
    assert not listing.objects.set_index("kind").loc["segment", "decoded_ok"]


def test_bytes_that_are_no_segment_are_named_not_raised():
    listing = kafscale_listing(b"PK\x03\x04" + bytes(60))
    assert listing.records.empty
    assert "header magic b'PK\\x03\\x04'" in listing.errors[0]


def test_tansu_objects_a_real_tansu_does_not_write_here_are_handled():
    """Synthetic on purpose: a transaction marker (the suite never writes transactionally) is skipped,
    bytes after the batch (damage) are reported; a real Tansu's own batches are decoded in
    tests/test_stack_tansu.py."""
    stored = [
        StoredObject(f"{TANSU_PARTITION.format(0)}/records/{7:020d}.batch", 0, 1, batch(range(3))),
        StoredObject(f"{TANSU_PARTITION.format(0)}/records/{10:020d}.batch", 0, 1, control_batch()),
        StoredObject(f"{TANSU_PARTITION.format(0)}/records/{11:020d}.batch", 0, 1, batch(range(3, 4)) + b"junk"),
        StoredObject(f"{TANSU_PARTITION.format(0)}/watermark.json", 0, 1),
    ]
    listing = decode_objects("tansu", stored)

    assert listing.records[["partition", "offset", "seq"]].values.tolist() == [[0, 7, 0], [0, 8, 1], [0, 9, 2],
                                                                               [0, 11, 3]]
    assert listing.records["batch_crc_ok"].all() and not listing.records["corrupt"].any()
    assert listing.records["segment_ok"].tolist() == [True, True, True, False]  # 4 bytes after the last batch
    assert listing.objects["kind"].tolist() == ["batch", "batch", "batch", "watermark"]
    [error] = listing.errors
    assert "4 bytes after the batch" in error


def test_listing_prefix_narrows_to_the_topic_where_the_layout_allows():
    assert listing_prefix("kafscale", "", "orders") == "default/orders/"
    assert listing_prefix("kafscale", "prod", None) == "prod/"
    assert listing_prefix("tansu", "clusters/k6suite/", "events") == "clusters/k6suite/topics/events/"
    assert listing_prefix("tansu", "", "events") == "clusters/"  # every cluster: filtered by key instead


def test_a_listing_round_trips_through_parquet_and_plots(tmp_path):
    listing = kafscale_listing(flip_last_byte_of(good_segment(), payload(1)))
    listing.meta["bucket"] = "kafscale"

    again = StorageListing.load(listing.save(tmp_path / "storage.parquet"))
    pd.testing.assert_frame_equal(again.records, listing.records)
    pd.testing.assert_frame_equal(again.objects, listing.objects)
    assert (again.errors, again.meta) == (listing.errors, listing.meta)

    figure = storage_plot(again, "one damaged segment")
    figure.savefig(tmp_path / "storage.png")
    assert (tmp_path / "storage.png").stat().st_size > 0


# ---------------------------------------------------------------------- real buckets
@pytest.fixture(scope="module")
def storage_stack(tmp_path_factory, isolated_outputs) -> Iterator[Profile]:
    """A one-broker embedded KafScale of this module's own, stopped by PID afterwards."""
    profile = load_profile(write_profile(tmp_path_factory.mktemp("storage"), "test-storage", STORAGE_PORT_BASE, 1))
    stack = open_stack(profile, log=lambda _msg: None)
    stack.up()
    try:
        yield profile
    finally:
        stack.down()


def read(profile: Profile, system: str, bucket: str, **kwargs) -> StorageListing:
    access, secret = stack_credentials()
    return read_bucket(system, profile.object_store.endpoint, bucket, access, secret, **kwargs)


@pytest.mark.stack
def test_real_kafscale_stores_every_acknowledged_record_and_a_planted_flip_is_found(storage_stack):
    profile = storage_stack
    result = run_workload(profile, WorkloadConfig(records=60, producers=2, partitions=2, consumers=0,
                                                  consumer_mode="none", label="storage",
                                                  readback_timeout_s=20))
    history = result.history
    acked = history[(history["f"] == "send") & (history["type"] == "ok")]
    assert len(acked) == 60

    listing = read(profile, "kafscale", profile.object_store.bucket, topic=result.topic)
    assert listing.errors == []
    assert (listing.records["topic"] == result.topic).all()
    stored = acked.merge(listing.records, on=["partition", "offset"], how="left", suffixes=("", "_stored"))
    assert stored["object_key"].notna().all(), stored[stored["object_key"].isna()].to_string()
    for column in ("producer", "seq", "checksum"):
        assert (stored[column] == stored[f"{column}_stored"]).all(), column
    assert (stored["run_id_stored"] == result.run_id).all()
    assert not stored["corrupt_stored"].any()
    assert stored["batch_crc_ok"].all() and stored["segment_ok"].all()

    # plant one flipped payload byte in one segment, on MinIO itself, keeping the object's length
    victim = listing.records.iloc[0]
    client = s3_client(profile.object_store.endpoint, *stack_credentials())
    response = client.get_object(profile.object_store.bucket, victim["object_key"])
    try:
        original = response.read()
    finally:
        response.close()
        response.release_conn()
    head = f"k6s1|{victim['run_id']}|{victim['producer']}|{victim['seq']}|".encode()
    value = original[original.index(head):original.index(head) + victim["value_len"]]
    damaged = flip_last_byte_of(original, value)
    client.put_object(profile.object_store.bucket, victim["object_key"], io.BytesIO(damaged), len(damaged))

    after = read(profile, "kafscale", profile.object_store.bucket, topic=result.topic).records
    hit = after[after["object_key"] == victim["object_key"]].set_index("offset")
    assert hit.loc[victim["offset"], "corrupt"] and not hit.loc[victim["offset"], "batch_crc_ok"]
    assert hit["corrupt"].sum() == 1 and not hit["segment_ok"].any()
    untouched = after[after["object_key"] != victim["object_key"]]
    assert not untouched["corrupt"].any() and untouched["batch_crc_ok"].all() and untouched["segment_ok"].all()


@pytest.mark.stack
def test_a_bucket_that_refuses_the_credentials_raises_without_naming_them(storage_stack):
    secret = "not-the-secret-7f3a9c"
    with pytest.raises(StorageError, match="cannot list") as raised:
        read_bucket("kafscale", storage_stack.object_store.endpoint, "kafscale", stack_credentials()[0], secret,
                    timeout_s=10)
    assert secret not in str(raised.value) and stack_credentials()[0] not in str(raised.value)
