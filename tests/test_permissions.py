"""S8 (permission boundary) and the TLS listener on real stacks, and the secrets both bring.

- Apache Kafka, the positive control, through the runner (papermill): S1's TLS checks and every S8 verdict
  PASS, and no tenant or admin password and no byte of a private key lands in the archive.
- KafScale v1.5.0, whose ACLs trust whatever client.id a client claims: the cross-tenant read FAILs,
  with a client claiming the other tenant's client.id as the evidence.
- Tansu v0.6.0-510f3e2 with the access control it has (`--authentication`): no login can be verified,
  so the admin's set-up fails, and a login with the wrong password is served as logged in.
- The TLS material and the secrets file, without a stack.

Port bases: 25200 (Kafka; S8's secured stack at 25400), 25600 (KafScale; S8's at 25800) and 26400
(Tansu; S8's at 26600).
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import stat
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from k6suite_lib.profiles import beside, load_profile
from k6suite_lib.runner import run_suite
from k6suite_lib.scenario import Scenario
from k6suite_lib.scenarios import s8_permissions as s8
from k6suite_lib.secrets import redact
from k6suite_lib.stack import open_stack, tls
from k6suite_lib.stack.layout import outputs_root
from k6suite_lib.stack.state import stack_credentials, stack_secret, stored_secrets
from tests.conftest import port_base_for, without_idempotence_on_kafscale

KAFKA_PORT_BASE = port_base_for(25200)
KAFSCALE_PORT_BASE = port_base_for(25600)
TANSU_PORT_BASE = port_base_for(26400)
S8_STACK = s8.SECURED_STACK_OFFSET


def one_broker_profile(directory: Path, source: str, name: str, port_base: int) -> Path:
    """A shipped profile on a test port base, with one broker (and its topics replicated once)."""
    raw = without_idempotence_on_kafscale(yaml.safe_load(Path(source).read_text()))
    raw.update(name=name, stack={"brokers": 1, "port_base": port_base})
    raw["client"]["replication_factor"] = 1
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def private_key_lines(port_base: int) -> list[bytes]:
    """The base64 lines of the private key a stack on this port base wrote (its data dir outlives down())."""
    pem = (outputs_root() / "stack" / str(port_base) / "data" / "tls" / tls.SERVER_FILE).read_bytes()
    key = pem.split(b"-----BEGIN PRIVATE KEY-----")[1].split(b"-----END PRIVATE KEY-----")[0]
    return [line for line in key.split() if len(line) >= 16]


@pytest.mark.stack
def test_kafka_passes_tls_and_s8_and_no_secret_reaches_the_archive(tmp_path):
    profile = one_broker_profile(tmp_path, "profiles/kafka.yaml", "perm-kafka", KAFKA_PORT_BASE)
    outcome = run_suite(str(profile), ["S1", "S8"], "smoke", out_root=tmp_path / "archive", cell_timeout_s=600,
                        log=lambda _msg: None)
    run_dir = outcome.run_dir
    results = {s["scenario"]: s for s in json.loads((run_dir / "summary.json").read_text())["scenarios"]}

    tls_rows = [v for v in results["S1"]["verdicts"] if v["variant"] == "tls"]
    assert [v["status"] for v in tls_rows] == ["PASS"] * 3, tls_rows
    assert "verify-failed" in tls_rows[1]["measured"] and tls_rows[2]["measured"] != "response"
    s8_rows = [v for v in results["S8"]["verdicts"] if v["variant"] != "stack"]  # the runner's own check
    assert len(s8_rows) == len(s8.CHECKS) and all(v["status"] == "PASS" for v in s8_rows), [
        (v["check"], v["measured"], v["evidence"]) for v in s8_rows if v["status"] != "PASS"]
    assert (run_dir / "S8-permissions" / "attempts.csv").is_file()
    assert (run_dir / "S8-permissions" / "executed.ipynb").is_file()
    # what its calibration record is held against: the tenants' producers run idempotent (kafka-python's default)
    assert results["S8"]["client_settings"]["permissions"]["idempotent"] is True

    passwords = [v.encode() for k, v in stored_secrets().items()
                 if k.startswith(f"K6SUITE_STACK_{KAFKA_PORT_BASE + S8_STACK}_")]
    assert len(passwords) == 3 and all(len(p) >= 16 for p in passwords)  # the admin and two tenants
    keys = private_key_lines(KAFKA_PORT_BASE) + private_key_lines(KAFKA_PORT_BASE + S8_STACK)
    archived = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(archived) > 10
    for path in archived:
        data = path.read_bytes()
        assert b"PRIVATE KEY" not in data, f"a private key reached {path.relative_to(run_dir)}"
        for value in passwords + keys:
            assert value not in data, f"a secret leaked into {path.relative_to(run_dir)}"


def _s8_on_one_broker(tmp_path, like: str, name: str, port_base: int):
    """S8's attempts and verdicts on a one-broker stack like `like`; both stacks it starts are stopped by PID."""
    profile = load_profile(one_broker_profile(tmp_path, like, name, port_base))
    sc = Scenario.open("S8", "Permission boundary", profile, out_dir=tmp_path / "S8")
    try:
        table = s8.attempt_all(sc)
        s8.judge(sc, table)
        verdicts = sc.verdicts().set_index("check")
    finally:
        sc.stack.down()
    secured = beside(sc.profile, s8.SECURED_STACK_OFFSET, "secured")
    assert not open_stack(secured).records  # the secured stack was stopped by PID
    return sc, table, verdicts


@pytest.mark.stack
def test_kafscale_s8_cross_tenant_read_fails_with_the_claimed_client_id_as_evidence(tmp_path):
    _, table, verdicts = _s8_on_one_broker(tmp_path, "profiles/local.yaml", "perm-kafscale", KAFSCALE_PORT_BASE)

    leak = verdicts.loc["0 records of one tenant readable by the other"]
    assert leak["status"] == "FAIL" and leak["measured"] == f"{2 * s8.RECORDS} records", leak.to_dict()
    assert "claiming the other's client.id" in leak["evidence"]
    impostors = table[table["operation"] == "consume (claiming the other's client.id)"]
    assert (impostors["outcome"] == "ok").all() and (impostors["records"] == s8.RECORDS).all()
    honest = table[(table["operation"] == "consume") & (table["expected"] == "denied")]
    assert (honest["error"] == "TopicAuthorizationFailedError (29)").all()  # the ACLs hold for honest clients
    for check in ("a wrong password is refused", "Metadata does not list the other tenant's topics"):
        assert verdicts.loc[check, "status"] == "FAIL", verdicts.loc[check].to_dict()
    assert "closed without answering SaslHandshake" in verdicts.loc["a wrong password is refused", "evidence"]
    assert verdicts.loc["refusals come within the bound", "status"] == "PASS"


@pytest.mark.stack
def test_item_16_9_tansu_s8_runs_with_authentication_and_a_wrong_password_gets_in(tmp_path):
    """S8 on Tansu with `--authentication` on, as its users would turn it on: a SCRAM login is answered
    NONE but never proven (server-final 'e=unknown-user': the s3 engine stores no credentials), so
    kafka-python cannot log in and the admin's set-up fails; the same exchange with the wrong password
    is then served Metadata. Checks nobody could try are NOT TESTED, never PASS."""
    sc, table, verdicts = _s8_on_one_broker(tmp_path, "profiles/tansu.yaml", "perm-tansu", TANSU_PORT_BASE)
    assert "--authentication" in sc.measurements["access_control"]

    setup = table[table["operation"].str.startswith("set up")]
    assert setup["outcome"].tolist() == ["failed"], setup.to_dict("records")
    logins = table[table["operation"] == "authenticate"]
    assert len(logins) == 2 and (logins["error"] == "LoginNotVerified").all(), logins.to_dict("records")
    assert logins["detail"].str.contains("e=unknown-user").all()
    wrong = verdicts.loc["a wrong password is refused"]
    assert wrong["status"] == "FAIL" and "served Metadata" in wrong["evidence"], wrong.to_dict()
    assert verdicts.loc["every authorized operation inside the tenant's scope works", "status"] == "FAIL"
    assert verdicts.loc["every unauthorized operation is refused with a clean Kafka error", "status"] == "FAIL"
    for check in ("0 records of one tenant readable by the other", "Metadata does not list the other tenant's topics",
                  "refusals come within the bound"):
        assert verdicts.loc[check, "status"] == "NOT TESTED", verdicts.loc[check].to_dict()


def test_tls_material_is_private_verifies_and_names_the_ip(tmp_path):
    files = tls.issue(tmp_path / "tls")
    assert stat.S_IMODE(files.server_file.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in files.ca_file.read_bytes()
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    leaf, *rest = x509.load_pem_x509_certificates(files.server_file.read_bytes())
    assert [c.subject for c in rest] == [ca.subject]
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(files.server_file)  # the key matches the certificate


def test_generated_secrets_are_kept_once_private_and_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("K6SUITE_OUTPUTS", str(tmp_path))
    monkeypatch.delenv("K6SUITE_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("K6SUITE_S3_SECRET_KEY", raising=False)
    password = stack_secret("K6SUITE_STACK_1_TENANT_A_PASSWORD")
    access, secret = stack_credentials()  # MinIO's, generated after: both kinds stay
    assert stack_secret("K6SUITE_STACK_1_TENANT_A_PASSWORD") == password
    assert set(stored_secrets()) == {"K6SUITE_STACK_1_TENANT_A_PASSWORD", "K6SUITE_S3_ACCESS_KEY",
                                     "K6SUITE_S3_SECRET_KEY"}
    assert stat.S_IMODE((tmp_path / "stack" / "secrets.env").stat().st_mode) == 0o600
    assert redact(f"login {password} with {secret} as {access}") == "login *** with *** as ***"


def test_a_leak_is_not_judged_when_the_owner_wrote_nothing(tmp_path):
    """KafScale with kafka-python's default, idempotent producer: the tenants' own produce fails (no
    InitProducerId), so the other tenant reads 0 of their records; that 0 is no evidence of a boundary."""
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.scenario import Scenario

    def table(produced: tuple[str, str], read: int) -> pd.DataFrame:
        rows = []
        for (tenant, other), outcome in zip((s8.TENANTS, s8.TENANTS[::-1]), produced, strict=True):
            rows.append({"tenant": tenant, "client_id": tenant, "operation": "produce", "target": tenant,
                         "expected": "allowed", "outcome": outcome, "error": "" if outcome == "ok" else
                         "IncompatibleBrokerVersion", "ms": 5.0, "records": None})
            rows.append({"tenant": tenant, "client_id": other, "operation": "consume (claiming the other's client.id)",
                         "target": other, "expected": "denied", "outcome": "ok", "error": "", "ms": 5.0,
                         "records": read})
        return pd.DataFrame(rows, columns=s8.COLUMNS)

    def leak(produced: tuple[str, str], read: int = 0) -> pd.Series:
        folder = tmp_path / "-".join(produced) / str(read)
        sc = Scenario("S8", "Permission boundary", load_profile("kafka-local"), folder, "r", "smoke", {})
        s8.judge(sc, table(produced, read))
        return sc.verdicts().set_index("check").loc["0 records of one tenant readable by the other"]

    unwritten = leak(("failed", "failed"))
    assert unwritten["status"] == "NOT TESTED" and "never written" in unwritten["evidence"]
    assert leak(("ok", "ok"))["status"] == "PASS"
    # one tenant's writes failed, the other's landed and were read across the boundary: a leak seen is judged
    seen = leak(("failed", "ok"), read=50)
    assert seen["status"] == "FAIL" and "read 100 of its records" in seen["evidence"]


def test_s8_records_the_settings_its_tenants_producers_run_with():
    """S8 saves no history, so it records its producers' client settings itself, which its calibration record is
    held against (audit20 M4: 1ad1005 made them idempotent after S8's record was measured, unseen)."""
    import dataclasses

    profile = load_profile("kafka")
    settings = s8.producer_settings(profile)
    assert (settings["idempotent"], settings["acks"], settings["request_timeout_ms"]) == (True, "all", 4000)
    off = dataclasses.replace(profile, client=dataclasses.replace(profile.client, idempotence=False,
                                                                  request_timeout_ms=9000))
    assert (s8.producer_settings(off)["idempotent"], s8.producer_settings(off)["request_timeout_ms"]) == (False, 9000)
