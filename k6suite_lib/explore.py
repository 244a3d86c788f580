"""Exploring a run that already happened: re-judge its histories, then look at each anomaly in context.

A verdict row says how many records were lost; debugging needs the operations around one of them.
notebooks/explore.ipynb calls these functions, one per cell: which histories (a run under the outputs
root, one system of a matrix run, or one file), the verdict table re-checked with the composition
saved in each history (what ``k6suite check`` prints), and per anomaly the operations either side of
it on its partition, the fault window active then, the broker the client knew, and a zoomed timeline.

The broker is derived only from what the history records: a client's latest ``client-metrics`` sample
lists the brokers of its metadata. When that is one broker (KafScale's proxy: one endpoint), the
client talked to it; when it lists several, or the client was never sampled (the read-back), the
history does not say which broker served the request, and the table says so instead of guessing.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from k6suite_lib import plots
from k6suite_lib.checkers import ANOMALIES, recheck
from k6suite_lib.checkers.anomalies import REQUIREMENT, anomaly_count, find_anomalies, ident
from k6suite_lib.history import View
from k6suite_lib.stack.layout import outputs_root

RUN_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{4}$")  # k6suite_lib.workload.new_run_id()
SCENARIO_FOLDER = re.compile(r"^S\d+[a-z]?-")
GROUPED = {"duplicate": ["producer", "seq"], "inconsistent-offsets": ["topic", "partition", "offset"]}
ROW_KEY = ["process", "op_id", "partition", "offset", "complete_ns"]  # one row of an operation
SLOT_KEY = ["topic", "partition", "offset", "producer", "seq"]  # an identity at a slot, whoever wrote or read it
NO_ANOMALIES = "no anomalies"


class ExploreError(ValueError):
    """The parameters name no history: the message says where it looked."""


def newest_run(root: Path | None = None) -> str:
    """The newest run id under the outputs root: run ids start with their UTC start time."""
    root = root or outputs_root()
    runs = sorted(d.name for d in root.iterdir() if d.is_dir() and RUN_ID.match(d.name)) if root.is_dir() else []
    if not runs:
        raise ExploreError(f"no run under {root}: name a run_id or a history file")
    return runs[-1]


def history_paths(run_id: str = "", history: str = "", scenario: str = "", variant: str = "", system: str = "",
                  root: Path | None = None) -> list[Path]:
    """The history files to explore: the one named by history, else those of a run (the newest when
    run_id is ""), of one scenario ("" every one) and variant ("" every one; "kill" includes repeats
    kill#1..), in every system folder of a matrix run unless system names one."""
    if history:
        if not Path(history).is_file():
            raise ExploreError(f"{history}: no such history file")
        return [Path(history)]
    root = root or outputs_root()
    run_dir = root / (run_id or newest_run(root))
    if not run_dir.is_dir():
        raise ExploreError(f"no run {run_id} under {root}")
    bases = [run_dir, *sorted(d for d in run_dir.iterdir() if d.is_dir())]
    if system:
        if not (run_dir / system).is_dir():
            systems = sorted(d.name for d in run_dir.iterdir() if d.is_dir() and _scenario_folders(d, ""))
            raise ExploreError(f"{run_dir} has no system {system!r}; it has: {', '.join(systems) or 'none'}")
        bases = [run_dir / system]
    folders = [folder for base in bases for folder in _scenario_folders(base, scenario)]
    names = [f"history-{variant or '*'}.parquet", f"history-{variant or '*'}.jsonl"]
    if variant:
        names += [f"history-{variant}#*.parquet", f"history-{variant}#*.jsonl"]
    paths = sorted({path for folder in folders for name in names for path in folder.glob(name)})
    if not paths:
        what = " ".join(filter(None, [scenario or "any scenario", variant and f"variant {variant}"]))
        raise ExploreError(f"no history of {what} in {run_dir}" + (f"/{system}" if system else ""))
    return paths


def _scenario_folders(base: Path, scenario: str) -> list[Path]:
    return sorted(d for d in base.iterdir() if d.is_dir() and SCENARIO_FOLDER.match(d.name)
                  and (not scenario or d.name == scenario or d.name.startswith(f"{scenario}-")))


@dataclass
class Explored:
    """One history, re-judged: every table and figure of the notebook reads these."""

    label: str
    path: Path
    view: View
    verdicts: pd.DataFrame

    @property
    def found(self) -> dict[str, pd.DataFrame]:
        """Anomaly class -> offending rows; the same memo the anomalies checker filled while judging."""
        return find_anomalies(self.view)[0]

    def status(self, name: str) -> str:
        """The verdict of one check (e.g. an anomaly class): FAIL, ALLOWED, ..., or not judged."""
        rows = self.verdicts[self.verdicts["check"] == name]
        return str(rows["status"].iloc[0]) if len(rows) else "not judged"

    @functools.cached_property
    def start_ns(self) -> int:
        return int(self.view.frame["invoke_ns"].min()) if len(self.view.frame) else 0

    @functools.cached_property
    def samples(self) -> pd.DataFrame:
        """The clients' own samples (client-metrics rows): process, complete_ns, parsed detail."""
        rows = self.view.frame[self.view.frame["f"] == "client-metrics"]
        return pd.DataFrame({"process": rows["process"], "complete_ns": rows["complete_ns"],
                             "detail": [json.loads(d) if d else {} for d in rows["detail"]]})

    @functools.cached_property
    def marks(self) -> dict[tuple, set[str]]:
        """Row key -> the anomaly classes that name it, to mark neighbours that are anomalies too.
        Grouped classes name slots and identities, so every operation there carries them."""
        marks: dict[tuple, set[str]] = {}
        for name, rows in self.found.items():
            for key in _keys(rows, SLOT_KEY if name in GROUPED else ROW_KEY):
                marks.setdefault(key, set()).add(name)
        return marks


def _keys(rows: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Row keys tagged with their kind, so a row key never equals a slot key."""
    return [(len(columns), *key) for key in zip(*(rows[c] for c in columns), strict=True)]


def open_histories(run_id: str = "", history: str = "", scenario: str = "", variant: str = "", system: str = "",
                   root: Path | None = None) -> list[Explored]:
    """Load and re-judge every history the parameters name, with the composition saved in each."""
    explored = []
    for path in history_paths(run_id, history, scenario, variant, system, root):
        view, verdicts = recheck(path)
        variant_name = view.meta.get("variant") or path.stem.removeprefix("history-")
        where = (f"{path.parent.parent.name}/{path.parent.name}" if SCENARIO_FOLDER.match(path.parent.name)
                 else view.meta.get("scenario") or path.parent.name)  # in a run archive, or a file elsewhere
        explored.append(Explored(f"{where}: {variant_name}", path, view, verdicts))
    return explored


def histories_table(runs: list[Explored]) -> pd.DataFrame:
    """What was loaded: per history its run, profile, recording client, size, faults, anomalies and failed checks."""
    rows = []
    for run in runs:
        windows = run.view.windows
        rows.append({
            "history": run.label, "run": run.view.meta.get("run_id", ""), "profile": run.view.meta.get("profile", ""),
            "client": run.view.meta.get("client", "kafka-python"), "operations": len(run.view.frame),
            "faults": "; ".join(f"{_fault_label(w)} {(w.end_ns - w.start_ns) / 1e9:.1f} s"
                                for w in windows.itertuples()) or "none",
            "anomalies": sum(anomaly_count(name, rows) for name, rows in run.found.items()),
            "failed checks": int((run.verdicts["status"] == "FAIL").sum()), "file": str(run.path)})
    return pd.DataFrame(rows).set_index("history")


def verdict_table(runs: list[Explored]) -> pd.DataFrame:
    """The re-checked verdicts of every history, as ``k6suite check`` prints them, one table."""
    tables = [run.verdicts.assign(history=run.label) for run in runs]
    table = pd.concat(tables, ignore_index=True)
    return table[["history", *[c for c in table.columns if c != "history"]]]


@dataclass
class Anomaly:
    """One instance of an anomaly class: one offending row, or for a duplicate every slot of its
    identity, for an inconsistent offset every identity at its slot."""

    run: Explored
    name: str
    rows: pd.DataFrame
    number: int = 0


def _instances(name: str, rows: pd.DataFrame, quota: int) -> list[pd.DataFrame]:
    """quota instances spread evenly over the class, first and last included: neighbours of one
    anomaly are in its context table already, so showing them again would teach nothing."""
    groups = (list(rows.groupby(GROUPED[name], sort=False).indices.values()) if name in GROUPED
              else [[i] for i in range(len(rows))])
    if not groups or quota < 1:
        return []
    picks = pd.unique(np.linspace(0, len(groups) - 1, min(quota, len(groups))).round().astype(int))
    return [rows.iloc[groups[i]] for i in picks]


def _class_order(run: Explored) -> list[str]:
    """Failing classes first (the ones a reader came for), then allowed ones, each in checker order."""
    present = [name for name in ANOMALIES if len(run.found[name])]
    return sorted(present, key=lambda name: run.status(name) != "FAIL")


def select_anomalies(runs: list[Explored], max_anomalies: int) -> list[Anomaly]:
    """At most max_anomalies, shared out in turn among every class of every history (so one class
    with thousands of rows cannot hide the others), ordered by history, class and the checker's order."""
    classes = [(run, name) for run in runs for name in _class_order(run)]
    available = [anomaly_count(name, run.found[name]) for run, name in classes]
    quota = [0] * len(classes)
    for _ in range(max(0, max_anomalies)):
        open_classes = [i for i, n in enumerate(available) if quota[i] < n]
        if not open_classes or sum(quota) >= max_anomalies:
            break
        for i in open_classes[:max_anomalies - sum(quota)]:
            quota[i] += 1
    chosen = [Anomaly(run, name, rows) for (run, name), k in zip(classes, quota, strict=True)
              for rows in _instances(name, run.found[name], k)]
    for number, anomaly in enumerate(chosen, 1):
        anomaly.number = number
    return chosen


def anomaly_summary(runs: list[Explored], max_anomalies: int) -> pd.DataFrame:
    """Per history and anomaly class: how many, the verdict, how many are shown below; a history
    without anomalies gets one row that says so."""
    shown = Counter((a.run.label, a.name) for a in select_anomalies(runs, max_anomalies))
    rows = []
    for run in runs:
        names = [name for name in ANOMALIES if len(run.found[name])]
        rows.extend({"history": run.label, "anomaly": name, "requirement": REQUIREMENT[name],
                     "count": anomaly_count(name, run.found[name]), "status": run.status(name),
                     "shown": shown[run.label, name]} for name in names)
        if not names:
            rows.append({"history": run.label, "anomaly": NO_ANOMALIES, "requirement": "", "count": 0,
                         "status": "", "shown": 0})
    return pd.DataFrame(rows)


def partition_ops(frame: pd.DataFrame, topic: str, partition: int) -> pd.DataFrame:
    """Sends and reads of one partition in history order (completion time): the rows a context shows."""
    return frame[frame["f"].isin(["send", "poll"]) & (frame["topic"] == topic) & (frame["partition"] == partition)]


def anchor(ops: pd.DataFrame, anomaly: Anomaly) -> int:
    """Position in ops of the operation where the anomaly shows: the offending row itself, or for a
    class that names only slots and identities, the first operation at its first slot."""
    first = anomaly.rows.iloc[0]
    columns = ["offset", "producer", "seq"] if anomaly.name in GROUPED else ROW_KEY
    match = np.ones(len(ops), dtype=bool)
    for column in columns:
        match &= (ops[column] == first[column]).to_numpy(dtype=bool)
    return int(np.flatnonzero(match)[0])


def context(anomaly: Anomaly, window: int = 10) -> pd.DataFrame:
    """The window rows before and after the anomaly on its partition (a poll of n records is n rows),
    indexed by history row, with the anomaly classes of each row, the fault active while it ran and
    the broker its client knew."""
    run, first = anomaly.run, anomaly.rows.iloc[0]
    ops = partition_ops(run.view.frame, first["topic"], int(first["partition"]))
    at = anchor(ops, anomaly)
    near = ops.iloc[max(0, at - window): at + window + 1]
    samples = [client_sample(run, p, c)[0] for p, c in zip(near["process"], near["complete_ns"], strict=True)]
    marks = [", ".join(sorted(run.marks.get(row, set()) | run.marks.get(slot, set())))
             for row, slot in zip(_keys(near, ROW_KEY), _keys(near, SLOT_KEY), strict=True)]
    table = pd.DataFrame({
        "at": np.where(near.index == ops.index[at], "▶", ""),
        "t_s": ((near["complete_ns"] - run.start_ns) / 1e9).round(3),
        "process": near["process"], "f": near["f"], "type": near["type"], "offset": near["offset"],
        "record": ident(near).where(near["seq"] >= 0, ""), "session": near["session"], "anomalies": marks,
        "fault": [fault_at(run.view.windows, i, c) for i, c in zip(near["invoke_ns"], near["complete_ns"],
                                                                   strict=True)],
        "broker": [broker(sample) for sample in samples], "connections": [connections(s) for s in samples],
        "error": near["error"].str.slice(0, 100)}, index=near.index.rename("row"))
    return table


def _fault_label(window) -> str:
    label = f"{window.fault} ({window.target})" if window.target else str(window.fault)
    return label if window.applied else f"{label}, not applied"


def fault_at(windows: pd.DataFrame, invoke_ns: int, complete_ns: int) -> str:
    """The fault windows an operation overlapped, "" for none."""
    active = windows[(windows["start_ns"] <= complete_ns) & (windows["end_ns"] >= invoke_ns)]
    return "; ".join(_fault_label(w) for w in active.itertuples())


def fault_relation(windows: pd.DataFrame, t_ns: int) -> str:
    """Where a moment lies among the faults: during one, how long after the last, or before any."""
    if windows.empty:
        return "no fault in this history"
    active = windows[(windows["start_ns"] <= t_ns) & (windows["end_ns"] >= t_ns)]
    if len(active):
        w = next(active.itertuples())
        return f"during {_fault_label(w)}, {(t_ns - w.start_ns) / 1e9:.2f} s after it started"
    ended = windows[windows["end_ns"] < t_ns]
    if len(ended):
        w = next(ended.sort_values("end_ns").tail(1).itertuples())
        return f"{(t_ns - w.end_ns) / 1e9:.2f} s after {_fault_label(w)} ended"
    w = next(windows.sort_values("start_ns").itertuples())
    return f"{(w.start_ns - t_ns) / 1e9:.2f} s before {_fault_label(w)} started"


def client_sample(run: Explored, process: str, t_ns: int) -> tuple[dict | None, int | None]:
    """A client's latest own sample (client-metrics detail) at or before t_ns and its time, or None."""
    samples = run.samples[(run.samples["process"] == process) & (run.samples["complete_ns"] <= t_ns)]
    if samples.empty:
        return None, None
    return samples["detail"].iloc[-1], int(samples["complete_ns"].iloc[-1])


def broker(sample: dict | None) -> str:
    """For a table: the broker a client talked to, when its sample leaves one possibility; else why not."""
    brokers = (sample or {}).get("brokers") or []
    if sample is None:
        return "not recorded (no sample)"
    if len(brokers) == 1:
        return str(brokers[0])
    return f"not recorded: one of {', '.join(brokers)}" if brokers else "not recorded (sample lists none)"


def connections(sample: dict | None) -> str:
    """A client's connections so far, from its own metrics: a jump between rows is a reconnection."""
    if sample is None or "connection-creation-total" not in sample:
        return ""
    return f"{sample['connection-creation-total']} opened, {sample.get('connection-close-total', 0)} closed"


def broker_note(run: Explored, process: str, t_ns: int, partition: int) -> str:
    """The broker of one operation in a sentence: what the history says, and what it does not."""
    sample, sampled_ns = client_sample(run, process, t_ns)
    if sample is None:
        later = run.samples[run.samples["process"] == process]
        return (f"not recorded: {process} was never sampled (no client-metrics rows)" if later.empty else
                f"not recorded: {process}'s first client-metrics sample came "
                f"{(int(later['complete_ns'].iloc[0]) - t_ns) / 1e9:.2f} s later")
    brokers = sample.get("brokers") or []
    age = f"sampled {(t_ns - sampled_ns) / 1e9:.2f} s before"
    if len(brokers) == 1:
        return (f"{brokers[0]}, the only broker in {process}'s metadata ({age}), so its requests went there; "
                "which broker process behind that address served this one is not recorded")
    if brokers:
        return (f"not recorded: {process}'s metadata listed {', '.join(brokers)} ({age}); the history does not "
                f"record which of them led partition {partition} or served this request")
    return f"not recorded: {process}'s sample lists no broker ({sample.get('error', 'no metadata')})"


def describe(anomaly: Anomaly) -> str:
    """One sentence per anomaly class saying what went wrong, in the checker's terms."""
    rows, r = anomaly.rows, anomaly.rows.iloc[0]
    slot = f"p{r['partition']}@{r['offset']}"
    sentences = {  # callables: each class's rows carry only the columns its sentence reads
        "lost-write": lambda: f"{r['ident']} acknowledged at {slot}, never read, although later offsets of its "
                              "partition were",
        "unseen": lambda: f"{r['ident']} acknowledged at {slot}, never read by anyone",
        "readback-missing": lambda: f"{r['ident']} acknowledged at {slot}; the final read-back did not return it",
        "position-mismatch": lambda: f"{r['ident']} acknowledged at {slot}; the read-back found {r['found']} there",
        "duplicate": lambda: f"{r['ident']} at " + ", ".join(f"p{p}@{o}" for p, o in
                                                             zip(rows["partition"], rows["offset"], strict=True)),
        "inconsistent-offsets": lambda: f"{slot} holds " + ", ".join(rows["ident"]),
        "poll-skip": lambda: f"{r['process']} read {slot} right after offset {r['previous_offset']} "
                             f"(session {r['session']}), stepping over offsets known to exist",
        "nonmonotonic-poll": lambda: f"{r['process']} read {slot} after offset {r['previous_offset']} "
                                     f"(session {r['session']})",
        "nonmonotonic-send": lambda: f"{r['ident']} landed at {slot}, below offset {r['previous_offset']} "
                                     f"of an earlier send of {r['producer']}",
        "aborted-read": lambda: f"{r['process']} read {r['ident']} at {slot}, although its send failed",
        "corrupted": lambda: f"{r['process']} read at {slot} a record that is corrupt or was never sent "
                             f"({r['ident']})",
        "foreign-record": lambda: f"{r['process']} read at {slot} a record of run {r['record_run']}",
    }
    return sentences[anomaly.name]()


@dataclass
class AnomalyContext:
    """What the notebook shows for one anomaly: a heading saying what and when, the operations
    around it on its partition, and that partition's timeline zoomed on it."""

    title: str
    table: pd.DataFrame
    figure: Figure

    def _ipython_display_(self) -> None:
        from IPython.display import Image, Markdown, display

        display(Markdown(self.title), self.table, Image(data=png(self.figure)))


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes: shown as an image whatever matplotlib backend the kernel has."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def anomaly_context(anomaly: Anomaly, window: int = 10, zoom_s: float = 5.0) -> AnomalyContext:
    """Heading, context table and zoomed timeline of one anomaly."""
    run = anomaly.run
    table = context(anomaly, window)
    at = table.index[table["at"] == "▶"][0]
    row = run.view.frame.loc[at]
    t_ns, partition = int(row["complete_ns"]), int(row["partition"])
    frame = run.view.frame
    span = frame["complete_ns"].between(*frame.loc[[table.index[0], table.index[-1]], "complete_ns"])
    unknown = frame[span & frame["f"].isin(["send", "poll"]) & (frame["partition"] == -1)]
    elsewhere = (f" Meanwhile (partition unknown, so not in the table): {int((unknown['f'] == 'send').sum())} "
                 f"sends not acknowledged, {int((unknown['f'] == 'poll').sum())} polls failed." if len(unknown) else "")
    title = (f"### {anomaly.number}. {anomaly.name} ({REQUIREMENT[anomaly.name]}, {run.status(anomaly.name)}) "
             f"— {run.label}\n\n{describe(anomaly)}.\n\n"
             f"At t = {(t_ns - run.start_ns) / 1e9:.3f} s ({row['process']} {row['f']}, history row {at}): "
             f"{fault_relation(run.view.windows, t_ns)}.\n\n"
             f"Broker: {broker_note(run, row['process'], t_ns, partition)}.\n\n"
             f"Below, ▶ marks it among the {window} operations before and after it on partition {partition} "
             f"(a poll of n records is n rows).{elsewhere}")
    highlight = table.loc[[at]].assign(complete_ns=t_ns)
    figure = plots.partition_timeline(run.view, str(row["topic"]), partition, t_ns, zoom_s, highlight,
                                      flagged_rows(run, str(row["topic"]), partition, t_ns, zoom_s),
                                      f"#{anomaly.number} {anomaly.name}: partition {partition} of {run.label}")
    return AnomalyContext(title, table, figure)


def flagged_rows(run: Explored, topic: str, partition: int, centre_ns: int, span_s: float) -> pd.DataFrame:
    """Operations on the partition within span_s of centre_ns that any anomaly names."""
    ops = partition_ops(run.view.frame, topic, partition)
    ops = ops[ops["complete_ns"].between(centre_ns - span_s * 1e9, centre_ns + span_s * 1e9)]
    named = [bool(run.marks.get(row) or run.marks.get(slot))
             for row, slot in zip(_keys(ops, ROW_KEY), _keys(ops, SLOT_KEY), strict=True)]
    return ops[np.array(named, dtype=bool)]


def anomaly_contexts(runs: list[Explored], window: int = 10, max_anomalies: int = 10,
                     zoom_s: float = 5.0) -> list[AnomalyContext]:
    """Every selected anomaly (see select_anomalies) in its context; empty when there is none."""
    return [anomaly_context(anomaly, window, zoom_s) for anomaly in select_anomalies(runs, max_anomalies)]
