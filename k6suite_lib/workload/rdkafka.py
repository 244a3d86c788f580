"""librdkafka (PyPI confluent-kafka) as a recording client: the same history rows as kafka-python's.

The client runs with librdkafka's defaults plus only what the workload's contract needs: acks=all,
the profile's request timeout (``request.timeout.ms`` and ``socket.timeout.ms``: a paused broker is
noticed when a request times out), the workload's delivery timeout (``message.timeout.ms``), no
automatic commits and reading from the beginning (the workload records its commits itself).
librdkafka's default is a non-idempotent producer; the workload's ``idempotence`` runs it both
ways. librdkafka negotiates API versions per broker from ApiVersions and cannot cap one API, so the
version caps a system needs (KafScale v1.5.0: Fetch 11, Produce 8) become ``api.version.request=false``
with ``broker.version.fallback`` = the newest Kafka release whose versions stay under every cap
(FALLBACKS): that is what a librdkafka user would have to configure, and it is recorded in the history.

How librdkafka's outcomes map to the history (``outcome``): a delivery report without error is
``ok`` at its partition and offset; an error the broker or the client raised before the record could
reach a log (authorization, a record too large, an unknown partition, a queue purged unsent, a
full local queue) is ``fail``; everything else, retriable or fatal, including ``_MSG_TIMED_OUT``
(the record may have been written before its delivery timeout), is ``info``. Each error row says
whether librdkafka called it retriable or fatal.

Retries: librdkafka never resends a Produce request; a failed one (an error response, a request
timeout, a dropped connection) puts its records back on their partition's queue to be sent in a new
request, and its per-broker ``txretries`` statistic does not count that (src/rdkafka_request.c,
rd_kafka_handle_Produce_error). Its one trace per failed batch is the debug line of context ``msg``
(facility MSGSET) "<topic> [<partition>]: MessageSet with N message(s) (MsgId M, BaseSeq S)
encountered error: <error> (actions <actions>)"; actions with Retry or Refresh put the records back.
The producer therefore runs with ``debug=msg`` (a log setting only: one line per Produce request,
nothing the client does changes) and writes a ``retry`` row for each such line of the workload's
topic, with the batch's size N (``messages`` in ``detail``): a batch of N records resends at most N,
which bounds the duplicates and reorderings the row may explain (checkers/anomalies.py, allot_retries).
confluent-kafka serves librdkafka's log on the queue its delivery reports come on, in order,
so the row's time, when the poller read the line, is after the error and before the delivery report
of any record of that batch. A line for a request that timed out still queued ("Local: Timed out in
queue", tagged MsgNotPersisted) writes no row: that request never reached the broker. Other unsent
requests (purged with a dropped connection) log the same line as sent ones and keep their rows.

Client metrics (``client_metrics_s > 0``): one ``client-metrics`` row each time the client serves
librdkafka's own statistics (``statistics.interval.ms`` at that interval; an observation setting, like
``debug``: the client emits a JSON document, nothing it does changes), its connections counted from
librdkafka's broker state log (debug context ``broker``, also on then: a few lines per connection;
``ConnectionLog``), not from the statistics: a connection counts once its handle reached state UP,
i.e. ApiVersions (and SASL) answered, as kafka-python counts one. The statistics' per-broker
``disconnects`` also count connections closed in APIVERSION_QUERY, before they were usable
(src/rdkafka_broker.c, rd_kafka_broker_fail: ``rkb_state >= RD_KAFKA_BROKER_STATE_UP``, and
APIVERSION_QUERY comes after UP in that enum), and nothing in them tells those apart: ``req`` counts
ApiVersions requests sent, ``rx`` responses of any type. Their ``connects`` also counts a coordinator
handle's calls without an address, and a handle dropped between two documents takes its counts with
it. The statistics give the broker list, and each row's ``lagging``: the handles they show UP that the
log has not shown come up yet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from k6suite_lib import clients
from k6suite_lib.history import decode_payload, now
from k6suite_lib.profiles import Profile
from k6suite_lib.workload.config import WorkloadConfig, error_text
from k6suite_lib.workload.consumer import POLL_MS, ConsumerSession, PollResult, record_assignment
from k6suite_lib.workload.context import RunContext
from k6suite_lib.workload.producer import Done, producer_loop

# librdkafka's debug line for a Produce request that failed: the batch goes back to its partition's
# queue when the actions include Retry or Refresh (src/rdkafka_request.c, rd_kafka_handle_Produce_error)
FAILED_BATCH = re.compile(r"(?P<topic>\S+) \[(?P<partition>\d+)\]: MessageSet with (?P<messages>\d+) message\(s\) "
                          r"\(MsgId \d+, BaseSeq -?\d+\) encountered error: (?P<error>.*) "
                          r"\(actions (?P<actions>[A-Za-z,]*)\)")
RESENT = ("Retry", "Refresh")
# a request that timed out before it left the client (rd_kafka_buf_was_sent false: "no risk of duplicates")
NEVER_SENT = "Local: Timed out in queue"
# Errors whose record certainly did not reach a log: refused deterministically, or never sent.
DEFINITE = frozenset({
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError._INVALID_ARG, KafkaError._QUEUE_FULL,
    KafkaError._PURGE_QUEUE,
})
# librdkafka's broker state log (context broker, facility STATE; src/rdkafka_broker.c, rd_kafka_broker_set_state)
# and its line for a learned broker renamed in place (facility UPDATE, rd_kafka_broker_op_serve NODE_UPDATE)
STATE_CHANGE = re.compile(r"(?P<name>\S+): Broker changed state (?P<old>[A-Z_]+) -> (?P<new>[A-Z_]+)$")
RENAMED = re.compile(r"Name changed from (?P<old>\S+) to (?P<new>\S+)$")
# a client-metrics row's totals, in ConnectionLog's order
TOTALS = ("connection-creation-total", "connection-close-total", "connection-attempts-total",
          "connection-abandoned-total")
# states of a connected handle before it is usable (rd_kafka_broker_state_t: TLS, SASL, ApiVersions)
HANDSHAKES = frozenset({"SSL_HANDSHAKE", "AUTH_LEGACY", "APIVERSION_QUERY", "AUTH_HANDSHAKE", "AUTH_REQ"})
# broker.version.fallback per (Fetch, Produce) cap: the newest Kafka release whose Fetch and Produce
# versions stay within them (Kafka 2.3: Fetch 11, Produce 7; 2.4-2.6: Fetch 11, Produce 8; 2.7: Fetch 12).
FALLBACKS = ((11, 8, "2.6.0"), (11, 7, "2.3.0"), (10, 7, "2.1.0"))


def outcome(error: KafkaError) -> str:
    return "fail" if error.code() in DEFINITE else "info"


def describe(error: KafkaError) -> str:
    kind = "fatal" if error.fatal() else "retriable" if error.retriable() else "not retriable"
    return f"KafkaError {error.name()} ({kind}): {error.str()}"[:500]


def version_settings(caps: dict[str, int]) -> dict[str, Any]:
    """librdkafka settings that keep its Fetch and Produce under the system's caps (see FALLBACKS)."""
    fetch, produce = caps.get("Fetch"), caps.get("Produce")
    if fetch is None and produce is None:
        return {}
    for max_fetch, max_produce, release in FALLBACKS:
        if (fetch is None or max_fetch <= fetch) and (produce is None or max_produce <= produce):
            return {"api.version.request": False, "broker.version.fallback": release}
    raise ValueError(f"no librdkafka broker.version.fallback keeps Fetch<={fetch} and Produce<={produce}")


def common_config(profile: Profile, client_id: str) -> dict[str, Any]:
    """Endpoint, security, the shared request timeout, version caps; a logger the suite records."""
    settings = profile.client
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(profile.bootstrap_servers),
        "client.id": client_id,
        "security.protocol": settings.security_protocol.lower(),
        "socket.timeout.ms": settings.request_timeout_ms,
        # under kafka's logger: the workload's ClientLog records its warnings and errors
        "logger": logging.getLogger(f"kafka.librdkafka.{client_id}"),
        **version_settings(clients.version_caps(profile)),
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl.ca.location"] = settings.tls.cafile
        config["ssl.endpoint.identification.algorithm"] = "https" if settings.tls.check_hostname else "none"
        if settings.tls.certfile:
            config.update({"ssl.certificate.location": settings.tls.certfile, "ssl.key.location": settings.tls.keyfile})
    if settings.security_protocol.startswith("SASL"):
        from k6suite_lib.profiles import secret

        config.update({"sasl.mechanism": settings.sasl.mechanism,
                       "sasl.username": settings.sasl.username or secret(settings.sasl.username_env),
                       "sasl.password": secret(settings.sasl.password_env)})
    return config


def producer_config(profile: Profile, config: WorkloadConfig, client_id: str) -> dict[str, Any]:
    """librdkafka's defaults plus the contract: acks, the request and delivery timeouts, idempotence as asked
    (benchmarks/harness_ceiling.py runs its bare librdkafka with these too)."""
    return {**common_config(profile, client_id), "acks": "all" if config.acks == "all" else int(config.acks),
            "request.timeout.ms": profile.client.request_timeout_ms,
            "message.timeout.ms": int(config.delivery_timeout_s * 1000),
            "enable.idempotence": config.idempotent(profile)}


class ConnectionLog:
    """Each broker handle's connections, read from librdkafka's broker state log: attempted when the
    handle enters CONNECT (a dial, rd_kafka_broker_connect), created when it enters UP
    (rd_kafka_broker_connect_up, the one place that sets it: after ApiVersions and SASL), closed when a
    handle that was up goes DOWN (every closed connection does: rd_kafka_broker_fail, also when
    librdkafka drops the handle), abandoned when it goes DOWN from a handshake state (HANDSHAKES),
    connected but never usable; a dial that failed (CONNECT -> DOWN) is only an attempt. A
    re-authentication (REAUTH, then UP again) keeps its connection. Counted per handle name, so a handle
    librdkafka drops (a restarted broker's, while it is out of the metadata) and makes again under its
    name counts on. Its lines are served on the client's one queue with the statistics, by whichever
    thread polls (a producer's flush() too: hence the lock); librdkafka queues a statistics document
    ahead of log lines still waiting (src/rdkafka.c: RD_KAFKA_PRIO_HIGH for OP_STATS, MEDIUM for
    OP_LOG), so a row may lack the lines of a change its document already shows: they count in the
    next row (the same poll serves them, or the next one after a client blocked in a commit). A row
    whose document shows a handle UP that the log has not shown come up says so (``lagging``): a
    recorded fact, not a failed sample; the checks read the nearest row that does not lag (audit24 M3).
    A lost UP line leaves the rows lagging while its handle stays up, so it is noticed too."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}  # [created, closed, attempts, abandoned] per handle name
        self.up: set[str] = set()
        self.lock = threading.Lock()

    def read(self, facility: str, text: str) -> None:
        """One debug line of the client's (confluent-kafka's facility and text)."""
        renamed = RENAMED.search(text) if facility == "UPDATE" else None
        change = STATE_CHANGE.search(text) if facility == "STATE" else None
        with self.lock:
            if renamed and renamed["old"] in self.up:
                self.up.discard(renamed["old"])
                self.up.add(renamed["new"])
            if change is None:
                return
            name, counts = change["name"], self.counts.setdefault(change["name"], [0, 0, 0, 0])
            if change["new"] == "CONNECT":
                counts[2] += 1
            elif change["new"] == "UP" and name not in self.up:
                counts[0] += 1
                self.up.add(name)
            elif change["new"] == "DOWN" and name in self.up:
                counts[1] += 1
                self.up.discard(name)
            elif change["new"] == "DOWN" and change["old"] in HANDSHAKES:
                counts[3] += 1

    def totals(self, brokers: dict[str, Any]) -> tuple[dict[str, list[int]], list[str]]:
        """[created, closed, attempts, abandoned] per handle name, from the lines served so far, and the handles
        the statistics show UP that the log has not shown come up: lines still queued (or lost), so the counts
        lag the document (the row says so; the checks read the nearest row that does not)."""
        with self.lock:
            lagging = sorted(name for name, broker in brokers.items() if broker.get("state") == "UP"
                             and name not in self.up)
            return {name: list(counts) for name, counts in self.counts.items()}, lagging


class Statistics:
    """What a client observes of itself: a client-metrics row each time librdkafka serves its statistics
    (timed when served: poll() or consume()), its connections from the ConnectionLog."""

    def __init__(self, ctx: RunContext, name: str) -> None:
        self.ctx, self.name = ctx, name
        self.connections = ConnectionLog()

    def settings(self, logger: logging.Logger, *debug: str) -> dict[str, Any]:
        """The client's log settings (its debug contexts, a DebugLog over the suite's logger) and, when the
        workload samples clients, the statistics and the broker state log the counts read."""
        sampling = self.ctx.config.client_metrics_s > 0
        contexts = [*debug, "broker"] if sampling else list(debug)
        settings: dict[str, Any] = {"logger": DebugLog(self.ctx, self.name, logger,
                                                       self.connections if sampling else None)}
        if contexts:
            settings["debug"] = ",".join(contexts)
        if sampling:
            settings.update({"statistics.interval.ms": max(1, round(self.ctx.config.client_metrics_s * 1000)),
                             "stats_cb": self.record})
        return settings

    def view(self, stats: dict[str, Any]) -> dict[str, Any]:
        """A client-metrics detail: the totals, the learned brokers, per handle name [created, closed,
        attempts] (the evidence of which connection came back how often), and the handles whose UP its
        counts lag (empty when the log has caught up with the document)."""
        brokers = stats.get("brokers") or {}
        counts, lagging = self.connections.totals(brokers)
        names = sorted(counts.keys() | brokers.keys())
        learned = (b for b in brokers.values() if b.get("source") == "learned" and b.get("nodeid", -1) >= 0)
        return {**{total: sum(c[i] for c in counts.values()) for i, total in enumerate(TOTALS)},
                "brokers": sorted(f"{b['nodeid']}@{b['nodename']}" for b in learned),
                "per-broker": {name: counts.get(name, [0, 0, 0])[:3] for name in names}, "lagging": lagging}

    def record(self, text: str) -> None:
        t_ns, wall = now()
        try:
            detail, kind, error = json.dumps(self.view(json.loads(text))), "ok", ""
        except Exception as exc:  # a failed sample is evidence: the checks that read samples name it
            detail, kind, error = "", "fail", error_text(exc)
        self.ctx.recorder.record(op_id=self.ctx.recorder.next_op(), process=self.name, f="client-metrics", type=kind,
                                 invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall, detail=detail, error=error)


class Sender:
    """A librdkafka producer behind the producer loop. Its delivery reports and statistics are served
    by a thread of its own that blocks in poll(), so each report's time is when it arrived, not when
    the loop next looked."""

    library = "librdkafka"

    def __init__(self, ctx: RunContext, name: str) -> None:
        config = ctx.config
        self.ctx, self.name = ctx, name
        settings = producer_config(ctx.profile, config, f"{ctx.run_id}-{name}")
        self.producer = Producer({**settings, "error_cb": self._error,
                                  **Statistics(ctx, name).settings(settings["logger"], "msg")})
        self.closed = threading.Event()
        self.poller = threading.Thread(target=self._serve, name=f"{name}-poll", daemon=True)
        self.poller.start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            self.producer.poll(0.05)

    def send(self, topic: str, payload: bytes, key: bytes | None, partition: int | None, done: Done) -> None:
        def report(error: KafkaError | None, message) -> None:
            t = time.monotonic_ns()
            if error is None:
                done(t, message.partition(), message.offset(), "ok", "")
            else:
                done(t, message.partition() if message is not None else -1, -1, outcome(error), describe(error))

        extra = {} if partition is None else {"partition": partition}
        self.producer.produce(topic, value=payload, key=key, on_delivery=report, **extra)

    def service(self) -> None:
        """Nothing to serve: the poller thread runs the reports."""

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)

    def close(self) -> None:
        self.producer.flush(0)
        self.closed.set()
        self.poller.join(5)

    def _error(self, error: KafkaError) -> None:
        logging.getLogger(f"kafka.librdkafka.{self.ctx.run_id}-{self.name}").warning(describe(error))


class DebugLog:
    """A client's librdkafka logger: warnings and errors go to the suite's logger; of the debug lines, a
    broker's state change goes to the client's ConnectionLog (when it counts connections), and a failed
    batch of the workload's topic that goes back to its queue (FAILED_BATCH, context msg: the producer's)
    is a retry row; the other debug lines are dropped. confluent-kafka calls log(level, "%s [%s] %s",
    facility, client name, text)."""

    def __init__(self, ctx: RunContext, name: str, logger: logging.Logger,
                 connections: ConnectionLog | None = None) -> None:
        self.ctx, self.name, self.logger, self.connections = ctx, name, logger, connections

    def log(self, level: int, message: str, *args: Any) -> None:
        if level > logging.DEBUG:
            self.logger.log(level, message, *args)
            return
        if len(args) == 3 and self.connections is not None:
            self.connections.read(args[0], args[2])
        if len(args) != 3 or args[0] != "MSGSET" or "encountered error" not in args[2]:
            return  # a delivered batch's line, or another debug line
        failed = FAILED_BATCH.search(args[2])
        if failed is None or failed["topic"] != self.ctx.topic or not set(RESENT) & set(failed["actions"].split(",")):
            return
        if failed["error"] == NEVER_SENT:
            return
        t_ns, wall = now()
        # no MsgId: librdkafka 2.16 logs MsgId 0 for every batch of a producer without idempotence
        detail = {"messages": int(failed["messages"]), "actions": failed["actions"]}
        self.ctx.recorder.record(op_id=self.ctx.recorder.next_op(), process=self.name, f="retry", type="info",
                                 invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall, producer=self.name,
                                 topic=self.ctx.topic, partition=int(failed["partition"]),
                                 error=f"librdkafka: {args[2]}"[:500], detail=json.dumps(detail))


def run_producer(ctx: RunContext, index: int) -> None:
    name = f"producer-{index}"
    try:
        sender = Sender(ctx, name)
    except Exception as exc:
        ctx.connect_failure(name, exc)
        return
    producer_loop(ctx, index, sender)


def consumer_config(ctx: RunContext, name: str) -> dict:
    """A live consumer's settings; a group member's session timeout and heartbeat interval only where the workload
    sets them (WorkloadConfig.group_settings), librdkafka's own otherwise."""
    client_id, group_id = f"{ctx.run_id}-{name}", ctx.config.group_id
    names = {"session_timeout_ms": "session.timeout.ms", "heartbeat_interval_ms": "heartbeat.interval.ms"}
    config = {**common_config(ctx.profile, client_id), "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "fetch.wait.max.ms": 200, **{names[key]: value for key, value in ctx.config.group_settings().items()},
              "error_cb": lambda error: logging.getLogger(f"kafka.librdkafka.{client_id}").warning(describe(error))}
    # librdkafka refuses a consumer without group.id even for direct assignment; one that only assigns
    # and never commits joins no group, so an unused id of its own does no harm
    config["group.id"] = group_id or f"{client_id}-assigned"
    return config


def poll_once(ctx: RunContext, session: ConsumerSession) -> PollResult | None:
    """One consume() call, recorded like kafka-python's poll; None when it failed (an info row)."""
    op = ctx.recorder.next_op()
    invoke_ns, wall_ns = now()
    base = {"op_id": op, "process": session.name, "f": "poll", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
            "topic": ctx.topic, "session": session.epoch}
    try:
        messages = session.consumer.consume(500, POLL_MS / 1000)
    except Exception as exc:
        ctx.recorder.record(**base, type="info", complete_ns=time.monotonic_ns(), error=error_text(exc))
        return None
    complete_ns = time.monotonic_ns()
    rows, result, errors = [], PollResult(), []
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                errors.append(describe(error))
            continue
        value = message.value()
        identity = decode_payload(value)
        key = message.key()
        rows.append({**base, "type": "ok", "complete_ns": complete_ns, "topic": message.topic(),
                     "partition": message.partition(), "offset": message.offset(),
                     "key": key.decode(errors="replace") if key else "", "producer": identity["producer"],
                     "seq": identity["seq"], "checksum": identity["checksum"], "corrupt": identity["corrupt"],
                     "record_run": identity["run_id"], "value_len": len(value or b"")})
        if not identity["corrupt"]:
            result.identities.append((identity["producer"], identity["seq"]))
        result.highest[message.partition()] = max(result.highest.get(message.partition(), -1), message.offset())
    if rows:
        ctx.recorder.record_many(rows)
    if errors and not rows:
        ctx.recorder.record(**base, type="info", complete_ns=complete_ns, error="; ".join(errors)[:500])
        return None
    return result


def commit(ctx: RunContext, session: ConsumerSession) -> None:
    """A synchronous commit of the consumed positions, recorded with the offsets librdkafka committed."""
    op = ctx.recorder.next_op()
    invoke_ns, wall_ns = now()
    base = {"op_id": op, "process": session.name, "f": "commit", "invoke_ns": invoke_ns, "wall_ns": wall_ns,
            "topic": ctx.topic, "session": session.epoch}
    try:
        committed = session.consumer.commit(asynchronous=False) or []
    except Exception as exc:
        ctx.recorder.record(**base, type="info", complete_ns=time.monotonic_ns(), error=error_text(exc))
        return
    offsets = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    ctx.recorder.record(**base, type="ok", complete_ns=time.monotonic_ns(), detail=json.dumps({"offsets": offsets}))


def run_consumer(ctx: RunContext, index: int) -> None:
    """One live librdkafka consumer thread: consume (and commit, in a group) until told to stop."""
    from k6suite_lib.workload.consumer import lane

    config, name = ctx.config, f"consumer-{index}"
    try:
        settings = consumer_config(ctx, name)
        consumer = Consumer({**settings, **Statistics(ctx, name).settings(settings["logger"])})
    except Exception as exc:
        ctx.connect_failure(name, exc)
        return
    session = ConsumerSession(name, consumer, group=config.consumer_mode == "group")

    def assigned(_consumer, partitions) -> None:
        ctx.assigned(name, {tp.partition for tp in partitions})
        if not session.closing:
            record_assignment(ctx, session, "assign", [tp.partition for tp in partitions])

    def revoked(_consumer, partitions) -> None:
        ctx.assigned(name, ctx.owned.get(name, set()) - {tp.partition for tp in partitions})
        if not session.closing:
            record_assignment(ctx, session, "revoke", [tp.partition for tp in partitions])

    try:
        if session.group:
            consumer.subscribe([ctx.topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
        else:
            partitions = [TopicPartition(ctx.topic, p, OFFSET_BEGINNING) for p in lane(ctx, index)]
            record_assignment(ctx, session, "assign", [tp.partition for tp in partitions])
            consumer.assign(partitions)
            ctx.assigned(name, {tp.partition for tp in partitions})
        commit_after_poll = session.group and config.commit
        while not ctx.stop_consumers.is_set():
            if len(ctx.recorder) > config.max_history_rows:
                ctx.note(f"live consumers stopped early: the history passed {config.max_history_rows:,} rows")
                ctx.stop_consumers.set()
                break
            result = poll_once(ctx, session)
            if result is None:
                ctx.stop_consumers.wait(POLL_MS / 1000)
                continue
            ctx.polled.add(name)
            if result.highest:
                ctx.tracker.saw(result.identities, result.highest)
                if commit_after_poll and consumer.assignment():
                    commit(ctx, session)
    finally:
        session.closing = True
        with contextlib.suppress(Exception):
            consumer.close()
