"""Starting and stopping the server: `start_alt_server()` serves on loopback in a background thread."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .app import API_PREFIX, CONTROL_PREFIX, App
from .auth import new_tenants
from .production import Production
from .store import Store
from .wire import Handler, Server


@dataclass
class AltServer:
    base_url: str
    control_url: str
    tokens: tuple[str, str]
    httpd: Server
    thread: threading.Thread
    production: Production | None = None

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> AltServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_alt_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    production_seed: int | None = None,
    production_traits: Iterable[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AltServer:
    """The server on `host:port` (0: any free port); `production_seed` switches production mode on
    with every trait of `TRAITS`, or only `production_traits`; `ssl_context` serves HTTPS."""
    if production_traits is not None and production_seed is None:
        raise ValueError("production_traits needs a production_seed")
    production = Production(production_seed, production_traits) if production_seed is not None else None
    tenants = new_tenants()
    httpd = Server((host, port), Handler)
    httpd.app = App(Store(tenants, production))
    if ssl_context is not None:
        # Handshakes on the connection's own thread (its first read): a failing client cannot stall accept().
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, name="alt-build-server", daemon=True)
    thread.start()
    origin = f"{'https' if ssl_context else 'http'}://{host}:{httpd.server_address[1]}"
    return AltServer(origin + API_PREFIX, origin + CONTROL_PREFIX, (tenants[0].token, tenants[1].token), httpd,
                     thread, production)
