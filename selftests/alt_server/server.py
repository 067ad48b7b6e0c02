"""Starting and stopping the server: `start_alt_server()` serves on loopback in background threads."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .app import API_PREFIX, CONTROL_PREFIX, App
from .auth import new_tenants
from .production import Production
from .scheduler import Scheduler
from .store import Store
from .wire import Handler, Server

STEP_SECONDS = 0.4  # each step of a public-API build, beyond what it sleeps: a trivial build takes ~1 s
ADMISSION_DELAY = 0.15  # a queued build's head start in `waiting`, once a slot is free


@dataclass
class AltServer:
    base_url: str
    control_url: str
    tokens: tuple[str, str]
    httpd: Server
    thread: threading.Thread
    production: Production | None = None
    scheduler: Scheduler | None = None

    def started_builds(self) -> dict[str, str]:
        """Build id -> status of every build started through the public API: the platform's own count,
        by which a run must leave nothing `waiting` or `building`."""
        return self.httpd.app.store.started_builds()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        if self.scheduler is not None:
            self.scheduler.stop()

    def __enter__(self) -> AltServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _limit(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_concurrent_builds must be an integer >= 1 or None (got {value!r})")
    return value


def start_alt_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    production_seed: int | None = None,
    production_traits: Iterable[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    max_concurrent_builds: int | None = None,
    step_seconds: float = STEP_SECONDS,
    admission_delay: float = ADMISSION_DELAY,
    over_admission: float | None = None,
    strict_text: bool = False,
) -> AltServer:
    """The server on `host:port` (0: any free port), already serving.

    - `production_seed` switches production mode on with every trait of `TRAITS`, or only
      `production_traits`; `ssl_context` serves HTTPS.
    - Builds started through the public API run in real time: at most `max_concurrent_builds` per
      tenant at once (None: no limit; the rest wait in a FIFO queue), each step taking `step_seconds`
      plus what it sleeps (`RUN sleep 900` takes 900 s), a queued build starting `admission_delay`
      seconds after a slot is free for it.
    - `over_admission`: a queued build that has waited this many seconds starts anyway, beyond the limit
      (a platform whose limit loosens under load: builds held `waiting` start by themselves, sometimes just
      before a cancel of theirs arrives).
    - `strict_text`: the store refuses a reason holding NUL or a lone surrogate with 422 `invalid_request` and no
      effect (the refusal BODY-02 allows) instead of storing it exactly.
    """
    if production_traits is not None and production_seed is None:
        raise ValueError("production_traits needs a production_seed")
    if not (step_seconds >= 0 and admission_delay >= 0):
        raise ValueError("step_seconds and admission_delay must not be negative")
    production = Production(production_seed, production_traits) if production_seed is not None else None
    tenants = new_tenants()
    store = Store(tenants, production, strict_text=strict_text)
    scheduler = Scheduler(store, _limit(max_concurrent_builds), step_seconds, admission_delay, over_admission)
    httpd = Server((host, port), Handler)
    httpd.app = App(store, scheduler)
    if ssl_context is not None:
        # Handshakes on the connection's own thread (its first read): a failing client cannot stall accept().
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    scheduler.start()
    thread = threading.Thread(target=httpd.serve_forever, name="alt-build-server", daemon=True)
    thread.start()
    origin = f"{'https' if ssl_context else 'http'}://{host}:{httpd.server_address[1]}"
    return AltServer(origin + API_PREFIX, origin + CONTROL_PREFIX, (tenants[0].token, tenants[1].token), httpd,
                     thread, production, scheduler)
