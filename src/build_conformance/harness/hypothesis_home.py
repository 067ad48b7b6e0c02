"""Hypothesis' own files in the user's cache directory, never in the directory a run starts from.

The suite's properties use no example database (a run replays from its seed), but Hypothesis also
keeps a cache of the constants it finds in local source code. Left alone it writes that cache to
`.hypothesis/` in the current directory, and a run started in a fresh directory (a CI job, a new
report folder) first spends seconds of CPU collecting the constants again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import hypothesis.configuration


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "build-conformance" / "hypothesis"


def use_cache_directory() -> None:
    """Point Hypothesis at the cache directory (a temporary one where the home is not writable); a
    directory the user chose with HYPOTHESIS_STORAGE_DIRECTORY is kept."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    directory = cache_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        directory = Path(tempfile.gettempdir()) / f"build-conformance-hypothesis-{os.getuid()}"
        directory.mkdir(parents=True, exist_ok=True)
    hypothesis.configuration.set_hypothesis_home_dir(directory)
