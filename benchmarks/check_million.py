"""Benchmark: how long the checker takes on a 1,000,000-operation history.

Builds a clean synthetic history (sends acknowledged in partition order, one live consumer and
the final read-back reading everything) with N operations in total, then times check() and the
latency/throughput summaries. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/check_million.py [--ops 1000000] [--partitions 10] [--producers 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from k6suite_lib.checker import check, latency_summary, throughput
from k6suite_lib.history import COLUMNS


def synthetic_history(ops: int, partitions: int, producers: int, seed: int = 1) -> pd.DataFrame:
    """ops/3 sends, each read once by consumer-0 and once by the read-back."""
    rng = np.random.default_rng(seed)
    sends = ops // 3
    producer = np.arange(sends) % producers
    seq = np.arange(sends) // producers
    partition = rng.integers(0, partitions, sends)
    offset = pd.Series(partition).groupby(partition).cumcount().to_numpy()
    invoke = np.arange(sends, dtype="int64") * 1000
    base = pd.DataFrame({
        "producer": pd.array([f"producer-{p}" for p in producer], dtype="string"), "seq": seq,
        "partition": partition, "offset": offset, "topic": "bench", "checksum": 0, "value_len": 128,
    })
    send_rows = base.assign(process=base["producer"], f="send", type="ok", invoke_ns=invoke,
                            complete_ns=invoke + 5_000_000)
    order = np.lexsort((offset, partition))
    reads = []
    for reader, delay in (("consumer-0", 20_000_000), ("readback", 10**12)):
        read = base.iloc[order].assign(process=reader, f="poll", type="ok")
        read["invoke_ns"] = invoke[order] + delay
        read["complete_ns"] = read["invoke_ns"] + 1_000
        read["session"] = 1
        reads.append(read)
    frame = pd.concat([send_rows, *reads], ignore_index=True)
    frame["run_id"] = "bench"
    frame["op_id"] = np.arange(len(frame))
    frame["wall_ns"] = frame["invoke_ns"]
    for column, default in (("key", ""), ("corrupt", False), ("intended_ns", -1), ("error", ""), ("detail", ""),
                            ("session", 0)):
        if column not in frame:
            frame[column] = default
    frame["session"] = frame["session"].fillna(0)
    frame = frame[list(COLUMNS)].astype({c: t for c, (t, _) in COLUMNS.items()})
    return frame.sort_values("complete_ns", kind="stable").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--producers", type=int, default=100)
    args = parser.parse_args()
    started = time.perf_counter()
    frame = synthetic_history(args.ops, args.partitions, args.producers)
    built = time.perf_counter() - started
    started = time.perf_counter()
    result = check(frame)
    checked = time.perf_counter() - started
    started = time.perf_counter()
    latency_summary(frame)
    throughput(frame)
    summarised = time.perf_counter() - started
    print(f"history rows:            {len(frame):>10,}")
    print(f"build (not measured):    {built:10.2f} s")
    print(f"check():                 {checked:10.2f} s   passed={result.passed}")
    print(f"latency + throughput:    {summarised:10.2f} s")
    print(f"total judge time:        {checked + summarised:10.2f} s")


if __name__ == "__main__":
    main()
