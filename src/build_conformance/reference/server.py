"""The reference server's lifecycle: storage, tenants, the HTTP thread and the executor thread."""

from __future__ import annotations

import os
import shutil
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TextIO, TypedDict, Unpack

from .app import App, Settings
from .auth import Tenant
from .executor import Executor
from .faults import DEFAULT_HANG_SECONDS, HANG_SECONDS_ENV, resolve
from .latency import Latency
from .lifecycle import Lifecycle, Limits
from .plan import DEFAULT_STEP_CAP_S, STEP_MS
from .store import SCHEDULER, Store
from .variations import resolve_variations
from .wire import AccessLog, HTTPServer

TENANT_NAMES = ("tenant-a", "tenant-b")


def _prefix(value: str, what: str) -> str:
    value = value.rstrip("/")
    if value and not value.startswith("/"):
        raise ValueError(f"{what} must start with '/' (got {value!r})")
    return value


def _hang_seconds() -> float:
    text = os.environ.get(HANG_SECONDS_ENV)
    if not text:
        return DEFAULT_HANG_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{HANG_SECONDS_ENV} must be a number of seconds (got {text!r})") from None
    if seconds < 0:
        raise ValueError(f"{HANG_SECONDS_ENV} must not be negative")
    return seconds


class ServerOptions(TypedDict, total=False):
    """How to start a reference server (every key optional; see `ReferenceServer`)."""

    host: str
    port: int
    db_path: str | None
    faults: Iterable[str]
    api_prefix: str
    control_prefix: str
    cancel_completion_delay: float
    tokens: tuple[str, str] | None
    ssl_context: ssl.SSLContext | None
    variations: Iterable[str]
    max_concurrent_builds: int | None
    build_quota: int | None
    step_seconds_cap: float
    step_seconds: float
    latency: float
    jitter: float
    seed: int
    access_log: str | None


def _limit(value: int | None, what: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{what} must be a positive integer or None (got {value!r})")
    return value


class ReferenceServer:
    """A conformant (or, with faults, deliberately broken) implementation of the cancel endpoint.

    Constructing it opens the store and binds the socket, so `api_url` and `tenants` are known;
    `start()` serves in daemon threads; `stop()` shuts down. Usable as a context manager.

    - `faults` (faults.py) break named requirements; `variations` (variations.py) switch on
      legitimate production behaviours the suite must not flag.
    - Builds started through the public API run in real time: `max_concurrent_builds` running per
      tenant (the rest stay `waiting`), `build_quota` waiting or building per tenant (further starts
      get 429 rate_limit_exceeded with Retry-After), every step taking `step_seconds` (plus its
      sleeps), a `RUN sleep N` step lasting at most `step_seconds_cap` seconds. Control-API builds
      never count against either limit.
    - `latency` ± `jitter` seconds (seeded by `seed`) delay every response, from when its request
      was read.
    - `access_log`: off (None, the default), "-" for standard error, or a file to append to: one line per
      answer with its x-request-id and the caller's traceparent and User-Agent (wire.AccessLog).
    """

    api_url: str
    control_url: str
    tenants: tuple[Tenant, Tenant]

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str | None = None,
        faults: Iterable[str] = (),
        api_prefix: str = "",
        control_prefix: str = "/_control",
        cancel_completion_delay: float = 0.2,
        tokens: tuple[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        variations: Iterable[str] = (),
        max_concurrent_builds: int | None = None,
        build_quota: int | None = None,
        step_seconds_cap: float = DEFAULT_STEP_CAP_S,
        step_seconds: float = STEP_MS / 1000,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        access_log: str | None = None,
    ) -> None:
        chosen = resolve(faults)
        varied = resolve_variations(variations)
        limits = Limits(_limit(max_concurrent_builds, "max_concurrent_builds"), _limit(build_quota, "build_quota"))
        if not step_seconds_cap > 0:
            raise ValueError("step_seconds_cap must be positive")
        if not step_seconds > 0:
            raise ValueError("step_seconds must be positive")
        network = Latency(latency, jitter, seed)
        api_prefix = _prefix(api_prefix, "api_prefix")
        control_prefix = _prefix(control_prefix, "control_prefix")
        if api_prefix == control_prefix and api_prefix:
            raise ValueError("api_prefix and control_prefix must differ")
        if cancel_completion_delay < 0:
            raise ValueError("cancel_completion_delay must not be negative")
        if tokens is not None and (len(set(tokens)) != 2 or not all(tokens)):
            raise ValueError("tokens must be two different non-empty strings")
        self.faults = chosen
        self._tempdir = None if db_path else tempfile.mkdtemp(prefix="build-conformance-reference-")
        self._stop = threading.Event()
        self._serving: threading.Thread | None = None
        self._stopped = False
        store = Store(db_path or os.path.join(self._tempdir or "", "state.sqlite3"), chosen)
        self._store = store
        known = tokens or tuple(store.tokens(TENANT_NAMES)[name] for name in TENANT_NAMES)
        self.tenants = (Tenant(TENANT_NAMES[0], known[0]), Tenant(TENANT_NAMES[1], known[1]))
        self.variations = varied
        lifecycle = Lifecycle(store, chosen, varied, cancel_completion_delay, limits)
        self._executor = Executor(lifecycle, self._stop, self._record_error)
        settings = Settings(api_prefix, control_prefix, chosen, _hang_seconds(), varied, limits, step_seconds_cap,
                            max(1, round(step_seconds * 1000)))
        app = App(store, lifecycle, self.tenants, settings, notify_executor=self._executor.notify, stop=self._stop)
        self._access_file: TextIO | None = None
        log = None
        if access_log:
            stream = sys.stderr if access_log == "-" else open(access_log, "a", encoding="utf-8")  # noqa: SIM115
            self._access_file = None if access_log == "-" else stream
            log = AccessLog(stream, [(tenant.token, tenant.name) for tenant in self.tenants])
        self._httpd = HTTPServer((host, port), app, latency=network, variations=varied, stop=self._stop,
                                 access_log=log)
        if ssl_context is not None:
            # The handshake happens on the connection's own thread (first read), so one slow or
            # failing client cannot stall the accept loop.
            self._httpd.socket = ssl_context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        bound_host, bound_port = str(self._httpd.server_address[0]), int(self._httpd.server_address[1])
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        origin = f"{'https' if ssl_context else 'http'}://{url_host}:{bound_port}"
        self.api_url = origin + api_prefix
        self.control_url = origin + control_prefix

    def _record_error(self, error: BaseException) -> None:
        self._httpd.record_error(error)

    @property
    def internal_errors(self) -> list[BaseException]:
        """Unexpected exceptions inside the server (answered 500): a conformant run has none."""
        return list(self._httpd.internal_errors)

    def started_builds(self) -> dict[str, str]:
        """Build id -> status of every build started through the public API (the platform's real builds,
        which a run must not leave active)."""
        with self._store.transaction("DEFERRED") as conn:
            rows = conn.execute("SELECT build_id, status FROM builds WHERE driver = ?", (SCHEDULER,)).fetchall()
        return {str(build_id): str(status) for build_id, status in rows}

    def start(self) -> ReferenceServer:
        if self._serving is None and not self._stopped:
            self._executor.start()
            self._serving = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="reference-http", daemon=True
            )
            self._serving.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._serving is not None:
            self._httpd.shutdown()
            self._serving.join(5)
        self._httpd.server_close()
        self._executor.join(5)
        if self._access_file is not None:
            self._access_file.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_reference_server(**options: Unpack[ServerOptions]) -> ReferenceServer:
    """Start a reference server on loopback (port 0: any free port) and return it, already serving.

    Takes the keyword arguments of `ReferenceServer`. The hang of the slow-cancel-hang,
    huge-body-hang and hang-once-then-answer faults lasts BUILD_CONFORMANCE_HANG_SECONDS (default
    15 s, past the suite's default 10 s request timeout), read when the server starts.
    """
    return ReferenceServer(**options).start()
