"""What is measured against what limit: the profiles and tools, the latencies, the wall-time targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = ROOT / "bench" / "run_bench.py"  # what a child process runs (e.g. `serve-counting`)
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"
PROFILES = ("quick", "standard", "certify")
TOOLS = (*PROFILES, "schemathesis")
EMBEDDED = "embedded"  # `build-conformance run` against its own embedded reference server (no latency)
EXTERNAL = "external"  # a reference server in its own process, given as --base-url/--control-url
LATENCIES_MS = (0.0, 20.0, 40.0, 100.0)
CONCURRENCY_SWEEP = (1, 4, 8, 16)
SUITE_CONCURRENCY = 8  # the suite's default --concurrency
DEFAULT_SEED = 20261128
QUICK_BENCH_FAULTS = ("unknown-id-410", "missing-required-field", "overwrite-reason-on-repeat")
SCHEMATHESIS_TIMEOUT_S = 600.0
SUITE_REQUEST_TIMEOUT_S = 10.0  # the suite's default --request-timeout, given to schemathesis against a fault
FORMAT = "build-conformance-bench/3"


@dataclass(frozen=True)
class Target:
    """A wall-time target of clean runs (issue "Fast at real network distance"): median ≤ limit_s."""

    tool: str
    target: str  # EMBEDDED or EXTERNAL
    latency_ms: float
    limit_s: float

    @property
    def label(self) -> str:
        where = "embedded server" if self.target == EMBEDDED else f"reference server at {self.latency_ms:g} ms"
        return f"`{self.tool}`, {where}"


# On a 2-core machine, default settings (no --rate-limit, --concurrency 8).
TARGETS = (
    Target("quick", EXTERNAL, 40.0, 8.0),
    Target("standard", EXTERNAL, 40.0, 10.0),
    Target("certify", EXTERNAL, 40.0, 120.0),
    Target("standard", EXTERNAL, 0.0, 10.0),
    Target("standard", EMBEDDED, 0.0, 10.0),
)
# No fault run of this profile may take longer to its verdict (a whole-suite run against a server with one
# defect, default timeouts: what a release engineer waits for in CI).
FAULT_RUN_LIMIT_S = 60.0
FAULT_LIMIT_PROFILE = "standard"
# Fault runs whose cost (requests, builds) is shown beside a clean run's: defects met in generated inputs (where
# Hypothesis shrinks), in the lifecycle, and hangs.
FAULT_COST_EXAMPLES = ("reason-truncated", "wrong-type-reason-accepted", "overwrite-reason-on-repeat",
                       "building-finishes-ready", "duration-from-queued", "slow-cancel-hang")
