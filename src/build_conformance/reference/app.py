"""The endpoints: cancel and status on the public API, and the control API's test hooks.

Order of decisions for every request: framing → authentication → route and method → body → build.
Authentication comes before anything that looks at the id, so without valid credentials an
existing and an unknown build are indistinguishable (AUTH-04); the body is validated before the
build is touched, so a refused request never has a side effect.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import render
from .auth import Authenticator, Identity, Tenant
from .clock import now_ms
from .errors import INVALID, NOT_FOUND, ApiError, internal_error, render_error
from .fixtures import STATUSES
from .messages import Request, Response, json_response
from .mutations import handler_faults, serializer_faults
from .request_body import MAX_BODY, CancelBody, parse_cancel_body
from .routing import WELL_FORMED_ID, Route, decode_id, match, split_target
from .store import BuildRow, CancelRequest, Snapshot, Store


@dataclass(frozen=True)
class Settings:
    api_prefix: str
    control_prefix: str
    faults: frozenset[str]
    hang_seconds: float


Query = Mapping[str, list[str]]


class App:
    def __init__(
        self,
        store: Store,
        tenants: Sequence[Tenant],
        settings: Settings,
        *,
        notify_completer: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        self._store = store
        self._settings = settings
        self._faults = settings.faults
        self._auth = Authenticator(tenants, settings.faults)
        self._notify = notify_completer
        self._stop = stop  # a hang (fault) ends early when the server stops

    def handle(self, request: Request) -> Response:
        path, query = split_target(request.target)
        route = match(path, self._settings.api_prefix, self._settings.control_prefix)
        try:
            return self._handle(request, route, query)
        except ApiError as error:
            # Error-body faults are defects of the public endpoints; the control API's errors stay plain.
            faults = frozenset() if route.name.startswith("control.") else self._faults
            return render_error(error, request.request_id, faults)

    def _handle(self, request: Request, route: Route, query: Query) -> Response:
        request.body.check_framing()
        if route.name == "cancel" and "auth-lookup-before-auth" in self._faults:
            build_id = decode_id(route.raw_id)
            if build_id is None or self._store.find(build_id, None) is None:
                raise self._not_found()
        identity = self._auth.authenticate(request.headers, query)
        if route.name == "unknown":
            raise ApiError(404, "not_found", "no such resource")
        get_cancels = route.name == "cancel" and request.method == "GET" and "get-cancels" in self._faults
        if request.method not in route.allowed and not get_cancels:
            raise self._method_not_allowed(route)
        handlers: dict[str, Callable[[Request, Route, Query, Identity], Response]] = {
            "start": self._start,
            "cancel": self._cancel,
            "status": self._status,
            "control.builds": self._control_create,
            "control.build": self._control_get,
            "control.advance": self._control_advance,
        }
        return handlers[route.name](request, route, query, identity)

    # --------------------------------------------------------------------------- public API

    def _start(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        """Start a build from a definition (the public-API provisioner's way in).

        There is no builder behind the reference server, so the definition decides the outcome the
        way a real builder's would: a step that sleeps keeps the build `building`, a failing step
        ends it `error`, anything else ends `ready`.
        """
        raw = request.body.read(MAX_BODY)
        try:
            payload: Any = json.loads(raw) if raw else None
        except ValueError:
            raise ApiError(400, INVALID, "request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise ApiError(400, INVALID, "the build definition must be a JSON object")
        dockerfile = payload.get("dockerfile")
        steps = " ".join(str(s) for s in payload.get("steps") or [])
        text = (dockerfile if isinstance(dockerfile, str) else "") + " " + steps
        if "exit 1" in text or "false" in text.split():
            status = "error"
        elif "sleep" in text:
            status = "building"
        else:
            status = "ready"
        build_id = self._store.create(identity.tenant.name, status)
        snapshot = self._store.snapshot(build_id)
        assert snapshot is not None
        return json_response(202, self._rendered(snapshot)["build"])

    def _cancel(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        faults = self._faults
        if query and "query-param-breaks" in faults:
            raise ApiError(400, INVALID, "unsupported query parameter")
        build_id = decode_id(route.raw_id, faults)
        try:
            body = parse_cancel_body(request, faults) if request.method == "POST" else CancelBody()
        except ApiError as error:
            self._refused_body(error, build_id, identity)
            raise
        build = self._resolve(build_id, identity)
        if build.status in ("ready", "error") and "terminal-cancel-409" in faults:
            raise ApiError(409, "transition_conflict", "the build has already finished")
        effective = self._store.cancel(build, CancelRequest(identity.caller, body.reason, body.fields))
        if effective:
            self._notify()
        if "slow-cancel-hang" in faults:
            self._await_executor(build.build_id)
        status = 202 if not effective and build.status in ("ready", "error") and "noop-cancel-202" in faults else 200
        return self._public_snapshot(build.build_id, status)

    def _await_executor(self, build_id: str) -> None:
        """slow-cancel-hang: block on the executor's acknowledgement while it is outstanding.

        Every cancel in the window waits the full hang, so a client's retry after a timeout hangs too.
        """
        build = self._store.find(build_id, None)
        if build is None or build.cancel_requested_at is None or build.started_at is None:
            return  # only builds cancelled while running have an executor to wait for
        if now_ms() - build.cancel_requested_at < self._settings.hang_seconds * 1000:
            self._stop.wait(self._settings.hang_seconds)

    def _refused_body(self, error: ApiError, build_id: str | None, identity: Identity) -> None:
        """Body faults that act on the build although its body was refused."""
        faults = self._faults
        applies_anyway = (error.kind == "too_large" and "rejected-request-side-effect" in faults) or (
            error.kind == "malformed" and "malformed-json-still-cancels" in faults
        )
        if applies_anyway and build_id is not None:
            build = self._store.find(build_id, identity.tenant.name)
            if build is not None:
                self._store.cancel(build, CancelRequest(identity.caller))
                self._notify()
        if error.kind == "too_large":
            if "huge-body-hang" in faults:
                self._stop.wait(self._settings.hang_seconds)
            if "huge-body-500" in faults:
                raise internal_error()

    def _resolve(self, build_id: str | None, identity: Identity) -> BuildRow:
        """The caller's build with exactly this id; anything else is the same 404."""
        if build_id is None:
            raise self._not_found()
        faults = self._faults
        tenant = identity.tenant.name
        build = self._store.find(build_id, tenant)
        if build is None and "prefix-match-id" in faults and len(build_id) >= 4:
            build = self._store.find_by_prefix(build_id, tenant)
        if build is not None:
            return build
        elsewhere = self._store.find(build_id, None)
        if elsewhere is not None:
            if "tenant-cancels-other" in faults:
                return elsewhere
            if "tenant-leak-403" in faults:
                raise ApiError(403, "unauthorized", "this build belongs to another namespace")
        elif WELL_FORMED_ID.fullmatch(build_id):
            if "unknown-id-410" in faults:
                raise ApiError(410, NOT_FOUND, "template build not found")
            if "unknown-id-500" in faults:
                raise ApiError(500, NOT_FOUND, "template build lookup failed")
        raise self._not_found()

    def _status(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        since = 0
        if "offset" in query:
            text = query["offset"][0]
            if not (text.isascii() and text.isdigit()):
                raise ApiError(400, INVALID, "offset must be a non-negative integer")
            since = int(text)
        build_id = decode_id(route.raw_id)
        build = self._store.find(build_id, identity.tenant.name) if build_id else None
        if build is None:
            raise self._not_found()
        return self._public_snapshot(build.build_id, 200, since)

    def _public_snapshot(self, build_id: str, status: int, since: int = 0) -> Response:
        snapshot = self._store.snapshot(build_id, since)
        if snapshot is None:
            raise self._not_found()
        body = handler_faults(self._rendered(snapshot), snapshot.build, self._faults)
        if "text-content-type" in self._faults:
            return json_response(status, body, content_type="text/plain; charset=utf-8")
        return json_response(status, body)

    # -------------------------------------------------------------------------- control API

    def _control_create(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        raw = request.body.read(MAX_BODY)
        try:
            payload: Any = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(400, INVALID, "request body is not valid JSON") from None
        status = payload.get("status") if isinstance(payload, dict) else None
        if status not in STATUSES:
            raise ApiError(422, INVALID, f"status must be one of {', '.join(STATUSES)}")
        build_id = self._store.create(identity.tenant.name, status)
        snapshot = self._store.snapshot(build_id)
        assert snapshot is not None
        return json_response(201, {"build_id": build_id, **self._rendered(snapshot)})

    def _control_build(self, route: Route, identity: Identity) -> BuildRow:
        build_id = decode_id(route.raw_id)
        build = self._store.find(build_id, identity.tenant.name) if build_id else None
        if build is None:
            raise ApiError(404, NOT_FOUND, "template build not found")
        return build

    def _control_get(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        return self._control_snapshot(self._control_build(route, identity).build_id)

    def _control_advance(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        build = self._control_build(route, identity)
        self._store.advance(build.build_id, identity.tenant.name)
        self._notify()  # an advance can start a build whose cancel is pending (a fault), which then completes
        return self._control_snapshot(build.build_id)

    def _control_snapshot(self, build_id: str) -> Response:
        snapshot = self._store.snapshot(build_id)
        if snapshot is None:
            raise ApiError(404, NOT_FOUND, "template build not found")
        return json_response(200, self._rendered(snapshot))

    def _rendered(self, snapshot: Snapshot) -> dict[str, Any]:
        """The snapshot as every view writes it (serializer faults included)."""
        return serializer_faults(render.snapshot_json(snapshot), snapshot.build, self._faults)

    # ------------------------------------------------------------------------------ errors

    def _not_found(self) -> ApiError:
        code = "template_not_found" if "wrong-codes" in self._faults else NOT_FOUND
        return ApiError(404, code, "template build not found")

    def _method_not_allowed(self, route: Route) -> ApiError:
        allow = ", ".join(route.allowed)
        headers = () if "no-allow-header" in self._faults else (("Allow", allow),)
        return ApiError(405, INVALID, f"method not allowed; use {allow}", headers=headers)
