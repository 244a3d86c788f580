"""Supervised processes: a process is dead only when every thread of it is gone.

S6 on Kafka with repeats=2 found the scale-out stack's controller port busy on its second repeat: the
first repeat's JVM showed its main thread as a zombie while its other threads still held the port, so
`down` took it for dead and returned. The process here is a real one that does what that JVM did.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from k6suite_lib.stack.base import port_answers
from k6suite_lib.stack.process import _stat, process_state, spawn, stop

# listens, starts a thread that keeps the process alive, then ends its main thread (pthread_exit)
MAIN_THREAD_EXITS_FIRST = """
import ctypes, socket, sys, threading, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
threading.Thread(target=time.sleep, args=(60,)).start()
with open(sys.argv[1], "w") as handle:
    handle.write(str(server.getsockname()[1]))
ctypes.CDLL("libc.so.6").pthread_exit(None)
"""


def test_a_process_whose_main_thread_exited_first_is_alive_until_its_last_thread_ends(tmp_path: Path):
    script, port_file = tmp_path / "linger.py", tmp_path / "port"
    script.write_text(MAIN_THREAD_EXITS_FIRST)
    record = spawn("linger", "broker", [sys.executable, str(script), str(port_file)], {}, tmp_path / "linger.log", [])
    try:
        deadline = time.monotonic() + 30
        while (_stat(record.pid) or ["?"])[0] != "Z":  # the main thread is a zombie, another one runs
            assert time.monotonic() < deadline, "the main thread never exited"
            time.sleep(0.05)
        port = int(port_file.read_text())
        assert port_answers(port) is None  # it still listens
        assert process_state(record) == "running"
    finally:
        ended = stop(record, grace_s=5.0)
    assert ended in ("terminated", "killed")
    assert port_answers(port) is not None, "stop() returned while the process still held its port"
    assert process_state(record) == "dead"
    with socket.socket() as again:  # the port is free for the next stack
        again.bind(("127.0.0.1", port))
