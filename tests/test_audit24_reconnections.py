"""audit24 M1 and M3: the reconnection checks judge a client only from a usable sample taken after the last fault
window ended, and skip librdkafka samples whose statistics ran ahead of the broker state log they count from
(pure: planted histories, no stack)."""

from __future__ import annotations

from tests.test_checkers import run, steady

CHECKS = ({"requirement": "F5.1"}, {"requirement": "S7", "restarts": 3})


def test_a_client_that_stops_sampling_at_the_fault_is_named_not_judged():
    """M1 (the audit's plant on franz-go S7 run 20261205T004310-ed47): consumer-0's samples stop at the fault (10-20
    s), so its "after" was its last sample before it and both checks said PASS "consumer-0: 2 -> 2". Now NOT TESTED,
    naming it; a sample after the fault window (25 s) judges it. A failed sample after the window does not.
    Mutations tried: the check without unfinished_clients, and unfinished_clients counting any usable sample as
    after: PASS, this test fails."""
    t = steady()
    t.quiet_clients("producer-0")
    t.client_metrics(5, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(9, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(15, "consumer-0", 2, ["0@h:1"])  # inside the window: not after it
    t.failed_client_metrics(25, "consumer-0", "TimeoutError")
    for params in CHECKS:
        row = run(t, "reconnections", **params)
        assert row["status"] == "NOT TESTED", (params, row)
        assert "no usable client-metrics sample after the last fault window ended: consumer-0" in row["evidence"], row
        assert "producer-0: 1 -> 1" in row["evidence"], row["evidence"]
    t.client_metrics(25, "consumer-0", 40, ["0@h:1"], closed=38)
    for params in CHECKS:
        assert run(t, "reconnections", **params)["status"] == "FAIL", params


def test_quiet_clients_sampled_after_the_fault_pass():
    t = steady()
    t.quiet_clients("producer-0", "consumer-0")
    for params in CHECKS:
        row = run(t, "reconnections", **params)
        assert row["status"] == "PASS" and "not judged" not in row["evidence"], (params, row)


def test_a_storm_of_a_judged_client_fails_beside_one_that_stopped_sampling():
    t = steady()
    t.quiet_clients("producer-0")
    t.client_metrics(5, "consumer-0", 2, ["0@h:1"])
    t.client_metrics(25, "consumer-0", 40, ["0@h:1"], closed=38)
    t.client_metrics(5, "consumer-1", 2, ["0@h:1"])
    for params in CHECKS:
        row = run(t, "reconnections", **params)
        assert row["status"] == "FAIL" and "after the last fault window ended: consumer-1" in row["evidence"], row


def test_a_lagging_sample_is_skipped_for_the_nearest_caught_up_one():
    """M3: librdkafka serves a statistics document ahead of queued log lines. consumer-0's last sample before the
    fault (9 s) lags the UP lines of 5 connections that belong before it; counted as it was, they became reconnections
    after the fault (S7: beyond its allowance, a false FAIL), and a lagging final sample (28 s) under-counted a storm
    (a false PASS). The checks read the nearest sample that is not lagging: 5 s before (7 created, 7 open), 25 s
    after. Mutation tried: client_samples ignoring `lagging`: the first assertion FAILs and the second PASSes."""
    t = steady()
    t.quiet_clients("producer-0")
    t.client_metrics(5, "consumer-0", 7, ["0@h:1"])
    t.client_metrics(9, "consumer-0", 2, ["0@h:1"], lagging=["127.0.0.1:22100/0"])
    t.client_metrics(25, "consumer-0", 7, ["0@h:1"], lagging=[])
    row = run(t, "reconnections", requirement="S7", restarts=3)
    assert row["status"] == "PASS" and "consumer-0: 7 -> 7 (7 open before)" in row["evidence"], row
    storm = steady()
    storm.quiet_clients("producer-0")
    storm.client_metrics(5, "consumer-0", 2, ["0@h:1"])
    storm.client_metrics(25, "consumer-0", 40, ["0@h:1"], closed=38)
    storm.client_metrics(28, "consumer-0", 3, ["0@h:1"], lagging=["GroupCoordinator"])
    for params in CHECKS:
        row = run(storm, "reconnections", **params)
        assert row["status"] == "FAIL" and "consumer-0: 2 -> 40" in row["evidence"], (params, row)


def test_a_client_whose_needed_samples_all_lag_is_named_not_judged():
    """M3: every sample of consumer-0 after the fault lags its log: its count is unknown, NOT TESTED naming it (and
    likewise when every sample before the fault lags). Mutation tried: as above, PASS."""
    for before, after in ((None, ["GroupCoordinator"]), (["GroupCoordinator"], None)):
        t = steady()
        t.quiet_clients("producer-0")
        t.client_metrics(5, "consumer-0", 2, ["0@h:1"], lagging=before)
        t.client_metrics(25, "consumer-0", 2, ["0@h:1"], lagging=after)
        for params in CHECKS:
            row = run(t, "reconnections", **params)
            assert row["status"] == "NOT TESTED" and "consumer-0" in row["evidence"].split("not judged")[1], row
            assert "lagged" in row["evidence"], row["evidence"]
