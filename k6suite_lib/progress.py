"""Where a scenario's time goes, and what it is doing now.

A scenario runs as a sequence of phases: stack checks, then per workload set-up, warm-up, fault,
recovery, drain and read-back, then judging and plots. Each phase is timed into results.json (the
report's time table and the before/after benchmark read it) and shown while it runs:

- in JupyterLab or on a terminal, a tqdm bar per phase (a widget in JupyterLab) whose length is the
  phase's expected seconds, with acknowledged and read counts and the active fault beside it, so
  elapsed and remaining time are on screen;
- in CI (``CI=true``) or without a terminal, one line per phase and nothing else;
- in a notebook the runner executes (``K6SUITE_HEADLESS`` set), nothing in the notebook: the live
  state goes to ``progress.json`` beside the results, and the runner shows it in its own console.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

HEADLESS_ENV = "K6SUITE_HEADLESS"
PROGRESS_FILE = "progress.json"
WRITE_EVERY_S = 1.0
MIN_PHASE_S = 0.01  # a phase left at once (a step's probes before its workload's set-up) is not worth a row


@dataclass(frozen=True)
class PhaseTime:
    variant: str
    phase: str
    started_s: float  # since the scenario opened
    duration_s: float


def display_mode() -> str:
    """'file' in a notebook the runner executes, else the console's mode."""
    return "file" if os.environ.get(HEADLESS_ENV) else console_mode()


def console_mode() -> str:
    """'lines' in CI or without a terminal, else 'bar' (JupyterLab counts as a terminal)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return "lines"
    if in_notebook() or sys.stderr.isatty():
        return "bar"
    return "lines"


def in_notebook() -> bool:
    """Running inside a Jupyter kernel (not merely a process that imported ipykernel, like papermill's)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class Progress:
    """The phases of one scenario: timed, and shown as they happen (see the module docstring)."""

    def __init__(self, scenario: str, out_dir: Path | None = None, mode: str | None = None) -> None:
        self.scenario = scenario
        self.out_dir = out_dir
        self.mode = mode or display_mode()
        self.variant = ""
        self.phases: list[PhaseTime] = []
        self.counts: dict[str, Any] = {}
        self._opened = time.monotonic()
        self._current: tuple[str, str, float, float | None] | None = None  # variant, phase, start, expected
        self._bar = None
        self._written = 0.0

    def enter(self, phase: str, variant: str | None = None, expected_s: float | None = None) -> None:
        """From now on the scenario is in this phase (the previous one ends here)."""
        self.close()
        if variant is not None:
            self.variant = variant
        self.counts = {}
        self._current = (self.variant, phase, time.monotonic(), expected_s)
        with contextlib.suppress(Exception):  # see update()
            self._show(phase, expected_s)
            self._write(force=True)

    def _show(self, phase: str, expected_s: float | None) -> None:
        label = f"{self.scenario} {self.variant} {phase}".replace("  ", " ")
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=round(expected_s) if expected_s else None, desc=label, unit="s",
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"
                             if expected_s else "{desc}: {elapsed} {postfix}", leave=False)
        elif self.mode == "lines":
            print(f"[{self.scenario}] {self.variant + ' ' if self.variant else ''}{phase}"
                  + (f" (about {expected_s:.0f} s)" if expected_s else ""), flush=True)

    def update(self, **counts: Any) -> None:
        """Live counts (acked, read, fault ...) for the display; cheap enough to call every 0.2 s. The
        display never fails a run: a full disk or a broken widget only costs the display."""
        self.counts.update(counts)
        with contextlib.suppress(Exception):
            if self._bar is not None and self._current is not None:
                elapsed = time.monotonic() - self._current[2]
                self._bar.n = min(round(elapsed), self._bar.total) if self._bar.total else round(elapsed)
                self._bar.set_postfix_str(self._postfix(), refresh=True)
            self._write()

    def close(self) -> None:
        """End the current phase (the scenario finished, or a new phase begins)."""
        if self._current is None:
            return
        variant, phase, start, _ = self._current
        duration = time.monotonic() - start
        if duration >= MIN_PHASE_S:
            self.phases.append(PhaseTime(variant, phase, round(start - self._opened, 2), round(duration, 2)))
        self._current = None
        if self._bar is not None:
            with contextlib.suppress(Exception):
                self._bar.close()
            self._bar = None

    def records(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.phases]

    def _postfix(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.counts.items() if v not in (None, ""))

    def _write(self, force: bool = False) -> None:
        if self.out_dir is None or self._current is None or (not force and time.monotonic() - self._written
                                                              < WRITE_EVERY_S):
            return
        variant, phase, start, expected = self._current
        state = {"scenario": self.scenario, "variant": variant, "phase": phase, "expected_s": expected,
                 "elapsed_s": round(time.monotonic() - start, 1), "counts": self.counts,
                 "phases_done": len(self.phases)}
        path = self.out_dir / PROGRESS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, default=str))
        tmp.replace(path)  # the runner never reads half a file
        self._written = time.monotonic()


def phase_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Seconds per phase (summed over variants) from results.json's phase records."""
    if not records:
        return pd.DataFrame(columns=["phase", "seconds", "times"])
    frame = pd.DataFrame(records)
    grouped = frame.groupby("phase", sort=False)["duration_s"]
    return pd.DataFrame({"seconds": grouped.sum().round(1), "times": grouped.size()}).reset_index()


PHASE_ORDER = ("stack checks", "probes", "set-up", "writes and own reads", "traffic", "warm-up", "fault", "recovery",
               "drain", "read-back", "read-back probes", "judge", "plots", "notebook overhead", "stack check after")


def scenario_times(scenarios: list[dict[str, Any]]) -> pd.DataFrame:
    """Seconds per phase per scenario (rows) from a run's results, with each scenario's wall time:
    the table the report shows and the before/after benchmark compares."""
    rows = {}
    for result in scenarios:
        table = phase_table(result.get("phases", []))
        row = dict(zip(table["phase"], table["seconds"], strict=True))
        row["total"] = round(result.get("wall_s", result.get("duration_s", 0.0)), 1)
        rows[result["scenario"]] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    known = [p for p in PHASE_ORDER if p in frame.columns]
    others = [c for c in frame.columns if c not in known and c != "total"]
    return frame.reindex(columns=[*known, *others, "total"]).fillna(0.0).round(1)


def read_state(out_dir: Path) -> dict[str, Any] | None:
    """The live state a headless notebook wrote, or None (not started, or mid-replace)."""
    try:
        return json.loads((out_dir / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
