"""The embedded Apache Kafka cluster (KRaft) as local JVMs on 127.0.0.1: the baseline.

Kafka 4.1.1 and its runtime dependencies come from Maven Central into the gitignored cache, with
the log4j2 binding Kafka's own distribution ships (Kafka's poms pin slf4j-api 1.7.36, so the
binding is log4j-slf4j-impl; the slf4j2 one silently drops every line). With `stack.controllers`
(the kafka profile: 3) the cluster has the topology production Kafka runs: dedicated controller-only
nodes (node ids 10, 11, ...; processes controller-10, ... with role "controller") forming a fixed
voter set, and broker-only nodes 0..brokers-1, so a fault on a broker never takes the active
controller with it. Without (combined mode, a variant), nodes 0..brokers-1 are broker and controller
at once. Either way a broker added later is a broker-only node that joins that quorum. Each node's
storage is formatted once, at start-up, with the cluster's one id; a restarted node starts on the
data it has.

A node is ready when its own Metadata answer lists it: a KRaft broker opens its client listener
only after it has caught up with the metadata log and the controller has unfenced it, and its
metadata lists only unfenced brokers. The stack is up when, in addition, a topic replicated like
the suite's topics (RF 3) can be created.

Every node also has a TLS listener (F1.3) with a certificate from a CA made per stack (stack.tls),
read by Kafka as a PEM keystore; nothing else changes for clients of the plaintext listener. A
stack started with security (S8) is the positive control for access control: SASL/PLAIN on every
listener (its admin principal is the super user for inter-broker and controller traffic and the
suite's own work), the StandardAuthorizer denying whatever no ACL allows, and prefixed ACLs giving
each tenant its own topics and groups. Passwords live in the 0600 secrets file and in the nodes'
server.properties (0600); Kafka's log does not show them (its config dump omits listener-prefixed keys).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import TopicAlreadyExistsError

from k6suite_lib import probes
from k6suite_lib.stack import binaries, tls
from k6suite_lib.stack.base import (
    READY_TIMEOUT_S,
    EmbeddedStack,
    Security,
    broker_id_of,
    port_answers,
    stop_recorded,
)
from k6suite_lib.stack.layout import HOST, MAX_BROKERS, StackLayout
from k6suite_lib.stack.process import ProcessRecord, StackError, is_alive, send_signal, wait_dead, wait_ready

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
MAVEN_TIMEOUT_S = 900
FORMAT_TIMEOUT_S = 300  # a JVM start; on two cores at a load average of 60-90 one took over 120 s
ADMIN_TIMEOUT_MS = 5000
# Start-up under load: a loaded 2-core machine (load average 40-90 from other stacks) took over 60 s to
# bring a KRaft quorum up; only the first start of each node gets this longer bound.
START_TIMEOUT_S = 3 * READY_TIMEOUT_S
READY_TOPIC = "k6suite-ready"  # created and deleted once at start-up to prove RF 3 topics can be made
SASL_MECHANISM = "PLAIN"  # its users are the JAAS config's; SCRAM users would go through a command line
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Dedicated controllers' node ids start above every broker id the layout allows.
CONTROLLER_ID_BASE = MAX_BROKERS
# Heap per role, what this 2-core, 24 GiB machine affords for six JVMs: a controller holds only the
# metadata log (a few MB here), so it gets half a broker's.
HEAP = {"broker": "-Xmx512m", "controller": "-Xmx256m"}
# What Kafka's own bin/kafka-server-start.sh gives the JVM, besides the heap.
JVM_OPTIONS = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
               "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
MAVEN_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>k6suite.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka_version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j_version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j_version}</version>
    </dependency>
  </dependencies>
</project>
"""
# The jars without which a node cannot start or would log nothing.
def required_jars(version: str) -> tuple[str, ...]:
    return (f"kafka_2.13-{version}.jar", f"kafka-clients-{version}.jar",
            f"log4j-slf4j-impl-{LOG4J_VERSION}.jar", f"log4j-core-{LOG4J_VERSION}.jar")
# Everything to the node's stdout, which the stack appends to logs/broker-N.log; without log4j2's own
# shutdown hook, which would stop logging before Kafka logs its shutdown.
LOG4J2_PROPERTIES = """status = warn
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
"""


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    """Kafka's cache folder, beside the Go binaries' (K6SUITE_CACHE_DIR or <repo>/.cache)."""
    return binaries.cache_dir().parent / f"kafka-{version}"


def install_kafka(version: str = KAFKA_VERSION, log: Callable[[str], None] = print) -> Path:
    """Kafka's jars from Maven Central, staged in a sibling folder and renamed into place, so a
    half-finished download is never used; Maven's own repository lives in a temporary folder."""
    target = kafka_home(version) / "libs"
    if target.is_dir():
        log(f"kafka {version}: cached at {target}")
        return target
    if shutil.which("mvn") is None:
        raise binaries.BinaryError(f"Maven (mvn) is not on PATH; it fetches Kafka {version} from Maven Central")
    log(f"kafka {version}: fetching jars from Maven Central (first time only)...")
    staged = target.with_name("libs.partial")
    shutil.rmtree(staged, ignore_errors=True)
    staged.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="k6suite-maven-") as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(MAVEN_POM.format(kafka_version=version, log4j_version=LOG4J_VERSION))
        argv = ["mvn", "-q", "-B", f"-Dmaven.repo.local={work / 'repository'}", "dependency:copy-dependencies",
                f"-DoutputDirectory={staged}", "-DincludeScope=runtime"]
        _run_bounded(argv, work, MAVEN_TIMEOUT_S, binaries.BinaryError)
    missing = [jar for jar in required_jars(version) if not (staged / jar).is_file()]
    if missing:
        raise binaries.BinaryError(f"Maven finished but {', '.join(missing)} are missing from {staged}")
    staged.rename(target)
    log(f"kafka {version}: {len(list(target.glob('*.jar')))} jars in {target}")
    return target


def java_path() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("java is not on PATH; Apache Kafka needs a Java 17 runtime")
    return java


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (what `kafka-storage
    random-uuid` prints), made here to save a JVM start."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min in-sync replicas) for a cluster of this size: 3 and 2 from three
    brokers on, so one broker may die without refusing acks=all writes."""
    return min(3, brokers), max(1, min(2, brokers - 1))


class KafkaStack(EmbeddedStack):
    """Apache Kafka in KRaft mode: every client connects to every broker it learns from Metadata."""

    system = "kafka"
    authenticates = True
    access_control = (f"SASL/{SASL_MECHANISM} credentials per principal on every listener; {AUTHORIZER} with "
                      "allow.everyone.if.no.acl.found=false; prefixed ACLs (ALL) on each tenant's topics and groups")

    @classmethod
    def addresses(cls, layout: StackLayout) -> dict[str, tuple[str, ...] | str]:
        return {"bootstrap_servers": tuple(f"{HOST}:{layout.broker_port(i)}" for i in range(layout.brokers))}

    # ------------------------------------------------------------------ nodes
    @property
    def dedicated(self) -> bool:
        """Whether the controllers are processes of their own (else every starting broker is one)."""
        return self.layout.controllers > 0

    @property
    def voter_ids(self) -> range:
        """The controller quorum's node ids (fixed; added brokers only observe it): the dedicated
        controllers, or in combined mode the nodes the stack starts with."""
        if self.dedicated:
            return range(CONTROLLER_ID_BASE, CONTROLLER_ID_BASE + self.layout.controllers)
        return range(self.layout.brokers)

    def voter_port(self, node_id: int) -> int:
        """A voter's CONTROLLER listener (a dedicated controller's by its index)."""
        return self.layout.broker_control_port(node_id - CONTROLLER_ID_BASE if self.dedicated else node_id)

    def node_dir(self, node_id: int) -> Path:
        return self.layout.data_dir / node_name(node_id)

    def tls_endpoint(self) -> str | None:
        return f"{HOST}:{self.layout.broker_tls_port(0)}"

    def ca_file(self) -> Path | None:
        return self.layout.data_dir / "tls" / tls.CA_FILE

    def _quorum_properties(self, node_id: int) -> dict[str, str]:
        """What every node says about the quorum, and the failover timing both roles take part in."""
        return {
            "node.id": str(node_id),
            "controller.quorum.voters": ",".join(f"{i}@{HOST}:{self.voter_port(i)}" for i in self.voter_ids),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.node_dir(node_id) / "log"),
            # Chosen on purpose: until the controller fences a SIGKILLed or paused broker, acks=all writes
            # stall on every partition whose ISR holds it (RF 3 on 3 brokers: all of them). With Kafka's
            # default of 9 s that stall measured 8.8-9.7 s here; with 3 s it measured 3.1-5.3 s (up to
            # 7.9 s on a machine loaded to 18 on two cores), against the contract's 5 s. Operators who need
            # fast failover shorten the session, as this stack does, so the recovery check is calibrated
            # on a system that meets it. The controller enforces it; the broker heartbeats within it.
            "broker.session.timeout.ms": "2000",
            "broker.heartbeat.interval.ms": "500",
            # Combined mode only: when the dead node was also the active controller, the voters first
            # notice the lost leader (fetch timeout, default 2 s), elect another (election timeout,
            # default 1 s), and only then does the new controller's session clock run: 5.3-5.6 s measured
            # on every partition with the defaults, 11-13.4 s with a 9 s session. Halved there for the
            # same reason as the session above; dedicated controllers never die with a broker, so they
            # keep Kafka's defaults.
            **({} if self.dedicated else {"controller.quorum.fetch.timeout.ms": "1000",
                                          "controller.quorum.election.timeout.ms": "500"}),
            **(self._security_properties(self.security) if self.security else {}),
        }

    def controller_properties(self, node_id: int) -> dict[str, str]:
        """server.properties of a dedicated controller: the CONTROLLER listener and nothing a client sees."""
        plain = "SASL_PLAINTEXT" if self.security else "PLAINTEXT"
        return {
            "process.roles": "controller",
            "listeners": f"CONTROLLER://{HOST}:{self.voter_port(node_id)}",
            "listener.security.protocol.map": f"CONTROLLER:{plain}",
            **self._quorum_properties(node_id),
        }

    def node_properties(self, broker_id: int) -> dict[str, str]:
        """server.properties of one node (a dedicated controller's, or a broker's). Replication follows
        the starting cluster size."""
        if broker_id >= CONTROLLER_ID_BASE:
            return self.controller_properties(broker_id)
        layout = self.layout
        factor, min_isr = replication(layout.brokers)
        voter = broker_id in self.voter_ids
        # listener names are their protocols; a secured stack authenticates on every one
        plain, secure = ("SASL_PLAINTEXT", "SASL_SSL") if self.security else ("PLAINTEXT", "SSL")
        advertised = [f"{plain}://{HOST}:{layout.broker_port(broker_id)}",
                      f"{secure}://{HOST}:{layout.broker_tls_port(broker_id)}"]
        listeners = advertised + ([f"CONTROLLER://{HOST}:{self.voter_port(broker_id)}"] if voter else [])
        return {
            "process.roles": "broker,controller" if voter else "broker",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "listener.security.protocol.map": f"{plain}:{plain},{secure}:{secure},CONTROLLER:{plain}",
            "inter.broker.listener.name": plain,
            f"listener.name.{secure.lower()}.ssl.keystore.type": "PEM",
            f"listener.name.{secure.lower()}.ssl.keystore.location": str(layout.data_dir / "tls" / tls.SERVER_FILE),
            "default.replication.factor": str(factor),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(factor),
            "transaction.state.log.replication.factor": str(factor),
            "transaction.state.log.min.isr": str(min_isr),
            "share.coordinator.state.topic.replication.factor": str(factor),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "unclean.leader.election.enable": "false",
            "auto.create.topics.enable": "true",
            "group.initial.rebalance.delay.ms": "0",
            **self._quorum_properties(broker_id),
        }

    def _security_properties(self, security: Security) -> dict[str, str]:
        """SASL/PLAIN on every listener with every principal's password, the admin as the brokers' and
        controllers' own identity and super user, and an authorizer that denies what no ACL allows."""
        admin = security.admin
        users = " ".join(f'user_{p}="{self.password(p)}"' for p in security.principals)
        jaas = (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{admin}" '
                f'password="{self.password(admin)}" {users};')
        return {
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            "sasl.mechanism.controller.protocol": SASL_MECHANISM,
            **{f"listener.name.{name}.plain.sasl.jaas.config": jaas for name in ("sasl_plaintext", "sasl_ssl",
                                                                                  "controller")},
            "authorizer.class.name": AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{admin}",
        }

    def _write_node_config(self, broker_id: int) -> Path:
        directory = self.node_dir(broker_id)
        directory.mkdir(parents=True, exist_ok=True)
        (self.layout.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        path = directory / "server.properties"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a secured node's holds passwords
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{key}={value}\n" for key, value in self.node_properties(broker_id).items()))
        return path

    def _java(self, main_class: str, *args: str, role: str = "broker") -> list[str]:
        return [java_path(), HEAP[role], *JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={self.layout.data_dir / 'log4j2.properties'}",
                "-cp", str(Path(self.build.paths["kafka-libs"]) / "*"), main_class, *args]

    def _format(self, broker_id: int, cluster_id: str) -> None:
        """Format a node's storage with the cluster id (only for a node that has never run)."""
        config = self._write_node_config(broker_id)
        # "--cluster-id=ID" in one word: a random id may begin with "-", which a separate word would
        # make an option (one start in 64 failed so: "argument --cluster-id/-t: expected one argument")
        argv = self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config))
        _run_bounded(argv, self.node_dir(broker_id), FORMAT_TIMEOUT_S, StackError)

    def cluster_id(self) -> str:
        """The id the stack's nodes were formatted with, from a voter's meta.properties."""
        for broker_id in self.voter_ids:
            meta = self.node_dir(broker_id) / "log" / "meta.properties"
            if meta.is_file():
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1].strip()
        raise StackError(f"no formatted Kafka node under {self.layout.data_dir}; start the stack first")

    def _spawn_broker(self, broker_id: int) -> ProcessRecord:
        if not Path(self.build.paths["kafka-libs"]).is_dir():
            raise StackError(f"Kafka's jars are missing at {self.build.paths['kafka-libs']}; "
                             "run `k6suite stack install`")
        config = self._write_node_config(broker_id)
        ports = [self.layout.broker_port(broker_id), self.layout.broker_tls_port(broker_id)]
        if broker_id in self.voter_ids:
            ports.append(self.voter_port(broker_id))
        return self._start(f"broker-{broker_id}", "broker", self._java("kafka.Kafka", str(config)), {}, ports,
                           cwd=self.node_dir(broker_id))

    def _spawn_controller(self, node_id: int) -> ProcessRecord:
        config = self._write_node_config(node_id)
        return self._start(node_name(node_id), "controller",
                           self._java("kafka.Kafka", str(config), role="controller"), {},
                           [self.voter_port(node_id)], cwd=self.node_dir(node_id))

    def _controller_ready(self, record: ProcessRecord) -> str | None:
        """None once the controller's listener accepts connections; that the quorum works is proven by
        the brokers, which are ready only once a controller has registered and unfenced them."""
        return port_answers(record.ports[0])

    def _start_components(self) -> None:
        tls.issue(self.layout.data_dir / "tls")
        cluster_id = new_cluster_id()
        brokers = range(self.layout.brokers)
        controllers = self.voter_ids if self.dedicated else range(0)
        with ThreadPoolExecutor(max_workers=3) as pool:  # one JVM start each; six in a row took ~20 s
            list(pool.map(lambda node_id: self._format(node_id, cluster_id), (*controllers, *brokers)))
        for node_id in controllers:
            self._spawn_controller(node_id)
        for broker_id in brokers:
            self._spawn_broker(broker_id)
        # Six JVMs start at once on two cores; a broker is ready only once the quorum has elected a leader
        # and registered it, so the brokers are waited for first and longer, and they prove the quorum works.
        for broker_id in brokers:
            self._wait_broker(broker_id, START_TIMEOUT_S)
        for node_id in controllers:
            record = self.record(node_name(node_id))
            wait_ready(record, lambda r=record: self._controller_ready(r), READY_TIMEOUT_S)
        wait_ready(self.record("broker-0"), self._replicated_topic_creatable, READY_TIMEOUT_S)
        if self.security:
            self._grant_tenants(self.security)

    def _grant_tenants(self, security: Security) -> None:
        """Each tenant may do anything to the topics and groups in its scope and nothing else; returns once
        the broker that answers lists every ACL (it authorizes from the same cache)."""
        acls = [ACL(f"User:{tenant}", "*", ACLOperation.ALL, ACLPermissionType.ALLOW,
                    ResourcePattern(kind, security.scope(tenant), ACLResourcePatternType.PREFIXED))
                for tenant in security.tenants for kind in (ResourceType.TOPIC, ResourceType.GROUP)]
        every = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                          ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        with self._admin() as admin:
            failed = admin.create_acls(acls)["failed"]
            if failed:
                raise StackError(f"Kafka refused the tenants' ACLs: {failed}")

            def listed() -> str | None:
                found = admin.describe_acls(every)[0]
                return None if len(found) >= len(acls) else f"{len(found)} of {len(acls)} ACLs listed"

            wait_ready(self.record("broker-0"), listed, READY_TIMEOUT_S)

    def _broker_ready(self, record: ProcessRecord) -> str | None:
        broker_id = broker_id_of(record)
        address = f"{HOST}:{self.layout.broker_port(broker_id)}"
        closed = port_answers(self.layout.broker_port(broker_id))
        if closed:
            return closed
        if self.security:  # Metadata needs a login: the admin's, bootstrapped at this node
            with self._admin([address]) as admin:
                listed = {b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")}
        else:
            answer = probes.metadata(address, topics=[])
            if not answer.ok:
                return f"Metadata from {address}: {answer.describe()}"
            listed = set(probes.metadata_brokers(answer)["node_id"])
        if broker_id not in listed:
            return f"{address} does not list itself as a registered, unfenced broker yet (lists {sorted(listed)})"
        return None

    def _replicated_topic_creatable(self) -> str | None:
        """None once a topic of the suite's replication factor is created with a leader, then deleted."""
        factor, _ = replication(self.layout.brokers)
        with self._admin() as admin:
            with contextlib.suppress(TopicAlreadyExistsError):  # an earlier attempt created it, then failed
                admin.create_topics({READY_TOPIC: {"num_partitions": 1, "replication_factor": factor}},
                                    timeout_ms=ADMIN_TIMEOUT_MS)
            admin.wait_for_topics([READY_TOPIC], timeout_ms=ADMIN_TIMEOUT_MS)
            admin.delete_topics([READY_TOPIC], timeout_ms=ADMIN_TIMEOUT_MS)
        return None

    def _ready_check(self, record: ProcessRecord) -> Callable[[], str | None]:
        if record.role == "controller":
            return lambda: self._controller_ready(record)
        _only_brokers(record)
        return lambda: self._broker_ready(record)

    def _restart_component(self, record: ProcessRecord) -> None:
        if record.role == "controller":
            node_id = broker_id_of(record)
            self._spawn_controller(node_id)
            wait_ready(self.record(record.name), lambda: self._controller_ready(record), READY_TIMEOUT_S)
            return
        _only_brokers(record)
        self.restart(broker_id_of(record))

    def add_broker(self) -> int:
        """A broker-only node with the next id, formatted with the cluster's id, joining the fixed quorum;
        returns once it is registered and unfenced (its own Metadata lists it)."""
        broker_id = max(self.broker_ids, default=-1) + 1
        self.layout.broker_port(broker_id)  # refuses ids the layout has no ports for
        self._format(broker_id, self.cluster_id())
        self._spawn_broker(broker_id)
        self._wait_broker(broker_id)
        return broker_id

    def down(self, grace_s: float = 5.0) -> dict[str, str]:
        """Stop every node at once, as kafka-server-stop.sh does (stopped one by one, the last voter
        loses its quorum and waits for a controller that is gone until it is killed); whoever
        outlives the grace period is killed. Returns how each node ended."""
        alive = [r for r in self.records.values() if is_alive(r)]
        for record in alive:
            send_signal(record, signal.SIGCONT)  # a paused JVM cannot run its shutdown
            send_signal(record, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for record in alive:
            wait_dead(record, max(0.0, deadline - time.monotonic()))
        terminated = {r.name for r in alive if not is_alive(r)}
        ended = stop_recorded(self.layout, grace_s=0.0)
        return {name: "terminated" if name in terminated else how for name, how in ended.items()}

    # ------------------------------------------------------------------ faults
    def _admin(self, bootstrap: list[str] | None = None) -> KafkaAdminClient:
        """The suite's own admin client (the super user on a secured stack), on the live brokers."""
        live = [b for b in self.broker_ids if is_alive(self.record(f"broker-{b}"))]
        if not live:
            raise StackError("no Kafka broker of this stack is running")
        login = {}
        if self.security:
            login = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": SASL_MECHANISM,
                     "sasl_plain_username": self.security.admin,
                     "sasl_plain_password": self.password(self.security.admin)}
        return KafkaAdminClient(bootstrap_servers=bootstrap or [f"{HOST}:{self.layout.broker_port(b)}" for b in live],
                                client_id="k6suite-stack", request_timeout_ms=ADMIN_TIMEOUT_MS,
                                bootstrap_timeout_ms=ADMIN_TIMEOUT_MS, **login)

    def fault_target(self, topic: str | None = None) -> int:
        """The broker leading the most partitions of topic (ties: the leader of the lowest such
        partition): the one whose loss forces the most leader elections for the workload's writes.

        With no topic, or a topic without leaders (unknown, not created yet): the active controller,
        the quorum leader whose loss also forces an election, where it is a broker (combined mode);
        else broker 0. Faults act on brokers only, never on a dedicated controller.
        """
        with self._admin() as admin:
            if topic is not None:
                leaders = partition_leaders(admin.describe_topics([topic]), topic)
                if leaders:
                    return busiest_leader(leaders)
            # DescribeCluster's controller_id will not do: in KRaft it names a random live broker
            quorum = admin.describe_metadata_quorum()
        leader = quorum["topics"][0]["partitions"][0]["leader_id"]
        return leader if leader in self.broker_ids else 0


    def workload_load(self, broker_id: int, topic: str | None = None) -> dict:
        """Connections, and the partitions of topic the broker leads: every client connects to every
        broker here, so only leadership says that the workload's writes went to it."""
        load = super().workload_load(broker_id, topic)
        if topic is not None:
            with self._admin() as admin:
                leaders = partition_leaders(admin.describe_topics([topic]), topic)
            load["leads"] = sorted(p for p, leader in leaders.items() if leader == broker_id)
        return load


def _only_brokers(record: ProcessRecord) -> None:
    """Every component of the embedded Kafka that is not a dedicated controller is a broker."""
    if record.role != "broker":
        raise StackError(f"the embedded kafka has no {record.role} component ({record.name})")


def node_name(node_id: int) -> str:
    """A node's process and folder name: controller-10 for a dedicated controller, else broker-N."""
    return f"controller-{node_id}" if node_id >= CONTROLLER_ID_BASE else f"broker-{node_id}"


def partition_leaders(described: list[dict], topic: str) -> dict[int, int]:
    """partition -> leader id for the partitions of topic that have a leader (kafka-python's
    describe_topics names them partition_index and leader_id)."""
    return {p["partition_index"]: p["leader_id"] for t in described if t["name"] == topic and not t["error_code"]
            for p in t["partitions"] if p["leader_id"] >= 0}


def busiest_leader(leaders: dict[int, int]) -> int:
    """The broker leading the most partitions; among equals, the leader of the lowest partition."""
    counts = Counter(leaders.values())
    most = max(counts.values())
    return next(leaders[p] for p in sorted(leaders) if counts[leaders[p]] == most)


def _run_bounded(argv: list[str], cwd: Path, timeout_s: float, error: type[Exception]) -> None:
    """Run a short-lived tool (Maven, Kafka's storage formatter) to completion; its output is shown
    only when it fails."""
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise error(f"`{' '.join(argv[:1] + argv[-6:])}` did not finish within {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-15:])
        raise error(f"`{' '.join(argv[:1] + argv[-6:])}` failed (exit {proc.returncode}):\n{tail}")
