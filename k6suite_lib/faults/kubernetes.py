"""Broker faults on a KafScale running in Kubernetes, through the official kubernetes client.

Brokers run as StatefulSet ``<cluster>-broker`` (labels ``app=kafscale-broker,cluster=<name>``);
the operator's ``KafscaleCluster`` (kafscale.io/v1alpha1) owns its replica count, so scaling
patches ``spec.brokers.replicas`` and falls back to the StatefulSet when no such resource exists.

What a fault did is read back from the API: a pod's uid, readiness and container id. On the suite's
own node (k8s/node) a container id is ``process://PID``, a process of this machine: a deletion is
then also seen to end that process, and a pause (SIGSTOP, as ``docker pause`` freezes a container)
can be done at all. On any other node the container is out of this machine's reach and a pause is
not offered.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k6suite_lib.faults.base import Fault

CRD_GROUP, CRD_VERSION, CRD_PLURAL = "kafscale.io", "v1alpha1", "kafscaleclusters"
PROCESS_SCHEME = "process://"
GONE_TIMEOUT_S = 10.0  # beyond a deletion's grace, for the pod's process to end


@dataclass(frozen=True)
class PodState:
    """A broker pod as the API reports it: its uid, whether it is ready, and its broker container's PID
    when the container is a process of this machine (None otherwise, or before it started)."""

    uid: str
    ready: bool
    pid: int | None
    started_at: dt.datetime | None = None  # when the node started the running container (whole seconds)


def _pid(container_id: str | None) -> int | None:
    if container_id and container_id.startswith(PROCESS_SCHEME):
        return int(container_id[len(PROCESS_SCHEME):])
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def process_state(pid: int) -> str:
    """The kernel's state letter of a process (R, S, T = stopped, Z, ...); "" when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


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

    def pod(self, name: str) -> PodState | None:
        """The pod's uid, readiness and broker PID now; None when there is no such pod."""
        from kubernetes.client.exceptions import ApiException

        try:
            pod = self.core.read_namespaced_pod(name, self.namespace, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        statuses = pod.status.container_statuses or []
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        running = [s for s in statuses if s.state and s.state.running]
        return PodState(pod.metadata.uid, ready and pod.metadata.deletion_timestamp is None,
                        _pid(running[0].container_id) if running else None,
                        running[0].state.running.started_at if running else None)

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
    """Delete a broker pod: grace 0 is a kill (SIGKILL at once), a grace a terminate (SIGTERM, SIGKILL
    when it runs out). start() returns once the pod is gone (and, on this machine, its process); the
    StatefulSet's controller makes a new pod with the same name at once, nothing holds the broker down
    as the process driver does until stop(). stop() waits until that pod is ready.

    Recorded with the fault: the pod, its uid and broker PID before, the new uid and PID, seconds from
    the deletion until the old process ended (process_ended_after_s, on this machine), until the old pod
    was gone from the API as well (ended_after_s), and until the new one started (the node's startedAt,
    whole seconds). choose() names the
    pod to hit (default the first broker pod); load(pod) says what it carried just before (`served`)."""

    role = "broker"

    def __init__(self, driver: KubernetesDriver, pod: str | None = None, grace_s: int = 0,
                 ready_timeout_s: float = 300, choose: Callable[[], str] | None = None,
                 load: Callable[[str], dict] | None = None):
        self.driver, self.pod, self.grace_s, self.ready_timeout_s = driver, pod, grace_s, ready_timeout_s
        self.choose, self.load = choose, load
        self.name = "pod-kill" if grace_s == 0 else "pod-delete"
        self.evidence: dict[str, Any] = {}
        self.deleted_at, self.deleted_wall = 0.0, 0.0

    @property
    def target(self) -> str:
        return self.pod or "first broker pod"

    def parameters(self) -> dict[str, Any]:
        return {"grace_s": self.grace_s, **self.evidence}

    def _choose(self) -> str:
        if self.pod is None:
            self.pod = self.choose() if self.choose else self.driver.broker_pods()[0]
        if self.load:
            try:
                self.evidence["served"] = self.load(self.pod)
            except Exception as exc:  # the fault still happens; the history says its reach is unknown
                self.evidence["served"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        return self.pod

    def start(self) -> None:
        pod = self._choose()
        before = self.driver.pod(pod)
        if before is None:
            raise RuntimeError(f"no pod {pod} to delete")
        self.evidence.update(uid_before=before.uid, pid_before=before.pid)
        self.deleted_at, self.deleted_wall = time.monotonic(), time.time()
        self.driver.delete_pod(pod, self.grace_s)
        deadline = self.deleted_at + self.grace_s + GONE_TIMEOUT_S
        while time.monotonic() < deadline:
            now = self.driver.pod(pod)
            gone = now is None or now.uid != before.uid
            dead = before.pid is None or not pid_alive(before.pid)
            if dead and before.pid is not None and "process_ended_after_s" not in self.evidence:
                self.evidence["process_ended_after_s"] = round(time.monotonic() - self.deleted_at, 2)
            if gone and dead:
                self.evidence["ended_after_s"] = round(time.monotonic() - self.deleted_at, 2)
                return
            time.sleep(0.1)
        raise TimeoutError(f"pod {pod} (PID {before.pid}) still there {deadline - self.deleted_at:.0f} s "
                           f"after its deletion with grace {self.grace_s} s")

    def stop(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            now = self.driver.pod(self.pod)
            if now is not None and now.uid != self.evidence["uid_before"] and now.ready:
                self.evidence.update(uid_after=now.uid, pid_after=now.pid)
                if now.started_at is not None:
                    self.evidence["started_after_s"] = round(now.started_at.timestamp() - self.deleted_wall, 1)
                return
            time.sleep(0.2)
        raise TimeoutError(f"no new pod {self.pod} ready {self.ready_timeout_s:.0f} s after deleting it")


class PodPause(PodKill):
    """SIGSTOP to a broker pod's process, SIGCONT at stop(): the pod, its sockets and its Ready
    condition stay (the operator sets no probe that would notice), nothing answers, as when a
    container is frozen (``docker pause``). Only where the pod's container is a process of this
    machine (the suite's node): `possible()` says whether it is."""

    name = "pod-pause"

    def __init__(self, driver: KubernetesDriver, pod: str | None = None, choose: Callable[[], str] | None = None,
                 load: Callable[[str], dict] | None = None):
        super().__init__(driver, pod, choose=choose, load=load)
        self.name = "pod-pause"

    def parameters(self) -> dict[str, Any]:
        return dict(self.evidence)

    @staticmethod
    def possible(driver: KubernetesDriver) -> bool:
        pods = driver.broker_pods()
        return bool(pods) and all((state := driver.pod(p)) is not None and state.pid is not None for p in pods)

    def _signal(self, sig: signal.Signals, stopped: bool) -> None:
        """Send sig; return once the kernel reports the process stopped (or no longer stopped)."""
        pid = self.evidence["pid_before"]
        os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while (state := process_state(pid)) == "" or (state == "T") != stopped:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PID {pid} of pod {self.pod} is {state or 'gone'} 5 s after {sig.name}")
            time.sleep(0.01)

    def start(self) -> None:
        pod = self._choose()
        state = self.driver.pod(pod)
        if state is None or state.pid is None:
            raise RuntimeError(f"pod {pod} has no process of this machine to stop")
        self.evidence.update(uid_before=state.uid, pid_before=state.pid)
        self._signal(signal.SIGSTOP, stopped=True)

    def stop(self) -> None:
        self._signal(signal.SIGCONT, stopped=False)
        now = self.driver.pod(self.pod)
        self.evidence.update(uid_after=now.uid if now else None, pid_after=now.pid if now else None)


class ScaleTo(Fault):
    """Scale the brokers to `replicas` (not healed: scaling is the change under test); start() returns
    once that many brokers run and are ready, so the fault window covers the scale-out itself."""

    name, role = "scale", "broker"

    def __init__(self, driver: KubernetesDriver, replicas: int, ready_timeout_s: float = 600):
        self.driver, self.replicas, self.patched = driver, replicas, ""
        self.ready_timeout_s = ready_timeout_s
        self.before: int | None = None

    @property
    def target(self) -> str:
        return self.patched or self.driver.statefulset

    @property
    def added(self) -> list[int]:
        """The new brokers' ordinals (a StatefulSet adds the next ones)."""
        return list(range(self.before, self.replicas)) if self.before is not None else []

    def parameters(self) -> dict[str, Any]:
        return {"replicas": self.replicas, "before": self.before, "added": self.added}

    def start(self) -> None:
        self.before = self.driver.replicas()[0]
        self.patched = self.driver.scale(self.replicas)
        if not self.driver.wait_rolled_out(self.replicas, timeout_s=self.ready_timeout_s):
            raise TimeoutError(f"{self.replicas} brokers not ready {self.ready_timeout_s:.0f} s after scaling "
                               f"{self.patched}")

    def stop(self) -> None:
        """Nothing to heal."""


class RolloutRestart(Fault):
    """`kubectl rollout restart` of the broker StatefulSet; start() returns once every pod runs the new
    revision and is ready, and every broker process from before (where pods are processes of this
    machine) has ended: a rollout the API calls done while an old broker runs on did not restart it."""

    name, role = "rollout-restart", "broker"

    def __init__(self, driver: KubernetesDriver, ready_timeout_s: float = 600):
        self.driver, self.ready_timeout_s = driver, ready_timeout_s
        self.evidence: dict[str, Any] = {}

    @property
    def target(self) -> str:
        return f"statefulsets/{self.driver.statefulset}"

    def parameters(self) -> dict[str, Any]:
        return dict(self.evidence)

    def _pids(self) -> dict[str, int | None]:
        return {name: state.pid if (state := self.driver.pod(name)) else None for name in self.driver.broker_pods()}

    def start(self) -> None:
        self.evidence["pids_before"] = self._pids()
        started = time.monotonic()
        self.driver.rollout_restart()
        if not self.driver.wait_rolled_out(timeout_s=self.ready_timeout_s, poll_s=0.5):
            raise TimeoutError(f"{self.target} not ready {self.ready_timeout_s:.0f} s after the rollout restart")
        self.evidence.update(pids_after=self._pids(), rolled_out_s=round(time.monotonic() - started, 2))
        old = [pid for pid in self.evidence["pids_before"].values() if pid is not None]
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while (running := [pid for pid in old if pid_alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running:
            raise RuntimeError(f"{self.target} rolled out, but broker processes from before still run: PIDs "
                               f"{running} ({GONE_TIMEOUT_S:.0f} s after every pod was ready)")

    def stop(self) -> None:
        """Nothing to heal: the rollout is the change under test."""
