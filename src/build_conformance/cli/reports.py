"""The reporting subcommands of `build-conformance`: report, diff, certify, verify.
Errors are `ERROR: build-conformance: ...` lines on stderr and never carry a credential.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from build_conformance.cli.errors import EXIT_USAGE, error
from build_conformance.cli.run import flags, run_suite
from build_conformance.config import ConfigError, resolve
from build_conformance.reporting import write_reports
from build_conformance.reporting.bundle import BundleUnreadable, target_identity, verify_bundle, write_bundle
from build_conformance.reporting.diff import run_diff
from build_conformance.reporting.results_file import ResultsError, load_results

EXIT_OK = 0
EXIT_PROBLEMS = 1


def add_report_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    report = add("report", "re-render junit.xml, report.html and summary.md from a results.json")
    report.add_argument("results", type=Path, metavar="RESULTS.json", help="path to results.json")
    report.add_argument("--out-dir", type=Path, default=None, metavar="DIR",
                        help="where to write (default: beside results.json)")
    diff = add("diff", "compare two results.json: regressed, fixed, changed from not-run; exit 1 on a regression")
    diff.add_argument("old", type=Path, metavar="OLD.json", help="results.json of the earlier run")
    diff.add_argument("new", type=Path, metavar="NEW.json", help="results.json of the later run")
    verify = add("verify", "check a certification bundle is complete and unchanged; exit 1 if not")
    verify.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle directory written by `certify`")
    verify.add_argument("--expect-sha256", default=None, metavar="DIGEST",
                        help="the manifest's sha256 as recorded elsewhere when certify printed it: catches a "
                             "bundle whose files and manifest were both rewritten")


def report(args: argparse.Namespace) -> int:
    try:
        results = load_results(args.results)
    except ResultsError as exc:
        error(str(exc))
        return EXIT_USAGE
    for path in write_reports(results, args.out_dir or args.results.parent):
        print(path)
    return EXIT_OK


def diff(args: argparse.Namespace) -> int:
    code, lines, problem = run_diff(args.old, args.new)
    if problem is not None:
        error(problem)
        return code
    print("\n".join(lines))
    return code


def default_bundle_dir(now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return Path("reports") / f"certification-{stamp}"


def _target_problem(args: argparse.Namespace) -> str | None:
    """certify never certifies the embedded server by accident: the target is named, or --embedded is given."""
    both = "--embedded and --base-url exclude each other: certify either the embedded server or a deployment"
    if args.embedded and args.base_url:
        return both
    try:
        config = resolve(flags(args, "certify"))
    except ConfigError as exc:
        return str(exc)
    if args.embedded and not config.embedded:
        return both + " (the base URL comes from the environment or the configuration file)"
    if not args.embedded and config.embedded:
        return ("certify needs a target: --base-url URL (with --control-url and the two tokens) to certify a "
                "deployment, or --embedded to certify the embedded reference server")
    return None


def certify(args: argparse.Namespace) -> int:
    """Run the suite with the certify profile into a fresh bundle directory, then seal the bundle."""
    bundle = Path(args.bundle) if args.bundle else default_bundle_dir()
    # A stale file from an earlier run must never end up sealed into this bundle.
    if bundle.exists() and (not bundle.is_dir() or any(bundle.iterdir())):
        error(f"{bundle} already exists and is not an empty directory; choose a new --bundle")
        return EXIT_USAGE
    problem = _target_problem(args)
    if problem is not None:
        error(problem)
        return EXIT_USAGE
    args.report_dir = str(bundle)
    code = run_suite(args, profile="certify")
    try:
        results = load_results(bundle / "results.json")
    except ResultsError as exc:
        error(f"no certification bundle written: {exc}")
        return code if code != EXIT_OK else EXIT_USAGE
    manifest = write_bundle(bundle, results, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    verification = verify_bundle(bundle)
    print(f"certification bundle: {bundle} (verdict {results['verdict']})")
    print(f"target: {_describe(target_identity(results))}")
    print(f"manifest sha256: {verification.manifest_sha256} ({manifest.name}; record it where the bundle's "
          "owner cannot change it)")
    print(f"check later:     build-conformance verify {bundle} --expect-sha256 {verification.manifest_sha256}")
    return code


def _describe(target: dict[str, Any]) -> str:
    text = str(target.get("base_url"))
    if target.get("embedded_reference_server"):
        text += " (embedded reference server" + (f", faults {', '.join(target['faults'])}" if target.get("faults")
                                                   else "") + ")"
    if target.get("control_url"):
        text += f", control {target['control_url']}"
    if target.get("server"):
        text += f", identity '{target['server']}'"
    return text


def verify(args: argparse.Namespace) -> int:
    try:
        verification = verify_bundle(args.bundle, expected_manifest_sha256=args.expect_sha256)
    except BundleUnreadable as exc:
        error(str(exc))
        return EXIT_USAGE
    for problem in verification.problems:
        error(problem)
    if not verification.ok:
        return EXIT_PROBLEMS
    manifest = verification.manifest
    checked = " (matches --expect-sha256)" if args.expect_sha256 else ""
    print(
        f"bundle OK: {args.bundle} (verdict {manifest.get('verdict')}, suite {manifest.get('suite_version')}, "
        f"catalogue {manifest.get('catalogue_version')} {str(manifest.get('catalogue_digest'))[:12]}, "
        f"manifest sha256 {verification.manifest_sha256}{checked})"
    )
    if isinstance(manifest.get("target"), dict):
        print(f"target: {_describe(manifest['target'])}")
    return EXIT_OK
