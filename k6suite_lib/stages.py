"""CI stages from the seed: which scenarios, tier and parameters answer each stage's question.

A stage is a named choice of what to run, so KafScale's CI can ask the suite one question per
pipeline step and get an answer within that step's time budget on a 2-core runner:

- ``pr``: "we didn't break Kafka semantics": S1 (the endpoint and the protocol) and the core of S3
  (produce and consume while both run, read-your-writes on one connection, the group protocol);
- ``main``: "we didn't break durability": S4 (a broker killed, a broker paused), S5 (object-store
  slowness and outage), S5b (metadata-store slowness and outage);
- ``release``: "we didn't break the architecture": every scenario, at the contract's full sizes,
  each fault scenario repeated so a probabilistic failure shows as k of N.

The budgets are what benchmarks/stage_times.py measures against; a stage over its budget gets
lighter (fewer variants, shorter phases), never fewer of the checks that decide its question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Stage:
    name: str
    question: str
    scenarios: tuple[str, ...]
    tier: str
    parameters: dict[str, Any] = field(default_factory=dict)
    budget_s: float | None = None  # wall time on this 2-core machine, stack start included


# S3's core: overlapping produce/consume decides loss, duplicates, order, the read-back and storage;
# read-your-writes decides visibility on one shared connection; consumer-group decides the group
# protocol (ownership, commits). single-record and many-producers-one-consumer judge with overlap's
# checks; topic-auto-create (a broker setting many clusters turn off, and 15 s of a failing build's
# delivery timeout) is left to release: with it the pr stage took 206 s of its 180 s here.
S3_CORE = ["overlap", "read-your-writes", "consumer-group"]
# Each read of one's own write that does not come waits its 5 s timeout: 5 per writer instead of 20
# keeps a failing build's pr stage in budget and still fails it at the first write not read back.
PR_OWN_READS = 5
# S4 in main: SIGKILL (nothing flushed) and SIGSTOP (a silent broker that comes back) decide durability;
# SIGTERM's graceful death, the gentlest, is left to release. All three kept main at 491 s of 480.
MAIN_KINDS = ["kill", "pause"]
RELEASE_REPEATS = 3

STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("pr", "we didn't break Kafka semantics", ("S1", "S3"), "smoke",
          {"variants": S3_CORE, "own_reads": PR_OWN_READS}, budget_s=180),
    Stage("main", "we didn't break durability", ("S4", "S5", "S5b"), "smoke", {"kinds": MAIN_KINDS}, budget_s=480),
    Stage("release", "we didn't break the architecture", ("S1", "S2", "S3", "S4", "S5", "S5b", "S6", "S7", "S8"),
          "full", {"repeats": RELEASE_REPEATS}),
)}


def resolve(name: str, scenarios: list[str] | None, tier: str | None,
            parameters: dict[str, Any]) -> tuple[list[str], str, dict[str, Any]]:
    """The stage's scenarios, tier and parameters; a --param given on the command line wins over
    the stage's own. Choosing scenarios or a tier beside a stage is refused: the stage is that choice."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    if scenarios or tier:
        raise ValueError("--stage chooses the scenarios and the tier; leave out --scenarios and --tier")
    stage = STAGES[name]
    return list(stage.scenarios), stage.tier, {**stage.parameters, **parameters}
