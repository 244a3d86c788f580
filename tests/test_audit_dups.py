"""Audit findings 2, 6 and 7: planted histories the checks judged wrongly before (each test names
its finding), judged right now. Pure checkers only: no stack."""

from __future__ import annotations

import random
from types import SimpleNamespace

from k6suite_lib.checkers import CheckSpec, compose
from k6suite_lib.history import View
from k6suite_lib.scenarios import chaos
from k6suite_lib.workload import WorkloadConfig
from tests import histories as h
from tests.histories import Timeline
from tests.test_checkers import run


# ----------------------------------------------------------------------------- finding 2
def _chaos_anomalies(idempotent: bool) -> CheckSpec:
    """The anomalies check every fault scenario composes, for a producer with or without idempotence."""
    config = WorkloadConfig(client="kafka-python", idempotence=idempotent, max_in_flight=1)
    specs = chaos.fault_checks(SimpleNamespace(profile=None), config, SimpleNamespace(steps=[]))
    return next(s for s in specs if s.name == "anomalies")


def _duplicate(rows: list[dict], spec: CheckSpec) -> dict:
    return compose(View(h.frame(rows)), [spec]).set_index("check").loc["duplicate"]


def _retry(send: dict, partition: int, after_ns: int = 500) -> dict:
    t = send["invoke_ns"] + after_ns
    return {"run_id": h.RUN, "op_id": 10_000, "process": send["producer"], "f": "retry", "type": "info",
            "invoke_ns": t, "complete_ns": t, "wall_ns": t, "topic": h.TOPIC, "partition": partition,
            "producer": send["producer"], "error": "WARNING kafka.producer.sender: retrying"}


def test_audit_2_duplicate_without_retry_fails_under_faults():
    """A record the system replays at a new offset (a failover, say) with no retry of its producer:
    the fault scenarios allowed it for every non-idempotent producer; now it needs its retry."""
    rows, chosen = h.plant_duplicate(h.clean_rows(h.Spec(1, 2, 20, 1), random.Random(3)), 1, random.Random(4))
    send = next(r for r in rows if r["f"] == "send" and f"{r['producer']}#{r['seq']}" in chosen)
    spec = _chaos_anomalies(idempotent=False)
    assert "duplicate" not in spec.params["allowed"] and spec.params["retried_duplicates"] is True
    row = _duplicate(rows, spec)
    assert row["status"] == "FAIL" and str(row["measured"]) == "1", row
    retried = _duplicate([*rows, _retry(send, send["partition"])], spec)
    assert retried["status"] == "ALLOWED" and "explained by their producer's own retry" in retried["evidence"]
    assert _duplicate([*rows, _retry(send, send["partition"])], _chaos_anomalies(idempotent=True))["status"] == "FAIL"


def test_audit_2_copy_on_another_partition_not_explained():
    """A record acknowledged at p0 and read again at p1, with its producer's retry on p0 while the
    send was outstanding: a retry resends to the partition it was sent to, so it explains no copy
    on p1. Also for a send whose outcome is unknown (no partition recorded): copies on p0 and p1."""
    rows = h.clean_rows(h.Spec(1, 2, 20, 1), random.Random(3))
    send = next(r for r in rows if r["f"] == "send" and r["partition"] == 0)
    top = max(r["offset"] for r in rows if r["f"] == "send" and r["partition"] == 1)
    copy = {**send, "process": "consumer-0", "f": "poll", "op_id": 9_999, "partition": 1, "offset": top + 1,
            "invoke_ns": 10**9, "complete_ns": 10**9, "session": 1, "record_run": h.RUN}
    spec = _chaos_anomalies(idempotent=False)
    row = _duplicate([*rows, copy, _retry(send, 0)], spec)
    assert row["status"] == "FAIL" and "p0@" in row["evidence"] and f"p1@{top + 1}" in row["evidence"], row

    # the same send timed out: its row names no partition; the live consumer read it at p0 and at p1
    unknown = [{**r, "type": "info", "partition": -1, "offset": -1} if r is send else r for r in rows]
    assert _duplicate([*unknown, copy, _retry(send, 0)], spec)["status"] == "FAIL"
    # still explained where both copies are on the retried partition
    same = {**copy, "partition": 0, "offset": max(r["offset"] for r in rows if r["f"] == "send"
                                                  and r["partition"] == 0) + 1}
    assert _duplicate([*unknown, same, _retry(send, 0)], spec)["status"] == "ALLOWED"
    assert _duplicate([*rows, same, _retry(send, 0)], spec)["status"] == "ALLOWED"


# ----------------------------------------------------------------------------- finding 6
def _killed(served: dict) -> Timeline:
    t = Timeline()
    t.sends(0, 30, 10)
    t.fault(10, 20, served=served)
    t.read_everything(31)
    return t


def test_audit_6_idle_connection_is_not_traffic():
    """KafScale's connections come from the kernel's socket table: a pooled idle proxy connection to
    a broker that took no produce request carried none of the workload."""
    for idle in ({"connections": 1, "produce_rps": 0.0}, {"connections": 4, "produce_rps": 0.0, "leads": []}):
        row = run(_killed(idle), "faults-applied", rows=2)
        assert row["status"] == "NOT TESTED" and "no target carried" in row["evidence"], row
    for busy in ({"connections": 0, "produce_rps": 3.0}, {"connections": 0, "produce_rps": 0.0, "leads": [1]},
                 {"connections": 2}):  # connections alone decide only where nothing better is known
        row = run(_killed(busy), "faults-applied", rows=2)
        assert row["status"] == "PASS" and "just before" in row["evidence"], row


# ----------------------------------------------------------------------------- finding 7
def _skipped(reached_end: bool) -> Timeline:
    """Consumers read every record but one acknowledged before the outage, stopped 8 s after it."""
    t = Timeline()
    t.sends(0, 30, 10)
    t.fault(10, 20, "storage-outage")
    sends = [r for r in t.rows if r["f"] == "send"]
    for send in sends:
        if send["seq"] != 50:
            t.poll(22, send=send)
    t.phase(28, "consumers-stop", unseen=1, reached_end=reached_end)
    return t


def test_audit_7_catch_up_fails_when_consumers_reached_end():
    row = run(_skipped(reached_end=True), "catch-up", limit_s=30)
    assert row["status"] == "FAIL" and "1 of" in row["evidence"] and "passed over them" in row["evidence"], row
    # not at the end yet when the drain stopped them: they might still have read it
    assert run(_skipped(reached_end=False), "catch-up", limit_s=30)["status"] == "NOT TESTED"
