"""A minimal etcd v3 client over etcd's JSON gateway (no gRPC dependency needed).

Used to seed KafScale's cluster snapshot and to add brokers to it with compare-and-swap.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

SNAPSHOT_KEY = "/kafscale/metadata/snapshot"


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class EtcdGateway:
    def __init__(self, url: str, timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        response = requests.post(f"{self.url}{path}", data=json.dumps(body), timeout=timeout_s or self.timeout_s)
        response.raise_for_status()
        return response.json()

    def health(self) -> str | None:
        """None when etcd reports itself healthy, else its reason (e.g. "ALARM NOSPACE")."""
        response = requests.get(f"{self.url}/health", timeout=self.timeout_s)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.ok and body.get("health") == "true":
            return None
        return f"etcd /health: {body.get('reason') or body.get('health') or f'HTTP {response.status_code}'}"

    def get(self, key: str) -> tuple[bytes | None, int]:
        """The value and its mod_revision (0 when the key is absent)."""
        kvs = self._post("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        if not kvs:
            return None, 0
        return base64.b64decode(kvs[0].get("value", "")), int(kvs[0]["mod_revision"])

    def put(self, key: str, value: str | bytes) -> None:
        self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def compare_and_swap(self, key: str, mod_revision: int, value: str | bytes) -> bool:
        """Write value only if the key is unchanged since mod_revision (0: only if absent)."""
        body = {
            "compare": [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
        }
        return bool(self._post("/v3/kv/txn", body).get("succeeded", False))

    def alarms(self) -> list[dict[str, Any]]:
        return self._post("/v3/maintenance/alarm", {"action": "GET"}).get("alarms", [])

    def clear_nospace(self) -> None:
        """What an operator does after etcd's quota filled: compact all history, defragment so the
        file shrinks below the quota, then disarm the NOSPACE alarm (writes are refused until then)."""
        revision = self._post("/v3/kv/range", {"key": _b64(SNAPSHOT_KEY)})["header"]["revision"]
        self._post("/v3/kv/compaction", {"revision": revision, "physical": True})
        self._post("/v3/maintenance/defragment", {}, timeout_s=max(self.timeout_s, 60.0))  # rewrites the file
        for alarm in self.alarms():
            if alarm.get("alarm") == "NOSPACE":
                self._post("/v3/maintenance/alarm", {"action": "DEACTIVATE", "memberID": alarm["memberID"],
                                                     "alarm": "NOSPACE"})
