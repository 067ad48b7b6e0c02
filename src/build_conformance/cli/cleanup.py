"""`build-conformance cleanup`: cancel what an earlier run left active on a deployment (idempotent).

The run's builds are found by its run marker (printed in the banner and in results.json as part of
every template name the public API provisioner uses) and, when given, by the ledger in its
results.json. Each one still active is cancelled as its owner; a second cleanup finds nothing to do.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from build_conformance.cli.errors import EXIT_USAGE, error
from build_conformance.config import BY_NAME, ConfigError, resolve
from build_conformance.provisioning.cleanup import cancel_builds, find_run_builds, may_be_active
from build_conformance.provisioning.protocol import ProvisionedBuild, ProvisionerContext
from build_conformance.redaction import REDACTOR
from build_conformance.reporting.results_file import ResultsError, read_json
from build_conformance.target.connection import policy_of
from build_conformance.target.transport import Transport, TransportSettings

TARGET_OPTIONS = ("base_url", "token", "other_token", "token_file", "other_token_file", "ca_bundle",
                  "client_cert", "client_key", "client_key_password", "proxy", "request_timeout")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-marker", default=None, metavar="MARKER",
                        help="the run's marker (bcz…): finds its builds through the public API by template name")
    parser.add_argument("--results", default=None, metavar="RESULTS_JSON",
                        help="an earlier run's results.json: cancels the builds of its ledger that may be active")
    for name in TARGET_OPTIONS:
        option = BY_NAME[name]
        # Cleanup is for a deployment: there is no embedded default to mention.
        text = "the deployment's API base URL, as given to the run" if name == "base_url" else option.help
        parser.add_argument(option.flag, dest=name, default=None, help=f"{text} [{option.env}]")


def cleanup(args: argparse.Namespace) -> int:
    if not args.run_marker and not args.results:
        error("cleanup needs --run-marker MARKER or --results RESULTS_JSON (what to clean up)")
        return EXIT_USAGE
    flags: dict[str, Any] = {name: getattr(args, name) for name in TARGET_OPTIONS}
    try:
        config = resolve({**flags, "provisioner": "public-api"})
    except ConfigError as exc:
        error(str(exc))
        return EXIT_USAGE
    if config.embedded or config.token is None or config.other_token is None or config.base_url is None:
        error("cleanup needs the deployment: --base-url and both tokens (an embedded server leaves nothing behind)")
        return EXIT_USAGE
    tokens = {"A": config.token, "B": config.other_token}
    for tenant, token in tokens.items():
        REDACTOR.add(token, f"token-{tenant.lower()}")
    transport = Transport(TransportSettings(request_timeout=config.request_timeout, connection=policy_of(config)))
    context = ProvisionerContext(api_url=config.base_url, control_url=None, tokens=tokens, transport=transport,
                                 settle_timeout=config.settle_timeout, run_marker=args.run_marker or "")
    try:
        builds, problems = _targets(args, context)
        report = cancel_builds(context, builds)
    except ResultsError as exc:
        error(str(exc))
        return EXIT_USAGE
    finally:
        transport.close()
    for problem in problems:
        print(f"could not search: {problem}")
    if not builds:
        print("nothing left to cancel" + (f" for run {args.run_marker}" if args.run_marker else ""))
    else:
        print(f"cancelled {len(report.cancelled)} of {len(builds)} builds that may have been active")
    for failure in report.failures:
        print(f"still active (could not cancel): {failure}")
    return 1 if report.failures or problems else 0


def _targets(args: argparse.Namespace, context: ProvisionerContext) -> tuple[list[ProvisionedBuild], list[str]]:
    builds: dict[str, ProvisionedBuild] = {}
    problems: list[str] = []
    if args.results:
        results = read_json(Path(args.results))
        for entry in results.get("ledger", []) if isinstance(results, dict) else []:
            build = ProvisionedBuild(entry["build_id"], entry["tenant"], entry["status"], None,
                                     made_by=entry.get("made_by"))
            if may_be_active(build):
                builds[build.build_id] = build
    if args.run_marker:
        found, problems = find_run_builds(context, args.run_marker)
        builds.update((b.build_id, b) for b in found)
    return list(builds.values()), problems
