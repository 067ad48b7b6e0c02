"""Checks every response of the endpoint under test gets, whichever test provoked it.

SHAPE-01..06, LOG-01/02/04, ERR-01..05, GEN-01/02, AUTH-06/08 and CLIENT-01..03 are properties of
each single response, so they are judged here once, for every response, rather than re-asserted in
each test. `ResponseChecks.inspect` is the one entry point (the cancel API calls it for each
exchange); each check below is a small function registered for the requirements it judges.
`ResponseChecks.inspect_status_read` judges the one other response the official SDK reads before a
cancel — its `connect()` read, `GET …/builds/{id}?offset=0` — where a provisioner makes that read.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from build_conformance import contract
from build_conformance.judging.check import Check
from build_conformance.judging.official_client import DOCUMENTED_STATUSES, parse_with_official_client
from build_conformance.judging.official_sdk import (
    EXPECTED_EXCEPTIONS,
    SdkOutcome,
    requested_build_id,
    sdk_cancel,
    sdk_connect,
)
from build_conformance.judging.registry import judges
from build_conformance.judging.shape import requirement_of
from build_conformance.redaction import REDACTOR
from build_conformance.target.cancel_api import Expectation
from build_conformance.target.exchange import Exchange, ReceivedResponse
from build_conformance.target.transport import CUT_SHORT, TIMED_OUT

ERROR_STATUSES_WITH_DOCUMENTED_BODY = frozenset({400, 401, 404, 422})

# The documented codes per situation: a server may pick any code the official client maps to the
# same exception class. `auth_failed` parses but becomes a generic MachineError instead of
# AuthError, so only `unauthorized` fits a 401.
EXPECTED_CODES = {
    401: frozenset({"unauthorized"}),
    404: frozenset({"template_build_not_found", "not_found"}),
    400: frozenset({"invalid_request"}),
    422: frozenset({"invalid_request"}),
}

# Fingerprints of internals in an error body. Each is specific enough that ordinary messages — also
# wordy English ("you may not update a build that is already set to a terminal status", "select a
# different build") — never match: SQL is matched by its syntax (upper-case keywords, or lower-case
# ones with column lists, `*`, comparisons), file names only with a directory or a line number.
LEAK_PATTERNS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r'File "[^"]+", line \d+'),
    re.compile(r"\b\w+(?:Error|Exception): "),
    re.compile(r"(?:[\w.-]*/)+[\w.-]+\.(?:py|java|go|rb|js|ts|rs|php)\b|\b[\w.-]+\.(?:py|java|go|rb|js|ts|rs|php):\d+"),
    re.compile(r"(?:/usr/lib/|/home/|site-packages|node_modules|C:\\)"),
    re.compile(r"\bSELECT\b[^;]{0,300}?\bFROM\b|\bINSERT INTO\b|\bDELETE FROM\b|\bUPDATE\s+\S+\s+SET\b"),
    re.compile(r"\bselect\s+(?:\*|[\w.]+(?:\s*,\s*[\w.]+)+)\s+from\s+[\w.\"]+", re.I),
    re.compile(r"\bwhere\s+[\w.\"]+\s*(?:=|<>|!=|\bis\s+null\b|\blike\s+')\s*(?:\?|\$\d|:\w|'|\d)", re.I),
    re.compile(r"\b(?:sqlite3?|psycopg2?|SQLSTATE|ORA-\d{5})\b|\bpq: ", re.I),
    re.compile(r"\bgoroutine \d+ \["),
    re.compile(r"\bat [\w$.]+\([\w]+\.(?:java|kt|scala):\d+\)"),
]

SNAPSHOT_SCHEMA_REQUIREMENTS = ("SHAPE-01", "SHAPE-02", "SHAPE-03", "SHAPE-04", "LOG-01", "LOG-04")


@dataclass
class Answer:
    """One response under judgement, with what the request expected of it."""

    check: Check
    exchange: Exchange
    response: ReceivedResponse
    expectation: Expectation

    @cached_property
    def body(self) -> Any:
        return self.exchange.json_or_none()


class ResponseChecks:
    def __init__(self, check: Check) -> None:
        self._check = check
        # Per build: (when the answer was in, its next_offset), for the order LOG-02 can hold a server to.
        self._next_offsets: dict[str, list[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def inspect(self, exchange: Exchange, expectation: Expectation) -> None:
        """Judge one exchange of the endpoint under test."""
        if not answered_in_time(self._check, exchange):
            return
        response = exchange.response
        if response is None or response.status == 503:
            # No answer is the suite's inability to judge (reported by the caller); a 503 was already
            # retried by the transport, and one that persists is an error, not a verdict.
            return
        answer = Answer(self._check, exchange, response, expectation)
        no_server_error(answer)
        no_credential_echoed(answer)
        request_id_header(answer)
        if 200 <= response.status < 300:
            success_is_200(answer)
            if success_is_json(answer):
                self.judge_snapshot(answer.body, exchange, expectation)
        elif 400 <= response.status < 500:
            error_body(answer)
            no_internals_leaked(answer)
            error_code_fits(answer)
            bearer_challenge(answer)
        if response.status in DOCUMENTED_STATUSES:
            official_client_parses(answer)
        if exchange.request.method == "POST":  # the SDK's cancel is a POST; other methods are probes of the path
            if response.status == 200:
                sdk_accepts_the_snapshot(answer)
            elif response.status in EXPECTED_EXCEPTIONS:
                sdk_raises_the_expected_error(answer)

    def inspect_status_read(self, exchange: Exchange, build_id: str) -> None:
        """Judge a provisioner's read of `build_id` through the public status endpoint from offset 0: the read
        the official SDK's `connect()` makes before every cancel (the CLI's `nullspace template cancel`)."""
        if exchange.response is not None and exchange.response.status == 200:
            sdk_connect_reads_the_build(self._check, exchange, build_id)

    def judge_snapshot(self, body: Any, exchange: Exchange | None, expectation: Expectation) -> None:
        """Schema and cross-field checks of a snapshot body (a cancel 200)."""
        snapshot_schema(self._check, body, exchange)
        if not isinstance(body, dict) or not isinstance(body.get("build"), dict):
            return
        addresses_the_build(self._check, body["build"], exchange, expectation)
        self._log_consistency(body, body["build"], exchange, expectation.build_id)

    def _log_consistency(self, body: dict[str, Any], build: dict[str, Any], exchange: Exchange | None,
                         addressed: str | None) -> None:
        entries_belong_to_the_build(self._check, body, build, exchange)
        offsets = offsets_increase(self._check, body, exchange)
        next_offset = body.get("next_offset")
        if offsets is None or not isinstance(next_offset, int) or isinstance(next_offset, bool):
            return
        # The log of the build the request addressed (an answer that names another build is SHAPE-05's).
        build_id = addressed if addressed is not None else build.get("build_id")
        previous = None
        if isinstance(build_id, str):
            now = time.monotonic()
            # Only answers that were in before this request was sent came first: of concurrent requests the
            # server may handle any first, and their answers may arrive in any order.
            sent_at = exchange.sent_at if exchange is not None and exchange.sent_at is not None else now
            received_at = exchange.received_at if exchange is not None and exchange.received_at is not None else now
            with self._lock:
                seen = self._next_offsets.setdefault(build_id, [])
                earlier = [offset for answered, offset in seen if answered <= sent_at]
                previous = max(earlier) if earlier else None
                seen.append((received_at, next_offset))
        next_offset_advances(self._check, next_offset, offsets, previous, exchange)


# ------------------------------------------------------------------------------------------- every answer


@judges("GEN-02")
def answered_in_time(check: Check, exchange: Exchange) -> bool:
    """A request is answered within the request timeout (also when a retry hid an earlier timeout). A wait
    shorter than the request timeout (cut short once its kind went unanswered in full: target/patience.py) is
    no evidence either way: an attempt it ended is judged by nobody, the earlier timeout already was."""
    # A last attempt cut short is no timeout of its own (the exchange timed out in an earlier attempt).
    timeouts = exchange.history.count(TIMED_OUT) + (1 if exchange.timed_out and not exchange.cut_short else 0)
    if timeouts and exchange.response is None:
        check.that("GEN-02", False, "no response within the request timeout", exchange=exchange,
                   expected="an answer within the request timeout", received="no answer")
        return False
    if timeouts:
        check.that("GEN-02", False, f"attempt 1 got no response within the request timeout; attempt "
                   f"{exchange.attempts} was answered", exchange=exchange,
                   expected="every attempt answered within the request timeout",
                   received=f"{timeouts} attempt(s) timed out")
        return True
    if exchange.response is None:
        return not exchange.cut_short
    if CUT_SHORT not in exchange.history:
        check.that("GEN-02", True, "answered within the request timeout", exchange=exchange)
    return True


@judges("GEN-01")
def no_server_error(answer: Answer) -> None:
    """No request is answered with a 5xx (a 503 that persisted is an error, handled before)."""
    status = answer.response.status
    answer.check.that("GEN-01", status < 500, f"answered {status}", exchange=answer.exchange,
                      expected="a status below 500", received=status)


@judges("AUTH-08")
def no_credential_echoed(answer: Answer) -> None:
    """No credential the request presented (nor any token of the run) appears in the response."""
    response = answer.response
    haystack = response.body.decode("latin-1") + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers)
    secrets = set(REDACTOR.secrets) | {s for s in answer.expectation.presented if len(s) >= 12}
    echoed = sorted(s for s in secrets if s in haystack)
    answer.check.that(
        "AUTH-08",
        not echoed,
        "a presented credential appears in the response" if echoed else "no credential echoed",
        exchange=answer.exchange,
        expected="no credential in any header or body",
        received=f"{len(echoed)} credential(s) echoed" if echoed else None,
    )


@judges("ERR-05")
def request_id_header(answer: Answer) -> None:
    """An x-request-id header; an error body's request_id, when present, equals it."""
    header = answer.response.header("x-request-id")
    check, exchange = answer.check, answer.exchange
    check.that("ERR-05", bool(header), "x-request-id header present" if header else "no x-request-id header",
               exchange=exchange, expected="an x-request-id header", received=header)
    body = answer.body
    if answer.response.status >= 400 and isinstance(body, dict) and "request_id" in body and header:
        check.that("ERR-05", body["request_id"] == header, "error body request_id equals the x-request-id header",
                   exchange=exchange, expected=header, received=body["request_id"])


@judges("CLIENT-01")
def official_client_parses(answer: Answer) -> None:
    """The official client's generated cancel operation parses every documented-status response."""
    problem = parse_with_official_client(answer.response)
    answer.check.that(
        "CLIENT-01",
        problem is None,
        f"the official client could not parse a {answer.response.status} response: {problem}"
        if problem
        else "parsed by the official client",
        exchange=answer.exchange,
        expected="parsed into the documented model",
        received=problem,
    )


@judges("CLIENT-02")
def sdk_accepts_the_snapshot(answer: Answer) -> None:
    """The official SDK's `TemplateBuild.cancel()` accepts a 200 and returns a snapshot of the requested build.

    The SDK keeps its handle's id and takes everything else (the status above all) from the body, so its
    snapshot describes the requested build only when the body's build is the one in the request path.
    """
    requested = requested_build_id(answer.exchange.request.target)
    if requested is None:
        return
    outcome = sdk_cancel(answer.response, requested, answer.expectation.template_id)
    if not outcome.reached_the_wire:
        return  # the SDK cannot even send a cancel for this id (a probe): nothing it could make of the answer
    sdk_shows_the_requested_build(answer.check, answer.exchange, requested, outcome, "TemplateBuild.cancel()",
                                  "its snapshot shows that build's status under the requested id")


@judges("CLIENT-02")
def sdk_connect_reads_the_build(check: Check, exchange: Exchange, build_id: str) -> None:
    """The official SDK's `TemplateBuild.connect()` accepts the build read it makes first, and connects to it."""
    response = exchange.response
    assert response is not None
    outcome = sdk_connect(response, build_id)
    if outcome.reached_the_wire:
        sdk_shows_the_requested_build(check, exchange, build_id, outcome, "TemplateBuild.connect() (GET ?offset=0)",
                                      "the handle it returns is that build's: a cancel through it cancels that build")


@judges("CLIENT-02")
def sdk_shows_the_requested_build(check: Check, exchange: Exchange, requested: str, outcome: SdkOutcome,
                                  call: str, consequence: str) -> None:
    """What the SDK made of a 200: it raised nothing, and the build it now shows is the requested one."""
    if outcome.raised:
        check.that("CLIENT-02", False, f"the official SDK's {call} raised on a 200: {outcome.describe()}",
                   exchange=exchange, expected="a snapshot of the requested build", received=outcome.describe())
        return
    same = outcome.described_build_id == requested
    check.that(
        "CLIENT-02",
        same,
        f"the official SDK's {call} accepted the 200 (status {outcome.status!r})" if same else
        f"the official SDK's {call} accepted a 200 describing build {outcome.described_build_id!r}, not the "
        f"requested {requested!r}: {consequence} (status {outcome.status!r})",
        exchange=exchange,
        expected=f"a snapshot of build {requested!r}",
        received=None if same else f"a snapshot of build {outcome.described_build_id!r}",
    )


@judges("CLIENT-03")
def sdk_raises_the_expected_error(answer: Answer) -> None:
    """The official SDK turns a 401 into AuthError (CLI exit 4) and a 404 into NotFoundError (CLI exit 3)."""
    status = answer.response.status
    requested = requested_build_id(answer.exchange.request.target)
    if requested is None:
        return
    outcome = sdk_cancel(answer.response, requested, answer.expectation.template_id)
    if not outcome.reached_the_wire:
        return  # the SDK cannot even send a cancel for this id (a probe): nothing it could make of the answer
    expected, exit_code = EXPECTED_EXCEPTIONS[status]
    answer.check.that(
        "CLIENT-03",
        outcome.exception == expected,
        f"the official SDK's TemplateBuild.cancel() raised {outcome.describe()} for a {status}",
        exchange=answer.exchange,
        expected=f"{expected} (the CLI exits {exit_code})",
        received=outcome.describe() if outcome.exception != expected else None,
    )


# ----------------------------------------------------------------------------------------------- success


@judges("SHAPE-06")
def success_is_200(answer: Answer) -> None:
    """A successful cancel is answered 200, the only success status the contract documents."""
    status = answer.response.status
    answer.check.that("SHAPE-06", status == 200, f"a successful cancel answered {status}", exchange=answer.exchange,
                      expected=200, received=status)


@judges("SHAPE-01")
def success_is_json(answer: Answer) -> bool:
    """A successful cancel is answered application/json (parameters allowed) with a JSON body."""
    check, exchange = answer.check, answer.exchange
    content_type = (answer.response.header("content-type") or "").split(";")[0].strip().lower()
    check.that("SHAPE-01", content_type == "application/json", "success Content-Type is application/json",
               exchange=exchange, expected="application/json", received=content_type or "(none)")
    try:
        exchange.json()
    except (ValueError, UnicodeDecodeError) as exc:
        check.that("SHAPE-01", False, f"success body is not JSON: {exc}", exchange=exchange)
        return False
    return True


@judges(*SNAPSHOT_SCHEMA_REQUIREMENTS)
def snapshot_schema(check: Check, body: Any, exchange: Exchange | None) -> None:
    """The snapshot against the contract's schema; each violation is charged to the requirement it breaks."""
    found: dict[str, list[contract.Violation]] = {}
    for violation in contract.violations(contract.SNAPSHOT, body):
        found.setdefault(requirement_of(violation), []).append(violation)
    for rid in SNAPSHOT_SCHEMA_REQUIREMENTS:
        problems = found.get(rid, [])
        first = problems[0] if problems else None
        check.that(
            rid,
            not problems,
            f"{first.json_path}: {first.message} ({len(problems)} violation(s))" if first else "valid",
            exchange=exchange,
            expected=f"schema-valid at {first.json_path}" if first else None,
            received=repr(first.value)[:300] if first else None,
        )


@judges("SHAPE-05")
def addresses_the_build(check: Check, build: dict[str, Any], exchange: Exchange | None,
                        expectation: Expectation) -> None:
    """build.build_id is the requested id and build.template_id the build's own."""
    for name, expected in (("build_id", expectation.build_id), ("template_id", expectation.template_id)):
        if expected is not None:
            check.that("SHAPE-05", build.get(name) == expected, f"build.{name} is the requested build's",
                       exchange=exchange, expected=expected, received=build.get(name))


@judges("LOG-01")
def entries_belong_to_the_build(check: Check, body: dict[str, Any], build: dict[str, Any],
                                exchange: Exchange | None) -> None:
    """Every entry's build_id equals the build's."""
    entries = body.get("entries")
    if not isinstance(entries, list):
        return
    wrong_owner = [e.get("build_id") for e in entries if isinstance(e, dict) and e.get("build_id") != build.get(
        "build_id")]
    check.that("LOG-01", not wrong_owner, "every entry's build_id equals the build's", exchange=exchange,
               expected=build.get("build_id"), received=wrong_owner[0] if wrong_owner else None)


@judges("LOG-02")
def offsets_increase(check: Check, body: dict[str, Any], exchange: Exchange | None) -> list[int] | None:
    """Entry offsets strictly increase in the order returned; returns them (None when mistyped: LOG-01's)."""
    entries = body.get("entries")
    if not isinstance(entries, list):
        return None
    raw_offsets = [e.get("offset") for e in entries if isinstance(e, dict)]
    offsets = [o for o in raw_offsets if isinstance(o, int) and not isinstance(o, bool)]
    if len(offsets) != len(raw_offsets):
        return None  # typing problems are LOG-01's, already reported by the schema
    check.that("LOG-02", all(a < b for a, b in itertools.pairwise(offsets)),
               "entry offsets strictly increase in the order returned", exchange=exchange,
               expected="strictly increasing offsets", received=offsets)
    return offsets


@judges("LOG-02")
def next_offset_advances(check: Check, next_offset: int, offsets: list[int], previous: int | None,
                         exchange: Exchange | None) -> None:
    """next_offset is above every returned offset and never decreases for the same build."""
    check.that("LOG-02", all(next_offset > o for o in offsets), "next_offset is greater than every returned offset",
               exchange=exchange, expected=f"> {max(offsets) if offsets else '-'}", received=next_offset)
    if previous is not None:
        check.that("LOG-02", next_offset >= previous, "next_offset never decreases between responses for the same "
                   "build", exchange=exchange, expected=f">= {previous}", received=next_offset)


# ------------------------------------------------------------------------------------------------- errors


@judges("ERR-01", "ERR-04")
def error_body(answer: Answer) -> None:
    """A 4xx body is the documented error object (ERR-01 for 400/401/404/422, ERR-04 for the others)."""
    status = answer.response.status
    problems = [f"{v.json_path}: {v.message}" for v in contract.violations(contract.ERROR_RESPONSE, answer.body)]
    rid = "ERR-01" if status in ERROR_STATUSES_WITH_DOCUMENTED_BODY else "ERR-04"
    answer.check.that(
        rid,
        not problems,
        f"{status} error body: " + ("; ".join(problems[:3]) if problems else "valid"),
        exchange=answer.exchange,
        expected="a JSON object with string `error` and a documented `code`",
        received="; ".join(problems[:3]) or None,
    )


@judges("ERR-03")
def no_internals_leaked(answer: Answer) -> None:
    """No stack trace, exception name, file path or SQL in an error body."""
    text = answer.response.body.decode("utf-8", "replace")
    leaks = [p.pattern for p in LEAK_PATTERNS if p.search(text)]
    answer.check.that(
        "ERR-03",
        not leaks,
        "error body leaks internals" if leaks else "no internals in the error body",
        exchange=answer.exchange,
        expected="no stack traces, exception names, paths or SQL",
        received=f"matched {leaks[0]!r}" if leaks else None,
    )


@judges("ERR-02")
def error_code_fits(answer: Answer) -> None:
    """The error code fits the situation: 401 unauthorized, 404 not found, a rejected body invalid_request."""
    status, body = answer.response.status, answer.body
    if status in EXPECTED_CODES and isinstance(body, dict) and isinstance(body.get("code"), str):
        answer.check.that("ERR-02", body["code"] in EXPECTED_CODES[status], f"{status} carries code {body['code']!r}",
                          exchange=answer.exchange, expected=" or ".join(sorted(EXPECTED_CODES[status])),
                          received=body["code"])


@judges("AUTH-06")
def bearer_challenge(answer: Answer) -> None:
    """Every 401 carries WWW-Authenticate naming the Bearer scheme."""
    if answer.response.status != 401:
        return
    challenges = answer.response.header_values("www-authenticate")
    names_bearer = any(re.match(r"\s*bearer\b", c, re.I) or re.search(r",\s*bearer\b", c, re.I) for c in challenges)
    answer.check.that("AUTH-06", names_bearer, "401 carries WWW-Authenticate naming Bearer", exchange=answer.exchange,
                      expected="WWW-Authenticate: Bearer ...", received=challenges or "(absent)")
