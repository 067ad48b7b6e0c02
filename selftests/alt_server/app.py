"""The application: routing, the order of decisions, encoding, and the cancel endpoint itself.

Order of decisions for every request: production mode's transient answers (no side effect) →
authentication → route and method → body → build. Authentication comes before anything that looks
at the id, so without valid credentials an existing and an unknown build are indistinguishable.
A known path asked with another method is 404 (405 with `Allow` in production mode); the cancel
endpoint ignores query parameters, the status and history endpoints read theirs (public_api.py).
"""

from __future__ import annotations

import hashlib
import json
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import public_api
from .auth import Tenant, authenticate
from .control import control
from .messages import NOT_FOUND, TRANSIENT, Invalid, Reply, cancel_reason, decode_id, error_body
from .public_api import Cursors, Query
from .scheduler import Scheduler
from .store import Store

API_PREFIX = "/api/v2"
CONTROL_PREFIX = "/internal/test-hooks/v1"


class App:
    def __init__(self, store: Store, scheduler: Scheduler | None = None) -> None:
        self.store = store
        self.production = store.production
        self.scheduler = scheduler
        self.cursors = Cursors()
        self.api_prefix = API_PREFIX

    # ------------------------------------------------------------------------------------ bodies

    def encode(self, document: dict[str, Any], key: str) -> bytes:
        """A JSON body; in production mode with undocumented fields, the same ones for the same `key`."""
        if self.production is not None:
            document = self.production.garnish(document, key)
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def snapshot(self, document: dict[str, Any]) -> Reply:
        return Reply(200, self.encode(document, str(document["build"]["build_id"])))

    def error(self, code: str, message: str, request_id: str, **extra: Any) -> bytes:
        if self.production is None:
            return error_body(code, message, request_id, **extra)
        return json.dumps(self.production.error_document(code, message, request_id, **extra)).encode("utf-8")

    def transient(self, method: str, target: str, headers: Message, body: bytes, request_id: str) -> Reply | None:
        """Production mode's 503/429, decided before anything else: such an answer has no side effect."""
        if self.production is None:
            return None
        digest = hashlib.sha256(body).hexdigest()
        credentials = hashlib.sha256("\n".join(headers.get_all("Authorization") or []).encode()).hexdigest()
        outcome = self.production.transient(f"{method} {target} {digest} {credentials}")
        if outcome is None:
            return None
        status, retry_after = outcome
        code, message = TRANSIENT[status]
        return Reply(status, self.error(code, message, request_id), (("Retry-After", retry_after),) if retry_after
                     else ())

    def authenticate(self, headers: Message) -> Tenant:
        return authenticate(headers, self.store.tenants)

    # ----------------------------------------------------------------------------------- routing

    def handle(self, method: str, target: str, headers: Message, body: bytes, oversized: bool) -> Reply:
        if target.startswith(("http://", "https://")):  # absolute-form request target
            split = urlsplit(target)
            target = split.path + (f"?{split.query}" if split.query else "")
        path, _, query = target.partition("?")
        if path.startswith(API_PREFIX + "/"):
            return self.api(method, path[len(API_PREFIX):].split("/"), query, headers, body, oversized)
        if path.startswith(CONTROL_PREFIX + "/"):
            tenant = self.authenticate(headers)
            return control(self, method, path[len(CONTROL_PREFIX):].split("/"), tenant, headers, body, oversized)
        raise Invalid(404, "not_found", "no such resource")

    def api(self, method: str, parts: list[str], query_text: str, headers: Message, body: bytes,
            oversized: bool) -> Reply:
        tenant = self.authenticate(headers)  # before anything about the path or the id is looked at
        if parts[:3] != ["", "v1", "templates"]:
            raise Invalid(404, "not_found", "no such resource")
        rest = parts[3:]
        if len(rest) == 3 and rest[0] == "builds" and rest[2] == "cancel":
            self._allow(method, "POST")
            return self.cancel(tenant, rest[1], headers, body, oversized)  # its query never matters
        public = self.scheduler is not None
        if public and rest in (["builds"], ["validate"]):
            self._allow(method, "POST")
            if oversized:
                raise Invalid(413, "invalid_request", "request body too large")
            if rest == ["builds"]:
                return public_api.start(self, tenant, headers, body)
            return public_api.validate(self, tenant, headers, body)
        if public and len(rest) == 2 and rest[0] == "builds":
            self._allow(method, "GET", "HEAD")
            return public_api.status(self, tenant, rest[1], _query(query_text))
        if public and len(rest) >= 3 and rest[0] == "refs" and rest[-1] == "builds":
            self._allow(method, "GET", "HEAD")
            return public_api.history(self, tenant, rest[1:-1], _query(query_text))
        raise Invalid(404, "not_found", "no such resource")

    def _allow(self, method: str, *allowed: str) -> None:
        if method in allowed:
            return
        if self.production is not None:  # a production stack's router knows the method: 405 and Allow
            raise Invalid(405, "invalid_request", "method not allowed", (("Allow", ", ".join(allowed)),))
        raise Invalid(404, "not_found", "no such resource")

    # ------------------------------------------------------------------------- the cancel endpoint

    def cancel(self, tenant: Tenant, segment: str, headers: Message, body: bytes, oversized: bool) -> Reply:
        """`POST /v1/templates/builds/{build_id}/cancel`: synchronous, idempotent, 200 with the snapshot."""
        build_id = decode_id(segment)
        if oversized:
            raise Invalid(413, "invalid_request", "request body too large")
        reason = cancel_reason(body, headers)
        snapshot = self.store.cancel(tenant, build_id, reason)
        if snapshot is None:
            raise Invalid(404, *NOT_FOUND)
        return self.snapshot(snapshot)


def _query(text: str) -> Query:
    """The query parameters, each with every value it was given (the first one counts)."""
    try:
        return parse_qs(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise Invalid(400, "invalid_request", "query parameters must be UTF-8") from None
