"""Consumer groups on the real group protocol: ownership and committed offsets."""

from __future__ import annotations

from k6suite_lib.checkers import measures
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import Equals, IsTrue, not_tested, verdict
from k6suite_lib.history import View


@register("group-ownership")
def check_group_ownership(view: View, partitions: int) -> list[dict]:
    """When consumers were told to stop, every partition had exactly one owner."""
    final = measures.final_assignments(view)
    owners: dict[int, list[str]] = {}
    for member, assigned in final.items():
        for partition in assigned:
            owners.setdefault(partition, []).append(member)
    uncovered = [p for p in range(partitions) if p not in owners]
    shared = {p: m for p, m in owners.items() if len(m) > 1}
    return [verdict("every partition owned by exactly one member", "F2.4", len(uncovered) + len(shared),
                    Equals(0, "0 partitions unowned or shared"),
                    f"final assignments: {final}" + (f"; shared: {shared}" if shared else "")
                    + (f"; unowned: {uncovered}" if uncovered else ""))]


@register("committed-offsets")
def check_committed_offsets(view: View) -> list[dict]:
    """What the target returns for the group's offsets (OffsetFetch after the members left) equals
    the last commit each partition saw succeed."""
    name = "committed offsets are what the group last committed"
    expected = measures.last_commits(view)
    if not expected:
        return [not_tested(name, "F2.4", "no commit succeeded, so there is nothing to read back")]
    probes = view.probes("committed-offsets")
    if not probes or probes[-1]["type"] != "ok":
        reason = probes[-1]["error"] if probes else "no committed-offsets probe was recorded"
        return [verdict(name, "F2.4", False, IsTrue(f"equal to {expected}"), f"OffsetFetch failed: {reason}")]
    stored = {int(p): int(o) for p, o in probes[-1]["offsets"].items()}
    commits = view.frame[view.frame["f"] == "commit"]
    failures = int((commits["type"] != "ok").sum())
    return [verdict(name, "F2.4", stored, Equals(expected, f"{expected} (last successful commit per partition)"),
                    f"{len(commits) - failures} commits ok, {failures} failed (failures during a rebalance are "
                    "normal Kafka behaviour); read back with OffsetFetch after the members left")]
