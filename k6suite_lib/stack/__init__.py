"""Embedded systems under test as local processes: one module per system over shared process management.

- ``base``: the interface every embedded system offers (up/down/status/logs/heal, process faults);
- ``kafscale``: KafScale brokers behind the KafScale proxy, with etcd and MinIO;
- ``process``, ``state``, ``layout``: supervision by PID, on-disk records, port layout;
- ``etcd``, ``toxiproxy``: the small HTTP clients the stacks use.

``open_stack(profile)`` gives the profile's stack; ``running(profile)`` starts it for a block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from k6suite_lib.stack.base import EmbeddedStack
from k6suite_lib.stack.layout import StackLayout
from k6suite_lib.stack.process import StackError


def stack_class(system: str) -> type[EmbeddedStack]:
    from k6suite_lib.stack.kafscale import KafScaleStack

    systems: dict[str, type[EmbeddedStack]] = {KafScaleStack.system: KafScaleStack}
    if system not in systems:
        raise StackError(f"no embedded stack for {system!r}; embedded systems: {', '.join(systems)}")
    return systems[system]


def open_stack(profile, log: Callable[[str], None] = print) -> EmbeddedStack:
    """The embedded stack that serves a profile (started or not)."""
    if not profile.embedded or profile.stack is None:
        raise StackError(f"profile {profile.name!r} does not describe an embedded stack")
    layout = StackLayout(port_base=profile.stack.port_base, brokers=profile.stack.brokers)
    return stack_class(profile.target_kind)(layout, log=log)


@contextmanager
def running(profile, log: Callable[[str], None] = print) -> Iterator[EmbeddedStack | None]:
    """The profile's embedded stack, started unless it already runs and stopped afterwards only if
    started here. Yields None for profiles that describe an external system."""
    if not profile.embedded:
        yield None
        return
    from k6suite_lib.stack import binaries

    stack = open_stack(profile, log=log)
    if stack.is_up():
        yield stack
        return
    binaries.install(systems=[stack.system], log=lambda _msg: None)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
