"""A fault schedule: faults started and stopped at set times beside a workload, recorded in its history.

Each start and stop becomes a history row (f = fault, detail = {"fault", "phase", "target", ...}),
typed ok when it took effect and info when applying it failed (the error says why). Whatever
happens — the workload ends early, a step raises — every started fault is stopped before the
schedule returns, so a run never leaves a broker down or a toxic in place.

Step times are the latest they happen: once the workload says its traffic is steady (consumers
polled and own every partition, every partition acknowledged), every step comes earlier by the
same amount, keeping BASELINE_S of steady traffic before the first fault and every window's length.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from k6suite_lib.faults.base import Fault
from k6suite_lib.history import Recorder, now

BASELINE_S = 3.0  # steady, fault-free traffic before the first fault, at least


@dataclass(frozen=True)
class Step:
    at_s: float  # seconds after the workload started
    action: str  # "start" | "stop"
    fault: Fault


class Schedule:
    """Callable as a workload nemesis: schedule(recorder, stop_event)."""

    def __init__(self, steps: list[Step], on_step: Callable[[Step], None] | None = None):
        for step in steps:
            if step.action not in ("start", "stop"):
                raise ValueError(f"a step starts or stops a fault, not {step.action!r}")
        self.steps = sorted(steps, key=lambda s: s.at_s)
        self.on_step = on_step
        self.active: list[Fault] = []  # faults in effect now (read by the workload's progress display)
        self.applied = 0  # steps applied so far
        # Set by the workload once its traffic is steady: the first step may then come early, but never
        # less than BASELINE_S after it (fault-free traffic to compare with). Unset, times are as given.
        self.steady = threading.Event()
        self.shifted_s = 0.0  # how much earlier than given every step came

    @classmethod
    def window(cls, fault: Fault, start_s: float, duration_s: float) -> Schedule:
        return cls([Step(start_s, "start", fault), Step(start_s + duration_s, "stop", fault)])

    @classmethod
    def windows(cls, faults: list[tuple[Fault, float, float]]) -> Schedule:
        """Several (fault, start_s, duration_s) windows."""
        return cls([step for fault, start, duration in faults for step in cls.window(fault, start, duration).steps])

    @property
    def length_s(self) -> float:
        return max((s.at_s for s in self.steps), default=0.0)

    def __call__(self, recorder: Recorder, stop: threading.Event) -> None:
        started = time.monotonic() - self._early(stop)
        try:
            for step in self.steps:
                wait = started + step.at_s - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                self._apply(recorder, step)
        finally:
            for fault in list(self.active):
                self._apply(recorder, Step(time.monotonic() - started, "stop", fault))

    def _early(self, stop: threading.Event) -> float:
        """Wait until the workload is steady (bounded by the first step's time), then say how much
        earlier than given the steps may come: a fixed warm-up becomes a bounded wait on a condition."""
        started = time.monotonic()
        first = self.steps[0].at_s if self.steps else 0.0
        deadline = started + max(first - BASELINE_S, 0.0)
        while time.monotonic() < deadline and not stop.is_set():
            if self.steady.wait(min(0.1, max(deadline - time.monotonic(), 0.0))):
                self.shifted_s = max(deadline - time.monotonic(), 0.0)
                break
        return self.shifted_s

    def _apply(self, recorder: Recorder, step: Step) -> None:
        fault = step.fault
        invoke_ns, wall_ns = now()
        error = ""
        self.applied += 1
        if step.action == "start":  # in effect while it is being applied, until its stop has healed
            self.active.append(fault)
        try:
            (fault.start if step.action == "start" else fault.stop)()
        except Exception as exc:  # recorded: a fault that could not be applied is evidence too
            error = f"{type(exc).__name__}: {exc}"[:500]
        if step.action == "stop" and fault in self.active:
            self.active.remove(fault)
        detail = {"fault": fault.name, "phase": "start" if step.action == "start" else "end", "role": fault.role,
                  "target": fault.target, **fault.parameters()}
        recorder.record(op_id=recorder.next_op(), process="nemesis", f="fault", type="info" if error else "ok",
                        invoke_ns=invoke_ns, complete_ns=time.monotonic_ns(), wall_ns=wall_ns,
                        error=error, detail=json.dumps(detail, default=str))
        if self.on_step:
            self.on_step(step)
