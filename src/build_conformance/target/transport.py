"""How bytes go on the wire: byte-exact requests, retries of what the contract says is retryable, load bounds.

httpx normalises paths (dot segments collapse, some escapes are decoded), so every request is sent
with an explicit request target (`extensions["target"]`): what the suite means is what goes on the
wire, and the evidence shows exactly that request line.

The suite's own weather is not the target's fault, and it is handled here, once: compressed
answers are decoded (gzip, deflate, br, zstd), dropped connections are re-opened, a 503 or 429 is
retried with back-off (honouring `Retry-After`) within a bounded window, and the request rate adapts
to the target. What an exchange went through is kept on it (`history`), so a timeout that a retry
hid is still judged (GEN-02). Once a kind of request went unanswered for the full request timeout, later
requests of that kind get a shortened wait (`patience.py`): the defect is shown, waiting it out again is not.

Every request says it is the suite's (`User-Agent: build-conformance/<version>`) and carries the run's
trace id in a W3C `traceparent`, with a span id of its own (`correlation.py`): a server engineer finds the
failing request in their logs and traces. Whoever wants to see every exchange (the run's recording) is
told of each attempt (`observers`).
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import tenacity

from build_conformance.attribution import CURRENT_TEST, PIECE_COSTS, REQUESTS_BY_TEST
from build_conformance.redaction import Secret
from build_conformance.target.connection import ConnectionPolicy, Proxy, httpx_transport
from build_conformance.target.correlation import TRACEPARENT, USER_AGENT, new_span_id, new_trace_id, traceparent
from build_conformance.target.exchange import Exchange, ReceivedResponse, SentRequest
from build_conformance.target.patience import Patience
from build_conformance.target.rate import AdaptiveRate, RateReport
from build_conformance.target.streaming import send_reading_while_writing

# Bodies above this size are sent by the client that reads while it writes (BODY-05).
STREAMED_BODY = 256 * 1024
MAX_RETRY_AFTER = 30.0
# httpx clients per route, each with its own connection pool, a thread using the one its id picks: one pool's
# lock, taken to start and to close every response, made dozens of threads queue behind each other.
CLIENT_SHARDS = 8


class TargetUnavailable(Exception):
    """The target kept answering 503 (or kept refusing connections) past the retry window."""


class RequestBudgetExceeded(Exception):
    """The run reached its configured request budget."""


class WaitCutShort(TargetUnavailable):
    """A wait (for an answer, or for a build to settle) ended before its full timeout because a wait of the same
    kind already ran out in full: the earlier failure is the evidence, this one judges nothing."""


class RunHalted(TargetUnavailable):
    """The run is being interrupted: no more requests for the tests (the cleanup resumes the transport)."""


@dataclass(frozen=True)
class TransportSettings:
    request_timeout: float = 10.0
    # Transient answers (503, 429, a dropped connection) are retried with exponential back-off from
    # `backoff` up to `max_backoff`, for at most `retry_window` seconds and `max_attempts` attempts.
    retry_window: float = 30.0
    max_attempts: int = 8
    backoff: float = 0.25
    max_backoff: float = 5.0
    max_requests: int | None = None
    rate_limit: float | None = None  # ceiling in requests per second; None = none given
    adaptive_rate: bool = False  # adapt the rate to the target (a deployment); off for loopback
    # CA bundle, client certificate, proxy: the same for every request, whichever sender carries it.
    connection: ConnectionPolicy = field(default_factory=ConnectionPolicy)
    # The run's W3C trace id (32 hex digits), shared by every process of the run; None: a new one.
    trace_id: str | None = None


class Transport:
    """Sends requests byte-exact, retries what the contract says is retryable, bounds the load."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        # Per route (proxy or none, scheme) and shard (CLIENT_SHARDS).
        self._clients: dict[tuple[Proxy | None, str, int], httpx.Client] = {}
        self._lock = threading.Lock()
        self._sent = 0
        self._rate = AdaptiveRate(settings.rate_limit, adaptive=settings.adaptive_rate)
        self._halted = threading.Event()
        # The kinds of request that went unanswered for the full request timeout: later ones wait less.
        self.patience = Patience(settings.request_timeout)
        self.trace_id = settings.trace_id or new_trace_id()
        # Told of every attempt once it is over (a recording of the run); called in the sender's context.
        self.observers: list[Callable[[Exchange], None]] = []

    @property
    def requests_sent(self) -> int:
        return self._sent

    def rate_report(self) -> RateReport:
        return self._rate.report()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _client(self, origin: str) -> tuple[httpx.Client, Proxy | None]:
        """The httpx client for requests to `origin`, and the proxy it goes through: the policy's TLS context
        and its proxy for that origin (decided by the policy, not by httpx's reading of the environment, so
        both senders take the same route)."""
        connection = self.settings.connection
        proxy = connection.proxy_for(origin)
        scheme = urlsplit(origin).scheme
        key = (proxy, scheme, threading.get_native_id() % CLIENT_SHARDS)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
                client = self._clients[key] = httpx.Client(
                    timeout=httpx.Timeout(self.settings.request_timeout),
                    headers={"User-Agent": USER_AGENT},
                    follow_redirects=False,
                    trust_env=False,
                    transport=httpx_transport(connection, proxy, scheme, limits),
                )
            return client, proxy

    def halt(self) -> None:
        """Refuse every further request (tests still running end quickly) until `resume`."""
        self._halted.set()

    def resume(self) -> None:
        self._halted.clear()

    def _admit(self) -> None:
        if self._halted.is_set():
            raise RunHalted("the run is being interrupted")
        with self._lock:
            if self.settings.max_requests is not None and self._sent >= self.settings.max_requests:
                raise RequestBudgetExceeded(f"request budget of {self.settings.max_requests} reached")
            self._sent += 1
        REQUESTS_BY_TEST.add(CURRENT_TEST.get())
        PIECE_COSTS.add("requests")
        self._rate.admit()

    def send(
        self,
        method: str,
        base: str,
        target: bytes,
        *,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
        body: bytes = b"",
        label: str = "",
        idempotent: bool = True,
        max_attempts: int | None = None,
        kind: str | None = None,
    ) -> Exchange:
        """Send `method target` to the origin of `base`; `target` is the exact request target.

        A request that is not `idempotent` (it would create something twice) is sent once: whatever
        happens, its caller decides what to do next (look before it tries again). `kind` says which
        requests the server treats alike (`patience.py`): once one of them went unanswered for the full
        request timeout, the others get a shortened wait.
        """
        split = urlsplit(base)
        origin = f"{split.scheme}://{split.netloc}"
        header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        history: list[str] = []

        def attempt() -> Exchange:
            timeout, shortened_by = self.patience.timeout_for(kind)
            exchange = self._send_once(method, origin, target, header_list, body, label, timeout)
            if exchange.timed_out and shortened_by is not None:
                # No evidence of a missed request timeout (the wait was shorter): the earlier failure is. Unless an
                # earlier attempt of this very request went unanswered for the full timeout: then it timed out.
                exchange.timed_out = TIMED_OUT in history
                exchange.cut_short = shortened_by.reason(timeout)
                self.patience.cut(shortened_by)
            elif exchange.timed_out:
                self.patience.timed_out(kind, exchange.request.request_line)
            elif exchange.response is not None:
                self.patience.answered(kind, exchange.response.elapsed)
            exchange.history = list(history)
            exchange.attempts = len(history) + 1
            history.append(_outcome(exchange))
            for observer in self.observers:
                observer(exchange)
            return exchange

        if not idempotent:
            return attempt()
        # A kind whose every attempt went unanswered before gets fewer attempts (patience.py).
        allowed, fewer = self.patience.attempts_for(kind, max_attempts or self.settings.max_attempts)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda exchange: _retryable(exchange, history)),
            stop=tenacity.stop_after_delay(self.settings.retry_window) | tenacity.stop_after_attempt(allowed),
            wait=self._wait,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=True,
        )
        exchange: Exchange = retrying(attempt)
        if exchange.response is None and exchange.transport_error is not None and not exchange.timed_out:
            self.patience.unanswered_through(kind, exchange.attempts, exchange.request.request_line, fewer)
            if fewer is not None and exchange.attempts >= allowed:
                exchange.notes.append(fewer.note(allowed))
        return exchange

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential back-off with jitter; a `Retry-After` the target sent wins (capped)."""
        delay = min(self.settings.max_backoff, self.settings.backoff * 2 ** (state.attempt_number - 1))
        delay *= random.uniform(0.8, 1.2)
        last = state.outcome.result() if state.outcome is not None and not state.outcome.failed else None
        retry_after = _retry_after(last.response.header("retry-after")) if last and last.response else None
        return max(delay, min(retry_after, MAX_RETRY_AFTER)) if retry_after is not None else delay

    def call(self, method: str, base_url: str, path: str, token: Secret, payload: Any = None, *,
             label: str, idempotent: bool = True, kind: str | None = None) -> Exchange:
        """A plain JSON call under `base_url`'s prefix, as the provisioners make them."""
        headers = bearer(token.reveal())
        body = b""
        if payload is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(payload).encode()
        return self.send(method, base_url, join_target(base_url, path), headers=headers, body=body, label=label,
                         idempotent=idempotent, kind=kind)

    def _send_once(
        self,
        method: str,
        origin: str,
        target: bytes,
        headers: list[tuple[str, str]],
        body: bytes,
        label: str,
        timeout: float,
    ) -> Exchange:
        client, proxy = self._client(origin)  # before admission: building a TLS context is not the request's time
        self._admit()
        if not any(name.lower() == TRACEPARENT for name, _ in headers):  # a probe may send its own
            headers = [*headers, (TRACEPARENT, traceparent(self.trace_id, new_span_id()))]
        request = client.build_request(method, origin + "/", headers=headers, content=body,
                                       timeout=httpx.Timeout(timeout))
        forwarded = proxy is not None and origin.startswith("http:")
        # Through a proxy, plain http goes in absolute form (https goes through the tunnel as it is).
        request.extensions["target"] = origin.encode("latin-1") + target if forwarded else target
        sent = SentRequest(
            method=method,
            origin=origin,
            target=target,
            headers=tuple((k, v) for k, v in request.headers.multi_items()),
            body=body,
        )
        exchange = Exchange(label=label, request=sent, sent_at=time.monotonic())
        if len(body) > STREAMED_BODY:
            self._send_streamed(exchange, timeout)
        else:
            if forwarded and proxy is not None:
                for name, value in proxy.authorization():
                    request.headers[name] = value  # to the proxy only; kept out of the evidence above
            self._send_httpx(client, exchange, request)
        exchange.received_at = time.monotonic()
        response = exchange.response
        self._rate.observe(response.status if response else None, response.elapsed if response else None)
        return exchange

    def _send_httpx(self, client: httpx.Client, exchange: Exchange, request: httpx.Request) -> None:
        started = time.monotonic()
        try:
            response = client.send(request)
        except httpx.TimeoutException:
            exchange.timed_out = True
            return
        except (httpx.TransportError, httpx.DecodingError) as exc:
            exchange.transport_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return
        exchange.response = ReceivedResponse(
            status=response.status_code,
            headers=tuple((k, v) for k, v in response.headers.multi_items()),
            body=response.content,  # decoded: what the Content-Encoding carried
            elapsed=time.monotonic() - started,
        )

    def _send_streamed(self, exchange: Exchange, timeout: float) -> None:
        request = exchange.request
        # The headers httpx would have sent (Accept-Encoding included): the evidence shows what went on the wire.
        answer = send_reading_while_writing(request.method, request.origin, request.target, list(request.headers),
                                            request.body, timeout=timeout,
                                            policy=self.settings.connection)
        if answer.status is None:
            exchange.timed_out = answer.timed_out
            exchange.transport_error = None if answer.timed_out else answer.error
            exchange.notes.append(f"{answer.body_sent} of {len(request.body)} body bytes sent")
            return
        exchange.response = ReceivedResponse(answer.status, answer.headers, answer.body, answer.elapsed)
        if answer.body_sent < len(request.body):
            exchange.notes.append(f"answered after {answer.body_sent} of {len(request.body)} body bytes")


TIMED_OUT = "timed out"
CUT_SHORT = "cut short"  # a shortened wait ran out (patience.py): no evidence of a missed request timeout


def _outcome(exchange: Exchange) -> str:
    if exchange.cut_short:
        return CUT_SHORT
    if exchange.timed_out:
        return TIMED_OUT
    if exchange.response is None:
        return f"transport error: {exchange.transport_error}"
    return str(exchange.response.status)


def _retryable(exchange: Exchange, history: list[str]) -> bool:
    """503 and 429 are the contract's retry signals; a dropped connection is the network's; a timeout
    gets one more chance (a lost packet is not the server's behaviour), and is judged anyway; so does a wait
    cut short (a server that hangs only on the first request of a build answers the second)."""
    if exchange.timed_out or exchange.cut_short:
        return history.count(TIMED_OUT) + history.count(CUT_SHORT) == 1
    return exchange.transport_error is not None or exchange.status in (429, 503)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def join_target(base_url: str, path: str) -> bytes:
    """The request target for `path` under the base URL's own path prefix, kept byte-exact."""
    prefix = urlsplit(base_url).path.rstrip("/")
    return (prefix + path).encode("latin-1")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
