"""Where the contract (schemas/) and the conformance suite (tests/) live.

Both directories sit at the top of the repository, where people look for them. A wheel cannot ship
top-level directories, so the build copies them to ``build_conformance/_bundled/`` (pyproject
``force-include``). The bundled copy wins: an installed package must not pick up whatever checkout
happens to surround it.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_BUNDLED_DIR = _PACKAGE_DIR / "_bundled"
# src/build_conformance/resources.py -> the repository root is two levels above the package.
_CHECKOUT_DIR = _PACKAGE_DIR.parents[1]


class ResourceNotFoundError(FileNotFoundError):
    """Neither the wheel's bundled copy nor a repository checkout holds the directory."""


def _locate(name: str) -> Path:
    candidates = (_BUNDLED_DIR / name, _CHECKOUT_DIR / name)
    if candidates[0].is_dir():
        return candidates[0]
    # An installed (non-editable) package sits in site-packages, whose grandparent is no checkout; the
    # pyproject.toml guard keeps us from adopting an unrelated ``tests/`` directory found there.
    if candidates[1].is_dir() and (_CHECKOUT_DIR / "pyproject.toml").is_file():
        return candidates[1]
    tried = ", ".join(str(c) for c in candidates)
    raise ResourceNotFoundError(
        f"build-conformance cannot find its {name}/ directory (tried {tried}); "
        "install the package from a wheel or run it from a repository checkout"
    )


def schemas_dir() -> Path:
    """The directory holding the JSON Schemas, openapi.json and DECISIONS.md."""
    return _locate("schemas")


def suite_dir() -> Path:
    """The directory holding the conformance tests users run."""
    return _locate("tests")
