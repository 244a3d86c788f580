"""The trust matrix: the same scenarios on several systems, side by side.

``run_matrix`` runs the chosen scenarios on each profile into one archive (a folder per system,
each a complete single-system archive with its own report), then writes at the top: matrix.json,
junit.xml (every system's checks) and report.html, whose rows are the critical questions,
expandable to every check, whose columns are the systems, and whose cells say PASS / FAIL /
ALLOWED / NOT TESTED / NOT PROMISED with the measured value and a link to the evidence. A check is
calibrated when it passes on a system that keeps the promise and fails on one that breaks it; the
matrix is where that shows.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from jinja2 import Environment, select_autoescape

from k6suite_lib.report import (
    EXIT_CODES,
    FAILED_BESIDE,
    QUESTIONS,
    STATUS_ORDER,
    answer,
    junit_suites,
    run_result,
    severity,
)
from k6suite_lib.secrets import redact

ANSWER_ORDER = ("NO", "YES", "NOT TESTED", "NOT PROMISED")


def run_matrix(profile_names: list[str], scenarios: list[str] | None = None, tier: str = "smoke",
               out_root: Path | None = None, cell_timeout_s: int = 1800, parameters: dict[str, Any] | None = None,
               log: Callable[[str], None] = print, builds: dict[str, str] | None = None,
               clients: list[str] | None = None):
    """Run the scenarios on every profile, one after the other (one embedded stack at a time: the
    machine has two cores), and render the matrix. Exit code as a single run's (report.EXIT_CODES):
    1 when any system failed, else 3 when any left a question NOT TESTED, else 0.
    Profiles of one system with different builds (their `build:`) make a matrix whose columns are builds;
    builds (--build) go to every profile of the system they name. clients (--clients): every system runs
    once per recording client library, a column per system and client (<profile>+<client>)."""
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import RunOutcome, _write_json, run_suite
    from k6suite_lib.stack.layout import outputs_root
    from k6suite_lib.workload import new_run_id

    names = [load_profile(name).name for name in profile_names]  # a typo fails before anything starts
    if len(set(names)) != len(names) or len(set(clients or [])) != len(clients or []):
        raise ValueError(f"each profile and client once, please: {', '.join(profile_names + (clients or []))}")
    cells = [(name, given, client) for name, given in zip(names, profile_names, strict=True)
             for client in (clients or [None])]
    run_id = new_run_id()
    run_dir = (out_root or outputs_root()) / run_id
    started = time.time()
    summaries = []
    for index, (name, given, client) in enumerate(cells, 1):
        column = f"{name}+{client}" if client else name
        log(f"=== system {index}/{len(cells)}: {column}")
        # the clients of one system share its stack: a run id (so topics and record identities) per client,
        # else a second client writes into the first one's topics and reads its records as its own
        outcome = run_suite(given, scenarios, tier, cell_timeout_s=cell_timeout_s, parameters=parameters, log=log,
                            run_id=f"{run_id}-{client}" if client else run_id, run_dir=run_dir / column,
                            builds=builds, client=client)
        summaries.append(outcome.summary)
    matrix = build_matrix(summaries, run_id, tier, started)
    _write_json(run_dir / "matrix.json", matrix)
    (run_dir / "junit.xml").write_text(matrix_junit(summaries, run_id))
    (run_dir / "report.html").write_text(matrix_html(matrix))
    exit_code = EXIT_CODES[matrix["result"]]
    log(f"{matrix['result']}: matrix of {', '.join(names)} — report: {run_dir / 'report.html'}")
    return RunOutcome(run_id=run_id, run_dir=run_dir, exit_code=exit_code, summary=matrix)


def _shown_verdicts(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """A scenario's verdicts as the matrix shows them: repeated variants folded into k of N."""
    return scenario.get("aggregate") or scenario["verdicts"]


def _own(in_use: dict[str, dict[str, Any]], summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The builds in use as one column sees them: the matrix's, with the column's own system as that column
    ran it (two Kafka columns of different topologies must each be held against their own)."""
    from k6suite_lib import calibration

    own = summary.get("build") or {}
    return {**in_use, **{system: build for system, build in calibration.baselines_in_use([summary]).items()
                         if system == own.get("system")}}


def _first_of_each_client(summaries: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """client -> the first column recorded with it that has this check."""
    columns: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        if summary["profile"] in row["cells"]:
            columns.setdefault(summary.get("client", "kafka-python"), summary)
    return columns


def _settings(summary: dict[str, Any], row: dict[str, Any]) -> dict[str, Any] | None:
    """The client settings a column recorded for a row's scenario and variant."""
    from k6suite_lib.calibration import settings_in

    return next((settings_in(s, row["variant"]) for s in summary["scenarios"] if s["scenario"] == row["scenario"]),
                None)


def build_matrix(summaries: list[dict[str, Any]], run_id: str, tier: str, started: float,
                 records: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Questions and checks by system, each cell with its status, measurement and evidence link; each check
    with its record on the baseline (records, default: the committed calibration/), each NO that rests
    only on checks the baseline does not pass every time with its caveat."""
    from k6suite_lib import calibration
    from k6suite_lib.report import question_failures

    records = calibration.load_records() if records is None else records
    in_use = calibration.baselines_in_use(summaries)
    systems = [{"profile": s["profile"], "system": s.get("system", ""), "client": s.get("client", "kafka-python"),
                "build": s.get("build"),
                "result": run_result(s), "counts": s["counts"],
                "not_promised": s.get("not_promised", {}), "target": s.get("target", {}),
                "stack_error": s.get("stack_error", "")} for s in summaries]
    questions = []
    for question in QUESTIONS:
        cells = {}
        scenario_ids = question.scenarios
        for summary in summaries:
            result, why = answer(summary, question)
            ran = any(s["scenario"] == scenario_ids[0] for s in summary["scenarios"])  # else no such anchor
            cells[summary["profile"]] = {"answer": result, "why": why, "link": f"{summary['profile']}/report.html"
                                         + (f"#{scenario_ids[0]}" if ran else ""),
                                         "caveat": calibration.caveat(result, question_failures(summary, question),
                                                                      records, _own(in_use, summary),
                                                                      summary.get("client"))}
        checks = _checks(summaries, question)
        for row in checks:  # the record of each client the row's verdicts were recorded with
            row["calibration"] = {
                calibration.client_of(row["scenario"], row["variant"], client):
                    calibration.verdict_note(records, _own(in_use, summary), row["scenario"],
                                             {**row, "client_settings": _settings(summary, row)}, client)
                for client, summary in _first_of_each_client(summaries, row).items()}
            row["client_dependent"] = client_dependent(row, systems)
        questions.append({"question": question.text, "scenarios": list(scenario_ids), "cells": cells,
                          "client_dependent": client_dependent({"cells": {p: {"status": c["answer"]}
                                                                          for p, c in cells.items()}}, systems),
                          "checks": checks})
    results = {s["result"] for s in systems}
    result = "FAIL" if "FAIL" in results else "NOT TESTED" if "NOT TESTED" in results else "PASS"
    return {"run_id": run_id, "tier": tier, "started": started, "duration_s": round(time.time() - started, 2),
            "systems": systems, "questions": questions, "result": result, "passed": result == "PASS"}


def client_dependent(row: dict[str, Any], systems: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per system run with several clients whose outcomes differ for this row: client -> status. A
    finding that depends on the client shows here; one every client sees (or one client) does not."""
    by_system: dict[str, dict[str, str]] = {}
    for s in systems:
        cell = row["cells"].get(s["profile"])
        if cell is not None:
            by_system.setdefault(s["profile"].split("+")[0], {})[s["client"]] = cell["status"]
    return {system: statuses for system, statuses in by_system.items() if len(set(statuses.values())) > 1}


def _checks(summaries: list[dict[str, Any]], question) -> list[dict[str, Any]]:
    """Every check a question counts, one row per (scenario, variant, check), a cell per system; the
    failures first, the worst of them first."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for summary in summaries:
        for scenario in summary["scenarios"]:
            if scenario["scenario"] not in question.scenarios:
                continue
            link = f"{summary['profile']}/{scenario.get('folder', '')}/{scenario.get('notebook_html', 'results.json')}"
            for v in _shown_verdicts(scenario):
                if not (question.counts(v) or v["check"] in question.deciding):
                    continue
                key = (scenario["scenario"], v["variant"], v["check"])
                row = rows.setdefault(key, {"scenario": key[0], "variant": key[1], "check": key[2],
                                            "requirement": v["requirement"], "cells": {}})
                row["cells"][summary["profile"]] = {"status": v["status"], "measured": v["measured"],
                                                    "evidence": v["evidence"], "link": link}
    return sorted(rows.values(), key=lambda row: (min(STATUS_ORDER.get(c["status"], 9) for c in row["cells"].values()),
                                                  severity(row)))


def matrix_junit(summaries: list[dict[str, Any]], run_id: str) -> str:
    """Every system's checks in one JUnit file; test suites named by system and scenario."""
    suites = ET.Element("testsuites", name=f"k6suite matrix {run_id}")
    for summary in summaries:
        for suite in junit_suites(summary, prefix=f"{summary['profile']}."):
            suites.append(suite)
    ET.indent(suites)
    return redact(ET.tostring(suites, encoding="unicode", xml_declaration=True))


STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em;font-size:.9em;table-layout:fixed}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3}.PASS,.YES{background:#e3f4e1}.FAIL,.NO{background:#fbe1e1}
.ALLOWED{background:#fff4d6}.NOTTESTED{background:#eee;color:#555}.NOTPROMISED{background:#eef3fb;color:#555}
.small{font-size:.8em;color:#555}.warn{color:#a15c00}details summary{cursor:pointer}
</style>"""  # the compare page (compare.py) looks the same

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>K6SUITE trust matrix {{ m.run_id }}</title>
""" + STYLE + """</head><body>
<h1>K6SUITE trust matrix</h1>
<p>Run <code>{{ m.run_id }}</code>, tier <code>{{ m.tier }}</code>, started {{ started }}, {{ '%.0f' % m.duration_s }} s.
The same scenarios, workloads, faults and checks on every system. A check earns trust when it passes where the promise
is kept and fails where it is broken.</p>
<h2>Systems</h2>
<table><tr><th>system</th><th>result</th><th>checks</th><th>promises judged</th></tr>
{% for s in m.systems %}<tr><td><a href="{{ s.profile }}/report.html">{{ s.profile }}</a> ({{ s.build.label if s.build else s.system }}){% if s.build %}<br><span class="small">source {{ s.build.source }}{% if s.build.commit %}, commit {{ s.build.commit[:12] }}{% endif %}{% if s.build.dirty %}, uncommitted changes{% endif %}; sha256 {% for name, sha in s.build.binaries.items() %}{{ name }} {{ sha[:12] }}{% if not loop.last %}, {% endif %}{% endfor %}</span>{% endif %}</td>
<td class="{{ s.result|replace(' ', '') }}">{{ s.result }}{% if s.stack_error %}<br><span class="small">{{ s.stack_error }}</span>{% endif %}</td>
<td>{% for k, v in s.counts.items() %}{{ v }} {{ k }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>the trust contract (F1–F7, NFR1–NFR5){% if s.not_promised %}, except:<ul class="small">{% for req, why in s.not_promised.items() %}<li><b>{{ req }}</b>: {{ why }}</li>{% endfor %}</ul>{% else %}, all of it{% endif %}</td></tr>{% endfor %}
</table>
<h2>Critical questions</h2>
<table><tr><th style="width:28%">question</th>{% for s in m.systems %}<th>{{ s.profile }}{% if s.build %}<br><span class="small">{{ s.build.label }}</span>{% endif %}</th>{% endfor %}</tr>
{% for q in m.questions %}<tr><td><details><summary>{{ q.question }} <span class="small">({{ q.scenarios|join(', ') }}, {{ q.checks|length }} checks)</span></summary>
<table><tr><th style="width:40%">check</th>{% for s in m.systems %}<th>{{ s.profile }}</th>{% endfor %}</tr>
{% for c in q.checks %}<tr><td>{{ c.scenario }} {{ c.variant }}: {{ c.check }} <span class="small">{{ c.requirement }}</span>{% for client, n in c.calibration.items() %}<br><span class="small{% if n.stale or n.shaky or not n.calibrated %} warn{% endif %}">{{ n.text }}</span>{% endfor %}</td>
{% for s in m.systems %}{% set cell = c.cells.get(s.profile) %}{% if cell %}<td class="{{ cell.status|replace(' ', '') }}"><a href="{{ cell.link }}">{{ cell.status }}</a><br><span class="small">{{ cell.measured }}</span></td>{% else %}<td class="NOTTESTED">not run</td>{% endif %}{% endfor %}</tr>{% endfor %}
</table></details></td>
{% for s in m.systems %}{% set cell = q.cells[s.profile] %}<td class="{{ cell.answer|replace(' ', '') }}"><a href="{{ cell.link }}"><b>{{ cell.answer }}</b></a>{% if cell.why.startswith(failed_beside) %} <span class="FAIL">(the scenario FAILed)</span>{% endif %}{% if cell.caveat %} <span class="warn">({{ cell.caveat }})</span>{% endif %}<br><span class="small">{{ cell.why }}</span>{% set dep = q.client_dependent.get(s.profile.split('+')[0]) %}{% if dep %}<br><span class="small">depends on the client: {% for c, a in dep.items() %}{{ c }} {{ a }}{% if not loop.last %}, {% endif %}{% endfor %}</span>{% endif %}</td>{% endfor %}</tr>{% endfor %}
</table>
<p class="small">Each system's folder holds its own report, executed notebooks, histories (re-judge with
<code>k6suite check</code>), storage listings, plots, stack logs and manifest. matrix.json and junit.xml hold this table.</p>
</body></html>
"""


def matrix_html(matrix: dict[str, Any]) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    started = dt.datetime.fromtimestamp(matrix["started"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return redact(env.from_string(TEMPLATE).render(m=matrix, started=started, failed_beside=FAILED_BESIDE))


def load_matrix(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "matrix.json").read_text())
