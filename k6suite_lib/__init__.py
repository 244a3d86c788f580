"""K6SUITE: a truth machine for KafScale.

The package is laid out the way data flows through a run:

    profiles -> stack / clients -> workload (+ faults) -> history -> checker -> verdicts -> report

Notebooks under ``notebooks/`` are thin layers over these modules.
"""

__version__ = "0.1.0"
