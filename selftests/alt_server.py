"""A second, independent conformant implementation of `POST /v1/templates/builds/{build_id}/cancel`.

It exists to keep the conformance suite honest about false alarms: it follows every requirement of
the requirement catalogue (MUST and SHOULD) while deliberately making *different* legitimate choices
from a typical implementation, so a suite check tuned to one server's incidental behaviour fails here.

Deliberate choices (each one allowed by the requirements and the client contract):

- the API lives under `/api/v2` and the control hooks under `/internal/test-hooks/v1`;
- build ids are UUID4 strings, template ids `tpl-<n>`; percent-encoded unreserved characters in the
  id segment are decoded (RFC 3986 §2.3), ids of an impossible syntax get 400, unknown ids 404;
- cancellation is synchronous: a waiting or building build is `cancelled` in the cancel response;
- error codes from the documented families: 404 `not_found`, rejected bodies 422
  `invalid_request`, non-JSON media types 415, other methods on the cancel path 404 (not 405);
- timestamps with microseconds and a `+00:00` offset; undocumented extra fields (`region`,
  `queue_position`, `x_meta`) in builds, log entries and error bodies, never null;
- bodies up to 2 MiB are accepted (larger ones are drained and answered 413);
- log offsets start at 100 and step by 10; `next_offset` is the last offset + 1;
- the control API answers 200 `{"build_id"}` on create and 409 when asked to advance a terminal build.

Standard library only. `start_alt_server()` runs it on loopback in a background thread.
"""

from __future__ import annotations

import hmac
import itertools
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

API_PREFIX = "/api/v2"
CONTROL_PREFIX = "/internal/test-hooks/v1"
MAX_BODY = 2 * 1024 * 1024  # accepted request body size
DRAIN_LIMIT = 64 * 1024 * 1024  # larger bodies are read and discarded up to this, then the connection closes
OFFSET_START, OFFSET_STEP = 100, 10
STATUSES = ("waiting", "building", "ready", "error", "cancelled")
TERMINAL = frozenset({"ready", "error", "cancelled"})
ID_SYNTAX = re.compile(r"[A-Za-z0-9._~-]{1,128}")
JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.-]+\+)?json", re.IGNORECASE)
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
REALM = 'realm="alt-build-api"'
JSON_HEADERS = (("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store"))


# ------------------------------------------------------------------------------------------ the model


def stamp(moment: datetime) -> str:
    """RFC 3339 with microseconds and a numeric offset: 2024-05-01T10:00:00.123456+00:00."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Tenant:
    token: str
    principal: str
    namespace: str


@dataclass
class Build:
    tenant: Tenant
    fields: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)

    def log(self, moment: datetime, kind: str, level: str, message: str, **extra: Any) -> None:
        offset = OFFSET_START + OFFSET_STEP * len(self.entries)
        self.entries.append({
            "build_id": self.fields["build_id"],
            "template_id": self.fields["template_id"],
            "offset": offset,
            "timestamp": stamp(moment),
            "kind": kind,
            "level": level,
            "message": message,
            **extra,
            "x_meta": {"sequence": len(self.entries) + 1, "source": "alt-scheduler"},
        })

    @property
    def next_offset(self) -> int:
        return self.entries[-1]["offset"] + 1 if self.entries else OFFSET_START

    def render(self) -> bytes:
        snapshot = {"build": self.fields, "entries": self.entries, "next_offset": self.next_offset}
        return json.dumps(snapshot, ensure_ascii=False).encode("utf-8")


class Store:
    """Every build in memory; one lock makes each operation atomic (first cancel wins)."""

    def __init__(self, tenants: tuple[Tenant, ...]) -> None:
        self.tenants = tenants
        self._lock = threading.Lock()
        self._builds: dict[str, Build] = {}
        self._template_numbers = itertools.count(1)
        self._last = datetime.now(UTC)

    def _now(self) -> datetime:
        """A clock that never goes backwards, so ordering holds even across a wall-clock step."""
        self._last = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        return self._last

    def _owned(self, tenant: Tenant, build_id: str) -> Build | None:
        build = self._builds.get(build_id)
        return build if build is not None and build.tenant is tenant else None

    def create(self, tenant: Tenant, status: str) -> str:
        with self._lock:
            now = self._now()
            number = next(self._template_numbers)
            created = now - timedelta(seconds=90)
            name = f"alt-image-{number}"
            fields: dict[str, Any] = {
                "build_id": str(uuid.uuid4()),
                "template_id": f"tpl-{number}",
                "name": name,
                "tags": ["latest", f"r{number}"],
                "status": "waiting",
                "build_backend": "buildkit",
                "source_type": "dockerfile",
                "canonical_ref": f"{tenant.namespace}/{name}",
                "namespace_slug": tenant.namespace,
                "visibility": "private",
                "created_at": stamp(created),
                "updated_at": stamp(created),
                "queued_at": stamp(created),
                "triggered_by": "api",
                "source_digest": "sha256:" + secrets.token_hex(32),
                "dockerfile_digest": "sha256:" + secrets.token_hex(32),
                "build_config": {"vcpus": 2, "memory_mib": 2048, "internet_access": False, "disk_mb": 4096},
                "region": "alt-north-1",
                "queue_position": number % 7 + 1,
                "x_meta": {"scheduler": "alt", "shard": number % 4},
            }
            build = Build(tenant, fields)
            build.log(created, "message", "info", "build queued", phase="preparing")
            if status == "cancelled":
                _cancel(build, created + timedelta(seconds=20), "operator:pre-run", "cancelled before the run")
            elif status != "waiting":
                _start(build, created + timedelta(seconds=30))
                if status == "ready":
                    _finish_ready(build, created + timedelta(seconds=80))
                elif status == "error":
                    _fail(build, created + timedelta(seconds=75))
            self._builds[fields["build_id"]] = build
            return str(fields["build_id"])

    def view(self, tenant: Tenant, build_id: str) -> bytes | None:
        with self._lock:
            build = self._owned(tenant, build_id)
            return None if build is None else build.render()

    def cancel(self, tenant: Tenant, build_id: str, reason: str | None) -> bytes | None:
        with self._lock:
            build = self._owned(tenant, build_id)
            if build is None:
                return None
            if build.fields["status"] not in TERMINAL:  # repeats and terminal builds: a no-op
                _cancel(build, self._now(), tenant.principal, reason)
            return build.render()

    def advance(self, tenant: Tenant, build_id: str) -> bytes | bool | None:
        """The new snapshot, None for no such build, False when the build cannot advance."""
        with self._lock:
            build = self._owned(tenant, build_id)
            if build is None:
                return None
            status = build.fields["status"]
            if status in TERMINAL or "cancel_requested_at" in build.fields:
                return False
            if status == "waiting":
                _start(build, self._now())
            else:
                _finish_ready(build, self._now())
            return build.render()


def _start(build: Build, moment: datetime) -> None:
    fields = build.fields
    fields.pop("queue_position", None)
    fields.update(status="building", started_at=stamp(moment), updated_at=stamp(moment))
    build.log(moment, "start", "info", "build started", phase="vm_create", attempt=1, max_attempts=3)
    build.log(moment, "message", "debug", "step 1/3: FROM base", phase="step", step_index=1, total_steps=3)


def _finish(build: Build, moment: datetime, status: str) -> None:
    fields = build.fields
    started = _parse(fields["started_at"])
    fields.update(
        status=status,
        finished_at=stamp(moment),
        duration_ms=int((moment - started) / timedelta(milliseconds=1)),
        updated_at=stamp(moment),
    )


def _finish_ready(build: Build, moment: datetime) -> None:
    fields = build.fields
    build.log(moment, "cache", "info", "layer cache hit", phase="cache", cache_kind="layer", cache_status="hit",
              cache_subject="sha256:" + secrets.token_hex(8))
    _finish(build, moment, "ready")
    fields.update(
        promotability={"status": "promotable", "promotable": True},
        artifact_availability={"status": "available"},
        artifact_ids=[f"art-{secrets.token_hex(6)}"],
        retention_expires_at=stamp(moment + timedelta(days=30)),
        cache_summary={"layer_hits": 1, "layer_misses": 2, "final_artifact_stores": 1},
        runtime_defaults={
            "start_cmd": "/srv/run",
            "default_user": "app",
            "readiness": {"kind": "http", "port": 8080, "path": "/healthz", "timeout_secs": 20},
        },
    )
    result = {
        "id": fields["template_id"],
        "name": fields["name"],
        "description": "built by the alternative server",
        "builtin": False,
        "canonical_ref": fields["canonical_ref"],
        "namespace_slug": fields["namespace_slug"],
        "visibility": "private",
        "tags": list(fields["tags"]),
    }
    build.log(moment, "end", "info", "build finished", phase="finalize", result=result)


def _fail(build: Build, moment: datetime) -> None:
    detail: dict[str, Any] = {
        "code": "build_error",
        "message": "step 2/3 exited with status 2",
        "phase": "build_step",
        "retryable": False,
        "suggested_action": "fix the failing build step and retry",
        "step_index": 2,
    }
    build.log(moment, "error", "error", detail["message"], phase="step", step_index=2, total_steps=3,
              error_detail=dict(detail))
    _finish(build, moment, "error")
    build.fields.update(
        error=detail["message"],
        error_detail=detail,
        failure_phase="build_step",
        promotability={"status": "not_ready", "promotable": False, "reason": "the build failed"},
        artifact_availability={"status": "failed"},
    )


def _cancel(build: Build, moment: datetime, by: str, reason: str | None) -> None:
    fields = build.fields
    fields.pop("queue_position", None)
    fields.update(cancel_requested_at=stamp(moment), cancel_requested_by=by)
    if reason:
        fields["cancellation_reason"] = reason
    if "started_at" in fields:
        _finish(build, moment, "cancelled")
    else:  # never started: it ends now, with a zero duration
        fields.update(status="cancelled", finished_at=stamp(moment), duration_ms=0, updated_at=stamp(moment))
    fields.update(
        promotability={"status": "unavailable", "promotable": False, "reason": "the build was cancelled"},
        artifact_availability={"status": "unavailable"},
    )
    build.log(moment, "cancelled", "warn", "build cancelled", phase="cleanup")


# ----------------------------------------------------------------------------------------- HTTP logic


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


class Invalid(Exception):
    """A request the server rejects: the status, the error code and a fixed message."""

    def __init__(self, status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


NOT_FOUND = ("not_found", "template build not found")


def error_body(code: str, message: str, request_id: str) -> bytes:
    body = {"error": message, "code": code, "request_id": request_id, "x_meta": {"server": "alt", "retryable": False}}
    return json.dumps(body).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def json_document(body: bytes, headers: Message) -> Any:
    """The body as JSON: 415 for a non-JSON media type, 422 for anything that is not JSON text."""
    content_type = headers.get("Content-Type")
    if content_type is not None:
        media, *parameters = (part.strip() for part in content_type.split(";"))
        charset = [p.split("=", 1)[1].strip('" ').lower() for p in parameters if p.lower().startswith("charset=")]
        if not JSON_MEDIA_TYPE.fullmatch(media) or any(c not in ("utf-8", "utf8") for c in charset):
            raise Invalid(415, "invalid_request", "unsupported content type: send application/json")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise Invalid(422, "invalid_request", "request body is not valid JSON") from None


def cancel_reason(body: bytes, headers: Message) -> str | None:
    """The reason of a cancel body; no body at all is a cancel without reason."""
    if not body:
        return None
    document = json_document(body, headers)
    if not isinstance(document, dict):
        raise Invalid(422, "invalid_request", "request body must be a JSON object")
    reason = document.get("reason")  # unknown members are ignored; null means "no reason"
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise Invalid(422, "invalid_request", "reason must be a string")
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape: not a Unicode string
        raise Invalid(422, "invalid_request", "reason must be valid Unicode text") from None
    return reason


def decode_id(segment: str) -> str:
    """The build id a path segment names: percent-decoded once, strictly UTF-8, of a possible syntax."""
    if not segment:
        raise Invalid(404, *NOT_FOUND)
    try:
        build_id = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(400, "invalid_request", "malformed build id") from None
    if not ID_SYNTAX.fullmatch(build_id):
        raise Invalid(400, "invalid_request", "malformed build id")
    return build_id


class App:
    def __init__(self, store: Store) -> None:
        self.store = store

    def authenticate(self, headers: Message) -> Tenant:
        """The tenant of a valid `Authorization: Bearer <token>`; anything else is 401."""
        values = headers.get_all("Authorization") or []
        challenge = f"Bearer {REALM}" if not values else f'Bearer {REALM}, error="invalid_token"'
        failure = Invalid(401, "unauthorized", "authentication required", (("WWW-Authenticate", challenge),))
        if len(values) != 1:
            raise failure
        parts = values[0].split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise failure
        presented = parts[1].strip().encode("utf-8", "surrogateescape")
        found = [t for t in self.store.tenants if hmac.compare_digest(presented, t.token.encode("utf-8"))]
        if not found:
            raise failure
        return found[0]

    def handle(self, method: str, target: str, headers: Message, body: bytes, oversized: bool) -> Reply:
        if target.startswith(("http://", "https://")):  # absolute-form request target
            split = urlsplit(target)
            target = split.path + (f"?{split.query}" if split.query else "")
        path = target.split("?", 1)[0]  # query parameters never change the result
        if path.startswith(API_PREFIX + "/"):
            return self.api(method, path[len(API_PREFIX):].split("/"), headers, body, oversized)
        if path.startswith(CONTROL_PREFIX + "/"):
            return self.control(method, path[len(CONTROL_PREFIX):].split("/"), headers, body, oversized)
        raise Invalid(404, "not_found", "no such resource")

    def api(self, method: str, parts: list[str], headers: Message, body: bytes, oversized: bool) -> Reply:
        tenant = self.authenticate(headers)  # before anything about the path or the id is looked at
        if len(parts) != 6 or parts[:4] != ["", "v1", "templates", "builds"] or parts[5] != "cancel":
            raise Invalid(404, "not_found", "no such resource")
        if method != "POST":
            raise Invalid(404, "not_found", "no such resource")
        build_id = decode_id(parts[4])
        if oversized:
            raise Invalid(413, "invalid_request", "request body too large")
        reason = cancel_reason(body, headers)
        snapshot = self.store.cancel(tenant, build_id, reason)
        if snapshot is None:
            raise Invalid(404, *NOT_FOUND)
        return Reply(200, snapshot)

    def control(self, method: str, parts: list[str], headers: Message, body: bytes, oversized: bool) -> Reply:
        tenant = self.authenticate(headers)
        if oversized:
            raise Invalid(413, "invalid_request", "request body too large")
        if parts == ["", "builds"] and method == "POST":
            document = json_document(body, headers) if body else None
            status = document.get("status") if isinstance(document, dict) else None
            if status not in STATUSES:
                raise Invalid(422, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
            return Reply(200, json.dumps({"build_id": self.store.create(tenant, str(status))}).encode())
        if len(parts) in (3, 4) and parts[:2] == ["", "builds"]:
            build_id = decode_id(parts[2])
            if len(parts) == 3 and method in ("GET", "HEAD"):
                snapshot = self.store.view(tenant, build_id)
            elif len(parts) == 4 and parts[3] == "advance" and method == "POST":
                outcome = self.store.advance(tenant, build_id)
                if outcome is False:
                    raise Invalid(409, "transition_conflict", "the build cannot advance")
                snapshot = outcome if isinstance(outcome, bytes) else None
            else:
                raise Invalid(404, "not_found", "no such resource")
            if snapshot is None:
                raise Invalid(404, *NOT_FOUND)
            return Reply(200, snapshot)
        raise Invalid(404, "not_found", "no such resource")


# ---------------------------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    app: App


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alt-build-api"
    sys_version = ""
    timeout = 30
    server: _Server
    request_id: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        return

    def version_string(self) -> str:
        return self.server_version

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method (GET, PUT, PROPFIND, ...) is answered by the router: never a 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        self.request_id = "req-" + secrets.token_hex(12)
        # The request target exactly as received (http.server rewrites a leading `//` in self.path).
        words = self.requestline.split()
        target = words[1] if len(words) >= 2 else self.path
        try:
            body, oversized = self._read_body()
            reply = self.server.app.handle(self.command, target, self.headers, body, oversized)
        except Invalid as exc:
            self._reply(Reply(exc.status, error_body(exc.code, exc.message, self.request_id), exc.headers))
        except Exception:  # a bug: answer without internals, never a stack trace
            self._reply(Reply(500, error_body("internal_error", "internal error", self.request_id), close=True))
        else:
            self._reply(reply)

    def _read_body(self) -> tuple[bytes, bool]:
        """The request body and whether it was too large (then it was read and discarded)."""
        encoding = self.headers.get("Transfer-Encoding")
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if encoding is not None:
            if lengths or encoding.strip().lower() != "chunked":
                self.close_connection = True
                raise Invalid(400, "invalid_request", "unsupported request framing")
            return self._read_chunked()
        if not lengths:
            return b"", False
        length_text = lengths.pop()
        if lengths or not CONTENT_LENGTH.fullmatch(length_text):
            self.close_connection = True
            raise Invalid(400, "invalid_request", "invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            if length > DRAIN_LIMIT:
                self.close_connection = True
            else:
                self._discard(length)
            return b"", True
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise Invalid(400, "invalid_request", "incomplete request body")
        return body, False

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _read_chunked(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1 << 12)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0 or not line.endswith(b"\n"):
                self.close_connection = True
                raise Invalid(400, "invalid_request", "malformed chunked body")
            if size == 0:
                while self.rfile.readline(1 << 12) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields are ignored
                break
            total += size
            if total > DRAIN_LIMIT:
                self.close_connection = True
                return b"", True
            if total > MAX_BODY:
                self._discard(size)
                parts.clear()
            else:
                parts.append(self.rfile.read(size))
            self.rfile.readline(1 << 12)  # the CRLF after the chunk data
        return (b"", True) if total > MAX_BODY else (b"".join(parts), False)

    def _reply(self, reply: Reply) -> None:
        if reply.close:
            self.close_connection = True
        self.send_response(reply.status)
        for name, value in (*JSON_HEADERS, ("Content-Length", str(len(reply.body))), ("x-request-id", self.request_id),
                            *reply.headers):
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own rejections (bad request line, 414, 431, 505) as JSON 4xx error objects."""
        self.request_id = "req-" + secrets.token_hex(12)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a request line http.server gave up on: answer with a status line
            self.request_version = "HTTP/1.0"
        status = code if 400 <= code < 500 else 400
        self._reply(Reply(status, error_body("invalid_request", "malformed request", self.request_id)))


# ------------------------------------------------------------------------------------------- lifecycle


@dataclass
class AltServer:
    base_url: str
    control_url: str
    tokens: tuple[str, str]
    httpd: _Server
    thread: threading.Thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> AltServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_alt_server(host: str = "127.0.0.1", port: int = 0) -> AltServer:
    tenants = tuple(
        Tenant(secrets.token_urlsafe(48), f"principal:{secrets.token_hex(4)}", f"ns-{name}-{secrets.token_hex(3)}")
        for name in ("north", "south")
    )
    httpd = _Server((host, port), _Handler)
    httpd.app = App(Store(tenants))
    thread = threading.Thread(target=httpd.serve_forever, name="alt-build-server", daemon=True)
    thread.start()
    origin = f"http://{host}:{httpd.server_address[1]}"
    return AltServer(origin + API_PREFIX, origin + CONTROL_PREFIX, (tenants[0].token, tenants[1].token), httpd, thread)


if __name__ == "__main__":
    server = start_alt_server()
    print(f"BUILD_CONFORMANCE_BASE_URL={server.base_url}")
    print(f"BUILD_CONFORMANCE_CONTROL_URL={server.control_url}")
    print(f"BUILD_CONFORMANCE_TOKEN={server.tokens[0]}")
    print(f"BUILD_CONFORMANCE_OTHER_TOKEN={server.tokens[1]}", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()
