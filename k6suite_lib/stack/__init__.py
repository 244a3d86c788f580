"""Embedded systems under test as local processes: one module per system over shared process management.

- ``base``: the interface every embedded system offers (up/down/status/logs/heal, process faults);
- ``kafscale``: KafScale brokers behind the KafScale proxy, with etcd and MinIO;
- ``kafka``: Apache Kafka in KRaft mode, from Maven Central (the baseline that keeps its promises);
- ``tansu``: Tansu brokers on MinIO (another stateless, S3-backed system);
- ``process``, ``state``, ``layout``: supervision by PID, on-disk records, port layout;
- ``etcd``, ``toxiproxy``: the small HTTP clients the stacks use.

``open_stack(profile)`` gives the profile's stack; ``running(profile)`` starts it for a block.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from k6suite_lib.stack.base import EmbeddedStack, Security
from k6suite_lib.stack.layout import StackLayout
from k6suite_lib.stack.process import StackError

# system -> "module:class", imported on first use so a profile load does not import every backend
SYSTEMS = {
    "kafscale": "k6suite_lib.stack.kafscale:KafScaleStack",
    "kafka": "k6suite_lib.stack.kafka:KafkaStack",
    "tansu": "k6suite_lib.stack.tansu:TansuStack",
}
ON_KUBERNETES = {"kafscale": "k6suite_lib.stack.kafscale_k8s:KubernetesKafScaleStack"}


def stack_class(system: str, kubernetes: bool = False) -> type[EmbeddedStack]:
    """The stack of a system: its processes started directly, or (kubernetes) deployed by its operator."""
    if system not in SYSTEMS:
        raise StackError(f"no embedded stack for {system!r}; embedded systems: {', '.join(SYSTEMS)}")
    if kubernetes and system not in ON_KUBERNETES:
        raise StackError(f"no Kubernetes deployment of {system!r}; deployed on Kubernetes: {', '.join(ON_KUBERNETES)}")
    module, name = (ON_KUBERNETES if kubernetes else SYSTEMS)[system].split(":")
    return getattr(importlib.import_module(module), name)


def open_stack(profile, log: Callable[[str], None] = print, security: Security | None = None) -> EmbeddedStack:
    """The embedded stack that serves a profile (started or not); with security, one started with access
    control (S8's own stack; the profiles' stacks have none)."""
    if not profile.embedded or profile.stack is None:
        raise StackError(f"profile {profile.name!r} does not describe an embedded stack")
    layout = StackLayout(port_base=profile.stack.port_base, brokers=profile.stack.brokers,
                         controllers=profile.stack.controllers)
    return stack_class(profile.target_kind, profile.stack.kubernetes)(layout, log=log, security=security,
                                                                      build_sources=profile.build)


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
    binaries.install(systems=[stack.system], log=log, builds=profile.build)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
