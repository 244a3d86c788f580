"""Keep secrets out of everything a run writes: logs, executed notebooks, reports.

Secrets only ever come from environment variables (or the embedded stack's generated
credentials file). Anything the suite copies into an archive passes through redact().
"""

from __future__ import annotations

import os
import re

from k6suite_lib.stack.state import stored_secrets

MASK = "***"
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|ACCESS_KEY|TOKEN|CREDENTIAL)", re.IGNORECASE)
_MIN_LEN = 4  # shorter values would mask ordinary words


def known_secrets() -> set[str]:
    """Values of secret-looking environment variables plus the stack's generated credentials."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k)}
    values.update(stored_secrets().values())
    return {v for v in values if len(v) >= _MIN_LEN}


def redact(text: str, secrets: set[str] | None = None) -> str:
    for value in sorted(secrets if secrets is not None else known_secrets(), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
