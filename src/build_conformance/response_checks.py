"""Checks every response of the endpoint under test gets, whichever test provoked it.

SHAPE, LOG-01/02/04, ERR, GEN-01/02, AUTH-06/08 and CLIENT-01 are properties of each single
response, so they are judged here once for all tests rather than re-asserted in each.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass
from typing import Any

from . import contract
from .checker import Check
from .redaction import REDACTOR
from .sdk_check import DOCUMENTED_STATUSES, parse_with_official_client
from .transport import Exchange

ERROR_STATUSES_WITH_DOCUMENTED_BODY = frozenset({400, 401, 404, 422})

# The documented codes per situation (sdk-contract-facts §2.6, §4): a server may pick any code the
# official client maps to the same exception class. `auth_failed` parses but becomes a generic
# MachineError instead of AuthError, so only `unauthorized` fits a 401.
EXPECTED_CODES = {
    401: frozenset({"unauthorized"}),
    404: frozenset({"template_build_not_found", "not_found"}),
    400: frozenset({"invalid_request"}),
    422: frozenset({"invalid_request"}),
}

# Fingerprints of internals in an error body. Each is specific enough that ordinary messages
# ("build not found", "invalid request body") never match.
LEAK_PATTERNS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r'File "[^"]+", line \d+'),
    re.compile(r"\b\w+(?:Error|Exception): "),
    re.compile(r"\b[\w/.-]+\.(?:py|java|go|rb|js|ts|rs|php)(?::\d+|\b)"),
    re.compile(r"(?:/usr/lib/|/home/|site-packages|node_modules|C:\\)"),
    re.compile(r"\b(?:SELECT|INSERT INTO|UPDATE|DELETE FROM)\b.+\b(?:FROM|WHERE|SET|VALUES)\b", re.I | re.S),
    re.compile(r"\b(?:sqlite3?|psycopg2?|SQLSTATE|ORA-\d{5}|pq:)\b", re.I),
    re.compile(r"\bgoroutine \d+ \["),
    re.compile(r"\bat [\w$.]+\([\w]+\.(?:java|kt|scala):\d+\)"),
]

UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class Expectation:
    """What the suite knows about the request it sent, to judge the response against."""

    build_id: str | None = None  # the build the request addresses, when it addresses one of ours
    template_id: str | None = None
    presented: tuple[str, ...] = ()  # credentials presented in this request (valid or not)


class ResponseChecks:
    def __init__(self, check: Check) -> None:
        self._check = check
        self._next_offsets: dict[str, int] = {}
        self._lock = threading.Lock()

    def inspect(self, exchange: Exchange, expectation: Expectation) -> None:
        check = self._check
        if exchange.timed_out:
            check.that("GEN-02", False, "no response within the request timeout", exchange=exchange)
            return
        response = exchange.response
        if response is None:
            return  # transport errors are the suite's inability to judge, reported by the caller
        check.that("GEN-02", True, "answered within the request timeout")
        if response.status == 503:
            return  # the transport already retried it; a persistent 503 is an error, not a verdict
        check.that(
            "GEN-01",
            response.status < 500,
            f"answered {response.status}",
            exchange=exchange,
            expected="a status below 500",
            received=response.status,
        )
        self._credential_echo(exchange, expectation)
        self._request_id(exchange)
        if 200 <= response.status < 300:
            self._success(exchange, expectation)
        elif 400 <= response.status < 500:
            self._error(exchange)
        if response.status in DOCUMENTED_STATUSES:
            problem = parse_with_official_client(response)
            check.that(
                "CLIENT-01",
                problem is None,
                f"the official client could not parse a {response.status} response: {problem}"
                if problem
                else "parsed by the official client",
                exchange=exchange,
                expected="parsed into the documented model",
                received=problem,
            )

    def _credential_echo(self, exchange: Exchange, expectation: Expectation) -> None:
        response = exchange.response
        assert response is not None
        haystack = response.body.decode("latin-1") + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers)
        secrets = set(REDACTOR.secrets) | {s for s in expectation.presented if len(s) >= 12}
        echoed = sorted(s for s in secrets if s in haystack)
        self._check.that(
            "AUTH-08",
            not echoed,
            "a presented credential appears in the response" if echoed else "no credential echoed",
            exchange=exchange,
            expected="no credential in any header or body",
            received=f"{len(echoed)} credential(s) echoed" if echoed else None,
        )

    def _request_id(self, exchange: Exchange) -> None:
        response = exchange.response
        assert response is not None
        header = response.header("x-request-id")
        self._check.that(
            "ERR-05",
            bool(header),
            "x-request-id header present" if header else "no x-request-id header",
            exchange=exchange,
            expected="an x-request-id header",
            received=header,
        )
        body = exchange.json_or_none()
        if response.status >= 400 and isinstance(body, dict) and "request_id" in body and header:
            self._check.that(
                "ERR-05",
                body["request_id"] == header,
                "error body request_id equals the x-request-id header",
                exchange=exchange,
                expected=header,
                received=body["request_id"],
            )

    def _success(self, exchange: Exchange, expectation: Expectation) -> None:
        check = self._check
        response = exchange.response
        assert response is not None
        check.that(
            "SHAPE-06",
            response.status == 200,
            f"a successful cancel answered {response.status}",
            exchange=exchange,
            expected=200,
            received=response.status,
        )
        content_type = (response.header("content-type") or "").split(";")[0].strip().lower()
        check.that(
            "SHAPE-01",
            content_type == "application/json",
            "success Content-Type is application/json",
            exchange=exchange,
            expected="application/json",
            received=content_type or "(none)",
        )
        try:
            body = exchange.json()
        except (ValueError, UnicodeDecodeError) as exc:
            check.that("SHAPE-01", False, f"success body is not JSON: {exc}", exchange=exchange)
            return
        self.validate_snapshot(body, exchange, expectation)

    def validate_snapshot(self, body: Any, exchange: Exchange | None, expectation: Expectation) -> None:
        """Schema and cross-field checks of a snapshot body (cancel 200)."""
        check = self._check
        found: dict[str, list[contract.Violation]] = {}
        for violation in contract.violations(contract.SNAPSHOT, body):
            found.setdefault(contract.classify(violation), []).append(violation)
        for rid in ("SHAPE-01", "SHAPE-02", "SHAPE-03", "SHAPE-04", "LOG-01", "LOG-04"):
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
        if not isinstance(body, dict) or not isinstance(body.get("build"), dict):
            return
        build = body["build"]
        if expectation.build_id is not None:
            check.that(
                "SHAPE-05",
                build.get("build_id") == expectation.build_id,
                "build.build_id equals the requested id",
                exchange=exchange,
                expected=expectation.build_id,
                received=build.get("build_id"),
            )
        if expectation.template_id is not None:
            check.that(
                "SHAPE-05",
                build.get("template_id") == expectation.template_id,
                "build.template_id is the build's own",
                exchange=exchange,
                expected=expectation.template_id,
                received=build.get("template_id"),
            )
        self._log_consistency(body, build, exchange)

    def _log_consistency(self, body: dict[str, Any], build: dict[str, Any], exchange: Exchange | None) -> None:
        check = self._check
        entries = body.get("entries")
        if not isinstance(entries, list):
            return
        entry_dicts = [e for e in entries if isinstance(e, dict)]
        wrong_owner = [e.get("build_id") for e in entry_dicts if e.get("build_id") != build.get("build_id")]
        check.that(
            "LOG-01",
            not wrong_owner,
            "every entry's build_id equals the build's",
            exchange=exchange,
            expected=build.get("build_id"),
            received=wrong_owner[0] if wrong_owner else None,
        )
        raw_offsets = [e.get("offset") for e in entry_dicts]
        offsets = [o for o in raw_offsets if isinstance(o, int) and not isinstance(o, bool)]
        if len(offsets) != len(raw_offsets):
            return  # typing problems are LOG-01's, already reported by the schema
        increasing = all(a < b for a, b in itertools.pairwise(offsets))
        check.that(
            "LOG-02",
            increasing,
            "entry offsets strictly increase in the order returned",
            exchange=exchange,
            expected="strictly increasing offsets",
            received=offsets,
        )
        next_offset = body.get("next_offset")
        if not isinstance(next_offset, int) or isinstance(next_offset, bool):
            return
        check.that(
            "LOG-02",
            all(next_offset > o for o in offsets),
            "next_offset is greater than every returned offset",
            exchange=exchange,
            expected=f"> {max(offsets) if offsets else '-'}",
            received=next_offset,
        )
        build_id = build.get("build_id")
        if isinstance(build_id, str):
            with self._lock:
                previous = self._next_offsets.get(build_id)
                self._next_offsets[build_id] = max(next_offset, previous or 0)
            if previous is not None:
                check.that(
                    "LOG-02",
                    next_offset >= previous,
                    "next_offset never decreases between responses for the same build",
                    exchange=exchange,
                    expected=f">= {previous}",
                    received=next_offset,
                )

    def _error(self, exchange: Exchange) -> None:
        check = self._check
        response = exchange.response
        assert response is not None
        status = response.status
        body = exchange.json_or_none()
        problems = [f"{v.json_path}: {v.message}" for v in contract.violations(contract.ERROR_RESPONSE, body)]
        rid = "ERR-01" if status in ERROR_STATUSES_WITH_DOCUMENTED_BODY else "ERR-04"
        check.that(
            rid,
            not problems,
            f"{status} error body: " + ("; ".join(problems[:3]) if problems else "valid"),
            exchange=exchange,
            expected="a JSON object with string `error` and a documented `code`",
            received="; ".join(problems[:3]) or None,
        )
        text = response.body.decode("utf-8", "replace")
        leaks = [p.pattern for p in LEAK_PATTERNS if p.search(text)]
        check.that(
            "ERR-03",
            not leaks,
            "error body leaks internals" if leaks else "no internals in the error body",
            exchange=exchange,
            expected="no stack traces, exception names, paths or SQL",
            received=f"matched {leaks[0]!r}" if leaks else None,
        )
        if status in EXPECTED_CODES and isinstance(body, dict) and isinstance(body.get("code"), str):
            check.that(
                "ERR-02",
                body["code"] in EXPECTED_CODES[status],
                f"{status} carries code {body['code']!r}",
                exchange=exchange,
                expected=" or ".join(sorted(EXPECTED_CODES[status])),
                received=body["code"],
            )
        if status == 401:
            challenges = response.header_values("www-authenticate")
            names_bearer = any(re.match(r"\s*bearer\b", c, re.I) or re.search(r",\s*bearer\b", c, re.I)
                               for c in challenges)
            check.that(
                "AUTH-06",
                names_bearer,
                "401 carries WWW-Authenticate naming Bearer",
                exchange=exchange,
                expected="WWW-Authenticate: Bearer ...",
                received=challenges or "(absent)",
            )
