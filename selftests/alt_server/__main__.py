"""`python -m alt_server` (from selftests/) or `python -m selftests.alt_server`: serve until Ctrl-C.

Prints the BUILD_CONFORMANCE_* settings a suite run needs, one per line.
"""

from __future__ import annotations

import argparse

from .production import TRAITS
from .server import ADMISSION_DELAY, STEP_SECONDS, start_alt_server


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The alternative conformant server of the cancel endpoint.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--production-seed", type=lambda text: int(text, 0), default=None,
                        help="behave like a production deployment, every choice drawn from this seed")
    parser.add_argument("--production-traits", default=None,
                        help=f"comma-separated subset of the production traits: {', '.join(TRAITS)}")
    parser.add_argument("--max-concurrent-builds", type=int, default=None,
                        help="running public-API builds per tenant (default: no limit); the rest wait in a queue")
    parser.add_argument("--step-seconds", type=float, default=STEP_SECONDS,
                        help=f"time each build step takes beyond what it sleeps (default {STEP_SECONDS})")
    parser.add_argument("--admission-delay", type=float, default=ADMISSION_DELAY,
                        help=f"seconds a queued build waits once a slot is free (default {ADMISSION_DELAY})")
    parser.add_argument("--strict-text", action="store_true",
                        help="the store refuses a reason holding NUL or a lone surrogate (422, no effect)")
    return parser.parse_args()


def main() -> None:
    arguments = _arguments()
    traits = arguments.production_traits.split(",") if arguments.production_traits is not None else None
    server = start_alt_server(arguments.host, arguments.port, production_seed=arguments.production_seed,
                              production_traits=traits, max_concurrent_builds=arguments.max_concurrent_builds,
                              step_seconds=arguments.step_seconds, admission_delay=arguments.admission_delay,
                              strict_text=arguments.strict_text)
    print(f"BUILD_CONFORMANCE_BASE_URL={server.base_url}")
    print(f"BUILD_CONFORMANCE_CONTROL_URL={server.control_url}")
    print(f"BUILD_CONFORMANCE_TOKEN={server.tokens[0]}")
    print(f"BUILD_CONFORMANCE_OTHER_TOKEN={server.tokens[1]}")
    if server.production is not None:
        print(f"# production seed {server.production.seed}: {server.production.describe()}", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
