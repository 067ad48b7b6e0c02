"""How bytes go on the wire: byte-exact requests, retries of what the contract says is retryable, load bounds.

httpx normalises paths (dot segments collapse, some escapes are decoded), so every request is sent
with an explicit request target (`extensions["target"]`): what the suite means is what goes on the
wire, and the evidence shows exactly that request line.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from build_conformance.redaction import Secret
from build_conformance.target.exchange import Exchange, ReceivedResponse, SentRequest


class TargetUnavailable(Exception):
    """The target kept answering 503 (or kept refusing connections) past the retry budget."""


class RequestBudgetExceeded(Exception):
    """The run reached its configured request budget."""


@dataclass(frozen=True)
class TransportSettings:
    request_timeout: float = 10.0
    # Retries of a 503 / connection failure, with exponential back-off starting here.
    retries: int = 3
    backoff: float = 0.25
    max_requests: int | None = None
    rate_limit: float | None = None  # requests per second; None = unbounded
    verify: bool | str = True


class Transport:
    """Sends requests byte-exact, retries what the contract says is retryable, bounds the load."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.request_timeout),
            follow_redirects=False,
            verify=settings.verify,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self._lock = threading.Lock()
        self._sent = 0
        self._next_slot = 0.0

    @property
    def requests_sent(self) -> int:
        return self._sent

    def close(self) -> None:
        self._client.close()

    def _admit(self) -> None:
        with self._lock:
            if self.settings.max_requests is not None and self._sent >= self.settings.max_requests:
                raise RequestBudgetExceeded(f"request budget of {self.settings.max_requests} reached")
            self._sent += 1
            wait = 0.0
            if self.settings.rate_limit:
                now = time.monotonic()
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / self.settings.rate_limit
                wait = slot - now
        if wait > 0:
            # Rate limiting is the one place a sleep is the point: it spaces requests out.
            time.sleep(wait)

    def send(
        self,
        method: str,
        base: str,
        target: bytes,
        *,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
        body: bytes = b"",
        label: str = "",
        retry_unavailable: bool = True,
    ) -> Exchange:
        """Send `method target` to the origin of `base`; `target` is the exact request target."""
        split = urlsplit(base)
        origin = f"{split.scheme}://{split.netloc}"
        header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        attempt = 0
        while True:
            attempt += 1
            exchange = self._send_once(method, origin, target, header_list, body, label)
            exchange.attempts = attempt
            # 429 asks to slow down and 503 says "unavailable": both are the contract's retry signals.
            retryable = exchange.transport_error is not None or exchange.status == 429 or (
                retry_unavailable and exchange.status == 503
            )
            if exchange.timed_out and attempt == 1:
                retryable = True  # one more chance: a single lost packet is not the server's behaviour
            elif exchange.timed_out:
                retryable = False
            if not retryable or attempt > self.settings.retries:
                return exchange
            delay = self.settings.backoff * (2 ** (attempt - 1))
            retry_after = exchange.response.header("retry-after") if exchange.response else None
            if retry_after and retry_after.isdigit():
                delay = max(delay, min(float(retry_after), 30.0))
            time.sleep(delay)

    def call(self, method: str, base_url: str, path: str, token: Secret, payload: Any = None, *,
             label: str) -> Exchange:
        """A plain JSON call under `base_url`'s prefix, as the provisioners make them."""
        headers = bearer(token.reveal())
        body = b""
        if payload is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(payload).encode()
        return self.send(method, base_url, join_target(base_url, path), headers=headers, body=body, label=label)

    def _send_once(
        self,
        method: str,
        origin: str,
        target: bytes,
        headers: list[tuple[str, str]],
        body: bytes,
        label: str,
    ) -> Exchange:
        self._admit()
        request = self._client.build_request(method, origin + "/", headers=headers, content=body)
        request.extensions["target"] = target
        sent = SentRequest(
            method=method,
            origin=origin,
            target=target,
            headers=tuple((k, v) for k, v in request.headers.multi_items()),
            body=body,
        )
        exchange = Exchange(label=label, request=sent)
        started = time.monotonic()
        try:
            response = self._client.send(request)
        except httpx.TimeoutException:
            exchange.timed_out = True
            return exchange
        except httpx.TransportError as exc:
            exchange.transport_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return exchange
        exchange.response = ReceivedResponse(
            status=response.status_code,
            headers=tuple((k, v) for k, v in response.headers.multi_items()),
            body=response.content,
            elapsed=time.monotonic() - started,
        )
        return exchange


def join_target(base_url: str, path: str) -> bytes:
    """The request target for `path` under the base URL's own path prefix, kept byte-exact."""
    prefix = urlsplit(base_url).path.rstrip("/")
    return (prefix + path).encode("latin-1")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

