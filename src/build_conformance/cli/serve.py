"""`build-conformance serve`: the reference server on its own, for trying the suite by hand.

It prints what a second shell needs to run the suite against it: the two tokens as `export` lines and
the exact `build-conformance run` command. A busy port (the default 8080 often is) falls back to a free
one, and says so.
"""

from __future__ import annotations

import argparse
import errno
import shlex
import threading
from typing import Any

from build_conformance.cli.errors import EXIT_USAGE, error

DEFAULT_PORT = 8080


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", metavar="HOST", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                        help=f"port to listen on; 0 picks a free port, and a busy port falls back to a free one "
                             f"(default: {DEFAULT_PORT})")
    parser.add_argument("--db", default=None, metavar="FILE",
                        help="sqlite file that keeps builds and tokens across restarts (default: a temporary one)")
    parser.add_argument("--fault", action="append", metavar="NAME",
                        help="switch on named faults (repeatable or comma-separated; `build-conformance faults` "
                             "lists them; default: none)")
    parser.add_argument("--variation", action="append", metavar="NAME",
                        help="switch on clean variations a conformant server may show (repeatable or "
                             "comma-separated; listed by `build-conformance faults`; default: none)")
    parser.add_argument("--api-prefix", default="", metavar="PATH",
                        help="path prefix of the API, e.g. /api (default: none)")
    parser.add_argument("--control-prefix", default="/_control", metavar="PATH", help="path of the control API")
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS",
                        help="milliseconds every response waits, like a distant deployment (default: 0)")
    parser.add_argument("--jitter", type=float, default=0.0, metavar="MS",
                        help="up to this many milliseconds more or less, at random, seeded by --seed (default: 0)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the jitter (default: 0)")
    parser.add_argument("--max-concurrent-builds", type=int, default=None, metavar="N",
                        help="builds started through the public API that run at once per tenant; the rest wait in a "
                             "first-in, first-out queue (default: no limit)")
    parser.add_argument("--build-quota", type=int, default=None, metavar="N",
                        help="waiting or running public-API builds per tenant; further starts get 429 (default: none)")
    parser.add_argument("--step-seconds", type=float, default=None, metavar="S",
                        help="how long each step of a started build takes, at least (default: 0.025)")
    parser.add_argument("--tls-cert", default=None, metavar="FILE",
                        help="serve HTTPS with this certificate chain (PEM; may hold the key) (default: plain HTTP)")
    parser.add_argument("--tls-key", default=None, metavar="FILE", help="the private key of --tls-cert (PEM)")
    parser.add_argument("--tls-version", default=None, choices=["1.2", "1.3"],
                        help="serve only this TLS version (default: 1.2 and 1.3; 1.3 sends session tickets)")
    parser.add_argument("--tls-client-ca", default=None, metavar="FILE",
                        help="require a client certificate signed by this CA (mutual TLS) (default: none)")
    parser.add_argument("--access-log", nargs="?", const="-", default=None, metavar="FILE",
                        help="log one line per answer with its x-request-id and the caller's traceparent and "
                             "User-Agent, to standard error or appended to FILE (default: no access log)")


def _names(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _supported() -> frozenset[str]:
    """The keyword options this reference server accepts (newer servers accept more)."""
    from build_conformance.reference import ServerOptions

    return frozenset(ServerOptions.__required_keys__ | ServerOptions.__optional_keys__)


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments for `start_reference_server`, or ValueError for a flag it cannot honour."""
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "db_path": args.db,
        "faults": _names(args.fault),
        "api_prefix": args.api_prefix,
        "control_prefix": args.control_prefix,
    }
    supported = _supported()
    wanted = {
        "variations": (_names(args.variation), "--variation"),
        "latency": (args.latency / 1000.0, "--latency"),
        "jitter": (args.jitter / 1000.0, "--jitter"),
        "seed": (args.seed, "--seed"),
        "max_concurrent_builds": (args.max_concurrent_builds, "--max-concurrent-builds"),
        "build_quota": (args.build_quota, "--build-quota"),
        "step_seconds": (args.step_seconds, "--step-seconds"),
        "access_log": (getattr(args, "access_log", None), "--access-log"),
    }
    for key, (value, flag) in wanted.items():
        if key in supported and value is not None:
            options[key] = value
        elif value:
            raise ValueError(f"{flag} is not supported by this version of the reference server")
    if args.latency < 0 or args.jitter < 0:
        raise ValueError("--latency and --jitter must not be negative")
    if args.tls_cert is not None:
        from build_conformance.reference.tls import server_context

        options["ssl_context"] = server_context(args.tls_cert, args.tls_key, version=args.tls_version,
                                                client_ca=args.tls_client_ca)
    elif args.tls_key or args.tls_version or args.tls_client_ca:
        raise ValueError("--tls-key, --tls-version and --tls-client-ca need --tls-cert")
    return options


def ready_lines(server: Any, note: str | None = None) -> list[str]:
    """What `serve` prints once listening: URLs, and the lines to paste into a second shell."""
    tokens = {tenant.name: tenant.token for tenant in server.tenants}
    first, second = (tenant.name for tenant in server.tenants)
    lines = []
    if note:
        lines.append(note)
    lines += [
        f"API URL:      {server.api_url}",
        f"control URL:  {server.control_url}",
    ]
    faults = sorted(getattr(server, "faults", ()) or ())
    variations = sorted(getattr(server, "variations", ()) or ())
    if faults:
        lines.append(f"faults:       {', '.join(faults)}")
    if variations:
        lines.append(f"variations:   {', '.join(variations)}")
    tls = " --ca-bundle CA_FILE" if server.api_url.startswith("https:") else ""
    lines += [
        "",
        f"Run the suite against it from another shell ({first} is tenant A, {second} tenant B):",
        "",
        f"  export BUILD_CONFORMANCE_TOKEN={shlex.quote(tokens[first])}",
        f"  export BUILD_CONFORMANCE_OTHER_TOKEN={shlex.quote(tokens[second])}",
        f"  build-conformance run --base-url {shlex.quote(server.api_url)} "
        f"--control-url {shlex.quote(server.control_url)}{tls}",
        *(["  (CA_FILE: the CA that signed --tls-cert; add --client-cert/--client-key when --tls-client-ca is set)"]
          if tls else []),
        "",
        "Ctrl-C to stop.",
    ]
    return lines


def serve(args: argparse.Namespace) -> int:
    from build_conformance.reference import start_reference_server

    try:
        options = server_options(args)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    note = None
    try:
        try:
            server = start_reference_server(**options)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or args.port == 0:
                raise
            server = start_reference_server(**{**options, "port": 0})
            port = server.api_url.rsplit(":", 1)[-1].split("/", 1)[0]
            note = f"port {args.port} is in use; serving on free port {port} instead (--port N chooses one)"
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; --port 0 picks a free port")
        return EXIT_USAGE
    print("\n".join(ready_lines(server, note)), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
