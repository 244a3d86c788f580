"""A real Kubernetes control plane on 127.0.0.1, and the node whose pods are local processes.

kube-apiserver, kube-controller-manager and kube-scheduler are built from k8s/controlplane/go.mod
(k8s.io/kubernetes at a pinned release) and the node from k8s/node (virtual-kubelet; what it does and
does not do is in k8s/node/main.go), each into the cache under a name keyed by the content of its
module (go.mod, go.sum, sources), so a pin change rebuilds and a warm cache costs nothing.

The API server stores its objects in the stack's etcd under its own key prefix (/registry), beside
KafScale's /kafscale keys; it authenticates one static bearer token (a stack secret, redacted like
the others) and authorizes everything (AlwaysAllow): this control plane tests the system under it,
not Kubernetes' access control. Its serving certificate comes from a CA made per stack (stack/tls.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from k6suite_lib.stack import binaries
from k6suite_lib.stack.layout import HOST, REPO_ROOT

KUBERNETES_VERSION = "v1.34.2"
CONTROL_PLANE_MODULE = REPO_ROOT / "k8s" / "controlplane"
NODE_MODULE = REPO_ROOT / "k8s" / "node"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = "k6suite-node"
SERVICE_CIDR = "10.0.0.0/24"


@dataclass(frozen=True)
class RepoBuild:
    """A command built from a Go module kept in this repository."""

    name: str
    module_dir: Path
    package: str
    version: str

    @property
    def key(self) -> str:
        """Hash of everything go build reads from the module folder (go.mod, go.sum, *.go)."""
        digest = hashlib.sha256()
        for path in sorted(self.module_dir.iterdir()):
            if path.name in ("go.mod", "go.sum") or path.suffix == ".go":
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:12]

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-{self.key}"


BUILDS: dict[str, RepoBuild] = {
    **{name: RepoBuild(name, CONTROL_PLANE_MODULE, f"k8s.io/kubernetes/cmd/{name}", KUBERNETES_VERSION)
       for name in CONTROL_PLANE},
    NODE: RepoBuild(NODE, NODE_MODULE, ".", "vk1.14.1"),
}


def binary_path(name: str) -> Path:
    path = binaries.cache_dir() / BUILDS[name].file_name
    if not path.is_file():
        raise binaries.BinaryError(f"{name} is not built yet; run `k6suite stack install`")
    return path


def install(log: Callable[[str], None] = print) -> dict[str, Path]:
    """Build every missing control-plane command and the node into the cache (the API server takes
    about 5 minutes the first time, downloads included; the two others 1.5 minutes together)."""
    missing = [spec for spec in BUILDS.values() if not (binaries.cache_dir() / spec.file_name).is_file()]
    if missing and shutil.which("go") is None:
        raise binaries.BinaryError("the Go toolchain is not on PATH; the Kubernetes control plane is built with it")
    binaries.cache_dir().mkdir(parents=True, exist_ok=True)
    by_module: dict[Path, list[RepoBuild]] = {}
    for spec in missing:
        by_module.setdefault(spec.module_dir, []).append(spec)
    for module_dir, specs in by_module.items():
        names = ", ".join(spec.name for spec in specs)
        log(f"{names}: building from {module_dir.relative_to(REPO_ROOT)} (first time only; several minutes)...")
        # a plain `go build` (the toolchain's own defaults): every checkout's bootstrap then shares one Go
        # build cache, and a second checkout only links
        env = dict(os.environ, GOFLAGS="-mod=readonly -buildvcs=false")
        with tempfile.TemporaryDirectory(prefix="k6suite-k8s-", dir=binaries.cache_dir()) as tmp:
            for spec in specs:
                out = Path(tmp) / spec.name
                binaries.run_tool(["go", "build", "-o", str(out), spec.package], module_dir, env)
                out.rename(binaries.cache_dir() / spec.file_name)
        log(f"{names}: built")
    return {name: binaries.cache_dir() / spec.file_name for name, spec in BUILDS.items()}


@dataclass(frozen=True)
class ControlPlaneFiles:
    """What the control plane's processes read, in the stack's data folder."""

    folder: Path

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    @property
    def tokens(self) -> Path:
        return self.folder / "tokens.csv"

    @property
    def sa_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.folder / "sa.pub"

    @property
    def node_dir(self) -> Path:
        return self.folder / "node"

    @property
    def images(self) -> Path:
        return self.folder / "images.json"


def write_files(folder: Path, apiserver_port: int, token: str) -> ControlPlaneFiles:
    """Service-account keys, the token file, the serving certificate and the kubeconfig every client uses."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from k6suite_lib.stack import tls

    files = ControlPlaneFiles(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files.node_dir.mkdir(exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _private(files.sa_key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                             serialization.NoEncryption()))
    files.sa_pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    _private(files.tokens, f"{token},k6suite-admin,1,system:masters\n".encode())
    tls.issue(folder / "tls")
    kubeconfig = f"""apiVersion: v1
kind: Config
clusters:
- name: k6suite
  cluster:
    server: https://{HOST}:{apiserver_port}
    certificate-authority: {folder / 'tls' / tls.CA_FILE}
users:
- name: k6suite-admin
  user:
    token: {token}
contexts:
- name: k6suite
  context: {{cluster: k6suite, user: k6suite-admin}}
current-context: k6suite
"""
    _private(files.kubeconfig, kubeconfig.encode())
    return files


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def apiserver_argv(files: ControlPlaneFiles, port: int, etcd_url: str) -> list[str]:
    from k6suite_lib.stack import tls

    server = files.folder / "tls" / tls.SERVER_FILE
    return [str(binary_path("kube-apiserver")), f"--etcd-servers={etcd_url}", "--etcd-prefix=/registry",
            "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-key-file={files.sa_pub}",
            f"--service-account-signing-key-file={files.sa_key}", f"--cert-dir={files.folder / 'certs'}",
            f"--tls-cert-file={server}", f"--tls-private-key-file={server}",
            f"--secure-port={port}", f"--bind-address={HOST}", f"--advertise-address={HOST}",
            "--authorization-mode=AlwaysAllow", f"--token-auth-file={files.tokens}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none"]


def controller_manager_argv(files: ControlPlaneFiles) -> list[str]:
    return [str(binary_path("kube-controller-manager")), f"--kubeconfig={files.kubeconfig}",
            f"--service-account-private-key-file={files.sa_key}", "--controllers=*", "--leader-elect=false",
            "--secure-port=0", "--use-service-account-credentials=false",
            f"--root-ca-file={files.folder / 'tls' / 'ca.pem'}"]


def scheduler_argv(files: ControlPlaneFiles) -> list[str]:
    return [str(binary_path("kube-scheduler")), f"--kubeconfig={files.kubeconfig}", "--leader-elect=false",
            "--secure-port=0"]


def node_argv(files: ControlPlaneFiles, port_base: int, port_span: int, slots: int,
              services: dict[str, int]) -> list[str]:
    """services: NAMESPACE/NAME:PORT -> the local port that forwards to it."""
    return [str(binary_path(NODE)), f"--kubeconfig={files.kubeconfig}", f"--images={files.images}",
            f"--state-dir={files.node_dir}", f"--port-base={port_base}", f"--port-span={port_span}",
            f"--slots={slots}", *(f"--service={svc}={local}" for svc, local in services.items())]
