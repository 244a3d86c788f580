"""Object storage as the system of record (F6): the bucket, read directly and saved beside the
history (k6suite_lib.storage), held against what clients were told and what the read-back read.

- every acknowledged record is in storage at its acknowledged partition and offset, intact (its
  payload checksum, its batch CRC and, for KafScale, its segment's header and footer);
- storage holds no record the clients never sent, and no offset twice;
- what storage holds equals what the final read-back read, per partition, in both directions.

A listing that could not be read, or a system without an object store, is NOT TESTED with the reason.
A data object listed but not read (the read's time budget ran out, or its GET failed) decides nothing
about the offsets it may hold, from the base offset its key names up to the next data object's on its
partition: acknowledged and read-back records there are skipped, and a check that finds nothing wrong
in the rest is NOT TESTED, naming the objects.

Every acknowledged record the final read-back (with its probes) did not return is then put in one
class, because "acknowledged data was destroyed" and "acknowledged data is durable but the system
will not serve it" are different promises broken:

- lost (F3 / F6, durability): storage does not hold it intact at its acknowledged position;
- unreadable (F2 / F3, readability): storage holds it intact there, and the system never served it
  to the read-back;
- not reached: the read-back stopped before its offset for a reason of the harness (its own
  timeout, or it broke off), and no probe asked for it: its readability is NOT TESTED;
- missing (F3): without a readable store (e.g. Apache Kafka keeps data on the brokers' disks), or where
  the storage object that would hold it was not read, lost cannot be told from unreadable; the row
  says so.

A class that finds none is NOT TESTED, not PASS, while records it could hold are undecided (not
reached, or their storage not read).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from k6suite_lib.checkers.anomalies import find_anomalies
from k6suite_lib.checkers.measures import no_acked_position, readback_reach, unplaced_acks
from k6suite_lib.checkers.registry import register
from k6suite_lib.checkers.verdicts import Equals, not_tested, verdict
from k6suite_lib.history import View

ACKED_STORED = "every acknowledged record is in storage at its position, intact"
NOTHING_ELSE = "storage holds no record never sent, no offset twice, no undecodable object"
EQUALS_READBACK = "storage equals the final read-back, both directions"
LOST = "acknowledged records lost (not read back, not in storage)"
UNREADABLE = "acknowledged records unreadable (intact in storage, never served)"
MISSING = "acknowledged records missing (not read back; no readable store tells lost from unreadable)"
NOT_REACHED = "acknowledged records the read-back did not reach"
CLASS_REQUIREMENT = {LOST: "F3 / F6", UNREADABLE: "F2 / F3", MISSING: "F3", NOT_REACHED: "F2 / F3"}
SAMPLE = 5


def _listing(view: View):
    from k6suite_lib.storage import StorageListing

    return StorageListing.load(view.sidecar_dir / view.meta["storage"])


class Unread:
    """The listing's data objects whose bytes were not read, and which offsets they may hold: from the
    base offset the key names up to the next data object's on the partition (none: every offset above).
    The listing is of the history's topic (read_bucket(topic=...)), so partitions are matched alone."""

    def __init__(self, objects: pd.DataFrame, system: str) -> None:
        from k6suite_lib.storage import DATA_KIND

        self.data = objects[objects["kind"] == DATA_KIND[system]].sort_values(["partition", "base_offset"])
        self.objects = self.data[~self.data["fetched"]]
        self.why = f"{len(self.objects)} storage objects not read: " + ", ".join(
            f"{r.object_key} ({r.error})" for r in self.objects.head(SAMPLE).itertuples())

    def __bool__(self) -> bool:
        return not self.objects.empty

    def holds(self, frame: pd.DataFrame) -> np.ndarray:
        """Per row of frame (partition, offset): it lies in an object not read."""
        partition, offset = frame["partition"].to_numpy(), frame["offset"].to_numpy()
        inside = np.zeros(len(frame), dtype=bool)
        for p, objects in self.data[self.data["partition"].isin(self.objects["partition"])].groupby("partition"):
            at = np.searchsorted(objects["base_offset"].to_numpy(), offset[partition == p], side="right") - 1
            inside[partition == p] = (at >= 0) & ~objects["fetched"].to_numpy()[np.maximum(at, 0)]
        return inside


def _keys(frame: pd.DataFrame) -> pd.Series:
    return "p" + frame["partition"].astype(str) + "@" + frame["offset"].astype(str)


def _intact(stored: pd.DataFrame) -> pd.DataFrame:
    return stored[~stored["corrupt"] & stored["batch_crc_ok"] & stored["segment_ok"]]


def readback_stop(view: View) -> str:
    """Why the read-back stopped, when the reason is the harness's own (its timeout, or it broke off):
    offsets past it were not asked for. Empty when the system is to answer for where it stopped."""
    end = view.phase("readback-end")
    if end is None:
        return "the history does not say where the read-back stopped"
    if end.get("error"):
        return f"the read-back broke off: {end['error']}"
    if end.get("timed_out"):
        return f"the read-back timed out after {end.get('elapsed_s', '?')} s"
    return ""


def _asked(view: View, unread: pd.DataFrame) -> np.ndarray:
    """Per unread record: the read-back asked the system for its offset (its sequential pass got past
    it, or a probe's range started at or covered it)."""
    partition, offset = unread["partition"].to_numpy(), unread["offset"].to_numpy()
    reach = readback_reach(view)
    asked = offset < pd.Series(partition).map(reach).fillna(0).to_numpy()
    for probe in view.readback_probes:
        if probe.get("skipped") or "start" not in probe:
            continue
        start = int(probe["start"])
        asked |= (partition == int(probe["partition"])) & (offset >= start) & (
            offset < max(int(probe.get("reached", start)), start + 1))
    return asked


def unread_classes(view: View, intact: pd.DataFrame | None, unread_objects: Unread | None = None) -> pd.DataFrame:
    """Acknowledged records the read-back did not return, with their class: lost, unreadable, not
    reached, or (intact None: no readable store; or not held intact where an object was not read)
    missing. undecided: lost cannot be told from unreadable, for want of storage."""
    unread = find_anomalies(view)[0]["readback-missing"]
    harness = readback_stop(view)
    not_reached = ~_asked(view, unread) if harness else np.zeros(len(unread), dtype=bool)
    if intact is None:
        stored, undecided = np.zeros(len(unread), dtype=bool), np.ones(len(unread), dtype=bool)
    else:
        keys = ["partition", "offset", "producer", "seq"]
        held = unread[keys].merge(intact[keys].drop_duplicates().assign(held=True), on=keys, how="left")
        stored = held["held"].fillna(False).to_numpy(dtype=bool)
        undecided = ~stored & (unread_objects.holds(unread) if unread_objects else False)
    cls = np.where(stored | undecided, np.where(not_reached, NOT_REACHED, np.where(stored, UNREADABLE, MISSING)),
                   LOST)
    return unread.assign(cls=cls, undecided=undecided)


def class_verdicts(view: View, intact: pd.DataFrame | None, no_store: str = "",
                   unread_objects: Unread | None = None) -> list[dict]:
    """One row per class (missing only without a store or with objects not read, not reached only when
    some were): each names the promise it breaks. no_store: why there is no store; else unread_objects
    says which storage objects were not read."""
    names = (LOST, UNREADABLE, MISSING) if intact is None or unread_objects else (LOST, UNREADABLE)
    if not view.readback_ran:
        return [not_tested(name, CLASS_REQUIREMENT[name], "no final read-back in this history") for name in names]
    if view.acked.empty:
        return [not_tested(name, CLASS_REQUIREMENT[name], no_acked_position(view)) for name in names]
    classes = unread_classes(view, intact, unread_objects)
    why = no_store if intact is None else unread_objects.why if unread_objects else ""
    undecided = int(classes["undecided"].sum())
    live = view.live_reads.loc[~view.live_reads["corrupt"], ["producer", "seq"]].drop_duplicates()
    harness = readback_stop(view)
    counts = classes["cls"].value_counts()
    rows = []
    for name in names:
        rows_of = classes[classes["cls"] == name]
        count = len(rows_of)
        sample = ", ".join(f"{r.ident} p{r.partition}@{r.offset}" for r in rows_of.head(SAMPLE).itertuples())
        seen_live = len(rows_of[["producer", "seq"]].merge(live, on=["producer", "seq"]))
        detail = f"{count} of {len(view.acked)} acknowledged" + (f": {sample}" if count else "") + (
            f"; {seen_live} of them read once by a live consumer" if seen_live else "")
        if name == UNREADABLE and count:
            slots = intact[["partition", "offset", "producer", "seq"]].drop_duplicates()
            shared = rows_of[["partition", "offset", "producer", "seq"]].merge(slots, on=["partition", "offset"],
                                                                               suffixes=("", "_other"))
            shared = shared[(shared["producer"] != shared["producer_other"]) | (shared["seq"] != shared["seq_other"])]
            crowded = len(shared[["partition", "offset"]].drop_duplicates())
            detail += f"; {crowded} of them share their offset in storage with another record" if crowded else ""
        if name == MISSING:
            detail += f"; {why}: lost cannot be told from unreadable here"
        elif count == 0 and undecided:
            rows.append(not_tested(name, CLASS_REQUIREMENT[name],
                                   f"{undecided} acknowledged records were not read back, and {why}: "
                                   "lost cannot be told from unreadable"))
            continue
        elif intact is None:
            detail = "every acknowledged record was read back"
        elif name == LOST and undecided:
            detail += f"; {undecided} more not read back whose storage object was not read ({why})"
        # a class that found none says nothing while records it could hold were not reached: those whose
        # storage is undecided could be missing, those held intact unreadable (lost is decided by storage)
        unasked = classes.loc[classes["cls"] == NOT_REACHED, "undecided"]
        open_ = {MISSING: int(unasked.sum()), UNREADABLE: int((~unasked).sum())}.get(name, 0)
        if count == 0 and open_:
            rows.append(not_tested(name, CLASS_REQUIREMENT[name], f"none found, but {open_} "
                                   f"acknowledged records were not reached: {harness}"))
            continue
        rows.append(verdict(name, CLASS_REQUIREMENT[name], count, Equals(0), detail))
    if counts.get(NOT_REACHED, 0):
        rows.append(not_tested(NOT_REACHED, CLASS_REQUIREMENT[NOT_REACHED],
                               f"{counts[NOT_REACHED]} acknowledged records lie past where the read-back stopped "
                               f"and no probe asked for them ({harness}): their readability was not tested"))
    return rows


@register("storage")
def check_storage(view: View, unavailable: str = "") -> list[dict]:
    """unavailable: why no listing can exist (e.g. the system has no object store). Then the storage
    rows judge F6 alone (object storage as the system of record), so a system that never promised F6
    shows them NOT PROMISED; its durability (F3) is judged by the read-back, the anomalies and the
    classes. Ends with the classes of acknowledged records the read-back did not return."""
    names = ((ACKED_STORED, "F6.1 / F3"), (NOTHING_ELSE, "F6.1"), (EQUALS_READBACK, "F6.1 / F6.2"))
    if unavailable:
        return [*(not_tested(name, "F6", unavailable) for name, _ in names), *class_verdicts(view, None, unavailable)]
    reason = view.meta.get("storage_error", "")
    if not reason and "storage" not in view.meta:
        reason = "no storage listing was saved beside this history"
    if not reason and view.sidecar_dir is None:
        reason = "the history was loaded without the folder its storage listing lives in"
    if reason:
        return [*(not_tested(name, requirement, reason) for name, requirement in names),
                *class_verdicts(view, None, reason)]
    listing = view.memo("storage", lambda: _listing(view))
    stored = listing.records
    intact = _intact(stored)
    unread = Unread(listing.objects, listing.meta["system"])
    slot = ["partition", "offset"]
    identity = ["producer", "seq"]
    acked = view.acked[view.acked["offset"] >= 0]

    held = acked[slot + identity].merge(intact[slot + identity].drop_duplicates(), on=slot + identity, how="left",
                                        indicator=True)
    absent = held[held["_merge"] == "left_only"]
    unchecked = unread.holds(absent)
    missing = absent[~unchecked]
    damaged = stored[~stored.index.isin(intact.index)]
    found = ((f"{len(missing)} of {len(acked)} acknowledged positions not held intact: "
              + ", ".join(_keys(missing).head(SAMPLE))
              + (f"; {len(damaged)} damaged records in storage" if len(damaged) else ""))
             if len(missing) else f"{len(acked) - unchecked.sum()} acknowledged records found at their "
                                  f"positions in {listing.objects['fetched'].sum()} objects")
    row = verdict(ACKED_STORED, "F6.1 / F3", len(missing), Equals(0), found + unplaced_acks(view))
    rows = [not_tested(ACKED_STORED, "F6.1 / F3", no_acked_position(view)) if acked.empty
            else _short_of(row, unread, f"{unchecked.sum()} acknowledged records in them were not checked")
            if unchecked.any() else row]

    sent = view.sends[identity].drop_duplicates()
    known = stored.merge(sent, on=identity, how="left", indicator=True)["_merge"] == "both"
    strangers = stored[~known.to_numpy() | (stored["run_id"] != view.meta.get("run_id", stored["run_id"]))]
    twice = stored[stored.duplicated(slot, keep=False)]
    not_read = set(unread.objects["object_key"])
    undecodable = [error for error in listing.errors if error.split(": ", 1)[0] not in not_read]
    rows.append(_short_of(verdict(
        NOTHING_ELSE, "F6.1", len(strangers) + twice[slot].drop_duplicates().shape[0] + len(undecodable), Equals(0),
        f"{len(strangers)} records never sent ({', '.join(_keys(strangers).head(SAMPLE)) or 'none'}); "
        f"{twice[slot].drop_duplicates().shape[0]} offsets stored twice "
        f"({', '.join(_keys(twice.drop_duplicates(slot)).head(SAMPLE)) or 'none'}); "
        f"{len(undecodable)} objects undecodable"), unread, "what they hold is unknown"))

    if not view.readback_ran:
        rows.append(not_tested(EQUALS_READBACK, "F6.1 / F6.2", "no final read-back in this history"))
        return [*rows, *class_verdicts(view, intact, unread_objects=unread)]
    back = view.readback_reads[slot + identity].drop_duplicates()
    compared = intact[slot + identity].drop_duplicates().merge(back, on=slot + identity, how="outer", indicator=True)
    only_stored = compared[compared["_merge"] == "left_only"]
    only_read = compared[compared["_merge"] == "right_only"]
    uncompared = unread.holds(only_read)
    only_read = only_read[~uncompared]
    rows.append(_short_of(verdict(
        EQUALS_READBACK, "F6.1 / F6.2", len(only_stored) + len(only_read), Equals(0),
        f"in storage, not read back: {len(only_stored)} ({', '.join(_keys(only_stored).head(SAMPLE))}"
        f"); read back, not in storage: {len(only_read)} ({', '.join(_keys(only_read).head(SAMPLE))})"),
        unread, f"{uncompared.sum()} records read back at offsets they may hold were not compared"))
    return [*rows, *class_verdicts(view, intact, unread_objects=unread)]


def _short_of(row: dict, unread: Unread, skipped: str) -> dict:
    """A storage check whose measurement skipped the objects not read: one that found nothing wrong in
    the rest is NOT TESTED, one that did still fails; both name the objects and what was skipped."""
    if not unread:
        return row
    if row["status"] == "PASS":
        return not_tested(row["check"], row["requirement"], f"{unread.why}: {skipped}; in the rest: {row['evidence']}")
    return {**row, "evidence": f"{row['evidence']}; {unread.why}: {skipped}"}
