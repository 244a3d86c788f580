"""Supervised local processes: start, signal, wait, and prove a PID is still ours.

A PID alone can be reused by the kernel, so every record also keeps the process start time
(field 22 of /proc/<pid>/stat). A record only ever signals the process it started; after the
harness itself crashed, `down` can still find and stop everything from the saved records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

POLL_S = 0.05


class StackError(RuntimeError):
    """A stack component failed to start, stop or answer; the message carries its log tail."""


@dataclass
class ProcessRecord:
    name: str
    role: str
    pid: int
    start_ticks: int
    argv: list[str]
    log: str
    ports: list[int] = field(default_factory=list)
    started_wall: float = 0.0
    log_offset: int = 0  # where this start's output begins in the (appended) log file

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ProcessRecord:
        return cls(**data)


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may hold spaces; fields after the last ')' are fixed
    return raw[raw.rindex(")") + 2:].split()


def _threads(pid: int) -> int:
    """How many threads the process still has (0 when it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0


def start_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def process_state(record: ProcessRecord) -> str:
    """'running', 'stopped' (SIGSTOP), or 'dead' (gone, zombie, or PID reused by someone else).

    A zombie main thread is not a dead process while other threads of it still run: an exiting JVM's
    main thread can show 'Z' while its other threads still hold its listening ports, and a stack
    brought down then could not start again on them (S6's second repeat found its port busy)."""
    fields = _stat(record.pid)
    if fields is None or int(fields[19]) != record.start_ticks:
        return "dead"
    state = fields[0]
    if state in ("Z", "X"):
        return "running" if _threads(record.pid) > 1 else "dead"
    if state in ("T", "t"):
        return "stopped"
    return "running"


def is_alive(record: ProcessRecord) -> bool:
    return process_state(record) != "dead"


_children: dict[int, subprocess.Popen] = {}


def spawn(name: str, role: str, argv: list[str], env: dict[str, str], log_path: Path,
          ports: list[int], cwd: Path | None = None) -> ProcessRecord:
    """Start a process in its own session, logging stdout and stderr to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        log.write(f"\n--- k6suite: starting {name} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    _children[proc.pid] = proc
    ticks = start_ticks(proc.pid)
    if ticks is None:
        raise StackError(f"{name} exited immediately; see {log_path}\n{log_tail(log_path)}")
    return ProcessRecord(name=name, role=role, pid=proc.pid, start_ticks=ticks, argv=argv,
                         log=str(log_path), ports=ports, started_wall=time.time(), log_offset=offset)


def send_signal(record: ProcessRecord, sig: signal.Signals) -> bool:
    """Signal the process only if it is still the one we started; False if it is gone."""
    if not is_alive(record):
        return False
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_dead(record: ProcessRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    child = _children.get(record.pid)
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            _children.pop(record.pid, None)
            return True
        if not is_alive(record):
            return True
        time.sleep(POLL_S)
    return False


def stop(record: ProcessRecord, grace_s: float = 5.0) -> str:
    """SIGCONT (a paused process cannot exit), SIGTERM, then SIGKILL after grace_s.

    Returns how the process ended: 'gone' (already dead), 'terminated' or 'killed'.
    """
    if not is_alive(record):
        return "gone"
    send_signal(record, signal.SIGCONT)
    send_signal(record, signal.SIGTERM)
    if wait_dead(record, grace_s):
        return "terminated"
    send_signal(record, signal.SIGKILL)
    if not wait_dead(record, 10.0):
        raise StackError(f"{record.name} (pid {record.pid}) survived SIGKILL")
    return "killed"


def log_since_start(record: ProcessRecord) -> str:
    """This start's part of the log (a restarted component appends to the same file)."""
    try:
        with open(record.log, "rb") as handle:
            handle.seek(record.log_offset)
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def log_tail(path: Path | str, lines: int = 20) -> str:
    from k6suite_lib.secrets import redact

    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return redact("\n".join(text.splitlines()[-lines:]))


def wait_ready(record: ProcessRecord, check: Callable[[], str | None], timeout_s: float) -> None:
    """Poll check() until it returns None (ready); fail fast if the process dies.

    check returns None when ready, else a short reason kept for the error message.
    """
    deadline = time.monotonic() + timeout_s
    reason = "not checked"
    while time.monotonic() < deadline:
        if not is_alive(record):
            raise StackError(f"{record.name} exited during start-up; log tail:\n{log_tail(record.log)}")
        try:
            reason = check()
        except Exception as exc:  # any failure of a probe means "not ready yet"
            reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            return
        time.sleep(0.1)
    raise StackError(f"{record.name} not ready after {timeout_s:.0f} s ({reason}); log tail:\n"
                     f"{log_tail(record.log)}")
