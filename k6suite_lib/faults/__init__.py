"""The nemesis: faults by role (broker, storage, metadata store), applied by drivers by mechanism.

- process: signals to the embedded stack's real processes (SIGKILL, SIGTERM+grace, SIGSTOP/SIGCONT),
  restart with the same id, add a broker;
- network: Toxiproxy toxics on the broker->storage and broker->etcd paths (latency with jitter,
  bandwidth, black hole, connection reset, full outage);
- kubernetes: pod deletion, scaling and rollout restart through the official client.

A Fault has start() and stop(); a Schedule runs faults beside a workload and records every start
and end in the history, so checks and plots know the fault windows.
"""
