"""Workloads: clients that run against a target and record a history (see history.py).

- ``config``: what a workload is asked to do (WorkloadConfig) and what it returns (WorkloadResult);
- ``context``: what its threads share (recorder, live tracker, stop signals, notes);
- ``producer``, ``consumer``: recording clients; ``readback``: the final read to the end of the log;
- ``orchestrator``: runs them beside a nemesis (``run_workload``);
- ``read_your_writes``: writers that read each acknowledged write back at once.
"""

from k6suite_lib.workload.config import WorkloadConfig, WorkloadResult, new_run_id
from k6suite_lib.workload.orchestrator import Nemesis, run_workload
from k6suite_lib.workload.read_your_writes import read_your_writes

__all__ = ["Nemesis", "WorkloadConfig", "WorkloadResult", "new_run_id", "read_your_writes", "run_workload"]
