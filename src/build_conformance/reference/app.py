"""The endpoints: start, validate, history, status and cancel on the public API; the control API's hooks.

Order of decisions for every request: framing → authentication → route and method → body → build.
Authentication comes before anything that looks at the id, so without valid credentials an
existing and an unknown build are indistinguishable (AUTH-04); the body is validated before the
build is touched, so a refused request never has a side effect.

Builds started here are scheduled (lifecycle.py): the request records the build and its plan and
wakes the executor, which runs it in real time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import render
from .auth import Authenticator, Identity, Tenant
from .clock import formatter, now_ms
from .definition import Problem, check
from .errors import INVALID, NOT_FOUND, ApiError, ResetConnection, internal_error, render_error
from .fixtures import STATUSES
from .history import list_query, page_json, parse_ref
from .lifecycle import Lifecycle, Limits
from .messages import Request, Response, json_response
from .mutations import handler_faults, serializer_faults
from .request_body import MAX_BODY, CancelBody, is_json_media_type, parse_cancel_body
from .routing import WELL_FORMED_ID, Route, decode_id, match, percent_decode, split_target
from .store import SCHEDULER, BuildRow, CancelRequest, Snapshot, Store
from .templates import plan_json, scheduled_build

# A build definition may carry an inline build context, so it may be larger than a cancel body.
MAX_DEFINITION = 1024 * 1024
# shared-principal-race: how long a cancel works between authenticating its caller and writing the cancel.
SHARED_PRINCIPAL_WINDOW_S = 0.05


@dataclass(frozen=True)
class Settings:
    api_prefix: str
    control_prefix: str
    faults: frozenset[str]
    hang_seconds: float
    variations: frozenset[str]
    limits: Limits
    step_seconds_cap: float
    step_ms: int  # how long every step of a started build takes, at least


Query = Mapping[str, list[str]]


class App:
    def __init__(
        self,
        store: Store,
        lifecycle: Lifecycle,
        tenants: Sequence[Tenant],
        settings: Settings,
        *,
        notify_executor: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        self._store = store
        self._lifecycle = lifecycle
        self._settings = settings
        self._faults = settings.faults
        self._variations = settings.variations
        self._stamp = formatter(settings.variations)
        self._auth = Authenticator(tenants, settings.faults)
        self._notify = notify_executor
        self._stop = stop  # a hang (fault) ends early when the server stops
        self._cancelled_once: set[str] = set()  # hang-once-then-answer: builds whose first cancel has come
        self._cancelled_once_lock = threading.Lock()
        self._staged: dict[str, str] = {}  # refused-reason-lingers: build id -> the first reason read for it
        self._principal: str | None = None  # shared-principal-race: the caller of the last request with a body

    def handle(self, request: Request) -> Response:
        path, query = split_target(request.target)
        route = match(path, self._settings.api_prefix, self._settings.control_prefix)
        try:
            return self._handle(request, route, query)
        except ApiError as error:
            # Error-body faults are defects of the public endpoints; the control API's errors stay plain.
            public = not route.name.startswith("control.")
            if error.kind == "too_large" and public and "huge-body-reset" in self._faults:
                raise ResetConnection() from None
            faults = self._faults if public else frozenset()
            return render_error(error, request.request_id, faults, self._variations)

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
            "validate": self._validate,
            "builds.by_ref": self._builds_by_ref,
            "cancel": self._cancel,
            "status": self._status,
            "control.builds": self._control_create,
            "control.build": self._control_get,
            "control.advance": self._control_advance,
        }
        return handlers[route.name](request, route, query, identity)

    # --------------------------------------------------------------------------- public API

    def _definition(self, request: Request) -> Any:
        """The request body as JSON (a definition still to be checked); 415 or 400 when it is not JSON."""
        content_type = request.headers.get("Content-Type")
        if content_type is not None and not is_json_media_type(content_type, frozenset()):
            raise ApiError(415, INVALID, "send the build definition as application/json", kind="media_type")
        raw = request.body.read(MAX_DEFINITION)
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, RecursionError):
            raise ApiError(400, INVALID, "request body is not valid JSON", kind="malformed") from None

    def _start(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        """Start a build from a definition: 202 with the new build, which the scheduler then runs."""
        definition, problems, _ = check(self._definition(request))
        if definition is None:
            raise ApiError(400, INVALID, "; ".join(p.message for p in problems))
        tenant = identity.tenant.name
        build = scheduled_build(tenant, definition, now_ms())
        plan = plan_json(definition, self._settings.step_seconds_cap, self._settings.step_ms)
        quota = self._settings.limits.build_quota
        build_id = self._store.create_scheduled(build, plan, quota)
        if build_id is None:
            retry_after = self._lifecycle.retry_after(tenant)
            raise ApiError(429, "rate_limit_exceeded",
                           f"the namespace already has {quota} builds waiting or building; retry when one ends",
                           headers=(("Retry-After", str(retry_after)),))
        snapshot = self._store.snapshot(build_id)
        assert snapshot is not None
        created = self._rendered(snapshot)["build"]  # the build as created, before the scheduler sees it
        self._notify()
        return json_response(202, created)

    def _validate(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        """Check a definition without starting anything: every problem comes back in a 200."""
        try:
            _, found, warnings = check(self._definition(request))
        except ApiError as error:
            if error.kind != "malformed":
                raise
            found, warnings = [Problem("invalid_json", error.message)], []  # not JSON: a problem like any other
        problems = [problem.to_json() for problem in found]
        return json_response(200, {"valid": not problems, "errors": problems, "warnings": warnings})

    def _builds_by_ref(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        """The caller's builds of one template, newest first, a page at a time (history.py)."""
        tenant = identity.tenant.name
        namespace, name, tag = parse_ref(percent_decode(route.raw_id) or "")
        if (namespace and namespace != tenant) or not self._store.has_template(tenant, name):
            raise ApiError(404, "template_not_found", "template not found")
        wanted = list_query(tenant, name, tag, query)
        return json_response(200, page_json(self._store.builds_of(wanted), wanted, self._stamp))

    def _cancel(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        faults = self._faults
        if query and "query-param-breaks" in faults:
            raise ApiError(400, INVALID, "unsupported query parameter")
        build_id = decode_id(route.raw_id, faults)
        try:
            keep = "stores-lone-surrogates" in self._variations
            body = parse_cancel_body(request, faults, keep_lone_surrogates=keep) if request.method == "POST" \
                else CancelBody()
        except ApiError as error:
            self._refused_body(error, build_id, identity)
            raise
        if "shared-principal-race" in faults and request.body.declared_length:
            self._principal = identity.caller  # the body reader keeps the caller in one server-wide variable
        if "refused-reason-lingers" in faults and build_id is not None and body.reason is not None:
            with self._cancelled_once_lock:  # the pending-cancel row is written before the owner is checked
                self._staged.setdefault(build_id, body.reason)
        build = self._resolve(build_id, identity)
        if build.status in ("ready", "error") and "terminal-cancel-409" in faults:
            raise ApiError(409, "transition_conflict", "the build has already finished")
        caller, reason = identity.caller, body.reason
        if "refused-reason-lingers" in faults:
            with self._cancelled_once_lock:  # ... and the owner's cancel finds the row a refused request left
                reason = self._staged.pop(build.build_id, reason)
        if "shared-principal-race" in faults and request.body.declared_length:
            self._stop.wait(SHARED_PRINCIPAL_WINDOW_S)  # the work between reading the body and writing the cancel
            caller = self._principal or caller  # ... and the caller read back from the shared variable
        if body.unstorable:  # unstorable-reason-refused-late: the cancel is applied before the reason is refused
            if self._store.cancel(build, CancelRequest(caller, None, body.fields)):
                self._notify()
            raise ApiError(422, INVALID, "reason must be text the store can hold", kind="wrong_type")
        effective = self._store.cancel(build, CancelRequest(caller, reason, body.fields))
        if effective:
            self._notify()
        if "hang-once-then-answer" in faults and self._first_cancel(build.build_id):
            self._stop.wait(self._settings.hang_seconds)
        if "slow-cancel-hang" in faults:
            self._await_executor(build.build_id)
        status = 202 if not effective and build.status in ("ready", "error") and "noop-cancel-202" in faults else 200
        since = 0
        if "cancel-honours-offset" in faults and query.get("offset", [""])[0].isdigit():
            since = int(query["offset"][0])
        if "newest-build-id" in faults and effective and build.driver == SCHEDULER:
            newest = self._store.newest(identity.tenant.name)
            if newest is not None and newest.build_id != build.build_id:
                return self._public_snapshot(build.build_id, status, since, identity_of=newest)
        return self._public_snapshot(build.build_id, status, since)

    def _first_cancel(self, build_id: str) -> bool:
        """hang-once-then-answer: True for the first cancel that reaches this build, False afterwards."""
        with self._cancelled_once_lock:
            first = build_id not in self._cancelled_once
            self._cancelled_once.add(build_id)
        return first

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
        self._store.read(build.build_id)
        return self._public_snapshot(build.build_id, 200, since)

    def _public_snapshot(self, build_id: str, status: int, since: int = 0, identity_of: BuildRow | None = None
                         ) -> Response:
        snapshot = self._store.snapshot(build_id, since)
        if snapshot is None:
            raise self._not_found()
        body = handler_faults(self._rendered(snapshot), snapshot.build, self._faults)
        if identity_of is not None:
            # newest-build-id: the answer names the tenant's newest build, as a lookup of "the tenant's current
            # build" instead of the one in the path would.
            body["build"]["build_id"] = identity_of.build_id
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
        build_id = self._control_build(route, identity).build_id
        self._store.read(build_id)
        return self._control_snapshot(build_id)

    def _control_advance(self, request: Request, route: Route, query: Query, identity: Identity) -> Response:
        build = self._control_build(route, identity)
        self._lifecycle.advance(build.build_id, identity.tenant.name)
        self._notify()  # an advance can start a build whose cancel is pending (a fault), which then completes
        return self._control_snapshot(build.build_id)

    def _control_snapshot(self, build_id: str) -> Response:
        snapshot = self._store.snapshot(build_id)
        if snapshot is None:
            raise ApiError(404, NOT_FOUND, "template build not found")
        return json_response(200, self._rendered(snapshot))

    def _rendered(self, snapshot: Snapshot) -> dict[str, Any]:
        """The snapshot as every view writes it (serializer faults included)."""
        return serializer_faults(render.snapshot_json(snapshot, self._stamp), snapshot.build, self._faults)

    # ------------------------------------------------------------------------------ errors

    def _not_found(self) -> ApiError:
        code = "template_not_found" if "wrong-codes" in self._faults else NOT_FOUND
        if "not-found-invalid-request" in self._faults:
            code = INVALID
        return ApiError(404, code, "template build not found")

    def _method_not_allowed(self, route: Route) -> ApiError:
        allow = ", ".join(route.allowed)
        headers = () if "no-allow-header" in self._faults else (("Allow", allow),)
        return ApiError(405, INVALID, f"method not allowed; use {allow}", headers=headers)
