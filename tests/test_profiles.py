"""Profiles: shipped ones load; malformed ones fail with the file and the field in the message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from k6suite_lib.profiles import ProfileError, available_profiles, load_profile, parse_profile

SHIPPED = ("local", "local-single", "local-service", "k8s-local", "kafka-local", "k8s")


def test_shipped_profiles_load():
    assert set(SHIPPED) <= set(available_profiles())
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.bootstrap_servers


def test_embedded_addresses_are_derived_from_the_port_base():
    local = load_profile("local")
    assert local.embedded and local.stack.brokers == 3
    assert local.bootstrap_servers == ("127.0.0.1:29092",)
    assert local.metrics_urls == tuple(f"http://127.0.0.1:{29110 + i}/metrics" for i in range(3))
    assert local.object_store.endpoint == "http://127.0.0.1:29000"
    assert local.etcd_endpoints == ("http://127.0.0.1:29010",)
    assert local.client.max_api_versions == {}  # the stack learns its caps from the build (test_builds.py)


def test_the_k8s_profile_derives_the_deployments_addresses():
    profile = load_profile("k8s")
    assert profile.embedded and profile.stack.kubernetes and profile.faults.driver == "kubernetes"
    assert profile.bootstrap_servers == ("127.0.0.1:29592",)  # the proxy Service, forwarded by the node
    assert profile.metrics_urls == ("http://127.0.0.1:29610/metrics",)  # the broker Service's metrics port
    assert profile.object_store.endpoint == "http://127.0.0.1:29500"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["faults"].update(driver="local"), "faults.driver: an embedded profile on Kubernetes is driven"),
    (lambda d: d["target"].update(kind="kafka"), "stack.kubernetes: only KafScale is deployed on Kubernetes here"),
])
def test_a_kubernetes_stack_needs_kafscale_and_the_kubernetes_driver(tmp_path, mutate, message):
    raw = yaml.safe_load(Path("profiles/k8s.yaml").read_text())
    mutate(raw)
    with pytest.raises(ProfileError, match=message):
        parse_profile(raw, "k8s.yaml")


def test_local_service_uses_the_original_suites_ports():
    profile = load_profile("local-service")
    assert profile.bootstrap_servers == ("127.0.0.1:39092",)
    assert profile.metrics_urls == ("http://127.0.0.1:39093/metrics",)


def test_no_two_shipped_profiles_share_an_endpoint_unless_declared_alternatives():
    """The earlier suite pointed two profiles at one address, so a run could hit the wrong system."""
    seen: dict[str, str] = {}
    for name in SHIPPED:
        for server in load_profile(name).bootstrap_servers:
            if server in seen:
                # local-service and k8s-local both reach a KafScale on 39092 (a service, or a port-forward)
                assert {seen[server], name} == {"local-service", "k8s-local"}, server
            seen[server] = name


def _base() -> dict:
    return yaml.safe_load(Path("profiles/local-service.yaml").read_text())


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("name"), "name: required field is missing"),
    (lambda d: d["target"].update(kind="redpanda"), "target.kind: must be one of kafscale, kafka, tansu, other"),
    (lambda d: d.update(bootstrap="x"), "bootstrap: unknown field; did you mean 'bootstrap_servers'?"),
    (lambda d: d.update(bootstrap_servers=["localhost"]), "bootstrap_servers: 'localhost' is not a valid host:port"),
    (lambda d: d.pop("bootstrap_servers"), "bootstrap_servers: required field is missing"),
    (lambda d: d["client"].update(idempotence="yes"), "client.idempotence: must be true or false"),
    (lambda d: d["client"].update(request_timeout_ms=5), "client.request_timeout_ms: must be an integer"),
    (lambda d: d["client"].update(security_protocol="SASL_SSL"),
     "client.sasl.mechanism: SASL_SSL needs sasl.mechanism"),
    (lambda d: d["client"].update(max_api_versions={"Fetsch": 11}), "client.max_api_versions.Fetsch: unknown API"),
    (lambda d: d["client"].update(max_api_versions={"Fetch": -1}), "client.max_api_versions.Fetch: must be"),
    (lambda d: d["client"].update(api_version="latest"), "client.api_version: must look like"),
    (lambda d: d["object_store"].update(secret_key="hunter22"), "object_store.secret_key: a literal secret"),
    (lambda d: d["client"].update(sasl={"password": "hunter22"}), "client.sasl.password: a literal secret"),
    (lambda d: d["client"].update(sasl={"username": "tenant-a", "username_env": "USER"}),
     "client.sasl.username: give either username or username_env"),
    (lambda d: d["object_store"].pop("secret_key_env"), "object_store.access_key_env: an object store needs"),
    (lambda d: d["object_store"].update(endpoint="minio:9000"), "object_store.endpoint: must be an http(s) URL"),
    (lambda d: d.update(metrics_urls=["127.0.0.1:39093"]), "metrics_urls: '127.0.0.1:39093' is not a valid"),
    (lambda d: d["faults"].update(driver="chaosmesh"), "faults.driver: must be one of local, kubernetes, none"),
    (lambda d: d.update(stack={"brokers": 2}), "stack: only an embedded profile"),
    (lambda d: d.update(client=["PLAINTEXT"]), "client: must be a mapping"),
    (lambda d: d.update(not_promised={"F9.1": "x"}), "not_promised.F9.1: not a requirement id"),
    (lambda d: d.update(not_promised={"F1.2": ""}), "not_promised.F1.2: must give the reason"),
    (lambda d: d.update(not_promised=["F1.2"]), "not_promised: must be a mapping"),
    (lambda d: d.update(not_promised={"F3": "x"}), "not_promised.F3: F2, F3, NFR1, NFR2 cannot be waived"),
    (lambda d: d.update(not_promised={"NFR2.1": "x"}), "not_promised.NFR2.1: F2, F3, NFR1, NFR2 cannot be waived"),
])
def test_malformed_profile_names_file_and_field(mutate, message):
    raw = _base()
    mutate(raw)
    with pytest.raises(ProfileError) as excinfo:
        parse_profile(raw, source="profiles/bad.yaml")
    assert str(excinfo.value).startswith("profiles/bad.yaml: ")
    assert message in str(excinfo.value)


def test_embedded_profile_rejects_a_contradicting_address():
    raw = yaml.safe_load(Path("profiles/local.yaml").read_text())
    raw["bootstrap_servers"] = ["127.0.0.1:9092"]
    with pytest.raises(ProfileError, match=r"bootstrap_servers: is derived from stack.port_base"):
        parse_profile(raw, source="x.yaml")


def test_only_kafka_has_dedicated_controllers():
    assert load_profile("kafka").stack.controllers == 3
    raw = yaml.safe_load(Path("profiles/local.yaml").read_text())
    raw["stack"]["controllers"] = 3
    with pytest.raises(ProfileError, match=r"stack.controllers: only Apache Kafka has KRaft controllers"):
        parse_profile(raw, source="x.yaml")


def test_embedded_profile_must_be_driven_locally():
    raw = yaml.safe_load(Path("profiles/local.yaml").read_text())
    raw["faults"]["driver"] = "none"
    with pytest.raises(ProfileError, match=r"faults.driver: an embedded profile is driven by the local"):
        parse_profile(raw, source="x.yaml")


def test_file_errors(tmp_path):
    with pytest.raises(ProfileError, match=r"no such profile .*known profiles: .*local"):
        load_profile("nope")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match=r"broken.yaml: not valid YAML"):
        load_profile(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ProfileError, match=r"empty.yaml: name: required field is missing"):
        load_profile(empty)


def test_summary_holds_no_secret_values(monkeypatch):
    monkeypatch.setenv("KAFSCALE_S3_SECRET_KEY", "s3cr3t-value")
    summary = load_profile("local-service").summary()
    assert "s3cr3t-value" not in repr(summary)
    assert summary["object_store"]["secret_key_env"] == "KAFSCALE_S3_SECRET_KEY"


def test_no_shipped_profile_switches_a_client_default_off():
    """A default that breaks on a target is a finding, never a profile line (the KafScale profiles set
    `idempotence: false` because KafScale has no InitProducerId); and an unset idempotence reaches
    kafka-python unset, which reads a given None as off."""
    from k6suite_lib.clients import producer_config

    for name in available_profiles():
        profile = load_profile(name)
        assert profile.client.idempotence is not False, name
        if profile.client.idempotence is None:
            assert "enable_idempotence" not in producer_config(profile), name
    kafka_local = load_profile("kafka-local")  # says so explicitly: passed on as it is
    assert producer_config(kafka_local)["enable_idempotence"] is True
