"""The reporting subcommands of `build-conformance`: report, diff, certify, verify.
Errors are one line on stderr, prefixed with the command, and never carry a credential.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from build_conformance.cli.run import run_suite
from build_conformance.judging.verdicts import EXIT_USAGE
from build_conformance.reporting import write_reports
from build_conformance.reporting.bundle import BundleUnreadable, verify_bundle, write_bundle
from build_conformance.reporting.diff import run_diff
from build_conformance.reporting.results_file import ResultsError, load_results
from build_conformance.reporting.text import safe

EXIT_OK = 0
EXIT_PROBLEMS = 1


def _error(command: str, message: str) -> None:
    print(f"build-conformance {command}: {safe(message)}", file=sys.stderr)


def add_report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="render junit.xml, report.html and summary.md from a results.json")
    report.add_argument("results", type=Path, help="path to results.json")
    report.add_argument("--out-dir", type=Path, default=None, help="where to write (default: beside results.json)")
    diff = sub.add_parser("diff", help="compare two results.json; exit 1 if a requirement regressed")
    diff.add_argument("old", type=Path, help="results.json of the earlier run")
    diff.add_argument("new", type=Path, help="results.json of the later run")
    verify = sub.add_parser("verify", help="check a certification bundle is complete and unchanged")
    verify.add_argument("bundle", type=Path, help="bundle directory written by `build-conformance certify`")


def report(args: argparse.Namespace) -> int:
    try:
        results = load_results(args.results)
    except ResultsError as exc:
        _error("report", str(exc))
        return EXIT_USAGE
    for path in write_reports(results, args.out_dir or args.results.parent):
        print(path)
    return EXIT_OK


def diff(args: argparse.Namespace) -> int:
    code, lines, error = run_diff(args.old, args.new)
    if error is not None:
        _error("diff", error)
        return code
    print("\n".join(lines))
    return code


def default_bundle_dir(now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return Path("reports") / f"certification-{stamp}"


def certify(args: argparse.Namespace) -> int:
    """Run the suite with the certify profile into a fresh bundle directory, then seal the bundle."""
    if args.report_dir is not None:
        _error("certify", "--report-dir does not apply: certify writes into --bundle")
        return EXIT_USAGE
    if args.profile not in (None, "certify"):
        _error("certify", f"--profile {args.profile} does not apply: certify always runs the certify profile")
        return EXIT_USAGE
    bundle: Path = args.bundle or default_bundle_dir()
    # A stale file from an earlier run must never end up sealed into this bundle.
    if bundle.exists() and (not bundle.is_dir() or any(bundle.iterdir())):
        _error("certify", f"{bundle} already exists and is not an empty directory; choose a new --bundle")
        return EXIT_USAGE
    args.report_dir = str(bundle)
    code = run_suite(args, profile="certify")
    try:
        results = load_results(bundle / "results.json")
    except ResultsError as exc:
        _error("certify", f"no certification bundle written: {exc}")
        return code if code != EXIT_OK else EXIT_USAGE
    manifest = write_bundle(bundle, results, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    verification = verify_bundle(bundle)
    print(f"certification bundle: {bundle} (verdict {results['verdict']})")
    print(f"manifest sha256: {verification.manifest_sha256} ({manifest.name}; record it to detect later edits)")
    return code


def verify(args: argparse.Namespace) -> int:
    try:
        verification = verify_bundle(args.bundle)
    except BundleUnreadable as exc:
        _error("verify", str(exc))
        return EXIT_USAGE
    for problem in verification.problems:
        _error("verify", problem)
    if not verification.ok:
        return EXIT_PROBLEMS
    manifest = verification.manifest
    print(
        f"bundle OK: {args.bundle} (verdict {manifest.get('verdict')}, suite {manifest.get('suite_version')}, "
        f"catalogue {manifest.get('catalogue_version')} {str(manifest.get('catalogue_digest'))[:12]}, "
        f"manifest sha256 {verification.manifest_sha256})"
    )
    return EXIT_OK
