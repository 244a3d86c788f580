"""The embedded Apache Kafka on real JVMs (3 dedicated KRaft controllers, 3 brokers, as profiles/kafka.yaml):
start, serve, survive a killed leader without the quorum noticing more than a broker, restart on its own
data, take a broker-only node, and leave nothing behind.

One stack (conftest's `kafka_stack`, port base 23000) is shared by the stack tests of this module, in file order; the
last one stops it, and the fixture stops it by PID whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import pandas as pd
import pytest
from kafka import KafkaAdminClient

from k6suite_lib import clients, probes
from k6suite_lib.profiles import Profile
from k6suite_lib.stack import binaries
from k6suite_lib.stack.kafka import KafkaStack, busiest_leader, partition_leaders
from k6suite_lib.stack.process import process_state
from k6suite_lib.workload import WorkloadConfig, run_workload
from tests.conftest import KAFKA_PORT_BASE, assert_all_dead

PARTITIONS = 3
KILL_AT_S = 3.0
# the kill, up to ~11 s until the controller fences the node, then several seconds of acks again
WORKLOAD_S = 18.0
SERVED_AGAIN_LIMIT_S = 25.0
ISR_LIMIT_S = 30.0
ADMIN_TIMEOUT_MS = 5000


def admin_client(profile: Profile) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=list(profile.bootstrap_servers), request_timeout_ms=ADMIN_TIMEOUT_MS,
                            bootstrap_timeout_ms=ADMIN_TIMEOUT_MS)


def describe(profile: Profile, topic: str) -> list[dict]:
    """The topic's partitions (once every one has a leader), lowest index first."""
    with admin_client(profile) as admin:
        admin.wait_for_topics([topic], timeout_ms=10000)
        partitions = admin.describe_topics([topic])[0]["partitions"]
    return sorted(partitions, key=lambda p: p["partition_index"])


def acknowledged_and_read_back(history: pd.DataFrame) -> tuple[set, set, int]:
    """Identities (producer, seq) of acknowledged sends and of records the final read-back saw, and
    how many sends ended without an acknowledgement (read from the history format, docs/history-format.md)."""
    sends = history[history["f"] == "send"]
    acked = sends[sends["type"] == "ok"]
    read = history[(history["process"] == "readback") & (history["f"] == "poll") & (history["type"] == "ok")]
    identities = [set(zip(rows["producer"], rows["seq"], strict=True)) for rows in (acked, read)]
    return identities[0], identities[1], int((sends["type"] != "ok").sum())


def meta_properties(stack: KafkaStack, broker_id: int) -> dict[str, str]:
    lines = (stack.node_dir(broker_id) / "log" / "meta.properties").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_busiest_leader_breaks_ties_by_the_lowest_partition():
    assert busiest_leader({0: 1, 1: 2, 2: 2}) == 2
    assert busiest_leader({0: 0, 1: 1, 2: 2, 3: 0, 4: 2}) == 0
    assert busiest_leader({2: 5, 0: 4, 1: 5}) == 5
    described = [{"name": "t", "error_code": 0, "partitions": [
        {"partition_index": 0, "leader_id": -1}, {"partition_index": 1, "leader_id": 2}]},
        {"name": "other", "error_code": 0, "partitions": [{"partition_index": 0, "leader_id": 0}]}]
    assert partition_leaders(described, "t") == {1: 2}


def test_a_cluster_id_starting_with_a_dash_formats(tmp_path):
    """One start in 64 failed: a random cluster id beginning with "-" was read as an option by Kafka's
    storage tool ("argument --cluster-id/-t: expected one argument")."""
    from k6suite_lib.stack.layout import StackLayout

    binaries.install(systems=["kafka"], log=lambda _msg: None)
    stack = KafkaStack(StackLayout(port_base=KAFKA_PORT_BASE, brokers=1, outputs=tmp_path), log=lambda _msg: None)
    stack._format(0, "-ceYGMcjSdOssU7jjc2Qaw")
    assert stack.cluster_id() == "-ceYGMcjSdOssU7jjc2Qaw"


def test_combined_mode_stays_a_variant_and_dedicated_controllers_are_no_brokers(tmp_path):
    """controllers: 0 gives the combined nodes (each broker a voter, with the shortened quorum timeouts); with
    dedicated controllers the brokers are broker-only and the controllers keep Kafka's quorum defaults."""
    from k6suite_lib.stack.layout import StackLayout

    combined = KafkaStack(StackLayout(port_base=KAFKA_PORT_BASE, outputs=tmp_path), log=lambda _msg: None)
    node = combined.node_properties(0)
    assert node["process.roles"] == "broker,controller"
    assert node["controller.quorum.voters"].startswith(f"0@127.0.0.1:{KAFKA_PORT_BASE + 120},")
    assert node["controller.quorum.election.timeout.ms"] == "500"
    dedicated = KafkaStack(StackLayout(port_base=KAFKA_PORT_BASE, controllers=3, outputs=tmp_path),
                           log=lambda _msg: None)
    broker, controller = dedicated.node_properties(0), dedicated.node_properties(10)
    assert broker["process.roles"] == "broker" and "CONTROLLER" not in broker["listeners"]
    assert controller["process.roles"] == "controller"
    assert controller["listeners"] == f"CONTROLLER://127.0.0.1:{KAFKA_PORT_BASE + 120}"
    assert broker["controller.quorum.voters"] == controller["controller.quorum.voters"] == ",".join(
        f"{10 + i}@127.0.0.1:{KAFKA_PORT_BASE + 120 + i}" for i in range(3))
    assert "controller.quorum.election.timeout.ms" not in controller
    assert broker["broker.session.timeout.ms"] == controller["broker.session.timeout.ms"] == "2000"


@pytest.mark.stack
def test_three_nodes_start_report_healthy_and_serve(kafka_stack, outputs_dir):
    stack, profile = kafka_stack
    status = subprocess.run([sys.executable, "-m", "k6suite_lib.cli", "stack", "status", "--profile", profile.source],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "K6SUITE_OUTPUTS": str(outputs_dir)})
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("broker-0", "broker-1", "broker-2", "controller-10", "controller-11", "controller-12"):
        assert name in status.stdout
    assert stack.status()["healthy"].all(), stack.status().to_string()
    assert stack.broker_ids == [0, 1, 2]  # faults act on these; the controllers are not brokers
    assert "process.roles=controller\n" in (stack.node_dir(10) / "server.properties").read_text()
    assert "process.roles=broker\n" in (stack.node_dir(0) / "server.properties").read_text()
    listed = probes.metadata_brokers(probes.metadata(profile.bootstrap_servers[0], topics=[]))
    assert sorted(listed["address"]) == sorted(profile.bootstrap_servers)
    assert meta_properties(stack, 0)["cluster.id"] == meta_properties(stack, 10)["cluster.id"]

    result = run_workload(profile, WorkloadConfig(records=20, consumers=0, consumer_mode="none",
                                                  readback_timeout_s=20, label="kafka-round-trip"))
    acked, read, unacked = acknowledged_and_read_back(result.history)
    assert (len(acked), unacked) == (20, 0)
    assert acked <= read


@pytest.mark.stack
def test_killed_busiest_leader_is_dead_writes_resume_and_it_restarts_on_its_own_data(kafka_stack):
    stack, profile = kafka_stack
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    clients.create_topic(profile, topic, PARTITIONS)
    leaders = {p["partition_index"]: p["leader_id"] for p in describe(profile, topic)}
    victim = stack.fault_target(topic)
    counts = Counter(leaders.values())
    assert counts[victim] == max(counts.values()), (victim, leaders)
    victim_record = stack.record(f"broker-{victim}")
    with admin_client(profile) as admin:
        controller = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]["leader_id"]
    directory_id = meta_properties(stack, victim)["directory.id"]
    killed: dict[str, int] = {}

    def kill_victim(_recorder, stop) -> None:
        if not stop.wait(KILL_AT_S):
            killed["at_ns"] = time.monotonic_ns()
            stack.kill(victim)

    result = run_workload(profile, WorkloadConfig(
        records=None, duration_s=WORKLOAD_S, rate=60, partitions=PARTITIONS, consumers=0, consumer_mode="none",
        topic=topic, create_topic=False, delivery_timeout_s=40, readback_timeout_s=30,
        label="kafka-kill"), nemesis=kill_victim)

    assert "at_ns" in killed, "the workload ended before the kill"
    assert process_state(victim_record) == "dead"
    with admin_client(profile) as admin:  # the active controller is not the broker that died: no election
        assert admin.describe_metadata_quorum()["topics"][0]["partitions"][0]["leader_id"] == controller
    assert not stack.status().set_index("component").loc[f"broker-{victim}", "healthy"]
    acked, read, unacked = acknowledged_and_read_back(result.history)
    assert unacked == 0  # the idempotent producer waited out the stall; nothing timed out
    assert len(acked) > WORKLOAD_S * 30
    assert not acked - read, f"{len(acked - read)} acknowledged records missing from the read-back"
    sends = result.history[(result.history["f"] == "send") & (result.history["type"] == "ok")]
    for partition in range(PARTITIONS):
        after = sends[(sends["partition"] == partition) & (sends["invoke_ns"] > killed["at_ns"])]
        assert not after.empty, f"partition {partition}: no write sent after the kill was acknowledged"
        served_again_s = (after["complete_ns"].min() - killed["at_ns"]) / 1e9
        assert served_again_s < SERVED_AGAIN_LIMIT_S, f"partition {partition} served again after {served_again_s} s"

    stack.restart(victim)
    assert stack.record(f"broker-{victim}").pid != victim_record.pid
    assert stack.status()["healthy"].all(), stack.status().to_string()
    assert meta_properties(stack, victim)["directory.id"] == directory_id  # not formatted again
    deadline = time.monotonic() + ISR_LIMIT_S
    while any(len(p["isr_nodes"]) < 3 for p in describe(profile, topic)):  # it catches up from its own log
        assert time.monotonic() < deadline, f"broker {victim} not back in every ISR after {ISR_LIMIT_S:.0f} s"
        time.sleep(0.5)


@pytest.mark.stack
def test_every_writer_reads_its_own_acknowledged_write(kafka_stack):
    """Kafka keeps read-your-writes (after an acks=all ack the high watermark covers the record). The
    suite once reported 15 of 100 misses here: writers stopped waiting when ANOTHER writer's reader had
    read their record (a shared set), so they never read it themselves (11 of 500 over 5 runs of 5x20
    before the fix, 0 of 500 after). Ten writers make that race likely. Its writers are kafka-python whatever
    the profile's recording library, and its history says so, with the settings its producer ran with (it
    once named a librdkafka profile's library and so read as not idempotent)."""
    import dataclasses

    from k6suite_lib.checkers import CheckSpec, compose
    from k6suite_lib.history import View
    from k6suite_lib.workload import read_your_writes
    from k6suite_lib.workload.config import client_settings

    _, profile = kafka_stack
    librdkafka = dataclasses.replace(profile, client=dataclasses.replace(profile.client, library="librdkafka"))
    result = read_your_writes(librdkafka, writers=10, records_each=10, timeout_s=5)
    row = compose(View(result.history), [CheckSpec("own-reads")]).iloc[0]
    assert row["status"] == "PASS", row["evidence"]
    settings = client_settings(result.meta())
    assert settings["client"].startswith("kafka-python ") and settings["idempotent"] is True, settings


@pytest.mark.stack
def test_two_worker_processes_write_shards_that_merge_into_one_clean_history(kafka_stack):
    """Producers in two worker processes (librdkafka), a consumer group and the read-back in this one: the
    shards merge into one history, each producer's rows from its own worker, and the checkers judge it
    clean. Both processes read one CLOCK_MONOTONIC: the clock each worker read at 'go' lies within the
    round trip that carried it."""
    from k6suite_lib.checkers import CheckSpec
    from tests.conftest import assert_clean, verdicts_of

    _, profile = kafka_stack
    config = WorkloadConfig(client="librdkafka", producers=2, workers=2, consumers=2, consumer_mode="group",
                            partitions=PARTITIONS, records=300, await_consumers_s=20, label="workers")
    result = run_workload(profile, config)
    frame = result.history
    sends = frame[frame["f"] == "send"]
    assert (sends["type"] == "ok").sum() == 300, sends[sends["type"] != "ok"]["error"].head().tolist()
    assert sends.groupby("producer")["worker"].unique().map(list).to_dict() == {"producer-0": [1], "producer-1": [2]}
    assert set(frame.loc[frame["f"] != "send", "worker"]) >= {0}
    assert [w["worker"] for w in result.meta()["workers"]] == [1, 2]
    for worker in result.workers:
        assert abs(worker["clock_offset_ns"]) <= worker["clock_bound_ns"], worker
    assert frame.groupby("op_id")["worker"].nunique().max() == 1
    assert_clean(verdicts_of(frame, None, CheckSpec("group-ownership", {"partitions": PARTITIONS})))


@pytest.mark.stack
def test_two_franz_go_worker_processes_write_shards_that_merge_into_one_clean_history(kafka_stack):
    """franz-go producers in two worker processes of the Go program (franz-go's defaults: idempotent), each
    writing its rows straight into a JSON-lines shard, read back column-wise; a franz-go consumer and the
    read-back in this process. The shards merge into one history, each producer's rows from its own worker,
    and the checkers judge it clean; each worker's clock at 'go' lies within the round trip that carried it."""
    from tests.conftest import assert_clean, verdicts_of

    _, profile = kafka_stack
    config = WorkloadConfig(client="franz-go", producers=2, workers=2, consumers=1, partitions=PARTITIONS,
                            records=300, label="franzgo-workers")
    result = run_workload(profile, config)
    frame = result.history
    sends = frame[frame["f"] == "send"]
    assert (sends["type"] == "ok").sum() == 300, sends[sends["type"] != "ok"]["error"].head().tolist()
    assert sends.groupby("producer")["worker"].unique().map(list).to_dict() == {"producer-0": [1], "producer-1": [2]}
    assert set(frame.loc[frame["f"] == "poll", "worker"]) == {0}
    assert result.meta()["client"] == "franz-go" and not result.notes, result.notes
    for worker in result.workers:
        assert abs(worker["clock_offset_ns"]) <= worker["clock_bound_ns"], worker
    assert frame.groupby("op_id")["worker"].nunique().max() == 1
    assert_clean(verdicts_of(frame))


@pytest.mark.stack
@pytest.mark.parametrize("client", ["librdkafka", "franz-go", "java"])
def test_clients_sample_their_own_connection_totals(kafka_stack, client):
    """With client_metrics_s set, every client writes client-metrics rows from its own counters
    (librdkafka: its statistics; franz-go: its connection hooks; kafka-clients: its connection metrics), also a
    producer in a worker process (the Java client runs in the workload's process only): totals that never fall,
    every connection counted once it came up. librdkafka lists the brokers of its metadata; franz-go and
    kafka-clients expose none. Before, only kafka-python wrote these rows, and S6's and S7's reconnection checks
    were NOT TESTED for the other clients."""
    import json

    _, profile = kafka_stack
    workers = 0 if client == "java" else 1
    config = WorkloadConfig(client=client, producers=1, workers=workers, consumers=1, partitions=PARTITIONS,
                            records=150, rate=100, client_metrics_s=0.25, label=f"metrics-{client}")
    frame = run_workload(profile, config).history
    samples = frame[frame["f"] == "client-metrics"]
    assert set(samples["type"]) == {"ok"}, samples["error"].head().tolist()
    assert samples.groupby("process")["worker"].unique().map(list).to_dict() == {"consumer-0": [0],
                                                                                 "producer-0": [workers]}
    attempts = "kafka-clients-close-total" if client == "java" else "connection-attempts-total"  # see docs/clients.md
    for process, rows in samples.groupby("process"):
        details = [json.loads(detail) for detail in rows.sort_values("complete_ns")["detail"]]
        assert len(details) >= 2, (process, details)
        for total in ("connection-creation-total", "connection-close-total", attempts):
            counts = [d[total] for d in details]
            assert counts == sorted(counts), (process, total, counts)
        assert details[-1]["connection-creation-total"] >= 1, details[-1]
        if client != "java":
            assert details[-1]["connection-creation-total"] <= details[-1]["connection-attempts-total"], details[-1]
        brokers = {tuple(d.get("brokers", ())) for d in details}
        assert brokers == ({tuple(f"{i}@{server}" for i, server in enumerate(profile.bootstrap_servers))}
                           if client == "librdkafka" else {()}), brokers


@pytest.mark.stack
@pytest.mark.parametrize(("idempotence", "mode"), [(None, "group"), (False, "assign")])
def test_java_client_produces_consumes_and_reads_back_clean(kafka_stack, idempotence, mode):
    """The Java client (kafka-clients 4.1.1, clients/java) on Apache Kafka: its default, idempotent producer and a
    non-idempotent one, a group consumer and directly assigned ones; every send acknowledged, every record read
    live and read back, the history judged clean, the client's options in its metadata."""
    from k6suite_lib.workload import javaclient
    from tests.conftest import assert_clean, verdicts_of

    _, profile = kafka_stack
    # producers wait for the consumers' first polls: a bound, not a duration (four JVMs starting on a loaded
    # 2-core machine took over 15 s at a load average of 40: "only 0 of 2 consumers had polled after 15 s")
    config = WorkloadConfig(client="java", idempotence=idempotence, producers=2, consumers=2, partitions=PARTITIONS,
                            consumer_mode=mode, records=300, await_consumers_s=60, label=f"java-{mode}")
    result = run_workload(profile, config)
    frame, meta = result.history, result.meta()
    sends = frame[frame["f"] == "send"]
    assert (sends["type"] == "ok").sum() == 300, sends[sends["type"] != "ok"]["error"].head().tolist()
    live = frame[(frame["f"] == "poll") & frame["process"].str.startswith("consumer") & (frame["type"] == "ok")]
    assert live[["producer", "seq"]].drop_duplicates().shape[0] == 300
    assert (mode == "group") == (not frame[(frame["f"] == "commit") & (frame["type"] == "ok")].empty)
    assert meta["client"] == "java" and meta["idempotent"] is (idempotence is None) and not result.notes, result.notes
    assert meta["client_options"] == javaclient.producer_options(profile.client.request_timeout_ms,
                                                                 config.delivery_timeout_s)
    assert_clean(verdicts_of(frame))


@pytest.mark.stack
def test_added_broker_is_a_broker_only_node_of_the_same_cluster(kafka_stack):
    stack, profile = kafka_stack
    new_id = stack.add_broker()
    assert new_id == 3
    assert "process.roles=broker\n" in (stack.node_dir(new_id) / "server.properties").read_text()
    assert meta_properties(stack, new_id)["cluster.id"] == meta_properties(stack, 0)["cluster.id"]
    listed = probes.metadata_brokers(probes.metadata(profile.bootstrap_servers[0], topics=[]))
    assert sorted(listed["node_id"]) == [0, 1, 2, 3]
    with admin_client(profile) as admin:
        quorum = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]
    assert sorted(v["replica_id"] for v in quorum["current_voters"]) == [10, 11, 12]
    assert sorted(o["replica_id"] for o in quorum["observers"]) == [0, 1, 2, 3]
    assert stack.status()["healthy"].all(), stack.status().to_string()


@pytest.mark.stack
def test_down_stops_every_node(kafka_stack):
    stack, _ = kafka_stack
    records = list(stack.records.values())
    ended = stack.down()
    assert set(ended) == {r.name for r in records}
    assert_all_dead(records)
    assert stack.records == {}
