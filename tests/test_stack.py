"""The embedded stack on real processes: lifecycle, broker operations, and nothing left behind."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import requests

from k6suite_lib.checkers import AnomalyRules
from k6suite_lib.profiles import load_profile
from k6suite_lib.stack import StackError, open_stack
from k6suite_lib.stack.etcd import SNAPSHOT_KEY
from k6suite_lib.stack.process import process_state
from k6suite_lib.workload import WorkloadConfig, run_workload
from tests.conftest import assert_all_dead, assert_clean, port_base_for, verdicts_of, write_profile

pytestmark = pytest.mark.stack
LIFECYCLE_PORT_BASE = port_base_for(20800)


def round_trip(profile, label: str) -> None:
    """Produce identified records through the single endpoint, read them all back, judge them."""
    result = run_workload(profile, WorkloadConfig(records=20, producers=1, consumers=0, consumer_mode="none",
                                                 label=label, readback_timeout_s=20))
    assert_clean(verdicts_of(result.history, AnomalyRules(min_acked=20, max_unacked=0)))


def _cli(*args: str, env_outputs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k6suite_lib.cli", *args], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "K6SUITE_OUTPUTS": str(env_outputs)})


def test_lifecycle_kill_restart_and_nothing_left_behind(tmp_path, outputs_dir):
    profile_path = write_profile(tmp_path, "lifecycle", LIFECYCLE_PORT_BASE, 3)
    up = _cli("stack", "up", "--profile", str(profile_path), env_outputs=outputs_dir)
    assert up.returncode == 0, up.stderr
    # the CLI process has exited: from here on the stack is driven from its saved state only
    profile = load_profile(profile_path)
    stack = open_stack(profile, log=lambda _msg: None)
    records = list(stack.records.values())
    try:
        status = _cli("stack", "status", "--profile", str(profile_path), env_outputs=outputs_dir)
        assert status.returncode == 0, status.stdout + status.stderr
        for component in ("etcd", "minio", "toxiproxy", "broker-0", "broker-1", "broker-2", "proxy"):
            assert component in status.stdout
        table = stack.status()
        assert table["healthy"].all(), table.to_string()
        assert stack.snapshot_broker_ids() == [0, 1, 2]

        round_trip(profile, "before-kill")

        victim = stack.record("broker-1")
        stack.kill(1)
        assert process_state(victim) == "dead"
        assert not stack.status().set_index("component").loc["broker-1", "healthy"]
        stack.restart(1)
        assert stack.record("broker-1").pid != victim.pid
        assert stack.status()["healthy"].all()

        round_trip(profile, "after-restart")
        records = list(stack.records.values())
    finally:
        down = _cli("stack", "down", "--profile", str(profile_path), env_outputs=outputs_dir)
    assert down.returncode == 0, down.stderr
    assert_all_dead(records)
    assert open_stack(profile).records == {}


def test_broker_signals_pause_terminate_and_add(tmp_path, outputs_dir):
    profile = load_profile(write_profile(tmp_path, "signals", LIFECYCLE_PORT_BASE + 400, 1))
    stack = open_stack(profile, log=lambda _msg: None)
    stack.up()
    try:
        stack.pause(0)
        assert process_state(stack.record("broker-0")) == "stopped"
        stack.resume(0)
        assert process_state(stack.record("broker-0")) == "running"

        new_id = stack.add_broker()
        assert new_id == 1
        assert stack.snapshot_broker_ids() == [0, 1]
        raw, _ = stack.etcd.get(SNAPSHOT_KEY)
        assert {b["Port"] for b in json.loads(raw)["Brokers"]} == {stack.layout.broker_port(0),
                                                                  stack.layout.broker_port(1)}
        assert stack.status()["healthy"].all()

        how = stack.terminate(1, grace_s=5)
        assert how in ("terminated", "killed")
        assert process_state(stack.record("broker-1")) == "dead"
        round_trip(profile, "after-terminate")
        records = list(stack.records.values())
    finally:
        stack.down()
    assert_all_dead(records)


def test_up_refuses_a_second_stack_on_the_same_ports(single_stack):
    stack, _ = single_stack
    twin = type(stack)(stack.layout, log=lambda _msg: None)
    with pytest.raises(Exception, match="already running"):
        twin.up()


def test_up_refuses_ports_held_by_a_stack_it_does_not_know(single_stack, tmp_path):
    """A stack left running by another checkout or test session has no record here; starting on
    its ports would talk to its MinIO with other credentials, so up() must refuse and name them."""
    stack, _ = single_stack
    stranger = type(stack)(dataclasses.replace(stack.layout, outputs=tmp_path / "elsewhere"), log=lambda _msg: None)
    with pytest.raises(StackError, match=f"ports {stack.layout.minio_port}, .* already in use"):
        stranger.up()
    assert not stranger.records  # nothing was started


def test_down_all_stops_every_recorded_stack(tmp_path, monkeypatch):
    own_outputs = tmp_path / "outputs"  # --all must not reach the session's shared stacks
    monkeypatch.setenv("K6SUITE_OUTPUTS", str(own_outputs))
    profile_path = write_profile(tmp_path, "downall", LIFECYCLE_PORT_BASE + 800, 1)
    assert _cli("stack", "up", "--profile", str(profile_path), env_outputs=own_outputs).returncode == 0
    records = list(open_stack(load_profile(profile_path)).records.values())
    result = _cli("stack", "down", "--all", env_outputs=own_outputs)
    assert result.returncode == 0, result.stderr
    assert "broker-0 terminated" in result.stdout or "broker-0 killed" in result.stdout
    assert_all_dead(records)


def test_a_filled_etcd_is_named_by_its_health_and_cleared_by_heal(tmp_path):
    """A real etcd with a 1 MiB quota, one key rewritten until NOSPACE (history, not live data, fills
    it, as KafScale's group records did): health names the alarm, clear_nospace() makes it writable.
    The stack's heal() uses exactly this on its own etcd between scenarios."""
    from k6suite_lib.stack.binaries import binary_path
    from k6suite_lib.stack.etcd import EtcdGateway
    from k6suite_lib.stack.process import spawn, stop, wait_ready

    client, peer = "http://127.0.0.1:19110", "http://127.0.0.1:19111"
    etcd = spawn("etcd", "metadata", [
        str(binary_path("etcd")), "--name", "tiny", "--data-dir", str(tmp_path / "etcd"),
        "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer, "--initial-cluster", f"tiny={peer}",
        "--quota-backend-bytes", str(1024 * 1024), "--log-level", "error",
    ], {}, tmp_path / "etcd.log", [19110, 19111])
    try:
        gateway = EtcdGateway(client)
        wait_ready(etcd, gateway.health, 30)
        for _ in range(200):  # 200 versions × 64 KiB of one key: far beyond 1 MiB of history
            try:
                gateway.put("/group/metadata", "x" * 65536)
            except requests.HTTPError:
                break
        assert "NOSPACE" in (gateway.health() or ""), gateway.health()
        with pytest.raises(requests.HTTPError):
            gateway.put("/after", "refused while the alarm is raised")

        gateway.clear_nospace()
        assert gateway.health() is None and gateway.alarms() == []
        gateway.put("/after", "accepted again")
        assert gateway.get("/after")[0] == b"accepted again"
    finally:
        stop(etcd)


def test_a_component_that_died_during_a_scenario_fails_it_and_is_repaired(single_stack):
    """The audit's case: a broker (or the proxy) that died outside the fault schedule was restarted
    between scenarios and named only in a note; the scenario passed and the run exited 0."""
    from k6suite_lib.runner import SCENARIOS, STACK_CHECK, _check_stack_after

    stack, _ = single_stack
    result = {"verdicts": [], "passed": True}
    _check_stack_after(stack, SCENARIOS["S3"], result, log=lambda _msg: None)
    assert result["passed"] and result["verdicts"][-1]["status"] == "PASS"
    stack.kill(0)
    _check_stack_after(stack, SCENARIOS["S3"], result, log=lambda _msg: None)
    row = result["verdicts"][-1]
    assert (row["check"], row["status"], row["measured"]) == (STACK_CHECK, "FAIL", "broker-0")
    assert not result["passed"] and stack.status()["healthy"].all()
