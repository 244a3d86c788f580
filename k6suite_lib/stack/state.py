"""On-disk state of embedded stacks: process records and generated credentials.

State lives under outputs/stack/ so `k6suite stack down` can stop a stack that another
process (or a crashed harness) started. Credentials (MinIO's, and the passwords of a secured
stack's principals) are generated once per checkout when the environment does not provide them,
kept in one 0600 file, and never printed.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
from collections.abc import Callable
from pathlib import Path

from k6suite_lib.stack.layout import outputs_root

ACCESS_KEY_ENV = "K6SUITE_S3_ACCESS_KEY"
SECRET_KEY_ENV = "K6SUITE_S3_SECRET_KEY"


def stack_root() -> Path:
    return outputs_root() / "stack"


def _secrets_file() -> Path:
    return stack_root() / "secrets.env"


def stored_secrets() -> dict[str, str]:
    path = _secrets_file()
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def stored_secret(env_name: str) -> str | None:
    return stored_secrets().get(env_name)


def stack_credentials() -> tuple[str, str]:
    """MinIO root credentials for embedded stacks: from the environment, else generated once."""
    return (stack_secret(ACCESS_KEY_ENV, lambda: f"k6suite-{pysecrets.token_hex(4)}"),
            stack_secret(SECRET_KEY_ENV, lambda: pysecrets.token_urlsafe(24)))


def stack_secret(env_name: str, generate: Callable[[], str] = lambda: pysecrets.token_urlsafe(24)) -> str:
    """A credential named by env_name: from the environment, else stored, else generated and stored.
    Stored values are what secrets.redact masks, so a generated credential is redacted everywhere."""
    value = os.environ.get(env_name) or stored_secret(env_name)
    if value:
        return value
    value = generate()
    path = _secrets_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{k}={v}\n" for k, v in {**stored_secrets(), env_name: value}.items())
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(lines)
    tmp.replace(path)  # readers never see a half-written file
    return value


def read_state(state_dir: Path) -> dict:
    path = state_dir / "state.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def write_state(state_dir: Path, state: dict) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(state_dir / "state.json")
