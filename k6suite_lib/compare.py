"""Compare runs: what a change fixed, what it regressed, what it stopped testing, what moved.

Inputs are run archives: two runs (A, the baseline, and B), or one matrix run whose columns are
several builds of the same system (each compared with the first). The runs become the columns of
a trust matrix (``matrix.build_matrix``), so questions and checks line up exactly as on the matrix
page; then every cell is set against the baseline's:

- regressed: PASS or ALLOWED -> FAIL (a question: YES -> NO);
- newly failing: FAIL where the baseline judged nothing (NOT TESTED, NOT PROMISED or not run);
- fixed: FAIL -> PASS or ALLOWED (NO -> YES);
- still failing: FAIL -> FAIL (NO -> NO);
- newly not tested: judged in the baseline, NOT TESTED or not run now;
- newly not promised: judged in the baseline (PASS, ALLOWED or FAIL; YES or NO), NOT PROMISED now. It
  gates like a regression: a new waiver can hide one.

Questions are tallied apart from checks, and both decide the exit code: 1 when a check or a question
regressed, newly fails or is newly not promised, 3 when only something became NOT TESTED, else 0.

Measurements that describe rather than judge are compared against their run-to-run spread: every
time a check measures in seconds (the longest gap between acknowledgements, acknowledgements
resuming after a fault), p99 publish and end-to-end latency, and the count of each anomaly class.
Where both runs repeated a variant (``--param repeats=N``) the spread is the larger range of the
two runs' repeats; otherwise the default tolerance (DEFAULT_RELATIVE of the baseline, at least the
unit's floor in FLOORS) stands in for it. Moved measurements are reported, not gated: the checks'
own thresholds decide pass or fail, and a 2-core machine shared with others is noisy.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from k6suite_lib.checkers import ANOMALIES
from k6suite_lib.matrix import STYLE, build_matrix
from k6suite_lib.secrets import redact

REGRESSED, NEWLY_FAILING, FIXED, STILL_FAILING, NEWLY_NOT_TESTED, NEWLY_NOT_PROMISED = (
    "regressed", "newly failing", "fixed", "still failing", "newly not tested", "newly not promised")
CHANGES = (REGRESSED, NEWLY_FAILING, FIXED, STILL_FAILING, NEWLY_NOT_TESTED, NEWLY_NOT_PROMISED)
GATING = (REGRESSED, NEWLY_FAILING, NEWLY_NOT_PROMISED)
# a question's answer as the check status it stands for
ANSWER_STATUS = {"YES": "PASS", "NO": "FAIL", "NOT TESTED": "NOT TESTED", "NOT PROMISED": "NOT PROMISED"}
GOOD, JUDGED = frozenset({"PASS", "ALLOWED"}), frozenset({"PASS", "ALLOWED", "FAIL"})
DEFAULT_RELATIVE = 0.5
FLOORS = {"s": 0.5, "ms": 20.0, "count": 0.0}
LATENCIES = ("publish_ms", "end_to_end_ms")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(s)?\s*$")
_REPEAT = re.compile(r"#\d+$")


@dataclass(frozen=True)
class Column:
    key: str  # unique: the matrix cells are keyed by it
    label: str
    path: Path
    summary: dict[str, Any]


def change(before: str | None, after: str | None) -> str:
    """How a check's status (None: not run) moved from the baseline; '' when nothing that matters did."""
    if before in GOOD and after == "FAIL":
        return REGRESSED
    if before in (None, "NOT TESTED", "NOT PROMISED") and after == "FAIL":
        return NEWLY_FAILING
    if before == "FAIL" and after in GOOD:
        return FIXED
    if before == "FAIL" and after == "FAIL":
        return STILL_FAILING
    if before in JUDGED and after in (None, "NOT TESTED"):
        return NEWLY_NOT_TESTED
    if before in JUDGED and after == "NOT PROMISED":  # a new waiver: what it judged is no longer held
        return NEWLY_NOT_PROMISED
    return ""


def exit_code(tally: dict[str, dict[str, Any]]) -> int:
    """1 when a check or a question regressed, newly fails or is newly not promised in any column; 3
    when only something judged in the baseline is NOT TESTED now; else 0."""
    counts = [counted for column in tally.values() for counted in (column, column["questions"])]
    if any(counted[what] for counted in counts for what in GATING):
        return 1
    return 3 if any(counted[NEWLY_NOT_TESTED] for counted in counts) else 0


def verdict_text(tally: dict[str, dict[str, Any]], code: int) -> str:
    """The one line that says why compare exits as it does."""
    if code == 0:
        return "NOTHING REGRESSED"
    if code == 3:
        return "NOTHING REGRESSED, but something is no longer tested"
    counts = [counted for column in tally.values() for counted in (column, column["questions"])]
    if any(counted[what] for counted in counts for what in (REGRESSED, NEWLY_FAILING)):
        return "REGRESSED"
    return "NEWLY NOT PROMISED: nothing failed, but a new waiver can hide a regression"


def resolve_run(run: str) -> Path:
    """A run id under outputs/ or a path to a run folder."""
    from k6suite_lib.stack.layout import outputs_root

    for path in (Path(run), outputs_root() / run):
        if (path / "summary.json").is_file() or (path / "matrix.json").is_file():
            return path
    raise FileNotFoundError(f"{run}: no run archive there (neither a folder with summary.json or matrix.json "
                            f"nor a run id under {outputs_root()})")


def load_columns(runs: list[str]) -> list[Column]:
    """Two runs (A, B), or one matrix run with two or more systems (its columns, in order)."""
    paths = [resolve_run(run) for run in runs]
    if len(paths) == 1:
        path = paths[0]
        if not (path / "matrix.json").is_file():
            raise ValueError(f"{runs[0]} is a single run: give a second run to compare with, or a matrix run")
        matrix = json.loads((path / "matrix.json").read_text())
        profiles = [s["profile"] for s in matrix["systems"]]
        if len(profiles) < 2:
            raise ValueError(f"{runs[0]} has one column ({', '.join(profiles)}): nothing to compare")
        return [Column(p, f"{p}: {describe(summary)}", path / p, summary)
                for p in profiles for summary in [json.loads((path / p / "summary.json").read_text())]]
    if len(paths) != 2:
        raise ValueError(f"compare takes two runs (A B) or one matrix run, got {len(paths)}")
    columns = []
    for key, run, path in zip(("A", "B"), runs, paths, strict=True):
        if not (path / "summary.json").is_file():
            raise ValueError(f"{run} is a matrix run: name one of its systems' folders (e.g. {run}/<profile>), "
                             "or compare the matrix's columns with `k6suite compare MATRIX-RUN`")
        summary = json.loads((path / "summary.json").read_text())
        columns.append(Column(key, f"{key}: {describe(summary)}", path, summary))
    return columns


def describe(summary: dict[str, Any]) -> str:
    """Which run and which build: profile, run id, and the build when the archive names one."""
    text = f"{summary.get('profile', '?')} run {summary.get('run_id', '?')}, tier {summary.get('tier', '?')}"
    build = build_text(summary.get("build"))
    return f"{text}, {build}" if build else text


def build_text(build: Any) -> str:
    """The build an archive names (absent in older archives): version, commit, dirty; one per system."""
    if not isinstance(build, dict):
        return ""
    if not any(key in build for key in ("version", "commit", "source")):  # one build object per system
        return "; ".join(filter(None, (build_text(b) for b in build.values())))
    if build.get("label"):  # the builds' own short name: 'kafscale v1.6.0-76-g7aa2a11 (dirty)'
        return str(build["label"])
    commit = str(build.get("commit") or "")[:12]
    parts = [str(build.get("system") or ""), str(build.get("version") or build.get("source") or "")]
    if commit:
        parts.append(f"commit {commit}" + (" (dirty)" if build.get("dirty") else ""))
    return " ".join(p for p in parts if p)


def _statuses(cells: dict[str, dict[str, Any]], key: str, field: str) -> str | None:
    cell = cells.get(key)
    return None if cell is None else ANSWER_STATUS.get(cell[field], cell[field])


def measurements(summary: dict[str, Any]) -> dict[tuple[str, str, str], tuple[str, list[float]]]:
    """(scenario, variant, metric) -> (unit, values): one value per repeat of the variant."""
    found: dict[tuple[str, str, str], tuple[str, list[float]]] = {}

    def add(scenario: str, variant: str, metric: str, unit: str, value: float | None) -> None:
        if value is not None and not math.isnan(value):
            found.setdefault((scenario, _REPEAT.sub("", variant), metric), (unit, []))[1].append(value)

    for result in summary.get("scenarios", []):
        sid = result["scenario"]
        for v in result.get("verdicts", []):
            if v["status"] not in JUDGED and v["status"] != "NOT PROMISED":
                continue
            number = _NUMBER.match(str(v["measured"]))
            if number and v["check"] in ANOMALIES:
                add(sid, v["variant"], f"{v['check']} (count)", "count", float(number.group(1)))
            elif number and number.group(2):
                add(sid, v["variant"], v["check"], "s", float(number.group(1)))
        for key, rows in (result.get("measurements") or {}).items():
            if not key.endswith(".latency_ms") or not isinstance(rows, list):
                continue
            for row in rows:
                if row.get("index") in LATENCIES and row.get("p99") is not None:
                    add(sid, key.removesuffix(".latency_ms"), f"p99 {row['index']}", "ms", float(row["p99"]))
    return found


def moved(before: list[float], after: list[float], unit: str) -> dict[str, Any]:
    """The medians' difference against the spread (from repeats when both runs have them)."""
    a, b = statistics.median(before), statistics.median(after)
    if len(before) > 1 and len(after) > 1:
        tolerance, source = max(max(before) - min(before), max(after) - min(after)), "repeats"
    else:
        tolerance, source = max(DEFAULT_RELATIVE * abs(a), FLOORS[unit]), "default tolerance"
    delta = b - a
    direction = "" if abs(delta) <= tolerance else ("worse" if delta > 0 else "better")  # more is worse for all
    return {"before": round(a, 3), "after": round(b, 3), "delta": round(delta, 3), "tolerance": round(tolerance, 3),
            "spread_from": source, "moved": direction}


def compare(columns: list[Column], out_dir: Path) -> dict[str, Any]:
    """Every column against the first: questions, checks and measurements, with what changed."""
    summaries = []
    for column in columns:
        summary = copy.deepcopy(column.summary)
        summary["profile"] = column.key  # build_matrix keys its cells by profile
        summaries.append(summary)
    matrix = build_matrix(summaries, "compare", summaries[-1].get("tier", ""), time.time())
    base, others = columns[0].key, [c.key for c in columns[1:]]
    prefix = {c.key: Path(os.path.relpath(c.path, out_dir)).as_posix() for c in columns}
    tally = {key: {**dict.fromkeys([*CHANGES, "moved"], 0), "questions": dict.fromkeys(CHANGES, 0)} for key in others}
    for question in matrix["questions"]:
        _relink(question["cells"], prefix)
        question["changes"] = {key: change(_statuses(question["cells"], base, "answer"),
                                           _statuses(question["cells"], key, "answer")) for key in others}
        for key, what in question["changes"].items():
            if what:
                tally[key]["questions"][what] += 1
        for check in question["checks"]:
            _relink(check["cells"], prefix)
            check["changes"] = {key: change(_statuses(check["cells"], base, "status"),
                                            _statuses(check["cells"], key, "status")) for key in others}
            for key, what in check["changes"].items():
                if what:
                    tally[key][what] += 1
        question["changed"] = any(question["changes"].values()) or any(
            what for check in question["checks"] for what in check["changes"].values())
    measured = [measurements(c.summary) for c in columns]
    rows = []
    for metric_key, (unit, values) in measured[0].items():
        row = {"scenario": metric_key[0], "variant": metric_key[1], "metric": metric_key[2], "unit": unit,
               "values": {base: values}, "changes": {}}
        for key, found in zip(others, measured[1:], strict=True):
            if metric_key in found:
                row["values"][key] = found[metric_key][1]
                row["changes"][key] = moved(values, found[metric_key][1], unit)
                tally[key]["moved"] += bool(row["changes"][key]["moved"])
        rows.append(row)
    code = exit_code(tally)
    return {"created": time.time(), "baseline": base,
            "columns": [{"key": c.key, "label": c.label, "path": str(c.path), "link": f"{prefix[c.key]}/report.html",
                         "profile": c.summary.get("profile"), "run_id": c.summary.get("run_id"),
                         "build": c.summary.get("build"), "counts": c.summary.get("counts", {})} for c in columns],
            "questions": matrix["questions"], "measurements": rows, "tally": tally,
            "regressed": code == 1, "exit_code": code, "verdict": verdict_text(tally, code)}


def _relink(cells: dict[str, dict[str, Any]], prefix: dict[str, str]) -> None:
    """The matrix links into <profile>/...; here each column's archive lies elsewhere."""
    for key, cell in cells.items():
        cell["link"] = prefix[key] + cell["link"].removeprefix(key)


def summary_text(result: dict[str, Any], limit: int = 15) -> str:
    """What a terminal (or a CI log) shows: per compared column its tally, then the changed checks."""
    lines = [f"baseline {result['columns'][0]['label']}"]
    for column in result["columns"][1:]:
        key, tally = column["key"], result["tally"][column["key"]]
        lines.append(f"\n{column['label']}\n  checks: " + ", ".join(f"{tally[what]} {what}" for what in CHANGES)
                     + f"; measurements: {tally['moved']} moved\n  questions: "
                     + ", ".join(f"{n} {what}" for what, n in tally["questions"].items()))
        for question in result["questions"]:
            what = question["changes"].get(key)
            if what and what != STILL_FAILING:
                lines.append(f"  QUESTION {what.upper()}: {question['question']} "
                             f"({_answer_text(question['cells'], result['baseline'])} -> "
                             f"{_answer_text(question['cells'], key)})")
        for what in CHANGES:
            if what == STILL_FAILING:
                continue
            changed = [(q, c) for q in result["questions"] for c in q["checks"] if c["changes"].get(key) == what]
            for question, check in changed[:limit]:
                lines.append(f"  {what.upper()}: {check['scenario']} {check['variant']}: {check['check']} "
                             f"({_cell_text(check['cells'], result['baseline'])} -> {_cell_text(check['cells'], key)})"
                             f"  [{question['question']}]")
            if len(changed) > limit:
                lines.append(f"  ... and {len(changed) - limit} more {what}")
        for row in result["measurements"]:
            shift = row["changes"].get(key)
            if shift and shift["moved"]:
                lines.append(f"  MOVED ({shift['moved']}): {row['scenario']} {row['variant']}: {row['metric']} "
                             f"{shift['before']:g} -> {shift['after']:g} {row['unit']} (tolerance {shift['tolerance']:g}, "
                             f"{shift['spread_from']})")
    lines.append(f"\n{result['verdict']}")
    return "\n".join(lines)


def _answer_text(cells: dict[str, dict[str, Any]], key: str) -> str:
    cell = cells.get(key)
    return "not asked" if cell is None else cell["answer"]


def _cell_text(cells: dict[str, dict[str, Any]], key: str) -> str:
    cell = cells.get(key)
    return "not run" if cell is None else f"{cell['status']} {cell['measured']}"


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>K6SUITE compare</title>
""" + STYLE + """<style>.regressed,.newlyfailing,.newlynotpromised{background:#f6c6c6;font-weight:bold}.fixed{background:#c8ecc4}
.stillfailing{background:#fbe1e1}.newlynottested{background:#ddd}.worse{background:#fff0c2}.better{background:#e3f4e1}
</style></head><body>
<h1>K6SUITE compare: {{ r.verdict }}</h1>
<p>Created {{ created }}. Every column set against the baseline <b>{{ r.columns[0].key }}</b>. Regressed: PASS&rarr;FAIL
(YES&rarr;NO); newly failing: FAIL where the baseline judged nothing; fixed: FAIL&rarr;PASS; newly not tested: judged in
the baseline, not now; newly not promised: judged in the baseline, waived now (it gates: a new waiver can hide a
regression). Questions are counted apart from checks. Measurements move when the medians differ by more than the spread of the repeats (or the default
tolerance where a run has no repeats).</p>
<h2>Runs</h2>
<table><tr><th style="width:8%">column</th><th style="width:42%">run</th><th>checks</th><th>against {{ r.columns[0].key }}</th></tr>
{% for c in r.columns %}{% set t = r.tally.get(c.key) %}<tr><td><a href="{{ c.link }}">{{ c.key }}</a></td><td>{{ c.label }}</td>
<td>{% for k, v in c.counts.items() %}{{ v }} {{ k }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td class="{{ 'regressed' if gates.get(c.key) else '' }}">{% if t %}checks: {% for w in changes %}{{ t[w] }} {{ w }}{% if not loop.last %}, {% endif %}{% endfor %}; measurements: {{ t.moved }} moved<br>questions: {% for w, n in t.questions.items() %}{{ n }} {{ w }}{% if not loop.last %}, {% endif %}{% endfor %}{% else %}baseline{% endif %}</td></tr>{% endfor %}
</table>
<h2>Critical questions</h2>
<table><tr><th style="width:28%">question</th>{% for c in r.columns %}<th>{{ c.key }}</th>{% endfor %}</tr>
{% for q in r.questions %}<tr><td><details {{ 'open' if q.changed else '' }}><summary>{{ q.question }} <span class="small">({{ q.scenarios|join(', ') }}, {{ q.checks|length }} checks)</span></summary>
<table><tr><th style="width:40%">check</th>{% for c in r.columns %}<th>{{ c.key }}</th>{% endfor %}</tr>
{% for k in q.checks %}<tr><td>{{ k.scenario }} {{ k.variant }}: {{ k.check }} <span class="small">{{ k.requirement }}</span></td>
{% for c in r.columns %}{% set cell = k.cells.get(c.key) %}{% set what = k.changes.get(c.key, '') %}{% if cell %}<td class="{{ what|replace(' ', '') if what and what != 'still failing' else cell.status|replace(' ', '') }}"><a href="{{ cell.link }}">{{ cell.status }}</a>{% if what %} <b>{{ what }}</b>{% endif %}<br><span class="small">{{ cell.measured }}</span></td>{% else %}<td class="{{ what|replace(' ', '') if what else 'NOTTESTED' }}">not run{% if what %} <b>{{ what }}</b>{% endif %}</td>{% endif %}{% endfor %}</tr>{% endfor %}
</table></details></td>
{% for c in r.columns %}{% set cell = q.cells[c.key] %}{% set what = q.changes.get(c.key, '') %}<td class="{{ what|replace(' ', '') if what and what != 'still failing' else cell.answer|replace(' ', '') }}"><a href="{{ cell.link }}"><b>{{ cell.answer }}</b></a>{% if what %} {{ what }}{% endif %}<br><span class="small">{{ cell.why }}</span></td>{% endfor %}</tr>{% endfor %}
</table>
<h2>Measurements</h2>
<table><tr><th style="width:40%">measurement</th>{% for c in r.columns %}<th>{{ c.key }}</th>{% endfor %}</tr>
{% for m in r.measurements %}<tr><td>{{ m.scenario }} {{ m.variant }}: {{ m.metric }} <span class="small">{{ m.unit }}</span></td>
{% for c in r.columns %}{% set values = m['values'].get(c.key) %}{% set shift = m.changes.get(c.key) %}<td class="{{ shift.moved if shift else '' }}">{% if values %}{{ values|join(', ') }}{% if shift %}<br><span class="small">{{ '%+g'|format(shift.delta) }} (tolerance {{ '%g'|format(shift.tolerance) }}, {{ shift.spread_from }}){% if shift.moved %} <b>{{ shift.moved }}</b>{% endif %}</span>{% endif %}{% else %}not measured{% endif %}</td>{% endfor %}</tr>{% endfor %}
</table>
<p class="small">compare.json holds this page's data.</p>
</body></html>
"""


def compare_html(result: dict[str, Any]) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    created = dt.datetime.fromtimestamp(result["created"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    gates = {key: exit_code({key: counted}) == 1 for key, counted in result["tally"].items()}
    return redact(env.from_string(TEMPLATE).render(r=result, created=created, changes=CHANGES, gates=gates))


def compare_command(runs: list[str], out_dir: Path | None = None) -> int:
    """`k6suite compare`: write compare.html and compare.json, print the summary, return the exit code."""
    columns = load_columns(runs)
    if out_dir is None:  # B's folder, or the matrix run's
        out_dir = columns[-1].path if len(runs) == 2 else columns[0].path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    result = compare(columns, out_dir)
    (out_dir / "compare.json").write_text(redact(json.dumps(result, indent=2, default=str)))
    (out_dir / "compare.html").write_text(compare_html(result))
    print(summary_text(result))
    print(f"report: {out_dir / 'compare.html'}")
    return result["exit_code"]
