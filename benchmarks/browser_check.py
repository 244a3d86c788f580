"""Benchmark: how long the headless-Chromium check of a report takes (tests/test_browser.py asserts
what the check finds, never how long it took: a wall-clock limit fails on a loaded machine).

Checks an archived run's report.html (or a matrix report) N times and prints each time and the
median; asserts nothing. The screenshots go to a temporary folder.

    .venv/bin/python benchmarks/browser_check.py outputs/<run-id>/report.html [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from k6suite_lib.browser import check_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            check = check_report(args.report, Path(scratch) / f"report-{repeat}.png")
            seconds.append(check.seconds)
            print(f"repeat {repeat + 1}: {check.seconds:.2f} s, {check.images} images, {check.links} links, "
                  f"{'whole' if check.ok else f'{len(check.problems())} problems'}")
    print(f"median {statistics.median(seconds):.2f} s over {len(seconds)} checks of {args.report}")


if __name__ == "__main__":
    main()
