"""The Kubernetes API server the suite builds (k8s/controlplane/go.mod) runs on the stack's etcd and
serves the official Python client: the part of the control plane every other one talks to."""

from __future__ import annotations

import pytest
from kubernetes import client

from k6suite_lib.stack.kafscale_k8s import KubernetesKafScaleStack
from k6suite_lib.stack.layout import StackLayout
from tests.conftest import port_base_for


def test_the_api_server_stores_objects_in_the_stacks_etcd_and_serves_the_official_client(isolated_outputs):
    stack = KubernetesKafScaleStack(StackLayout(port_base=port_base_for(27800), brokers=1), log=lambda _m: None)
    stack.layout.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        stack._start_etcd()
        files = stack._start_apiserver()
        api = stack.api()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        assert "default" in [ns.metadata.name for ns in core.list_namespace().items]
        labels = {"app": "probe"}
        apps.create_namespaced_stateful_set("default", {
            "metadata": {"name": "probe"},
            "spec": {"serviceName": "probe", "replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "example/none:1"}]}}}})
        assert apps.read_namespaced_stateful_set("probe", "default").spec.replicas == 1
        assert stack.etcd.get("/registry/statefulsets/default/probe")[0], "not stored under /registry in etcd"
        assert files.kubeconfig.stat().st_mode & 0o077 == 0, "the kubeconfig holds a token: mode 0600"
    finally:
        ended = stack.down()
    assert set(ended) == {"etcd", "kube-apiserver"}


def test_a_runs_archive_holds_only_pod_logs_written_during_the_run(isolated_outputs):
    """No stack: pod folders as the node leaves them. A pod that ended before the run started is left
    out, and a second call does not keep the copies of the first (one port base, two runs)."""
    import os

    stack = KubernetesKafScaleStack(StackLayout(port_base=port_base_for(27800), brokers=1), log=lambda _m: None)
    pods = stack.files.node_dir / "pods"
    for pod in ("kafscale_kafscale-broker-0_old", "kafscale_kafscale-broker-0_new"):
        (pods / pod).mkdir(parents=True)
        (pods / pod / "broker.log").write_text(pod)
    os.utime(pods / "kafscale_kafscale-broker-0_old" / "broker.log", (1_000, 1_000))
    def pod_logs() -> list[str]:  # the stack's own logs (an earlier test's control plane on this base) aside
        return [p.name for p in stack.log_files(since=2_000) if p.name.startswith("pod-")]

    assert pod_logs() == ["pod-kafscale_kafscale-broker-0_new-broker.log"]
    (pods / "kafscale_kafscale-broker-0_new" / "broker.log").unlink()
    assert pod_logs() == []


def test_a_long_lived_pods_archive_holds_only_what_it_wrote_during_the_run(isolated_outputs, monkeypatch):
    """audit21 L2, no stack: a pod that lives across runs (one port base, the stack left up) keeps appending to
    one log. The run archives what it wrote since the run opened its stack, a pod begun since whole, and
    nothing of a pod that wrote nothing meanwhile. A fresh start wipes the stack's data, after which every pod
    log is the run's. Mutation tried: copying a log whole when its mtime is recent (as before): the earlier
    run's line is in the archive, this test fails."""
    from k6suite_lib.stack import kafscale_k8s

    layout = StackLayout(port_base=port_base_for(27800), brokers=1)
    pods = KubernetesKafScaleStack(layout, log=lambda _m: None).files.node_dir / "pods"
    logs = {name: pods / f"kafscale_kafscale-broker-0_{name}" / "broker.log" for name in ("long", "quiet", "born")}
    for name in ("long", "quiet"):
        logs[name].parent.mkdir(parents=True, exist_ok=True)
        logs[name].write_text(f"{name}: an earlier run\n")
    stack = KubernetesKafScaleStack(layout, log=lambda _m: None)  # the run begins: it opens its stack
    with logs["long"].open("a") as log:
        log.write("long: this run\n")
    logs["born"].parent.mkdir(parents=True, exist_ok=True)
    logs["born"].write_text("born: this run\n")
    archived = {p.name: p.read_text() for p in stack.log_files(since=0) if p.name.startswith("pod-kafscale_kafscale"
                                                                                           "-broker-0_")}
    assert archived == {"pod-kafscale_kafscale-broker-0_long-broker.log": "long: this run\n",
                        "pod-kafscale_kafscale-broker-0_born-broker.log": "born: this run\n"}

    class Started(Exception):
        pass

    def started(_log) -> None:
        raise Started

    monkeypatch.setattr(kafscale_k8s.controlplane, "install", started)
    with pytest.raises(Started):
        stack._start_components()
    assert stack.log_marks == {}
