"""KafScale on a real Kubernetes control plane: the fault driver's actions carried out by real controllers
on real broker processes.

One stack for the module (profiles/k8s.yaml on a test port base, 2 brokers): kube-apiserver,
kube-controller-manager, kube-scheduler and the node that runs pods as processes, KafScale deployed by
its operator. Nothing here is recorded or faked; the node's own record of its pods (pods.json: the PID
of each broker process) is how a test sees that a fault landed on a process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from k6suite_lib import probes
from k6suite_lib.faults.kubernetes import KubernetesDriver, PodKill, RolloutRestart, ScaleTo
from k6suite_lib.profiles import load_profile
from k6suite_lib.stack import binaries, open_stack
from k6suite_lib.stack.kafscale_k8s import is_alive_pid
from tests.conftest import port_base_for, without_idempotence_on_kafscale

K8S_PORT_BASE = port_base_for(27600)


@pytest.fixture(scope="module")
def k8s_stack(tmp_path_factory, isolated_outputs):
    raw = without_idempotence_on_kafscale(yaml.safe_load(Path("profiles/k8s.yaml").read_text()))
    raw.update(name="test-k8s", stack={"brokers": 2, "port_base": K8S_PORT_BASE, "kubernetes": True})
    path = tmp_path_factory.mktemp("k8s") / "test-k8s.yaml"
    path.write_text(yaml.safe_dump(raw))
    profile = load_profile(path)
    stack = open_stack(profile, log=lambda _msg: None)
    binaries.install(systems=[stack.system], log=lambda _msg: None)
    stack.up()
    try:
        yield stack, profile
    finally:
        pids = stack.broker_pids()
        stack.down()
        leftovers = [pid for pid in pids.values() if is_alive_pid(pid)]
        assert not leftovers, f"broker processes left running: {leftovers}"


def _driver(profile) -> KubernetesDriver:
    return KubernetesDriver.from_profile(profile)


def _wait_pids(stack, names, timeout_s: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    pids = stack.broker_pids()
    while time.monotonic() < deadline and not all(n in pids for n in names):
        time.sleep(0.5)
        pids = stack.broker_pids()
    return pids


def test_the_proxy_serves_brokers_the_operator_made(k8s_stack):
    stack, _ = k8s_stack
    answer = probes.metadata(stack.layout.proxy_address, version=1)
    assert answer.ok, answer.describe()
    assert answer.response.brokers, "the proxy lists no broker"
    assert sorted(stack.broker_pids()) == ["kafscale-broker-0", "kafscale-broker-1"]


def test_a_pod_deleted_by_the_driver_is_recreated_and_its_broker_process_restarts(k8s_stack):
    stack, profile = k8s_stack
    driver = _driver(profile)
    before = stack.broker_pids()["kafscale-broker-0"]
    fault = PodKill(driver, pod="kafscale-broker-0", grace_s=0, ready_timeout_s=120)
    fault.start()
    fault.stop()
    assert driver.wait_rolled_out(timeout_s=60)
    after = _wait_pids(stack, ["kafscale-broker-0"])["kafscale-broker-0"]
    assert after != before
    assert not is_alive_pid(before), "the deleted pod's broker process still runs"


def test_a_rollout_restart_replaces_every_broker_one_by_one(k8s_stack):
    stack, profile = k8s_stack
    driver = _driver(profile)
    before = stack.broker_pids()
    seen_ready: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen_ready.append(sum(1 for entry in stack.pods().values() if entry["ready"]
                                  and "broker" in entry["pids"]))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        RolloutRestart(driver, ready_timeout_s=180).start()
    finally:
        done.set()
        watcher.join(5)
    after = _wait_pids(stack, before)
    assert all(after[name] != pid for name, pid in before.items()), (before, after)
    assert not any(is_alive_pid(pid) for pid in before.values())
    assert min(seen_ready) >= len(before) - 1, f"more than one broker down at once: ready counts {seen_ready}"


def test_a_scale_up_adds_brokers_that_serve_clients(k8s_stack):
    stack, profile = k8s_stack
    driver = _driver(profile)
    fault = ScaleTo(driver, 3, ready_timeout_s=180)
    fault.start()
    assert fault.target == "kafscaleclusters/kafscale"
    pods = stack.pods()
    new = pods["kafscale/kafscale-broker-2"]
    answer = probes.api_versions(f"127.0.0.1:{new['ports']['9092']}")
    assert answer.ok, answer.describe()
    assert driver.replicas() == (3, 3)
