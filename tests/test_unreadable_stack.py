"""Records intact in the bucket that the real KafScale v1.5.0 will not serve are classified
*unreadable*, not lost (issue 21).

The cause is deterministic and read from KafScale v1.5.0's own source: a broker builds a partition's
log when it first touches it (cmd/broker/main.go getPartitionLog) by listing the partition's
segments in S3 and downloading each segment's ``.index`` (pkg/storage/log.go RestoreFromS3). When an
index is gone, the restore fails, and every Fetch and ListOffsets(earliest) of that partition fails
with it, while the ``.kfs`` segment, which holds the records, stays intact. So: produce, delete the
indexes of one partition on MinIO itself, restart the broker (it forgets the logs it built), read back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace

import pytest

from k6suite_lib import history
from k6suite_lib.checkers import CheckSpec, compose
from k6suite_lib.checkers.storage import LOST, UNREADABLE, unread_classes
from k6suite_lib.progress import Progress
from k6suite_lib.stack.state import stack_credentials
from k6suite_lib.storage import read_bucket, s3_client
from k6suite_lib.workload import WorkloadConfig, run_workload
from k6suite_lib.workload.orchestrator import workload_context
from k6suite_lib.workload.readback import read_back
from tests.conftest import port_base_for, stack_fixture

UNREADABLE_PORT_BASE = port_base_for(26400)
HIDDEN = 0  # the partition whose indexes are deleted


@pytest.fixture(scope="module")
def kafscale(tmp_path_factory, isolated_outputs) -> Iterator:
    yield from stack_fixture(tmp_path_factory, "test-unreadable", UNREADABLE_PORT_BASE, 1)


@pytest.mark.stack
def test_21_1_records_intact_in_the_bucket_that_kafscale_never_serves_are_unreadable(kafscale, tmp_path):
    stack, profile = kafscale
    store = profile.object_store
    access, secret = stack_credentials()
    result = run_workload(profile, WorkloadConfig(records=40, producers=1, partitions=2, consumers=0,
                                                  consumer_mode="none", label="unreadable", readback=False))
    acked = result.history[(result.history["f"] == "send") & (result.history["type"] == "ok")]
    assert len(acked) == 40 and (acked["partition"] == HIDDEN).sum() > 0

    listing = read_bucket("kafscale", store.endpoint, store.bucket, access, secret, topic=result.topic)
    indexes = listing.objects[(listing.objects["kind"] == "index") & (listing.objects["partition"] == HIDDEN)]
    assert len(indexes) > 0
    client = s3_client(store.endpoint, access, secret)
    for key in indexes["object_key"]:
        client.remove_object(store.bucket, key)
    for broker in stack.broker_ids:
        stack.kill(broker)
        stack.restart(broker)

    ctx = workload_context(profile, replace(result.config, readback_timeout_s=20), run_id=result.run_id)
    ctx.recorder._ids = itertools.count(int(result.history["op_id"].max()) + 1)  # op ids go on from the workload's
    read_back(ctx, Progress("unreadable", mode="quiet"))
    frame = history.append(result.history, ctx.recorder.rows())

    after = read_bucket("kafscale", store.endpoint, store.bucket, access, secret, topic=result.topic)
    after.save(tmp_path / "storage-x.parquet")
    view = history.View(frame, {"run_id": result.run_id, "storage": "storage-x.parquet"}, sidecar_dir=tmp_path)
    table = compose(view, [CheckSpec("anomalies"), CheckSpec("readback"), CheckSpec("storage")]).set_index("check")

    hidden = acked[acked["partition"] == HIDDEN]
    classes = unread_classes(view, after.records[~after.records["corrupt"]])
    assert table.loc["every acknowledged record is in storage at its position, intact", "status"] == "PASS"
    assert table.loc[LOST, "status"] == "PASS"
    assert table.loc[UNREADABLE, "status"] == "FAIL", table.loc[UNREADABLE, "evidence"]
    unreadable = classes[classes["cls"] == UNREADABLE]
    assert set(hidden["offset"]) <= set(unreadable.loc[unreadable["partition"] == HIDDEN, "offset"])
    assert set(classes["cls"]) == {UNREADABLE}
    # the read-back asked for the hidden partition directly, and the system served none of it
    probes = [p for p in view.readback_probes if p.get("partition") == HIDDEN and not p.get("skipped")]
    assert probes and all(p["served"] == 0 for p in probes)
