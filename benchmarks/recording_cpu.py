"""Benchmark: CPU per record of the suite's recording librdkafka producer against a bare librdkafka loop.

Why workers (WorkloadConfig.workers) cannot close the whole gap to bare librdkafka on a small machine:
recording costs CPU per record wherever it runs. Both loops queue --records records towards a port
where nothing listens (profiles/kafka.yaml on --port-base, no stack started), with a 1 s delivery
timeout, so each record costs its enqueue, its (failed) delivery report and, when recording, its
history row and the history frame; no broker or network work is counted. Prints the process CPU per
record of each, --repeats times alternately. Asserts nothing.

    .venv/bin/python benchmarks/recording_cpu.py [--records 30000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from k6suite_lib.profiles import PROFILES_DIR


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one(mode: str, profile_path: str, records: int) -> None:
    """One loop in this (fresh) process; prints its CPU per record."""
    import confluent_kafka

    from k6suite_lib.history import Recorder, encode_payload
    from k6suite_lib.profiles import load_profile
    from k6suite_lib.workload import rdkafka
    from k6suite_lib.workload.config import WorkloadConfig
    from k6suite_lib.workload.context import RunContext
    from k6suite_lib.workload.producer import producer_loop

    profile = load_profile(profile_path)
    config = WorkloadConfig(client="librdkafka", records=records, partitions=3, max_outstanding=10**9,
                            delivery_timeout_s=1.0, consumers=0, consumer_mode="none", topic="cpu")
    started, wall = cpu_s(), time.monotonic()
    if mode == "recording":
        ctx = RunContext(profile=profile, config=config, run_id="cpu", topic="cpu", recorder=Recorder("cpu"))
        producer_loop(ctx, 0, rdkafka.Sender(ctx, "producer-0"))
        settled = len(ctx.recorder.frame())  # the rows become the history, as in every run
    else:
        producer = confluent_kafka.Producer(rdkafka.producer_config(profile, config, "bare"))
        payload, _ = encode_payload("bench", "bare", 0, 128)
        reports = [0]

        def delivered(_error, _message) -> None:
            reports[0] += 1

        for seq in range(records):
            producer.produce("cpu", value=payload, partition=seq % 3, on_delivery=delivered)
            producer.poll(0)
        producer.flush(5)
        settled = reports[0]
    used = cpu_s() - started
    print(f"{mode:10s} {records} records: CPU {used:.2f} s = {used / records * 1e6:5.1f} us/record "
          f"(wall {time.monotonic() - wall:.1f} s, {settled} settled)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--port-base", type=int, default=31400, help="where nothing listens (default 31400)")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "PROFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], args.one[1], args.records)
        return
    with tempfile.TemporaryDirectory(prefix="k6suite-cpu-") as directory:
        raw = yaml.safe_load((PROFILES_DIR / "kafka.yaml").read_text())
        raw.update(name="cpu", stack={**raw["stack"], "port_base": args.port_base})
        path = Path(directory) / "cpu.yaml"
        path.write_text(yaml.safe_dump(raw))
        for _ in range(args.repeats):
            for mode in ("bare", "recording"):  # each in a fresh process: one's threads never load the other
                subprocess.run([sys.executable, __file__, "--records", str(args.records), "--one", mode, str(path)],
                               check=True, env={**os.environ, "K6SUITE_OUTPUTS": directory})


if __name__ == "__main__":
    main()
