"""The Kubernetes fault driver against recorded API responses, for what the real control plane of
tests/test_k8s_stack.py cannot show: a cluster without KafScale's operator (there the operator always
runs, so scaling never falls back to the StatefulSet), and the moment right after a rollout patch when
every old pod is still ready (a race the real plane passes through too fast to catch every time).
Pod deletion, pause, scaling through the KafscaleCluster and the rollout itself are tested there.

A small HTTP server on 127.0.0.1 answers the exact API paths the driver calls with the JSON responses
in tests/k8s-responses/ (shaped as a real API server answers) and records every request, so the tests
check what the driver really sends.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from k6suite_lib.faults.kubernetes import KubernetesDriver, RolloutRestart, ScaleTo
from k6suite_lib.profiles import load_profile

RESPONSES = Path(__file__).parent / "k8s-responses"
NS = "/api/v1/namespaces/kafscale"
APPS = "/apis/apps/v1/namespaces/kafscale/statefulsets/kafscale-broker"
CRD = "/apis/kafscale.io/v1alpha1/namespaces/kafscale/kafscaleclusters/kafscale"


class RecordedApi(ThreadingHTTPServer):
    def __init__(self, routes: dict[tuple[str, str], tuple[int, str]]):
        self.routes, self.requests = routes, []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                                     "body": body, "content_type": self.headers.get("Content-Type")})
        status, name = self.server.routes.get((self.command, url.path), (404, "not-found.json"))
        payload = (RESPONSES / name).read_bytes()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PATCH = _answer

    def log_message(self, *args) -> None:
        """Quiet: requests are asserted on, not printed."""


@pytest.fixture
def api(request):
    routes = getattr(request, "param", {})
    server = RecordedApi({
        ("GET", f"{NS}/pods"): (200, "list-broker-pods.json"),
        ("GET", APPS): (200, "statefulset.json"),
        ("PATCH", APPS): (200, "statefulset.json"),
        **routes,
    })
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    driver = KubernetesDriver.from_profile(load_profile("k8s-local"), api_client=client.ApiClient(configuration))
    yield driver, server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("api", [{("PATCH", CRD): (404, "not-found.json")}], indirect=True)
def test_scale_falls_back_to_the_statefulset_without_the_operator(api):
    driver, server = api
    assert driver.scale(2) == "statefulsets/kafscale-broker"
    assert [r["path"] for r in server.requests] == [CRD, APPS]
    assert server.requests[-1]["body"] == {"spec": {"replicas": 2}}


@pytest.mark.parametrize("api", [{("GET", APPS): (200, "statefulset-rolling.json")}], indirect=True)
def test_rollout_restart_is_not_done_while_old_pods_are_still_ready(api):
    """The audit's case: right after the patch every old pod is still ready, so waiting for "ready"
    returned at once and the rollout happened after the fault window. Done means the new revision."""
    driver, _ = api
    with pytest.raises(TimeoutError, match="after the rollout restart"):
        RolloutRestart(driver, ready_timeout_s=0.5).start()
    with pytest.raises(TimeoutError, match="5 brokers not ready"):
        ScaleTo(driver, 5, ready_timeout_s=0.5).start()


def test_profile_without_driver_settings_is_rejected(tmp_path):
    import yaml

    raw = yaml.safe_load(Path("profiles/k8s-local.yaml").read_text())
    del raw["faults"]["settings"]["cluster"]
    path = tmp_path / "k8s.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"faults\.settings lacks cluster"):
        KubernetesDriver.from_profile(load_profile(path), api_client=client.ApiClient())


def test_a_rollout_that_leaves_an_old_broker_process_running_did_not_take_effect():
    """Done means the old brokers ended, not only that the API reports the new revision ready. No real
    control plane makes this case (the suite's node stops a pod's process before the pod is made again),
    so the driver here is a stand-in whose pod's PID is a live process of this machine (a sleep)."""
    import subprocess
    from types import SimpleNamespace

    from k6suite_lib.faults.kubernetes import PodState

    survivor = subprocess.Popen(["sleep", "60"])
    try:
        driver = SimpleNamespace(statefulset="kafscale-broker", broker_pods=lambda: ["kafscale-broker-0"],
                                 pod=lambda name: PodState("u0", True, survivor.pid), rollout_restart=lambda: None,
                                 wait_rolled_out=lambda **_: True)
        with pytest.raises(RuntimeError, match=rf"broker processes from before still run: PIDs \[{survivor.pid}\]"):
            RolloutRestart(driver).start()
    finally:
        survivor.kill()
        survivor.wait()
