"""KafScale on a real Kubernetes control plane: the fault driver's actions carried out by real controllers
on real broker processes.

One stack for the module (profiles/k8s.yaml on a test port base, 2 brokers): kube-apiserver,
kube-controller-manager, kube-scheduler and the node that runs pods as processes, KafScale deployed by
its operator. Nothing here is recorded or faked; the node's own record of its pods (pods.json: the PID
of each broker process) is how a test sees that a fault landed on a process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from k6suite_lib import clients, probes
from k6suite_lib.faults.kubernetes import (
    KubernetesDriver,
    PodKill,
    PodPause,
    RolloutRestart,
    ScaleTo,
    pid_alive,
    process_state,
)
from k6suite_lib.profiles import load_profile
from k6suite_lib.scenario import storage_prefix
from k6suite_lib.scenarios.s4_broker_chaos import TERMINATE_GRACE_S, _fault
from k6suite_lib.stack import binaries, open_stack
from k6suite_lib.stack.kafscale_k8s import NAMESPACE
from k6suite_lib.stack.state import stack_credentials
from k6suite_lib.storage import read_bucket
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
        leftovers = [pid for pid in pids.values() if pid_alive(pid)]
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


def _runs_the_broker_build(stack, pid: int) -> bool:
    return os.readlink(f"/proc/{pid}/exe") == stack.build.paths["kafscale-broker"]


def _connected(port: int, timeout_s: float = 30) -> socket.socket:
    """A connection to a broker, once it listens: a pod is Ready as soon as its process starts (the
    operator gives brokers no readiness probe), before the broker binds its port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("grace_s", [0, TERMINATE_GRACE_S], ids=["kill", "terminate"])
def test_a_pod_deleted_by_the_driver_is_recreated_and_its_broker_process_restarts(k8s_stack, grace_s):
    """What S4's kill and terminate do, and what the fault records (the checker's evidence): the broker
    process before is gone once start() returns, a new one runs the broker build once stop() returns.
    A terminate's grace is honoured: with a connection open to it (as the proxy holds its backend
    connections), the v1.5.0 broker does not exit on SIGTERM (it closes its listener and keeps serving
    open connections), so its process ends only at the node's SIGKILL when the grace runs out, never
    sooner. The pod's API object goes with its process, as a kubelet removes it, not a grace period
    later (virtual-kubelet's own removal waits one), which would keep the StatefulSet from making the
    pod again meanwhile."""
    stack, profile = k8s_stack
    before = stack.broker_pids()["kafscale-broker-0"]
    fault = PodKill(_driver(profile), pod="kafscale-broker-0", grace_s=grace_s, ready_timeout_s=120)
    with _connected(stack.broker_port(0)):
        fault.start()
    assert not pid_alive(before), "start() returned while the deleted pod's broker process still runs"
    fault.stop()
    seen = fault.parameters()
    assert seen["pid_before"] == before and seen["uid_after"] != seen["uid_before"]
    assert seen["pid_after"] != before and _runs_the_broker_build(stack, seen["pid_after"])
    assert seen["process_ended_after_s"] >= max(grace_s - 0.5, 0) and seen["started_after_s"] >= -1  # whole s
    if grace_s:
        lingered = seen["ended_after_s"] - seen["process_ended_after_s"]
        assert lingered < grace_s, f"the pod object outlived its process by {lingered:.1f} s"


def test_a_pod_made_again_at_once_under_its_name_replaces_the_old_process(k8s_stack):
    """A grace-0 deletion removes the API object at once, and a StatefulSet makes the pod again under its
    name within milliseconds. When the node's sync of the deletion runs after its informer already holds
    the new pod, the node must still stop the old process and start the new pod (CI once saw the old
    process run on and the new pod stay Pending). To take that order every round, the node process is
    frozen (SIGSTOP, as a loaded machine delays it) while the test deletes the pod and makes it again; the
    pod is a bare one whose container is /bin/sleep, mapped as an image the way the stack maps its builds."""
    stack, profile = k8s_stack
    driver = _driver(profile)
    images = json.loads(stack.files.images.read_text())
    images["k6suite.test/sleep"] = {"binary": shutil.which("sleep")}
    stack.files.images.write_text(json.dumps(images))
    manifest = {"metadata": {"name": "k6s-twin"}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "k6suite.test/sleep:1", "args": ["600"]}]}}
    rounds: list[tuple[int | None, int | None]] = []
    node = stack.record("node").pid
    try:
        driver.core.create_namespaced_pod(NAMESPACE, manifest)
        now = _running(driver, "k6s-twin", old_pid=None)
        for _ in range(5):
            before = now
            os.kill(node, signal.SIGSTOP)
            try:
                driver.core.delete_namespaced_pod("k6s-twin", NAMESPACE, grace_period_seconds=0)
                driver.core.create_namespaced_pod(NAMESPACE, manifest)
            finally:
                os.kill(node, signal.SIGCONT)
            now = _running(driver, "k6s-twin", old_pid=before.pid)
            rounds.append((before.pid, now.pid))
            assert now.uid != before.uid and now.pid not in (None, before.pid), (before, now)
            assert not pid_alive(before.pid), f"the replaced pod's process {before.pid} still runs: {rounds}"
    finally:
        driver.core.delete_namespaced_pod("k6s-twin", NAMESPACE, grace_period_seconds=0)


def _running(driver, pod: str, old_pid: int | None, timeout_s: float = 30):
    """The pod once it runs a process other than old_pid (and old_pid has ended), or as it is at timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = driver.pod(pod)
        done = now is not None and now.pid not in (None, old_pid) and (old_pid is None or not pid_alive(old_pid))
        if done or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def test_a_broker_process_that_dies_is_restarted_in_its_pod(k8s_stack):
    """restartPolicy Always, as a kubelet honours it: a broker process killed outside Kubernetes (as a
    crash would end it) is started again by the node in the same pod (same uid), the API counting it."""
    stack, profile = k8s_stack
    driver = _driver(profile)
    before = driver.pod("kafscale-broker-1")
    os.kill(before.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ((now := driver.pod("kafscale-broker-1")).pid in (None, before.pid)
                                           or not now.ready):
        time.sleep(0.2)
    assert now.uid == before.uid and now.pid not in (None, before.pid) and now.ready, (before, now)
    assert _runs_the_broker_build(stack, now.pid)
    status = driver.core.read_namespaced_pod("kafscale-broker-1", "kafscale").status.container_statuses[0]
    assert status.restart_count == 1 and status.last_state.terminated.exit_code == 128 + signal.SIGKILL


def test_a_pause_stops_the_broker_pod_process_and_kubernetes_does_not_notice(k8s_stack):
    """S4's pause: SIGSTOP to the pod's process. The operator gives brokers no readiness probe, so the
    pod stays Ready (and in its Service) while its broker answers nothing; SIGCONT brings it back."""
    stack, profile = k8s_stack
    driver = _driver(profile)
    assert PodPause.possible(driver)
    fault = PodPause(driver, pod="kafscale-broker-1")
    fault.start()
    try:
        pid = fault.parameters()["pid_before"]
        assert process_state(pid) == "T" and _runs_the_broker_build(stack, pid)
        assert driver.pod("kafscale-broker-1").ready
        assert not probes.api_versions(f"127.0.0.1:{stack.broker_port(1)}", timeout_s=1).ok
    finally:
        fault.stop()
    assert process_state(pid) not in ("T", "") and fault.parameters()["pid_after"] == pid
    assert probes.api_versions(f"127.0.0.1:{stack.broker_port(1)}").ok


def test_s4_chooses_pod_faults_on_the_busiest_broker(k8s_stack):
    """On the k8s profile S4's faults go through the Kubernetes driver (not the process driver, which
    knows no broker processes there), choosing and measuring the broker pod as the process driver does."""
    stack, profile = k8s_stack
    sc = SimpleNamespace(profile=profile, stack=stack)
    kill, terminate, pause = (_fault(sc, kind, "k6s-wiring") for kind in ("kill", "terminate", "pause"))
    assert (type(kill), kill.grace_s, type(terminate), terminate.grace_s, type(pause)) == (
        PodKill, 0, PodKill, TERMINATE_GRACE_S, PodPause)
    assert kill.choose() in _driver(profile).broker_pods()
    assert "connections" in kill.load("kafscale-broker-0")


def test_the_operators_brokers_write_where_the_storage_reader_reads(k8s_stack):
    """The operator sets KAFSCALE_S3_NAMESPACE to the KafscaleCluster's namespace: acknowledged records
    are found under the profile's namespace, where a scenario's storage check reads."""
    _, profile = k8s_stack
    topic = "k6s-storage-prefix"
    clients.create_topic(profile, topic, 1)
    producer = clients.producer(profile)
    try:
        for i in range(5):
            producer.send(topic, f"r{i}".encode()).get(timeout=30)
    finally:
        producer.close()
    store = profile.object_store
    listing = read_bucket("kafscale", store.endpoint, store.bucket, *stack_credentials(), topic=topic,
                          prefix=storage_prefix(profile), timeout_s=30)
    assert len(listing.records) == 5, listing.meta


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
    assert not any(pid_alive(pid) for pid in before.values())
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


def test_a_pod_the_node_reports_not_ready_makes_the_stack_unhealthy(tmp_path):
    """Without a stack: the node's pods.json as it is once v1.5.0's proxy (static backends) turned not ready.
    Every process still runs, so only the pod's readiness can tell the report that the endpoint is gone."""
    import json

    from k6suite_lib.stack.kafscale_k8s import KubernetesKafScaleStack
    from k6suite_lib.stack.layout import StackLayout

    stack = KubernetesKafScaleStack(StackLayout(port_base=K8S_PORT_BASE, outputs=tmp_path), log=lambda _msg: None)
    stack.files.node_dir.mkdir(parents=True)
    pods = {"kafscale/kafscale-broker-0": {"uid": "u0", "slot": 0, "ports": {}, "pids": {"broker": 1}, "ready": True},
            "kafscale/kafscale-proxy-x": {"uid": "u1", "slot": 1, "ports": {}, "pids": {"proxy": 2}, "ready": False}}
    (stack.files.node_dir / "pods.json").write_text(json.dumps(pods))
    assert list(stack.unhealthy()) == ["pod kafscale/kafscale-proxy-x"]
    pods["kafscale/kafscale-proxy-x"]["ready"] = True
    (stack.files.node_dir / "pods.json").write_text(json.dumps(pods))
    assert stack.unhealthy() == {}
