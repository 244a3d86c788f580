"""KafScale deployed by its own operator on a real Kubernetes control plane, its pods local processes.

The same etcd, MinIO and Toxiproxy as the embedded KafScale stack, then kube-apiserver (storing its
objects in that etcd under /registry), kube-controller-manager, kube-scheduler and the node
(k8s/node: pods as processes, see its docstring), then what a user of KafScale deploys: the CRDs from
the build's own Helm chart, the operator (a Deployment running the build's cmd/operator), a Secret
with the S3 credentials and a ``KafscaleCluster``; the operator creates the broker StatefulSet and
Services. The KafScale proxy is a Deployment shaped like the Helm chart's, with the broker Service as
its backend (``proxy.backends`` in the chart): the operator publishes brokers under cluster DNS names
(``kafscale-broker-N.kafscale-broker-headless.kafscale.svc.cluster.local:9092``) that do not resolve
on this machine, so the proxy cannot use etcd discovery here.

Where clients connect (all on 127.0.0.1, from the port base): the proxy Service at +92 (the node's
forward of ``kafscale-proxy:9092``, as a NodePort or port-forward would be), the broker Service at
+100 (the proxy's backend) and its metrics port at +110; the API server at +130; the pods' own
ports from +140 (a block of 5 per pod, see k8s/node/main.go).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from k6suite_lib.stack import binaries, builds, controlplane
from k6suite_lib.stack.base import READY_TIMEOUT_S, S3_REGION
from k6suite_lib.stack.kafscale import BROKER_SETTINGS, S3_BUCKET, KafScaleStack
from k6suite_lib.stack.layout import HOST, StackLayout
from k6suite_lib.stack.process import ProcessRecord, StackError, wait_ready
from k6suite_lib.stack.state import stack_credentials, stack_secret

NAMESPACE = "kafscale"
CLUSTER = "kafscale"
IMAGES = {"kafscale-broker": "ghcr.io/kafscale/kafscale-broker", "kafscale-proxy": "ghcr.io/kafscale/kafscale-proxy",
          "kafscale-operator": "ghcr.io/kafscale/kafscale-operator"}
# What each image's config would carry besides its binary (ENV, EXPOSE): the broker's control server
# listens on its built-in default :19094 (cmd/broker: defaultControlAddr), which the operator does not
# set; in its own network namespace each pod has that port to itself, here the node must give it one.
IMAGE_CONFIG = {"kafscale-broker": {"env": {"KAFSCALE_CONTROL_ADDR": ":19094"}, "exposed": [19094]}}
BROKER_SELECTOR = f"app=kafscale-broker,cluster={CLUSTER}"
APISERVER_OFFSET, BROKER_SERVICE_OFFSET, METRICS_SERVICE_OFFSET = 130, 100, 110
POD_PORTS_OFFSET, POD_PORT_SPAN, POD_SLOTS = 140, 5, 12
DEPLOY_TIMEOUT_S = 180.0


def kubeconfig_path(layout: StackLayout) -> Path:
    return layout.data_dir / "kubernetes" / "kubeconfig"


def operator_binary(build: builds.Build, log) -> str:
    """cmd/operator of the same build as the broker and proxy: the served version, or the source tree."""
    from dataclasses import replace

    source = Path(build.source)
    if source.is_dir():
        out = builds.builds_dir() / f"kafscale-operator-{builds.tree_state(source).key}"
        if not out.is_file():
            log(f"kafscale-operator {source}: building cmd/operator...")
            env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
            binaries.run_tool(["go", "build", "-trimpath", "-o", str(out), "./cmd/operator"], source, env)
        return str(out)
    if build.source not in (build.version,):
        raise StackError(f"the operator is built from a served version or a source tree; the build is {build.source}")
    spec = replace(binaries.GO_BINARIES["kafscale-broker"], name="kafscale-operator",
                   package=f"{binaries.KAFSCALE_MODULE}/cmd/operator", version=build.version)
    path = binaries.cache_dir() / spec.file_name
    if not path.is_file():
        log(f"kafscale-operator {build.version}: building from the Go module proxy (first time only)...")
        binaries.build_go_binary(spec, path)
    return str(path)


def chart_crds(build: builds.Build) -> list[dict[str, Any]]:
    """The CRDs of the build's own Helm chart (deploy/helm/kafscale/crds)."""
    source = Path(build.source)
    if not source.is_dir():
        import subprocess

        modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        escaped = binaries.KAFSCALE_MODULE.replace("KafScale", "!kaf!scale")
        source = Path(modcache) / f"{escaped}@{build.version}"
    folder = source / "deploy" / "helm" / "kafscale" / "crds"
    if not folder.is_dir():
        raise StackError(f"no CRDs at {folder} (the build's Helm chart)")
    return [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))]


class KubernetesKafScaleStack(KafScaleStack):
    """KafScale on Kubernetes: deployed by its operator, faults through the Kubernetes API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # each pod log's (inode, size) when this stack was opened (a run opens its own as it begins), so
        # the run archives what the pods wrote during it, not a long-lived pod's earlier runs (log_files)
        self.log_marks = self._pod_log_sizes()

    def _pod_log_sizes(self) -> dict[Path, tuple[int, int]]:
        sizes = {}
        for log in (self.files.node_dir / "pods").glob("*/*.log"):
            with contextlib.suppress(FileNotFoundError):
                stat = log.stat()
                sizes[log] = (stat.st_ino, stat.st_size)
        return sizes

    @classmethod
    def addresses(cls, layout: StackLayout) -> dict[str, tuple[str, ...] | str]:
        return {
            "bootstrap_servers": (layout.proxy_address,),
            "metrics_urls": (f"http://{HOST}:{layout.port_base + METRICS_SERVICE_OFFSET}/metrics",),
            "etcd_endpoints": (layout.etcd_url,),
            "object_store.endpoint": layout.minio_url,
            "object_store.bucket": S3_BUCKET,
        }

    @property
    def apiserver_port(self) -> int:
        return self.layout.port_base + APISERVER_OFFSET

    @property
    def files(self) -> controlplane.ControlPlaneFiles:
        return controlplane.ControlPlaneFiles(kubeconfig_path(self.layout).parent)

    def api(self):
        """An ApiClient of the official kubernetes package on this stack's kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.files.kubeconfig))

    # ------------------------------------------------------------------ start
    def _start_components(self) -> None:
        self.log_marks = {}  # a start wipes the stack's data: every pod log from here on is this run's
        controlplane.install(self.log)
        self._start_etcd()
        self._start_minio()
        self._start_toxiproxy()
        self._start_control_plane()
        self._deploy()
        self._wait_brokers(self.layout.brokers)
        self._require_proxy_serves()
        self._learn_client_caps()

    def _start_apiserver(self) -> controlplane.ControlPlaneFiles:
        """kube-apiserver on the stack's etcd, with its files (keys, token, certificate, kubeconfig)."""
        files = controlplane.write_files(self.files.folder, self.apiserver_port, self._token())
        record = self._start("kube-apiserver", "control-plane",
                             controlplane.apiserver_argv(files, self.apiserver_port, self.layout.etcd_url), {},
                             [self.apiserver_port])
        wait_ready(record, self._apiserver_ready, READY_TIMEOUT_S)
        return files

    def _start_control_plane(self) -> None:
        files = self._start_apiserver()
        self._start("kube-controller-manager", "control-plane", controlplane.controller_manager_argv(files), {}, [])
        self._start("kube-scheduler", "control-plane", controlplane.scheduler_argv(files), {}, [])
        services = {f"{NAMESPACE}/{CLUSTER}-proxy:9092": self.layout.proxy_port,
                    f"{NAMESPACE}/{CLUSTER}-broker:9092": self.layout.port_base + BROKER_SERVICE_OFFSET,
                    f"{NAMESPACE}/{CLUSTER}-broker:9093": self.layout.port_base + METRICS_SERVICE_OFFSET}
        node = self._start("node", "node", controlplane.node_argv(
            files, self.layout.port_base + POD_PORTS_OFFSET, POD_PORT_SPAN, POD_SLOTS, services), {},
            list(services.values()))
        wait_ready(node, self._node_ready, READY_TIMEOUT_S)

    def _apiserver_ready(self) -> str | None:
        import requests

        try:
            response = requests.get(f"https://{HOST}:{self.apiserver_port}/readyz",
                                    verify=str(self.files.folder / "tls" / "ca.pem"), timeout=2,
                                    headers={"Authorization": f"Bearer {self._token()}"})
        except requests.RequestException as exc:
            return f"kube-apiserver /readyz: {exc.__class__.__name__}"
        return None if response.status_code == 200 else f"kube-apiserver /readyz answered {response.status_code}"

    def _token(self) -> str:
        return stack_secret(f"K6SUITE_STACK_{self.layout.port_base}_KUBE_TOKEN")

    def _node_ready(self) -> str | None:
        from kubernetes import client

        try:
            node = client.CoreV1Api(self.api()).read_node("k6suite-node", _request_timeout=2)
        except Exception as exc:  # any failure means: not ready yet, and why
            return f"node: {exc.__class__.__name__}"
        ready = [c.status for c in node.status.conditions or [] if c.type == "Ready"]
        return None if ready == ["True"] else f"node Ready={ready}"

    def _deploy(self) -> None:
        """What a KafScale user applies: CRDs, namespace, operator, S3 Secret, KafscaleCluster, proxy."""
        from kubernetes import client, utils

        build = self.build
        binaries_by_part = {**build.paths, "kafscale-operator": operator_binary(build, self.log)}
        images = {IMAGES[part]: {"binary": path, **IMAGE_CONFIG.get(part, {})}
                  for part, path in binaries_by_part.items() if part in IMAGES}
        self.files.images.write_text(json.dumps(images, indent=2))
        api = self.api()
        for crd in chart_crds(self.build):
            client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        access, secret = stack_credentials()
        core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "kafscale-s3"}, "stringData": {
            "KAFSCALE_S3_ACCESS_KEY": access, "KAFSCALE_S3_SECRET_KEY": secret}})
        self._wait_crds(api)
        version = self.build.version
        utils.create_from_dict(api, self._operator_deployment(version), namespace=NAMESPACE)
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "kafscale.io", "v1alpha1", NAMESPACE, "kafscaleclusters", self._cluster())
        utils.create_from_dict(api, self._proxy_deployment(version), namespace=NAMESPACE)
        core.create_namespaced_service(NAMESPACE, {
            "metadata": {"name": f"{CLUSTER}-proxy"},
            "spec": {"selector": {"app.kubernetes.io/component": "proxy"},
                     "ports": [{"name": "kafka", "port": 9092, "targetPort": "kafka"}]}})

    def _wait_crds(self, api) -> None:
        from kubernetes import client

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
            established = [c for c in crds if any(cond.type == "Established" and cond.status == "True"
                                                  for cond in c.status.conditions or [])]
            if len(established) == len(crds) and crds:
                return
            time.sleep(0.5)
        raise StackError("the KafScale CRDs were not established within 30 s")

    def _operator_deployment(self, version: str) -> dict[str, Any]:
        labels = {"app.kubernetes.io/component": "operator"}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": f"{CLUSTER}-operator", "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "operator", "image": f"{IMAGES['kafscale-operator']}:{version}",
                        "args": ["--leader-elect=false", "--metrics-bind-address=:8080"],
                        "ports": [{"name": "metrics", "containerPort": 8080}],
                        # in-cluster config needs a mounted service-account token; this node mounts
                        # nothing, so the operator reads the stack's kubeconfig
                        "env": [{"name": "KUBECONFIG", "value": str(self.files.kubeconfig)},
                                {"name": "BROKER_IMAGE", "value": f"{IMAGES['kafscale-broker']}:{version}"},
                                {"name": "KAFSCALE_OPERATOR_ETCD_SILENCE_LOGS", "value": "true"}]}]}}}}

    def _cluster(self, replicas: int | None = None) -> dict[str, Any]:
        layout = self.layout
        return {"apiVersion": "kafscale.io/v1alpha1", "kind": "KafscaleCluster",
                "metadata": {"name": CLUSTER},
                "spec": {"brokers": {"replicas": replicas or layout.brokers},
                         "s3": {"bucket": S3_BUCKET, "region": S3_REGION,
                                "endpoint": f"http://{HOST}:{layout.storage_proxy_port}",
                                "credentialsSecretRef": "kafscale-s3"},
                         "etcd": {"endpoints": [f"http://{HOST}:{layout.metadata_proxy_port}"]},
                         "config": {"segmentBytes": int(BROKER_SETTINGS["KAFSCALE_SEGMENT_BYTES"]),
                                    "flushIntervalMs": int(BROKER_SETTINGS["KAFSCALE_FLUSH_INTERVAL_MS"])}}}

    def _proxy_deployment(self, version: str) -> dict[str, Any]:
        labels = {"app.kubernetes.io/component": "proxy"}
        layout = self.layout
        env = {"KAFSCALE_PROXY_ADDR": ":9092", "KAFSCALE_PROXY_HEALTH_ADDR": ":9094",
               "KAFSCALE_PROXY_ADVERTISED_HOST": HOST, "KAFSCALE_PROXY_ADVERTISED_PORT": str(layout.proxy_port),
               "KAFSCALE_PROXY_ETCD_ENDPOINTS": layout.etcd_url,
               "KAFSCALE_PROXY_BACKENDS": f"{HOST}:{layout.port_base + BROKER_SERVICE_OFFSET}",
               "KAFSCALE_PROXY_BACKEND_RETRIES": "6", "KAFSCALE_PROXY_BACKEND_BACKOFF_MS": "500"}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": f"{CLUSTER}-proxy", "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "proxy", "image": f"{IMAGES['kafscale-proxy']}:{version}",
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "ports": [{"name": "kafka", "containerPort": 9092},
                                  {"name": "health", "containerPort": 9094}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"},
                                           "initialDelaySeconds": 1, "periodSeconds": 2,
                                           "failureThreshold": 3}}]}}}}

    # ------------------------------------------------------------------ brokers as pods
    def driver(self):
        from k6suite_lib.faults.kubernetes import KubernetesDriver

        return KubernetesDriver(NAMESPACE, CLUSTER, BROKER_SELECTOR, api_client=self.api())

    def _wait_brokers(self, replicas: int, timeout_s: float = DEPLOY_TIMEOUT_S) -> None:
        driver = self.driver()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if driver.rolled_out(replicas):
                    self.log(f"{replicas} broker pods ready (StatefulSet {CLUSTER}-broker, made by the operator)")
                    return
            except Exception as exc:  # the operator may not have made the StatefulSet yet
                if getattr(exc, "status", None) != 404:
                    raise
            time.sleep(1)
        raise StackError(f"{replicas} broker pods not ready {timeout_s:.0f} s after the KafscaleCluster was "
                         f"created; pods: {self.pods()}")

    def pods(self) -> dict[str, dict[str, Any]]:
        """The node's record of its pods: namespace/name -> uid, slot, local ports, PIDs, ready."""
        path = self.files.node_dir / "pods.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def broker_pids(self) -> dict[str, int]:
        """Broker pod name -> PID of its broker process, as the node runs them now."""
        return {key.split("/", 1)[1]: entry["pids"]["broker"] for key, entry in self.pods().items()
                if key.startswith(f"{NAMESPACE}/{CLUSTER}-broker-") and "broker" in entry["pids"]}

    @property
    def broker_ids(self) -> list[int]:
        return sorted(int(name.rsplit("-", 1)[1]) for name in self.driver().broker_pods())

    def add_broker(self) -> int:
        """Scale the KafscaleCluster by one broker and wait until the StatefulSet has it ready."""
        desired, _ = self.driver().replicas()
        self.driver().scale(desired + 1)
        self._wait_brokers(desired + 1)
        return desired

    def _ready_check(self, record: ProcessRecord):
        if record.role == "control-plane" and record.name == "kube-apiserver":
            return self._apiserver_ready
        if record.role == "node":
            return self._node_ready
        if record.role == "control-plane":
            return lambda: None
        return super()._ready_check(record)

    def _restart_component(self, record: ProcessRecord) -> None:
        if not self._restart_shared(record):
            raise StackError(f"{record.name} died; restart the Kubernetes stack (`k6suite stack down`, then up)")

    def _broker_pod_ports(self, broker_id: int) -> dict[str, int]:
        entry = self.pods().get(f"{NAMESPACE}/{CLUSTER}-broker-{broker_id}")
        if entry is None:
            raise StackError(f"the node runs no pod {CLUSTER}-broker-{broker_id}")
        return entry["ports"]

    def broker_port(self, broker_id: int) -> int:
        """The broker pod's own Kafka port (the node's port for its container port 9092)."""
        return self._broker_pod_ports(broker_id)["9092"]

    def broker_metrics_url(self, broker_id: int) -> str:
        return f"http://{HOST}:{self._broker_pod_ports(broker_id)['9093']}/metrics"

    def unhealthy(self) -> dict[str, str]:
        """Processes failing their probe, and pods the node reports not ready (their readiness probe fails):
        a Service forwards to ready pods only, so a not-ready proxy pod is a client endpoint that refuses
        every connection while every process still runs (v1.5.0's proxy with a static backend list turns
        not ready once its backend cache is older than KAFSCALE_PROXY_BACKEND_CACHE_TTL_SEC, 60 s)."""
        pods = {f"pod {key}": "not ready (its readiness probe fails; Services skip it)"
                for key, entry in self.pods().items() if not entry["ready"]}
        return {**super().unhealthy(), **pods}

    def log_files(self, since: float = 0.0) -> list[Path]:
        """The stack's process logs, and what the container log of every pod that logged since `since` gained
        since this stack was opened (log_marks; deleted pods' too: the node keeps a folder per pod uid), copied
        as pod-<namespace>_<name>_<uid>-<container>.log into a folder emptied first. A log begun since (a new
        pod, or a fresh stack's) is taken whole; one that was there is taken from the size it had, so a run's
        archive holds the brokers' and the proxy's own words from its own time: not a long-lived pod's lines
        of earlier runs, a copy left by an earlier run on the same port base, or a pod that ended before."""
        copies = self.layout.state_dir / "pod-logs"
        shutil.rmtree(copies, ignore_errors=True)
        copies.mkdir(parents=True)
        for log in sorted((self.files.node_dir / "pods").glob("*/*.log")):
            stat = log.stat()
            if stat.st_mtime < since:
                continue
            inode, size = self.log_marks.get(log, (None, 0))
            with log.open("rb") as handle:
                handle.seek(size if inode == stat.st_ino and size <= stat.st_size else 0)
                written = handle.read()
            if written:
                (copies / f"pod-{log.parent.name}-{log.name}").write_bytes(written)
        return super().log_files(since) + sorted(copies.glob("*.log"))

    def down(self, grace_s: float = 5.0) -> dict[str, str]:
        """Stop the processes (the node stops its pods first); then any pod process the node left behind."""
        leftovers = [(name, pid) for name, pid in
                     ((f"{k}/{c}", p) for k, e in self.pods().items() for c, p in e["pids"].items())]
        ended = super().down(grace_s)
        for name, pid in leftovers:
            if _is_ours(pid, self.files.images):
                os.kill(pid, 9)
                ended[name] = "killed (left by the node)"
        return ended


def _is_ours(pid: int, images: Path) -> bool:
    """The PID still runs one of the builds the node maps images to (not a reused PID)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        return exe in [image["binary"] for image in json.loads(images.read_text()).values()]
    except (OSError, ValueError):
        return False
