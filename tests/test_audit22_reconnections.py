"""audit22 M4 and L1, audit23 L3: the reconnection checks name every client they could not judge (also one that
wrote no client-metrics row at all), and read each client's samples in time order (pure: planted histories, no
stack)."""

from __future__ import annotations

import pandas as pd

from k6suite_lib import history
from k6suite_lib.checkers import CheckSpec, compose
from k6suite_lib.history import View
from tests.test_checkers import run, steady

CHECKS = ({"requirement": "F5.1"}, {"requirement": "S7", "restarts": 3})


def test_a_client_first_sampled_after_the_fault_is_named_not_left_out():
    """M4 (the audit's demo): consumer-1's first sample comes after the fault (10 s) and it then makes 40
    connections; consumer-0 is quiet. Both checks said PASS naming consumer-0 only; now NOT TESTED, naming
    consumer-1. Sampled before the fault too, consumer-1 is judged (FAIL); both quiet and sampled: PASS.
    Mutation tried: the check ignoring unsampled clients (as before): PASS, this test fails."""
    t = steady()
    t.quiet_clients("producer-0")
    t.client_metrics(5, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(25, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(11, "consumer-1", 3, ["0@h:1"])
    t.client_metrics(25, "consumer-1", 43, ["0@h:1"], closed=40)
    for params in CHECKS:
        row = run(t, "reconnections", **params)
        assert row["status"] == "NOT TESTED", (params, row)
        assert "no usable client-metrics sample before the fault: consumer-1" in row["evidence"], row["evidence"]
        assert "consumer-0: 2 -> 2" in row["evidence"] and row["evidence"].count("not judged") == 1, row["evidence"]
    t.client_metrics(5, "consumer-1", 3, ["0@h:1"])
    for params in CHECKS:
        assert run(t, "reconnections", **params)["status"] == "FAIL", params
    quiet = steady()
    quiet.quiet_clients("producer-0")
    for client in ("consumer-0", "consumer-1"):
        quiet.client_metrics(5, client, 2, ["0@h:1"])
        quiet.client_metrics(25, client, 2, ["0@h:1"])
    for params in CHECKS:
        row = run(quiet, "reconnections", **params)
        assert row["status"] == "PASS" and "not judged" not in row["evidence"], (params, row)


def test_a_client_whose_samples_before_the_fault_failed_is_named():
    """A client whose every sample before the fault failed cannot be judged either: NOT TESTED naming it, its
    sampler's failure beside. Mutation tried: unsampled_clients counting a failed sample as usable: PASS, this
    test fails."""
    t = steady()
    t.quiet_clients("consumer-0")
    t.client_metrics(5, "producer-0", 2, ["0@h:1"])
    t.client_metrics(25, "producer-0", 2, ["0@h:1"])
    t.failed_client_metrics(5, "producer-1", "TimeoutError")
    t.client_metrics(25, "producer-1", 30, ["0@h:1"], closed=28)
    for params in CHECKS:
        row = run(t, "reconnections", **params)
        assert row["status"] == "NOT TESTED" and "before the fault: producer-1" in row["evidence"], row
        assert "1 of 6 client-metrics samples failed" in row["evidence"], row["evidence"]


def test_another_clients_storm_still_fails_beside_an_unjudged_client():
    """An unjudged client does not hide a judged client's excess: FAIL stays, naming the unjudged one."""
    t = steady()
    t.quiet_clients("producer-0")
    t.client_metrics(5, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(25, "consumer-0", 40, ["0@h:1"], closed=38)
    t.client_metrics(11, "consumer-1", 3, ["0@h:1"])
    for params in CHECKS:
        row = run(t, "reconnections", **params)
        assert row["status"] == "FAIL" and row["evidence"].count("before the fault: consumer-1") == 1, (params, row)


def test_a_client_that_wrote_no_sample_at_all_is_named():
    """audit23 L3: producer-0 sent every record but wrote no client-metrics row (a franz-go program that died
    before its first sample; a librdkafka client whose statistics were never served); consumer-1 wrote no row at
    all, while the saved config names two consumers sampled every second. Both checks said PASS naming
    neither (only clients with a client-metrics row could be named); now NOT TESTED naming both (without the
    metadata, as another tool may write it, producer-0 from its sends). Sampled like consumer-0, every client is
    judged: PASS. Mutations tried: the expected clients without the config's, and without the history's own
    clients: each leaves a PASS, this test fails."""
    t = steady()
    t.client_metrics(5, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(25, "consumer-0", 2, ["0@h:1"])
    meta = {"config": {"producers": 1, "consumers": 2, "consumer_mode": "group", "client_metrics_s": 1.0}}
    for params in CHECKS:
        for saved, named in (({}, "producer-0;"), (meta, "consumer-1, producer-0;")):  # without metadata: its rows
            row = compose(View(t.frame(), saved), [CheckSpec("reconnections", params)]).iloc[0]
            assert row["status"] == "NOT TESTED", (params, row.to_dict())
            assert f"before the fault: {named}" in row["evidence"], row["evidence"]
            assert "consumer-0: 2 -> 2" in row["evidence"], row["evidence"]
    for client in ("producer-0", "consumer-1"):
        t.client_metrics(5, client, 1, ["0@h:1"])
        t.client_metrics(25, client, 1, ["0@h:1"])
    for params in CHECKS:
        row = compose(View(t.frame(), meta), [CheckSpec("reconnections", params)]).iloc[0]
        assert row["status"] == "PASS" and "not judged" not in row["evidence"], (params, row.to_dict())


def test_the_config_names_no_consumer_when_the_workload_ran_none():
    """consumer_mode "none" runs no consumer whatever `consumers` says (workload/orchestrator), and a workload
    that sampled no client expects no sample: neither names a client that never ran; nor is the read-back, which
    is never sampled, a client."""
    t = steady()
    t.read_everything(32, "readback")
    for client in ("producer-0", "consumer-0"):
        t.client_metrics(5, client, 1, ["0@h:1"])
        t.client_metrics(25, client, 1, ["0@h:1"])
    for config in ({"producers": 1, "consumers": 3, "consumer_mode": "none", "client_metrics_s": 1.0},
                   {"producers": 4, "consumers": 4, "consumer_mode": "group", "client_metrics_s": 0.0}):
        row = compose(View(t.frame(), {"config": config}), [CheckSpec("reconnections", {"requirement": "F5.1"})])
        assert row.iloc[0]["status"] == "PASS", (config, row.iloc[0].to_dict())


def _unsorted(tmp_path) -> tuple[pd.DataFrame, str]:
    """producer-0 storms (2 -> 12 connections after the fault), its rows in process order: an earlier sample
    (12 s) written after the latest (25 s), as another tool may write them; the frame and a .jsonl of it."""
    t = steady()
    t.client_metrics(5, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(25, "consumer-0", 12, ["0@h:1"], closed=10)
    t.client_metrics(12, "consumer-0", 2, ["0@h:1"])
    frame = pd.DataFrame(t.rows)
    path = tmp_path / "unsorted.jsonl"
    frame.to_json(path, orient="records", lines=True)
    return frame, str(path)


def test_an_unsorted_history_is_judged_in_time_order(tmp_path):
    """L1 (the audit's demo): `k6suite check` on a .jsonl whose rows are not in completion order PASSed the
    storm (its last row, not its latest sample, was "after"). The history is loaded in completion order, and
    the measure reads samples by time even from a frame given unsorted: FAIL 10 both ways. Mutations tried:
    load without in_order: the first assertion fails; the measure without its sort: the second fails."""
    frame, path = _unsorted(tmp_path)
    loaded, _ = history.load(path)
    assert loaded["complete_ns"].is_monotonic_increasing
    row = compose(View(loaded), [CheckSpec("reconnections", {"requirement": "F5.1"})]).iloc[0]
    assert row["status"] == "FAIL" and row["measured"] == "10", row.to_dict()
    raw = history.validate(frame)
    row = compose(View(raw), [CheckSpec("reconnections", {"requirement": "F5.1"})]).iloc[0]
    assert row["status"] == "FAIL" and row["measured"] == "10", row.to_dict()
