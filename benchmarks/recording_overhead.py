"""Benchmark: what recording a history costs in producer throughput.

On the same target and in the same run, alternately sends N records with a bare kafka-python
producer (send everything, then flush) and with the recording producer of the workload module
(identity payloads, completion callbacks, history rows). Both use the same client settings,
including linger_ms: with KafScale's synchronous flush every produce request is one upload to
object storage, so batch size, not client CPU, sets throughput, and a fair comparison must give
both producers the same batching rule.
Prints throughput of each repeat and the ratio of medians; asserts nothing. Starts the
profile's embedded stack if it is not running (and stops it again).

    .venv/bin/python benchmarks/recording_overhead.py [--profile local-single] [--records 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from k6suite_lib import clients
from k6suite_lib.history import encode_payload
from k6suite_lib.profiles import load_profile
from k6suite_lib.stack import running
from k6suite_lib.workload import WorkloadConfig, run_workload


def bare(profile, records: int, size: int, linger_ms: int) -> float:
    topic = f"bench-bare-{uuid.uuid4().hex[:8]}"
    clients.create_topic(profile, topic, 1)
    producer = clients.producer(profile, linger_ms=linger_ms)
    payload, _ = encode_payload("bench", "bare", 0, size)
    started = time.perf_counter()
    futures = [producer.send(topic, value=payload, partition=0) for _ in range(records)]
    producer.flush(timeout=120)
    elapsed = time.perf_counter() - started
    failed = sum(1 for f in futures if not f.succeeded())
    producer.close(timeout=5)
    if failed:
        raise SystemExit(f"bare producer: {failed} sends failed; the target is not healthy")
    return records / elapsed


def recorded(profile, records: int, size: int, linger_ms: int) -> float:
    config = WorkloadConfig(records=records, producers=1, consumers=0, consumer_mode="none", readback=False,
                            message_bytes=size, linger_ms=linger_ms, label="bench")
    result = run_workload(profile, config)
    sends = result.history[result.history["f"] == "send"]
    first, last = sends["invoke_ns"].min(), sends["complete_ns"].max()
    acked = int((sends["type"] == "ok").sum())
    if acked != records:
        raise SystemExit(f"recording producer: {records - acked} sends not acknowledged")
    return records / ((last - first) / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="local-single")
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--linger-ms", type=int, default=5)
    args = parser.parse_args()
    profile = load_profile(args.profile)
    with running(profile):
        bare(profile, 200, args.size, args.linger_ms)  # warm-up: connections, first segment
        results = {"bare": [], "recorded": []}
        for repeat in range(args.repeats):
            for name, fn in (("bare", bare), ("recorded", recorded)):
                rate = fn(profile, args.records, args.size, args.linger_ms)
                results[name].append(rate)
                print(f"repeat {repeat + 1}: {name:9s} {rate:9.0f} records/s")
    bare_median = statistics.median(results["bare"])
    recorded_median = statistics.median(results["recorded"])
    print(f"median bare:     {bare_median:9.0f} records/s")
    print(f"median recorded: {recorded_median:9.0f} records/s")
    print(f"recording costs {100 * (1 - recorded_median / bare_median):.1f} % of throughput "
          f"(ratio recorded/bare = {recorded_median / bare_median:.3f})")


if __name__ == "__main__":
    main()
