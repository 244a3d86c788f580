"""Reports of a run: the HTML page people read, and JUnit XML for CI.

The HTML report opens with the trust contract's critical questions, each answered yes, no or not
tested and linked to the scenario that decides it; "not tested" is never shown as a pass. Then
every scenario: its verdicts (failures first), its plots, a link to the executed notebook.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from jinja2 import Environment, select_autoescape

from k6suite_lib.checkers import ANOMALIES
from k6suite_lib.checkers.readback import PASSED_ACKS, PAST_ACKS, REACHED
from k6suite_lib.checkers.storage import (
    ACKED_STORED,
    EQUALS_READBACK,
    LOST,
    MISSING,
    NOT_REACHED,
    NOTHING_ELSE,
    UNREADABLE,
)
from k6suite_lib.progress import scenario_times
from k6suite_lib.runner import STACK_CHECK
from k6suite_lib.secrets import redact

DATA_CHECKS = frozenset({*ANOMALIES, "acknowledged sends", REACHED, PAST_ACKS, PASSED_ACKS, ACKED_STORED,
                         NOTHING_ELSE, EQUALS_READBACK, LOST, UNREADABLE, MISSING, NOT_REACHED})
# durability (F3 / F6): acknowledged records held, at their positions, intact; every other data check
# says whether the system serves them (readability, F2 / F3)
DURABLE_CHECKS = frozenset({LOST, ACKED_STORED, NOTHING_ELSE, PAST_ACKS, "position-mismatch", "inconsistent-offsets",
                            "corrupted"})
FAULT_APPLIED = "every fault took effect"  # without it neither broker-death question means anything


def _all(_verdict: dict[str, Any]) -> bool:
    return True


def _endpoint(verdict: dict[str, Any]) -> bool:
    return str(verdict["requirement"]).startswith("F1")


def _data(verdict: dict[str, Any]) -> bool:
    return verdict["check"] in DATA_CHECKS or verdict["check"] == FAULT_APPLIED


def _riding(verdict: dict[str, Any]) -> bool:
    return verdict["check"] not in DATA_CHECKS


def _durable(verdict: dict[str, Any]) -> bool:
    return verdict["check"] in DURABLE_CHECKS or verdict["check"] == FAULT_APPLIED


def _readable(verdict: dict[str, Any]) -> bool:
    return _data(verdict) and verdict["check"] not in DURABLE_CHECKS


# question, scenarios that decide it, which of their checks count
QUESTIONS: tuple[tuple[str, tuple[str, ...], Callable[[dict[str, Any]], bool]], ...] = (
    ("Can clients connect through a single endpoint?", ("S1",), _endpoint),
    ("Does the endpoint speak the protocol honestly and survive what real clients send?", ("S1",),
     lambda v: not _endpoint(v)),
    ("Can operators observe the system, and does it take a connection storm?", ("S2",), _all),
    ("Do clients produce and consume correctly?", ("S3",), _all),
    ("Is acknowledged data durable after broker death?", ("S4",), _durable),
    ("Is acknowledged data readable again after broker death?", ("S4",), _readable),
    ("Do clients ride through broker death (no errors, recovery < 5 s, no rebalance)?", ("S4",), _riding),
    ("Is acknowledged data durable through object-store slowness and outages?", ("S5",), _durable),
    ("Is acknowledged data readable again after object-store slowness and outages?", ("S5",), _readable),
    ("Do clients ride through object-store slowness and outages?", ("S5",), _riding),
    ("Is acknowledged data durable through metadata-store slowness and outages?", ("S5b",), _durable),
    ("Is acknowledged data readable again after metadata-store slowness and outages?", ("S5b",), _readable),
    ("Do clients ride through metadata-store slowness and outages?", ("S5b",), _riding),
    ("Can brokers be added without clients noticing?", ("S6",), _all),
    ("Can brokers be restarted one by one without client errors?", ("S7",), _all),
    ("Do permission boundaries hold?", ("S8",), _all),
)
STATUS_ORDER = {"FAIL": 0, "NOT TESTED": 1, "ALLOWED": 2, "PASS": 3, "NOT PROMISED": 4}


def answer(summary: dict[str, Any], scenario_ids: tuple[str, ...],
           selector: Callable[[dict[str, Any]], bool] = _all) -> tuple[str, str]:
    """'YES', 'NO', 'NOT TESTED' or 'NOT PROMISED', and the measurement that decides it."""
    scenarios = [s for s in summary["scenarios"] if s["scenario"] in scenario_ids]
    verdicts = [v for s in scenarios for v in s["verdicts"] if selector(v)]
    failed = [v for v in verdicts if v["status"] == "FAIL"]
    executed = [v for v in verdicts if v["status"] in ("PASS", "ALLOWED", "FAIL")]
    if not scenarios:
        return "NOT TESTED", f"{', '.join(scenario_ids)} not run"
    if failed:
        return "NO", f"{len(failed)} of {len(executed)} checks failed, e.g. {failed[0]['variant']}: {failed[0]['check']}"
    untested = [v for v in verdicts if v["status"] == "NOT TESTED"]
    missed = [v for v in untested if v["check"] == FAULT_APPLIED]  # a fault that hit nothing answers nothing
    if missed:
        return "NOT TESTED", f"{missed[0]['variant']}: {missed[0]['evidence']}"
    # the runner's check that no component died passes in a scenario that ran nothing: alone it answers nothing
    if not [v for v in executed if v["check"] != STACK_CHECK]:
        own = [v for v in verdicts if v["check"] != STACK_CHECK]
        if own and all(v["status"] == "NOT PROMISED" for v in own):
            return "NOT PROMISED", own[0]["evidence"].split(";")[0]
        return "NOT TESTED", untested[0]["evidence"] if untested else "no check could run"
    return "YES", f"all {len(executed)} executed checks passed" + (f"; {len(untested)} not tested" if untested else "")


def _sorted_verdicts(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(verdicts, key=lambda v: STATUS_ORDER.get(v["status"], 9))


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>K6SUITE {{ s.run_id }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.PASS,.YES{background:#e3f4e1}.FAIL,.NO{background:#fbe1e1}
.ALLOWED{background:#fff4d6}.NOTTESTED{background:#eee;color:#555}.NOTPROMISED{background:#eef3fb;color:#555}
.badge{display:inline-block;padding:.2em .8em;border-radius:.3em;font-weight:bold}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}code{background:#f6f6f6;padding:0 .2em}
details{margin:.5em 0}td.ev{font-family:monospace;font-size:.85em;word-break:break-word}pre{white-space:pre-wrap;overflow-wrap:anywhere}
</style></head><body>
<h1>K6SUITE report <span class="badge {{ 'PASS' if s.passed else 'FAIL' }}">{{ 'PASS' if s.passed else 'FAIL' }}</span></h1>
<p>Run <code>{{ s.run_id }}</code>, profile <code>{{ s.profile }}</code>, tier <code>{{ s.tier }}</code>,
started {{ started }}, {{ '%.0f' % s.duration_s }} s. Checks: {{ s.counts.PASS }} passed, {{ s.counts.FAIL }} failed,
{{ s.counts.ALLOWED }} allowed, {{ s.counts['NOT TESTED'] }} not tested, {{ s.counts['NOT PROMISED'] }} not promised.</p>
{% if s.build %}<p>Build: <b>{{ s.build.label }}</b> (source <code>{{ s.build.source }}</code>{% if s.build.commit %}, commit <code>{{ s.build.commit }}</code>{% endif %}{% if s.build.dirty is not none %}, {{ 'uncommitted changes' if s.build.dirty else 'clean tree' }}{% endif %}; sha256 {% for name, sha in s.build.binaries.items() %}{{ name }} <code>{{ sha[:16] }}</code>{% if not loop.last %}, {% endif %}{% endfor %}){% if s.learned_at_start and (s.learned_at_start.client_caps or s.learned_at_start.notes) %}. Learned at start: {% if s.learned_at_start.client_caps %}client version caps {{ s.learned_at_start.client_caps }} ({{ s.learned_at_start.caps_evidence|join('; ') }}){% endif %}{% for note in s.learned_at_start.notes or [] %}; {{ note }}{% endfor %}{% endif %}.</p>{% endif %}
{% if s.stack_error %}<p class="FAIL">The run could not continue: <code>{{ s.stack_error }}</code></p>{% endif %}
<p>Promises judged: the trust contract (F1–F7, NFR1–NFR5){% if s.not_promised %}, except what this system never promised
(its checks are shown as NOT PROMISED, with what they measured):</p><ul>{% for req, why in s.not_promised.items() %}<li><b>{{ req }}</b>: {{ why }}</li>{% endfor %}</ul>{% else %}, all of it.</p>{% endif %}
<h2>Critical questions</h2>
<table><tr><th>Question</th><th>Answer</th><th>Decided by</th><th>Evidence</th></tr>
{% for q in questions %}<tr><td>{{ q.question }}</td><td class="{{ q.answer|replace(' ', '') }}"><b>{{ q.answer }}</b></td>
<td>{% for sid in q.scenarios %}{% if sid in ran %}<a href="#{{ sid }}">{{ sid }}</a>{% else %}{{ sid }} (not run){% endif %} {% endfor %}</td><td>{{ q.why }}</td></tr>{% endfor %}
</table>
<h2>Target</h2>
<table>{% for k, v in target %}<tr><th>{{ k }}</th><td class="ev">{{ v }}</td></tr>{% endfor %}</table>
{% if times is not none %}<h2 id="time">Where the time went</h2>
<p>Seconds per phase of each scenario, summed over its variants; total is the scenario's wall time in the runner.</p>
<table><tr><th>scenario</th>{% for c in times.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for sid, row in times.iterrows() %}<tr><td><a href="#{{ sid }}">{{ sid }}</a></td>{% for c in times.columns %}<td>{{ '%.1f' % row[c] }}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
{% for sc in s.scenarios %}
<h2 id="{{ sc.scenario }}">{{ sc.scenario }} — {{ sc.title }}
<span class="badge {{ 'PASS' if sc.passed else 'FAIL' }}">{{ 'PASS' if sc.passed else 'FAIL' }}</span></h2>
<p>{{ '%.0f' % sc.duration_s }} s.
{% if sc.notebook_html %}<a href="{{ sc.folder }}/{{ sc.notebook_html }}">executed notebook (HTML)</a>,
<a href="{{ sc.folder }}/{{ sc.notebook }}">.ipynb</a>, {% endif %}
<a href="{{ sc.folder }}/results.json">results.json</a>.
{% if sc.healed_after %}<br>After this scenario the embedded stack needed repair (dead processes restarted, a filled etcd cleared): {{ sc.healed_after|join(', ') }}.{% endif %}
{% if sc.unhealthy_after %}<br><strong>After this scenario the embedded stack was unhealthy</strong>, so later scenarios ran on a degraded stack: {% for name, why in sc.unhealthy_after.items() %}{{ name }} ({{ why }}){% if not loop.last %}; {% endif %}{% endfor %}.{% endif %}</p>
{% if sc.aggregate %}<p>Repeated variants, folded: a probabilistic failure shows as k of N.</p>
<table><tr><th>variant</th><th>check</th><th>req.</th><th>repeats</th><th>status</th><th>evidence (first failure)</th></tr>
{% for v in sort(sc.aggregate) %}<tr><td>{{ v.variant }}</td><td>{{ v.check }}</td><td>{{ v.requirement }}</td><td>{{ v.measured }}</td>
<td class="{{ v.status|replace(' ', '') }}">{{ v.status }}</td><td class="ev">{{ v.evidence }}</td></tr>{% endfor %}</table>
<details><summary>every repeat</summary>{% endif %}
<table><tr><th>variant</th><th>check</th><th>req.</th><th>measured</th><th>threshold</th><th>status</th><th>evidence</th></tr>
{% for v in sort(sc.verdicts) %}<tr><td>{{ v.variant }}</td><td>{{ v.check }}</td><td>{{ v.requirement }}</td>
<td>{{ v.measured }}</td><td>{{ v.threshold }}</td><td class="{{ v.status|replace(' ', '') }}">{{ v.status }}</td>
<td class="ev">{{ v.evidence }}</td></tr>{% endfor %}</table>{% if sc.aggregate %}</details>{% endif %}
{% for a in sc.artifacts if a.endswith('.png') %}<img src="{{ sc.folder }}/{{ a }}" alt="{{ a }}">{% endfor %}
{% if sc.measurements %}<details><summary>measurements</summary><pre>{{ dump(sc.measurements) }}</pre></details>{% endif %}
{% endfor %}
<p style="color:#777">Archive: summary.json, junit.xml, manifest.json (versions and sha256 of every file), stack/ (process logs).
Re-judge any history with <code>k6suite check &lt;folder&gt;/history-&lt;variant&gt;.parquet</code>.</p>
</body></html>
"""


def html_report(summary: dict[str, Any], run_dir: Path) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    questions = []
    for question, scenario_ids, selector in QUESTIONS:
        result, why = answer(summary, scenario_ids, selector)
        questions.append({"question": question, "answer": result, "scenarios": scenario_ids, "why": why})
    target = [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in (summary.get("target") or {}).items()]
    times = scenario_times(summary["scenarios"]) if any(r.get("phases") for r in summary["scenarios"]) else None
    page = env.from_string(TEMPLATE).render(
        s=summary, questions=questions, target=target, sort=_sorted_verdicts, times=times,
        ran={sc["scenario"] for sc in summary["scenarios"]},
        started=dt.datetime.fromtimestamp(summary["started"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        dump=lambda d: json.dumps(d, indent=2, default=str)[:20000])
    return redact(page)


def junit_xml(summary: dict[str, Any]) -> str:
    """One test case per check: FAIL is a failure, NOT TESTED and NOT PROMISED are skipped, ALLOWED
    passes with a note."""
    suites = ET.Element("testsuites", name=f"k6suite {summary['run_id']}")
    for suite in junit_suites(summary):
        suites.append(suite)
    ET.indent(suites)
    return redact(ET.tostring(suites, encoding="unicode", xml_declaration=True))


def junit_suites(summary: dict[str, Any], prefix: str = "") -> list[ET.Element]:
    """One test suite per scenario; prefix (a system's name, in a matrix) leads every suite and class name."""
    suites = []
    for scenario in summary["scenarios"]:
        verdicts = scenario["verdicts"]
        suite = ET.Element("testsuite", name=f"{prefix}{scenario['scenario']} {scenario.get('title', '')}".strip(),
                           tests=str(len(verdicts)),
                           failures=str(sum(v["status"] == "FAIL" for v in verdicts)),
                           skipped=str(sum(v["status"] in ("NOT TESTED", "NOT PROMISED") for v in verdicts)),
                           time=str(scenario.get("duration_s", 0)))
        suites.append(suite)
        for v in verdicts:
            case = ET.SubElement(suite, "testcase", classname=f"{prefix}{scenario['scenario']}.{v['variant']}",
                                 name=v["check"])
            if v["status"] == "FAIL":
                failure = ET.SubElement(case, "failure",
                                        message=f"{v['check']}: measured {v['measured']}, threshold {v['threshold']}")
                failure.text = str(v.get("evidence", ""))
            elif v["status"] in ("NOT TESTED", "NOT PROMISED"):
                ET.SubElement(case, "skipped", message=str(v.get("evidence", "")))
            elif v["status"] == "ALLOWED":
                ET.SubElement(case, "system-out").text = f"allowed here: measured {v['measured']}; {v.get('evidence', '')}"
    return suites
