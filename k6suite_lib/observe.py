"""Observations: a run (or part of it) curated into a markdown write-up a team reviews in git.

``observations/OBS-NN-<slug>/README.md`` says what was tested, against which system (as it
identified itself), the verdicts that matter, the key plots (copied as PNG), and the command
that reproduces it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

from k6suite_lib.secrets import redact
from k6suite_lib.stack.layout import REPO_ROOT, outputs_root

OBSERVATIONS = REPO_ROOT / "observations"


def _run_dir(run: str) -> Path:
    candidate = Path(run)
    if not (candidate / "summary.json").is_file():
        candidate = outputs_root() / run
    if not (candidate / "summary.json").is_file():
        raise FileNotFoundError(f"no run archive with a summary.json at {run} or {outputs_root() / run}")
    return candidate


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50] or "observation"


def next_number(root: Path) -> int:
    numbers = [int(m.group(1)) for p in root.glob("OBS-*") if (m := re.match(r"OBS-(\d+)-", p.name))]
    return max(numbers, default=0) + 1


def _table(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| scenario | variant | check | req. | measured | threshold | status | evidence |",
             "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        cells = [v["scenario"], v["variant"], v["check"], v["requirement"], v["measured"], v["threshold"],
                 f"**{v['status']}**", v.get("evidence", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ")[:400] for c in cells) + " |")
    return "\n".join(lines)


def observe(run: str, scenario: str | None = None, checks: list[str] | None = None, title: str | None = None,
            slug: str | None = None, note: str | None = None, out_root: Path | None = None) -> Path:
    run_dir = _run_dir(run)
    summary = json.loads((run_dir / "summary.json").read_text())
    scenarios = [s for s in summary["scenarios"] if scenario is None or s["scenario"] == scenario]
    if not scenarios:
        raise ValueError(f"run {summary['run_id']} has no scenario {scenario}")
    verdicts = [{**v, "scenario": s["scenario"]} for s in scenarios for v in s["verdicts"]
                if not checks or any(c.lower() in f"{v['variant']} {v['check']}".lower() for c in checks)]
    if not verdicts:
        raise ValueError(f"no verdict matches {checks}")
    root = out_root or OBSERVATIONS
    root.mkdir(parents=True, exist_ok=True)
    title = title or f"{' + '.join(s['scenario'] for s in scenarios)} on {summary['profile']}: " + (
        "all checks passed" if all(v["status"] != "FAIL" for v in verdicts) else "checks failed")
    folder = root / f"OBS-{next_number(root):02d}-{slug or _slugify(title)}"
    folder.mkdir()
    images = []
    for s in scenarios:
        for artifact in s.get("artifacts", []):
            source = run_dir / s["folder"] / artifact
            if artifact.endswith(".png") and source.is_file():
                shutil.copy2(source, folder / artifact)
                images.append(artifact)
    if note and note.startswith("@"):
        note = Path(note[1:]).read_text()
    target = summary.get("target") or {}
    scenario_ids = " ".join(s["scenario"] for s in scenarios)
    failed = sum(v["status"] == "FAIL" for v in verdicts)
    lines = [
        f"# {folder.name.split('-', 2)[0]}-{folder.name.split('-', 2)[1]}: {title}", "",
        f"- **Recorded**: {dt.datetime.fromtimestamp(summary['started'], dt.UTC):%Y-%m-%d %H:%M UTC}, "
        f"run `{summary['run_id']}`, tier `{summary['tier']}`",
        f"- **Target**: profile `{summary['profile']}`, endpoint `{target.get('endpoint')}`, cluster id "
        f"`{target.get('cluster_id')}`, brokers listed {target.get('brokers')}, API fingerprint "
        f"`{target.get('api_fingerprint')}`",
        f"- **Client**: {target.get('client')}; API versions capped (profile, or learned from the build at "
        f"start): {target.get('version_caps') or 'none'}",
    ]
    build = summary.get("build") or target.get("build")
    if build:
        lines.append(f"- **Build**: {build.get('label')} (source `{build.get('source')}`, commit "
                     f"`{build.get('commit') or 'none'}`, sha256 "
                     + ", ".join(f"{name} `{sha[:16]}`" for name, sha in build.get("binaries", {}).items()) + ")")
    components = target.get("embedded_components")
    if components:
        lines.append("- **Components**: " + ", ".join(f"{name} {info['version']}" for name, info in components.items()))
    lines += ["", "## What was tested", ""]
    lines += [f"- **{s['scenario']} — {s.get('title', '')}**: {len(s['verdicts'])} checks, "
              f"{sum(v['status'] == 'FAIL' for v in s['verdicts'])} failed" for s in scenarios]
    if note:
        lines += ["", "## Finding", "", note.strip()]
    lines += ["", f"## Verdicts ({len(verdicts)} shown, {failed} failed)", "", _table(verdicts)]
    if images:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    lines += ["", "## Reproduce", "", "```bash",
              f"bin/run-suite --profile {summary['profile']} --scenarios {scenario_ids} --tier {summary['tier']}",
              "```", "", "The run's full archive (executed notebooks, histories, manifest with sha256 of every file) "
              f"was `outputs/{summary['run_id']}/`; re-judge a history with `k6suite check`.", ""]
    (folder / "README.md").write_text(redact("\n".join(lines)))
    return folder
