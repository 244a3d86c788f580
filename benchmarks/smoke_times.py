"""Where the smoke tier's time goes, per system and scenario, before and after.

Runs the smoke tier of every scenario on each chosen profile, one after the other in one process (so
the systems are compared on the same machine at the same time), then prints per scenario the
seconds of each phase (from results.json) and the scenario's time beside the same scenario of an
earlier archive. The earlier archive is a run directory (or a matrix run holding one folder per
profile); without one, only the new times are printed.

    .venv/bin/python benchmarks/smoke_times.py --profiles local kafka --before outputs/<run-id>
    .venv/bin/python benchmarks/smoke_times.py --after outputs/<run-id> --before outputs/<old-run-id>

Time here is what a person waits for; checks are unchanged by design and the verdict counts are
printed beside the times so a faster run that checked less would show.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from k6suite_lib.progress import scenario_times
from k6suite_lib.runner import SCENARIOS


def load_summary(run_dir: Path, profile: str) -> dict[str, Any] | None:
    """A run's summary for a profile: run_dir/summary.json, or run_dir/<profile>/summary.json in a matrix."""
    for path in (run_dir / profile / "summary.json", run_dir / "summary.json"):
        if path.is_file():
            summary = json.loads(path.read_text())
            if summary.get("profile") == profile:
                return summary
    return None


def compare(profile: str, after: dict[str, Any], before: dict[str, Any] | None) -> pd.DataFrame:
    """One row per scenario: seconds before and after (the notebook's own time, which both archives
    record), the runner's wall time after, and the checks each ran."""
    rows = []
    old = {s["scenario"]: s for s in before["scenarios"]} if before else {}
    for result in after["scenarios"]:
        prior = old.get(result["scenario"])
        rows.append({"system": profile, "scenario": result["scenario"],
                     "before_s": round(prior["duration_s"], 1) if prior else None,
                     "after_s": round(result["duration_s"], 1), "after_wall_s": result.get("wall_s"),
                     "checks_before": len(prior["verdicts"]) if prior else None,
                     "checks_after": len(result["verdicts"])})
    frame = pd.DataFrame(rows)
    total = {"system": profile, "scenario": "whole run", "before_s": before["duration_s"] if before else None,
             "after_s": after["duration_s"], "after_wall_s": after["duration_s"],
             "checks_before": sum(len(s["verdicts"]) for s in before["scenarios"]) if before else None,
             "checks_after": sum(len(s["verdicts"]) for s in after["scenarios"])}
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["local", "kafka"],
                        help="profiles to run the smoke tier on (default: local kafka)")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), help="default: every scenario")
    parser.add_argument("--before", type=Path, help="an earlier run (or matrix run) directory to compare with")
    parser.add_argument("--after", type=Path,
                        help="compare this existing run (or matrix run) instead of running the smoke tier now")
    args = parser.parse_args(argv)
    from k6suite_lib.matrix import run_matrix

    if args.after is None:
        outcome = run_matrix(args.profiles, scenarios=args.scenarios, tier="smoke")
        args.after = outcome.run_dir
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    for profile in args.profiles:
        after = load_summary(args.after, profile)
        if after is None:
            print(f"{profile}: no summary in {args.after}", file=sys.stderr)
            continue
        before = load_summary(args.before, profile) if args.before else None
        print(f"\n== {profile}: {args.after}" + (f" vs {args.before}" if before else ""))
        print(compare(profile, after, before).to_string(index=False))
        print("\nseconds per phase (after):")
        print(scenario_times(after["scenarios"]).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
