"""Reports of a run: the HTML page people read, and JUnit XML for CI.

The HTML report opens with the trust contract's critical questions, each answered yes, no or not
tested and linked to the scenario that decides it; "not tested" is never shown as a pass. Then
every scenario: its verdicts (failures first), its plots, a link to the executed notebook.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
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
from k6suite_lib.scenarios.s1_connectivity import TLS_CHECKS
from k6suite_lib.scenarios.s8_permissions import CHECKS as PERMISSION_CHECKS
from k6suite_lib.secrets import redact

DATA_CHECKS = frozenset({*ANOMALIES, "acknowledged sends", REACHED, PAST_ACKS, PASSED_ACKS, ACKED_STORED,
                         NOTHING_ELSE, EQUALS_READBACK, LOST, UNREADABLE, MISSING, NOT_REACHED})
# durability (F3 / F6): acknowledged records held, at their positions, intact; every other data check
# says whether the system serves them (readability, F2 / F3)
DURABLE_CHECKS = frozenset({LOST, ACKED_STORED, NOTHING_ELSE, PAST_ACKS, "position-mismatch", "inconsistent-offsets",
                            "corrupted"})
FAULT_APPLIED = "every fault took effect"  # without it no fault question means anything
EXECUTED = ("PASS", "ALLOWED", "FAIL")
FAILED_BESIDE = "not judged, but the scenario FAILed beside it"  # leads a NOT TESTED answer (_failed_beside)
# The one severity order, worst first: acknowledged data gone or misplaced, then data wrong or not
# accounted for, then ordering anomalies; every other check (availability, clients, ...) after them.
SEVERITY = ("lost-write", LOST, "unseen", MISSING, "readback-missing", UNREADABLE, "position-mismatch", ACKED_STORED,
            "corrupted", PASSED_ACKS, PAST_ACKS, "inconsistent-offsets", "foreign-record", NOTHING_ELSE, EQUALS_READBACK,
            REACHED, "duplicate", "aborted-read", "nonmonotonic-send", "nonmonotonic-poll", "poll-skip")


def severity(verdict: dict[str, Any]) -> int:
    """A check's rank in SEVERITY (lower is worse); checks not listed rank after every listed one."""
    return SEVERITY.index(verdict["check"]) if verdict["check"] in SEVERITY else len(SEVERITY)


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


@dataclass(frozen=True)
class Question:
    """A critical question: the scenarios that decide it, which of their checks count (any FAIL is a
    NO), and the checks that decide it: YES only when each of them ran (PASS or ALLOWED, or NOT
    PROMISED by this system) wherever it appears, so a question is never YES on the checks that
    always run while the ones that answer it were NOT TESTED."""

    text: str
    scenarios: tuple[str, ...]
    deciding: tuple[str, ...]
    counts: Callable[[dict[str, Any]], bool] = _all


# what every workload composes: the data checks that say whether acknowledged records survived
HELD = ("acknowledged sends", "lost-write", "unseen", "readback-missing", "position-mismatch", "corrupted",
        REACHED, PAST_ACKS, PASSED_ACKS)
STORED = (ACKED_STORED, NOTHING_ELSE, EQUALS_READBACK)  # F6: NOT PROMISED where there is no object store
DURABLE = (LOST, ACKED_STORED, NOTHING_ELSE, PAST_ACKS, "position-mismatch", "inconsistent-offsets", "corrupted",
           FAULT_APPLIED)
READABLE = ("acknowledged sends", "lost-write", "unseen", "readback-missing", UNREADABLE, REACHED, PASSED_ACKS,
            EQUALS_READBACK, FAULT_APPLIED)
ERRORS = "client errors beyond retry"
REBALANCES = "consumer-group rebalances after the first fault"
RECOVERY = "longest gap between acknowledgements per partition, from the fault's start"
STORE_RIDING = (FAULT_APPLIED, ERRORS, "acknowledgements resume after each fault ends",
                "consumers catch up after the faults")
QUESTIONS: tuple[Question, ...] = (
    Question("Can clients connect through a single endpoint?", ("S1",),
             ("client connects through the endpoint", "Metadata lists only the endpoint", *(c for c, _ in TLS_CHECKS),
              "connections spread over brokers"), _endpoint),
    Question("Does the endpoint speak the protocol honestly and survive what real clients send?", ("S1",),
             ("ApiVersions lists only supported APIs", "a common version for every API the client needs",
              "coordinator is a node Metadata lists (OBS-02)", "OffsetFetch answers at the negotiated version",
              "an unsupported old version is refused promptly (OBS-01)"), lambda v: not _endpoint(v)),
    Question("Can operators observe the system, and does it take a connection storm?", ("S2",),
             ("expected KafScale series present", "connection and handshake errors")),
    Question("Do clients produce and consume correctly?", ("S3",),
             (*HELD, "duplicate", "nonmonotonic-poll", "poll-skip", *STORED, "every partition owned by exactly one member",
              "committed offsets are what the group last committed", "each writer reads its own write at once")),
    Question("Is acknowledged data durable after broker death?", ("S4",), DURABLE, _durable),
    Question("Is acknowledged data readable again after broker death?", ("S4",), READABLE, _readable),
    Question("Do clients ride through broker death (no errors, recovery < 5 s, no rebalance)?", ("S4",),
             (FAULT_APPLIED, ERRORS, RECOVERY, REBALANCES), _riding),
    Question("Is acknowledged data durable through object-store slowness and outages?", ("S5",), DURABLE, _durable),
    Question("Is acknowledged data readable again after object-store slowness and outages?", ("S5",), READABLE,
             _readable),
    Question("Do clients ride through object-store slowness and outages?", ("S5",), STORE_RIDING, _riding),
    Question("Is acknowledged data durable through metadata-store slowness and outages?", ("S5b",), DURABLE,
             _durable),
    Question("Is acknowledged data readable again after metadata-store slowness and outages?", ("S5b",), READABLE,
             _readable),
    Question("Do clients ride through metadata-store slowness and outages?", ("S5b",), STORE_RIDING, _riding),
    Question("Can brokers be added without clients noticing?", ("S6",),
             (FAULT_APPLIED, ERRORS, "client reconnections after the fault", "metadata seen by clients unchanged",
              "new brokers serve requests", *HELD)),
    Question("Can brokers be restarted one by one without client errors?", ("S7",),
             (FAULT_APPLIED, ERRORS, REBALANCES, "reconnections per client after the first fault", *HELD)),
    Question("Do permission boundaries hold?", ("S8",), tuple(c for c, _ in PERMISSION_CHECKS)),
)
STATUS_ORDER = {"FAIL": 0, "NOT TESTED": 1, "ALLOWED": 2, "PASS": 3, "NOT PROMISED": 4}
# a run's result and its exit code: 3 says some question asked was NOT TESTED (and none was NO)
EXIT_CODES = {"PASS": 0, "FAIL": 1, "NOT TESTED": 3}


def worst_first(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(verdicts, key=severity)


def _named(verdict: dict[str, Any]) -> str:
    return f"{verdict['variant']}: {verdict['check']} ({verdict['measured']})"


def answer(summary: dict[str, Any], question: Question) -> tuple[str, str]:
    """'YES', 'NO', 'NOT TESTED' or 'NOT PROMISED', and the measurement that decides it (for a NO,
    the worst failure first)."""
    scenarios = [s for s in summary["scenarios"] if s["scenario"] in question.scenarios]
    if not scenarios:
        return "NOT TESTED", f"{', '.join(question.scenarios)} not run"
    verdicts = [v for s in scenarios for v in s["verdicts"] if question.counts(v) or v["check"] in question.deciding]
    executed = [v for v in verdicts if v["status"] in EXECUTED]
    failed = worst_first([v for v in verdicts if v["status"] == "FAIL"])
    if failed:
        return "NO", f"{len(failed)} of {len(executed)} checks failed, worst: {_named(failed[0])}"
    # when none of its checks ran, what the scenario said instead (e.g. "no object store to slow down")
    ran_instead = [v for s in scenarios for v in s["verdicts"] if v["check"] != STACK_CHECK]
    own = [v for v in verdicts if v["check"] != STACK_CHECK] or ran_instead
    if own and all(v["status"] == "NOT PROMISED" for v in own):
        return "NOT PROMISED", own[0]["evidence"]
    deciding = [v for v in verdicts if v["check"] in question.deciding]
    missing = [name for name in question.deciding if not any(v["check"] == name for v in deciding)]
    # why a deciding check did not run; when none ran, whatever the scenario said it could not test
    untested = [v for v in (deciding or ran_instead) if v["status"] == "NOT TESTED"]
    beside = _failed_beside(summary, question)
    if untested or missing:
        reasons = [f"{v['variant']}: {v['check']} not tested ({v['evidence']})" for v in untested[:2]]
        if missing:
            reasons.append(f"never ran: {', '.join(missing[:3])}" + (f" and {len(missing) - 3} more"
                                                                       if len(missing) > 3 else ""))
        return "NOT TESTED", beside + "; ".join(reasons)
    if not [v for v in executed if v["check"] != STACK_CHECK]:  # the runner's stack check alone answers nothing
        return "NOT TESTED", beside + "no check could run"
    waived = sorted({v["check"] for v in deciding if v["status"] == "NOT PROMISED"})
    others = [v for v in verdicts if v["status"] == "NOT TESTED"]
    return "YES", (f"all {len(executed)} executed checks passed, every deciding check ran"
                   + (f"; not promised: {', '.join(waived)}" if waived else "")
                   + (f"; {len(others)} other checks not tested" if others else ""))


def _failed_beside(summary: dict[str, Any], question: Question) -> str:
    """The failures of the question's scenarios that it does not count, as a NOT TESTED answer leads with
    them ("" for none): S5 that acknowledged nothing FAILs "acknowledged sends", which the durability question
    does not count, and its durability checks are NOT TESTED; the answer must not read as a quiet grey."""
    failed = worst_first([v for s in summary["scenarios"] if s["scenario"] in question.scenarios
                          for v in s["verdicts"] if v["status"] == "FAIL"
                          and not (question.counts(v) or v["check"] in question.deciding)])
    if not failed:
        return ""
    more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
    return f"{FAILED_BESIDE}: {_named(failed[0])}{more}; "


def question_failures(summary: dict[str, Any], question: Question) -> list[dict[str, Any]]:
    """The failed verdicts a question's answer counts, each with its scenario and client settings
    (calibration.caveat reads them)."""
    from k6suite_lib.calibration import settings_in

    return [{**v, "scenario": s["scenario"], "client_settings": settings_in(s, v["variant"])}
            for s in summary["scenarios"] if s["scenario"] in question.scenarios
            for v in s["verdicts"] if v["status"] == "FAIL" and (question.counts(v) or v["check"] in question.deciding)]


def questions_asked(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every question whose scenarios ran (at least one of them), answered."""
    ran = {s["scenario"] for s in summary["scenarios"]}
    rows = []
    for question in QUESTIONS:
        if ran & set(question.scenarios):
            result, why = answer(summary, question)
            rows.append({"question": question.text, "answer": result, "scenarios": question.scenarios, "why": why})
    return rows


def run_result(summary: dict[str, Any]) -> str:
    """PASS only when every question asked is YES or NOT PROMISED (and no check failed anywhere);
    FAIL when any check failed; NOT TESTED otherwise: an incomplete run never reads as a pass."""
    answers = [q["answer"] for q in questions_asked(summary)]
    if "NO" in answers or any(v["status"] == "FAIL" for s in summary["scenarios"] for v in s["verdicts"]):
        return "FAIL"
    return "NOT TESTED" if not answers or "NOT TESTED" in answers else "PASS"


def scenario_result(scenario: dict[str, Any]) -> str:
    """A scenario's badge: FAIL, NOT TESTED when none of its own checks ran, else PASS."""
    statuses = [v["status"] for v in scenario["verdicts"] if v["check"] != STACK_CHECK]
    if "FAIL" in statuses or not scenario.get("passed", True):
        return "FAIL"
    return "PASS" if any(s in EXECUTED for s in statuses) else "NOT TESTED"


def _sorted_verdicts(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(verdicts, key=lambda v: (STATUS_ORDER.get(v["status"], 9), severity(v)))


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
td.cal{font-size:.8em;color:#555}td.cal.warn,.caveat{color:#a15c00}
details{margin:.5em 0}td.ev{font-family:monospace;font-size:.85em;word-break:break-word}pre{white-space:pre-wrap;overflow-wrap:anywhere}
</style></head><body>
{% macro calcell(n) %}<td class="cal{% if n.stale or n.shaky or not n.calibrated %} warn{% endif %}">{{ n.text }}</td>{% endmacro %}
<h1>K6SUITE report <span class="badge {{ result|replace(' ', '') }}">{{ result }}</span></h1>
{% if result == 'NOT TESTED' %}<p class="NOTTESTED">Nothing failed, but not every question asked could be answered: the run is
incomplete (exit code {{ exit_code }}); the questions say what was not tested and why.</p>{% endif %}
<p>Run <code>{{ s.run_id }}</code>, profile <code>{{ s.profile }}</code>, tier <code>{{ s.tier }}</code>,
started {{ started }}, {{ '%.0f' % s.duration_s }} s. Checks: {{ s.counts.PASS }} passed, {{ s.counts.FAIL }} failed,
{{ s.counts.ALLOWED }} allowed, {{ s.counts['NOT TESTED'] }} not tested, {{ s.counts['NOT PROMISED'] }} not promised.</p>
{% if s.build %}<p>Build: <b>{{ s.build.label }}</b> (source <code>{{ s.build.source }}</code>{% if s.build.commit %}, commit <code>{{ s.build.commit }}</code>{% endif %}{% if s.build.dirty is not none %}, {{ 'uncommitted changes' if s.build.dirty else 'clean tree' }}{% endif %}; sha256 {% for name, sha in s.build.binaries.items() %}{{ name }} <code>{{ sha[:16] }}</code>{% if not loop.last %}, {% endif %}{% endfor %}){% if s.learned_at_start and (s.learned_at_start.client_caps or s.learned_at_start.notes) %}. Learned at start: {% if s.learned_at_start.client_caps %}client version caps {{ s.learned_at_start.client_caps }} ({{ s.learned_at_start.caps_evidence|join('; ') }}){% endif %}{% for note in s.learned_at_start.notes or [] %}; {{ note }}{% endfor %}{% endif %}.</p>{% endif %}
{% if s.stack_error %}<p class="FAIL">The run could not continue: <code>{{ s.stack_error }}</code></p>{% endif %}
<p>Promises judged: the trust contract (F1–F7, NFR1–NFR5){% if s.not_promised %}, except what this system never promised
(its checks are shown as NOT PROMISED, with what they measured):</p><ul>{% for req, why in s.not_promised.items() %}<li><b>{{ req }}</b>: {{ why }}</li>{% endfor %}</ul>{% else %}, all of it.</p>{% endif %}
<h2>Critical questions</h2>
<table><tr><th>Question</th><th>Answer</th><th>Decided by</th><th>Evidence</th></tr>
{% for q in questions %}<tr><td>{{ q.question }}</td><td class="{{ q.answer|replace(' ', '') }}"><b>{{ q.answer }}</b>{% if q.why.startswith(failed_beside) %} <span class="FAIL">(the scenario FAILed)</span>{% endif %}{% if q.caveat %} (<span class="caveat">{{ q.caveat }}</span>){% endif %}</td>
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
{% set badge = scenario_result(sc) %}<span class="badge {{ badge|replace(' ', '') }}">{{ badge }}</span></h2>
<p>{{ '%.0f' % sc.duration_s }} s.
{% if sc.notebook_html %}<a href="{{ sc.folder }}/{{ sc.notebook_html }}">executed notebook (HTML)</a>,
<a href="{{ sc.folder }}/{{ sc.notebook }}">.ipynb</a>, {% endif %}
<a href="{{ sc.folder }}/results.json">results.json</a>.
{% if sc.healed_after %}<br>After this scenario the embedded stack needed repair (dead processes restarted, a filled etcd cleared): {{ sc.healed_after|join(', ') }}.{% endif %}
{% if sc.unhealthy_after %}<br><strong>After this scenario the embedded stack was unhealthy</strong>, so later scenarios ran on a degraded stack: {% for name, why in sc.unhealthy_after.items() %}{{ name }} ({{ why }}){% if not loop.last %}; {% endif %}{% endfor %}.{% endif %}</p>
{% if sc.aggregate %}<p>Repeated variants, folded: a probabilistic failure shows as k of N.</p>
<table><tr><th>variant</th><th>check</th><th>req.</th><th>repeats</th><th>status</th><th>evidence (first failure)</th><th>baseline calibration</th></tr>
{% for v in sort(sc.aggregate) %}<tr><td>{{ v.variant }}</td><td>{{ v.check }}</td><td>{{ v.requirement }}</td><td>{{ v.measured }}</td>
<td class="{{ v.status|replace(' ', '') }}">{{ v.status }}</td><td class="ev">{{ v.evidence }}</td>{{ calcell(cal(sc, v)) }}</tr>{% endfor %}</table>
<details><summary>every repeat</summary>{% endif %}
<table><tr><th>variant</th><th>check</th><th>req.</th><th>measured</th><th>threshold</th><th>status</th><th>evidence</th><th>baseline calibration</th></tr>
{% for v in sort(sc.verdicts) %}<tr><td>{{ v.variant }}</td><td>{{ v.check }}</td><td>{{ v.requirement }}</td>
<td>{{ v.measured }}</td><td>{{ v.threshold }}</td><td class="{{ v.status|replace(' ', '') }}">{{ v.status }}</td>
<td class="ev">{{ v.evidence }}</td>{{ calcell(cal(sc, v)) }}</tr>{% endfor %}</table>{% if sc.aggregate %}</details>{% endif %}
{% for a in sc.artifacts if a.endswith('.png') %}<img src="{{ sc.folder }}/{{ a }}" alt="{{ a }}">{% endfor %}
{% if sc.measurements %}<details><summary>measurements</summary><pre>{{ dump(sc.measurements) }}</pre></details>{% endif %}
{% endfor %}
<p style="color:#777">Archive: summary.json, junit.xml, manifest.json (versions and sha256 of every file), stack/ (process logs).
Re-judge any history with <code>k6suite check &lt;folder&gt;/history-&lt;variant&gt;.parquet</code>.</p>
</body></html>
"""


def html_report(summary: dict[str, Any], run_dir: Path, records: dict[str, dict[str, Any]] | None = None) -> str:
    """The run's page; records (default: the committed calibration/) put each check's baseline record
    beside its verdict and qualify a NO that rests on checks the baseline does not pass every time."""
    from k6suite_lib import calibration

    records = calibration.load_records() if records is None else records
    in_use = calibration.baselines_in_use([summary])
    env = Environment(autoescape=select_autoescape(default=True))
    questions = []
    for question in QUESTIONS:
        result, why = answer(summary, question)
        questions.append({"question": question.text, "answer": result, "scenarios": question.scenarios, "why": why,
                          "caveat": calibration.caveat(result, question_failures(summary, question), records,
                                                             in_use, summary.get("client"))})
    result = run_result(summary)
    target = [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in (summary.get("target") or {}).items()]
    times = scenario_times(summary["scenarios"]) if any(r.get("phases") for r in summary["scenarios"]) else None
    page = env.from_string(TEMPLATE).render(
        s=summary, questions=questions, target=target, sort=_sorted_verdicts, times=times, result=result,
        exit_code=EXIT_CODES[result], scenario_result=scenario_result, failed_beside=FAILED_BESIDE,
        cal=lambda sc, v: calibration.verdict_note(records, in_use, sc["scenario"],
                                                   {**v, "client_settings": calibration.settings_in(sc, v["variant"])},
                                                   summary.get("client")),
        ran={sc["scenario"] for sc in summary["scenarios"]},
        started=dt.datetime.fromtimestamp(summary["started"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        dump=lambda d: json.dumps(d, indent=2, default=str)[:20000])
    return redact(page)


def junit_xml(summary: dict[str, Any]) -> str:
    """One test case per check: FAIL is a failure, NOT TESTED and NOT PROMISED are skipped, ALLOWED
    passes with a note; then one per critical question asked (see question_suite)."""
    suites = ET.Element("testsuites", name=f"k6suite {summary['run_id']}")
    for suite in junit_suites(summary):
        suites.append(suite)
    ET.indent(suites)
    return redact(ET.tostring(suites, encoding="unicode", xml_declaration=True))


def question_suite(summary: dict[str, Any], prefix: str = "") -> ET.Element:
    """The critical questions asked, one test case each: NO is a failure, NOT TESTED and NOT PROMISED
    are skipped with the reason; the run's result and exit code are properties (3: nothing failed
    but a question was NOT TESTED)."""
    asked = questions_asked(summary)
    result = run_result(summary)
    suite = ET.Element("testsuite", name=f"{prefix}critical questions", tests=str(len(asked)),
                       failures=str(sum(q["answer"] == "NO" for q in asked)),
                       skipped=str(sum(q["answer"] in ("NOT TESTED", "NOT PROMISED") for q in asked)))
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="k6suite.result", value=result)
    ET.SubElement(properties, "property", name="k6suite.exit_code", value=str(EXIT_CODES[result]))
    for q in asked:
        case = ET.SubElement(suite, "testcase", classname=f"{prefix}questions.{'+'.join(q['scenarios'])}",
                             name=q["question"])
        if q["answer"] == "NO":
            ET.SubElement(case, "failure", message=f"NO: {q['why']}")
        elif q["answer"] in ("NOT TESTED", "NOT PROMISED"):
            ET.SubElement(case, "skipped", message=f"{q['answer']}: {q['why']}")
    return suite


def junit_suites(summary: dict[str, Any], prefix: str = "") -> list[ET.Element]:
    """The questions' suite, then one test suite per scenario; prefix (a system's name, in a matrix)
    leads every suite and class name."""
    suites = [question_suite(summary, prefix)]
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
