"""A real workload against embedded stacks (the baseline Apache Kafka where the harness itself is judged,
KafScale elsewhere): recorded, judged, saved, re-judged by the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from k6suite_lib import history
from k6suite_lib.checkers import AnomalyRules, CheckSpec
from k6suite_lib.checkers.measures import latency_summary
from k6suite_lib.history import View
from k6suite_lib.workload import WorkloadConfig, run_workload
from tests.conftest import assert_clean, verdicts_of

pytestmark = pytest.mark.stack


def test_concurrent_workload_on_the_baseline_is_clean(kafka_stack, tmp_path):
    """The harness judged on a system that keeps its promises (Apache Kafka): concurrent producers and
    consumers, the read-back and the CLI's re-check must all come out clean. On a one-broker KafScale
    v1.5.0 this failed about once in ten (an acknowledged offset its end offset never covered, the
    anomaly OBS-04 and OBS-12 record), which judged KafScale, not the harness."""
    _, profile = kafka_stack
    config = WorkloadConfig(producers=3, consumers=2, partitions=3, records=600, rate=400, await_consumers_s=30,
                            label="clean")
    result = run_workload(profile, config)
    rules = AnomalyRules(min_acked=600, max_unacked=0)
    assert_clean(verdicts_of(result.history, rules, CheckSpec("overlap")))
    # the read-back read every partition to the end offsets it recorded from metadata
    view = View(result.history)
    assert view.end_offsets == {0: 200, 1: 200, 2: 200}
    assert view.readback_positions == view.end_offsets
    assert view.readback_reads["code"].nunique() == 600
    # producers waited for both consumers' first poll, so produce and consume overlapped: live
    # consumers read records before the last send was acked
    sends = result.history[result.history["f"] == "send"]
    ready = result.history[(result.history["f"] == "phase")
                           & result.history["detail"].str.contains("consumers-ready", regex=False)]
    assert len(ready) == 1 and '"ready": 2' in ready["detail"].iloc[0]
    assert ready["complete_ns"].iloc[0] <= sends["invoke_ns"].min()
    live = result.history[(result.history["f"] == "poll") & (result.history["process"] != "readback")]
    assert live["complete_ns"].min() < sends["complete_ns"].max()
    latency = latency_summary(view)
    assert latency.loc["publish_ms", "count"] == 600
    assert latency.loc["publish_delay_ms", "count"] == 600  # open loop records its schedule

    checks = [CheckSpec("anomalies", rules.params()), CheckSpec("readback")]
    path = history.save(result.history, tmp_path / "history.parquet",
                        meta={**result.meta(), "checks": [c.to_json() for c in checks]})
    cli = subprocess.run([sys.executable, "-m", "k6suite_lib.cli", "check", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "PASS: 0 of" in cli.stdout


def test_kafscales_default_producer_gets_nothing_acknowledged_and_says_why(single_stack):
    """kafka-python's default producer is idempotent; KafScale v1.5.0 has no InitProducerId, so with the shipped
    profiles (no idempotence setting) nothing is acknowledged and the run FAILs naming the request: a finding,
    not a profile line switching the default off."""
    import dataclasses

    _, profile = single_stack
    shipped = dataclasses.replace(profile, client=dataclasses.replace(profile.client, idempotence=None))
    result = run_workload(shipped, WorkloadConfig(records=5, consumers=0, consumer_mode="none", label="default"))
    assert result.meta()["idempotent"] is True
    row = verdicts_of(result.history).loc["acknowledged sends"]
    assert row["status"] == "FAIL" and row["measured"] == "0"
    assert "InitProducerIdRequest" in row["evidence"], row["evidence"]


def test_cli_check_fails_a_history_with_a_lost_write(single_stack, tmp_path):
    _, profile = single_stack
    result = run_workload(profile, WorkloadConfig(records=30, consumers=1, label="tampered"))
    frame = result.history
    victim = frame[(frame["f"] == "send") & (frame["offset"] == 3)].iloc[0]
    tampered = frame[~((frame["f"] == "poll") & (frame["seq"] == victim["seq"]))]
    checks = [CheckSpec("anomalies", AnomalyRules().params()), CheckSpec("readback")]
    path = history.save(tampered, tmp_path / "tampered.jsonl", meta={**result.meta(),
                                                                      "checks": [c.to_json() for c in checks]})
    cli = subprocess.run([sys.executable, "-m", "k6suite_lib.cli", "check", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 1
    assert "lost-write" in cli.stdout and f"producer-0#{victim['seq']}" in cli.stdout
    # no override may excuse it
    refused = subprocess.run([sys.executable, "-m", "k6suite_lib.cli", "check", str(path), "--allow", "lost-write"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "lost-write can never be allowed" in refused.stderr


def test_unreachable_target_fails_quickly_with_the_reason(tmp_path):
    from k6suite_lib.profiles import load_profile
    from tests.conftest import write_profile

    profile = load_profile(write_profile(tmp_path, "nowhere", 19000, 1))  # no stack runs there
    result = run_workload(profile, WorkloadConfig(records=10, label="nowhere"))
    row = verdicts_of(result.history).loc["acknowledged sends"]
    assert row["status"] == "FAIL"
    assert "NoBrokersAvailable" in row["evidence"] or "KafkaTimeoutError" in row["evidence"], row["evidence"]
    assert result.duration_s < 120


def test_history_cap_stops_live_consumers_and_says_so(single_stack):
    _, profile = single_stack
    result = run_workload(profile, WorkloadConfig(records=300, consumers=2, max_history_rows=100,
                                                  label="capped"))
    assert any("stopped early" in note for note in result.notes)
    assert View(result.history).readback_reads["code"].nunique() == 300  # the read-back still judges everything


def test_cli_check_of_a_history_that_names_no_checker_judges_it_with_the_core_checks(tmp_path):
    """An empty composition printed "PASS: 0 of 0 checks failed" and exited 0; it is now completed
    with the core checks, as a run has them (issue 16, item 4b), so a lost write in it fails."""
    import random

    from tests import histories as h

    rows, _ = h.plant_lost_write(h.clean_rows(h.Spec(1, 1, 5, 0), random.Random(1)), 1, random.Random(2))
    path = history.save(h.frame(rows), tmp_path / "empty.jsonl", meta={"checks": []})
    cli = subprocess.run([sys.executable, "-m", "k6suite_lib.cli", "check", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 1 and "completed with anomalies, readback, storage" in cli.stderr
    assert "lost-write" in cli.stdout
