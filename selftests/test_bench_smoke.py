"""bench/run_bench.py on canned data: option parsing, judging and the table, never a real benchmark.

Performance goals live in the benchmark script (its targets column), not in timed tests.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run_bench.py"
FAULT_NAMES = ["bad-enum", "unknown-id-410", "wrong-codes"]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_bench", module)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _plan(bench: ModuleType, *argv: str) -> Any:
    return bench.make_plan(bench.build_parser().parse_args(list(argv)), FAULT_NAMES)


def test_defaults_run_every_profile_and_fault(bench: ModuleType) -> None:
    plan = _plan(bench)
    assert plan.profiles == plan.fault_profiles == ("quick", "standard", "certify")
    assert plan.faults == tuple(sorted(FAULT_NAMES))
    assert (plan.repeat, plan.fault_repeat, plan.schemathesis) == (3, 1, True)


def test_selection_flags(bench: ModuleType) -> None:
    plan = _plan(bench, "--profiles", "standard", "--fault-profiles", "", "--faults", "wrong-codes",
                 "--no-schemathesis", "--no-load-test", "--repeat", "2")
    assert plan.profiles == ("standard",) and plan.fault_profiles == ()
    assert plan.faults == ("wrong-codes",) and not plan.schemathesis and plan.load_threads == ()
    assert plan.repeat == 2


def test_quick_bench_is_small(bench: ModuleType) -> None:
    plan = _plan(bench, "--quick-bench")
    assert plan.profiles == ("quick",) and plan.repeat == 1 and plan.max_examples == 20
    assert plan.faults == ("unknown-id-410",)  # the canned fault list holds one of the smoke faults
    assert plan.max_load is None


@pytest.mark.parametrize("argv", [["--profiles", "slow"], ["--faults", "no-such-fault"], ["--repeat", "0"]])
def test_bad_values_are_refused(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(ValueError):
        _plan(bench, *argv)


def _suite(tool: str, fault: str | None, wall: float, caught: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {"tool": tool, "fault": fault, "wall_s": wall, "requests": 1000, "verdict": "conformant",
                              "problem": None}
    if fault:
        record.update(caught=caught, verdict="non-conformant")
    else:
        record["false_alarms"] = []
    return record


def _st(fault: str | None, wall: float, signatures: list[str]) -> dict[str, Any]:
    return {"tool": "schemathesis", "fault": fault, "wall_s": wall, "requests": 120, "failed": True,
            "signatures": signatures, "problem": None}


def canned() -> dict[str, Any]:
    clean_st = [_st(None, 2.0, ["status_code_conformance:ST103:400"]) for _ in range(3)]
    return {
        "settings": {"repeat": 3, "fault_repeat": 1, "jobs": 2, "seed": 1, "max_examples": 100},
        "machine": {"cpus": 2, "python": "3.11", "load_start": 0.4, "load_end": 0.9},
        "clean_runs": [_suite("standard", None, w) for w in (12.0, 10.0, 11.0)] + clean_st,
        "fault_runs": [
            _suite("standard", "bad-enum", 30.0), _suite("standard", "unknown-id-410", 30.0, caught=False),
            _st("bad-enum", 3.0, ["status_code_conformance:ST103:400"]),
            _st("unknown-id-410", 3.0, ["status_code_conformance:ST103:400", "status_code_conformance:ST103:410"]),
        ],
        "load_test": [{"server": "reference", "threads": 8, "requests": 2400, "errors": 0, "elapsed_s": 4.0,
                       "rps": 600.0, "p50_ms": 10.0, "p95_ms": 20.0, "p99_ms": 30.0},
                      {"server": "minimal", "threads": 8, "requests": 2400, "errors": 0, "elapsed_s": 1.2,
                       "rps": 2000.0, "p50_ms": 3.0, "p95_ms": 5.0, "p99_ms": 7.0}],
    }


def test_schemathesis_catches_only_new_failure_signatures(bench: ModuleType) -> None:
    results = canned()
    faults = [r for r in results["fault_runs"] if r["tool"] == "schemathesis"]
    bench.judge_schemathesis(faults, [r for r in results["clean_runs"] if r["tool"] == "schemathesis"])
    assert [(r["fault"], r["caught"], r["caught_strict"]) for r in faults] == [
        ("bad-enum", False, False), ("unknown-id-410", True, False)]
    assert faults[1]["new_signatures"] == ["status_code_conformance:ST103:410"]


def test_summary_and_table(bench: ModuleType) -> None:
    results = canned()
    bench.judge_schemathesis([r for r in results["fault_runs"] if r["tool"] == "schemathesis"],
                             [r for r in results["clean_runs"] if r["tool"] == "schemathesis"])
    rows = {row["profile"] or row["tool"]: row for row in bench.summarise(results)}
    standard = rows["standard"]
    assert standard["clean_wall_median_s"] == 11.0 and standard["target_met"]
    assert (standard["faults_caught"], standard["faults_total"]) == (1, 2)
    assert standard["faults_missed"] == ["unknown-id-410"]
    assert standard["caught_per_minute"] == 1.0  # one fault in 60 s of fault runs
    assert standard["time_vs_schemathesis"] == 5.5
    assert rows["schemathesis"]["faults_caught"] == 1 and rows["schemathesis"]["faults_caught_strict"] == 0
    table = bench.render_table(results)
    assert "| build-conformance `standard` | 11.0 s (10.0–12.0) | 1000 | conformant | 1/2 |" in table
    assert "1/2 new failures, 0 strict" in table
    assert "| fails (`status_code_conformance:ST103:400`) |" in table
    assert "< 60 s met" in table
    assert "| minimal http.server (ceiling) | 8 | 2400 | 0 | 2000 |" in table


def test_render_an_earlier_results_file(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(canned()), encoding="utf-8")
    assert bench.main(["--render", str(path)]) == 0
    assert "| tool | clean wall (median) |" in capsys.readouterr().out


def test_failure_signatures_from_schemathesis_reports(bench: ModuleType, tmp_path: Path) -> None:
    case = {"checks": {"c1": [{"name": "not_a_server_error", "status": "success"},
                              {"name": "status_code_conformance", "status": "failure",
                               "failure_info": {"failure": {"code": "ST103"}}}]},
            "interactions": {"c1": {"response": {"status_code": 410}}, "c2": {}}}
    events = [{"Initialize": {}}, {"ScenarioFinished": {"recorder": case}}]
    (tmp_path / "ndjson-1.ndjson").write_text("\n".join(json.dumps(e) for e in events), encoding="utf-8")
    (tmp_path / "json-1.json").write_text(json.dumps({"errors": [{"title": "Read timed out"}]}), encoding="utf-8")
    signatures, interactions = bench.failure_signatures(tmp_path)
    assert signatures == {"status_code_conformance:ST103:410", "error:Read timed out"}
    assert interactions == 2
