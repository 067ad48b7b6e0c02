"""The endpoint under test, as the suite calls it, with the guard that keeps it off other people's builds.

Every response is handed to the run's per-response judge (`inspect`), which the harness wires to
`judging.per_response`: the properties every single response must have are judged there, once, for
whichever test provoked the response.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from build_conformance.redaction import REDACTOR, Secret
from build_conformance.target.exchange import Exchange
from build_conformance.target.transport import STREAMED_BODY, TargetUnavailable, Transport, WaitCutShort, join_target

CANCEL_PATH = "/v1/templates/builds/{}/cancel"
JSON_MEDIA_TYPE = "application/json"

NO_BODY = b""


@dataclass(frozen=True)
class Expectation:
    """What the suite knows about the request it sent, to judge the response against."""

    build_id: str | None = None  # the build the request addresses, when it addresses one of ours
    template_id: str | None = None
    presented: tuple[str, ...] = ()  # credentials presented in this request (valid or not)


Inspector = Callable[[Exchange, Expectation], None]
OwnershipCheck = Callable[[str], bool]


class SafetyError(Exception):
    """The suite was about to cancel a build it did not create: a bug in the suite, never sent."""


@dataclass(frozen=True)
class Credentials:
    """How a request authenticates; `presented` lists the secret strings it carries."""

    headers: tuple[tuple[str, str], ...]
    presented: tuple[str, ...]
    query: str = ""

    def __repr__(self) -> str:  # the whole point of these values is that they are credentials
        names = ", ".join(name for name, _ in self.headers) or "no headers"
        return f"Credentials({names}{', query' if self.query else ''}, {len(self.presented)} presented)"


class CancelApi:
    """Sends cancels (and probes of the cancel path) as one of the run's tenants, or with given credentials."""

    def __repr__(self) -> str:
        return f"CancelApi({self.base_url!r})"

    def __init__(
        self,
        transport: Transport,
        base_url: str,
        tokens: dict[str, Secret],
        owns: OwnershipCheck,
        inspect: Inspector,
        run_marker: str,
    ) -> None:
        self._transport = transport
        self.base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._owns = owns
        self._inspect = inspect
        self.run_marker = run_marker
        # Told of each build of this run whose cancel was accepted (e.g. to free what kept it waiting).
        self.on_accepted: Callable[[str], None] | None = None
        # Told of each request about to be sent to one of the run's builds (None: to no build of the run).
        self.on_sending: Callable[[str | None], None] | None = None
        self._deferred: list[tuple[Exchange, Expectation]] | None = None

    @contextlib.contextmanager
    def judged_afterwards(self) -> Iterator[None]:
        """Responses about no build of the run received inside are judged (in order) later: before the next
        response about one of the run's builds, or when the block ends without an exception. Preflight sends
        its probes of ids that name nothing while the official client loads on another thread. Only for a
        stretch where nothing else sends cancels (preflight, before any test)."""
        self._deferred = []
        try:
            yield
        except BaseException:
            self._deferred = None
            raise
        self._judge_deferred()
        self._deferred = None

    def _judge_deferred(self) -> None:
        if self._deferred:
            waiting, self._deferred[:] = list(self._deferred), []
            for exchange, expectation in waiting:
                self._inspect(exchange, expectation)

    def as_tenant(self, tenant: str = "A", scheme: str = "Bearer") -> Credentials:
        token = self._tokens[tenant].reveal()
        return Credentials((("Authorization", f"{scheme} {token}"),), (token,))

    @staticmethod
    def raw_credentials(headers: Mapping[str, str], presented: tuple[str, ...] = (), query: str = "") -> Credentials:
        for secret in presented:
            REDACTOR.add(secret, "probe-credential")
        return Credentials(tuple(headers.items()), presented, query)

    def cancel(
        self,
        build_id: str,
        *,
        credentials: Credentials | None = None,
        body: bytes = NO_BODY,
        content_type: str | None = None,
        method: str = "POST",
        query: str = "",
        raw_segment: str | None = None,
        expect_build: bool = True,
        template_id: str | None = None,
        expect_continue: bool = False,
        max_attempts: int | None = None,
        label: str = "cancel",
        probe_of: str | None = None,
        allow_no_response: bool = False,
    ) -> Exchange:
        """Send a cancel for `build_id` (or the byte-exact `raw_segment` in its place).

        `build_id` must be a build this run created or an id carrying the run marker: on a shared
        deployment the suite never cancels what it did not make. A `raw_segment` must decode to
        `build_id`, to something carrying the run marker, or to nothing (the empty segment).

        `probe_of=<a build this run created>` declares a probe derived from that build (a near-miss
        of its id, a traversal around it, an id of the same shape): the caller has confirmed,
        through the provisioner, that what it sends names no other build it can see. Only then may
        `build_id`/`raw_segment` be free of the run marker.

        Without a response (timeout, transport failure) or with a 503 that persisted, the test cannot
        judge its own requirements: `TargetUnavailable` is raised (the plugin reports `error`) unless
        the caller judges that itself (`allow_no_response=True`, e.g. for "never hangs"). A wait cut short
        because requests of its kind already went unanswered in full (`target/patience.py`) is never a
        judgeable silence: `TargetUnavailable` names that earlier failure.
        """
        self._refuse_unless_ours(build_id, raw_segment, probe_of)
        credentials = credentials if credentials is not None else self.as_tenant("A")
        segment = raw_segment if raw_segment is not None else quote(build_id, safe="")
        target = join_target(self.base_url, CANCEL_PATH.format(segment))
        queries = [q for q in (query, credentials.query) if q]
        if queries:
            target += b"?" + "&".join(queries).encode("latin-1")
        headers: list[tuple[str, str]] = list(credentials.headers)
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        if expect_continue:  # a server may then refuse a body before it is sent (RFC 9110 §10.1.1)
            headers.append(("Expect", "100-continue"))
        addressed = build_id if expect_build and probe_of is None and self._owns(build_id) else None
        if self.on_sending is not None:
            self.on_sending(addressed)
        kind = self.request_kind(method, body)
        exchange = self._transport.send(method, self.base_url, target, headers=headers, body=body, label=label,
                                        max_attempts=max_attempts, kind=kind)
        expectation = Expectation(build_id=addressed, template_id=template_id if addressed else None,
                                  presented=credentials.presented)
        if self._deferred is not None and addressed is None:
            self._deferred.append((exchange, expectation))
        else:
            self._judge_deferred()
            self._inspect(exchange, expectation)
        if addressed is not None and exchange.status == 200 and self.on_accepted is not None:
            self.on_accepted(addressed)
        if exchange.response is None and exchange.cut_short and not exchange.timed_out:
            raise WaitCutShort(f"{exchange.request.request_line}: {exchange.cut_short}")
        if not allow_no_response and (exchange.response is None or exchange.status == 503):
            raise TargetUnavailable(f"no usable answer after {exchange.attempts} attempt(s): {exchange.describe()}")
        return exchange

    @staticmethod
    def request_kind(method: str = "POST", body: bytes = NO_BODY) -> str:
        """Which requests of the endpoint a server is taken to treat alike: the method, and whether the body is
        oversized (streamed). Once one of them went unanswered for the full request timeout, the rest get a
        shortened wait of a few times the slowest answer their kind got (`patience.py`): a kind that mixes
        slow but answered requests with hanging ones keeps waiting long enough for the slow ones."""
        return f"{method} cancel" + (" with an oversized body" if len(body) > STREAMED_BODY else "")

    def _refuse_unless_ours(self, build_id: str, raw_segment: str | None, probe_of: str | None) -> None:
        if probe_of is not None:
            if not self._owns(probe_of):
                raise SafetyError(f"refusing a probe of {probe_of!r}, which this run did not create")
            return
        if raw_segment is not None and not fully_unquoted(raw_segment):
            return  # the empty segment names no build
        if not (self._owns(build_id) or self.run_marker in build_id):
            raise SafetyError(f"refusing to send a cancel to {build_id!r}, which this run did not create")
        if raw_segment is not None:
            # Each decoding a server might apply (once, or again and again) must still be ours.
            decoded = decodings(raw_segment)
            if build_id not in decoded and not any(self.run_marker in d for d in decoded):
                raise SafetyError(
                    f"refusing to send the segment {raw_segment!r}: it decodes to neither {build_id!r} "
                    "nor an id carrying the run marker (declare probe_of= for a probe of an owned build)"
                )


def decodings(segment: str, rounds: int = 8) -> list[str]:
    """`segment` percent-decoded once, twice, ... until it no longer changes."""
    found = []
    for _ in range(rounds):
        decoded = unquote(segment, errors="replace")
        if decoded == segment:
            break
        found.append(decoded)
        segment = decoded
    return found or [segment]


def fully_unquoted(segment: str, rounds: int = 8) -> str:
    """`segment` percent-decoded until it no longer changes (a doubly encoded id decodes fully)."""
    return decodings(segment, rounds)[-1]
