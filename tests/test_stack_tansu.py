"""The embedded Tansu on real processes: it starts on MinIO through Toxiproxy, serves a round trip
whose batches land in the bucket, writes a bucket the suite's decoder reads back to exactly what
was acknowledged (and a byte flipped in it is found), feels a storage outage and produces again
after it, and leaves nothing behind.

One stack (port base 24000, brokers as profiles/tansu.yaml says) is shared by the tests of this
module, in file order; the last one stops it, and the fixture stops it by PID whatever happens.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka.errors import KafkaError

from k6suite_lib import clients
from k6suite_lib.checkers import AnomalyRules
from k6suite_lib.faults.network import Outage
from k6suite_lib.history import encode_payload
from k6suite_lib.profiles import Profile
from k6suite_lib.stack.state import stack_credentials
from k6suite_lib.stack.tansu import CLUSTER_PREFIX, S3_BUCKET, TansuStack
from k6suite_lib.storage import read_bucket
from k6suite_lib.workload import WorkloadConfig, run_workload
from tests.conftest import assert_all_dead, assert_clean, port_base_for, stack_fixture, verdicts_of

pytestmark = pytest.mark.stack
TANSU_PORT_BASE = port_base_for(24000)
RECORDS = 20
SEND_TIMEOUT_S = 10.0
# Tansu answers a produce whose object-store write failed after ~2-3 s of its S3 client's retries
OUTAGE_SEND_WAIT_S = 10.0
RESUME_LIMIT_S = 30.0


@pytest.fixture(scope="module")
def tansu_stack(tmp_path_factory, isolated_outputs) -> Iterator[tuple[TansuStack, Profile]]:
    yield from stack_fixture(tmp_path_factory, "test-tansu", TANSU_PORT_BASE, 3, like="tansu")


def test_starts_healthy_and_a_round_trip_lands_in_the_bucket(tansu_stack):
    stack, profile = tansu_stack
    brokers = [f"broker-{b}" for b in range(profile.stack.brokers)]
    status = stack.status()
    assert sorted(status["component"]) == sorted(["minio", "toxiproxy", *brokers])
    assert status["healthy"].all(), status.to_string()
    # the store Tansu's compare-and-swap relies on: a second create and a stale update are refused
    assert stack.conditional_put_answers(stack.s3()) == {
        "create": 200, "create again": 412, "update, stale etag": 412, "update, current etag": 200}

    # One record per request: Tansu v0.6.0-510f3e2 answers ListOffsets(latest) with the newest batch's base
    # offset + 1, so a multi-record batch makes the read-back's end offset fall short of acknowledged
    # offsets. That defect is for S3 to report; this test is about the stack.
    result = run_workload(profile, WorkloadConfig(records=RECORDS, producers=1, consumers=0, consumer_mode="none",
                                                  max_outstanding=0, label="tansu-round-trip",
                                                  readback_timeout_s=20))
    assert_clean(verdicts_of(result.history, AnomalyRules(min_acked=RECORDS, max_unacked=0)))

    batches = [n for n in stack.object_names(f"{CLUSTER_PREFIX}topics/{result.topic}/") if n.endswith(".batch")]
    assert len(batches) == RECORDS, f"{len(batches)} batch objects in bucket {S3_BUCKET} for {result.topic}"


def test_item_20_3_a_bucket_real_tansu_wrote_decodes_to_what_was_acknowledged(tansu_stack):
    """The F6 decoder on Tansu's own objects: every acknowledged send is in the bucket at its partition
    and offset with its producer, seq and body checksum, every batch CRC holds, nothing else is there;
    a byte flipped on MinIO (damage Tansu does not make) is found in exactly that record. Producers
    keep many sends outstanding, so batches hold several records and the offsets can only come out
    right from the object key (Tansu stores each batch with base offset 0)."""
    stack, profile = tansu_stack
    result = run_workload(profile, WorkloadConfig(records=120, producers=2, partitions=2, consumers=0,
                                                  consumer_mode="none", linger_ms=20, label="tansu-bucket",
                                                  readback=False))
    history = result.history
    acked = history[(history["f"] == "send") & (history["type"] == "ok")]
    assert len(acked) == 120

    def read():
        return read_bucket("tansu", profile.object_store.endpoint, S3_BUCKET, *stack_credentials(),
                           topic=result.topic, prefix=CLUSTER_PREFIX, timeout_s=30)

    listing = read()
    assert listing.errors == []
    records = listing.records
    assert (records["topic"] == result.topic).all() and (records["run_id"] == result.run_id).all()
    assert len(records) == 120 and not records.duplicated(["partition", "offset"]).any()
    stored = acked.merge(records, on=["partition", "offset"], how="left", suffixes=("", "_stored"))
    assert stored["object_key"].notna().all(), stored[stored["object_key"].isna()].to_string()
    for column in ("producer", "seq", "checksum"):
        assert (stored[column] == stored[f"{column}_stored"]).all(), column
    assert records["batch_crc_ok"].all() and not records["corrupt"].any()
    per_object = records.groupby("object_key").size()
    assert (per_object > 1).any(), "every batch held one record: the key's base offset was never exercised"
    everything = read_bucket("tansu", profile.object_store.endpoint, S3_BUCKET, *stack_credentials(), timeout_s=30)
    assert everything.errors == [] and result.topic in set(everything.records["topic"])
    kinds = everything.objects.set_index("object_key")["kind"]
    assert kinds[f"{CLUSTER_PREFIX}meta.json"] == "other"
    assert (kinds[kinds.index.str.startswith(f"{CLUSTER_PREFIX}topics/{result.topic}/")].value_counts().to_dict()
            == {"batch": per_object.size, "watermark": 2})  # one watermark per partition

    # one payload byte flipped in one multi-record batch, on MinIO itself, its length kept
    victim = records[records["object_key"] == per_object.idxmax()].iloc[-1]
    client = stack.s3()
    response = client.get_object(S3_BUCKET, victim["object_key"])
    try:
        original = response.read()
    finally:
        response.close()
        response.release_conn()
    value = encode_payload(result.run_id, victim["producer"], int(victim["seq"]), int(victim["value_len"]))[0]
    position = original.index(value) + len(value) - 1
    damaged = original[:position] + bytes([original[position] ^ 0x01]) + original[position + 1:]
    client.put_object(S3_BUCKET, victim["object_key"], io.BytesIO(damaged), len(damaged))

    after = read().records
    hit = after[after["object_key"] == victim["object_key"]].set_index("offset")
    assert hit.loc[victim["offset"], "corrupt"] and not hit["batch_crc_ok"].any()
    assert hit["corrupt"].sum() == 1
    untouched = after[after["object_key"] != victim["object_key"]]
    assert not untouched["corrupt"].any() and untouched["batch_crc_ok"].all()


def _first_ack_s(producer, topic: str, limit_s: float) -> float | None:
    """Seconds until a send is acknowledged, trying again on errors; None if none is within limit_s."""
    started = time.monotonic()
    for attempt in range(int(limit_s)):
        if time.monotonic() - started > limit_s:
            break
        try:
            producer.send(topic, f"after-{attempt}".encode()).get(timeout=min(5.0, limit_s))
            return time.monotonic() - started
        except KafkaError:
            time.sleep(0.2)
    return None


def test_storage_outage_is_felt_and_produce_resumes_after_it(tansu_stack):
    """The storage fault reaches Tansu and Tansu serves again after it. The producer here is not idempotent:
    kafka-python's default, idempotent producer aborts every batch for good after an outage on Tansu
    ('Aborting producer batches due to fatal error: UnknownError'), a finding the shipped tansu profile
    reports as S5 FAILs; this test is about the fault and the stack, not about that client setting."""
    stack, profile = tansu_stack
    topic = f"k6s-tansu-outage-{uuid.uuid4().hex[:8]}"
    clients.create_topic(profile, topic, 1)
    producer = clients.producer(profile, enable_idempotence=False)
    try:
        producer.send(topic, b"before").get(timeout=SEND_TIMEOUT_S)
        outage = Outage(stack.toxiproxy, "storage")
        outage.start()
        try:
            with pytest.raises(KafkaError):  # an error or no answer in time: either way nothing was acknowledged
                producer.send(topic, b"during").get(timeout=OUTAGE_SEND_WAIT_S)
        finally:
            outage.stop()
        assert outage.cut["recent"] >= 1, outage.cut  # Tansu's own connection to the store had just carried data
        assert any('store: "S3"' in stack.logs(f"broker-{b}", 100) for b in stack.broker_ids), \
            "no broker logged a failed object-store request"
        resumed_s = _first_ack_s(producer, topic, RESUME_LIMIT_S)
        assert resumed_s is not None, f"no send acknowledged within {RESUME_LIMIT_S:.0f} s after the outage"
    finally:
        producer.close(timeout=5)


def test_down_stops_every_process(tansu_stack):
    stack, _ = tansu_stack
    records = list(stack.records.values())
    ended = stack.down()
    assert set(ended) == {r.name for r in records}
    assert_all_dead(records)
    assert stack.records == {}
