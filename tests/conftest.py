"""Shared fixtures: embedded stacks on port bases of their own, so tests never touch a user's stack.

Port bases are 400 apart (a stack and its S6 scale-out stack fit in 400 ports) and below 29000,
where the shipped profiles' stacks live.

Stacks are real (etcd, MinIO, Toxiproxy, KafScale brokers and proxy as local processes). Each
fixture stops every process it started, by PID, even when a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from k6suite_lib.checkers import AnomalyRules, CheckSpec, compose
from k6suite_lib.cli import interrupt_on_sigterm
from k6suite_lib.history import View
from k6suite_lib.profiles import Profile, load_profile
from k6suite_lib.stack import EmbeddedStack, binaries, open_stack
from k6suite_lib.stack.process import is_alive


def port_base_for(base: int) -> int:
    """A test stack's port base, shifted by K6SUITE_TEST_PORT_OFFSET (e.g. -6000) so that two test runs on
    one machine (two checkouts) never share ports; the default keeps every test stack in 20000-26000."""
    return base + int(os.environ.get("K6SUITE_TEST_PORT_OFFSET", "0"))


SHARED_PORT_BASE = port_base_for(20000)  # 3 brokers, shared by integration tests that leave it whole
SINGLE_PORT_BASE = port_base_for(20400)  # 1 broker
KAFKA_PORT_BASE = port_base_for(23000)  # Apache Kafka as profiles/kafka.yaml (3 controllers, 3 brokers)


def pytest_configure(config) -> None:
    interrupt_on_sigterm()  # a terminated test run still tears its stacks down


def without_idempotence_on_kafscale(raw: dict) -> dict:
    """A KafScale profile (raw YAML) recording with a non-idempotent producer, librdkafka's default. KafScale has
    no InitProducerId, so kafka-python's default, idempotent producer gets nothing acknowledged there: the shipped
    profiles keep that default and S3 FAILs with it (tests/test_workload.py checks the evidence). The tests of
    the harness and of KafScale's other behaviour need acknowledged writes, so their stacks say so here."""
    if raw.get("target", {}).get("kind") == "kafscale":
        raw.setdefault("client", {})["idempotence"] = False
    return raw


def write_profile(directory: Path, name: str, port_base: int, brokers: int, like: str = "local") -> Path:
    """An embedded profile like profiles/<like>.yaml (local: KafScale, kafka, tansu), on a test port base; a
    KafScale one records without idempotence (without_idempotence_on_kafscale)."""
    base = without_idempotence_on_kafscale(yaml.safe_load(Path(f"profiles/{like}.yaml").read_text()))
    base.update(name=name, stack={**base.get("stack", {}), "brokers": brokers, "port_base": port_base})
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.fixture(scope="session")
def outputs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="session", autouse=True)
def isolated_outputs(outputs_dir: Path) -> Iterator[None]:
    """Stack state and run archives of tests go to a temporary folder, not the checkout's outputs/."""
    patcher = pytest.MonkeyPatch()
    patcher.setenv("K6SUITE_OUTPUTS", str(outputs_dir))
    yield
    patcher.undo()


def stack_fixture(tmp_path_factory, name: str, port_base: int, brokers: int,
                  like: str = "local") -> Iterator[tuple[EmbeddedStack, Profile]]:
    """A started embedded stack (like profiles/<like>.yaml, on a test port base), stopped by PID after."""
    profile_path = write_profile(tmp_path_factory.mktemp(name), name, port_base, brokers, like=like)
    profile = load_profile(profile_path)
    stack = open_stack(profile, log=lambda _msg: None)
    binaries.install(systems=[stack.system], log=lambda _msg: None)
    stack.up()
    try:
        yield stack, profile
    finally:
        stack.down()


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory, isolated_outputs) -> Iterator[tuple[EmbeddedStack, Profile]]:
    yield from stack_fixture(tmp_path_factory, "test-shared", SHARED_PORT_BASE, 3)


@pytest.fixture(scope="session")
def single_stack(tmp_path_factory, isolated_outputs) -> Iterator[tuple[EmbeddedStack, Profile]]:
    yield from stack_fixture(tmp_path_factory, "test-single", SINGLE_PORT_BASE, 1)


@pytest.fixture(scope="module")
def kafka_stack(tmp_path_factory, isolated_outputs) -> Iterator[tuple[EmbeddedStack, Profile]]:
    """The baseline, Apache Kafka, one per module that asks for it: where a test judges the harness
    itself, the system under test must be one that keeps its promises."""
    yield from stack_fixture(tmp_path_factory, "test-kafka", KAFKA_PORT_BASE, 3, like="kafka")


def verdicts_of(history_frame, rules: AnomalyRules | None = None, *extra: CheckSpec):
    """The verdict table (indexed by check) of the anomalies and read-back checkers on a history."""
    specs = [CheckSpec("anomalies", (rules or AnomalyRules()).params()), CheckSpec("readback"), *extra]
    return compose(View(history_frame), specs).set_index("check")


def assert_clean(verdicts) -> None:
    failed = verdicts[verdicts["status"] != "PASS"]
    assert failed.empty, failed[["measured", "threshold", "status", "evidence"]].to_string()


def assert_all_dead(records) -> None:
    survivors = [f"{r.name} (pid {r.pid})" for r in records if is_alive(r)]
    assert not survivors, f"still running: {', '.join(survivors)}"

