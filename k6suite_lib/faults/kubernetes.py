"""Broker faults on a KafScale running in Kubernetes, through the official kubernetes client.

Brokers run as StatefulSet ``<cluster>-broker`` (labels ``app=kafscale-broker,cluster=<name>``);
the operator's ``KafscaleCluster`` (kafscale.io/v1alpha1) owns its replica count, so scaling
patches ``spec.brokers.replicas`` and falls back to the StatefulSet when no such resource exists.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from k6suite_lib.faults.base import Fault

CRD_GROUP, CRD_VERSION, CRD_PLURAL = "kafscale.io", "v1alpha1", "kafscaleclusters"


class KubernetesDriver:
    def __init__(self, namespace: str, cluster: str, broker_selector: str, api_client=None, timeout_s: float = 10):
        from kubernetes import client, config

        if api_client is None:
            config.load_kube_config()
            api_client = client.ApiClient()
        self.namespace, self.cluster, self.broker_selector = namespace, cluster, broker_selector
        self.timeout_s = timeout_s
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @classmethod
    def from_profile(cls, profile, api_client=None) -> KubernetesDriver:
        """The profile's cluster: an embedded one through its stack's kubeconfig, else the default kubeconfig."""
        settings = profile.faults.settings
        missing = [k for k in ("namespace", "cluster", "broker_selector") if k not in settings]
        if missing:
            raise ValueError(f"{profile.source}: faults.settings lacks {', '.join(missing)} for the kubernetes driver")
        if api_client is None and profile.embedded:
            from kubernetes import config

            from k6suite_lib.stack.kafscale_k8s import kubeconfig_path
            from k6suite_lib.stack.layout import StackLayout

            layout = StackLayout(port_base=profile.stack.port_base, brokers=profile.stack.brokers)
            api_client = config.new_client_from_config(config_file=str(kubeconfig_path(layout)))
        return cls(settings["namespace"], settings["cluster"], settings["broker_selector"], api_client=api_client)

    @property
    def statefulset(self) -> str:
        return f"{self.cluster}-broker"

    def broker_pods(self) -> list[str]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.broker_selector,
                                             _request_timeout=self.timeout_s)
        return sorted(pod.metadata.name for pod in pods.items)

    def delete_pod(self, name: str, grace_s: int = 0) -> None:
        """grace_s=0 is the Kubernetes equivalent of SIGKILL."""
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=grace_s,
                                        _request_timeout=self.timeout_s)

    def replicas(self) -> tuple[int, int]:
        """(desired, ready) of the broker StatefulSet."""
        status = self.apps.read_namespaced_stateful_set(self.statefulset, self.namespace,
                                                        _request_timeout=self.timeout_s)
        return status.spec.replicas, status.status.ready_replicas or 0

    def scale(self, replicas: int) -> str:
        """Patch KafscaleCluster spec.brokers.replicas; the StatefulSet when there is no such resource."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.patch_namespaced_custom_object(CRD_GROUP, CRD_VERSION, self.namespace, CRD_PLURAL,
                                                       self.cluster, {"spec": {"brokers": {"replicas": replicas}}},
                                                       _request_timeout=self.timeout_s)
            return f"{CRD_PLURAL}/{self.cluster}"
        except ApiException as exc:
            if exc.status != 404:
                raise
        self.apps.patch_namespaced_stateful_set(self.statefulset, self.namespace, {"spec": {"replicas": replicas}},
                                                _request_timeout=self.timeout_s)
        return f"statefulsets/{self.statefulset}"

    def rollout_restart(self) -> None:
        """What `kubectl rollout restart` does: a new template annotation, so pods roll one by one."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
        self.apps.patch_namespaced_stateful_set(self.statefulset, self.namespace, body,
                                                _request_timeout=self.timeout_s)

    def wait_ready(self, replicas: int | None = None, timeout_s: float = 300, poll_s: float = 2) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            desired, ready = self.replicas()
            if ready >= (replicas if replicas is not None else desired):
                return True
            time.sleep(poll_s)
        return False

    def rolled_out(self, replicas: int | None = None) -> bool:
        """The StatefulSet's controller has acted on its latest spec (observed generation), every pod runs
        the latest revision and is ready, and (when given) there are `replicas` of them. Ready pods alone
        say nothing right after a patch: the old pods are still ready then."""
        sts = self.apps.read_namespaced_stateful_set(self.statefulset, self.namespace, _request_timeout=self.timeout_s)
        status, desired = sts.status, sts.spec.replicas
        return ((status.observed_generation or 0) >= (sts.metadata.generation or 0)
                and (replicas is None or desired == replicas)
                and (status.updated_replicas or 0) == desired and (status.ready_replicas or 0) == desired
                and (status.update_revision is None or status.update_revision == status.current_revision))

    def wait_rolled_out(self, replicas: int | None = None, timeout_s: float = 600, poll_s: float = 2) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.rolled_out(replicas):
                return True
            time.sleep(poll_s)
        return False


class PodKill(Fault):
    """Delete a broker pod (grace 0 by default); stop() waits until the StatefulSet is ready again."""

    name, role = "pod-kill", "broker"

    def __init__(self, driver: KubernetesDriver, pod: str | None = None, grace_s: int = 0,
                 ready_timeout_s: float = 300):
        self.driver, self.pod, self.grace_s, self.ready_timeout_s = driver, pod, grace_s, ready_timeout_s

    @property
    def target(self) -> str:
        return self.pod or "first broker pod"

    def parameters(self) -> dict[str, Any]:
        return {"grace_s": self.grace_s}

    def start(self) -> None:
        self.pod = self.pod or self.driver.broker_pods()[0]
        self.driver.delete_pod(self.pod, self.grace_s)

    def stop(self) -> None:
        if not self.driver.wait_ready(timeout_s=self.ready_timeout_s):
            raise TimeoutError(f"broker StatefulSet not ready {self.ready_timeout_s:.0f} s after deleting {self.pod}")


class ScaleTo(Fault):
    """Scale the brokers to `replicas` (not healed: scaling is the change under test); start() returns
    once that many brokers run and are ready, so the fault window covers the scale-out itself."""

    name, role = "scale", "broker"

    def __init__(self, driver: KubernetesDriver, replicas: int, ready_timeout_s: float = 600):
        self.driver, self.replicas, self.patched = driver, replicas, ""
        self.ready_timeout_s = ready_timeout_s

    @property
    def target(self) -> str:
        return self.patched or self.driver.statefulset

    def parameters(self) -> dict[str, Any]:
        return {"replicas": self.replicas}

    def start(self) -> None:
        self.patched = self.driver.scale(self.replicas)
        if not self.driver.wait_rolled_out(self.replicas, timeout_s=self.ready_timeout_s):
            raise TimeoutError(f"{self.replicas} brokers not ready {self.ready_timeout_s:.0f} s after scaling "
                               f"{self.patched}")

    def stop(self) -> None:
        """Nothing to heal."""


class RolloutRestart(Fault):
    """`kubectl rollout restart` of the broker StatefulSet; start() returns once every pod runs the new
    revision and is ready."""

    name, role = "rollout-restart", "broker"

    def __init__(self, driver: KubernetesDriver, ready_timeout_s: float = 600):
        self.driver, self.ready_timeout_s = driver, ready_timeout_s

    @property
    def target(self) -> str:
        return f"statefulsets/{self.driver.statefulset}"

    def start(self) -> None:
        self.driver.rollout_restart()
        if not self.driver.wait_rolled_out(timeout_s=self.ready_timeout_s):
            raise TimeoutError(f"{self.target} not ready {self.ready_timeout_s:.0f} s after the rollout restart")

    def stop(self) -> None:
        """Nothing to heal: the rollout is the change under test."""
