"""Deliberate defects the reference server can switch on, to prove each check of the suite can fail.

Each fault names the requirement IDs it violates. Two rules keep the declarations honest:

- A fault breaks what it declares and nothing else: everything it does not touch stays conformant.
- GEN-03 ("a rejected request has no side effect") is declared whenever the fault makes a request the
  server *rejects* (4xx) change a build anyway: the suite observes the build around every rejected
  request and records GEN-03 (``side_effects.expect_unchanged``). A bad request the server accepts
  (200) and acts on is the violated requirement's alone (the catalogue's terms: GEN-03 covers
  rejected requests only).

Faults in how a build is written (enum spelling, missing field, date format, nulls) live in the
one serializer every view shares, so the control API shows them too and the build reads the same
everywhere; faults of the public handlers (status code, Content-Type, next_offset, template_id,
log rendering, error bodies) stay out of the control API. See mutations.py.

The contract schemas mirror the official client (date-time pattern, enums, required members), so
whatever the client fails to parse is also a schema violation: no fault can break CLIENT-01 alone,
and each fault that breaks it also declares the SHAPE/LOG/ERR requirement the schema reports.
The official SDK's own validator (CLIENT-02) is looser than the schemas (it takes null for an unset
field, defaults a missing build_backend), so a 200 it rejects breaks a SHAPE/LOG requirement too;
what it alone sees is a 200 for another build than the path names, on the probes SHAPE-05 does not
judge. Its error mapping (CLIENT-03) reads only the body's `code` and `error_detail`: an extra member
in an otherwise documented error_detail breaks CLIENT-03 alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    name: str
    violates: tuple[str, ...]
    description: str
    # Suite options a run needs to meet the defect (a fault of builds started through the public API).
    suite_args: tuple[str, ...] = ()


# The public API with the embedded server: real builds on loopback, with a budget for them.
THROUGH_THE_PUBLIC_API = ("--provisioner", "public-api", "--max-builds", "800")


def _faults(*faults: Fault) -> dict[str, Fault]:
    registry: dict[str, Fault] = {}
    for fault in faults:
        if fault.name in registry:
            raise ValueError(f"duplicate fault {fault.name!r}")
        registry[fault.name] = fault
    return registry


FAULTS: dict[str, Fault] = _faults(
    # AUTH -------------------------------------------------------------------------------------
    Fault("auth-missing-header-accepted", ("AUTH-01", "AUTH-04"),
          "a request without Authorization is served as tenant A (a 'default tenant' fallback), which "
          "also answers 404 for unknown ids without credentials"),
    Fault("auth-prefix-token-accepted", ("AUTH-02",),
          "tokens are compared by prefix: a truncated token, or one with characters appended, authenticates"),
    Fault("auth-other-schemes-accepted", ("AUTH-03",),
          "Basic (token as user, password or whole credential), Token and a bare token authenticate"),
    Fault("auth-x-api-key-accepted", ("AUTH-03",),
          "the token in X-API-Key authenticates when Authorization is absent"),
    Fault("auth-lookup-before-auth", ("AUTH-04",),
          "the build is looked up before authentication: an unknown id without credentials gets 404"),
    Fault("tenant-leak-403", ("AUTH-05",),
          "another tenant's build is answered 403 instead of 404, revealing that it exists"),
    Fault("tenant-cancels-other", ("AUTH-05",),
          "ownership is not checked on cancel: tenant B cancels and reads tenant A's build"),
    Fault("no-www-authenticate", ("AUTH-06",), "401 responses carry no WWW-Authenticate header"),
    Fault("scheme-case-sensitive", ("AUTH-07",), "only the exact scheme 'Bearer' is accepted; 'bearer' gets 401"),
    Fault("token-echo-in-error", ("AUTH-08",), "the 401 message quotes the credential that was presented"),
    Fault("query-token-accepted", ("AUTH-09",),
          "?access_token= authenticates when no Authorization header is sent"),
    # PATH -------------------------------------------------------------------------------------
    Fault("unknown-id-410", ("PATH-01",),
          "an unknown id is answered 410 Gone (with the not-found code) instead of 404"),
    Fault("unknown-id-500", ("PATH-01", "GEN-01"),
          "a well-formed unknown id raises inside the lookup and is answered 500"),
    Fault("path-decoded-slash-500", ("PATH-02", "GEN-01"),
          "an id whose percent-decoding contains '/' crashes the handler (500)"),
    Fault("prefix-match-id", ("PATH-03", "CLIENT-02"),
          "ids are matched by prefix: the id with a character appended or removed addresses the build"),
    Fault("path-traversal-normalised", ("PATH-03", "CLIENT-02"),
          "the decoded id is path-normalised, so x%2F..%2F<id> addresses <id>"),
    Fault("no-percent-decoding", ("PATH-04",),
          "the id segment is used without percent-decoding, so %41 does not address a build with A"),
    Fault("get-cancels", ("PATH-05",), "GET on the cancel path performs the cancel"),
    Fault("query-param-breaks", ("PATH-06",), "any query parameter on a cancel is rejected with 400"),
    Fault("cancel-honours-offset", ("PATH-06",),
          "a cancel with ?offset=N returns only the log entries from offset N (the query means nothing to cancel)"),
    Fault("no-allow-header", ("PATH-07",), "405 responses carry no Allow header"),
    # BODY -------------------------------------------------------------------------------------
    Fault("json-charset-rejected", ("BODY-01",),
          "the Content-Type is compared exactly: application/json; charset=utf-8 gets 415"),
    Fault("empty-object-rejected", ("BODY-01",), "an empty JSON object {} is refused with 422 ('nothing to do')"),
    Fault("reason-truncated", ("BODY-02", "BODY-05"),
          "the reason is stored truncated to 255 characters (also the reason of an accepted body at a size limit)"),
    Fault("reason-reencoded", ("BODY-02", "BODY-05"),
          "the reason's UTF-8 bytes are stored as Latin-1 text (mojibake; also in an accepted body at a size limit)"),
    Fault("reason-nul-truncated", ("BODY-02",),
          "the reason is written through a C-string API: it is stored cut at its first NUL (\\u0000), silently"),
    Fault("reason-nul-500", ("BODY-02", "GEN-01"),
          "a reason holding NUL reaches the database driver, which refuses it; nothing catches that: 500"),
    Fault("lone-surrogate-replaced", ("BODY-02",),
          "an escaped lone surrogate (\\ud800) in a reason is replaced with U+FFFD, as a lenient decoder does, and "
          "the altered reason stored"),
    Fault("unstorable-reason-refused-late", ("BODY-02", "GEN-03"),
          "a reason holding NUL or a lone surrogate is refused with 422, but only after the cancel (without the "
          "reason) was applied"),
    Fault("reason-found-by-pattern", ("BODY-02",),
          "the reason is picked from the raw body by a fast path that expects '\"reason\":' and at most one space: "
          "spelled otherwise (whitespace around the colon, newlines, an escaped member name) the cancel goes on "
          "without its reason"),
    Fault("reason-escapes-half-decoded", ("BODY-02",),
          "the reason's escapes are decoded by the server's own routine, which knows the two-character escapes and "
          "lower-case \\uXXXX only: an escaped solidus (\\/) or upper-case hex (\\u00E9) is stored as written"),
    Fault("duplicate-reasons-joined", ("BODY-02",),
          "a body naming reason twice records both strings joined with ', ' (as a form reader joins a repeated field)"),
    Fault("empty-reason-refused", ("BODY-02",), 'an empty reason ({"reason": ""}) is refused with 422 ("reason must '
          'not be empty") instead of being a cancel without reason'),
    Fault("reason-limit-on-escaped-length", ("BODY-02",),
          "the 1000-character limit is checked as 5000 bytes of the reason as spelled in the body: 1000 characters "
          "sent \\u-escaped (6 to 12 bytes each) are refused with 422"),
    Fault("reason-cut-at-limit", ("BODY-02", "BODY-05"),
          "reasons over 1000 characters are stored cut to 1000 (a column too narrow, in a store that does not "
          "refuse), also in an accepted body at a size limit"),
    Fault("body-at-limit-500", ("BODY-05", "GEN-01"),
          "a body of exactly the size limit (64 KiB) makes the reader overrun its buffer by one byte: 500"),
    Fault("malformed-json-still-cancels", ("BODY-03", "GEN-03"),
          "malformed JSON is answered 400, but only after the cancel was applied"),
    Fault("wrong-type-reason-accepted", ("BODY-03",),
          "a reason of the wrong type is converted to text and the cancel proceeds"),
    Fault("mass-assignment", ("BODY-04", "STATE-01", "STATE-02", "STATE-03", "STATE-04", "STATE-06"),
          "body fields that name build columns (status, finished_at, cancel_requested_by, ...) are written: a "
          "cancelled build becomes 'ready' with another finish, which its history forbids"),
    Fault("huge-body-500", ("BODY-05", "GEN-01"), "a body above the size limit is answered 500"),
    Fault("huge-body-hang", ("BODY-05", "GEN-02"),
          "a body above the size limit stalls the handler for the hang duration before any answer"),
    Fault("huge-body-reset", ("BODY-05",),
          "a body above the size limit on a public endpoint makes the server reset the connection (SO_LINGER 0 "
          "close, while the client may still be sending) without any response instead of answering 413"),
    Fault("text-plain-accepted", ("BODY-06",),
          "the Content-Type is ignored: a text/plain or form-encoded body is accepted and the build cancelled"),
    # IDEM -------------------------------------------------------------------------------------
    Fault("overwrite-reason-on-repeat", ("IDEM-01", "IDEM-02"),
          "a repeat cancel with another reason replaces the reason while cancellation is pending (concurrent "
          "cancels are such repeats, so they disagree too)"),
    Fault("waiting-cancel-stamps-started", ("STATE-01",),
          "cancelling a waiting build hands it to the executor to stop, which stamps started_at (at the moment "
          "of the cancel): the cancel answer and every later observation show a build that started"),
    Fault("repeat-logged-at-completion", ("LOG-03", "IDEM-02"),
          "each repeat of a cancel while the cancellation is pending is queued for the executor, which logs one "
          "more 'cancelled' entry per repeat when it stops the build: visible only once the build settled"),
    Fault("entry-rewritten-on-cancel", ("LOG-02",),
          "when a build is cancelled, its first log entry is re-worded ('build queued (cancelled since)'): the "
          "same offset names another entry than it did before"),
    Fault("check-then-act-race", ("IDEM-02", "IDEM-01", "STATE-04"),
          "cancel reads, pauses, then writes its facts unconditionally: concurrent cancels each apply and "
          "disagree, and the first cancel's facts of a build already cancelled are overwritten (the log entry "
          "is written once)"),
    Fault("noop-bumps-updated-at", ("IDEM-03",),
          "every no-op cancel (a repeat, or a cancel of a terminal build) bumps updated_at"),
    # STATE ------------------------------------------------------------------------------------
    Fault("waiting-cancel-still-starts", ("STATE-01", "STATE-04"),
          "the scheduler (advance) starts a build cancelled while waiting, which is terminal"),
    Fault("building-finishes-ready", ("STATE-02", "IDEM-02"),
          "a pending cancellation completes the build as ready instead of cancelled (so concurrent cancels "
          "do not end in a cancellation either)"),
    Fault("terminal-cancel-409", ("STATE-03", "SHAPE-06"),
          "cancelling a ready or error build, a successful no-op by the contract, is answered 409"),
    Fault("ready-gets-cancel-fields", ("STATE-03", "STATE-04"),
          "cancelling a ready or error build records cancel_requested_at/by on it"),
    Fault("terminal-not-absorbing", ("STATE-04",),
          "advance on a terminal build re-runs its finalisation, rewriting finished_at and updated_at"),
    Fault("timestamps-reordered", ("STATE-05",),
          "a cancelled waiting build gets a finished_at earlier than its cancel_requested_at"),
    Fault("duration-from-queued", ("STATE-06",),
          "duration_ms of a cancelled build is measured from queued_at instead of started_at"),
    Fault("missing-cancel-requested-by", ("STATE-07",), "cancel_requested_by is never recorded"),
    Fault("status-timestamp-mismatch", ("STATE-08",), "a cancelled waiting build gets no finished_at"),
    # The moment of the cancel: faults that only show once a build has a history (tests/test_histories.py).
    Fault("aged-cancel-stale-finish", ("STATE-05",),
          "a build nobody asked about for 2 s (not read, not started since it was made) is parked by its executor; "
          "its cancel goes through the executor's hand-off, which stamps finished_at with the clock of the build's "
          "last activity: it ends before its cancel was requested"),
    Fault("read-cache-frozen-duration", ("STATE-06",),
          "a build read 10 times or more before its cancel lives in the read cache; its cancellation completes from "
          "the cached copy, whose duration_ms was frozen while it was running: 0"),
    Fault("started-build-reason-dropped", ("BODY-02",),
          "once the scheduler's step (advance) has started a build, its cancel is forwarded to the executor's queue, "
          "whose message has no reason field: the reason is lost"),
    Fault("refused-reason-lingers", ("BODY-02",),
          "the pending-cancel row is written with the reason while the body is read, before the build's owner is "
          "checked: another tenant's refused cancel (404) leaves its reason behind, and the owner's later cancel "
          "records that reason instead of its own"),
    Fault("shared-principal-race", ("STATE-07",),
          "the body reader keeps the caller of a request with a body in one server-wide variable, from which a cancel "
          "with a body reads its caller back when it writes (50 ms later): amid another tenant's cancels that carry a "
          "body, a build records the other tenant as cancel_requested_by"),
    # SHAPE ------------------------------------------------------------------------------------
    Fault("text-content-type", ("SHAPE-01",), "successful cancels are labelled Content-Type: text/plain"),
    Fault("next-offset-float", ("SHAPE-01", "CLIENT-02"), "next_offset is written as a JSON float (3.0)"),
    Fault("missing-required-field", ("SHAPE-02", "CLIENT-01"), "build.namespace_slug is left out"),
    Fault("bad-enum", ("SHAPE-02", "CLIENT-01", "CLIENT-02"),
          "build_backend is written 'BuildKit' / 'Native' (wrong case)"),
    Fault("sdk-probe-missing-port", ("SHAPE-02", "CLIENT-01"),
          "runtime_defaults.readiness is a tcp probe without its required port"),
    Fault("dates-space-separator", ("SHAPE-03",),
          "date-times use a space instead of 'T' (the client tolerates it; RFC 3339 does not)"),
    Fault("dates-lowercase-z", ("SHAPE-03", "CLIENT-01", "CLIENT-02"), "date-times end in a lower-case 'z'"),
    Fault("nulls-for-unset", ("SHAPE-04",),
          "unset optional strings (error, failure_phase, retry_of_build_id, original_build_id) are null"),
    Fault("null-dates", ("SHAPE-04", "CLIENT-01"), "an unset retention_expires_at is sent as null"),
    Fault("wrong-template-id", ("SHAPE-05",),
          "for a build still waiting or building, the cancel response's template_id is the namespace's default"),
    Fault("newest-build-id", ("SHAPE-05", "IDEM-02", "LOG-01", "CLIENT-02", "PATH-04"),
          "the effective cancel of a build started through the public API answers with the build_id of the "
          "tenant's most recently started build, as a lookup of the tenant's current build instead of the one in "
          "the path would: right only when the cancelled build is the newest (run through the public API)",
          THROUGH_THE_PUBLIC_API),
    Fault("noop-cancel-202", ("SHAPE-06", "STATE-03"),
          "a cancel that has nothing to do on a ready or error build is answered 202"),
    # LOG --------------------------------------------------------------------------------------
    Fault("entry-missing-kind", ("LOG-01", "CLIENT-01", "CLIENT-02"), "log entries carry no kind"),
    Fault("entry-build-id-mismatch", ("LOG-01",), "log entries carry the build's internal row id as build_id"),
    Fault("offsets-not-increasing", ("LOG-02",), "entries are returned newest first"),
    Fault("duplicate-cancelled-entries", ("LOG-03", "IDEM-02"),
          "a cancel records a second cancelled entry (at request and again at completion), so a build "
          "cancelled concurrently also shows two cancellations"),
    Fault("bad-entry-optional-types", ("LOG-04", "CLIENT-02"),
          "the first entry carries step_index 0 and attempt as a string"),
    # ERR --------------------------------------------------------------------------------------
    Fault("error-code-outside-enum", ("ERR-01", "ERR-02"),
          "a rejected body is answered with code 'malformed_body', which is not an ErrorResponseCode"),
    Fault("nested-error-object", ("ERR-01",),
          "400/422 bodies carry error as an object {message, code} instead of a string"),
    Fault("non-json-401", ("ERR-01", "CLIENT-01", "CLIENT-03"),
          "401 bodies are plain text (the official SDK raises a generic MachineError('unknown'), not AuthError)"),
    Fault("wrong-codes", ("ERR-02",), "404 for an unknown build carries code template_not_found"),
    Fault("stack-trace-leak", ("ERR-03",), "a malformed-JSON 400 includes the parser's traceback"),
    Fault("plain-405-body", ("ERR-04",), "405 bodies are plain text"),
    Fault("request-id-mismatch", ("ERR-05",), "error bodies carry a request_id other than the x-request-id header"),
    # CLIENT -----------------------------------------------------------------------------------
    Fault("pending-status-cancelling", ("STATE-02", "SHAPE-02", "CLIENT-01", "CLIENT-02"),
          "while a build's cancellation is pending, the public endpoints report its status as 'cancelling', "
          "a status the contract does not have: the official SDK rejects the snapshot (invalid_response)"),
    Fault("unauthorized-detail-extra-member", ("CLIENT-03",),
          "401 bodies carry a structured error_detail (code unauthorized, phase auth) with one undocumented "
          "member, docs_url: the official SDK then drops the error's code and raises a generic "
          "MachineError('invalid_response') instead of AuthError"),
    Fault("not-found-invalid-request", ("ERR-02", "CLIENT-03"),
          "a 404 (unknown or another tenant's build) carries code invalid_request, a documented code the "
          "official SDK maps to a generic MachineError instead of NotFoundError (the CLI exits 2, not 3)"),
    # GEN --------------------------------------------------------------------------------------
    Fault("slow-cancel-hang", ("GEN-02",),
          "a cancel of a building build waits synchronously for the executor's acknowledgement: every cancel "
          "arriving within the hang duration (BUILD_CONFORMANCE_HANG_SECONDS, default 15 s) of the first "
          "waits that long before answering"),
    Fault("hang-once-then-answer", ("GEN-02",),
          "the first cancel that reaches each build (a cold path: the executor connection is opened lazily) "
          "applies the cancel, then stalls for the hang duration before answering normally; every later "
          "cancel of that build answers at once"),
    Fault("rejected-request-side-effect", ("GEN-03",),
          "a body above the size limit is answered 413, but the cancel (without reason) was already applied"),
)

HANG_SECONDS_ENV = "BUILD_CONFORMANCE_HANG_SECONDS"
DEFAULT_HANG_SECONDS = 15.0


def resolve(names: Iterable[str]) -> frozenset[str]:
    """The named faults as a set; any unknown name is a ValueError that lists the valid ones."""
    chosen = frozenset(names)
    unknown = sorted(chosen - FAULTS.keys())
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; valid faults: {', '.join(sorted(FAULTS))}")
    return chosen
