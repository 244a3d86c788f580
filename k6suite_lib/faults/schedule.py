"""A fault schedule: faults started and stopped at set times beside a workload, recorded in its history.

Each start and stop becomes a history row (f = fault, detail = {"fault", "phase", "target", ...}),
typed ok when it took effect and info when applying it failed (the error says why). Whatever
happens — the workload ends early, a step raises — every started fault is stopped before the
schedule returns, so a run never leaves a broker down or a toxic in place.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from k6suite_lib.faults.base import Fault
from k6suite_lib.history import Recorder, now


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
        started = time.monotonic()
        active: list[Fault] = []
        try:
            for step in self.steps:
                wait = started + step.at_s - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                self._apply(recorder, step, active)
        finally:
            for fault in list(active):
                self._apply(recorder, Step(time.monotonic() - started, "stop", fault), active)

    def _apply(self, recorder: Recorder, step: Step, active: list[Fault]) -> None:
        fault = step.fault
        invoke_ns, wall_ns = now()
        error = ""
        try:
            (fault.start if step.action == "start" else fault.stop)()
        except Exception as exc:  # recorded: a fault that could not be applied is evidence too
            error = f"{type(exc).__name__}: {exc}"[:500]
        if step.action == "start":
            active.append(fault)
        elif fault in active:
            active.remove(fault)
        detail = {"fault": fault.name, "phase": "start" if step.action == "start" else "end", "role": fault.role,
                  "target": fault.target, **fault.parameters()}
        recorder.record(op_id=recorder.next_op(), process="nemesis", f="fault", type="info" if error else "ok",
                        invoke_ns=invoke_ns, complete_ns=time.monotonic_ns(), wall_ns=wall_ns,
                        error=error, detail=json.dumps(detail, default=str))
        if self.on_step:
            self.on_step(step)
