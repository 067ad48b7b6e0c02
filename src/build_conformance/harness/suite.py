"""How pytest is pointed at the conformance suite, from wherever the suite is started."""

from __future__ import annotations

from pathlib import Path

from build_conformance.resources import suite_dir

PLUGIN = "build_conformance.harness.plugin"
# pytest configuration for runs of the bundled suite, independent of the caller's working directory.
INI_FILE = Path(__file__).resolve().parents[1] / "suite-pytest.ini"


# The suite's runs load their own plugins only: whatever else is installed (pytest-benchmark writes
# `.benchmarks/` into the working directory, pytest-randomly reorders tests, rerun plugins repeat failures)
# would change what a run does or leaves behind. Plugins named with `-p` (the user's too) still load.
SUITE_ENVIRONMENT = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
SUITE_PLUGINS = ("_hypothesis_pytestplugin",)
XDIST_PLUGIN = "xdist.plugin"


def suite_arguments(*, xdist: bool = False) -> list[str]:
    """pytest arguments that load the plugin and root the run at the suite directory (no cache files), for a
    process whose environment has SUITE_ENVIRONMENT (`xdist`: with pytest-xdist, for `-n`).

    Assertion rewriting is off: the suite judges through `check`, not `assert`, and rewriting would
    recompile every module of every installed pytest plugin's distribution (hypothesis, schemathesis)
    at each run — seconds of start-up for nothing. pytest's unraisable-exception hook is off too: at the
    end of a run it collects garbage five times over the whole heap (Hypothesis' and the recorder's),
    most of a second for warnings about `__del__` methods that say nothing about the target.
    """
    plugins = [argument for name in (*SUITE_PLUGINS, *([XDIST_PLUGIN] if xdist else [])) for argument in ("-p", name)]
    return ["-c", str(INI_FILE), "--rootdir", str(suite_dir()), *plugins, "-p", PLUGIN, "-p", "no:cacheprovider",
            "-p", "no:unraisableexception", "--assert=plain"]
