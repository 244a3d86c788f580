"""The final read-back judged against the end of the log: it must read every partition up to the
end offset the target reported after producers stopped, and that end must lie past every
acknowledged offset (an end below an acknowledged offset means the log lost its tail)."""

from __future__ import annotations

from k6suite_lib.checkers.measures import no_acked_position, readback_reach, unplaced_acks
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import Equals, not_tested, verdict
from k6suite_lib.history import View

REACHED = "read-back reached the end offsets"
PAST_ACKS = "end offset >= highest acknowledged offset + 1"
PASSED_ACKS = "read-back passed every acknowledged offset"


def _passed_acks(view: View) -> dict:
    """Whatever the end offsets say (or if they are unknown), the read-back must have gone past every
    acknowledged offset: only then did it look at every position a client was told about."""
    reached = readback_reach(view)
    highest = view.acked[view.acked["offset"] >= 0].groupby("partition")["offset"].max()
    short = {int(p): (reached.get(int(p), 0), int(o)) for p, o in highest.items() if reached.get(int(p), 0) <= o}
    found = ("; ".join(f"p{p}: stopped at {r} but offset {o} was acknowledged" for p, (r, o) in short.items())
             or f"reached {reached}, highest acknowledged {highest.astype(int).to_dict()}")
    return verdict(PASSED_ACKS, "F3", len(short), Equals(0, "0 partitions"), found + unplaced_acks(view))


@register("readback")
def check_readback(view: View) -> list[dict]:
    if not view.readback_ran:
        reason = "no final read-back in this history"
        return [not_tested(REACHED, "F3 / NFR2", reason), not_tested(PAST_ACKS, "F3", reason),
                not_tested(PASSED_ACKS, "F3", reason)]
    ends = view.end_offsets
    if ends is None:
        failed = view.frame[view.frame["f"] == "end-offsets"]["error"]
        reason = ("the end-offset query failed: " + failed.iloc[-1]) if len(failed) else "no end offsets recorded"
        unplaced = no_acked_position(view)
        passed = not_tested(PASSED_ACKS, "F3", unplaced) if unplaced else _passed_acks(view)
        return [not_tested(REACHED, "F3 / NFR2", reason), not_tested(PAST_ACKS, "F3", reason), passed]
    end = view.phase("readback-end") or {}
    positions = view.readback_positions or {}
    short = {p: f"at {positions.get(p, 'nothing')} of {e}" for p, e in sorted(ends.items())
             if positions.get(p, -1) < e}
    stopped = ("timed out" if end.get("timed_out") else "stalled" if end.get("stalled") else "")
    how = (f"{stopped} after {end.get('elapsed_s', '?')} s; " if stopped else "") + (
        "; ".join(f"p{p} {text}" for p, text in short.items()) if short
        else f"{len(ends)} partition(s) read to their end offsets {ends}")
    rows = [verdict(REACHED, "F3 / NFR2", len(short), Equals(0, "0 partitions short of their end"), how)]
    unplaced = no_acked_position(view)
    if unplaced:  # no acknowledged offset to be past
        return [*rows, not_tested(PAST_ACKS, "F3", unplaced), not_tested(PASSED_ACKS, "F3", unplaced)]
    highest = view.acked[view.acked["offset"] >= 0].groupby("partition")["offset"].max()
    behind = {int(p): (ends.get(int(p)), int(o)) for p, o in highest.items() if ends.get(int(p), -1) < o + 1}
    found = ("; ".join(f"p{p}: end {e} but offset {o} was acknowledged" for p, (e, o) in behind.items())
             or f"ends {ends}, highest acknowledged {highest.astype(int).to_dict()}")
    rows.append(verdict(PAST_ACKS, "F3", len(behind), Equals(0, "0 partitions"), found + unplaced_acks(view)))
    rows.append(_passed_acks(view))
    return rows
