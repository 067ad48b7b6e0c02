"""The benchmark (bench/run_bench.py and its package, bench/conformance_bench) on canned data: option parsing,
output parsing, judging and the tables, never a real benchmark.

Performance goals live in the benchmark (its TARGETS and FAULT_RUN_LIMIT_S), not in timed tests.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
FAULT_NAMES = ["bad-enum", "unknown-id-410", "wrong-codes"]


@pytest.fixture(scope="module")
def bench() -> Any:
    """Every public name of the benchmark's modules, in one namespace (as the single script had them)."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        package = importlib.import_module("conformance_bench")
        names: dict[str, Any] = {}
        for info in pkgutil.iter_modules(package.__path__):
            module: ModuleType = importlib.import_module(f"conformance_bench.{info.name}")
            names.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        return SimpleNamespace(**names)
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_each_module_says_what_it_measures() -> None:
    modules = sorted(p.stem for p in (BENCH_DIR / "conformance_bench").glob("*.py") if p.stem != "__init__")
    assert {"fault_sweep", "suite_runs", "schemathesis_runs", "throughput", "servers"} <= set(modules)
    for name in modules:
        text = (BENCH_DIR / "conformance_bench" / f"{name}.py").read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{name}.py has no docstring saying what it measures"
        assert len(text.splitlines()) < 400, f"{name}.py is not small"


def _plan(bench: ModuleType, *argv: str) -> Any:
    return bench.make_plan(bench.build_parser().parse_args(list(argv)), FAULT_NAMES)


def test_defaults_measure_every_profile_at_every_latency(bench: ModuleType) -> None:
    plan = _plan(bench)
    assert plan.profiles == ("quick", "standard", "certify")
    assert plan.latencies == (0.0, 20.0, 40.0, 100.0) and plan.embedded and plan.jitter_ms == 0.0
    assert plan.fault_profiles == ("standard",) and plan.faults == tuple(sorted(FAULT_NAMES))
    assert plan.concurrency_sweep == (1, 4, 8, 16) and plan.concurrency_latency_ms == 40.0
    assert (plan.repeat, plan.fault_repeat, plan.schemathesis, plan.fault_limit_s) == (3, 1, True, 60.0)


def test_selection_flags(bench: ModuleType) -> None:
    plan = _plan(bench, "--profiles", "standard", "--fault-profiles", "", "--faults", "wrong-codes",
                 "--no-schemathesis", "--no-load-test", "--repeat", "2", "--latencies", "40,100",
                 "--concurrency-sweep", "none", "--no-embedded", "--jitter", "5")
    assert plan.profiles == ("standard",) and plan.fault_profiles == ()
    assert plan.faults == ("wrong-codes",) and not plan.schemathesis and plan.load_threads == ()
    assert plan.repeat == 2 and plan.latencies == (40.0, 100.0) and plan.concurrency_sweep == ()
    assert not plan.embedded and plan.jitter_ms == 5.0
    assert plan.recheck and not _plan(bench, "--no-recheck").recheck


def test_quick_bench_is_small(bench: ModuleType) -> None:
    plan = _plan(bench, "--quick-bench")
    assert plan.profiles == ("quick",) and plan.repeat == 1 and plan.max_examples == 20
    assert plan.latencies == (0.0, 40.0) and plan.concurrency_sweep == (4, 8) and plan.concurrency_profile == "quick"
    assert plan.faults == ("unknown-id-410",)  # the canned fault list holds one of the smoke faults
    assert plan.max_load is None and plan.max_wait_total == 0.0


@pytest.mark.parametrize("argv", [["--profiles", "slow"], ["--faults", "no-such-fault"], ["--repeat", "0"],
                                  ["--latencies", "far"], ["--latencies", "-5"], ["--concurrency-sweep", "0"]])
def test_bad_values_are_refused(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(ValueError):
        _plan(bench, *argv)


def test_suite_command_is_a_plain_run_with_tokens_kept_out(bench: ModuleType) -> None:
    argv = bench.suite_command("standard", seed=7, report_dir=Path("r"), api_url="http://h:1",
                               control_url="http://h:1/_control", concurrency=4, durations=8)
    assert argv[1:4] == ["-m", "build_conformance.cli", "run"]
    assert argv[argv.index("--base-url") + 1] == "http://h:1" and argv[argv.index("--concurrency") + 1] == "4"
    assert argv[-2:] == ["--", "--durations=8"]
    assert not any("token" in a.lower() or "rate-limit" in a for a in argv)
    embedded = bench.suite_command("quick", seed=7, report_dir=Path("r"), fault="bad-enum")
    assert "--base-url" not in embedded and embedded[embedded.index("--fault") + 1] == "bad-enum"
    # A fault run is a user's run: the default timeouts, also against a fault that hangs.
    hanging = bench.suite_command("quick", seed=7, report_dir=Path("r"), fault="slow-cancel-hang")
    assert not any(a in ("--settle-timeout", "--request-timeout") for a in [*embedded, *hanging])
    public = bench.suite_command("standard", seed=7, report_dir=Path("r"), fault="newest-build-id")
    assert public[public.index("--provisioner") + 1] == "public-api"  # what the fault needs to be met at all


OUTPUT = """\
  [ 22/104]    6.4s  AUTH               test_auth.py              22 tests  22 passed
  [104/104]    8.5s  STATE +AUTH,BODY…  test_state_machine.py      6 tests  6 passed

seed 1 (replay the same inputs with --seed 1)
1132 requests, 102/s effective (limit 400/s at the end, adaptive); 165 builds started
============================= slowest 2 durations =============================
5.08s call     test_auth.py::test_missing_authorization_header
0.34s setup    test_path.py::test_x[a b]
CONFORMANT · 52 requirements: 52 passed · 104 tests in 10.2s
"""


def test_facts_from_a_runs_output_and_results(bench: ModuleType) -> None:
    facts = bench.parse_suite_output(OUTPUT)
    assert facts["suite_s"] == 10.2
    assert facts["rate_line"].startswith("1132 requests, 102/s effective")
    assert facts["files_done_s"] == {"test_auth.py": 6.4, "test_state_machine.py": 8.5}
    assert facts["slowest_tests"][0] == {"test": "test_auth.py::test_missing_authorization_header", "phase": "call",
                                         "s": 5.08}
    assert facts["slowest_tests"][1]["test"] == "test_path.py::test_x[a b]"
    results = {"requests_sent": 1132, "rate": {"effective_per_s": 102.4, "backoffs": 0, "final_limit_per_s": 400.0},
               "requirements": [{"id": "A-1", "duration_s": 3.0, "requests": 10},
                                {"id": "B-1", "duration_s": 1.0, "requests": 90}]}
    cost = bench.results_facts(results, top=1)
    assert cost["requests"] == 1132 and cost["rate"]["effective_per_s"] == 102.4
    assert cost["slowest_requirements"][0]["id"] == "A-1" and cost["busiest_requirements"][0]["id"] == "B-1"
    assert bench.parse_suite_output("")["suite_s"] is None


def _suite(tool: str, fault: str | None, wall: float, *, target: str = "embedded", latency: float = 0.0,
           caught: bool = True, concurrency: int = 8) -> dict[str, Any]:
    record: dict[str, Any] = {"tool": tool, "fault": fault, "target": target, "latency_ms": latency,
                              "concurrency": concurrency, "wall_s": wall, "suite_s": wall - 2.0, "requests": 1000,
                              "rate": {"effective_per_s": 100.0, "backoffs": 0}, "verdict": "conformant",
                              "problem": None, "load_before": 0.5,
                              "slowest_tests": [{"test": "test_auth.py::t", "phase": "call", "s": 1.5}]}
    if fault:
        record.update(caught=caught, verdict="non-conformant")
    else:
        record["false_alarms"] = []
    return record


def _st(fault: str | None, wall: float, signatures: list[str], latency: float = 0.0) -> dict[str, Any]:
    return {"tool": "schemathesis", "fault": fault, "target": "external", "latency_ms": latency, "wall_s": wall,
            "requests": 120, "failed": True, "signatures": signatures, "problem": None, "load_before": 0.5}


def canned() -> dict[str, Any]:
    st400 = ["status_code_conformance:ST103:400"]
    clean = [_suite("standard", None, w) for w in (12.0, 10.0, 11.0)]
    clean += [_suite("standard", None, w, target="external", latency=0.0) for w in (9.0, 9.5, 9.0)]
    clean += [_suite("standard", None, w, target="external", latency=40.0) for w in (24.0, 22.0, 30.0)]
    clean += [_st(None, 2.0, st400) for _ in range(3)] + [_st(None, 8.0, st400, 40.0) for _ in range(3)]
    return {
        "settings": {"repeat": 3, "fault_repeat": 1, "jobs": 2, "seed": 1, "max_examples": 100, "fault_limit_s": 120},
        "machine": {"cpus": 2, "python": "3.11", "load_start": 0.4, "load_end": 0.9},
        "clean_runs": clean,
        "concurrency_runs": [_suite("standard", None, w, target="external", latency=40.0, concurrency=c)
                             for c, w in ((1, 90.0), (8, 22.0))],
        "fault_runs": [
            _suite("standard", "bad-enum", 30.0), _suite("standard", "unknown-id-410", 150.0, caught=False),
            _st("bad-enum", 3.0, st400),
            _st("unknown-id-410", 3.0, [*st400, "status_code_conformance:ST103:410"]),
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


def test_summary_curve_targets_faults_and_concurrency(bench: ModuleType) -> None:
    results = canned()
    bench.judge_schemathesis([r for r in results["fault_runs"] if r["tool"] == "schemathesis"],
                             [r for r in results["clean_runs"] if r["tool"] == "schemathesis"])
    summary = bench.summarise(results)
    curve = {(r["tool"], r["target"], r["latency_ms"]): r for r in summary["curve"]}
    embedded = curve[("standard", "embedded", 0.0)]
    assert embedded["wall_median_s"] == 11.0 and embedded["time_vs_schemathesis"] == 5.5
    far = curve[("standard", "external", 40.0)]
    assert far["wall_median_s"] == 24.0 and far["time_vs_schemathesis"] == 3.0 and far["time_vs_0ms"] == 2.67
    assert far["serial_round_trips_s"] == 40.0 and far["startup_median_s"] == 2.0
    targets = {(t["tool"], t["target"], t["latency_ms"]): t for t in summary["targets"]}
    assert targets[("standard", "embedded", 0.0)]["met"] is False  # 11 s > 10 s
    assert targets[("standard", "external", 0.0)]["met"] is True
    assert targets[("standard", "external", 40.0)]["met"] is False  # 24 s > 10 s
    assert targets[("quick", "external", 40.0)]["met"] is None  # not measured
    faults = {r["tool"]: r for r in summary["faults"]}
    assert (faults["standard"]["faults_caught"], faults["standard"]["faults_total"]) == (1, 2)
    assert faults["standard"]["faults_missed"] == ["unknown-id-410"]
    assert faults["standard"]["over_limit"] == [{"fault": "unknown-id-410", "wall_s": 150.0}]
    assert not faults["standard"]["limit_met"] and "limit_s" not in faults["schemathesis"]
    assert faults["schemathesis"]["faults_caught"] == 1 and faults["schemathesis"]["faults_caught_strict"] == 0
    assert [(r["concurrency"], r["wall_median_s"]) for r in summary["concurrency"]] == [(1, 90.0), (8, 22.0)]

    table = bench.render_table(results)
    assert "| `standard`, reference server at 40 ms | ≤ 10 s | 24.0 s | 3, 22.0–30.0 s |" in table
    assert "**MISSED** (2.4× the limit)" in table
    assert "| tool | embedded | 0 ms | 40 ms |" in table
    assert "| build-conformance `standard` | 11.0 s (5.5×) | 9.0 s (4.5×) | 24.0 s (3.0×) |" in table
    assert "| schemathesis | - | 2.0 s | 8.0 s |" in table
    assert "unknown-id-410 150 s (limit 120 s: **MISSED**)" in table
    assert "| 1 | standard | 40 ms | 90.0 s |" in table
    assert "| minimal http.server (ceiling) | 8 | 2400 | 0 | 2000 |" in table
    assert "missed in the sweep" not in table  # no rechecks in this document
    chart = bench.text_chart(summary["curve"], width=10)
    assert "standard         0 ms |####" in chart and " 40 ms |########## 24.0 s" in chart


def test_missed_fault_runs_rechecked_alone(bench: ModuleType) -> None:
    results = canned()
    again = _suite("standard", "unknown-id-410", 40.0)
    again.update(sweep_extra_failed=["GEN-02"], sweep_wall_s=150.0)
    results["fault_rechecks"] = [again]
    row = next(r for r in bench.summarise(results)["faults"] if r["tool"] == "standard")
    assert row["faults_caught"] == 1 and row["caught_on_recheck"] == ["unknown-id-410"] and row["still_missed"] == []
    assert row["recheck_reasons"] == ["unknown-id-410: GEN-02"]
    table = bench.render_table(results)
    assert "| 1/2 in the sweep; 2/2 with the 1 missed re-run alone (1 caught) | none |" in table
    assert "missed in the sweep, caught when re-run alone: unknown-id-410" in table


def test_render_an_earlier_results_file(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(canned()), encoding="utf-8")
    assert bench.main(["--render", str(path)]) == 0
    out = capsys.readouterr().out
    assert "### Targets" in out and "### Latency curve" in out and "### Concurrency sweep" in out


def test_tree_fingerprint_names_files_edited_during_a_run(bench: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n", encoding="utf-8")
    before = bench.tree_digests(tmp_path)
    (tmp_path / "src" / "a.py").write_text("x = 2\n", encoding="utf-8")
    (tmp_path / "src" / "b.py").write_text("", encoding="utf-8")
    assert bench.tree_changes(before, bench.tree_digests(tmp_path)) == ["src/a.py", "src/b.py"]
    assert bench.tree_state(tmp_path)["files"] == 2


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


def _fault(fault: str, wall: float, requests: int, builds: int, failed: list[str], caught: bool = True
           ) -> dict[str, Any]:
    return {**_suite("standard", fault, wall, caught=caught), "requests": requests, "builds_started": builds,
            "failed": failed}


def test_fault_sweep_per_fault_before_and_after(bench: Any) -> None:
    before = {"settings": {"fault_limit_s": 60.0},
              "fault_clean_runs": [{**_suite("standard", None, 12.0), "builds_started": 200}],
              "fault_runs": [_fault("slow-cancel-hang", 272.0, 3748, 483, ["GEN-02"]),
                             _fault("bad-enum", 17.0, 1555, 212, ["SHAPE-02"])]}
    after = {"settings": {"fault_limit_s": 60.0},
             "fault_clean_runs": [{**_suite("standard", None, 12.0), "requests": 1500, "builds_started": 200}],
             "fault_runs": [_fault("slow-cancel-hang", 31.0, 1332, 209, ["GEN-02"]),
                            _fault("bad-enum", 16.0, 1550, 212, ["SHAPE-02"], caught=False)]}
    table = bench.render_fault_runs(after, before)
    assert "| slow-cancel-hang | 272 s | 3748 | 483 | 31 s | 1332 | 209 | GEN-02 | yes |" in table
    assert "| bad-enum | 17 s | 1555 | 212 | 16 s | 1550 | 212 | SHAPE-02 | **NO** |" in table
    assert "before: 2 faults, 2 caught; time to verdict median 144.5 s, slowest slow-cancel-hang 272 s" in table
    assert table.endswith("after: 2 faults, 1 caught; time to verdict median 23.5 s, slowest slow-cancel-hang 31 s, "
                          "bad-enum 16 s; 0 over 60 s")
    alone = bench.render_fault_runs(after)
    assert "| slow-cancel-hang | 31 s | GEN-02 | 1332 | 209 | yes |" in alone
    costs = bench.render_fault_costs(after, ["slow-cancel-hang"], before)
    assert "| after | (clean) | 1500 | 1.0× | 200 | 1.0× |" in costs
    assert "| before | slow-cancel-hang | 3748 | 3.7× | 483 | 2.4× |" in costs  # before's clean: 1000 requests
    table = bench.render_table({**after, "clean_runs": [], "concurrency_runs": [], "load_test": []}, before=before)
    assert "### Time to verdict per fault (standard, default timeouts)" in table
