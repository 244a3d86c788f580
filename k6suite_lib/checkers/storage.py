"""Object storage as the system of record (F6): the bucket, read directly and saved beside the
history (k6suite_lib.storage), held against what clients were told and what the read-back read.

- every acknowledged record is in storage at its acknowledged partition and offset, intact (its
  payload checksum, its batch CRC and, for KafScale, its segment's header and footer);
- storage holds no record the clients never sent, and no offset twice;
- what storage holds equals what the final read-back read, per partition, in both directions.

A listing that could not be read, or a system without an object store, is NOT TESTED with the reason.
"""

from __future__ import annotations

import pandas as pd

from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import Equals, not_tested, verdict
from k6suite_lib.history import View

ACKED_STORED = "every acknowledged record is in storage at its position, intact"
NOTHING_ELSE = "storage holds no record never sent, no offset twice, no undecodable object"
EQUALS_READBACK = "storage equals the final read-back, both directions"
SAMPLE = 5


def _listing(view: View):
    from k6suite_lib.storage import StorageListing

    return StorageListing.load(view.sidecar_dir / view.meta["storage"])


def _keys(frame: pd.DataFrame) -> pd.Series:
    return "p" + frame["partition"].astype(str) + "@" + frame["offset"].astype(str)


@register("storage")
def check_storage(view: View, unavailable: str = "") -> list[dict]:
    """unavailable: why no listing can exist (e.g. the system has no object store)."""
    names = ((ACKED_STORED, "F6.1 / F3"), (NOTHING_ELSE, "F6.1"), (EQUALS_READBACK, "F6.1 / F6.2"))
    reason = unavailable or view.meta.get("storage_error", "")
    if not reason and "storage" not in view.meta:
        reason = "no storage listing was saved beside this history"
    if not reason and view.sidecar_dir is None:
        reason = "the history was loaded without the folder its storage listing lives in"
    if reason:
        return [not_tested(name, requirement, reason) for name, requirement in names]
    listing = view.memo("storage", lambda: _listing(view))
    stored = listing.records
    intact = stored[~stored["corrupt"] & stored["batch_crc_ok"] & stored["segment_ok"]]
    slot = ["partition", "offset"]
    identity = ["producer", "seq"]
    acked = view.acked[view.acked["offset"] >= 0]

    held = acked[slot + identity].merge(intact[slot + identity].drop_duplicates(), on=slot + identity, how="left",
                                        indicator=True)
    missing = held[held["_merge"] == "left_only"]
    damaged = stored[~stored.index.isin(intact.index)]
    rows = [verdict(ACKED_STORED, "F6.1 / F3", len(missing), Equals(0),
                    (f"{len(missing)} of {len(acked)} acknowledged positions not held intact: "
                     + ", ".join(_keys(missing).head(SAMPLE))
                     + (f"; {len(damaged)} damaged records in storage" if len(damaged) else ""))
                    if len(missing) else f"{len(acked)} acknowledged records found at their positions in "
                                         f"{listing.objects['fetched'].sum()} objects")]

    sent = view.sends[identity].drop_duplicates()
    known = stored.merge(sent, on=identity, how="left", indicator=True)["_merge"] == "both"
    strangers = stored[~known.to_numpy() | (stored["run_id"] != view.meta.get("run_id", stored["run_id"]))]
    twice = stored[stored.duplicated(slot, keep=False)]
    rows.append(verdict(NOTHING_ELSE, "F6.1", len(strangers) + twice[slot].drop_duplicates().shape[0]
                        + len(listing.errors), Equals(0),
                        f"{len(strangers)} records never sent ({', '.join(_keys(strangers).head(SAMPLE)) or 'none'}); "
                        f"{twice[slot].drop_duplicates().shape[0]} offsets stored twice "
                        f"({', '.join(_keys(twice.drop_duplicates(slot)).head(SAMPLE)) or 'none'}); "
                        f"{len(listing.errors)} objects undecodable"))

    if not view.readback_ran:
        rows.append(not_tested(EQUALS_READBACK, "F6.1 / F6.2", "no final read-back in this history"))
        return rows
    back = view.readback_reads[slot + identity].drop_duplicates()
    compared = intact[slot + identity].drop_duplicates().merge(back, on=slot + identity, how="outer", indicator=True)
    only_stored = compared[compared["_merge"] == "left_only"]
    only_read = compared[compared["_merge"] == "right_only"]
    rows.append(verdict(EQUALS_READBACK, "F6.1 / F6.2", len(only_stored) + len(only_read), Equals(0),
                        f"in storage, not read back: {len(only_stored)} ({', '.join(_keys(only_stored).head(SAMPLE))}"
                        f"); read back, not in storage: {len(only_read)} ({', '.join(_keys(only_read).head(SAMPLE))})"))
    return rows
