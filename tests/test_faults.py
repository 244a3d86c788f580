"""Fault drivers against the real embedded stack, and the schedule that runs them."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from k6suite_lib import metrics
from k6suite_lib.faults.base import Fault
from k6suite_lib.faults.network import Bandwidth, BlackHole, Latency, Outage, ResetPeer
from k6suite_lib.faults.process import AddBrokers, BrokerKill, BrokerPause, BrokerRestart
from k6suite_lib.faults.schedule import Schedule, Step
from k6suite_lib.history import Recorder, fault_windows
from k6suite_lib.stack.process import process_state
from k6suite_lib.workload import WorkloadConfig, run_workload


class Noted(Fault):
    """A fault that only notes calls: the schedule's own logic is what is under test here."""

    role = "broker"

    def __init__(self, name: str, log: list[str], fail_on: str = ""):
        self.name, self.log, self.fail_on = name, log, fail_on

    @property
    def target(self) -> str:
        return "nothing"

    def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail_on == "start":
            raise RuntimeError("cannot start")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_schedule_records_windows_in_order():
    log: list[str] = []
    recorder = Recorder("r")
    a, b = Noted("a", log), Noted("b", log)
    Schedule.windows([(a, 0.0, 0.2), (b, 0.1, 0.3)])(recorder, threading.Event())
    assert log == ["start a", "start b", "stop a", "stop b"]
    windows = fault_windows(recorder.frame())
    assert list(windows["fault"]) == ["a", "b"]
    assert ((windows["end_ns"] - windows["start_ns"]) / 1e9 >= [0.15, 0.25]).all()


def test_schedule_heals_everything_when_stopped_early_and_records_failures():
    log: list[str] = []
    recorder = Recorder("r")
    stop = threading.Event()
    schedule = Schedule([Step(0.0, "start", Noted("a", log)), Step(0.0, "start", Noted("bad", log, "start")),
                         Step(30.0, "stop", Noted("a", log))])
    thread = threading.Thread(target=schedule, args=(recorder, stop))
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert log[:2] == ["start a", "start bad"] and set(log[2:]) == {"stop a", "stop bad"}
    rows = recorder.frame()
    failed = rows[rows["type"] == "info"]
    assert len(failed) == 1 and "cannot start" in failed["error"].iloc[0]
    assert json.loads(failed["detail"].iloc[0])["phase"] == "start"


def test_schedule_rejects_unknown_actions():
    with pytest.raises(ValueError, match="starts or stops"):
        Schedule([Step(0, "pause", Noted("a", []))])


def test_tcp_traffic_reads_what_a_listener_received_from_the_kernel():
    """What network faults measure through Toxiproxy's listener (Toxiproxy counts bytes only when a connection
    closes): here a real listener on 127.0.0.1, before and after a client sends 5000 bytes."""
    import socket

    from k6suite_lib.probes import tcp_traffic

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                before = tcp_traffic(port)
                client.sendall(b"x" * 5000)
                assert accepted.recv(5000, socket.MSG_WAITALL) == b"x" * 5000
                after = tcp_traffic(port)
                sender = client.getsockname()[1]
    assert [c["remote_port"] for c in after] == [sender] == [c["remote_port"] for c in before]
    assert after[0]["bytes_received"] - before[0]["bytes_received"] == 5000
    assert after[0]["last_data_recv_ms"] < 5000


@pytest.mark.stack
def test_kill_really_kills_and_restart_serves(shared_stack):
    stack, _ = shared_stack
    broker = stack.fault_target()
    fault = BrokerKill(stack, broker)
    victim = stack.record(f"broker-{broker}")
    fault.start()
    assert process_state(victim) == "dead"
    fault.stop()
    assert process_state(stack.record(f"broker-{broker}")) == "running"
    assert stack.status()["healthy"].all()


@pytest.mark.stack
def test_pause_freezes_and_bounce_restarts(shared_stack):
    stack, _ = shared_stack
    pause = BrokerPause(stack, 2)
    pause.start()
    assert process_state(stack.record("broker-2")) == "stopped"
    pause.stop()
    assert process_state(stack.record("broker-2")) == "running"
    before = stack.record("broker-2").pid
    BrokerRestart(stack, 2, grace_s=3).start()
    assert stack.record("broker-2").pid != before and stack.status()["healthy"].all()


@pytest.mark.stack
def test_storage_latency_is_seen_in_the_brokers_s3_latency_metric(single_stack):
    stack, profile = single_stack
    latency = Latency(stack.toxiproxy, "storage", 300, 20)
    with metrics.Sampler(profile.metrics_urls, interval_s=1.0) as sampler:
        latency.start()
        try:
            run_workload(profile, WorkloadConfig(records=None, duration_s=5, rate=20, consumers=0,
                                                 consumer_mode="none", readback=False))
        finally:
            latency.stop()
    s3 = metrics.series(sampler.frame(), "kafscale_s3_latency_ms_avg")
    assert s3["value"].max() >= 300, s3
    assert stack.toxiproxy.toxics("storage") == []
    assert latency.through["bytes"] > 0, latency.through  # the brokers' uploads went through the toxic


@pytest.mark.stack
def test_network_faults_act_on_the_storage_path(single_stack):
    stack, _ = single_stack
    minio = f"http://127.0.0.1:{stack.layout.storage_proxy_port}/minio/health/live"
    for fault in (Bandwidth(stack.toxiproxy, "storage", 1), BlackHole(stack.toxiproxy, "storage"),
                  ResetPeer(stack.toxiproxy, "storage")):
        fault.start()
        assert {t["type"] for t in stack.toxiproxy.toxics("storage")} == {fault.kind}
        fault.stop()
        assert stack.toxiproxy.toxics("storage") == []
    outage = Outage(stack.toxiproxy, "storage")
    with requests.Session() as kept:  # a kept-alive connection that carried data just before the cut
        assert kept.get(minio, timeout=5).ok
        outage.start()
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(minio, timeout=2)
    finally:
        outage.stop()
    assert requests.get(minio, timeout=5).ok
    assert outage.cut["recent"] >= 1 and outage.cut["last_data_ms"] < 5000, outage.cut
    with pytest.raises(ValueError, match="network faults act on"):
        Latency(stack.toxiproxy, "broker", 1)


@pytest.mark.stack
def test_added_broker_really_serves(tmp_path):
    from k6suite_lib import probes
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.stack import open_stack
    from tests.conftest import port_base_for, write_profile

    profile = load_profile(write_profile(tmp_path, "grow", port_base_for(23200), 1))
    stack = open_stack(profile, log=lambda _msg: None)
    stack.up()
    try:
        fault = AddBrokers(stack, 1)
        fault.start()
        assert fault.added == [1] and stack.snapshot_broker_ids() == [0, 1]
        ports = {0: stack.layout.broker_port(0), 1: stack.layout.broker_port(1)}
        deadline = time.monotonic() + 30  # the proxy re-reads the snapshot every 3 s; a busy machine is slower
        while True:
            time.sleep(3)
            spread = probes.connection_spread(probes.endpoint(profile), ports, 10)
            if spread.set_index("broker").loc[1, "connections"] >= 1 or time.monotonic() > deadline:
                break
        assert spread.set_index("broker").loc[1, "connections"] >= 1, spread
    finally:
        stack.down()
