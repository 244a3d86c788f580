"""Merging history shards (k6suite_lib/shards.py) into the one history the checkers judge.

Pure: the shards are a clean synthetic history (tests/histories.py) split as worker processes would
record it: each producer's sends in a shard of its own, numbered from op id 0 again, everything else in
the workload's own shard 0.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest

import tests.histories as h
from k6suite_lib.checkers import AnomalyRules
from k6suite_lib.history import to_frame
from k6suite_lib.shards import ShardError, merge
from k6suite_lib.workload import WorkloadConfig
from k6suite_lib.workload.workers import plan
from tests.conftest import assert_clean, verdicts_of

SPEC = h.Spec(producers=2, partitions=3, records=60, consumers=1)


def split(rows: list[dict]) -> list[tuple[pd.DataFrame, int]]:
    """Shard 0: every row but sends; shard 1 + k: producer-k's sends, op ids renumbered from 0."""
    own = [r for r in rows if r["f"] != "send"]
    shards = [(to_frame(own), 0)]
    for k in range(SPEC.producers):
        sends = [{**r, "op_id": i} for i, r in enumerate(r for r in rows if r["f"] == "send"
                                                           and r["producer"] == f"producer-{k}")]
        shards.append((to_frame(sends), k + 1))
    return shards


def test_shards_merge_into_one_clean_history_in_time_order():
    rows = h.clean_rows(SPEC, random.Random(1))
    merged = merge(split(rows)[::-1])  # the order shards arrive in does not matter
    assert len(merged) == len(rows)
    assert merged["complete_ns"].is_monotonic_increasing
    assert merged["complete_ns"].tolist() == sorted(r["complete_ns"] for r in rows)
    # shard 1 and shard 2 interleave by time: producer-1's first send completed before producer-0's second
    sends = merged[merged["f"] == "send"]
    assert sends["worker"].head(4).tolist() != sorted(sends["worker"].head(4).tolist())
    assert set(sends["worker"]) == {1, 2} and set(merged[merged["f"] != "send"]["worker"]) == {0}
    # op ids stay unique per operation although every shard numbered its own from 0
    assert merged.groupby("op_id")["worker"].nunique().max() == 1
    assert merged["op_id"].nunique() == len({(r["op_id"]) for r in rows})
    assert_clean(verdicts_of(merged, AnomalyRules(min_acked=SPEC.records)))


def test_a_writer_in_two_shards_is_refused():
    """Two workers that named their producers alike would record two records per identity, and a read
    could not say which send it is: the merge refuses them rather than let a check judge them."""
    rows = h.clean_rows(SPEC, random.Random(2))
    shards = split(rows)
    frame, worker = shards[2]
    shards[2] = (frame.assign(producer=frame["producer"].replace("producer-1", "producer-0")), worker)
    with pytest.raises(ShardError, match="writer producer-0 recorded in shard 1 and in shard 2"):
        merge(shards)


def test_repeated_worker_ids_and_several_runs_are_refused():
    shards = split(h.clean_rows(SPEC, random.Random(3)))
    with pytest.raises(ShardError, match="worker ids repeat"):
        merge([shards[0], (shards[1][0], 0)])
    other = (shards[2][0].assign(run_id="another-run"), 2)
    with pytest.raises(ShardError, match="several runs"):
        merge([shards[0], shards[1], other])


def test_producers_are_spread_over_workers_and_a_worker_needs_a_producer():
    assert plan(5, 2) == [[0, 2, 4], [1, 3]]
    with pytest.raises(ValueError, match="workers must be 0"):
        WorkloadConfig(producers=2, workers=3)
