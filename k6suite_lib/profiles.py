"""Profiles: which system a run talks to, loaded from YAML and validated field by field.

A profile never holds a secret. Fields that carry credentials name an environment variable
(``*_env``); a literal secret is rejected so it cannot leak into an archive through the profile.
Every error names the file and the dotted field path, because a profile typo must never turn into
a run that silently tests the wrong system.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
DEFAULT_PROFILE = "local"

TARGET_KINDS = ("kafscale", "kafka", "tansu", "other")
EMBEDDED_KINDS = ("kafscale", "kafka", "tansu")
FAULT_DRIVERS = ("local", "kubernetes", "none")
# The recording clients a workload can run (workload/orchestrator.runners).
CLIENT_LIBRARIES = ("kafka-python", "librdkafka", "franz-go", "java")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Kafka API names a profile may cap (client.max_api_versions); the values are Kafka's api keys.
API_KEYS = {
    "Produce": 0, "Fetch": 1, "ListOffsets": 2, "Metadata": 3, "OffsetCommit": 8, "OffsetFetch": 9,
    "FindCoordinator": 10, "JoinGroup": 11, "Heartbeat": 12, "LeaveGroup": 13, "SyncGroup": 14,
    "DescribeGroups": 15, "ListGroups": 16, "ApiVersions": 18, "CreateTopics": 19, "DeleteTopics": 20,
}
# A key that looks like it carries a credential must end in _env (it names a variable).
_SECRET_KEY = re.compile(r"(password|secret|access_key|token|passphrase|credential)", re.IGNORECASE)
REQUIREMENT_ID = re.compile(r"^(F[1-7]|NFR[1-5])(\.\d+)?$")
# Produce/consume, durability and the data thresholds: every system that stores records makes these
# promises, and a waiver would hide lost or wrong data, so no profile may waive them.
UNWAIVABLE = ("F2", "F3", "NFR1", "NFR2")
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


class ProfileError(ValueError):
    """A profile is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class TlsSettings:
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    check_hostname: bool = True


@dataclass(frozen=True)
class SaslSettings:
    mechanism: str | None = None
    username: str | None = None  # a user name is no secret; username_env names a variable instead
    username_env: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class ClientSettings:
    security_protocol: str = "PLAINTEXT"
    tls: TlsSettings = field(default_factory=TlsSettings)
    sasl: SaslSettings = field(default_factory=SaslSettings)
    library: str = "kafka-python"  # the recording client (CLIENT_LIBRARIES); `k6suite run --clients` sets it
    # None: the library's default (kafka-python 3, franz-go and kafka-clients: on; librdkafka: off). A profile may not
    # switch a default off to get around a failure: that failure is a finding.
    idempotence: bool | None = None
    api_version: str | None = None
    max_api_versions: dict[str, int] = field(default_factory=dict)
    request_timeout_ms: int = 10000
    replication_factor: int = 1  # of the topics the suite creates


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str | None = None
    bucket: str | None = None
    region: str = "us-east-1"
    namespace: str = "default"
    access_key_env: str | None = None
    secret_key_env: str | None = None


@dataclass(frozen=True)
class FaultSettings:
    driver: str = "none"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StackSettings:
    """The embedded stack that serves this profile (only for ``target.embedded: true``)."""

    brokers: int = 3
    port_base: int = 29000
    # dedicated KRaft controllers (Kafka only); 0: every starting broker is also a controller
    controllers: int = 0
    # the system deployed on a real Kubernetes control plane by its operator (stack/kafscale_k8s.py)
    kubernetes: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    target_kind: str
    embedded: bool
    bootstrap_servers: tuple[str, ...]
    client: ClientSettings
    metrics_urls: tuple[str, ...]
    object_store: ObjectStore
    etcd_endpoints: tuple[str, ...]
    faults: FaultSettings
    stack: StackSettings | None
    source: str
    # requirement id (F1.2, F5, NFR3, ...) -> why this system never promised it; its checks are
    # shown as "not promised" instead of being judged
    not_promised: dict[str, str] = field(default_factory=dict)
    # an embedded system's build (stack/builds.py): key -> source, e.g. {"kafscale": "/src/platform"}; {} = default
    build: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return ",".join(self.bootstrap_servers)

    def summary(self) -> dict[str, Any]:
        """What a run records about its profile: everything but secrets (profiles hold none)."""
        data = asdict(self)
        data["bootstrap_servers"] = list(self.bootstrap_servers)
        return data


def secret(env_name: str | None) -> str | None:
    """Resolve a credential named by a profile; None when unnamed or unset."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if value is None:
        from k6suite_lib.stack.state import stored_secret

        value = stored_secret(env_name)
    return value


def available_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str | Path, directory: Path = PROFILES_DIR) -> Profile:
    """Load a profile by name (``profiles/<name>.yaml``) or by path and validate it."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(available_profiles(directory)) or "none"
        raise ProfileError(f"{path}: no such profile (known profiles: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    return parse_profile(raw, source=str(path))


class _Reader:
    """Walks one mapping of the YAML document, naming fields by dotted path in every error."""

    def __init__(self, data: Any, source: str, prefix: str, allowed: tuple[str, ...]):
        self.source = source
        self.prefix = prefix
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail("", f"must be a mapping, got {type(data).__name__}")
        self.data = data
        for key in data:
            if isinstance(key, str) and _SECRET_KEY.search(key) and not key.endswith("_env"):
                self.fail(key, "a literal secret is not allowed in a profile; "
                               f"name an environment variable in '{key}_env' instead")
            if not isinstance(key, str) or key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}"
                self.fail(str(key), f"unknown field{suggestion}")

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}".strip(".") if key else self.prefix or "<top level>"

    def fail(self, key: str, message: str) -> None:
        raise ProfileError(f"{self.source}: {self.path(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def str(self, key: str, default: str | None = None, required: bool = False,
            choices: tuple[str, ...] | None = None) -> str | None:
        if not self.has(key):
            if required:
                self.fail(key, "required field is missing")
            return default
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, got {value!r}")
        if choices and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def bool(self, key: str, default: bool | None) -> bool | None:
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value

    def int(self, key: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
        if not self.has(key):
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.fail(key, f"must be an integer in [{minimum}, {maximum}], got {value!r}")
        return value

    def str_list(self, key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> tuple[str, ...]:
        if not self.has(key):
            return ()
        value = self.data[key]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"must be a list of strings, got {value!r}")
        for item in value:
            if pattern and not pattern.match(item):
                self.fail(key, f"{item!r} is not a valid {what}")
        return tuple(value)

    def url_list(self, key: str) -> tuple[str, ...]:
        return self.str_list(key, re.compile(r"^https?://[^\s/]+(/\S*)?$"), "http(s) URL")

    def child(self, key: str, allowed: tuple[str, ...]) -> _Reader:
        return _Reader(self.data.get(key), self.source, self.path(key), allowed)


def parse_profile(raw: Any, source: str = "<profile>") -> Profile:
    """Validate a profile document (already parsed from YAML) and build a Profile."""
    top = _Reader(raw, source, "", (
        "name", "description", "target", "bootstrap_servers", "client", "metrics_urls",
        "object_store", "etcd_endpoints", "faults", "stack", "not_promised", "build",
    ))
    name = top.str("name", required=True)
    target = top.child("target", ("kind", "embedded"))
    kind = target.str("kind", required=True, choices=TARGET_KINDS)
    embedded = target.bool("embedded", False)

    client = _parse_client(top.child("client", (
        "security_protocol", "tls", "sasl", "library", "idempotence", "api_version", "max_api_versions",
        "request_timeout_ms", "replication_factor",
    )))
    store_reader = top.child("object_store", (
        "endpoint", "bucket", "region", "namespace", "access_key_env", "secret_key_env",
    ))
    faults_reader = top.child("faults", ("driver", "settings"))
    driver = faults_reader.str("driver", "none", choices=FAULT_DRIVERS)
    settings = faults_reader.data.get("settings") or {}
    if not isinstance(settings, dict):
        faults_reader.fail("settings", "must be a mapping")

    stack: StackSettings | None = None
    if embedded:
        stack_reader = top.child("stack", ("brokers", "port_base", "controllers", "kubernetes"))
        stack = StackSettings(brokers=stack_reader.int("brokers", 3, 1, 9),
                              port_base=stack_reader.int("port_base", 29000, 1024, 32400),
                              controllers=stack_reader.int("controllers", 0, 0, 9),
                              kubernetes=stack_reader.bool("kubernetes", False))
        if stack.controllers and kind != "kafka":
            stack_reader.fail("controllers", f"only Apache Kafka has KRaft controllers; target.kind is {kind!r}")
        if kind not in EMBEDDED_KINDS:
            target.fail("embedded", f"embedded stacks run {', '.join(EMBEDDED_KINDS)}; target.kind is {kind!r}")
        if stack.kubernetes and kind != "kafscale":
            stack_reader.fail("kubernetes", f"only KafScale is deployed on Kubernetes here; target.kind is {kind!r}")
        if driver != ("kubernetes" if stack.kubernetes else "local"):
            faults_reader.fail("driver", "an embedded profile on Kubernetes is driven by the kubernetes fault driver"
                               if stack.kubernetes else "an embedded profile is driven by the local fault driver")
    elif top.has("stack"):
        top.fail("stack", "only an embedded profile (target.embedded: true) has a stack section")

    derived = embedded_addresses(kind, stack) if stack else {}
    bootstrap = _checked_derived(top, "bootstrap_servers",
                                 top.str_list("bootstrap_servers", _HOST_PORT, "host:port"), derived)
    if not bootstrap:
        top.fail("bootstrap_servers", "required field is missing")
    metrics = _checked_derived(top, "metrics_urls", top.url_list("metrics_urls"), derived)
    etcd = _checked_derived(top, "etcd_endpoints", top.url_list("etcd_endpoints"), derived)
    endpoint = store_reader.str("endpoint")
    if endpoint and not re.match(r"^https?://", endpoint):
        store_reader.fail("endpoint", f"must be an http(s) URL, got {endpoint!r}")
    if stack:
        stack_endpoint = derived["object_store.endpoint"]
        if endpoint and endpoint != stack_endpoint:
            store_reader.fail("endpoint", f"is derived from stack.port_base ({stack_endpoint})" if stack_endpoint
                              else f"the embedded {kind} has no object store; got {endpoint!r}")
        endpoint = stack_endpoint
    object_store = ObjectStore(
        endpoint=endpoint,
        bucket=store_reader.str("bucket", derived.get("object_store.bucket")),
        region=store_reader.str("region", "us-east-1"),
        namespace=store_reader.str("namespace", "default"),
        access_key_env=store_reader.str("access_key_env"),
        secret_key_env=store_reader.str("secret_key_env"),
    )
    if object_store.endpoint and not (object_store.access_key_env and object_store.secret_key_env):
        store_reader.fail("access_key_env", "an object store needs access_key_env and secret_key_env")

    return Profile(
        name=name,
        description=top.str("description", ""),
        target_kind=kind,
        embedded=embedded,
        bootstrap_servers=bootstrap,
        client=client,
        metrics_urls=metrics,
        object_store=object_store,
        etcd_endpoints=etcd,
        faults=FaultSettings(driver=driver, settings=dict(settings)),
        stack=stack,
        source=source,
        not_promised=_parse_not_promised(top),
        build=_parse_build(top, kind, embedded),
    )


def _parse_build(top: _Reader, kind: str, embedded: bool) -> dict[str, str]:
    """build: {SYSTEM: SOURCE}; a relative path is relative to the profile's folder."""
    from k6suite_lib.stack import builds

    raw = top.data.get("build") or {}
    if not raw:
        return {}
    if not embedded:
        top.fail("build", "only an embedded profile (target.embedded: true) builds its system")
    if not isinstance(raw, dict):
        top.fail("build", "must be a mapping of SYSTEM to SOURCE, e.g. {kafscale: v1.5.0}")
    base = Path(top.source).parent if top.source.endswith((".yaml", ".yml")) else None
    result = {}
    for key, source in raw.items():
        if key not in builds.KEYS or builds.KEYS[key] != kind:
            known = ", ".join(k for k, system in builds.KEYS.items() if system == kind)
            top.fail(f"build.{key}", f"a {kind} stack's build is named by {known}")
        if not isinstance(source, str | int | float) or not str(source).strip():
            top.fail(f"build.{key}", "must be a version, a directory or a binary path")
        result[key] = builds.absolute(str(source), base)
    return result


def with_builds(profile: Profile, pairs: dict[str, str]) -> Profile:
    """The profile with --build overrides for its own system (keys naming other systems are ignored, so
    one --build can go to every profile of a matrix); the run writes it to the archive as profile.yaml,
    so notebook kernels see the same build."""
    from k6suite_lib.stack import builds

    own = builds.for_system(pairs, profile.target_kind)
    if not own:
        return profile
    if not profile.embedded:
        raise ProfileError(f"{profile.source}: --build {builds.describe_sources(own)}: the profile's system is not "
                           "embedded; only an embedded stack is built by the suite")
    return replace(profile, build=own)  # replaces the profile's build: a version and binaries do not mix


def _parse_not_promised(top: _Reader) -> dict[str, str]:
    raw = top.data.get("not_promised") or {}
    if not isinstance(raw, dict):
        top.fail("not_promised", "must be a mapping of requirement id (e.g. F1.2) to the reason")
    for requirement, reason in raw.items():
        if not isinstance(requirement, str) or not REQUIREMENT_ID.match(requirement):
            top.fail(f"not_promised.{requirement}", "not a requirement id of the trust contract (F1..F7, NFR1..NFR5, "
                                                    "optionally with a sub-point such as F1.2)")
        if not isinstance(reason, str) or not reason.strip():
            top.fail(f"not_promised.{requirement}", "must give the reason the system does not promise it")
        if requirement.split(".")[0] in UNWAIVABLE:
            top.fail(f"not_promised.{requirement}", f"{', '.join(UNWAIVABLE)} cannot be waived: a waiver would hide "
                                                    "lost or wrong data")
    return dict(raw)


def _parse_client(reader: _Reader) -> ClientSettings:
    protocol = reader.str("security_protocol", "PLAINTEXT", choices=SECURITY_PROTOCOLS)
    tls_reader = reader.child("tls", ("cafile", "certfile", "keyfile", "check_hostname"))
    sasl_reader = reader.child("sasl", ("mechanism", "username", "username_env", "password_env"))
    sasl = SaslSettings(
        mechanism=sasl_reader.str("mechanism", choices=SASL_MECHANISMS),
        username=sasl_reader.str("username"),
        username_env=sasl_reader.str("username_env"),
        password_env=sasl_reader.str("password_env"),
    )
    if sasl.username and sasl.username_env:
        sasl_reader.fail("username", "give either username or username_env, not both")
    if protocol.startswith("SASL") and not (sasl.mechanism and (sasl.username or sasl.username_env)
                                            and sasl.password_env):
        sasl_reader.fail("mechanism", f"{protocol} needs sasl.mechanism, sasl.username (or sasl.username_env) "
                                      "and sasl.password_env")
    caps_raw = reader.data.get("max_api_versions") or {}
    if not isinstance(caps_raw, dict):
        reader.fail("max_api_versions", "must be a mapping of API name to version")
    for api, version in caps_raw.items():
        if api not in API_KEYS:
            reader.fail(f"max_api_versions.{api}", f"unknown API; known: {', '.join(API_KEYS)}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            reader.fail(f"max_api_versions.{api}", f"must be a non-negative integer, got {version!r}")
    api_version = reader.data.get("api_version")
    if api_version is not None and not re.match(r"^\d+\.\d+(\.\d+)?$", str(api_version)):
        reader.fail("api_version", f"must look like '2.8' or '3.7.0', got {api_version!r}")
    return ClientSettings(
        security_protocol=protocol,
        tls=TlsSettings(
            cafile=tls_reader.str("cafile"),
            certfile=tls_reader.str("certfile"),
            keyfile=tls_reader.str("keyfile"),
            check_hostname=tls_reader.bool("check_hostname", True),
        ),
        sasl=sasl,
        library=reader.str("library", "kafka-python", choices=CLIENT_LIBRARIES),
        idempotence=reader.bool("idempotence", None),
        api_version=None if api_version is None else str(api_version),
        max_api_versions=dict(caps_raw),
        request_timeout_ms=reader.int("request_timeout_ms", 10000, 100, 600000),
        replication_factor=reader.int("replication_factor", 1, 1, 9),
    )


def embedded_addresses(kind: str, stack: StackSettings) -> dict[str, Any]:
    """The addresses an embedded system of this kind listens on, derived from its port base."""
    from k6suite_lib.stack import stack_class
    from k6suite_lib.stack.layout import StackLayout

    layout = StackLayout(port_base=stack.port_base, brokers=stack.brokers)
    return {"bootstrap_servers": (), "metrics_urls": (), "etcd_endpoints": (), "object_store.endpoint": None,
            "object_store.bucket": None, **stack_class(kind, stack.kubernetes).addresses(layout)}


def beside(profile: Profile, offset: int, suffix: str, brokers: int = 1) -> Profile:
    """The profile of a small embedded stack of the same system beside the profile's own (port base +
    offset), for scenarios that need a stack shaped otherwise (S6 grows one, S8 secures one); its
    topics are replicated no more than it has brokers."""
    stack = StackSettings(brokers=brokers, port_base=profile.stack.port_base + offset,
                          kubernetes=profile.stack.kubernetes)
    addresses = embedded_addresses(profile.target_kind, stack)
    return replace(profile, name=f"{profile.name}-{suffix}", stack=stack,
                   bootstrap_servers=addresses["bootstrap_servers"], metrics_urls=addresses["metrics_urls"],
                   etcd_endpoints=addresses["etcd_endpoints"],
                   client=replace(profile.client, replication_factor=min(profile.client.replication_factor, brokers)),
                   object_store=replace(profile.object_store, endpoint=addresses["object_store.endpoint"]))


def _checked_derived(reader: _Reader, key: str, given: tuple[str, ...],
                     derived: dict[str, Any]) -> tuple[str, ...]:
    """Embedded profiles derive addresses from the stack; a stated address must agree with it."""
    if key not in derived:
        return given
    if given and given != derived[key]:
        reader.fail(key, f"is derived from stack.port_base ({', '.join(derived[key])}); got {', '.join(given)}")
    return derived[key]
