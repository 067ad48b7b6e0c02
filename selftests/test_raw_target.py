"""The PATH and AUTH probes reach the wire exactly as the suite means them.

A loopback TCP server records each raw request line; every probe the suite sends (named malformed
ids, generated ones, schemathesis' negative ids, near-misses, the percent-encoded id) must arrive
byte-exact, with the reproduction line keeping the path (`--path-as-is`) and hiding the token. The
safety guard of `CancelApi` and the probe generators themselves are checked here too.
"""

from __future__ import annotations

import json
import random
import shlex
import socket
import socketserver
import string
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings

from build_conformance.inputs import credentials, ids, segments
from build_conformance.inputs.segments import SegmentProbe
from build_conformance.judging import tenant_isolation
from build_conformance.judging.check import Check
from build_conformance.judging.per_response import ResponseChecks
from build_conformance.judging.recorder import Recorder
from build_conformance.provisioning.ledger import Ledger
from build_conformance.provisioning.protocol import ProvisionedBuild
from build_conformance.redaction import REDACTOR, Secret
from build_conformance.target.cancel_api import CANCEL_PATH, CancelApi, SafetyError, decodings
from build_conformance.target.exchange import Exchange, ReceivedResponse, SentRequest
from build_conformance.target.transport import Transport, TransportSettings, bearer, join_target

MARKER = "bcz5eedf00d"
OWNED_ID = "bld_0123456789abcdef0123"
TOKEN = "selftest-token-" + "Q7w" * 12
NOT_FOUND = json.dumps({"error": "build not found", "code": "template_build_not_found"}).encode()
SETTINGS = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@dataclass
class Recording:
    lines: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(socketserver.StreamRequestHandler):
    """Records the raw request line, answers a 404 error body, keeps the connection alive."""

    def handle(self) -> None:
        recording: Recording = self.server.recording  # type: ignore[attr-defined]
        while True:
            line = self.rfile.readline(65537)
            if not line:
                return
            length = 0
            while True:
                header = self.rfile.readline(65537)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                self.rfile.read(length)
            with recording.lock:
                recording.lines.append(line.rstrip(b"\r\n"))
            self.wfile.write(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nx-request-id: req-1\r\n"
                + b"Content-Length: " + str(len(NOT_FOUND)).encode() + b"\r\n\r\n" + NOT_FOUND
            )


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recording = Recording()


@dataclass
class RawTarget:
    base_url: str
    recording: Recording
    transport: Transport

    def send(self, segment: str, *, query: str = "") -> tuple[bytes, bytes]:
        """Send a cancel with `segment` as the id; returns (what the suite meant, what arrived)."""
        target = join_target(self.base_url, CANCEL_PATH.format(segment)) + (b"?" + query.encode() if query else b"")
        with self.recording.lock:
            before = len(self.recording.lines)
        exchange = self.transport.send("POST", self.base_url, target, headers=bearer(TOKEN), label="raw")
        assert exchange.status == 404, exchange.describe()
        with self.recording.lock:
            arrived = self.recording.lines[before:]
        assert len(arrived) == 1
        return b"POST " + target + b" HTTP/1.1", arrived[0]


@pytest.fixture(scope="module", params=["", "/prefix/api"], ids=["root", "path-prefix"])
def raw_target(request: pytest.FixtureRequest) -> Iterator[RawTarget]:
    REDACTOR.add(TOKEN, "token-selftest")
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    transport = Transport(TransportSettings(request_timeout=5.0, max_attempts=1))
    try:
        yield RawTarget(f"http://127.0.0.1:{port}{request.param}", server.recording, transport)
    finally:
        transport.close()
        server.shutdown()
        server.server_close()


def _fixed_probes() -> list[SegmentProbe]:
    plan = ids.plan_unknown_ids([OWNED_ID, "bld_fedcba9876543210fedc", "bld_00ff00ff00ff00ff00ff"], MARKER)
    shaped = [SegmentProbe(f"shape {i}", segments.encode_segment(c))
              for i, c in enumerate(plan.candidates(random.Random(1), MARKER, 3))]
    return [
        *segments.named_malformed_segments(MARKER),
        *segments.near_miss_segments(OWNED_ID, "x"),
        *segments.near_miss_segments("id/with space", "é"),
        SegmentProbe("one character percent-encoded", segments.encode_id_char(OWNED_ID)),
        *shaped,
    ]


FIXED = _fixed_probes()


@pytest.mark.parametrize("probe", FIXED, ids=[p.name for p in FIXED])
def test_fixed_probe_arrives_byte_exact(raw_target: RawTarget, probe: SegmentProbe) -> None:
    meant, arrived = raw_target.send(probe.segment)
    assert arrived == meant


def test_dot_segments_and_encodings_are_not_normalised(raw_target: RawTarget) -> None:
    for segment in ("..", ".", "%2E%2E", "%2e%2e", "x%2F..%2Fy", "%252F", "a%00b", "%C3%A9", "x" * 5000):
        meant, arrived = raw_target.send(segment)
        assert arrived == meant


def test_query_strings_arrive_byte_exact(raw_target: RawTarget) -> None:
    meant, arrived = raw_target.send(MARKER, query="foo=bar&offset=3&reason=x%20y&access_token=a%2Bb")
    assert arrived == meant


def test_generated_probes_arrive_byte_exact(raw_target: RawTarget) -> None:
    @SETTINGS
    @given(probe=segments.malformed_segments(MARKER))
    def generated(probe: SegmentProbe) -> None:
        meant, arrived = raw_target.send(probe.segment)
        assert arrived == meant

    generated()


def test_schemathesis_probes_arrive_byte_exact(raw_target: RawTarget) -> None:
    @settings(SETTINGS, max_examples=20)
    @given(probe=segments.schemathesis_segments(MARKER))
    def negative(probe: SegmentProbe) -> None:
        meant, arrived = raw_target.send(probe.segment)
        assert arrived == meant

    negative()


def test_curl_keeps_the_path_and_hides_the_token(raw_target: RawTarget) -> None:
    REDACTOR.add(TOKEN, "token-selftest")
    segment = f"x%2F..%2F{MARKER}%00%27"
    target = join_target(raw_target.base_url, CANCEL_PATH.format(segment)) + f"?access_token={TOKEN}".encode()
    exchange = raw_target.transport.send(
        "POST", raw_target.base_url, target, headers={**bearer(TOKEN), "X-API-Key": TOKEN}, label="curl"
    )
    curl = exchange.curl()
    assert "--path-as-is" in shlex.split(curl)
    assert TOKEN not in curl
    url = shlex.split(curl)[-1]
    assert url.startswith(raw_target.base_url + CANCEL_PATH.format(segment))
    assert TOKEN not in json.dumps(exchange.evidence())
    assert TOKEN not in exchange.describe()


# --------------------------------------------------------------------------------------------------
# The safety guard: only builds this run created, ids carrying the run marker, or declared probes


@pytest.fixture
def guarded_api(raw_target: RawTarget) -> CancelApi:
    ledger = Ledger()
    ledger.add(ProvisionedBuild(OWNED_ID, "A", "waiting", "tpl_1"))
    checks = ResponseChecks(Check(Recorder()))
    tokens = {"A": Secret(TOKEN, "token-a"), "B": Secret(TOKEN + "b", "token-b")}
    return CancelApi(raw_target.transport, raw_target.base_url, tokens, ledger.owns,
                     checks.inspect, MARKER)


@pytest.mark.parametrize(
    ("build_id", "raw_segment", "probe_of"),
    [
        ("bld_ffffffffffffffffffff", None, None),  # someone else's id
        (OWNED_ID, "bld_ffffffffffffffffffff", None),  # an owned id as cover for a foreign segment
        (MARKER, "bld_ffffffffffffffffffff", None),
        (OWNED_ID, f"x%2F..%2F{OWNED_ID}", None),  # a traversal needs probe_of
        ("bld_ffffffffffffffffffff", None, "bld_eeeeeeeeeeeeeeeeeeee"),  # probe_of a build not ours
    ],
)
def test_guard_refuses_what_the_run_does_not_own(
    guarded_api: CancelApi, build_id: str, raw_segment: str | None, probe_of: str | None
) -> None:
    with pytest.raises(SafetyError):
        guarded_api.cancel(build_id, raw_segment=raw_segment, probe_of=probe_of)


@pytest.mark.parametrize(
    ("build_id", "raw_segment", "probe_of"),
    [
        (OWNED_ID, None, None),
        (OWNED_ID, segments.encode_id_char(OWNED_ID), None),  # decodes to the owned id
        (MARKER + "x", None, None),
        (MARKER, f"%25{MARKER}", None),  # '%' before the marker: decoded twice it is gone, once it is not
        (MARKER, segments.encode_segment(segments.encode_segment(MARKER + "/x")), None),
        ("", "", None),  # the empty segment names nothing
        (OWNED_ID + "x", None, OWNED_ID),
        (f"x/../{OWNED_ID}", f"x%2F..%2F{OWNED_ID}", OWNED_ID),
    ],
)
def test_guard_lets_owned_marked_and_declared_probes_through(
    guarded_api: CancelApi, build_id: str, raw_segment: str | None, probe_of: str | None
) -> None:
    exchange = guarded_api.cancel(build_id, raw_segment=raw_segment, probe_of=probe_of)
    assert exchange.status == 404


# --------------------------------------------------------------------------------------------------
# The generators


def test_named_and_near_miss_segments_are_valid_and_marked() -> None:
    for probe in segments.named_malformed_segments(MARKER):
        assert segments.is_valid_segment(probe.segment), probe
        assert probe.segment == "" or any(MARKER in d for d in decodings(probe.segment)), probe
    lengths = {p.name: len(p.segment) for p in segments.named_malformed_segments(MARKER)}
    assert lengths["4 KiB id"] >= 4096 and lengths["8 KiB id"] >= 8192
    for probe in segments.near_miss_segments(OWNED_ID, "x"):
        assert segments.is_valid_segment(probe.segment), probe
        assert OWNED_ID in unquote(probe.segment) or probe.decoded == OWNED_ID[:-1]


@SETTINGS
@given(probe=segments.malformed_segments(MARKER))
def test_generated_segments_are_valid_and_marked(probe: SegmentProbe) -> None:
    assert segments.is_valid_segment(probe.segment)
    assert MARKER in probe.decoded or any(MARKER in d for d in decodings(probe.segment))
    assert MARKER in probe.decoded  # the marker is never glued to a '%' on its first decoding


@settings(SETTINGS, max_examples=20)
@given(probe=segments.schemathesis_segments(MARKER))
def test_schemathesis_segments_are_valid_and_marked(probe: SegmentProbe) -> None:
    assert segments.is_valid_segment(probe.segment)
    assert probe.segment.startswith(MARKER)


@pytest.mark.parametrize(
    "segment, valid",
    [("abc", True), ("a%2Fb", True), ("a;b=c", True), ("", True), ("a b", False), ("a%2", False),
     ("a%zz", False), ("a/b", False), ("a#b", False), ("é", False)],
)
def test_is_valid_segment(segment: str, valid: bool) -> None:
    assert segments.is_valid_segment(segment) is valid


def test_encode_id_char_addresses_the_same_id() -> None:
    for build_id in (OWNED_ID, "42", "a-b_c.d~e", "x:y"):
        encoded = segments.encode_id_char(build_id)
        assert unquote(encoded) == build_id
        assert encoded != segments.encode_segment(build_id)


def _random_text(seed: int, alphabet: str, length: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(length))


@pytest.mark.parametrize(
    "samples",
    [
        [str(uuid.UUID(int=random.Random(i).getrandbits(128), version=4)) for i in range(3)],
        ["bld_" + _random_text(i, "0123456789abcdef", 20) for i in range(3)],
        [_random_text(i, string.ascii_lowercase + string.digits, 24) for i in range(3)],
        ["01JDXK5Q3V8ZP2M4N6R7T9W0AB", "01JDXK5Q3W1CDEFGHJKMNPQRST", "01JDXK5Q3XVWXYZ0123456789A"],
        ["tb-2024-" + _random_text(i, string.ascii_uppercase, 12) for i in range(3)],
    ],
    ids=["uuid", "prefixed-hex", "base36", "ulid", "dated-upper"],
)
def test_learned_shapes_keep_length_separators_and_alphabet(samples: list[str]) -> None:
    plan = ids.plan_unknown_ids(samples, MARKER)
    assert plan.usable
    candidates = plan.candidates(random.Random(7), MARKER, 5, exclude=samples)
    assert len(candidates) == 5
    alphabet = set("".join(samples))
    for candidate in candidates:
        assert candidate not in samples
        assert len(candidate) == len(samples[0])
        assert set(candidate) <= alphabet | set(MARKER)
        for i, char in enumerate(samples[0]):
            if all(s[i] == char for s in samples) or not char.isalnum():
                assert candidate[i] == char, (candidate, i)
        assert (MARKER in candidate) == plan.marked


def test_marker_is_embedded_where_the_alphabet_allows() -> None:
    # Every column holds a letter and a digit, and together they use all of a-z and 0-9.
    samples = ["abcdefghijklmnopqrstuvwx", "012345678901234567890123", "yz" * 12]
    plan = ids.plan_unknown_ids(samples, MARKER)
    assert plan.marked
    assert all(MARKER in c for c in plan.candidates(random.Random(3), MARKER, 3))


def test_sequential_ids_are_not_guessed() -> None:
    plan = ids.plan_unknown_ids(["101", "102", "103"], MARKER)
    assert not plan.marked
    assert not plan.usable


def _answer(body: dict[str, object]) -> Exchange:
    request = SentRequest("POST", "http://h", b"/x", (), b"")
    return Exchange("answer", request, ReceivedResponse(404, (("Content-Type", "application/json"),),
                                                        json.dumps(body).encode(), 0.0))


def test_revealed_fields_allows_what_was_sent() -> None:
    build = {"build_id": OWNED_ID, "template_id": "tpl_abcdef123", "name": "my-build", "status": "waiting",
             "created_at": "2026-01-01T00:00:00Z", "namespace_slug": "acme"}
    quiet = _answer({"error": f"build {OWNED_ID} not found", "code": "template_build_not_found"})
    assert tenant_isolation.revealed_fields(build, quiet, sent=OWNED_ID, baseline=None) == []
    loud = _answer({"error": "forbidden", "build": {"status": "waiting", "template_id": "tpl_abcdef123"}})
    found = tenant_isolation.revealed_fields(build, loud, sent=OWNED_ID, baseline=None)
    assert any(f.startswith("template_id=") for f in found) and any(f.startswith("status=") for f in found)
    timestamp = _answer({"error": "created 2026-01-01T00:00:00Z"})
    revealed = tenant_isolation.revealed_fields(build, timestamp, sent="", baseline=None)
    assert revealed == ["created_at='2026-01-01T00:00:00Z'"]


def test_an_error_envelope_reveals_nothing_it_shows_for_unknown_ids_too() -> None:
    """A JSend envelope says `"status": "error"` for every failure; a build whose status is `error` is not
    revealed by it. The same envelope carrying the build's real status would be."""
    build = {"build_id": OWNED_ID, "template_id": "tpl_abcdef123", "name": "my-build", "status": "error"}
    unknown = _answer({"status": "error", "error": "not found", "code": "not_found", "request_id": "r1"})
    foreign = _answer({"status": "error", "error": "not found", "code": "not_found", "request_id": "r2"})
    assert tenant_isolation.revealed_fields(build, foreign, sent=OWNED_ID, baseline=unknown) == []
    leaky = _answer({"status": "error", "error": "not found", "code": "not_found", "name": "my-build"})
    assert tenant_isolation.revealed_fields(build, leaky, sent=OWNED_ID, baseline=unknown) == ["name='my-build'"]
    # Instances behind one load balancer that differ (some wrap errors in JSend, some not): the envelope of
    # this answer alone is still the envelope speaking, and a word in a message is not a field.
    plain = _answer({"error": "not found", "code": "not_found", "request_id": "r3"})
    wordy = _answer({"status": "error", "error": "an error: not found", "code": "not_found",
                     "detail": {"kind": "error"}})
    assert tenant_isolation.revealed_fields(build, wordy, sent=OWNED_ID, baseline=plain) == []
    nested = _answer({"status": "error", "error": "not found", "code": "not_found", "build": {"status": "error"}})
    assert tenant_isolation.revealed_fields(build, nested, sent=OWNED_ID, baseline=plain) == ["status='error'"]


def test_probe_credentials_are_long_random_and_distinct() -> None:
    secrets_ = {credentials.probe_secret() for _ in range(20)}
    assert len(secrets_) == 20 and all(len(s) >= 40 for s in secrets_)
    forms = credentials.other_credential_forms(TOKEN)
    assert {f.name for f in forms} >= {"basic-token-as-user", "basic-token-as-password", "token-scheme",
                                        "bare-token", "bearer-empty", "x-api-key-only"}
    for form in forms:
        assert all(f"Bearer {TOKEN}" != v for _, v in form.headers)
    unknown = {p.name: p for p in credentials.unknown_bearer_tokens(TOKEN)}
    assert unknown["truncated"].presented == (TOKEN[:-1],) and unknown["extended"].presented == (TOKEN + "x",)


def test_loopback_server_sees_one_request_line_per_send(raw_target: RawTarget) -> None:
    """The recorder itself: a raw socket request line is recorded verbatim (guards the harness)."""
    split = urlsplit(raw_target.base_url)
    with socket.create_connection((split.hostname, split.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/templates/builds/%2E%2E/cancel HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 404")
    with raw_target.recording.lock:
        assert raw_target.recording.lines[-1] == b"POST /v1/templates/builds/%2E%2E/cancel HTTP/1.1"


# --------------------------------------------------------------------------------------------------
# Preflight's answers are judged once the official client has loaded, and none is lost


def _judging_api(raw_target: RawTarget, judged: list[str]) -> CancelApi:
    ledger = Ledger()
    ledger.add(ProvisionedBuild(OWNED_ID, "A", "waiting", "tpl_1"))
    tokens = {"A": Secret(TOKEN, "token-a"), "B": Secret(TOKEN + "b", "token-b")}
    return CancelApi(raw_target.transport, raw_target.base_url, tokens, ledger.owns,
                     lambda exchange, expectation: judged.append(exchange.label), MARKER)


def test_answers_judged_afterwards_are_judged_in_order_when_the_block_ends(raw_target: RawTarget) -> None:
    judged: list[str] = []
    api = _judging_api(raw_target, judged)
    with api.judged_afterwards():
        api.cancel(f"{MARKER}-1", label="first", allow_no_response=True)
        api.cancel(f"{MARKER}-2", label="second", allow_no_response=True)
        assert judged == []
    assert judged == ["first", "second"]
    api.cancel(f"{MARKER}-3", label="after", allow_no_response=True)
    assert judged == ["first", "second", "after"]


def test_an_answer_about_a_build_of_the_run_is_judged_at_once_after_those_waiting(raw_target: RawTarget) -> None:
    judged: list[str] = []
    api = _judging_api(raw_target, judged)
    with api.judged_afterwards():
        api.cancel(f"{MARKER}-1", label="unknown id", allow_no_response=True)
        api.cancel(OWNED_ID, label="the run's build", allow_no_response=True)
        assert judged == ["unknown id", "the run's build"]
    assert judged == ["unknown id", "the run's build"]


def test_answers_waiting_to_be_judged_are_dropped_when_the_block_fails(raw_target: RawTarget) -> None:
    judged: list[str] = []
    api = _judging_api(raw_target, judged)
    with pytest.raises(RuntimeError), api.judged_afterwards():
        api.cancel(f"{MARKER}-1", label="unknown id", allow_no_response=True)
        raise RuntimeError("preflight stops the run")
    assert judged == []
