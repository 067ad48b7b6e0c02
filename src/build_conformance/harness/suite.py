"""How pytest is pointed at the conformance suite, from wherever the suite is started."""

from __future__ import annotations

from pathlib import Path

from build_conformance.resources import suite_dir

PLUGIN = "build_conformance.harness.plugin"
# pytest configuration for runs of the bundled suite, independent of the caller's working directory.
INI_FILE = Path(__file__).resolve().parents[1] / "suite-pytest.ini"


def suite_arguments() -> list[str]:
    """pytest arguments that load the plugin and root the run at the suite directory (no cache files)."""
    return ["-c", str(INI_FILE), "--rootdir", str(suite_dir()), "-p", PLUGIN, "-p", "no:cacheprovider"]
