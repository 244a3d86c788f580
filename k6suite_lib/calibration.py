"""Calibration as data: each check's record on the baseline, and where it is known to fail.

A check earns trust when it passes where the promise is kept and fails where it is broken. `k6suite
calibrate` runs scenarios N times on the baseline (Apache Kafka) and folds every verdict row into one
record per check, ``calibration/checks/<slug>.json``: k of N passes, per scenario and variant too, the
distribution of the measured value (p50 / p95 / max), the build it was measured on, the date, the
command and the machine's load meanwhile. The negative side comes from two places: NEGATIVES_FILE
(kept by hand: the tests that plant a history the check must FAIL, checked to exist by the tests, and
real systems whose failure is documented elsewhere) and the verdict tables of ``observations/`` (real
systems that broke the promise). A check with neither is *unproven*.

Verdicts come from several recording clients (a run's ``client``: kafka-python, librdkafka, franz-go), and
a check can pass with one client and fail with another on the same system, so a record keeps one case per
client, scenario and variant; a verdict is shown beside its own client's case, and a client the baseline
was never measured with is "not calibrated for <client>". Records written before cases named their client
were all measured with kafka-python (DEFAULT_CLIENT) and load as such.

Reports show each verdict's record beside it (``note``) and mark a NO that rests only on checks the
baseline does not pass every time (``caveat``); both are pure functions of records and verdict rows.
A record measured on another build or topology than the one in use, or on an unknown build, is *stale*; so
is a case measured with other client settings than the verdict's (the library's version and what its producers
were given: idempotence, acks, timeouts; each case keeps them, from its runs' results or saved histories), both
recorded: only a named difference weakens a NO. Settings a case or a verdict's run did not record (a case written
before cases kept them) are said beside the verdict ("client settings ... not recorded"), not held stale; a
probe's verdict (S1, S2's scrape and connection storm) depends on no client setting and says nothing of them.
Each case also keeps the suite's commit its runs were made with (their manifests' git_commit and git_dirty).
When the suite's code that records or judges (suite_version.JUDGING_PATHS) differs between that commit and the
tree in use, the files are named beside the verdict ("suite changed since measured: ..."), as is a commit git
cannot find or a case that recorded none; none of these is held stale. Held stale, every checker or recording
commit would caveat every NO until the whole baseline was measured again (each commit of this session did),
so the caveat would stop meaning anything; named, the reader sees which code moved under a case and
`k6suite calibrate` re-measures it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from k6suite_lib import suite_version
from k6suite_lib.stack.layout import REPO_ROOT

CALIBRATION_DIR = REPO_ROOT / "calibration"
OBSERVATIONS_DIR = REPO_ROOT / "observations"
NEGATIVES_FILE = "negatives.json"
JUDGED = ("PASS", "ALLOWED", "FAIL")
# what makes two builds the same for a record: the build record the runner writes, without paths
BUILD_KEYS = ("system", "version", "commit", "dirty")
# the client of a run, case or verdict that names none: every run before `--clients` recorded with it
DEFAULT_CLIENT = "kafka-python"
# (scenario, variant kind or None for every variant) whose clients are kafka-python whatever the run's client
KAFKA_PYTHON_ONLY = {("S1", None), ("S8", None), ("S3", "read-your-writes")}
# (scenario, variant kind or None for every variant) judged by the suite's own probes, not by producers given the
# profile's client settings: no client setting influences them, so their notes say nothing of settings
PROBES = {("S1", None), ("S2", "scrape"), ("S2", "connection-storm")}
_NUMBER = re.compile(r"^\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|inf)\b", re.IGNORECASE)


# ---------------------------------------------------------------------- measuring
def numeric(measured: Any) -> float | None:
    """The number a verdict measured ("59.9 s", 0.256, "inf s", "10 records"), or None when it measured
    no number ("n/a", "tenant-a: failed ...")."""
    if isinstance(measured, bool):
        return float(measured)
    if isinstance(measured, int | float):
        return float(measured)
    match = _NUMBER.match(str(measured))
    return float(match.group(1)) if match else None


def distribution(values: list[float]) -> dict[str, Any] | None:
    """p50 / p95 / max (nearest rank) of the measured values; infinity ("never") written as "inf"."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": _plain(rank(0.50)), "p95": _plain(rank(0.95)), "max": _plain(ordered[-1])}


def _plain(value: float) -> float | str:
    return "inf" if math.isinf(value) else round(value, 4)


def _tally(rows: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = [r["status"] for r in rows]
    judged = [r for r in rows if r["status"] in JUDGED]
    values = [v for v in (numeric(r["measured"]) for r in judged) if v is not None]
    return {"passes": sum(s in ("PASS", "ALLOWED") for s in statuses), "judged": len(judged),
            "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
            "measured": distribution(values),
            "failures": [f"{r['run_id']} {r['variant']}: {r['measured']} ({str(r['evidence'])[:160]})"
                         for r in rows if r["status"] == "FAIL"][:5]}


def probed(scenario: str | None, variant: str | None) -> bool:
    """The verdict comes from the suite's own probes (PROBES), which no client setting influences."""
    return (scenario, None) in PROBES or (scenario, _kind(variant)) in PROBES


def client_of(scenario: str | None, variant: str | None, run_client: str | None) -> str:
    """The library a verdict was recorded with: the run's recording client (`--clients` chooses the client
    of workloads), except where a scenario always uses kafka-python (S1's probes, S8's tenants, S3's
    read-your-writes), whose verdicts are kafka-python's whatever the run's client."""
    kind = re.sub(r"#\d+$", "", str(variant)) if variant is not None else None
    if (scenario, None) in KAFKA_PYTHON_ONLY or (scenario, kind) in KAFKA_PYTHON_ONLY:
        return DEFAULT_CLIENT
    return run_client or DEFAULT_CLIENT


def verdict_rows(summaries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every verdict row of the runs, with its run id, client and scenario, repeats ('kill#3') named by
    their kind."""
    rows = []
    for summary in summaries:
        for scenario in summary["scenarios"]:
            for v in scenario["verdicts"]:
                rows.append({**v, "run_id": summary["run_id"],
                             "client": client_of(scenario["scenario"], v["variant"], summary.get("client")),
                             "scenario": scenario["scenario"], "kind": re.sub(r"#\d+$", "", str(v["variant"])),
                             "settings": settings_in(scenario, v["variant"]), "suite": summary.get("suite")})
    return rows


def settings_in(scenario: dict[str, Any], variant: str | None) -> dict[str, Any] | None:
    """The client settings a scenario's result recorded for a verdict's variant (a folded 'kill' takes its
    repeats'), None when it recorded none: a variant without recording clients, or a result written before
    results recorded them."""
    recorded = scenario.get("client_settings") or {}
    if variant in recorded:
        return recorded[variant]
    return next((s for v, s in recorded.items() if _kind(v) == str(variant)), None)


def build_records(summaries: list[dict[str, Any]], negatives: dict[str, Any], observed: dict[str, list[dict]],
                  command: str, date: str, load: dict[str, Any] | None = None,
                  topology: dict[str, Any] | None = None, baseline: str = "kafka") -> dict[str, dict[str, Any]]:
    """One record per check name seen in the runs (a pure function of the runs' summaries, the negative
    cases and what the command and machine were), one case per client, scenario and variant. Every run must
    be of the baseline system (a KafScale run must not become the baseline's record) and counted once."""
    systems = sorted({str((s.get("build") or {}).get("system")) for s in summaries})
    if systems != [baseline]:
        raise ValueError(f"the runs were measured on {', '.join(systems)}, not the baseline {baseline}; "
                         "calibrate the baseline (or name another with --baseline)")
    run_ids = [s["run_id"] for s in summaries]
    if len(set(run_ids)) != len(run_ids):
        raise ValueError(f"a run is given more than once: {sorted({r for r in run_ids if run_ids.count(r) > 1})}")
    shapes = {json.dumps(s["topology"], sort_keys=True) for s in summaries if s.get("topology") is not None}
    if topology is not None:
        shapes.add(json.dumps(topology, sort_keys=True))
    if len(shapes) > 1:
        raise ValueError(f"the runs were measured on different topologies ({'; '.join(sorted(shapes))}); "
                         "calibrate one at a time")
    builds = {json.dumps(_build_key(s.get("build")), sort_keys=True) for s in summaries}
    if len(builds) != 1:
        raise ValueError(f"the runs were measured on {len(builds)} different builds; calibrate one build at a time")
    summary = summaries[0]
    rows = verdict_rows(summaries)
    records = {}
    for check in dict.fromkeys(r["check"] for r in rows):
        mine = [r for r in rows if r["check"] == check]
        lost = _lost(mine, summaries)
        cases = []
        for client, scenario, kind in dict.fromkeys([*((r["client"], r["scenario"], r["kind"]) for r in mine),
                                                     *lost]):
            case_rows = [r for r in mine if (r["client"], r["scenario"], r["kind"]) == (client, scenario, kind)]
            cases.append({"client": client, "scenario": scenario, "variant": kind, **_tally(case_rows),
                          "settings": _one_setting(case_rows, f"{check}: {client} {scenario} {kind}"),
                          "suite": _suites(case_rows),
                          "lost": lost.get((client, scenario, kind), 0),
                          "runs": sorted({r["run_id"] for r in case_rows}), "date": date, "command": command})
        records[check] = {
            "check": check, "requirement": mine[0]["requirement"], "threshold": mine[0]["threshold"],
            "baseline": {"profile": summary["profile"], "system": summary.get("system"), "build": summary.get("build"),
                         "topology": topology},
            "date": date, "command": command, "runs": sorted({s["run_id"] for s in summaries}), "load_average": load,
            "clients": sorted({c["client"] for c in cases}),
            **_tally(mine), "lost": sum(c["lost"] for c in cases), "cases": cases,
            "fails_on": fails_on(check, negatives, observed),
            "note": negatives.get("notes", {}).get(check, ""),
        }
    return records


def _one_setting(rows: list[dict[str, Any]], case: str) -> dict[str, Any] | None:
    """The client settings every verdict of a case was measured with; None when some of its runs recorded none
    (a case partly of unknown settings cannot claim any). Runs of different recorded settings are refused: a
    record is of one setting."""
    settings = {json.dumps(r["settings"], sort_keys=True): r["settings"] for r in rows if r["settings"] is not None}
    if len(settings) > 1:
        raise ValueError(f"{case} was measured with different client settings "
                         f"({'; '.join(sorted(settings))}); calibrate one setting at a time")
    return None if any(r["settings"] is None for r in rows) else next(iter(settings.values()), None)


def _suites(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The suite commits (and dirty flags) a case's verdicts were measured with, one entry per distinct one;
    an entry of commit None for runs that recorded none."""
    found = {json.dumps(_suite_key(r.get("suite")), sort_keys=True) for r in rows}
    return [json.loads(key) for key in sorted(found)]


def _suite_key(suite: dict[str, Any] | None) -> dict[str, Any]:
    return {"commit": (suite or {}).get("git_commit"), "dirty": (suite or {}).get("git_dirty")}


def suite_of(run: Path) -> dict[str, Any] | None:
    """The suite a run was made with, from its manifest (None: an unfinished run, which has none)."""
    manifest = run / "manifest.json"
    return json.loads(manifest.read_text()).get("suite") if manifest.is_file() else None


def _lost(rows: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(client, scenario, kind) -> repeats a run planned (its summary's "planned", from the notebook's parameters)
    that left no row of this check: a repeat whose notebook hung or failed, which must count as a non-pass,
    not vanish from k of N. Only for checks judged per repeat (variants 'kind#n') in that scenario."""
    lost: dict[tuple[str, str, str], int] = {}
    for summary in summaries:
        client = summary.get("client") or DEFAULT_CLIENT
        mine = [r for r in rows if r["run_id"] == summary["run_id"]]
        for scenario, kinds in (summary.get("planned") or {}).items():
            repeated = {r["kind"] for r in rows if r["scenario"] == scenario and r["kind"] != str(r["variant"])}
            if not repeated:
                continue
            for kind, planned in (kinds if "*" not in kinds else {k: kinds["*"] for k in repeated}).items():
                seen = {r["variant"] for r in mine if (r["scenario"], r["kind"]) == (scenario, kind)}
                if planned > len(seen):
                    lost[(client, scenario, kind)] = lost.get((client, scenario, kind), 0) + planned - len(seen)
    return lost


def planned_repeats(run: Path) -> dict[str, dict[str, int]]:
    """scenario -> kind -> how many repeats its notebook was asked for ('*': each kind it ran), read from the
    parameters of the executed notebooks; scenarios run once are left out (their variants carry no '#n')."""
    import ast

    planned = {}
    for notebook in sorted(run.glob("S*/*.ipynb")):
        params: dict[str, Any] = {}
        for cell in json.loads(notebook.read_text()).get("cells", []):
            if {"parameters", "injected-parameters"} & set(cell.get("metadata", {}).get("tags", [])):
                for node in ast.parse("".join(cell["source"])).body:
                    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                        try:
                            params[node.targets[0].id] = ast.literal_eval(node.value)
                        except ValueError:
                            continue
        repeats = params.get("repeats")
        if isinstance(repeats, int) and repeats > 1:
            kinds = params.get("kinds")
            scenario = notebook.parent.name.split("-")[0]
            planned[scenario] = {k: repeats for k in kinds} if isinstance(kinds, list) else {"*": repeats}
    return planned


def fails_on(check: str, negatives: dict[str, Any], observed: dict[str, list[dict]]) -> dict[str, list]:
    """Where the check is known to FAIL: planted histories (test ids) and real systems (with evidence)."""
    systems = [*negatives.get("systems", {}).get(check, []), *observed.get(check, [])]
    unique = list({(s["system"], s["evidence"]): s for s in systems}.values())
    return {"planted": list(negatives.get("planted", {}).get(check, [])), "systems": unique}


def _build_key(build: dict[str, Any] | None) -> dict[str, Any]:
    return {key: (build or {}).get(key) for key in BUILD_KEYS}


# ---------------------------------------------------------------------- the negative side
def load_negatives(directory: Path = CALIBRATION_DIR) -> dict[str, Any]:
    path = directory / NEGATIVES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


# a check's earlier name in observations -> its name now, where only the name changed (the same measurement
# and bound): its FAILs still count. Not here: "consumer-group rebalances", which counted the group's start-up
# joins as rebalances (the "3 assignments to 2 members" of OBS-05, OBS-07) and so says nothing about the check
# "consumer-group rebalances after the first fault" that replaced it.
RENAMED = {"recovery: longest time without an ack, per partition, after the fault starts":
           "longest gap between acknowledgements per partition, from the fault's start"}
_SYSTEM_COMPONENTS = (("kafscale-broker", "KafScale"), ("tansu", "Tansu"))
_SYSTEM_NAMES = ("KafScale", "Tansu", "Apache Kafka")


def observed_failures(directory: Path = OBSERVATIONS_DIR) -> dict[str, list[dict[str, str]]]:
    """check -> real systems whose FAIL of it an observation records: each OBS-NN README's verdict tables,
    the system named by the table's heading ("## Verdicts: KafScale v1.5.0, run ..." or a heading that
    starts with a system's name and version, "## Tansu v0.6.0-510f3e2 with ..."), else by the observation's
    components, else by its title ("# OBS-14: KafScale main 7aa2a11: ...")."""
    found: dict[str, list[dict[str, str]]] = {}
    for readme in sorted(directory.glob("OBS-*/README.md")):
        obs = readme.parent.name.split("-", 2)
        evidence = f"{obs[0]}-{obs[1]}"
        text = readme.read_text()
        default = _observation_system(text)
        system = default
        for line in text.splitlines():
            if line.startswith("## "):
                system = _heading_system(line) or default
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| S") else []
            if len(cells) >= 8 and cells[6] == "**FAIL**" and system:
                entry, check = {"system": system, "evidence": evidence}, RENAMED.get(cells[2], cells[2])
                if entry not in found.setdefault(check, []):
                    found[check].append(entry)
    return found


def _heading_system(line: str) -> str:
    """The system a "## " heading names: "## Verdicts: KafScale v1.5.0, run ..." or a heading that starts
    with a system's name and its version or branch ("## Tansu v0.6.0-510f3e2 with ..."); "" for none."""
    verdicts = re.match(r"^## Verdicts: (.+?), run ", line)
    if verdicts:
        return verdicts.group(1)
    named = re.match(r"^## ((?:{}) (?:v?\d[\w.\-]*|main [0-9a-f]{{7,}}))\b".format("|".join(_SYSTEM_NAMES)), line)
    return named.group(1) if named else ""


def _observation_system(text: str) -> str:
    components = re.search(r"^- \*\*Components\*\*: (.*)$", text, re.MULTILINE)
    for component, name in _SYSTEM_COMPONENTS:
        match = re.search(rf"\b{component} (v?[\w.\-]+)", components.group(1)) if components else None
        if match:
            return f"{name} {match.group(1)}"
    title = re.search(r"^# OBS-\d+: ((?:{}) [^:]+?):".format("|".join(_SYSTEM_NAMES)), text, re.MULTILINE)
    return title.group(1) if title else ""


# ---------------------------------------------------------------------- files
def slug(check: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", check.lower()).strip("-")[:80]


def write_records(records: dict[str, dict[str, Any]], directory: Path = CALIBRATION_DIR) -> list[Path]:
    """Each record as checks/<slug>.json, merged into that check's earlier record of the same baseline
    (calibrating S4 pause keeps the S4 kill case), then README.md over every record in the folder."""
    folder = directory / "checks"
    folder.mkdir(parents=True, exist_ok=True)
    earlier = load_records(directory)
    written = []
    for check, record in records.items():
        path = folder / f"{slug(check)}.json"
        merged = merge(earlier.get(check), record)
        path.write_text(json.dumps(merged, indent=2, sort_keys=False) + "\n")
        written.append(path)
    render(directory)
    return written


def render(directory: Path = CALIBRATION_DIR) -> Path:
    """README.md over every record in the folder, measuring nothing (`k6suite calibrate --render`)."""
    path = directory / "README.md"
    path.write_text(readme(load_records(directory)))
    return path


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The new record with the old one's cases it did not measure again, when both are of the same baseline
    (build and topology; an old record of another baseline is replaced whole). The totals are the cases'
    sums; the overall distribution stays only when no old case was kept (percentiles do not add up)."""
    same = old is not None and "unreadable" not in old and _build_key(old["baseline"].get("build")) == \
        _build_key(new["baseline"].get("build")) and old["baseline"].get("topology") == new["baseline"].get("topology")
    if not same:
        return new
    measured = {_case_key(c) for c in new["cases"]}
    kept = [{"runs": old["runs"], "date": old["date"], "command": old["command"], **c} for c in old["cases"]
            if _case_key(c) not in measured]
    if not kept:
        return new
    cases = [*kept, *new["cases"]]
    statuses: dict[str, int] = {}
    for case in cases:
        for status, n in case["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    return {**new, "runs": sorted({run for c in cases for run in c["runs"]}),
            "clients": sorted({c["client"] for c in cases}),
            "passes": sum(c["passes"] for c in cases), "judged": sum(c["judged"] for c in cases),
            "lost": sum(c.get("lost", 0) for c in cases),
            "statuses": dict(sorted(statuses.items())), "measured": None,
            "failures": [f for c in cases for f in c.get("failures", [])][:5], "cases": cases}


def _case_key(case: dict[str, Any]) -> tuple[str, str, str]:
    return case["client"], case["scenario"], case["variant"]


def load_records(directory: Path = CALIBRATION_DIR) -> dict[str, dict[str, Any]]:
    """check name -> record, from the committed calibration folder. A file that is not a record of this
    schema (malformed, an older layout) becomes {"check": ..., "unreadable": why}, keyed by its check name
    when it has one, else by its file's slug: a report shows "record unreadable" instead of crashing a run.
    A case that names no client (written before cases did) is DEFAULT_CLIENT's. Where the folder keeps a
    negatives.json, each record's negative side (fails_on, note) is read from it and from observations/ as
    they are now, not as they were when the record was measured: a planted test or an observation added
    later counts at once, without measuring again."""
    negatives = load_negatives(directory) if (directory / NEGATIVES_FILE).is_file() else None
    observed = observed_failures() if negatives is not None else {}
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((directory / "checks").glob("*.json")):
        record: Any = None
        try:
            record = json.loads(path.read_text())
            _validate(record)
            for case in record["cases"]:
                case.setdefault("client", DEFAULT_CLIENT)
            record["clients"] = sorted({c["client"] for c in record["cases"]})
            if negatives is not None:
                record["fails_on"] = fails_on(record["check"], negatives, observed)
                record["note"] = negatives.get("notes", {}).get(record["check"], "")
        except (ValueError, TypeError) as error:
            name = record.get("check") if isinstance(record, dict) else None
            key = name if isinstance(name, str) else path.stem
            records[key] = {"check": key, "unreadable": f"{path.name}: {type(error).__name__}: {error}"}
            continue
        records[record["check"]] = record
    return records


_CASE_KEYS = {"scenario": str, "variant": str, "passes": int, "judged": int, "statuses": dict}
_RECORD_KEYS = {"check": str, "requirement": str, "baseline": dict, "date": str, "command": str, "runs": list,
                "passes": int, "judged": int, "statuses": dict, "cases": list, "fails_on": dict}


def _validate(record: Any) -> None:
    """Raise ValueError unless the record has every field reports read, of the right type."""
    def need(data: Any, keys: dict[str, type], where: str) -> None:
        if not isinstance(data, dict):
            raise ValueError(f"{where} is not an object")
        for key, kind in keys.items():
            if not isinstance(data.get(key), kind):
                raise ValueError(f"{where}.{key} missing or not {kind.__name__}")

    need(record, _RECORD_KEYS, "record")
    for where, tally in [("record", record), *(("case", case) for case in record["cases"])]:
        need(tally, _CASE_KEYS if where == "case" else {}, where)
        if tally.get("measured") is not None:
            need(tally["measured"], {"p50": float | int | str, "p95": float | int | str, "max": float | int | str},
                 f"{where}.measured")
        if not isinstance(tally.get("lost", 0), int) or not all(isinstance(n, int) for n in tally["statuses"].values()):
            raise ValueError(f"{where}: lost or a status count is not a number")
        if where == "case" and not isinstance(tally.get("client", DEFAULT_CLIENT), str):
            raise ValueError("case.client is not a string")
        if where == "case" and not isinstance(tally.get("settings"), dict | None):
            raise ValueError("case.settings is not an object")
        suite = tally.get("suite", []) if where == "case" else []
        if not isinstance(suite, list) or not all(isinstance(e, dict) and isinstance(e.get("commit"), str | None)
                                                  for e in suite):
            raise ValueError("case.suite is not a list of commits")
    need(record["fails_on"], {"planted": list, "systems": list}, "fails_on")
    for found in record["fails_on"]["systems"]:
        need(found, {"system": str, "evidence": str}, "fails_on.systems[]")
    for key in ("build", "topology"):
        if not isinstance(record["baseline"].get(key), dict | None):
            raise ValueError(f"baseline.{key} is not an object")


def _record(records: dict[str, dict[str, Any]], check: str) -> dict[str, Any] | None:
    return records.get(check) or records.get(slug(check))


# ---------------------------------------------------------------------- judging records
def unproven(record: dict[str, Any]) -> bool:
    """No planted history and no real system is known to make the check FAIL."""
    return not (record["fails_on"]["planted"] or record["fails_on"]["systems"])


def staleness(record: dict[str, Any], in_use: dict[str, Any] | None) -> str:
    """Why the record does not describe the baseline in use ("" when it does): measured on an unknown build,
    on another build, or on another topology (brokers, controllers) than the one in use. in_use None: the
    build in use is not known, so only a record of an unknown build is stale; a topology not known on
    either side is not compared."""
    built = record["baseline"].get("build")
    if built is None:
        return "measured on an unknown build"
    if in_use is None:
        return ""
    if _build_key(built) != _build_key(in_use):
        return f"measured on {built.get('label')}, in use {in_use.get('label')}"
    mine, theirs = record["baseline"].get("topology"), in_use.get("topology")
    if theirs is not None and mine != theirs:
        return f"measured on topology {_shape(mine)}, in use {_shape(theirs)}"
    return ""


# settings a history's metadata may predate (config.client_settings reads them with meta.get): None there, or a
# case recorded before the setting was kept (no key), is not recorded, not a value (audit22 M2: every franz-go case
# read "options None measured", the S4 ones measured with today's very split)
RECORDED_LATER = ("idempotent", "request_timeout_ms", "options")


def _unrecorded(mine: dict[str, Any], settings: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The settings the case (first) and the verdict (second) did not record, of those either names."""
    keys = list(dict.fromkeys([*mine, *settings]))

    def missing(side: dict[str, Any]) -> list[str]:
        return [key for key in keys if key not in side or (key in RECORDED_LATER and side[key] is None)]
    return missing(mine), missing(settings)


def settings_staleness(case: dict[str, Any], settings: dict[str, Any] | None) -> str:
    """A real, named difference between the client settings a case was measured with and a verdict's ("" when
    there is none): only two recorded settings can differ. A case that recorded none (written before records
    kept them, or folded from runs that did not record them), a verdict whose run recorded none (probes, or
    a run made before runs recorded them), or a setting one side did not record (RECORDED_LATER) names no
    difference; settings_unrecorded says so, as information."""
    mine = case.get("settings")
    if settings is None or mine is None or mine == settings:
        return ""
    baseline, run = _unrecorded(mine, settings)
    unknown = {*baseline, *run}
    differ = [key for key in dict.fromkeys([*mine, *settings])
              if key not in unknown and mine.get(key) != settings.get(key)]
    return "client settings differ: " + "; ".join(
        f"{key} {mine.get(key)} measured, {settings.get(key)} in use" for key in differ) if differ else ""


def settings_unrecorded(case: dict[str, Any], settings: dict[str, Any] | None) -> str:
    """What is not known of the settings a case and a verdict ran with ("" when both are recorded): said beside
    the verdict, never as staleness, since an unknown is no difference that could weaken a NO."""
    if "settings" not in case:
        return "client settings of the baseline not recorded (measured before records kept them)"
    if case["settings"] is None:
        return "client settings of the baseline not recorded"
    if settings is None:
        return "client settings of this run not recorded, so not compared"
    baseline, run = _unrecorded(case["settings"], settings)
    return "; ".join(f"client setting {', '.join(keys)} of {whose} not recorded, so not compared"
                     for keys, whose in ((baseline, "the baseline"), (run, "this run")) if keys)


def suite_changes(case: dict[str, Any]) -> str:
    """How the suite in use records or judges differently from the one a case was measured with ("" when
    it does not, or cannot tell): the files of suite_version.JUDGING_PATHS that changed since each commit
    of the case's runs, against the working tree in use. Said beside a verdict, not held stale."""
    changes = []
    for entry in case.get("suite") or []:
        changed = suite_version.changed_since(entry["commit"]) if entry.get("commit") else None
        if changed:
            more = f" +{len(changed) - 3} more" if len(changed) > 3 else ""
            changes.append(f"{entry['commit'][:10]}: {', '.join(changed[:3])}{more}")
    return ("suite changed since measured, in the code that records or judges (" + "; ".join(changes) + ")"
            if changes else "")


def suite_unrecorded(case: dict[str, Any]) -> str:
    """What is not known of the suite a case was measured with ("" when every commit is known and clean):
    said beside the verdict, never as staleness."""
    if "suite" not in case:
        return "suite commit not recorded (measured before cases kept it)"
    said = []
    for entry in case["suite"]:
        commit = entry.get("commit")
        if commit is None:
            said.append("suite commit not recorded")
        elif suite_version.changed_since(commit) is None:
            said.append(f"suite commit {commit[:10]} unknown (no git, or not in this clone's history)")
        elif entry.get("dirty"):
            said.append(f"measured with uncommitted changes to suite commit {commit[:10]}")
    return "; ".join(said)


def stale(record: dict[str, Any], in_use: dict[str, Any] | None) -> bool:
    return bool(staleness(record, in_use))


def _shape(topology: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in topology.items()) if topology else "unknown"


def topology(stack: dict[str, Any] | None) -> dict[str, Any] | None:
    """What of a profile's stack settings shapes the cluster: brokers, dedicated controllers, and Kubernetes
    when the stack runs there; not the ports, which only move it."""
    if not stack:
        return None
    shape = {"brokers": stack.get("brokers"), "controllers": stack.get("controllers", 0)}
    return {**shape, "kubernetes": stack["kubernetes"]} if stack.get("kubernetes") else shape


def baseline_label(record: dict[str, Any]) -> str:
    build = record["baseline"].get("build") or {}
    name = {"kafka": "Kafka"}.get(build.get("system", ""), build.get("system", record["baseline"]["profile"]))
    return f"{name} {build.get('version', '')}".strip()


def _case(record: dict[str, Any], scenario: str | None, variant: str | None, client: str) -> dict[str, Any] | None:
    """The record's case for this client, scenario and variant (None: never calibrated there); when no
    scenario is asked about, the client's cases summed (the record overall when every case is the client's)."""
    mine = [c for c in record["cases"] if c.get("client", DEFAULT_CLIENT) == client]
    if scenario is None:
        if len(mine) == len(record["cases"]):
            return record
        statuses: dict[str, int] = {}
        for case in mine:
            for status, n in case["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        return {"passes": sum(c["passes"] for c in mine), "judged": sum(c["judged"] for c in mine),
                "lost": sum(c.get("lost", 0) for c in mine), "statuses": statuses,
                "measured": mine[0].get("measured") if len(mine) == 1 else None}
    return next((c for c in mine if (c["scenario"], c["variant"]) == (scenario, _kind(variant))), None)


def _kind(variant: str | None) -> str:
    """A repeat's kind: 'kill#3' -> 'kill'."""
    return re.sub(r"#\d+$", "", str(variant or ""))


def fails_on_text(record: dict[str, Any]) -> str:
    planted = record["fails_on"]["planted"]
    systems: dict[str, list[str]] = {}
    for found in record["fails_on"]["systems"]:
        systems.setdefault(found["system"], []).append(found["evidence"])
    parts = ([f"planted in {len(planted)} test{'s' if len(planted) > 1 else ''}"] if planted else []) + [
        f"{system} ({', '.join(evidence)})" for system, evidence in systems.items()]
    return "fails on: " + ", ".join(parts) if parts else "unproven: no known case where it fails"


def k_of_n(tally: dict[str, Any]) -> str:
    """"k of N" of a record or case, a planned repeat that left no verdict counted in N as a non-pass:
    "18 of 20, 2 lost"; the baseline's NOT TESTED verdicts are not in N but said: "17 of 17 (+3 not tested)"."""
    lost = tally.get("lost", 0)
    untested = (tally.get("statuses") or {}).get("NOT TESTED", 0) if tally["judged"] or lost else 0
    return f"{tally['passes']} of {tally['judged'] + lost}" + (f", {lost} lost" if lost else "") \
        + (f" (+{untested} not tested)" if untested else "")


def note(record: dict[str, Any] | None, scenario: str | None = None, variant: str | None = None,
         in_use: dict[str, Any] | None = None, client: str | None = None,
         settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the report shows beside a verdict of this client (None: DEFAULT_CLIENT): the baseline's k of N
    with that client for this scenario and variant (else for the check overall), its distribution, where
    it fails, and whether the record is stale: of another build or topology than in_use, or of client settings
    that differ from the verdict's (settings, None when its run recorded none), both recorded. Settings either
    side did not record are said beside it, not held stale; a probe's verdict (PROBES) is held against no
    settings. A client the record has no case of is not calibrated."""
    client = client or DEFAULT_CLIENT
    if record is None:
        return {"text": "not calibrated", "calibrated": False, "shaky": False, "stale": False, "unproven": True}
    if "unreadable" in record:
        return {"text": f"record unreadable ({record['unreadable']})", "calibrated": False, "shaky": False,
                "stale": False, "unproven": True, "unreadable": True}
    label = f"{baseline_label(record)} with {client}"
    measured_with = {c.get("client", DEFAULT_CLIENT) for c in record["cases"]}
    case = _case(record, scenario, variant, client) if client in measured_with else None
    if case is None:
        missing = f"{scenario} {_kind(variant)}" if client in measured_with else client
        text = f"{label if client in measured_with else baseline_label(record)}: not calibrated for {missing}" \
            f"; {fails_on_text(record)}"
        return {"text": text, "calibrated": False, "shaky": False, "stale": stale(record, in_use),
                "unproven": unproven(record), "label": baseline_label(record), "uncalibrated": missing}
    measured = case.get("measured")
    spread = f" (p50 {measured['p50']}, p95 {measured['p95']}, max {measured['max']})" if measured else ""
    lost = case.get("lost", 0)
    if case["judged"] or lost:
        passes = f"{label}: {k_of_n(case)}{spread}"
    else:
        passes = (f"{label}: never judged ("
                  + ", ".join(f"{n} {s}" for s, n in case["statuses"].items()) + ")")
    # settings are held against a verdict's case only, and never for a probe's (no setting influences it)
    weighed = scenario is not None and not probed(scenario, variant)
    own = scenario is not None  # a case's own (the suite it was measured with), not the record's summed
    why_stale = "; ".join(why for why in [staleness(record, in_use),
                                          settings_staleness(case, settings) if weighed else ""] if why)
    unknown = "; ".join(why for why in [settings_unrecorded(case, settings) if weighed else "",
                                        suite_unrecorded(case) if own else "",
                                        suite_changes(case) if own else ""] if why)
    text = f"{passes}; {fails_on_text(record)}" + (f"; {unknown}" if unknown else "") \
        + (f"; STALE: {why_stale}" if why_stale else "")
    return {"text": text, "calibrated": bool(case["judged"] or lost),
            "shaky": case["passes"] < case["judged"] + lost,
            "passes": case["passes"], "judged": case["judged"], "lost": lost, "k_of_n": k_of_n(case),
            "stale": bool(why_stale), "unproven": unproven(record),
            "label": baseline_label(record)}


def caveat(answer: str, failed: list[dict[str, Any]], records: dict[str, dict[str, Any]],
           in_use: dict[str, dict[str, Any]] | None = None, client: str | None = None) -> str:
    """For a NO that rests only on checks the baseline does not pass every time (or never judged, or whose
    record is stale against in_use, system -> build): what the answer must say, e.g. "check passes on
    baseline 16 of 18"; "" for a NO that some solid, current check decides. client: the run's recording
    client, whose cases the records are read for."""
    if answer != "NO" or not failed:
        return ""
    notes = [(v, verdict_note(records, in_use or {}, v.get("scenario"), v, client)) for v in failed]
    if any(n["calibrated"] and not n["shaky"] and not n["stale"] for _, n in notes):
        return ""
    parts = [f"{v['check']} calibration stale ({n['text'].rsplit('STALE: ', 1)[-1]})" if n["stale"]
             else f"{v['check']} passes on baseline {n['k_of_n']}" if n["calibrated"]
             else f"{v['check']} calibration record unreadable" if n.get("unreadable")
             else f"{v['check']} not calibrated for {n['uncalibrated']}" if "uncalibrated" in n
             else f"{v['check']} not calibrated on the baseline" for v, n in notes]
    return "; ".join(dict.fromkeys(parts))


def baselines_in_use(summaries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """system -> the build a run or matrix used, so a record of that system can be held against it; a
    system the runs did not include is judged against its default build's version."""
    from k6suite_lib.stack.builds import DEFAULT_SOURCES

    in_use: dict[str, dict[str, Any]] = {system: {"system": system, "version": version, "commit": None,
                                                  "dirty": None, "label": f"{system} {version}"}
                                         for system, version in DEFAULT_SOURCES.items()}
    for summary in summaries:
        if summary.get("build"):
            in_use[summary["build"]["system"]] = {**summary["build"], "topology": summary.get("topology")}
    return in_use


def in_use_of(verdict: dict[str, Any], records: dict[str, dict[str, Any]],
              in_use: dict[str, dict[str, Any]] | None) -> dict[str, Any] | None:
    """The build in use of the system the verdict's check was calibrated on."""
    record = _record(records, verdict["check"]) or {}
    system = ((record.get("baseline") or {}).get("build") or {}).get("system", "")
    return (in_use or {}).get(system)


def verdict_note(records: dict[str, dict[str, Any]], in_use: dict[str, dict[str, Any]], scenario: str | None,
                 verdict: dict[str, Any], client: str | None = None) -> dict[str, Any]:
    """note() for one verdict row of a scenario recorded with `client`, its record held against the build of
    its system in use and against the client settings the row carries ("client_settings", see settings_in)."""
    record = _record(records, verdict["check"])
    return note(record, scenario, verdict.get("variant"), in_use_of(verdict, records, in_use),
                client_of(scenario, verdict.get("variant"), client), verdict.get("client_settings"))


# ---------------------------------------------------------------------- README
def readme(records: dict[str, dict[str, Any]]) -> str:
    """calibration/README.md: the table of every record (generated; `k6suite calibrate` rewrites it)."""
    lines = ["# Calibration", "",
             "Generated by `k6suite calibrate` from the records in `checks/` (one JSON file per check); do not edit.",
             "Each check's record on the baseline: how often it passed (k of N judged verdicts), the measured",
             "value's distribution, and where the check is known to FAIL: tests that plant a history it must",
             "fail (`negatives.json`, checked by tests/test_calibration.py) and real systems whose failure an",
             "observation records, both read as they are now (`k6suite calibrate --render` rewrites this file",
             "without measuring). A check with no known failing case is **unproven**. Reports show this beside",
             "every verdict; a record measured on another build or topology than the one in use is flagged stale.",
             "A planned repeat that left no verdict (its notebook hung or failed) counts as lost: k of N, m lost.",
             f"Cases are per recording client; one measured with another client than {DEFAULT_CLIENT} names it, and",
             "a verdict is shown beside its own client's case (\"not calibrated for <client>\" when there is none).",
             "Each case keeps the client settings it was measured with (in `checks/`); a verdict run with other",
             "recorded settings reads STALE naming the difference. Settings a case or a run did not record (a case",
             "measured before cases kept them, or one setting histories did not yet record, such as franz-go's",
             "options) are said beside the verdict (\"client setting(s) ... not recorded\"), not held stale; probes",
             "(S1, S2's scrape and connection storm) depend on no client setting.",
             "Each case keeps the suite commit its runs were made with; a verdict beside a case whose commit differs",
             "from the tree in use in the code that records or judges (k6suite_lib/checkers, workload, scenarios,",
             "history.py, clients/) names those files (\"suite changed since measured\"), and so does one whose",
             "commit git cannot find; neither is held stale (re-measure with `k6suite calibrate` to refresh a case).",
             "",
             "| check | req. | baseline | k of N | measured p50 / p95 / max | per variant (k of N) | fails on | date |",
             "|---|---|---|---|---|---|---|---|"]
    broken = sorted(c for c, r in records.items() if "unreadable" in r)
    records = {c: r for c, r in records.items() if "unreadable" not in r}
    def every_time(r: dict[str, Any]) -> bool:
        return r["passes"] == r["judged"] + r.get("lost", 0)

    for check in sorted(records, key=lambda c: (every_time(records[c]), c)):
        r = records[check]
        m = r.get("measured")
        spread = f"{m['p50']} / {m['p95']} / {m['max']}" if m else "-"
        kn = k_of_n(r) if every_time(r) else f"**{k_of_n(r)}**"
        if not r["judged"] and not r.get("lost"):
            kn = "not judged (" + ", ".join(f"{n} {s}" for s, n in r["statuses"].items()) + ")"
        cases = "; ".join(f"{_client_prefix(c)}{c['scenario']} {c['variant']} {c['passes']}/"
                          f"{c['judged'] + c.get('lost', 0)}"
                          + (f" ({c['lost']} lost)" if c.get("lost") else "") for c in r["cases"][:8])
        more = f"; +{len(r['cases']) - 8} more" if len(r["cases"]) > 8 else ""
        fails = fails_on_text(r).removeprefix("fails on: ")
        if unproven(r):
            fails = "**unproven**"
        lines.append(f"| {check} | {r['requirement']} | {baseline_label(r)} | {kn} | {spread} | {cases}{more} | "
                     f"{fails} | {r['date'][:10]} |")
    commands = sorted({c.get("command", r["command"]) for r in records.values() for c in [r, *r["cases"]]})
    loads = [r["load_average"] for r in records.values() if r.get("load_average")]
    lines += ["", "Commands that made these records:", "", *[f"- `{c}`" for c in commands]]
    if loads:
        lines += ["", "Load average (1 min) while measuring: " + "; ".join(sorted(
            {f"p50 {x['p50']}, max {x['max']} ({x['n']} samples)" for x in loads}))]
    if broken:
        lines += ["", "Unreadable records (rerun `k6suite calibrate` for them):", "", *[f"- {c}" for c in broken]]
    notes = sorted({(c, r["note"]) for c, r in records.items() if r.get("note")})
    if notes:
        lines += ["", "Notes:", "", *[f"- **{c}**: {n}" for c, n in notes]]
    return "\n".join(lines) + "\n"


def _client_prefix(case: dict[str, Any]) -> str:
    client = case.get("client", DEFAULT_CLIENT)
    return "" if client == DEFAULT_CLIENT else f"{client}: "


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- the command
LOAD_FILE = "loadavg.txt"  # "epoch load1 load5 load15" per line, sampled while a calibration run ran
LOAD_EVERY_S = 10.0


def calibrate(profile_name: str, scenarios: list[str] | None, repeats: int, runs: list[Path] | None = None,
              directory: Path = CALIBRATION_DIR, tier: str = "smoke", out_root: Path | None = None,
              command: str = "", log=print, baseline: str = "kafka", client: str | None = None) -> list[Path]:
    """Run the scenarios `repeats` times on the profile's system (scenarios with a `repeats` parameter once
    with repeats=N, the others N times, all on one embedded stack) recording with `client` (default: the
    profile's), or take the given run archives, and write one record per check they judged, one case per
    client the runs recorded with. Returns the files written."""
    if runs:
        run_dirs = list(dict.fromkeys(Path(run).resolve() for run in runs))
        summaries = _summaries_of(run_dirs)
    else:
        if repeats < 1:
            raise ValueError("--repeats must be at least 1")
        run_dirs = _run_repeatedly(profile_name, scenarios, repeats, tier, out_root, log, client)
        summaries = [json.loads((run / "summary.json").read_text()) for run in run_dirs]
    summaries = [{**with_settings(run, s), "planned": planned_repeats(run), "suite": suite_of(run)}
                 for run, s in zip(run_dirs, summaries, strict=True)]
    load = distribution([x for run, s in zip(run_dirs, summaries, strict=True) for x in _load_samples(run, s)])
    records = build_records(summaries, load_negatives(directory), observed_failures(), command or
                            f"k6suite calibrate --profile {profile_name} --repeats {repeats}", now(), load,
                            _topology(run_dirs), baseline)
    return write_records(records, directory)


def _run_repeatedly(profile_name: str, scenarios: list[str] | None, repeats: int, tier: str,
                    out_root: Path | None, log, client: str | None = None) -> list[Path]:
    import os
    import threading

    import papermill

    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import NOTEBOOKS, _choose, run_suite
    from k6suite_lib.stack import running

    chosen = _choose(scenarios)
    repeatable = [s.id for s in chosen if "repeats" in papermill.inspect_notebook(str(NOTEBOOKS / s.notebook))]
    once = [s.id for s in chosen if s.id not in repeatable]
    samples: list[str] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(LOAD_EVERY_S):
            samples.append(f"{dt.datetime.now(dt.UTC).timestamp():.0f} " + " ".join(map(str, os.getloadavg())))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    run_dirs = []
    try:
        with running(load_profile(profile_name), log=log):  # one stack for every run
            if repeatable:
                outcome = run_suite(profile_name, repeatable, tier, out_root, cell_timeout_s=max(1800, 400 * repeats),
                                    parameters={"repeats": repeats}, log=log, client=client)
                run_dirs.append(outcome.run_dir)
            for index in range(repeats if once else 0):
                log(f"calibration run {index + 1} of {repeats}: {' '.join(once)}")
                run_dirs.append(run_suite(profile_name, once, tier, out_root, log=log, client=client).run_dir)
    finally:
        done.set()
        sampler.join(5)
    for run in run_dirs:
        (run / LOAD_FILE).write_text("".join(f"{line}\n" for line in samples))
    return run_dirs


def _summaries_of(runs: list[Path]) -> list[dict[str, Any]]:
    """Each run's summary; a run that never finished (its notebook stopped by a timeout, its runner killed)
    has none, and is re-judged from the histories it saved, as `k6suite check` does, with the build of
    the finished runs given with it (the records are of one build)."""
    finished = {run: json.loads((run / "summary.json").read_text()) for run in runs if (run / "summary.json").is_file()}
    if not finished:
        raise ValueError("at least one of the runs must have finished (summary.json), to name the build")
    first = next(iter(finished.values()))
    return [finished.get(run) or summary_from_histories(run, first) for run in runs]


def summary_from_histories(run: Path, like: dict[str, Any]) -> dict[str, Any]:
    """A summary of an unfinished run: the scenarios that finished from their results.json, the others'
    saved histories re-judged with their stored composition; the build, system and profile of `like`
    (a finished run of the same build), which every results.json and history must name as its profile; the
    client its histories name (else like's)."""
    from k6suite_lib.checkers import recheck
    from k6suite_lib.scenario import RESULTS_FILE

    scenarios: dict[str, list[dict[str, Any]]] = {}
    spans = []
    clients = set()
    finished = [json.loads(path.read_text()) for path in sorted(run.glob(f"S*/{RESULTS_FILE}"))]
    def same_profile(named: Any, what: str) -> None:
        if named is not None and named != like["profile"]:
            raise ValueError(f"{what} ran on profile {named!r}, the finished runs on {like['profile']!r}")

    for result in finished:
        same_profile(result.get("profile"), f"{run.name} {result['scenario']}")
        scenarios[result["scenario"]] = result["verdicts"]
        if "started" in result:  # a notebook that failed before it started its scenario has no clock
            spans.append((result["started"], result["started"] + result["duration_s"]))
    for path in sorted(p for p in run.glob("S*/history-*.parquet")
                       if not (p.parent / RESULTS_FILE).is_file()):
        view, verdicts = recheck(path)
        meta = view.meta
        same_profile(meta.get("profile"), f"{path}")
        clients.add(meta.get("client") or DEFAULT_CLIENT)
        rows = json.loads(verdicts.assign(variant=meta["variant"]).to_json(orient="records"))
        scenarios.setdefault(meta["scenario"], []).extend(rows)
        started = float(meta["started_wall"])
        spans.append((started, started + float(meta["duration_s"])))
    if not spans:
        raise ValueError(f"{run}: no summary.json, no scenario's results and no saved history")
    if len(clients) > 1:
        raise ValueError(f"{run}: histories of several clients ({', '.join(sorted(clients))}) in one run")
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    return {"run_id": run.name, "profile": like["profile"], "system": like.get("system"), "build": like.get("build"),
            "client": next(iter(clients), like.get("client") or DEFAULT_CLIENT),
            "started": start, "duration_s": end - start, "unfinished": True,
            "scenarios": [{"scenario": sid, "verdicts": rows} for sid, rows in scenarios.items()]}


def with_settings(run: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with each scenario's client settings: as its result recorded them, else (a run made
    before results recorded them, or unfinished) read from the histories the run saved, with the profile's
    request timeout from the run's manifest where a history does not carry it. A scenario without a history
    (S1's probes; S8 before it recorded its producers') keeps none: its cases read "client settings not
    recorded"."""
    from k6suite_lib.history import load_meta
    from k6suite_lib.workload.config import client_settings

    manifest = json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").is_file() else {}
    timeout = ((manifest.get("profile") or {}).get("client") or {}).get("request_timeout_ms")
    saved: dict[str, dict[str, Any]] = {}
    for path in sorted(run.glob("S*/history-*.parquet")):
        meta = load_meta(path)
        settings = client_settings(meta, timeout)
        if settings is not None and "scenario" in meta and _settings_named(meta, summary.get("client")):
            saved.setdefault(meta["scenario"], {})[meta["variant"]] = settings
    return {**summary, "scenarios": [
        s if "client_settings" in s else {**s, "client_settings": saved.get(s["scenario"], {})}
        for s in summary["scenarios"]]}


def _settings_named(meta: dict[str, Any], run_client: str | None) -> bool:
    """Whether a history's metadata names the settings its producers ran with. Not S3's read-your-writes before
    its metadata carried request_timeout_ms: its producer did not take the settings the metadata names
    (before 1ad1005 it ran non-idempotent under metadata saying idempotent), and under another run client
    the metadata named that library, not kafka-python, which it always is."""
    if (meta["scenario"], _kind(meta["variant"])) == ("S3", "read-your-writes") and "request_timeout_ms" not in meta:
        return False
    return meta["client"] == client_of(meta["scenario"], meta["variant"], run_client)


def _load_samples(run: Path, summary: dict[str, Any]) -> list[float]:
    """The 1-minute load averages sampled while this run ran (none when the run recorded none)."""
    path = run / LOAD_FILE
    if not path.is_file():
        return []
    start, end = summary["started"], summary["started"] + summary["duration_s"]
    return [float(fields[1]) for fields in (line.split() for line in path.read_text().splitlines())
            if len(fields) >= 2 and start <= float(fields[0]) <= end]


# what else in a profile changes a verdict (of the client settings, all but the library: cases are per client)
PROFILE_SETTINGS = ("target_kind", "embedded", "client", "faults")


def _topology(runs: list[Path]) -> dict[str, Any] | None:
    """The embedded stack's shape (brokers, dedicated controllers), read from every run's manifest: runs of
    different shapes or profile settings (client settings, faults) are refused, one record is of one
    baseline; runs of different recording clients are not (each client has its own cases). A run
    without a manifest (unfinished) is held to its profile's results instead (_summaries_of)."""
    shapes = {}
    for run in runs:
        if (run / "manifest.json").is_file():
            profile = json.loads((run / "manifest.json").read_text()).get("profile") or {}
            key = {"topology": topology(profile.get("stack")), **{k: profile.get(k) for k in PROFILE_SETTINGS}}
            if isinstance(key["client"], dict):  # the recording library keys the cases instead
                key["client"] = {k: v for k, v in key["client"].items() if k != "library"}
            shapes.setdefault(json.dumps(key, sort_keys=True), []).append(run.name)
    if len(shapes) > 1:
        raise ValueError("the runs differ in topology or profile settings; calibrate one at a time: "
                         + "; ".join(f"{', '.join(names)}: {key}" for key, names in shapes.items()))
    return json.loads(next(iter(shapes)))["topology"] if shapes else None
