"""Which system a run actually talked to, as the system itself reports it.

The earlier suite had two profiles on one address, so a run could silently test the wrong
system. Every notebook and every run manifest records this identity: what the endpoint says in
ApiVersions and Metadata (cluster id, brokers, a fingerprint of its API versions), and for the
embedded stack the exact component versions.
"""

from __future__ import annotations

import hashlib
import json
import platform
from typing import Any

import kafka

from k6suite_lib import probes
from k6suite_lib.clients import active_version_caps
from k6suite_lib.profiles import Profile


def describe_target(profile: Profile, timeout_s: float = 5.0) -> dict[str, Any]:
    address = probes.endpoint(profile)
    identity: dict[str, Any] = {
        "profile": profile.name, "profile_source": profile.source, "kind": profile.target_kind,
        "endpoint": address, "client": f"kafka-python {kafka.__version__}", "python": platform.python_version(),
        "version_caps": active_version_caps(),
    }
    if profile.embedded:
        from k6suite_lib.stack import binaries

        identity["embedded_components"] = binaries.versions(profile.target_kind)
        identity.update(embedded_build(profile))
    versions = probes.api_versions(address, timeout_s)
    identity["reachable"] = versions.ok
    if not versions.ok:
        identity["error"] = f"ApiVersions to {address}: {versions.describe()}"
        return identity
    table = probes.api_versions_table(versions)
    ranges = [[int(r.api_key), int(r.broker_min), int(r.broker_max)] for r in table.itertuples()]
    identity["api_fingerprint"] = hashlib.sha256(json.dumps(ranges).encode()).hexdigest()[:16]
    identity["api_count"] = len(ranges)
    metadata = probes.metadata(address, version=probes.negotiated(table, "Metadata") or 1)
    if metadata.ok:
        identity["cluster_id"] = getattr(metadata.response, "cluster_id", None)
        identity["controller_id"] = getattr(metadata.response, "controller_id", None)
        identity["brokers"] = probes.metadata_brokers(metadata)["address"].tolist()
    else:
        identity["metadata_error"] = metadata.describe()
    return identity


def embedded_build(profile: Profile) -> dict[str, Any]:
    """The build an embedded stack runs (system, source, version, commit, dirty, sha256 per binary) and
    what its start-up learned from it, as recorded in the stack's state; {} when it never started."""
    from k6suite_lib.stack.layout import StackLayout
    from k6suite_lib.stack.state import read_state

    state = read_state(StackLayout(port_base=profile.stack.port_base).state_dir)
    if "build_record" not in state:
        return {}
    return {"build": state["build_record"], "learned_at_start": state.get("learned", {})}
