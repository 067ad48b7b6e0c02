"""How pytest is pointed at the conformance suite, from wherever the suite is started."""

from __future__ import annotations

from pathlib import Path

from build_conformance.resources import suite_dir

PLUGIN = "build_conformance.harness.plugin"
# pytest configuration for runs of the bundled suite, independent of the caller's working directory.
INI_FILE = Path(__file__).resolve().parents[1] / "suite-pytest.ini"


def suite_arguments() -> list[str]:
    """pytest arguments that load the plugin and root the run at the suite directory (no cache files).

    Assertion rewriting is off: the suite judges through `check`, not `assert`, and rewriting would
    recompile every module of every installed pytest plugin's distribution (hypothesis, schemathesis)
    at each run — seconds of start-up for nothing. pytest's unraisable-exception hook is off too: at the
    end of a run it collects garbage five times over the whole heap (Hypothesis' and the recorder's),
    most of a second for warnings about `__del__` methods that say nothing about the target.
    """
    return ["-c", str(INI_FILE), "--rootdir", str(suite_dir()), "-p", PLUGIN, "-p", "no:cacheprovider",
            "-p", "no:unraisableexception", "--assert=plain"]
