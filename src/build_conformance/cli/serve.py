"""`build-conformance serve`: the reference server on its own, for trying the suite by hand."""

from __future__ import annotations

import argparse
import sys
import threading

from build_conformance.judging.verdicts import EXIT_USAGE


def serve(args: argparse.Namespace) -> int:
    from build_conformance.reference import start_reference_server

    faults = [f for spec in args.fault or [] for f in spec.split(",") if f]
    try:
        server = start_reference_server(
            host=args.host,
            port=args.port,
            db_path=args.db,
            faults=faults,
            api_prefix=args.api_prefix,
            control_prefix=args.control_prefix,
        )
    except ValueError as exc:
        print(f"build-conformance serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"build-conformance serve: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"API URL:      {server.api_url}")
    print(f"control URL:  {server.control_url}")
    for tenant in server.tenants:
        print(f"tenant {tenant.name} token: {tenant.token}")
    if faults:
        print(f"faults:       {', '.join(faults)}")
    print("Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
