"""The benchmark (`python bench/run_bench.py`): what a user gets per second of waiting, measured.

One module per thing measured or used to measure:

- `targets`: the profiles, tools, latencies and wall-time limits (the targets a clean run must meet);
- `options`: a benchmark run's options, resolved into a `Plan`;
- `machine`: the machine's load (waiting for a quiet moment), the tree measured, the bytecode cache;
- `servers`: reference servers in their own process at a distance, counting requests, and a minimal ceiling;
- `suite_runs`: one build-conformance run as a user makes it (wall time, requests, rate, verdict, cost);
- `schemathesis_runs`: plain schemathesis on the same OpenAPI document, and its failure signatures;
- `fault_sweep`: every fault of the reference server, one at a time: time to verdict, what failed, what it cost;
- `throughput`: the reference server's cancel throughput under load, beside a minimal server;
- `summary`, `stats`: medians per tool and scenario, targets met or missed;
- `tables`: the Markdown tables (the README's performance section) and a chart;
- `main`: one benchmark run from start to end, and the command line.
"""
