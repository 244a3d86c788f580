"""How long each CI stage takes end to end, against its budget (k6suite_lib/stages.py).

Runs `k6suite run --stage NAME` for each chosen stage, one after the other, on one profile, and
prints per stage the wall time (stack start and stop included, as in CI: the embedded stack is
started by the run when it is not already up), the budget, each scenario's wall time and the
verdict counts (so a faster stage that checked less would show), and the machine's load average
around it (the machine is shared: a loaded machine stretches every phase). The build and bootstrap steps of a
CI job are not counted: they are cached or belong to the job, not to the suite.

    .venv/bin/python benchmarks/stage_times.py -p /tmp/local-30800.yaml --stages pr main

Use a copy of profiles/local.yaml on a port base of your own; a stack already running there is
reused and its start then goes uncounted (the script says so).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from k6suite_lib.stages import STAGES, resolve


def stage_time(stage: str, profile: str, out_root: Path | None) -> dict[str, Any]:
    """Run one stage; its wall time, budget and what it ran."""
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.runner import run_suite
    from k6suite_lib.stack import open_stack

    loaded = load_profile(profile)
    reused = loaded.embedded and open_stack(loaded, log=lambda _msg: None).is_up()
    scenarios, tier, parameters = resolve(stage, None, None, {})
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    outcome = run_suite(profile, scenarios, tier, out_root=out_root, parameters=parameters, log=lambda _msg: None)
    wall = time.monotonic() - started
    budget = STAGES[stage].budget_s
    return {"stage": stage, "wall_s": round(wall, 1), "budget_s": budget,
            "within": None if budget is None else wall <= budget, "stack_reused": reused,
            "scenarios": {s["scenario"]: round(s.get("wall_s", s["duration_s"]), 1)
                          for s in outcome.summary["scenarios"]},
            "counts": outcome.summary["counts"], "run_dir": str(outcome.run_dir),
            "load": (round(load_before, 1), round(os.getloadavg()[0], 1))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", "-p", default="local", help="profile name or YAML path (default: local)")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=["pr", "main"])
    parser.add_argument("--out", type=Path, default=None, help="archive root (default: outputs/)")
    args = parser.parse_args(argv)
    for stage in args.stages:
        row = stage_time(stage, args.profile, args.out)
        budget = "no budget" if row["budget_s"] is None else (
            f"budget {row['budget_s']:.0f} s: {'within' if row['within'] else 'OVER'}")
        print(f"stage {stage}: {row['wall_s']:.1f} s ({budget})"
              + (" [stack was already running: its start is not counted]" if row["stack_reused"] else ""))
        print("  scenarios (s): " + ", ".join(f"{sid} {s:.1f}" for sid, s in row["scenarios"].items()))
        print(f"  load average (1 min) before and after: {row['load'][0]}, {row['load'][1]} on {os.cpu_count()} cores")
        print("  checks: " + ", ".join(f"{n} {status}" for status, n in row["counts"].items() if n))
        print(f"  archive: {row['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
