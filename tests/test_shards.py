"""Merging history shards (k6suite_lib/shards.py) into the one history the checkers judge.

Pure: the shards are a clean synthetic history (tests/histories.py) split as worker processes would
record it: each producer's sends in a shard of its own, numbered from op id 0 again, everything else in
the workload's own shard 0. The franz-go worker's JSON-lines shards are written here as the Go program
writes them (a metadata line, then every column of every row); the last test runs the program itself.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

import tests.histories as h
from k6suite_lib.checkers import AnomalyRules
from k6suite_lib.history import COLUMNS, to_frame
from k6suite_lib.shards import ShardError, merge, read
from k6suite_lib.workload import WorkloadConfig
from k6suite_lib.workload.workers import plan
from tests.conftest import assert_clean, port_base_for, verdicts_of

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


def write_jsonl_shard(path: Path, frame: pd.DataFrame, worker: int) -> Path:
    """A shard as the franz-go worker writes it: its metadata line, then every column but worker."""
    with path.open("w") as handle:
        handle.write(json.dumps({"k6suite": {"format_version": 2, "run_id": h.RUN, "worker": worker}}) + "\n")
        for row in frame.drop(columns="worker").to_dict("records"):
            handle.write(json.dumps({c: (v.item() if hasattr(v, "item") else v) for c, v in row.items()}) + "\n")
    return path


def franz_go_shards(tmp_path: Path, rows: list[dict]) -> list[tuple[pd.DataFrame, int]]:
    """Shard 0 as the workload keeps it; the producers' shards through JSON-lines files and shards.read."""
    own, *workers = split(rows)
    read_back = []
    for frame, worker in workers:
        shard, meta = read(write_jsonl_shard(tmp_path / f"shard-{worker}.jsonl", frame, worker))
        assert meta["worker"] == worker
        read_back.append((shard, worker))
    return [own, *read_back]


def test_franz_go_jsonl_shards_read_column_wise_and_merge_into_one_clean_history(tmp_path):
    rows = h.clean_rows(SPEC, random.Random(4))
    shards = franz_go_shards(tmp_path, rows)
    for frame, _ in shards[1:]:
        assert list(frame.columns) == list(COLUMNS)
        assert frame.dtypes.to_dict() == to_frame([]).dtypes.to_dict()
    merged = merge(shards)
    assert len(merged) == len(rows)
    assert merged.equals(merge(split(rows)))  # the same history as Parquet-backed shards give
    assert_clean(verdicts_of(merged, AnomalyRules(min_acked=SPEC.records)))


def test_a_franz_go_shard_that_lost_a_send_row_is_judged_corrupted(tmp_path):
    """A worker that failed to write one acknowledged send: its record is read, but no send names it,
    so the reads are of a record never sent (corrupted), and the checker says so."""
    rows = h.clean_rows(SPEC, random.Random(5))
    shards = franz_go_shards(tmp_path, rows)
    frame, worker = shards[1]
    shards[1] = (frame.iloc[1:], worker)
    verdicts = verdicts_of(merge(shards), AnomalyRules(min_acked=SPEC.records - 1))
    assert verdicts.loc["corrupted", "status"] == "FAIL", verdicts.to_string()


def test_a_jsonl_shard_without_a_metadata_line_is_rows_only(tmp_path):
    rows = h.clean_rows(SPEC, random.Random(6))
    path = write_jsonl_shard(tmp_path / "shard.jsonl", split(rows)[1][0], 1)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))
    frame, meta = read(path)
    assert meta == {} and len(frame) == len(split(rows)[1][0])


def test_franz_go_worker_processes_write_shards_that_read_back(tmp_path):
    """The Go program as two worker processes, against ports where nothing listens (no system needed):
    each makes its producers' clients, answers 'go' with its CLOCK_MONOTONIC, relays its outcomes and
    writes its rows into a JSON-lines shard that merges with the workload's own rows. Every send times out
    or is failed by the closing client (info either way, never fail or ok: franz-go cannot say the record
    reached no log), each from its own worker, none lost (the program waits for franz-go's last callbacks)."""
    import yaml

    from k6suite_lib.profiles import PROFILES_DIR, load_profile
    from k6suite_lib.workload import franzgo, run_workload

    franzgo.install(log=lambda _msg: None)
    raw = yaml.safe_load((PROFILES_DIR / "kafka.yaml").read_text())
    raw.update(name="nothing-listens", stack={**raw["stack"], "port_base": port_base_for(21600)})  # no stack there
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    config = WorkloadConfig(client="franz-go", producers=3, workers=2, records=6, delivery_timeout_s=1.0,
                            consumers=0, consumer_mode="none", readback=False, create_topic=False, topic="t",
                            partitions=2)
    result = run_workload(load_profile(tmp_path / "p.yaml"), config)
    sends = result.history[result.history["f"] == "send"]
    assert sorted(sends["type"]) == ["info"] * 6, sends[["producer", "seq", "worker", "error"]].to_string()
    assert sends.groupby("producer")["worker"].unique().map(list).to_dict() == {
        "producer-0": [1], "producer-1": [2], "producer-2": [1]}
    assert (sends["error"] != "").all()  # timed out, or failed as the client closed: both indeterminate
    assert (result.history["run_id"] == result.run_id).all()
    assert [w["producers"] for w in result.workers] == [["producer-0", "producer-2"], ["producer-1"]]
    for worker in result.workers:
        assert abs(worker["clock_offset_ns"]) <= worker["clock_bound_ns"], worker


def test_a_workers_bulk_relay_settles_the_workloads_tracker_as_its_own_acks_would():
    """The relay carries acknowledgements in bulk (seqs per producer, the latest time per partition); what
    the workload's waits read from its tracker must come out as if the sends had been made in-process."""
    from k6suite_lib.workload.context import Tracker
    from k6suite_lib.workload.workers import Relay

    acks = [(("producer-0", 0), 1, 100), (("producer-1", 0), 2, 50), (("producer-0", 1), 1, 90)]
    relay, own, workload = Relay(), Tracker(), Tracker()
    for ack in acks:
        relay.ack(*ack)
        own.ack(*ack)
    relay.done()
    own.done()
    message = json.loads(json.dumps(relay.take()))  # as it crosses the pipe: partitions become strings
    workload.settle(message["acked"], {int(p): ns for p, ns in message["last_ack_ns"].items()}, message["done"])
    assert (workload.acked, workload.last_ack_ns, workload.completed) == (own.acked, own.last_ack_ns, own.completed)
    assert relay.take() == {"acked": {}, "last_ack_ns": {}, "done": 0}


def test_a_cut_last_line_is_dropped_and_said(tmp_path):
    """A worker killed mid-write leaves its shard ending in part of a row: the rows before it are read,
    the cut line is dropped, and its length is kept in the shard's metadata."""
    rows = h.clean_rows(SPEC, random.Random(7))
    sends = split(rows)[1][0]
    path = write_jsonl_shard(tmp_path / "shard.jsonl", sends, 1)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"run_id":"r","op_id":2,"proc')
    frame, meta = read(path)
    assert meta["cut_line_bytes"] == 29 and meta["worker"] == 1
    assert frame.equals(read(tmp_path / "shard.jsonl")[0]) and len(frame) == len(sends)
    path.write_bytes(whole.rstrip(b"\n"))  # a whole last row without its newline is a row, not a cut
    frame, meta = read(path)
    assert "cut_line_bytes" not in meta and len(frame) == len(sends)


def _worker(tmp_path: Path, index: int, script: str):
    """A real process in a worker's place: it writes its shard as the script says and ends as it says."""
    import subprocess
    import sys
    import tempfile

    from k6suite_lib.workload.workers import Worker

    shard = tmp_path / f"shard-{index}.jsonl"
    stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - _feed closes it
    proc = subprocess.Popen([sys.executable, "-c", script, str(shard)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    return Worker(index, [index - 1], proc, shard, stderr)


def test_a_crashed_killed_or_unreadable_worker_is_a_harness_failure_not_a_judged_history(tmp_path):
    """A worker that exits non-zero with only its header written, one killed (SIGKILL, a real signal)
    after a cut row, one whose shard is not JSON, one that exited 0 after a cut row: their producers'
    sends are missing, so the workload must not return a history whose reads of their records look
    corrupted; it raises WorkerFailure naming each. A worker that exited 0 with a whole shard is no
    failure. Real processes (Python in the Go program's place: what is judged is what the workload makes
    of an exit status and a shard)."""
    import threading

    from k6suite_lib.profiles import load_profile
    from k6suite_lib.workload.orchestrator import workload_context
    from k6suite_lib.workload.workers import WorkerFailure, _feed, finish

    header = json.dumps({"k6suite": {"format_version": 2, "run_id": h.RUN, "worker": 1}})
    write = f"import os, sys, signal; open(sys.argv[1], 'w').write({header + chr(10)!r} + "
    row = write_jsonl_shard(tmp_path / "one.jsonl", split(h.clean_rows(SPEC, random.Random(8)))[1][0], 1)
    row = row.read_text().splitlines()[1] + "\n"
    scripts = {1: write + "''); sys.exit(2)",
               2: write + f"{row!r} + {row[:40]!r}); os.kill(os.getpid(), signal.SIGKILL)",
               3: "import sys; open(sys.argv[1], 'w').write('{not json\\n{}\\n')",
               4: write + f"{row!r})",
               5: write + f"{row!r} + {row[:10]!r})"}
    ctx = workload_context(load_profile("kafka"), WorkloadConfig(producers=5, workers=5))
    pool = [_worker(tmp_path, index, script) for index, script in scripts.items()]
    for worker in pool:
        worker.proc.stdin.close()
        worker.feeder = threading.Thread(target=_feed, args=(ctx, worker), daemon=True)
        worker.feeder.start()
    for worker in pool:  # as the workload joins its feeders before it finishes (a live one would be killed)
        worker.feeder.join(30)
    with pytest.raises(WorkerFailure) as failure:
        finish(pool)
    text = str(failure.value)
    assert text.startswith("the harness failed, not the system: "), text
    assert "worker 1 (producer-0) exited 2; its shard holds 0 rows" in text
    assert ("worker 2 (producer-1) was killed by SIGKILL; its shard holds 1 rows, after a cut last line "
            "(40 bytes, dropped)") in text
    assert "worker 3 (producer-2) exited 0 and left a shard that cannot be read" in text
    assert "worker 5 (producer-4) exited 0; its shard holds 1 rows, after a cut last line (10 bytes" in text
    assert "worker 4" not in text
    assert sorted(worker for _, worker in ctx.shards) == [1, 2, 4, 5]
    assert not any(worker.shard.exists() for worker in pool)
    finish([pool[3]])  # the whole one alone: nothing to raise


def test_a_killed_franz_go_worker_keeps_every_row_it_relayed(tmp_path):
    """The Go worker flushes its shard at each relay, before it relays: killed (SIGKILL) mid-run, its shard
    holds at least the send rows of every outcome the workload heard of, and the workload names it as the
    harness's failure. Nothing listens on the profile's ports (no system needed): sends time out."""
    import time

    import yaml

    from k6suite_lib.profiles import PROFILES_DIR, load_profile
    from k6suite_lib.workload import franzgo, workers
    from k6suite_lib.workload.orchestrator import workload_context

    franzgo.install(log=lambda _msg: None)
    raw = yaml.safe_load((PROFILES_DIR / "kafka.yaml").read_text())
    raw.update(name="nothing-listens", stack={**raw["stack"], "port_base": port_base_for(21600)})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    config = WorkloadConfig(client="franz-go", producers=1, workers=1, records=None, duration_s=60, rate=50,
                            delivery_timeout_s=1.0, consumers=0, consumer_mode="none", readback=False,
                            create_topic=False, topic="t", partitions=1)
    ctx = workload_context(load_profile(tmp_path / "p.yaml"), config)
    pool = workers.launch(ctx, "franz-go")
    workers.go(pool)
    deadline = time.monotonic() + 30
    while ctx.tracker.completed < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    relayed = ctx.tracker.completed
    pool[0].proc.kill()
    with pytest.raises(workers.WorkerFailure, match="worker 1 \\(producer-0\\) was killed by SIGKILL"):
        workers.finish(pool)
    ctx.stop_producers.set()
    [(frame, _)] = ctx.shards
    assert relayed >= 5 and (frame["f"] == "send").sum() >= relayed, (relayed, frame["f"].value_counts())
