"""Clean variations: legitimate production behaviours the suite must NOT flag.

A fault proves a check can fail; a variation proves a check does not fail for the wrong reason.
Each one is something a conformant deployment may well do (the requirements' "production HTTP is
legitimate" and "what unchanged means" paragraphs), switched on by name like a fault; the
selfcheck runs the suite against each and requires no failure at all. A check that fails on one
is a false alarm of the suite, not a defect of the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Variation:
    name: str
    description: str


def _variations(*variations: Variation) -> dict[str, Variation]:
    registry: dict[str, Variation] = {}
    for variation in variations:
        if variation.name in registry:
            raise ValueError(f"duplicate variation {variation.name!r}")
        registry[variation.name] = variation
    return registry


VARIATIONS: dict[str, Variation] = _variations(
    Variation("progress-while-cancelling",
              "while the cancellation of a building build is pending, the executor appends message entries "
              "('stopping build containers', 'releasing the build VM') and moves updated_at forward; completion "
              "takes about 1.5 s instead of the completion delay"),
    Variation("jsend-error-envelope",
              "every error body also carries JSend-style and diagnostic members: status 'error', http_status, "
              "retryable and timestamp, next to the documented error string and code"),
    Variation("wordy-errors",
              "error messages are long ordinary English whose words (select, update, delete, insert, from, "
              "where, set, values) are prose, not SQL: e.g. 'select a different build id from your own "
              "builds; the one you sent was not found where we looked'"),
    Variation("json-charset", "every JSON response is labelled Content-Type: application/json; charset=utf-8"),
    Variation("microsecond-timestamps",
              "date-times are written with microseconds and a +00:00 offset (2024-05-01T12:00:00.250000+00:00) "
              "instead of milliseconds and Z"),
    Variation("gzip-responses",
              "response bodies are gzip-compressed (Content-Encoding: gzip) when the request's Accept-Encoding "
              "allows it"),
    Variation("chunked-responses", "response bodies are sent with Transfer-Encoding: chunked, without Content-Length"),
    Variation("reads-whole-body",
              "a request body over the size limit is read to its end (up to 32 MiB) before the 413 is sent, as "
              "servers and gateways that buffer whole requests do: a client that waits for an early answer "
              "instead of sending stalls"),
    Variation("connection-close", "every response carries Connection: close and the server closes the connection"),
    Variation("stores-lone-surrogates",
              "a reason holding an escaped lone surrogate (\\ud800) is stored exactly and answered escaped again, "
              "instead of refused: the other outcome BODY-02 allows"),
    Variation("transient-503",
              "every 25th request (API or control, counted server-wide) is answered 503 'temporarily unavailable' "
              "before it is handled, with Retry-After: 1 on every other one of them; nothing is changed"),
)


def resolve_variations(names: Iterable[str]) -> frozenset[str]:
    """The named variations as a set; any unknown name is a ValueError that lists the valid ones."""
    chosen = frozenset(names)
    unknown = sorted(chosen - VARIATIONS.keys())
    if unknown:
        raise ValueError(
            f"unknown variation(s) {', '.join(unknown)}; valid variations: {', '.join(sorted(VARIATIONS))}"
        )
    return chosen
