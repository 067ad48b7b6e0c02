"""Certification bundles: a run's results and reports, with a manifest of their sha256 digests.

`verify` proves a bundle is complete and unchanged since it was written. The manifest is not
signed: it detects accidents and edits of single files, not someone who rewrites both a file and
its manifest entry. For that, record the manifest's own sha256 (printed by certify and verify)
somewhere the vendor does not control, and give it back to `verify --expect-sha256`.

The manifest also names what was certified (`target`: base URL, control URL, the server's identity
when the run learned it), so a reader does not have to open results.json to see it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from . import write_reports
from .results_file import ResultsError, read_json, validate
from .text import safe

RESULTS: Final = "results.json"
CONFIGURATION: Final = "configuration.json"
MANIFEST: Final = "manifest.json"
BUNDLE_FILES: Final = (RESULTS, "junit.xml", "report.html", "summary.md", CONFIGURATION)
BUNDLE_FORMAT: Final = 1
# Fields the manifest repeats from results.json, so a reader sees them without opening the results.
SUMMARY_FIELDS: Final = ("suite_version", "catalogue_version", "catalogue_digest", "verdict", "profile", "seed")
# What the manifest says about the target, copied from results.json's target.
TARGET_FIELDS: Final = ("base_url", "control_url", "server", "embedded_reference_server", "faults")


class BundleUnreadable(Exception):
    """The bundle cannot be examined at all (no such directory, permission denied)."""


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    manifest_sha256: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def target_identity(results: dict[str, Any]) -> dict[str, Any]:
    """What was certified, as the manifest records it (absent fields are left out)."""
    target = results.get("target") or {}
    return {key: target[key] for key in TARGET_FIELDS if key in target}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_bundle(bundle_dir: Path, results: dict[str, Any], created_at: str) -> Path:
    """Complete a bundle around its results.json: reports, configuration.json, then manifest.json last.

    The manifest is written last so that a bundle interrupted half-way has no manifest and fails
    verification rather than passing with some files missing.
    """
    write_reports(results, bundle_dir)
    # The configuration is already redacted in results.json (secrets are "<set>"/"<unset>").
    (bundle_dir / CONFIGURATION).write_text(_dump(results.get("configuration", {})), encoding="utf-8")
    files = {
        name: {"sha256": sha256_of(bundle_dir / name), "bytes": (bundle_dir / name).stat().st_size}
        for name in BUNDLE_FILES
    }
    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        "created_at": created_at,
        **{key: results.get(key) for key in SUMMARY_FIELDS},
        "target": target_identity(results),
        "files": files,
    }
    path = bundle_dir / MANIFEST
    path.write_text(_dump(manifest), encoding="utf-8")
    return path


def _manifest_problems(manifest: Any) -> list[str]:
    if not isinstance(manifest, dict):
        return ["manifest.json is not a JSON object"]
    if manifest.get("bundle_format") != BUNDLE_FORMAT:
        return [f"manifest.json has bundle_format {manifest.get('bundle_format')!r}, expected {BUNDLE_FORMAT}"]
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
        for v in files.values()
    ):
        return ["manifest.json has no valid files table (name -> {sha256, bytes})"]
    # A manifest names files inside the bundle only: never make verify read elsewhere.
    outside = [name for name in files if name in ("", ".", "..") or "/" in name or "\\" in name]
    if outside:
        return [f"manifest.json names files outside the bundle: {', '.join(sorted(outside))}"]
    return []


def _digest(text: str) -> str:
    return text.strip().lower().removeprefix("sha256:")


def verify_bundle(bundle_dir: Path, expected_manifest_sha256: str | None = None) -> Verification:
    """Every reason `bundle_dir` is not a complete, unchanged certification bundle (none: it is).

    With `expected_manifest_sha256` (recorded when the bundle was certified), a manifest that was
    rewritten to match edited files is caught too.
    """
    if not bundle_dir.exists():
        raise BundleUnreadable(f"{bundle_dir}: no such directory")
    if not bundle_dir.is_dir():
        raise BundleUnreadable(f"{bundle_dir}: not a directory")
    try:
        present = {p.name for p in bundle_dir.iterdir()}
    except OSError as exc:
        raise BundleUnreadable(f"{bundle_dir}: cannot list: {exc.strerror}") from None
    result = Verification()
    problems = result.problems
    if MANIFEST not in present:
        problems.append("manifest.json is missing (incomplete bundle)")
        problems += [f"{name} is missing" for name in BUNDLE_FILES if name not in present]
        return result
    try:
        result.manifest_sha256 = sha256_of(bundle_dir / MANIFEST)
        manifest = read_json(bundle_dir / MANIFEST)
    except ResultsError as exc:
        problems.append(f"manifest.json is unreadable: {exc}")
        return result
    except OSError as exc:
        raise BundleUnreadable(f"{bundle_dir / MANIFEST}: cannot read: {exc.strerror}") from None
    if expected_manifest_sha256 is not None and _digest(expected_manifest_sha256) != result.manifest_sha256:
        problems.append(
            f"manifest.json has sha256 {result.manifest_sha256}, not the expected {_digest(expected_manifest_sha256)}: "
            "the bundle was rewritten after its digest was recorded"
        )
    shape = _manifest_problems(manifest)
    if shape:
        problems += shape
        return result
    result.manifest = manifest
    listed: dict[str, dict[str, Any]] = manifest["files"]
    for name in BUNDLE_FILES:
        if name not in listed:
            problems.append(f"{name} is not listed in manifest.json")
    for name, entry in listed.items():
        path = bundle_dir / name
        if name not in present or not path.is_file():
            problems.append(f"{name} is missing")
            continue
        try:
            digest = sha256_of(path)
        except OSError as exc:
            raise BundleUnreadable(f"{path}: cannot read: {exc.strerror}") from None
        if digest != entry["sha256"]:
            problems.append(f"{name} was modified: sha256 {digest} differs from the manifest's {entry['sha256']}")
    for name in sorted(present - set(listed) - {MANIFEST}):
        problems.append(f"{name} is not part of the bundle (not in manifest.json)")
    if RESULTS in present and (bundle_dir / RESULTS).is_file():
        problems += _results_problems(bundle_dir, manifest)
    return result


def _results_problems(bundle_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """The results must be valid, from a certify run, and agree with the manifest and configuration.json."""
    try:
        results = read_json(bundle_dir / RESULTS)
    except ResultsError as exc:
        return [f"results.json is unreadable: {exc}"]
    invalid = validate(results)
    if invalid:
        return [f"results.json is not a valid results document: {invalid[0]}"]
    problems = []
    for key in SUMMARY_FIELDS:
        if manifest.get(key) != results.get(key):
            problems.append(
                f"manifest.json says {key} {manifest.get(key)!r} but results.json says {results.get(key)!r}"
            )
    if "target" in manifest and manifest["target"] != target_identity(results):
        problems.append(f"manifest.json names the target {manifest['target']!r} but results.json says "
                        f"{target_identity(results)!r}")
    if results.get("profile") != "certify":
        problems.append(f"results.json is from a {results.get('profile')!r} run, not a certify run")
    try:
        configuration = read_json(bundle_dir / CONFIGURATION)
    except ResultsError:
        configuration = None  # missing or unreadable: already reported against the manifest
    if configuration is not None and configuration != results.get("configuration"):
        problems.append("configuration.json does not match the configuration in results.json")
    return [safe(p) for p in problems]
