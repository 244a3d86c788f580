"""What clients noticed: group rebalances, reconnections and metadata changes, counted from the
clients' own records (their group callbacks and their own metrics samples), and whether brokers
added under load served at once."""

from __future__ import annotations

from k6suite_lib.checkers import measures
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import AtLeast, AtMost, Equals, EveryOf, not_tested, verdict
from k6suite_lib.history import View


@register("rebalances")
def check_rebalances(view: View, requirement: str = "F4.3") -> list[dict]:
    """Assignments after the group was stable (every member had its first one) and the first fault
    started: rebalances the fault caused. Start-up joins are not rebalances."""
    name = "consumer-group rebalances after the first fault"
    events = view.group_events()
    assigns = events[(events["f"] == "assign") & events["group"]]
    if assigns.empty:
        return [not_tested(name, requirement, "no consumer-group member in this workload")]
    if view.first_fault_ns is None:
        return [not_tested(name, requirement, "no fault window in the history")]
    stable = int(assigns.groupby("process")["complete_ns"].min().max())
    if stable > view.first_fault_ns:
        return [not_tested(name, requirement, f"the group was still forming when the first fault started (its last "
                                              f"member joined {(stable - view.first_fault_ns) / 1e9:.1f} s after)")]
    since = view.first_fault_ns
    owned = _owned_at(events[events["group"]], since)
    written = set(measures.acked_partitions_before(view, since))
    if written - owned:
        return [not_tested(name, requirement, f"before the first fault the group owned partitions {sorted(owned)}, "
                                              f"not all of {sorted(written)}: it had not formed")]
    stop = view.phase("consumers-stop")  # members leaving at the end reassign the rest: not the fault's doing
    until = stop["t_ns"] if stop else int(assigns["complete_ns"].max())
    later = assigns[(assigns["complete_ns"] > since) & (assigns["complete_ns"] <= until)]
    return [verdict(name, requirement, len(later), Equals(0),
                    f"{len(assigns)} assignments to {assigns['process'].nunique()} members; after the fault: "
                    + (", ".join(f"{p} {parts}" for p, parts in zip(later["process"], later["partitions"],
                                                                      strict=True)) or "none"))]


def _owned_at(events, t_ns: int) -> set[int]:
    """Partitions some group member held at t_ns, from its assignments and revocations."""
    held: dict[str, set[int]] = {}
    for event in events[events["complete_ns"] <= t_ns].sort_values("complete_ns").itertuples():
        held[event.process] = set(event.partitions or []) if event.f == "assign" else set()
    return set().union(*held.values()) if held else set()


@register("reconnections")
def check_reconnections(view: View, requirement: str, restarts: int = 0) -> list[dict]:
    """Connections clients created after the first fault (or scale-out), from their own metrics: per client from
    its latest usable sample before the first fault to its latest after the last fault window ended (a client
    without both is named as not judged).

    restarts 0: none at all (scale-out must go unnoticed). restarts N (a rolling restart): no storm,
    i.e. per client at most one new connection per connection it held open before (each comes back
    once when its broker bounces; a consumer holds one to its partitions' leader and one to its group
    coordinator, possibly on the same broker) plus one per restart (leadership moving to a broker
    the client was not yet connected to).
    """
    name = "reconnections per client after the first fault" if restarts else "client reconnections after the fault"
    if view.first_fault_ns is None:
        return [not_tested(name, requirement, "no fault window in the history")]
    since, until = view.first_fault_ns, int(view.windows["end_ns"].max())
    table = measures.client_reconnections(view, since, until)
    failures = measures.sampler_failures(view)
    unsampled = measures.unsampled_clients(view, since)
    unfinished = measures.unfinished_clients(view, since, until)
    unjudged = "; ".join(filter(None, [
        f"not judged, no usable client-metrics sample before the fault: {', '.join(unsampled)}" if unsampled else "",
        f"not judged, no usable client-metrics sample after the last fault window ended: {', '.join(unfinished)}"
        if unfinished else ""]))
    if table.empty:
        return [not_tested(name, requirement, "no client-metrics sample before the fault and after the last fault "
                                              "window: reconnections unknown" + (f" ({unjudged})" if unjudged else "")
                           + (f"; the sampler failed: {failures}" if failures else ""))]
    evidence = "; ".join(filter(None, ["; ".join(f"{r.client}: {r.before} -> {r.after} ({r.open_before} open before)"
                                                 for r in table.itertuples()), failures]))
    if restarts:
        allowance = {r.client: max(1, r.open_before) + restarts for r in table.itertuples()}
        excess = {r.client: r.reconnections - allowance[r.client] for r in table.itertuples()}
        row = verdict(name, requirement, excess, EveryOf(AtMost(0), "client"),
                      f"beyond the connections held open + {restarts} restarts, per client; {evidence}")
    else:
        row = verdict(name, requirement, int(table["reconnections"].sum()), AtMost(0), evidence)
    if unjudged and row["status"] != "FAIL":  # a client left unjudged may be the one storming
        return [not_tested(name, requirement, f"{unjudged}; the others: {row['evidence']}")]
    return [{**row, "evidence": f"{row['evidence']}; {unjudged}"} if unjudged else row]


@register("metadata-unchanged")
def check_metadata_unchanged(view: View) -> list[dict]:
    """Each client's own metadata listed one broker set for the whole run."""
    name = "metadata seen by clients unchanged"
    samples = measures.client_samples(view)
    samples = samples[samples["brokers"].map(len) > 0]
    failures = measures.sampler_failures(view)
    if samples.empty:
        return [not_tested(name, "F5.3", "no client-metrics sample listed brokers"
                           + (f"; the sampler failed: {failures}" if failures else ""))]
    views = samples.groupby("process")["brokers"].agg(lambda s: sorted(set(s)))
    changed = views[views.map(len) > 1]
    return [verdict(name, "F5.3", len(changed), Equals(0, "0 clients"),
                    "; ".join(f"{p}: {v}" for p, v in (changed if len(changed) else views).head(3).items())
                    + (f"; {failures}" if failures else ""))]


@register("new-brokers-serve")
def check_new_brokers_serve(view: View) -> list[dict]:
    """Brokers added under load take connections through the endpoint at once (a probe after the
    scale-out, recorded in the history)."""
    name = "new brokers serve requests"
    probes = view.probes("connection-spread")
    if not probes:
        return [not_tested(name, "F4.5 / F5.4", "no connection-spread probe was recorded")]
    probe = probes[-1]
    if probe["type"] != "ok":
        return [not_tested(name, "F4.5 / F5.4", f"the connection-spread probe failed: {probe['error']}")]
    new = {str(b): int(probe["connections"].get(str(b), 0)) for b in probe["added"]}
    return [verdict(name, "F4.5 / F5.4", new, EveryOf(AtLeast(1), "added broker"),
                    f"{probe['total']} fresh connections through the endpoint, counted per broker: "
                    f"{probe['connections']}")]
