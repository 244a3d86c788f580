"""The recording clients (kafka-python, librdkafka, franz-go, the Java client) on a real stack, and each
client's error classes on planted histories.

Each real-stack test produces, consumes in a group and reads back with one client, and the checker
judges the history as it judges kafka-python's: the histories of every client share one format.
The stack is a one-broker Tansu (it starts in seconds, where Apache Kafka's JVMs take a minute on
this machine) and offers InitProducerId, so producers run both idempotent and not. Calibration on
Apache Kafka is a suite run (`k6suite run --profile kafka --clients ...`), see docs/clients.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError

import tests.histories as h
from k6suite_lib.checkers import AnomalyRules, CheckSpec
from k6suite_lib.history import Recorder
from k6suite_lib.profiles import Profile, load_profile
from k6suite_lib.workload import WorkloadConfig, franzgo, javaclient, rdkafka, run_workload
from k6suite_lib.workload.context import RunContext
from tests.conftest import assert_clean, port_base_for, stack_fixture, verdicts_of

CLIENTS_PORT_BASE = port_base_for(26800)
OBS_12 = "end offset >= highest acknowledged offset + 1"


@pytest.fixture(scope="module")
def tansu_one(tmp_path_factory, isolated_outputs) -> Iterator[tuple[object, Profile]]:
    yield from stack_fixture(tmp_path_factory, "test-clients", CLIENTS_PORT_BASE, 1, like="tansu")


@pytest.mark.parametrize(("client", "idempotence", "mode"), [
    ("librdkafka", None, "group"), ("librdkafka", True, "group"), ("kafka-python", None, "group"),
    ("librdkafka", None, "assign"),  # librdkafka wants a group.id even for direct assignment
    ("java", None, "group"), ("java", False, "assign"),
])
def test_client_produces_consumes_in_a_group_and_reads_back(tansu_one, client, idempotence, mode):
    _stack, profile = tansu_one
    _group_round_trip(profile, client, idempotence, mode)


def test_franz_go_on_tansu_is_refused_at_api_versions_and_the_history_says_so(tansu_one):
    """A finding, not a harness failure: Tansu v0.6.0 cannot parse franz-go's ApiVersions v4 request and
    drops the connection ("failed to fill whole buffer" in its log) instead of answering
    UNSUPPORTED_VERSION, as the protocol's downgrade asks (with ApiVersions capped at v3 the same
    program is served). Nothing is acknowledged: the history records every send as indeterminate and
    franz-go's own log lines name the broker closing the connection during api versions negotiation."""
    _stack, profile = tansu_one
    result = run_workload(profile, WorkloadConfig(client="franz-go", records=20, delivery_timeout_s=8,
                                                  consumers=0, consumer_mode="none", label="fg-tansu"))
    frame = result.history
    sends = frame[frame["f"] == "send"]
    assert len(sends) == 20 and set(sends["type"]) == {"info"}
    logged = frame[frame["f"] == "client-log"]["error"]
    assert logged.str.contains("api versions").any(), logged.head().tolist()


def _group_round_trip(profile: Profile, client: str, idempotence: bool | None, mode: str = "group") -> list[str]:
    # a group's drain gets S3 consumer-group's 45 s: Tansu holds a new group's first JoinGroup for half the
    # members' session timeout, 22.5 s with the libraries' 45 s (the drain ends once the group read to the end)
    config = WorkloadConfig(client=client, idempotence=idempotence, producers=2, consumers=2, partitions=4,
                            consumer_mode=mode, records=400, await_consumers_s=15, label=f"c-{client}",
                            consume_grace_s=45 if mode == "group" else 20)
    result = run_workload(profile, config)
    meta = result.meta()
    assert meta["client"] == client and client.split("-")[0] in meta["client_version"].lower()
    assert meta["idempotent"] == config.idempotent(profile)
    if idempotence is None and profile.client.idempotence is None:  # the library's own default
        assert meta["idempotent"] == (client != "librdkafka")
    frame = result.history
    sends = frame[frame["f"] == "send"]
    assert (sends["type"] == "ok").sum() == 400, sends[sends["type"] != "ok"]["error"].head().tolist()
    live = frame[(frame["f"] == "poll") & (frame["process"].str.startswith("consumer"))]
    assert live[["producer", "seq"]].drop_duplicates().shape[0] == 400
    assert not frame[(frame["f"] == "assign")].empty
    assert (mode == "group") == (not frame[frame["f"] == "commit"].empty)
    verdicts = verdicts_of(frame, AnomalyRules(min_acked=400))
    # Tansu's own defect (OBS-12): after batches of several records its ListOffsets answers an end below
    # offsets it acknowledged; every record is still read back. Any other check must pass.
    assert_clean(verdicts.drop(index=[OBS_12]) if profile.target_kind == "tansu" else verdicts)
    return result.notes


def test_librdkafka_error_classes():
    """A timed-out message may have been written (info); a refused or never-sent one was not (fail)."""
    assert rdkafka.outcome(KafkaError(KafkaError._MSG_TIMED_OUT)) == "info"
    assert rdkafka.outcome(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)) == "info"
    assert rdkafka.outcome(KafkaError(KafkaError._FATAL)) == "info"
    assert rdkafka.outcome(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)) == "fail"
    assert rdkafka.outcome(KafkaError(KafkaError._QUEUE_FULL)) == "fail"
    assert "retriable" in rdkafka.describe(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION, retriable=True))


def test_librdkafka_version_caps_become_a_fallback_release():
    assert rdkafka.version_settings({}) == {}
    assert rdkafka.version_settings({"Fetch": 11, "Produce": 8}) == {"api.version.request": False,
                                                                      "broker.version.fallback": "2.6.0"}
    with pytest.raises(ValueError):
        rdkafka.version_settings({"Fetch": 3})


@pytest.mark.parametrize("create_topic", [True, False])
def test_franz_go_asks_for_auto_creation_only_where_the_workload_does(create_topic):
    """S3 topic-auto-create produces to a topic nobody created, and its premise is a client that asks
    the system to create it: kafka-python and librdkafka producers ask by default, franz-go only when
    told (kgo.AllowAutoTopicCreation). Everywhere else franz-go keeps its default."""
    config = WorkloadConfig(records=3, create_topic=create_topic)
    ctx = RunContext(load_profile("kafka"), config, "r1", "t1", Recorder("r1"))
    assert franzgo.task(ctx, "producer", 0)["auto_create"] is (not create_topic)


def _timed_out(library_error: str) -> tuple[list[dict], list[dict]]:
    """A clean history plus one send the client timed out (info, never read), and the same send as if
    it had been acknowledged at the next offset of its partition (and never read)."""
    rows = h.clean_rows(h.Spec(1, 2, 20, 1), random.Random(5))
    last = max((r for r in rows if r["f"] == "send"), key=lambda r: r["offset"])
    t = max(r["complete_ns"] for r in rows) + 1000
    timed_out = {**last, "op_id": 20_000, "seq": 999, "type": "info", "partition": -1, "offset": -1,
                 "invoke_ns": t, "complete_ns": t + 10, "wall_ns": t, "error": library_error}
    acked = {**timed_out, "type": "ok", "partition": last["partition"], "offset": last["offset"] + 1, "error": ""}
    return [*rows, timed_out], [*rows, acked]


@pytest.mark.parametrize("error", [
    "KafkaError _MSG_TIMED_OUT (not retriable): Local: Message timed out",
    "*errors.errorString: records have timed out before they were able to be produced",
    "TimeoutException (retriable): Expiring 1 record(s) for t-0:4005 ms has passed since batch creation",
])
def test_planted_client_timeout_is_indeterminate_not_lost(error):
    """librdkafka's, franz-go's and kafka-clients' delivery timeouts are info rows: a timed-out send that never
    landed is no lost write; the same send acknowledged and never read fails the run."""
    indeterminate, acknowledged = _timed_out(error)
    assert_clean(verdicts_of(h.frame(indeterminate)))
    verdicts = verdicts_of(h.frame(acknowledged))
    assert (verdicts["status"] == "FAIL").any(), verdicts["status"].to_dict()


# What franz-go writes when its group session breaks (clients/franzgo pollRows, TestPlantedPollErrors): the rejoin
# after the coordinator's connection died is only franz-go's own log line; a refusal the rejoin cannot get past,
# a member's third failed rejoin since its last assignment, or a member with no session twice its session timeout
# after it lost it (audit22 H2) is a failed poll.
FRANZ_GO_REJOIN_LOG = ("ERROR franz-go: group manage loop errored group=k6s-g err=EOF consecutive_errors=1 "
                       "backoff=212ms")
FRANZ_GO_REFUSED_POLL = ("[0]: kerr GROUP_AUTHORIZATION_FAILED (not retriable): Group authorization failed.")
FRANZ_GO_REJOIN_FAILED_POLL = "[0]: *kgo.ErrGroupSession: unable to join group session: EOF"
FRANZ_GO_STALLED_POLL = "no group session 21.0 s after it was lost (1 notices, the last: *errors.errorString: EOF)"


@pytest.mark.parametrize(("row", "status"), [
    ({"process": "client-log", "f": "client-log", "error": FRANZ_GO_REJOIN_LOG}, "PASS"),
    ({"process": "consumer-0", "f": "poll", "error": FRANZ_GO_REFUSED_POLL}, "FAIL"),
    ({"process": "consumer-0", "f": "poll", "error": FRANZ_GO_REJOIN_FAILED_POLL}, "FAIL"),
    ({"process": "consumer-0", "f": "poll", "error": FRANZ_GO_STALLED_POLL}, "FAIL"),
])
def test_planted_franz_go_group_session_lost_is_an_error_only_when_the_rejoin_cannot_succeed(row, status):
    """A franz-go consumer whose coordinator's connection broke ("unable to join group session: EOF") rejoins by
    itself: the history holds franz-go's log line, handled by the client; a group that refuses the member for
    good, or a rejoin that keeps failing, leaves a failed poll, a client error beyond retry."""
    rows = h.clean_rows(h.Spec(1, 2, 20, 1), random.Random(5))
    t = max(r["complete_ns"] for r in rows) + 1000
    poll = next(r for r in rows if r["f"] == "poll")
    planted = {**poll, "op_id": 20_000, "type": "info", "partition": -1, "offset": -1, "producer": "", "seq": -1,
               "checksum": -1, "invoke_ns": t, "complete_ns": t + 10, "wall_ns": t, **row}
    verdict = verdicts_of(h.frame([*rows, planted]), None, CheckSpec("client-errors")).loc["client errors beyond retry"]
    assert verdict["status"] == status, verdict["evidence"]
    assert ("handled by the client: 1" in verdict["evidence"]) is (status == "PASS")


# librdkafka 2.16's debug line (context msg) for a Produce request whose batch goes back to its queue
FAILED_BATCH_LINE = ("[thrd:127.0.0.1:33001/1]: 127.0.0.1:33001/1: {topic} [{partition}]: MessageSet with 3 message(s) "
                     "(MsgId 245, BaseSeq -1) encountered error: Broker: Not leader for partition "
                     "(actions {actions}) [NOT LEADER]")


def _retry_rows(topic: str, partition: int, actions: str, level: int = 10, facility: str = "MSGSET") -> list[dict]:
    """What the librdkafka producer's logger records for one log call, as confluent-kafka makes it."""
    recorder = Recorder(h.RUN)
    ctx = RunContext(profile=None, config=None, run_id=h.RUN, topic=h.TOPIC, recorder=recorder)
    log = rdkafka.DebugLog(ctx, "producer-0", logging.getLogger("k6suite-test-null"))
    log.log(level, "%s [%s] %s", facility, "rdkafka#producer-1",
            FAILED_BATCH_LINE.format(topic=topic, partition=partition, actions=actions))
    return recorder.rows()


def test_librdkafka_failed_batch_line_becomes_a_retry_row_of_its_partition():
    """A batch librdkafka puts back on its queue (actions Retry or Refresh) is a retry of its partition, with
    the batch's size; a permanent failure, another topic, another facility or a line that
    is not debug output records nothing."""
    rows = _retry_rows(h.TOPIC, 2, "Refresh,MsgNotPersisted")
    assert [(r["f"], r["producer"], r["partition"]) for r in rows] == [("retry", "producer-0", 2)]
    assert json.loads(rows[0]["detail"]) == {"messages": 3, "actions": "Refresh,MsgNotPersisted"}
    assert "Not leader for partition" in rows[0]["error"]
    assert len(_retry_rows(h.TOPIC, 0, "Retry,MsgPossiblyPersisted")) == 1
    assert _retry_rows(h.TOPIC, 0, "Permanent,MsgNotPersisted") == []
    assert _retry_rows("other-topic", 0, "Retry") == []
    assert _retry_rows(h.TOPIC, 0, "Retry", facility="PRODUCE") == []
    assert _retry_rows(h.TOPIC, 0, "Retry", level=logging.WARNING) == []


def test_planted_librdkafka_failed_batch_explains_a_duplicate_on_its_partition_only():
    """A non-idempotent duplicate with librdkafka's failed-batch line for its partition while it was
    outstanding is ALLOWED; the same line for another partition, or none at all, leaves it a FAIL."""
    rows = h.clean_rows(h.Spec(1, 2, 20, 1), random.Random(3))
    rows, chosen = h.plant_duplicate(rows, 1, random.Random(4))
    send = next(r for r in rows if r["f"] == "send" and f"{r['producer']}#{r['seq']}" == next(iter(chosen)))
    rules = AnomalyRules(max_unacked=0, retried_duplicates=True)

    def judged(partition: int | None) -> str:
        planted = list(rows)
        if partition is not None:
            retry = _retry_rows(h.TOPIC, partition, "Refresh,MsgNotPersisted")[0]
            at = send["invoke_ns"] + 1  # the line came while the send was outstanding
            planted.append({**retry, "producer": send["producer"], "process": send["producer"], "op_id": 30_000,
                            "invoke_ns": at, "complete_ns": at, "wall_ns": at})
        return verdicts_of(h.frame(planted), rules).loc["duplicate", "status"]

    assert judged(send["partition"]) == "ALLOWED"
    assert judged(1 - send["partition"]) == "FAIL"
    assert judged(None) == "FAIL"


# kafka-clients 4.1.1's Sender warning for a batch it re-enqueues, as the Java program writes it (a client-log row)
JAVA_RETRY_LINE = ("WARN org.apache.kafka.clients.producer.internals.Sender: [Producer clientId={client}] Got error "
                   "produce response with correlation id 41 on topic-partition {topic}-{partition}, retrying "
                   "(2147483630 attempts left). Error: NOT_LEADER_OR_FOLLOWER")


def _java_rows(client: str, topic: str, partition: int, process: str = "client-log",
               message_bytes: int = 128) -> list[dict]:
    """What the Java producer-0's feed records for one client-log line of its program."""
    recorder = Recorder(h.RUN)
    ctx = RunContext(profile=None, config=WorkloadConfig(message_bytes=message_bytes), run_id=h.RUN, topic=h.TOPIC,
                     recorder=recorder)
    logged = {"run_id": h.RUN, "op_id": 7, "process": process, "f": "client-log", "type": "info", "invoke_ns": 1000,
              "complete_ns": 1000, "wall_ns": 1, "error": JAVA_RETRY_LINE.format(client=client, topic=topic,
                                                                                partition=partition)}
    javaclient.RetryFeed(ctx, "producer-0").line(json.dumps(logged))
    return recorder.rows()


def test_java_sender_retry_warning_becomes_a_retry_row_of_its_partition():
    """kafka-clients' "Got error produce response ... retrying" for the workload's topic, from this producer, is a
    retry of that partition beside its client-log row; another topic, another client id (the producer of another
    run or process) or another warning records the client-log row only."""
    own = f"{h.RUN}-producer-0"
    rows = _java_rows(own, h.TOPIC, 2)
    assert [(r["f"], r["process"]) for r in rows] == [("client-log", "client-log"), ("retry", "producer-0")]
    retry = rows[1]
    assert (retry["producer"], retry["topic"], retry["partition"], retry["complete_ns"]) == ("producer-0", h.TOPIC, 2,
                                                                                           1000)
    assert "NOT_LEADER_OR_FOLLOWER" in retry["error"]
    assert [r["f"] for r in _java_rows(own, f"{h.TOPIC}-other", 2)] == ["client-log"]
    assert [r["f"] for r in _java_rows(f"{h.RUN}-producer-1", h.TOPIC, 2)] == ["client-log"]
    split = _java_rows(own, h.TOPIC, 0)[0]["error"].replace("with correlation id 41", "in correlation id 41")
    assert javaclient.RETRYING.search(split.replace(", retrying", ", splitting and retrying")).group(3) == "0"


def test_planted_java_retry_explains_a_duplicate_on_its_partition_only():
    """A non-idempotent duplicate with the Java sender's retry for its partition while it was outstanding is
    ALLOWED; the same retry for another partition, or none, leaves it a FAIL."""
    rows = h.clean_rows(h.Spec(1, 2, 20, 1), random.Random(3))
    rows, chosen = h.plant_duplicate(rows, 1, random.Random(4))
    send = next(r for r in rows if r["f"] == "send" and f"{r['producer']}#{r['seq']}" == next(iter(chosen)))
    rules = AnomalyRules(max_unacked=0, retried_duplicates=True)

    def judged(partition: int | None) -> str:
        planted = list(rows)
        if partition is not None:
            retry = _java_rows(f"{h.RUN}-producer-0", h.TOPIC, partition)[1]
            at = send["invoke_ns"] + 1
            planted.append({**retry, "producer": send["producer"], "process": send["producer"], "op_id": 30_000,
                            "invoke_ns": at, "complete_ns": at, "wall_ns": at})
        return verdicts_of(h.frame(planted), rules).loc["duplicate", "status"]

    assert judged(send["partition"]) == "ALLOWED"
    assert judged(1 - send["partition"]) == "FAIL"
    assert judged(None) == "FAIL"


def test_one_java_retry_excuses_no_more_copies_than_its_batch_can_hold():
    """audit24 M2: the Sender's retry warning names no batch size, so the retry row carries the most records
    kafka-clients' 16384-byte batch.size can hold of this workload's records (4 of 4073-byte values; 120 of
    128-byte ones). 15 records outstanding together, each read twice, behind one such retry: 4 duplicates are
    the retry's and 11 the system's (FAIL); 4 duplicates behind it are ALLOWED.
    Mutation tried: the retry row without `messages` (unbounded, as before): 15 ALLOWED, this test fails."""
    from tests.test_retry_sizes import RULES, _pipelined

    assert (javaclient.batch_bound(4073), javaclient.batch_bound(128), javaclient.batch_bound(10 ** 6)) == (4, 120, 1)

    def judged(outstanding: int) -> dict:
        rows, at = _pipelined(outstanding)
        retry = _java_rows(f"{h.RUN}-producer-0", h.TOPIC, 0, message_bytes=4073)[1]
        planted = {**retry, "op_id": 40_000, "invoke_ns": at, "complete_ns": at, "wall_ns": at}
        return verdicts_of(h.frame([*rows, planted]), RULES).loc["duplicate"].to_dict()

    assert json.loads(_java_rows(f"{h.RUN}-producer-0", h.TOPIC, 0, message_bytes=4073)[1]["detail"]) == {
        "messages": 4}
    many = judged(15)
    assert many["status"] == "FAIL" and many["measured"] == "11", many
    few = judged(4)
    assert few["status"] == "ALLOWED" and few["measured"] == "4", few


def test_a_stray_line_on_a_programs_stdout_is_a_client_log_row_and_every_row_is_still_recorded():
    """audit24 H1: a line on the program's stdout that is no row (the JVM's own "[warning][pagesize] ..." before
    its first row, a torn line among them) is recorded as a client-log row quoting it, and the feed reads on:
    every send row after it is recorded, none lost behind a pipe nobody drains. A fake program (a Python one
    printing the lines): no JVM here can be made to print a warning between rows at will.
    Mutation tried: Feed.line parsing with json.loads unguarded: JSONDecodeError, no send recorded."""
    import sys

    sends = 3000  # ~450 KB: far more than a pipe holds
    program = ("import json\n"
               "print('[0.009s][warning][pagesize] UseLargePages disabled, no large pages configured')\n"
               f"for seq in range({sends}):\n"
               "    if seq == 1500:\n"
               "        print('{\"run_id\": \"torn')\n"
               "    print(json.dumps({'op_id': seq, 'process': 'producer-0', 'f': 'send', 'type': 'ok', 'producer':"
               " 'producer-0', 'seq': seq, 'partition': 0, 'offset': seq, 'invoke_ns': seq, 'complete_ns': seq,"
               " 'error': 'x' * 80}))\n")
    recorder = Recorder(h.RUN)
    ctx = RunContext(profile=None, config=WorkloadConfig(), run_id=h.RUN, topic=h.TOPIC, recorder=recorder)
    franzgo.run_program(ctx, "producer", 0, [sys.executable, "-c", program], "Java", javaclient.RetryFeed)
    rows = recorder.rows()
    assert [r["seq"] for r in rows if r["f"] == "send"] == list(range(sends))
    stray = [r["error"] for r in rows if r["f"] == "client-log"]
    assert stray == ["producer-0 wrote a line that is no row: [0.009s][warning][pagesize] UseLargePages disabled, "
                     "no large pages configured", 'producer-0 wrote a line that is no row: {"run_id": "torn'], stray
    assert len(ctx.tracker.acked) == sends and not ctx.notes, ctx.notes


def test_the_jvm_writes_its_own_warnings_to_stderr_not_among_the_rows():
    """audit24 H1: HotSpot's unified logging writes to stdout by default; with the suite's JVM options a warning
    the JVM itself prints (large pages asked for where none are configured) goes to stderr, stdout stays empty."""
    import subprocess

    javaclient.install(log=lambda _msg: None)
    argv = javaclient.command({})
    argv = [*argv[:1], "-XX:+UseLargePages", "-XX:LargePageSizeInBytes=1g", *argv[1:-1]]  # no task: usage, exit 2
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert "[warning]" in proc.stderr, proc.stderr


def test_java_send_never_queued_fails_and_failed_dials_are_no_connections():
    """The Java program itself (no stack: its bootstrap port refuses): a send whose metadata never came within
    max.block.ms failed inside send(), before kafka-clients queued it: fail (it reached no log), with
    kafka-clients' TimeoutException named retriable; the refused dials are client-log rows, and its
    client-metrics count no connection created or closed, where kafka-clients' own close total counts every
    refused dial (docs/clients.md)."""
    import socket
    import subprocess
    import tempfile

    javaclient.install(log=lambda _msg: None)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = {"role": "producer", "name": "producer-0", "run_id": h.RUN, "topic": h.TOPIC,
            "brokers": [f"127.0.0.1:{port}"], "request_timeout_ms": 1000, "delivery_timeout_s": 2.0,
            "idempotent": True, "index": 0, "records": 2, "rate": 0, "partitions": 2, "keyed": False,
            "message_bytes": 100, "max_outstanding": 10, "client_metrics_s": 0.5,
            "options": {**javaclient.producer_options(1000, 2.0), "max.block.ms": 1000}}  # not 60 s
    with tempfile.TemporaryFile(mode="w+") as out:  # stdin stays open: its end would stop the producer
        proc = subprocess.Popen(javaclient.command(task), stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.wait(60) == 0, proc.stderr.read()[-500:]
        finally:
            proc.kill()
            proc.stdin.close()
            proc.stderr.close()
        out.seek(0)
        lines = [json.loads(line) for line in out]
    assert lines[0] == {"event": "ready"}
    sends = [r for r in lines if r.get("f") == "send"]
    assert [(r["type"], r["seq"], r["partition"]) for r in sends] == [("fail", 0, 0), ("fail", 1, 1)], sends
    assert all(r["error"].startswith("TimeoutException (retriable): Topic") for r in sends), sends
    assert any("could not be established" in r["error"] for r in lines if r.get("f") == "client-log")
    last = json.loads([r for r in lines if r.get("f") == "client-metrics"][-1]["detail"])
    assert last["connection-creation-total"] == last["connection-close-total"] == 0, last
    assert last["kafka-clients-close-total"] >= 1, last


def test_java_counts_a_connection_once_apiversions_answered_not_one_abandoned_before():
    """audit24 M4: a listener that takes the TCP connection and never answers ApiVersions (a socket, no broker:
    what a restarting broker's port can do) makes kafka-clients count connections created at TCP connect
    (kept as kafka-clients-creation-total), and the Java client's rows none, as librdkafka's and kafka-python's
    (the stack test test_clients_sample_their_own_connection_totals sees them count on a real broker).
    Mutation tried: connection-creation-total from kafka-clients' TCP count again: >= 1, this test fails."""
    import socket
    import subprocess
    import tempfile

    javaclient.install(log=lambda _msg: None)
    with socket.socket() as mute, tempfile.TemporaryFile(mode="w+") as out:
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)  # the kernel completes the handshakes; nothing reads or answers
        task = {"role": "producer", "name": "producer-0", "run_id": h.RUN, "topic": h.TOPIC,
                "brokers": [f"127.0.0.1:{mute.getsockname()[1]}"], "request_timeout_ms": 1000,
                "delivery_timeout_s": 2.0, "idempotent": True, "index": 0, "records": 1, "rate": 0, "partitions": 1,
                "keyed": False, "message_bytes": 100, "max_outstanding": 10, "client_metrics_s": 0.5,
                "options": {**javaclient.producer_options(1000, 2.0), "max.block.ms": 3000}}
        proc = subprocess.Popen(javaclient.command(task), stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.wait(60) == 0
        finally:
            proc.kill()
            proc.stdin.close()
        out.seek(0)
        lines = [json.loads(line) for line in out]
    last = json.loads([r for r in lines if r.get("f") == "client-metrics"][-1]["detail"])
    assert last["kafka-clients-creation-total"] >= 1, last
    assert last["connection-creation-total"] == last["connection-close-total"] == 0, last


def test_java_consumer_takes_a_last_client_metrics_sample_at_stop():
    """audit24 L2: the Java consumer (the program itself, no stack: its bootstrap port refuses) samples its
    connections once more when it stops, as the producer does: with a 60 s interval and a stop after a second,
    its only client-metrics row is that last one, after its polls.
    Mutation tried: no sample after the poll loop: no client-metrics row, this test fails."""
    import socket
    import subprocess
    import time

    javaclient.install(log=lambda _msg: None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = {"role": "consumer", "name": "consumer-0", "run_id": h.RUN, "topic": h.TOPIC,
            "brokers": [f"127.0.0.1:{port}"], "request_timeout_ms": 1000, "lane": [0], "group": "",
            "client_metrics_s": 60.0, "options": {"request.timeout.ms": 1000}}
    proc = subprocess.Popen(javaclient.command(task), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        head = [json.loads(proc.stdout.readline()) for _ in range(2)]  # its assign row, then ready
        assert head[1] == {"event": "ready"}, head
        time.sleep(1)
        out, _ = proc.communicate("stop\n", timeout=60)
    finally:
        proc.kill()
    lines = [*head, *(json.loads(line) for line in out.splitlines())]
    samples = [r for r in lines if r.get("f") == "client-metrics"]
    assert len(samples) == 1 and samples[0]["type"] == "ok", samples
    polls = [r for r in lines if r.get("f") == "poll"]
    assert all(r["complete_ns"] <= samples[0]["complete_ns"] for r in polls), polls


@pytest.mark.parametrize(("client", "idempotence", "in_flight"), [
    ("librdkafka", None, 1_000_000), ("librdkafka", True, 5), ("franz-go", None, 5), ("franz-go", False, 1),
    ("java", None, 5), ("java", False, 5),
    ("kafka-python", None, 1), ("kafka-python", False, 1),
])
def test_reordering_rules_follow_the_recording_clients_own_in_flight_limit(client, idempotence, in_flight):
    """WorkloadConfig.max_in_flight configures kafka-python only: librdkafka (not idempotent, 1,000,000 requests
    in flight by default) may reorder where it resent the earlier send, so the fault and S3 compositions ask
    for that retry for it (never a wholesale allowance); an idempotent or single-request producer may not
    reorder at all. A planted reordering without a retry FAILs under every rule."""
    from types import SimpleNamespace

    from k6suite_lib.scenarios.chaos import fault_checks
    from k6suite_lib.scenarios.s3_correctness import strict_checks

    profile = load_profile("kafka")
    config = WorkloadConfig(client=client, idempotence=idempotence, records=10)
    assert config.in_flight(profile) == in_flight
    sc = SimpleNamespace(profile=profile)
    for specs in (fault_checks(sc, config, SimpleNamespace(steps=[])), strict_checks(sc, config, 10)):
        params = next(s.params for s in specs if s.name == "anomalies")
        may_reorder = in_flight > 1 and not config.idempotent(profile)
        assert params["retried_reordering"] == may_reorder and "nonmonotonic-send" not in params["allowed"]
        rows, _ = h.plant_nonmonotonic_send(h.clean_rows(h.Spec(1, 1, 20, 1), random.Random(5)), 1, random.Random(6))
        verdicts = verdicts_of(h.frame(rows), AnomalyRules(**params | {"min_acked": 1}))
        assert verdicts.loc["nonmonotonic-send", "status"] == "FAIL"


def test_matrix_says_which_client_a_finding_depends_on(tmp_path):
    """A system run with two clients: a check that fails with one and passes with the other is marked
    client-dependent (matrix.json and the page); one both clients agree on is not."""
    from k6suite_lib.matrix import build_matrix, matrix_html
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import _with_client, build_summary
    from tests.test_report import _decided, _question, _scenario

    s4 = _question("Is acknowledged data readable again after broker")
    summaries = []
    for client, status in (("kafka-python", "PASS"), ("librdkafka", "FAIL")):
        run_dir = tmp_path / client
        run_dir.mkdir()
        profile = _with_client(load_profile("kafka"), client, run_dir)
        assert profile.name == f"kafka+{client}" and profile.client.library == client
        scenario = _scenario("S4", _decided(s4, "kill", **{"lost-write": status}))
        summaries.append(build_summary([scenario], profile, "r1", "smoke", 1.8e9))
    matrix = build_matrix(summaries, "r1", "smoke", 1.8e9)
    assert [s["client"] for s in matrix["systems"]] == ["kafka-python", "librdkafka"]
    question = next(q for q in matrix["questions"] if q["question"] == s4.text)
    checks = {c["check"]: c for c in question["checks"]}
    assert checks["lost-write"]["client_dependent"] == {"kafka": {"kafka-python": "PASS", "librdkafka": "FAIL"}}
    assert checks["unseen"]["client_dependent"] == {}
    assert question["client_dependent"] == {"kafka": {"kafka-python": "YES", "librdkafka": "NO"}}
    assert "depends on the client: kafka-python YES, librdkafka NO" in matrix_html(matrix)


def _broker(nodeid: int, state: str, source: str = "learned") -> dict:
    """One broker of a librdkafka 2.16 statistics document (the fields Statistics reads)."""
    name = _handle(nodeid)
    return {name: {"name": name, "nodeid": nodeid, "nodename": name.split("/")[0], "source": source,
                   "state": state}}


def _handle(nodeid: int) -> str:
    return f"127.0.0.1:2210{nodeid}/{nodeid}" if nodeid >= 0 else "127.0.0.1:22100/bootstrap"


def _states(name: str, *states: str) -> list[tuple[str, str]]:
    """librdkafka 2.16's broker state lines (debug context broker) for a handle passing through states."""
    return [("STATE", f"[thrd:{name}]: {name}: Broker changed state {old} -> {new}")
            for old, new in itertools.pairwise(states)]


UP = ("INIT", "TRY_CONNECT", "CONNECT", "APIVERSION_QUERY", "UP")
# consumer-0's coordinator handle in S7 run 20261204T231922-f0ea (debug=broker,protocol,cgrp), its STATE
# lines verbatim: up, closed when the coordinator moved, then 3 TCP connections of which librdkafka closed
# two 0 ms after connecting, in APIVERSION_QUERY ("Closing connection due to nodename change"), and one
# whose ApiVersions was answered; twice it was moved before it dialed (TRY_CONNECT -> DOWN). librdkafka's
# statistics: connects 4, disconnects 3.
COORDINATOR_LOG = [("STATE", f"[thrd:GroupCoordinator]: GroupCoordinator: Broker changed state {change}")
                   for change in (
    "INIT -> TRY_CONNECT", "TRY_CONNECT -> CONNECT", "CONNECT -> APIVERSION_QUERY", "APIVERSION_QUERY -> UP",
    "UP -> DOWN", "DOWN -> INIT", "INIT -> TRY_CONNECT", "TRY_CONNECT -> DOWN", "DOWN -> INIT", "INIT -> TRY_CONNECT",
    "TRY_CONNECT -> CONNECT", "CONNECT -> APIVERSION_QUERY", "APIVERSION_QUERY -> DOWN", "DOWN -> INIT",
    "INIT -> TRY_CONNECT", "TRY_CONNECT -> DOWN", "DOWN -> INIT", "INIT -> TRY_CONNECT", "TRY_CONNECT -> CONNECT",
    "CONNECT -> APIVERSION_QUERY", "APIVERSION_QUERY -> DOWN", "DOWN -> INIT", "INIT -> TRY_CONNECT",
    "TRY_CONNECT -> CONNECT", "CONNECT -> APIVERSION_QUERY", "APIVERSION_QUERY -> UP")]
COORDINATOR = {"GroupCoordinator": {"name": "GroupCoordinator", "nodeid": -1, "nodename": "127.0.0.1:22100",
                                    "source": "logical", "state": "UP"}}


def _librdkafka_rows(*steps: tuple[list[tuple[str, str]], dict]) -> list[dict]:
    """The client-metrics rows of a librdkafka consumer that logs these debug lines (through its DebugLog,
    as confluent-kafka calls it) and then serves a statistics document, step by step."""
    recorder = Recorder(h.RUN)
    ctx = RunContext(profile=None, config=None, run_id=h.RUN, topic=h.TOPIC, recorder=recorder)
    statistics = rdkafka.Statistics(ctx, "consumer-0")
    log = rdkafka.DebugLog(ctx, "consumer-0", logging.getLogger("k6suite-test-null"), statistics.connections)
    for lines, brokers in steps:
        for facility, text in lines:
            log.log(logging.DEBUG, "%s [%s] %s", facility, "rdkafka#consumer-1", text)
        statistics.record(json.dumps({"type": "consumer", "brokers": brokers}))
    rows = recorder.rows()
    assert {(r["process"], r["f"]) for r in rows} == {("consumer-0", "client-metrics")}
    return rows


def _librdkafka_samples(*steps: tuple[list[tuple[str, str]], dict]) -> list[dict]:
    rows = _librdkafka_rows(*steps)
    assert {r["type"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    return [json.loads(r["detail"]) for r in rows]


def test_librdkafka_counts_a_connection_once_apiversions_answered_not_the_ones_it_abandoned_before():
    """The coordinator handle of S7 run 20261204T231922-f0ea: 4 TCP connections (4 attempts), 2 closed by
    librdkafka in APIVERSION_QUERY before ApiVersions answered. Counted as kafka-python counts connections:
    2 created, 1 closed, 2 abandoned; librdkafka's statistics (disconnects 3, up) would have given 4 created."""
    (sample,) = _librdkafka_samples((COORDINATOR_LOG, COORDINATOR))
    assert sample["per-broker"] == {"GroupCoordinator": [2, 1, 4]}
    assert (sample["connection-creation-total"], sample["connection-close-total"], sample["connection-attempts-total"],
            sample["connection-abandoned-total"]) == (2, 1, 4, 2)


def test_librdkafka_connection_counts_follow_handles_dropped_and_made_again():
    """The bootstrap handle, dropped once the brokers are learned, keeps its connection counted, closed;
    brokers lists the learned ones. A broker's handle dropped while its broker is out of the metadata (as
    in a restart; its last line is its DOWN) and made again under its name counts on from its old
    connections and attempts, where its statistics count from 0 again (6dfd693 kept the old handle's; before,
    the totals fell, S7 evidence run 20261204T221709-73f4). A re-authentication is the same connection; a
    failed dial is an attempt, no connection."""
    b0, b1, boot = _handle(0), _handle(1), _handle(-1)
    first, down, retrying, back, remade, gone, returned = _librdkafka_samples(
        (_states(boot, *UP) + _states(b0, *UP),
         {**_broker(-1, "UP", "configured"), **_broker(0, "UP"), **_broker(1, "INIT")}),
        (_states(boot, "UP", "DOWN") + _states(b0, "UP", "DOWN") + _states(b1, *UP),
         {**_broker(0, "DOWN"), **_broker(1, "UP")}),
        (_states(b0, "DOWN", "INIT", "TRY_CONNECT", "CONNECT", "DOWN") * 3,
         {**_broker(0, "CONNECT"), **_broker(1, "UP")}),
        (_states(b0, "DOWN", *UP) + _states(b1, "UP", "REAUTH", "AUTH_HANDSHAKE", "AUTH_REQ", "UP"),
         {**_broker(0, "UP"), **_broker(1, "UP")}),
        (_states(b0, "UP", "DOWN") + _states(b0, *UP), {**_broker(0, "UP"), **_broker(1, "UP")}),
        (_states(b1, "UP", "DOWN"), _broker(0, "UP")),
        (_states(b1, *UP), {**_broker(0, "UP"), **_broker(1, "UP")}))
    assert first == {"connection-creation-total": 2, "connection-close-total": 0, "connection-attempts-total": 2,
                     "connection-abandoned-total": 0, "brokers": ["0@127.0.0.1:22100", "1@127.0.0.1:22101"],
                     "per-broker": {b0: [1, 0, 1], boot: [1, 0, 1], b1: [0, 0, 0]}, "lagging": []}
    assert back["per-broker"][b0] == [2, 1, 5] and back["per-broker"][b1] == [1, 0, 1]
    assert remade["per-broker"][b0] == [3, 2, 6]
    assert [(s["connection-creation-total"], s["connection-close-total"], s["connection-attempts-total"])
            for s in (down, retrying, back, remade, gone, returned)] == \
        [(3, 2, 3), (3, 2, 6), (4, 2, 7), (5, 3, 8), (5, 4, 8), (6, 4, 9)]


def test_librdkafka_handle_renamed_in_place_keeps_its_connection():
    """A learned broker whose host changes is renamed in place (facility UPDATE, 'Name changed from A to B'):
    its open connection goes on under the new name, closed there once."""
    old, new = _handle(0), "127.0.0.1:22109/0"
    renamed = {new: {**_broker(0, "UP")[old], "name": new}}
    up, moved = _librdkafka_samples(
        (_states(old, *UP), _broker(0, "UP")),
        ([("UPDATE", f"[thrd:{old}]: {old}: Name changed from {old} to {new}"), *_states(new, "UP", "DOWN")],
         {new: {**renamed[new], "state": "DOWN"}}))
    assert (up["connection-creation-total"], moved["connection-creation-total"], moved["connection-close-total"]) == \
        (1, 1, 1)


def test_librdkafka_statistics_served_ahead_of_queued_log_lines_count_them_in_the_next_row():
    """librdkafka serves a statistics document ahead of log lines still queued (higher priority): a document
    showing a handle UP whose state lines are not served yet is an ok row without that connection (a guard
    that made it a fail row fired in 3 of 5 repeats of S7 run 20261205T010638-0ea6), marked lagging that
    handle (audit24 M3: a recorded fact, which the checks skip); the next row, after the lines, counts it,
    once, and does not lag. Mutation tried: totals() never lagging: this test fails."""
    up = _broker(0, "UP")
    lagging, caught_up, steady = _librdkafka_samples(([], up), (_states(_handle(0), *UP), up), ([], up))
    assert [s["connection-creation-total"] for s in (lagging, caught_up, steady)] == [0, 1, 1]
    assert [s["lagging"] for s in (lagging, caught_up, steady)] == [[_handle(0)], [], []]


def test_librdkafka_lagging_rows_are_not_read_by_the_reconnection_check():
    """audit24 M3, both ways through the real Statistics. (1) Before the fault, handle 0 bounced and the sample at 9 s
    has its DOWN line but not yet its UP line (its document shows it UP): read as it was, it held 4 open, not 5, an
    allowance of 4 + 3 for its 8 reconnections, a false FAIL; the check reads the caught-up sample at 5 s (5 open):
    PASS. (2) The one sample after the faults lags a storm's UP lines (3 of them served): read, it under-counted, a
    false PASS; now the client is named not judged. Mutation tried: the check reading lagging rows: (1) FAILs and
    (2) PASSes."""
    handles = [_handle(n) for n in range(5)]
    up = {name: state for n in range(5) for name, state in _broker(n, "UP").items()}
    bounce = _states(handles[0], "UP", "DOWN") + _states(handles[0], "DOWN", *UP[:-1])
    early, lag, after = _librdkafka_samples(
        ([line for name in handles for line in _states(name, *UP)], up), (bounce, up),
        (_states(handles[0], "APIVERSION_QUERY", "UP")
         + [line for name in (*handles, *handles[1:3]) for line in _states(name, "UP", "DOWN", *UP)], up))
    assert [(s["connection-creation-total"], s["connection-close-total"], s["lagging"]) for s in (early, lag, after)] \
        == [(5, 0, []), (5, 1, [handles[0]]), (13, 8, [])]
    row = _reconnections([(5, early), (9, lag), (25, after)], restarts=3)
    assert row["status"] == "PASS" and "consumer-0: 5 -> 13 (5 open before)" in row["evidence"], row["evidence"]
    storm = [line for _ in range(3) for line in _states(handles[0], "UP", "DOWN", *UP)]
    first, lagging = _librdkafka_samples((_states(handles[0], *UP), _broker(0, "UP")),
                                         (storm + _states(handles[0], "UP", "DOWN", *UP[:-1]), _broker(0, "UP")))
    assert lagging["lagging"] == [handles[0]] and lagging["connection-creation-total"] == 4
    row = _reconnections([(5, first), (25, lagging)], restarts=3)
    assert row["status"] == "NOT TESTED" and "after the last fault window ended: consumer-0" in row["evidence"], row


def test_librdkafka_counts_connections_only_when_the_workload_samples_clients():
    """Client metrics on: statistics at the interval and the broker state log (context broker, beside the
    producer's msg); off: neither, the producer's msg context alone."""
    profile = load_profile("kafka")
    for interval, debug, stats in ((0.5, "msg,broker", 500), (0, "msg", None)):
        ctx = RunContext(profile=profile, config=WorkloadConfig(client="librdkafka", client_metrics_s=interval),
                         run_id=h.RUN, topic=h.TOPIC, recorder=Recorder(h.RUN))
        settings = rdkafka.Statistics(ctx, "producer-0").settings(logging.getLogger("k6suite-test-null"), "msg")
        assert (settings.get("debug"), settings.get("statistics.interval.ms")) == (debug, stats)
        assert (settings["logger"].connections is not None) is bool(interval)


def _reconnections(samples: list[tuple[float, dict]], restarts: int) -> dict:
    """The reconnections verdict of a clean run (a fault at 10-20 s) with a client's samples planted."""
    from k6suite_lib.checkers import CheckSpec, compose
    from k6suite_lib.history import View

    t = h.Timeline()
    t.sends(0, 30, 10, 2)
    t.fault(10, 20)
    t.read_everything(31)
    t.quiet_clients("producer-0")
    for at, detail in samples:
        t._row(at, process="consumer-0", f="client-metrics", type="ok", detail=json.dumps(detail))
    params = {"requirement": "S7", "restarts": restarts} if restarts else {"requirement": "F5.1"}
    return compose(View(t.frame()), [CheckSpec("reconnections", params)]).iloc[0]


def test_planted_librdkafka_reconnect_storm_fails_and_one_reconnection_per_restart_passes():
    """Samples as librdkafka's client-metrics rows give them: a connection back once per bounce passes S7's
    allowance; a handle redialing again and again (each dial up, then dropped) is a storm; connections it
    abandoned before ApiVersions answered (the coordinator handle's in S7) are not reconnections."""
    b0, b1 = _handle(0), _handle(1)
    start = (_states(b0, *UP) + _states(b1, *UP), {**_broker(0, "UP"), **_broker(1, "UP")})
    bounce = _states(b0, "UP", "DOWN") + _states(b0, "DOWN", *UP)
    before = _librdkafka_samples(start)[0]
    clean = _librdkafka_samples(start, (bounce + _states(b1, "UP", "DOWN") + _states(b1, "DOWN", *UP),
                                        {**_broker(0, "UP"), **_broker(1, "UP")}))[-1]
    storm = _librdkafka_samples(start, (bounce * 6, {**_broker(0, "UP"), **_broker(1, "UP")}))[-1]
    unanswered = _states(b0, "DOWN", "INIT", "TRY_CONNECT", "CONNECT", "APIVERSION_QUERY", "DOWN")
    lines = bounce + _states(b0, "UP", "DOWN") + unanswered * 5 + _states(b0, "DOWN", *UP)
    abandoned = _librdkafka_samples(start, (lines, {**_broker(0, "UP"), **_broker(1, "UP")}))[-1]
    assert abandoned["connection-abandoned-total"] == 5 and abandoned["connection-creation-total"] == 4
    assert _reconnections([(5, before), (25, clean)], restarts=3)["status"] == "PASS"  # 2 new, failed dials aside
    assert _reconnections([(5, before), (25, abandoned)], restarts=3)["status"] == "PASS"  # 2 new, 5 abandoned
    row = _reconnections([(5, before), (25, storm)], restarts=3)
    assert row["status"] == "FAIL" and row["measured"].startswith("consumer-0: 1,"), row["evidence"]  # 6 new > 2 + 3
    assert _reconnections([(5, before), (25, before)], restarts=0)["status"] == "PASS"
    assert _reconnections([(5, before), (25, clean)], restarts=0)["status"] == "FAIL"


def test_planted_franz_go_reconnect_storm_fails_and_a_steady_client_passes():
    """Samples as the franz-go program writes them (its hooks' totals, no broker list): a steady client
    passes; a client whose five connections all came back at each of three restarts is a storm."""
    def sample(created: int, closed: int) -> dict:
        return {"connection-attempts-total": created + 2, "connection-close-total": closed,
                "connection-creation-total": created}

    assert _reconnections([(5, sample(5, 0)), (25, sample(5, 0))], restarts=0)["status"] == "PASS"
    assert _reconnections([(5, sample(5, 0)), (25, sample(12, 7))], restarts=3)["status"] == "PASS"
    row = _reconnections([(5, sample(5, 0)), (25, sample(20, 15))], restarts=3)
    assert row["status"] == "FAIL" and row["measured"].startswith("consumer-0: 7,"), row["evidence"]


def test_franz_go_task_asks_for_client_metrics_at_the_workloads_interval():
    ctx = RunContext(profile=load_profile("kafka"), config=WorkloadConfig(client="franz-go", client_metrics_s=0.5),
                     run_id=h.RUN, topic=h.TOPIC, recorder=Recorder(h.RUN))
    assert franzgo.task(ctx, "consumer", 0)["client_metrics_s"] == 0.5


@pytest.mark.parametrize("client", ["kafka-python", "librdkafka", "franz-go", "java"])
def test_group_members_run_with_their_librarys_session_and_heartbeat_unless_the_workload_sets_them(client):
    """Issue 17: every client's group consumer runs with its library's session timeout and heartbeat interval
    (45 s and 3 s each, kafka-python's 45 s on a broker it takes for 3.0 or later), not a shorter one of the suite's:
    with the suite's 10 s, a paused coordinator's members were expired by its successor, a rebalance a user with
    the defaults does not meet. A workload that sets them gives exactly those. The history says which it ran with
    (metadata group_session, part of its client settings); a workload without a group records none. The
    kafka-python consumer is the real client (its api_version set, so it is built without a broker); librdkafka's
    is its settings; franz-go's and the Java program's are their tasks (0: the program sets nothing; the franz-go
    program's own test, TestGroupSessionIsFranzGosUnlessGiven, shows franz-go then runs 45 s / 3 s)."""
    from k6suite_lib.workload import consumer as kafka_python
    from k6suite_lib.workload.config import DEFAULT_GROUP_SESSION, client_settings
    from k6suite_lib.workload.orchestrator import result_of, workload_context

    kafka = load_profile("kafka")
    profile = dataclasses.replace(kafka, client=dataclasses.replace(kafka.client, api_version="4.1.0"))

    def given(config: WorkloadConfig) -> tuple[dict, dict | None]:
        """What the client's first consumer is given of the group session, and the history's metadata."""
        ctx = workload_context(profile, config)
        if client == "kafka-python":
            member = kafka_python.open_consumer(ctx, "consumer-0")
            asked = {key: member.config[key] for key in ("session_timeout_ms", "heartbeat_interval_ms")}
            member.close()
        elif client == "librdkafka":
            settings = rdkafka.consumer_config(ctx, "consumer-0")
            asked = {key: settings[name] for key, name in (("session_timeout_ms", "session.timeout.ms"),
                                                           ("heartbeat_interval_ms", "heartbeat.interval.ms"))
                     if name in settings}
        else:
            task = (franzgo if client == "franz-go" else javaclient).task(ctx, "consumer", 0)
            asked = {key: task[key] for key in ("session_timeout_ms", "heartbeat_interval_ms") if task[key]}
        return asked, result_of(ctx, 0.0, 0.0).meta()

    default = {"session_timeout_ms": 45000, "heartbeat_interval_ms": 3000}
    asked, meta = given(WorkloadConfig(client=client, consumers=2, consumer_mode="group"))
    assert DEFAULT_GROUP_SESSION[client] == default
    assert asked == (default if client == "kafka-python" else {})  # the others are given nothing
    assert meta["group_session"] == default and client_settings(meta)["group_session"] == default
    explicit = {"session_timeout_ms": 12000, "heartbeat_interval_ms": 2000}
    asked, meta = given(WorkloadConfig(client=client, consumers=2, consumer_mode="group", **explicit))
    assert asked == meta["group_session"] == explicit
    _, meta = given(WorkloadConfig(client=client, consumers=1, consumer_mode="assign"))
    assert "group_session" not in meta and "group_session" not in client_settings(meta)


def test_kafka_python_records_the_session_it_picked_for_an_older_broker():
    """kafka-python takes 30 s, not 45 s, for a broker it judges older than 3.0 (KIP-735): the history records the
    session its consumers ran with, not the table's."""
    from k6suite_lib.workload import consumer as kafka_python
    from k6suite_lib.workload.orchestrator import result_of, workload_context

    kafka = load_profile("kafka")
    profile = dataclasses.replace(kafka, client=dataclasses.replace(kafka.client, api_version="2.8.0"))
    ctx = workload_context(profile, WorkloadConfig(consumers=1, consumer_mode="group"))
    kafka_python.open_consumer(ctx, "consumer-0").close()
    assert result_of(ctx, 0.0, 0.0).meta()["group_session"] == {"session_timeout_ms": 30000,
                                                                  "heartbeat_interval_ms": 3000}


def test_a_group_gets_its_session_timeout_to_form_before_the_drain_or_the_first_fault_gives_up():
    """With the libraries' 45 s session a group may take 22.5 s to form on Tansu (it holds a new group's first
    JoinGroup for half the session timeout): the drain stops a group's consumers for making no progress only after
    its session timeout (STALL_S for consumers outside a group), and S4's and S7's first fault comes at the latest a
    session timeout after their warm-up (earlier once the traffic is steady, faults.schedule)."""
    from k6suite_lib.scenarios import chaos
    from k6suite_lib.workload.orchestrator import STALL_S, stall_s, workload_context

    profile = load_profile("tansu")
    assert stall_s(workload_context(profile, WorkloadConfig(consumers=2, consumer_mode="group"))) == 45.0
    assert stall_s(workload_context(profile, WorkloadConfig(consumers=2, consumer_mode="assign"))) == STALL_S == 10.0
    assert stall_s(workload_context(profile, WorkloadConfig(consumers=2, consumer_mode="group",
                                                            session_timeout_ms=6000))) == STALL_S
    assert chaos.group_warmup_s(profile, 8) == 53.0
