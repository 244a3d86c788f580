"""Benchmark: bare librdkafka with its defaults against the same producer with one request in flight, per system.

Why: on KafScale v1.5.0 and Tansu bare librdkafka (the suite's librdkafka settings: the library's defaults
plus acks=all and the timeouts) sustained only 100-200 records/s in benchmarks/harness_ceiling.py, where a
producer with one request in flight had sustained 44,000/s (observations/OBS-18). This script sets the two
side by side on one stack and prints what decides it: the rate acknowledged, the publish delay, and from
librdkafka's own statistics how many produce requests it sent, the bytes it sent per produce request
(every request's bytes over the produce requests: about what one carried) and their round-trip time.

For each system (profile `local`, `kafka`, `tansu`; one stack at a time on --port-base) and each variant,
one open-loop trial of --seconds at --rate records/s of 128 bytes over 3 partitions (harness_ceiling's
schedule and judgement: a send due in the window and never acknowledged counts as infinitely late).
Variants: `defaults` (librdkafka's, max.in.flight 1,000,000 per connection, linger 5 ms), `1 in flight`
(max.in.flight.requests.per.connection=1), then `defaults` again (so a drift of the machine shows).
Asserts nothing.

    .venv/bin/python benchmarks/librdkafka_in_flight.py --systems local tansu [--rate 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import confluent_kafka
import numpy as np
from harness_ceiling import PORT_BASES, Acks, embedded, judge, open_loop

from k6suite_lib import clients
from k6suite_lib.cli import interrupt_on_sigterm
from k6suite_lib.profiles import Profile
from k6suite_lib.workload import WorkloadConfig, rdkafka

VARIANTS = (("defaults", {}), ("1 in flight", {"max.in.flight.requests.per.connection": 1}), ("defaults", {}))


def trial(profile: Profile, config: WorkloadConfig, extra: dict) -> dict:
    """One open-loop trial; the producer's statistics summed over its brokers at the end."""
    stats: list[dict] = []
    settings = {**rdkafka.producer_config(profile, config, f"in-flight-{uuid.uuid4().hex[:6]}"), **extra,
                "statistics.interval.ms": 1000, "stats_cb": lambda text: stats.append(json.loads(text))}
    producer = confluent_kafka.Producer(settings)
    payload = b"x" * config.message_bytes

    def send(seq: int, acks: Acks) -> None:
        producer.produce(config.topic, value=payload, partition=seq % config.partitions,
                         on_delivery=lambda err, _msg: acks.ok(seq) if err is None else acks.failed(seq))

    sends = open_loop(config, send, producer.poll)
    producer.flush(config.delivery_timeout_s)
    producer.poll(1.5)  # one more statistics callback after the flush
    judged = judge(sends, config.rate, config.duration_s, 0.5, 1000.0)
    delays = (sends.completed_ns - sends.intended_ns)[sends.completed_ns >= 0] / 1e6
    brokers = [b for b in (stats[-1]["brokers"].values() if stats else ()) if b["nodeid"] >= 0]
    requests = sum(b["req"].get("Produce", 0) for b in brokers)
    return {"achieved": judged.achieved, "acked": int((sends.completed_ns >= 0).sum()), "sent": len(sends.intended_ns),
            "p50": float(np.percentile(delays, 50)) if len(delays) else float("nan"),
            "max": float(delays.max()) if len(delays) else float("nan"), "requests": requests,
            "bytes": sum(b["txbytes"] for b in brokers) / requests if requests else float("nan"),
            "rtt": max((b["rtt"]["p50"] for b in brokers if b["rtt"]["cnt"]), default=0) / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", choices=list(PORT_BASES), default=["local", "tansu"])
    parser.add_argument("--rate", type=float, default=500.0, help="offered records/s (default 500)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each trial (default 5)")
    parser.add_argument("--port-base", type=int, help="port base of every stack (default: harness_ceiling's)")
    args = parser.parse_args()
    interrupt_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="k6suite-in-flight-") as outputs:
        os.environ["K6SUITE_OUTPUTS"] = outputs
        for name in args.systems:
            with embedded(name, Path(outputs), args.port_base) as profile:
                topic = f"in-flight-{uuid.uuid4().hex[:6]}"
                clients.create_topic(profile, topic, 3)
                config = WorkloadConfig(records=None, duration_s=args.seconds, rate=args.rate, consumers=0,
                                        consumer_mode="none", partitions=3, readback=False, topic=topic,
                                        create_topic=False, client="librdkafka", delivery_timeout_s=10.0)
                for label, extra in VARIANTS:
                    r = trial(profile, replace(config), extra)
                    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                    print(f"[{name}] {label:12s} offered {args.rate:6.0f}/s  achieved {r['achieved']:6.0f}/s  "
                          f"acked {r['acked']}/{r['sent']}  publish delay p50 {r['p50']:7.1f} ms "
                          f"max {r['max']:7.1f} ms  "
                          f"produce requests {r['requests']:5d}  {r['bytes']:6.0f} bytes sent per request  rtt p50 "
                          f"{r['rtt']:7.1f} ms  (load {load})", flush=True)


if __name__ == "__main__":
    main()
