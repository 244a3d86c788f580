"""Toxiproxy's HTTP API, called directly (its Python client is archived).

The embedded stack creates one proxy in front of MinIO and one in front of etcd; the storage
and metadata faults add toxics to them or disable them outright.
"""

from __future__ import annotations

from typing import Any

import requests

STORAGE_PROXY = "storage"
METADATA_PROXY = "metadata"


class ToxiproxyError(RuntimeError):
    pass


class Toxiproxy:
    def __init__(self, url: str, timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.request(method, f"{self.url}{path}", json=body, timeout=self.timeout_s)
        if not response.ok:
            raise ToxiproxyError(f"{method} {path}: HTTP {response.status_code} {response.text.strip()}")
        return response.json() if response.content else None

    def version(self) -> str:
        response = requests.get(f"{self.url}/version", timeout=self.timeout_s)
        response.raise_for_status()
        return response.text.strip()

    def proxies(self) -> dict[str, Any]:
        return self._call("GET", "/proxies")

    def ensure_proxy(self, name: str, listen: str, upstream: str) -> None:
        if name in self.proxies():
            self._call("POST", f"/proxies/{name}", {"listen": listen, "upstream": upstream, "enabled": True})
        else:
            self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream})

    def listen_port(self, name: str) -> int:
        """The port a proxy takes connections on (its clients: the brokers)."""
        return int(self._call("GET", f"/proxies/{name}")["listen"].rsplit(":", 1)[1])

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Disabling a proxy closes its connections and refuses new ones: a full outage."""
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def add_toxic(self, proxy: str, kind: str, attributes: dict[str, Any], *, name: str | None = None,
                  stream: str = "downstream", toxicity: float = 1.0) -> str:
        toxic_name = name or f"{kind}_{stream}"
        self._call("POST", f"/proxies/{proxy}/toxics", {
            "name": toxic_name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes,
        })
        return toxic_name

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/proxies/{proxy}/toxics")
