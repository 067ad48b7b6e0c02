"""One request and what came back, kept as replayable evidence: request line, headers, bodies, curl.

The transport fills these in; tests and checks read them; reports get `evidence()`, which is
redacted and size-bounded.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from build_conformance.redaction import redact
from build_conformance.target.correlation import TRACEPARENT, request_id_of, span_of

BODY_EXCERPT = 2048


@dataclass(frozen=True)
class SentRequest:
    method: str
    origin: str  # scheme://host:port
    target: bytes  # the request target exactly as on the wire
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __repr__(self) -> str:  # headers and body may carry credentials: show what evidence shows
        return redact(f"SentRequest({self.request_line!r}, {len(self.body)} body bytes)")

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.target.decode('latin-1')} HTTP/1.1"

    @property
    def url(self) -> str:
        return self.origin + self.target.decode("latin-1")

    @property
    def traceparent(self) -> str | None:
        """The W3C traceparent this request carried (the transport gives every request its own span)."""
        for key, value in self.headers:
            if key.lower() == TRACEPARENT:
                return value
        return None


@dataclass(frozen=True)
class ReceivedResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed: float

    def __repr__(self) -> str:
        return f"ReceivedResponse({self.status}, {len(self.body)} body bytes)"

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]


@dataclass
class Exchange:
    """One request and what came back: a response, a timeout, or a transport error."""

    label: str
    request: SentRequest
    response: ReceivedResponse | None = None
    timed_out: bool = False
    # Why no answer came within a wait shorter than the request timeout (target/patience.py): not a timeout.
    cut_short: str | None = None
    transport_error: str | None = None
    attempts: int = 1
    history: list[str] = field(default_factory=list)  # outcomes of earlier attempts ("503", "timed out", …)
    notes: list[str] = field(default_factory=list)
    # When (time.monotonic) this attempt was sent and its answer was in: of two requests in flight at once,
    # neither came first as far as the server's state is concerned.
    sent_at: float | None = None
    received_at: float | None = None
    # The requirements whose observations cited this exchange, with the worst outcome (a recording names them).
    judged: dict[str, str] = field(default_factory=dict)

    def cite(self, requirement: str, outcome: str) -> None:
        """An observation of `requirement` judged this exchange (`outcome`: pass, fail, error)."""
        rank = {"fail": 0, "error": 1, "not-run": 2, "pass": 3}
        current = self.judged.get(requirement)
        if current is None or rank.get(outcome, 3) < rank.get(current, 3):
            self.judged[requirement] = outcome

    def __repr__(self) -> str:
        return f"Exchange({self.label!r}: {self.describe()})"

    @property
    def status(self) -> int | None:
        return self.response.status if self.response else None

    @property
    def request_id(self) -> tuple[str, str] | None:
        """(header, value): how the server named this request in its answer (x-request-id), if it did."""
        return request_id_of(self.response.headers) if self.response is not None else None

    def json(self) -> Any:
        if self.response is None:
            raise ValueError("no response")
        return json.loads(self.response.body)

    def json_or_none(self) -> Any:
        try:
            return self.json()
        except (ValueError, UnicodeDecodeError):
            return None

    def curl(self) -> str:
        """A reproduction line; `--path-as-is` keeps curl from normalising the path."""
        parts = ["curl", "-sS", "-i", "--path-as-is", "-X", self.request.method]
        for key, value in self.request.headers:
            # The traceparent names this exchange's span: a replay is another request (it gets its own).
            if key.lower() in {"host", "content-length", "accept-encoding", "connection", "user-agent", TRACEPARENT}:
                continue
            parts += ["-H", f"{key}: {value}"]
        if self.request.body:
            if len(self.request.body) > BODY_EXCERPT:
                parts += ["--data-binary", f"@body-of-{len(self.request.body)}-bytes.bin"]
            else:
                parts += ["--data-binary", self.request.body.decode("utf-8", "backslashreplace")]
        parts.append(self.request.url)
        return redact(shlex.join(parts))

    def evidence(self) -> dict[str, Any]:
        """A redacted, size-bounded record of the exchange for reports."""
        req = self.request
        evidence: dict[str, Any] = {
            "label": self.label,
            "request_line": redact(req.request_line),
            "request_headers": {k: redact(v) for k, v in req.headers if k.lower() != "host"},
            "request_body_excerpt": redact(_excerpt(req.body)),
            "request_body_bytes": len(req.body),
            "curl": self.curl(),
            "attempts": self.attempts,
        }
        if span_of(req.traceparent):  # the suite's own (a probe's odd one stays among the headers)
            evidence["traceparent"] = req.traceparent
        if self.history:
            evidence["earlier_attempts"] = [redact(h) for h in self.history]
        if self.notes:
            evidence["notes"] = [redact(n) for n in self.notes]
        if self.response is not None:
            evidence.update(
                response_status=self.response.status,
                response_headers={k: redact(v) for k, v in self.response.headers},
                response_body_excerpt=redact(_excerpt(self.response.body)),
                elapsed_ms=round(self.response.elapsed * 1000, 1),
            )
            named = self.request_id
            if named is not None:
                evidence["request_id"] = redact(named[1])
                evidence["request_id_header"] = named[0]
        if self.timed_out:
            evidence["outcome"] = "no response within the request timeout"
        if self.cut_short:
            evidence["outcome"] = redact(self.cut_short)
        if self.transport_error:
            evidence["outcome"] = redact(self.transport_error)
        return evidence

    def describe(self) -> str:
        """A short human line: request line and outcome."""
        if self.response is not None:
            outcome = f"{self.response.status}"
        elif self.timed_out:
            outcome = "timed out"
        elif self.cut_short:
            outcome = f"cut short ({self.cut_short})"
        else:
            outcome = f"transport error: {self.transport_error}"
        return redact(f"{self.request.request_line} -> {outcome}")


def _excerpt(body: bytes) -> str:
    text = body[:BODY_EXCERPT].decode("utf-8", "backslashreplace")
    if len(body) > BODY_EXCERPT:
        text += f"... ({len(body)} bytes)"
    return text
