"""Benchmark: where a broker fault's gap between acknowledgements goes on the embedded Kafka.

For every S4 history of a run on the dedicated-controller Kafka, sets the client's view (the longest
gap between acknowledgements per partition from the fault's start, as the recovery check measures
it) beside the cluster's own (from the controllers' and brokers' logs: when the active controller
fenced the victim broker, and when the last of the workload's partitions it led had a new leader;
a terminated broker hands its leadership over in its controlled shutdown, before it is fenced).
A gap far above the cluster's failover is time the client spent learning about it. Prints numbers,
asserts nothing.

    .venv/bin/python benchmarks/kafka_failover.py outputs/<run-id> [--logs outputs/stack/<port>/logs]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
from pathlib import Path

from k6suite_lib import history
from k6suite_lib.calibration import numeric
from k6suite_lib.checkers.availability import check_recovery

FENCED = re.compile(r"^\[(\S+ \S+)\] INFO \[QuorumController id=\d+\] Replayed BrokerRegistrationChangeRecord "
                    r"modifying the registration for broker (\d+): .*fenced=1")
LEADER = re.compile(r"^\[(\S+ \S+)\] INFO \[Broker id=(\d+)\] Leader (\S+)-(\d+) with topic id .* starts at leader "
                    r"epoch (\d+)")


def _stamp(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=dt.UTC).timestamp()


def _events(logs: Path) -> tuple[list[tuple[float, int]], list[tuple[float, str, int, int]]]:
    fenced, leaders = [], []
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if match := FENCED.match(line):
                fenced.append((_stamp(match.group(1)), int(match.group(2))))
            elif match := LEADER.match(line):
                leaders.append((_stamp(match.group(1)), match.group(3), int(match.group(4)), int(match.group(5))))
    return fenced, leaders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--logs", type=Path, help="the stack's logs (default: the run's stack/ folder)")
    args = parser.parse_args()
    fenced, leaders = _events(args.logs or args.run / "stack")
    rows = []
    for path in sorted((args.run / "S4-broker-chaos").glob("history-*.parquet")):
        frame, meta = history.load(path)
        faults = frame[frame["f"] == "fault"]
        start = next(json.loads(d) | {"wall": w / 1e9} for d, w in zip(faults["detail"], faults["wall_ns"], strict=True)
                     if json.loads(d).get("phase") == "start")
        victim = int(start["target"].split("-")[1])
        gap = numeric(check_recovery(history.View(frame, meta))[0]["measured"]) or float("nan")
        fence = next((t - start["wall"] for t, b in fenced if b == victim and t >= start["wall"] - 1), None)
        led = set(start.get("served", {}).get("leads", []))  # the partitions the victim led
        first: dict[int, float] = {}  # each of them: its first new leader after the fault started
        for t, topic, partition, epoch in sorted(leaders):
            if topic == meta["topic"] and partition in led and epoch > 0 and t >= start["wall"] - 1:
                first.setdefault(partition, t - start["wall"])
        last_leader = max(first.values()) if first else None
        rows.append((meta["variant"], gap, fence, last_leader))
        print(f"{meta['variant']:>14}: client gap {gap:7.2f} s; victim fenced after "
              f"{'-' if fence is None else f'{fence:.2f} s'}; new leaders by "
              f"{'-' if last_leader is None else f'{last_leader:.2f} s'}")
    for kind in sorted({re.sub(r'#\d+$', '', v) for v, *_ in rows}):
        mine = [r for r in rows if re.sub(r"#\d+$", "", r[0]) == kind]
        for label, index in (("client gap", 1), ("fenced after", 2), ("new leaders by", 3)):
            values = sorted(r[index] for r in mine if r[index] is not None)
            if values:
                print(f"{kind} {label}: n {len(values)}, p50 {statistics.median(values):.2f} s, "
                      f"max {values[-1]:.2f} s")


if __name__ == "__main__":
    main()
