"""What every fault offers: a role, a target, start (inject) and stop (heal)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

ROLES = ("broker", "storage", "metadata")


class Fault(ABC):
    """One fault. start() must return only once the fault is in effect; stop() heals it."""

    name: str
    role: str

    @property
    @abstractmethod
    def target(self) -> str:
        """What the fault acts on, e.g. 'broker-1' or 'storage path'."""

    def parameters(self) -> dict[str, Any]:
        """Recorded with the fault's start and end rows."""
        return {}

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...
