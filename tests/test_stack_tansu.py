"""The embedded Tansu on real processes: it starts on MinIO through Toxiproxy, serves a round trip
whose batches land in the bucket, feels a storage outage and produces again after it, and leaves
nothing behind.

One stack (port base 24000, brokers as profiles/tansu.yaml says) is shared by the tests of this
module, in file order; the last one stops it, and the fixture stops it by PID whatever happens.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kafka.errors import KafkaError

from k6suite_lib import clients
from k6suite_lib.checkers import AnomalyRules
from k6suite_lib.faults.network import Outage
from k6suite_lib.profiles import Profile
from k6suite_lib.stack.tansu import CLUSTER_PREFIX, S3_BUCKET, TansuStack
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

    # One record per request: Tansu 0.6.0 answers ListOffsets(latest) with the newest batch's base
    # offset + 1, so a multi-record batch makes the read-back's end offset fall short of acknowledged
    # offsets. That defect is for S3 to report; this test is about the stack.
    result = run_workload(profile, WorkloadConfig(records=RECORDS, producers=1, consumers=0, consumer_mode="none",
                                                  max_outstanding=0, label="tansu-round-trip",
                                                  readback_timeout_s=20))
    assert_clean(verdicts_of(result.history, AnomalyRules(min_acked=RECORDS, max_unacked=0)))

    batches = [n for n in stack.object_names(f"{CLUSTER_PREFIX}topics/{result.topic}/") if n.endswith(".batch")]
    assert len(batches) == RECORDS, f"{len(batches)} batch objects in bucket {S3_BUCKET} for {result.topic}"


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
    stack, profile = tansu_stack
    topic = f"k6s-tansu-outage-{uuid.uuid4().hex[:8]}"
    clients.create_topic(profile, topic, 1)
    producer = clients.producer(profile)
    try:
        producer.send(topic, b"before").get(timeout=SEND_TIMEOUT_S)
        outage = Outage(stack.toxiproxy, "storage")
        outage.start()
        try:
            with pytest.raises(KafkaError):  # an error or no answer in time: either way nothing was acknowledged
                producer.send(topic, b"during").get(timeout=OUTAGE_SEND_WAIT_S)
        finally:
            outage.stop()
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
