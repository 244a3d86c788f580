"""audit22 H2: a consumer group whose members all lose their session at a broker fault and never rejoin
(franz-go's "unable to join group session: EOF" forever) must FAIL S4's and S7's compositions. Before, it
passed every check: the read-back is its own client, acks-resume and recovery look at producers, and a group
that never rejoins writes only revoke rows, so "rebalances after the first fault" counts none. Planted
histories (no stack): the failure is the composition's, not a client's."""

from __future__ import annotations

import json
from types import SimpleNamespace

from k6suite_lib.checkers import compose
from k6suite_lib.history import View
from k6suite_lib.profiles import load_profile
from k6suite_lib.scenarios import s4_broker_chaos, s7_rolling
from k6suite_lib.workload import WorkloadConfig
from tests.histories import Timeline

CATCH_UP = "consumers catch up after the faults"


def _group_run(rejoins: bool) -> Timeline:
    """The audit's demo (/tmp/audit22/demo_group_dies.py): producers ack on through a fault at 10-12 s, both
    members read until it, lose their partitions at 10.5 s (OnPartitionsLost), then franz-go logs a failed
    rejoin every 0.5 s. rejoins: the group comes back at 13 s (the same members, the same partitions: no
    rebalance, as a coordinator failover on Kafka) and reads what was acknowledged since."""
    t = Timeline()
    t.sends(0, 30, 20, 2)
    t.group(0.5, "consumer-0", [0])
    t.group(0.5, "consumer-1", [1])
    t.fault(10, 12)
    sends = [r for r in t.rows if r["f"] == "send" and r["type"] == "ok"]
    for s in sends:
        if s["invoke_ns"] < 10e9 or rejoins:
            t.poll(max(s["invoke_ns"] / 1e9, 13.0 if s["invoke_ns"] >= 10e9 else 0) + 0.01,
                   f"consumer-{s['partition']}", send=s)
    for member, partition in (("consumer-0", 0), ("consumer-1", 1)):
        t.group(10.5, member, [partition], f="revoke")
    for k in range(6 if rejoins else 40):
        t._row(10.6 + k * 0.5, process="client-log", f="client-log", type="info",
               error="ERROR franz-go: group manage loop errored group=k6s-g err=unable to join group session: EOF",
               detail=json.dumps({"logger": "franz-go", "level": "ERROR"}))
    t.read_everything(31, process="readback")
    return t


def _compositions() -> dict[str, list]:
    sc = SimpleNamespace(profile=load_profile("kafka"))
    config = WorkloadConfig(records=None, duration_s=30, rate=20, producers=1, consumers=2, consumer_mode="group",
                            partitions=2, client="franz-go")
    schedule = SimpleNamespace(steps=[SimpleNamespace(fault=object(), action="start")])
    return {"S4": s4_broker_chaos.checks(sc, config, schedule), "S7": s7_rolling.checks(sc, config, schedule, 1)}


def test_a_group_that_never_rejoins_fails_s4_and_s7():
    """Mutation tried: catch-up left out of s4_broker_chaos.checks / s7_rolling.checks: no row FAILs."""
    view = View(_group_run(rejoins=False).frame())
    for scenario, specs in _compositions().items():
        table = compose(view, specs)
        failed = table[table["status"] == "FAIL"]
        assert list(failed["check"]) == [CATCH_UP], (scenario, table[["check", "status"]].to_string())
        assert "were never read by a live consumer" in failed.iloc[0]["evidence"]


def test_a_group_that_rejoins_passes_s4_and_s7():
    view = View(_group_run(rejoins=True).frame())
    for scenario, specs in _compositions().items():
        table = compose(view, specs)
        assert not (table["status"] == "FAIL").any(), (scenario, table[["check", "status", "evidence"]].to_string())
        assert table.set_index("check").loc[CATCH_UP, "status"] == "PASS"


def _dead_group_drained(ack_during_fault: bool) -> Timeline:
    """audit23's demo (/tmp/audit23/demo_catchup_gaps.py) with the phase rows a real run writes: the group
    dies at the fault (10-12 s); producers stop 10.3 s after it ends, and the drain gives up on consumers
    that read nothing new for 10 s (orchestrator STALL_S), 20.5 s after the fault: inside catch-up's 30 s."""
    t = Timeline()
    if ack_during_fault:
        t.sends(0, 22.3, 20, 2)
    else:  # nothing acknowledged during the fault: everything owed from before it was read before it
        t.sends(0, 10, 20, 2)
        t.sends(12.05, 22.3, 20, 2)
    t.group(0.5, "consumer-0", [0])
    t.group(0.5, "consumer-1", [1])
    t.fault(10, 12)
    for s in [r for r in t.rows if r["f"] == "send" and r["type"] == "ok" and r["invoke_ns"] < 10e9]:
        t.poll(s["invoke_ns"] / 1e9 + 0.01, f"consumer-{s['partition']}", send=s)
    for member, partition in (("consumer-0", 0), ("consumer-1", 1)):
        t.group(10.5, member, [partition], f="revoke")
    t.phase(22.3, "producers-stop")
    t.phase(32.5, "consumers-stop", unseen=400, reached_end=False)
    t.read_everything(33, process="readback")
    return t


def test_a_dead_group_the_drain_gave_up_on_fails_catch_up_with_or_without_acks_during_the_fault():
    """audit23 H1: the drain stopped the silent consumers before the 30 s limit, which made catch-up NOT TESTED
    (a dead kafka-python or librdkafka group FAILed nothing); M1: with no ack during the fault window nothing
    was owed from before its end, so it PASSed. Mutations tried: dropping the quiet-consumers rule (NOT TESTED
    again), owing only records acknowledged before the last fault's end (PASS in the second case)."""
    for during in (True, False):
        view = View(_dead_group_drained(during).frame())
        for scenario, specs in _compositions().items():
            row = compose(view, specs).set_index("check").loc[CATCH_UP]
            assert row["status"] == "FAIL", (scenario, during, row["evidence"])
            assert "live consumers had read nothing for 22.5 s" in row["evidence"]


def test_consumers_still_reading_when_the_drain_stopped_them_are_not_judged():
    """The other side of the rule: the last live read just before the drain ended (consumers still making
    progress, stopped by its grace): records not read yet are NOT TESTED, not never read."""
    t = _dead_group_drained(True)
    late = [r for r in t.rows if r["f"] == "send" and r["type"] == "ok" and 10e9 <= r["invoke_ns"] < 11e9]
    for s in late:
        t.poll(32.0, "consumer-0", send=s)
    row = compose(View(t.frame()), _compositions()["S4"]).set_index("check").loc[CATCH_UP]
    assert row["status"] == "NOT TESTED" and "while they were still reading" in row["evidence"], row["evidence"]
