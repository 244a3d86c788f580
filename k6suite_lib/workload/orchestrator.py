"""The orchestrator: producers, consumers, a nemesis and the read-back of one workload run.

Consumers start first (producers wait for their first poll when asked to, so reading overlaps
producing by construction); producers run for their records or their duration beside the
nemesis, and after the nemesis until acknowledgements came back; the end offsets are read as soon
as producers stop; live consumers drain to them; the final read-back reads to them. Every wait
ends when its outcome is decided, is bounded, and every client thread is joined with a timeout.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from k6suite_lib import clients, shards
from k6suite_lib.faults.schedule import Schedule
from k6suite_lib.history import Recorder, now
from k6suite_lib.profiles import CLIENT_LIBRARIES, Profile
from k6suite_lib.progress import Progress
from k6suite_lib.workload import workers
from k6suite_lib.workload.config import WorkloadConfig, WorkloadResult, error_text, new_run_id
from k6suite_lib.workload.consumer import run_consumer
from k6suite_lib.workload.context import ClientLog, RunContext
from k6suite_lib.workload.producer import run_producer
from k6suite_lib.workload.readback import ReadBack

JOIN_TIMEOUT_S = 30.0
STALL_S = 10.0  # live consumers that read nothing new for this long stop draining
Nemesis = Callable[[Recorder, threading.Event], None]


def workload_context(profile: Profile, config: WorkloadConfig, run_id: str | None = None) -> RunContext:
    """The shared state of one run: a fresh topic name (unless given) and a recorder."""
    run_id = run_id or new_run_id()
    topic = config.topic or re.sub(r"[^A-Za-z0-9._-]", "-", f"k6s-{run_id}-{config.label}")
    group = config.group_id or (topic if config.consumer_mode == "group" else None)
    return RunContext(profile=profile, config=replace(config, topic=topic, group_id=group), run_id=run_id,
                      topic=topic, recorder=Recorder(run_id))


def result_of(ctx: RunContext, started_wall: float, started: float,
              pool: list[workers.Worker] | None = None) -> WorkloadResult:
    """The run's history: its own rows, merged with its worker processes' shards when it had any (and
    WorkerFailure instead when a worker's shard is incomplete: that history is not the system's)."""
    if pool:
        workers.finish(pool)
    history = ctx.recorder.frame()
    if ctx.shards:
        history = shards.merge([(history, 0), *ctx.shards])
    return WorkloadResult(run_id=ctx.run_id, topic=ctx.topic, config=ctx.config, history=history,
                          profile=ctx.profile.name, idempotent=ctx.config.idempotent(ctx.profile),
                          max_in_flight=ctx.config.in_flight(ctx.profile), client=ctx.config.library(ctx.profile),
                          request_timeout_ms=ctx.profile.client.request_timeout_ms,
                          started_wall=started_wall, duration_s=time.monotonic() - started, notes=ctx.notes,
                          workers=workers.clock_agreement(pool or []), client_options=client_options(ctx),
                          group_session=ctx.group_session or ctx.config.group_session(ctx.profile))


def client_options(ctx: RunContext) -> dict[str, Any] | None:
    """The library options the run's producers were given beyond the workload's settings, as their tasks said."""
    if ctx.config.library(ctx.profile) == "franz-go":
        from k6suite_lib.workload import franzgo

        return franzgo.producer_options(ctx.profile.client.request_timeout_ms)
    if ctx.config.library(ctx.profile) == "java":
        from k6suite_lib.workload import javaclient

        return javaclient.client_options(ctx)
    return None


def run_workload(profile: Profile, config: WorkloadConfig, run_id: str | None = None,
                 nemesis: Nemesis | None = None, progress: Progress | None = None) -> WorkloadResult:
    """Run one workload and return its history (see history.COLUMNS). progress times its phases and
    shows them (a scenario's; by default they are timed and shown nowhere)."""
    ctx = workload_context(profile, config, run_id)
    client_log = ClientLog(ctx.recorder)
    logging.getLogger("kafka").addHandler(client_log)
    try:
        return _run(ctx, nemesis, progress or Progress(config.label, mode="quiet"))
    finally:  # also when the harness itself broke: no client thread may run on unattended
        ctx.stop_producers.set()
        ctx.stop_consumers.set()
        logging.getLogger("kafka").removeHandler(client_log)


def runners(library: str) -> tuple[Callable[[RunContext, int], None], Callable[[RunContext, int], None]]:
    """The recording producer and consumer of a client library (imported only when used)."""
    if library == "kafka-python":
        return run_producer, run_consumer
    if library == "librdkafka":
        from k6suite_lib.workload import rdkafka

        return rdkafka.run_producer, rdkafka.run_consumer
    if library == "franz-go":
        from k6suite_lib.workload import franzgo

        return franzgo.run_producer, franzgo.run_consumer
    if library == "java":
        from k6suite_lib.workload import javaclient

        return javaclient.run_producer, javaclient.run_consumer
    raise ValueError(f"unknown client library {library!r}; known: {', '.join(CLIENT_LIBRARIES)}")


def _threads(target, count: int, prefix: str, ctx: RunContext) -> list[threading.Thread]:
    return [threading.Thread(target=target, args=(ctx, i), name=f"{prefix}-{i}", daemon=True) for i in range(count)]


def _run(ctx: RunContext, nemesis: Nemesis | None, progress: Progress) -> WorkloadResult:
    config = ctx.config
    progress.enter("set-up")
    # worker processes import for seconds before they can send: launched before the workload's clock starts
    pool = workers.launch(ctx, config.library(ctx.profile)) if config.workers else None
    started_wall, started = time.time(), time.monotonic()
    if config.create_topic:
        try:
            clients.create_topic(ctx.profile, ctx.topic, config.partitions)
        except Exception as exc:  # recorded: the checker will find no acked sends and say why
            ctx.connect_failure("admin", exc)
    run_producer, run_consumer = runners(config.library(ctx.profile))
    consumers = _threads(run_consumer, config.consumers if config.consumer_mode != "none" else 0, "consumer", ctx)
    for thread in consumers:
        thread.start()
    if consumers and config.await_consumers_s > 0:
        _await_consumers(ctx, len(consumers))
    if pool is not None:
        producers = workers.go(pool)
    else:
        producers = _threads(run_producer, config.producers, "producer", ctx)
        for thread in producers:
            thread.start()
    sampler = None
    if config.client_metrics_s > 0:
        sampler = threading.Thread(target=sample_clients, args=(ctx,), name="client-metrics", daemon=True)
        sampler.start()
    stop_nemesis = threading.Event()
    nemesis_thread = None
    if nemesis is not None:
        nemesis_thread = threading.Thread(target=nemesis, args=(ctx.recorder, stop_nemesis), name="nemesis",
                                          daemon=True)
        nemesis_thread.start()
    _wait_producers(ctx, producers, started, nemesis, nemesis_thread, progress)
    ctx.phase("producers-stop")
    if nemesis_thread is not None:
        stop_nemesis.set()
        nemesis_thread.join(JOIN_TIMEOUT_S * 4)
        if nemesis_thread.is_alive():
            ctx.note("the nemesis did not finish within its join timeout")
    readback = ReadBack.open(ctx) if config.readback and ctx.tracker.acked else None
    try:
        progress.enter("drain", expected_s=config.consume_grace_s if consumers else None)
        _drain_consumers(ctx, consumers, readback.ends if readback else None, progress)
        if sampler is not None:
            sampler.join(JOIN_TIMEOUT_S)
        if readback is not None:
            progress.enter("read-back", expected_s=config.readback_timeout_s)
            readback.retry_ends()
            readback.run(progress)
    finally:
        if readback is not None:
            readback.close()
    return result_of(ctx, started_wall, started, pool)


def _traffic_phase(config: WorkloadConfig, nemesis: Nemesis | None,
                   thread: threading.Thread | None) -> tuple[str, float | None]:
    """warm-up, fault or recovery (with a schedule of faults), traffic otherwise; and its expected length."""
    if nemesis is None:
        return "traffic", config.duration_s
    if not isinstance(nemesis, Schedule):
        return "fault", None
    faulting = nemesis.length_s - nemesis.steps[0].at_s if nemesis.steps else None
    if nemesis.active:
        return "fault", faulting
    if thread is not None and thread.is_alive():
        return ("warm-up", nemesis.steps[0].at_s) if not nemesis.applied else ("fault", faulting)
    return "recovery", config.after_faults_s


def _wait_producers(ctx: RunContext, producers: list[threading.Thread], started: float, nemesis: Nemesis | None,
                    nemesis_thread: threading.Thread | None, progress: Progress) -> None:
    """Until producers finish their records or their duration; with a nemesis and after_faults_s,
    also until acknowledgements came back on every partition after the nemesis ended and at least
    after_faults_min_s passed (or, at most, after_faults_s passed), bounded by the limit below."""
    config = ctx.config
    limit = (config.duration_s or 0) + config.after_faults_s + config.delivery_timeout_s + JOIN_TIMEOUT_S * 4
    deadline = time.monotonic() + limit + (config.records or 0) * 0.05
    waits_for_faults = nemesis_thread is not None and config.after_faults_s > 0
    faults_over: float | None = None if waits_for_faults else started
    phase = ""
    consumers = config.consumers if config.consumer_mode != "none" else 0
    while any(t.is_alive() for t in producers) and time.monotonic() < deadline:
        if faults_over is None and not nemesis_thread.is_alive():
            faults_over = time.monotonic()
        if isinstance(nemesis, Schedule) and not nemesis.applied and not nemesis.steady.is_set() \
                and ctx.steady(consumers):
            ctx.phase("steady")
            nemesis.steady.set()
        current, expected = _traffic_phase(config, nemesis, nemesis_thread)
        if current != phase:
            phase = current
            progress.enter(current, expected_s=expected)
        shifted = nemesis.shifted_s if isinstance(nemesis, Schedule) else 0.0  # the warm-up it did not need
        if (config.duration_s is not None and time.monotonic() - started >= config.duration_s - shifted
                and faults_over is not None and _recovered(ctx, faults_over, waits_for_faults)):
            ctx.stop_producers.set()
        time.sleep(0.2)
        progress.update(acked=len(ctx.tracker.acked), read=len(ctx.tracker.read),
                        fault=_active(nemesis) or None)
    ctx.stop_producers.set()
    for thread in producers:
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            ctx.note(f"{thread.name} did not stop within {JOIN_TIMEOUT_S:.0f} s")


def _recovered(ctx: RunContext, faults_over: float, waited_for_faults: bool) -> bool:
    """Whether producers have run long enough after the faults: the outcome the acks-resume check
    judges is decided once every partition acknowledged after them (and after_faults_min_s passed, so
    the time after the faults has latencies too); at most after_faults_s."""
    if not waited_for_faults:
        return True
    config, since = ctx.config, time.monotonic() - faults_over
    resumed = all(ctx.tracker.last_ack_ns.get(p, 0) > faults_over * 1e9 for p in range(config.partitions))
    return since >= config.after_faults_s or (resumed and since >= config.after_faults_min_s)


def _active(nemesis: Nemesis | None) -> str:
    return ", ".join(fault.name for fault in nemesis.active) if isinstance(nemesis, Schedule) else ""


def _await_consumers(ctx: RunContext, expected: int) -> None:
    deadline = time.monotonic() + ctx.config.await_consumers_s
    while len(ctx.polled) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = len(ctx.polled)
    ctx.phase("consumers-ready", ready=ready, expected=expected)
    if ready < expected:
        ctx.note(f"only {ready} of {expected} consumers had polled after {ctx.config.await_consumers_s:.0f} s; "
                 "producers started anyway")


def _drain_consumers(ctx: RunContext, consumers: list[threading.Thread], ends: dict[int, int] | None,
                     progress: Progress) -> None:
    """Live consumers read on until they reach the end offsets (every acknowledged record they will
    ever see is then seen), or, without end offsets, every acknowledged record was seen and nothing
    new came for drain_quiet_s; they stop early when they make no progress (read nothing not read
    before) for stall_s, and at the latest after consume_grace_s."""
    config, tracker = ctx.config, ctx.tracker
    deadline = time.monotonic() + config.consume_grace_s
    draining_since = time.monotonic_ns()
    reached = False
    group = config.consumer_mode == "group"
    while consumers and time.monotonic() < deadline:
        # a group whose members are still being (re)assigned has not finished: the drain also decides
        # who owned what when consumers stopped
        reached = ends is not None and tracker.reached(ends) and (not group or ctx.owners_settled(len(consumers)))
        quiet_s = (time.monotonic_ns() - max(tracker.last_read_ns, draining_since)) / 1e9
        stalled_s = (time.monotonic_ns() - max(tracker.last_progress_ns, draining_since)) / 1e9
        if reached or (ends is None and tracker.unseen() == 0 and quiet_s >= config.drain_quiet_s) \
                or stalled_s >= stall_s(ctx):
            break
        progress.update(acked=len(tracker.acked), read=len(tracker.read))
        time.sleep(0.1)
    ctx.phase("consumers-stop", unseen=tracker.unseen(), reached_end=reached)
    ctx.stop_consumers.set()
    for thread in consumers:
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            ctx.note(f"{thread.name} did not stop within {JOIN_TIMEOUT_S:.0f} s")


def stall_s(ctx: RunContext) -> float:
    """How long live consumers may make no progress before the drain stops them: STALL_S, or a group's session
    timeout where that is longer, since a group may take that long to form or form again and then read on (Tansu
    holds a new group's first JoinGroup for half of it; a coordinator waits that long for a member that vanished).
    With the libraries' 45 s session the drain's consume_grace_s bounds it instead."""
    session = ctx.group_session or ctx.config.group_session(ctx.profile)
    return max(STALL_S, session["session_timeout_ms"] / 1000) if session else STALL_S


def sample_clients(ctx: RunContext) -> None:
    """Until consumers stop: one client-metrics row per live client every client_metrics_s."""
    while not ctx.stop_consumers.wait(ctx.config.client_metrics_s):
        for name, client in list(ctx.clients.items()):
            t_ns, wall = now()
            try:
                detail, kind, error = json.dumps(clients.client_view(client)), "ok", ""
            except Exception as exc:  # a failed sample is evidence: the checks that read samples name it
                detail, kind, error = "", "fail", error_text(exc)
            ctx.recorder.record(op_id=ctx.recorder.next_op(), process=name, f="client-metrics", type=kind,
                                invoke_ns=t_ns, complete_ns=t_ns, wall_ns=wall, detail=detail, error=error)
