"""The CI examples (docs/ci/) install the suite in a way that works today.

build-conformance is on no package index, so `pip install build-conformance` fails wherever it is copied.
Every install an example names — the command it runs and the alternatives its comments offer — must be one
the project can actually satisfy:

- a checkout of the suite's repository (a directory the example itself checks the suite out into): this
  repository installs from its checkout;
- `build-conformance @ git+URL@REF`: pip installs the project from a git repository at a ref (tried
  here with this repository at its HEAD commit);
- a wheel file: it has the name `pip wheel` gives this project's wheel (test_packaging builds it).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "docs" / "ci").glob("*.yml"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# `pip install ARGS` up to the end of the line, a closing backtick or a shell operator.
INSTALL = re.compile(r"pip install ([^`\n;&|]+)")
GIT_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(\[[^\]]*\])?\s*@\s*git\+(?P<url>\S+?)@(?P<ref>[^@/\s]+)$")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def expected_wheel() -> str:
    """The file name of this project's wheel, as `pip wheel` builds it (pure Python, any platform)."""
    return f"{re.sub(r'[-_.]+', '_', PYPROJECT['name'])}-{PYPROJECT['version']}-py3-none-any.whl"


def install_specs(text: str) -> list[str]:
    """What each `pip install` in the text installs (its arguments that are not options)."""
    specs = []
    for match in INSTALL.finditer(text):
        specs += [word for word in shlex.split(match.group(1)) if not word.startswith("-")]
    return specs


def checkout_paths(example: dict[str, Any]) -> set[str]:
    """Directories a GitHub Actions workflow checks another repository (the suite's) out into."""
    paths = set()
    for job in (example.get("jobs") or {}).values():
        for step in job.get("steps", []):
            uses, options = str(step.get("uses", "")), step.get("with") or {}
            if uses.startswith("actions/checkout@") and options.get("repository") and options.get("path"):
                paths.add(str(Path(options["path"])))
    return paths


def _pip_dry_run(requirement: str) -> dict[str, Any]:
    """What pip would install for `requirement` (metadata only: nothing installed, no index asked)."""
    # --ignore-installed: with this very version already installed (as CI installs it), pip would otherwise
    # report nothing to install and prove nothing about the form.
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation",
                           "--no-index", "--ignore-installed", "--quiet", "--report", "-", requirement],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _installs_this_project(report: dict[str, Any]) -> None:
    (item,) = report["install"]
    assert normalized(item["metadata"]["name"]) == normalized(PYPROJECT["name"])
    assert item["metadata"]["version"] == PYPROJECT["version"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_each_install_is_one_the_project_can_satisfy(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    example = yaml.safe_load(text)
    specs = install_specs(text)
    assert specs, f"{path.name} installs nothing"
    checkouts = checkout_paths(example)
    for spec in specs:
        git = GIT_REQUIREMENT.match(spec)
        if spec.endswith(".whl"):
            assert Path(spec).name == expected_wheel(), f"{path.name}: {spec} is not the wheel the project builds"
        elif git is not None:
            assert normalized(git["name"]) == normalized(PYPROJECT["name"]), spec
            assert git["ref"], f"{path.name}: pin a tag or commit: {spec}"
        elif spec.startswith(("./", "/", "~")) or spec in (".", ".."):
            assert str(Path(spec)) in checkouts, f"{path.name}: nothing checks the suite out into {spec}"
        else:
            pytest.fail(f"{path.name}: `pip install {spec}` asks a package index, and none serves build-conformance")
    assert re.search(r"(^|\s)build-conformance run(\s|$)", text, re.MULTILINE), f"{path.name} never runs the suite"


def test_every_install_form_the_examples_use_works_with_this_repository() -> None:
    forms = {("git" if GIT_REQUIREMENT.match(s) else "wheel" if s.endswith(".whl") else "checkout")
             for example in EXAMPLES for s in install_specs(example.read_text(encoding="utf-8"))}
    assert forms <= {"git", "wheel", "checkout"}
    if "checkout" in forms:
        _installs_this_project(_pip_dry_run(str(ROOT)))
    if "git" in forms:
        if shutil.which("git") is None or not (ROOT / ".git").exists():
            pytest.skip("not a git checkout: the git+URL@REF form cannot be tried here")
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        # file://localhost/…: pip's requirement parser takes no empty host in a git+file URL.
        _installs_this_project(_pip_dry_run(f"{PYPROJECT['name']} @ git+file://localhost{ROOT.as_posix()}@{head}"))


def test_the_readme_links_the_examples() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for example in EXAMPLES:
        assert f"docs/ci/{example.name}" in readme
