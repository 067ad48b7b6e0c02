"""Running under pytest-xdist: the controller starts the target and runs preflight once, hands the
target to the workers (`workerinput`), and merges what they observed (`workeroutput`), so a parallel
run reports exactly like a serial one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from build_conformance.attribution import REQUESTS_BY_TEST
from build_conformance.config import RunConfig
from build_conformance.harness.embedded import Target
from build_conformance.harness.run import ConformanceRun, open_run, shortcuts_of
from build_conformance.judging.explanations import EXPLANATIONS
from build_conformance.judging.recorder import RECORDER
from build_conformance.provisioning.capabilities import Capabilities
from build_conformance.redaction import Secret

KEY = "build_conformance"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("dsession")


def worker_input(run: ConformanceRun) -> dict[str, Any]:
    """What a worker needs to test the target the controller started and checked."""
    capabilities = run.capabilities or Capabilities()
    return {
        "api_url": run.target.api_url,
        "control_url": run.target.control_url,
        # Workers get the values through execnet's channel (never printed); they wrap them again.
        "tokens": {tenant: token.reveal() for tenant, token in run.target.tokens.items()},
        "faults": list(run.target.embedded_faults),
        "embedded": run.target.embedded,
        "seed": run.seed,
        "run_marker": run.run_marker,
        "trace_id": run.trace_id,
        "budget_file": str(run.budget.shared) if run.budget.shared else None,
        "capabilities": {
            "statuses": sorted(capabilities.statuses),
            "observe": capabilities.observe,
            "advance": capabilities.advance,
            "reasons": capabilities.reasons,
        },
    }


def open_worker_run(config: pytest.Config, run_config: RunConfig) -> ConformanceRun:
    shared = config.workerinput[KEY]  # type: ignore[attr-defined]
    tokens = {tenant: Secret(value, f"token-{tenant.lower()}") for tenant, value in shared["tokens"].items()}
    target = Target(shared["api_url"], shared["control_url"], tokens, tuple(shared["faults"]),
                    embedded=shared.get("embedded", False))
    budget_file = Path(shared["budget_file"]) if shared.get("budget_file") else None
    run = open_run(run_config, target, seed=shared["seed"], run_marker=shared["run_marker"], budget_file=budget_file,
                   trace_id=shared.get("trace_id"))
    capabilities = Capabilities(**{**shared["capabilities"], "statuses": set(shared["capabilities"]["statuses"])})
    run.provisioner.capabilities = capabilities
    return run


def worker_output(run: ConformanceRun) -> dict[str, Any]:
    """What a worker hands back when it finishes."""
    return {
        "observations": RECORDER.export(),
        "explanations": EXPLANATIONS.export(),
        "requests_sent": run.transport.requests_sent,
        "requests_by_test": REQUESTS_BY_TEST.export(),
        "rate": dataclasses.asdict(run.transport.rate_report()),
        "shortcuts": shortcuts_of(run),
        "ledger": run.ledger.as_list(),
        **({"recording": run.recording.export()} if run.recording is not None else {}),
    }


def merge_worker_output(output: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Merge a worker's observations into this process's recorder; its request count and ledger."""
    RECORDER.merge(output["observations"])
    EXPLANATIONS.merge(output.get("explanations", {}))
    REQUESTS_BY_TEST.merge(output.get("requests_by_test", {}))
    return output["requests_sent"], output["ledger"]
