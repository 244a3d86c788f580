"""Checks of how records were read: produce and consume really overlapped, and each writer of a
shared producer read its own write back at once."""

from __future__ import annotations

from k6suite_lib.checkers.anomalies import ident
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import Equals, IsTrue, not_tested, verdict
from k6suite_lib.history import View


@register("overlap")
def check_overlap(view: View) -> list[dict]:
    """A live consumer read a record (a poll that returned data) before the last send was acknowledged;
    otherwise the run tested produce-then-consume, not both at once."""
    live = view.live_reads
    last_ack = int(view.acked["complete_ns"].max()) if len(view.acked) else None
    first_read = int(live["complete_ns"].min()) if len(live) else None
    overlapped = last_ack is not None and first_read is not None and first_read < last_ack
    return [verdict("produce and consume overlapped", "S3", overlapped,
                    IsTrue("a live read before the last acknowledgement"),
                    f"first live read {(first_read - last_ack) / 1e9:+.2f} s from the last acknowledgement"
                    if last_ack is not None and first_read is not None else "no live read or no acknowledgement")]


@register("own-reads")
def check_own_reads(view: View) -> list[dict]:
    """Read-your-writes: every acknowledged send was read by its own process (its reader), at any offset.
    With nothing acknowledged there is nothing to read back: not tested (0 missing would prove nothing)."""
    name = "each writer reads its own write at once"
    acked = view.acked
    if acked.empty:
        return [not_tested(name, "F2.1 / NFR2", "nothing was acknowledged, so no writer had a write to read")]
    own = set(zip(view.valid_reads["process"], view.valid_reads["code"], strict=True))
    missing = acked.loc[[(p, c) not in own for p, c in zip(acked["process"], acked["code"], strict=True)]]
    return [verdict(name, "F2.1 / NFR2", len(missing), Equals(0),
                    "; ".join(ident(missing).head(5)) or f"{len(acked)} writes read back by their writers")]
