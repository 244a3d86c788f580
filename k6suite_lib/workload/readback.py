"""The final read-back: after producers and faults stop, read every partition to the end of the log.

Partitions come from the topic's metadata (not the workload's configuration) and the end offsets
from ListOffsets, both recorded in the history (an ``end-offsets`` row). The read-back reads every
partition from the beginning up to those end offsets — not merely until every acknowledged record
was seen, because what lies after the last acknowledgement (timeouts that landed, retry copies,
corrupt bytes) must be read too — until its positions stall for STALL_S (what has not moved for
that long after every producer and fault stopped will not) or its deadline passes; where it
stopped, and whether it stalled or timed out, is a ``readback-end`` phase row.

Where it stopped short of an end, the read-back then probes the unread range directly: a fresh
consumer assigned to the partition seeks to a few offsets spread over that range and reads on from
each (bounded in count and time). Each probe is its own session of the ``readback`` process and a
``readback-probe`` phase row says where it started, how far the system served it and why it stopped,
so the history shows which offsets the system serves on request and which it never serves (a
system that keeps resetting its consumers to 0 serves none of them to a sequential reader).
"""

from __future__ import annotations

import contextlib
import json
import time

from kafka import TopicPartition

from k6suite_lib import clients
from k6suite_lib.history import READBACK, now
from k6suite_lib.progress import Progress
from k6suite_lib.workload.config import error_text
from k6suite_lib.workload.consumer import ConsumerSession, poll_once, record_assignment
from k6suite_lib.workload.context import RunContext

METADATA_TIMEOUT_S = 10.0
QUIET_AT_END_S = 2.0  # without known end offsets: stop once at the end with nothing new for this long
# positions that have not moved for this long (at least STALL_S, a quarter of the read-back's timeout on
# slow targets) will not move: the read-back stops, stalled
STALL_S = 10.0
PROBES_PER_PARTITION = 4  # offsets probed per partition, spread over its unread range
PROBE_BUDGET_S = 30.0  # all probes together
PROBE_QUIET_S = 3.0  # a probe that has read nothing new for this long is not being served
PROBE_RETRY_S = 0.2  # pause after a failed poll


class ReadBack:
    """An opened read-back: its consumer, the topic's partitions from metadata and their end offsets.

    Opened as soon as producers stop, so live consumers can drain to the same end offsets the
    read-back reads to; run once they have."""

    def __init__(self, ctx: RunContext, consumer, partitions: list[TopicPartition], ends: dict[int, int] | None,
                 started: float) -> None:
        self.ctx, self.consumer, self.partitions, self.ends, self.started = ctx, consumer, partitions, ends, started

    @classmethod
    def open(cls, ctx: RunContext) -> ReadBack | None:
        """None when it cannot start (the history says why)."""
        started = time.monotonic()
        try:
            consumer = clients.consumer(ctx.profile, client_id=f"{ctx.run_id}-{READBACK}", group_id=None)
        except Exception as exc:
            ctx.connect_failure(READBACK, exc)
            return None
        try:
            partitions = _partitions(ctx, consumer)
            return cls(ctx, consumer, partitions, _end_offsets(ctx, consumer, partitions), started)
        except Exception as exc:
            _broke_off(ctx, exc, started)
            with contextlib.suppress(Exception):
                consumer.close()
            return None

    def run(self, progress: Progress) -> None:
        """Read every partition from the beginning to its end offset (or, without end offsets, until
        quiet at the end); stop early only when positions stall for STALL_S or the deadline passes."""
        ctx, consumer, partitions, ends = self.ctx, self.consumer, self.partitions, self.ends
        session = ConsumerSession(READBACK, consumer)
        deadline = time.monotonic() + ctx.config.readback_timeout_s
        try:
            record_assignment(ctx, session, "assign", [tp.partition for tp in partitions])
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            positions: dict[int, int] = {}
            quiet_since: float | None = None
            moved_at, furthest, read = time.monotonic(), -1, 0
            stall_s = max(STALL_S, ctx.config.readback_timeout_s / 4)
            while time.monotonic() < deadline:
                result = poll_once(ctx, session)
                positions = _positions(consumer, partitions)
                read += result.records if result is not None else 0
                progress.update(read=read, end=sum(ends.values()) if ends else "unknown")
                if ends is not None and all(positions.get(tp.partition, -1) >= ends[tp.partition]
                                            for tp in partitions):
                    break
                if sum(positions.values()) > furthest:
                    moved_at, furthest = time.monotonic(), sum(positions.values())
                elif time.monotonic() - moved_at > stall_s:
                    break
                if ends is None and result is not None and not result.records:
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > QUIET_AT_END_S:
                        break
                elif result is not None and result.records:
                    quiet_since = None
            timed_out = time.monotonic() >= deadline
            stalled = not timed_out and time.monotonic() - moved_at > stall_s
            if timed_out:
                ctx.note(f"the read-back timed out after {ctx.config.readback_timeout_s:.0f} s")
            if stalled:
                ctx.note(f"the read-back stopped: no position moved for {stall_s:.0f} s")
            ctx.phase("readback-end", positions=positions, timed_out=timed_out, stalled=stalled,
                      elapsed_s=round(time.monotonic() - self.started, 2))
        except Exception as exc:
            _broke_off(ctx, exc, self.started)
            return
        if ends is not None:
            short = {tp.partition: (positions.get(tp.partition, 0), ends[tp.partition]) for tp in partitions
                     if positions.get(tp.partition, -1) < ends[tp.partition]}
            if short:
                probe_unread(ctx, short, progress)

    def retry_ends(self) -> None:
        """A second ListOffsets, after the drain, when the first (straight after the faults) failed."""
        if self.ends is None:
            self.ends = _end_offsets(self.ctx, self.consumer, self.partitions)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()


def probe_points(start: int, end: int, count: int = PROBES_PER_PARTITION) -> list[int]:
    """Offsets to seek to in the unread range [start, end): its start and points spread evenly over it."""
    if end <= start:
        return []
    return sorted({start + (end - start) * k // count for k in range(count)})


def probe_unread(ctx: RunContext, short: dict[int, tuple[int, int]], progress: Progress) -> None:
    """Per partition, seek a fresh consumer (one partition cannot hold up another's reads, as one
    whose offsets the system refuses does in a consumer holding both) to offsets of its unread range
    [position, end) and read on from each until the next probed offset, until nothing new comes for
    PROBE_QUIET_S, or until PROBE_BUDGET_S (for all probes) runs out; every probe is a
    ``readback-probe`` phase row."""
    progress.enter("read-back probes", expected_s=PROBE_BUDGET_S)
    deadline = time.monotonic() + PROBE_BUDGET_S
    epoch = 1  # the sequential pass was session 1: each probe is a session of its own after it
    for partition, (position, end) in sorted(short.items()):
        points = probe_points(position, end)
        if time.monotonic() >= deadline:
            for start, stop in zip(points, [*points[1:], end], strict=True):
                ctx.phase("readback-probe", partition=partition, start=start, stop=stop, skipped=True,
                          reason=f"the probes' {PROBE_BUDGET_S:.0f} s budget ran out")
            continue
        try:  # no automatic reset: an offset the system calls out of range is recorded as such, not reread from 0
            consumer = clients.consumer(ctx.profile, client_id=f"{ctx.run_id}-{READBACK}-probe-{partition}",
                                        group_id=None, auto_offset_reset="none")
        except Exception as exc:
            ctx.phase("readback-probe", partition=partition, start=position, stop=end, skipped=True,
                      reason=f"no probe consumer: {error_text(exc)}")
            continue
        session = ConsumerSession(READBACK, consumer, epoch=epoch)
        try:
            for start, stop in zip(points, [*points[1:], end], strict=True):
                if time.monotonic() >= deadline:
                    ctx.phase("readback-probe", partition=partition, start=start, stop=stop, skipped=True,
                              reason=f"the probes' {PROBE_BUDGET_S:.0f} s budget ran out")
                    continue
                _probe(ctx, session, partition, start, stop, deadline)
        finally:
            epoch = session.epoch
            with contextlib.suppress(Exception):
                consumer.close()


def _probe(ctx: RunContext, session: ConsumerSession, partition: int, start: int, stop: int,
           deadline: float) -> None:
    """One probe: seek to start, read until stop (exclusive), quiet for PROBE_QUIET_S, or the deadline."""
    tp = TopicPartition(ctx.topic, partition)
    began = time.monotonic()
    served, failed_polls, reached, error = 0, 0, start, ""
    try:
        record_assignment(ctx, session, "assign", [partition])
        session.consumer.assign([tp])
        session.consumer.seek(tp, start)
        heard = time.monotonic()
        while time.monotonic() < deadline and reached < stop and time.monotonic() - heard < PROBE_QUIET_S:
            result = poll_once(ctx, session)
            if result is None:  # recorded as an info poll row with the error (e.g. offset out of range)
                failed_polls += 1
                time.sleep(PROBE_RETRY_S)  # a refusal comes back at once: a few rows, not hundreds
                continue
            highest = result.highest.get(partition, -1)
            if highest >= reached:
                served += result.records
                reached, heard = highest + 1, time.monotonic()
    except Exception as exc:
        error = error_text(exc)
    reason = ("reached the next probed offset" if reached >= stop else error
              or ("the probes' budget ran out" if time.monotonic() >= deadline
                  else f"nothing new for {PROBE_QUIET_S:.0f} s"))
    ctx.phase("readback-probe", partition=partition, session=session.epoch, start=start, stop=stop,
              reached=reached, served=served, failed_polls=failed_polls, reason=reason,
              elapsed_s=round(time.monotonic() - began, 2))


def read_back(ctx: RunContext, progress: Progress) -> None:
    """Open and run the read-back in one go (nothing to drain in between)."""
    opened = ReadBack.open(ctx)
    if opened is not None:
        try:
            opened.run(progress)
        finally:
            opened.close()


def _broke_off(ctx: RunContext, exc: BaseException, started: float) -> None:
    """The history says the read-back broke off, and why."""
    ctx.phase("readback-end", positions={}, timed_out=False, error=error_text(exc),
              elapsed_s=round(time.monotonic() - started, 2))
    ctx.note(f"the read-back failed: {error_text(exc)}")


def _partitions(ctx: RunContext, consumer) -> list[TopicPartition]:
    """The topic's partitions from metadata, waiting (bounded) for them to appear; the configured
    count is used only when metadata never lists the topic (and the history says so)."""
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    found: set[int] = set()
    while time.monotonic() < deadline and not found:
        found = consumer.partitions_for_topic(ctx.topic)
        if not found:
            time.sleep(0.2)
    if not found:
        ctx.note(f"metadata never listed {ctx.topic}; reading the {ctx.config.partitions} configured partition(s)")
        found = set(range(ctx.config.partitions))
    return [TopicPartition(ctx.topic, p) for p in sorted(found)]


def _end_offsets(ctx: RunContext, consumer, partitions: list[TopicPartition]) -> dict[int, int] | None:
    """ListOffsets(latest) for every partition, recorded as an end-offsets row (info when it failed)."""
    op = ctx.recorder.next_op()
    invoke_ns, wall_ns = now()
    try:
        ends = {tp.partition: int(o) for tp, o in consumer.end_offsets(partitions, timeout_ms=10_000).items()}
    except Exception as exc:
        ctx.recorder.record(op_id=op, process=READBACK, f="end-offsets", type="info", invoke_ns=invoke_ns,
                            complete_ns=time.monotonic_ns(), wall_ns=wall_ns, topic=ctx.topic, error=error_text(exc))
        return None
    ctx.recorder.record(op_id=op, process=READBACK, f="end-offsets", type="ok", invoke_ns=invoke_ns,
                        complete_ns=time.monotonic_ns(), wall_ns=wall_ns, topic=ctx.topic,
                        detail=json.dumps({"end_offsets": ends, "partitions": "metadata"}))
    return ends


def _positions(consumer, partitions: list[TopicPartition]) -> dict[int, int]:
    """Where the read-back stands per partition (partitions without a position yet are left out)."""
    positions = {}
    for tp in partitions:
        with contextlib.suppress(Exception):
            position = consumer.position(tp, timeout_ms=1000)
            if position is not None:
                positions[tp.partition] = int(position)
    return positions
