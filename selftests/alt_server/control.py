"""The control API (test hooks): create a build in any status, look at it, advance it one step.

Create answers 200 `{"build_id"}`; asking to advance a terminal build is 409 `transition_conflict`.
"""

from __future__ import annotations

from email.message import Message
from typing import TYPE_CHECKING

from .auth import Tenant
from .messages import NOT_FOUND, Invalid, Reply, decode_id, json_document
from .store import STATUSES

if TYPE_CHECKING:
    from .app import App


def control(app: App, method: str, parts: list[str], tenant: Tenant, headers: Message, body: bytes,
            oversized: bool) -> Reply:
    """Answer a control request (`parts`: the path after the control prefix, split at `/`)."""
    store = app.store
    if oversized:
        raise Invalid(413, "invalid_request", "request body too large")
    if parts == ["", "builds"] and method == "POST":
        document = json_document(body, headers) if body else None
        status = document.get("status") if isinstance(document, dict) else None
        if status not in STATUSES:
            raise Invalid(422, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
        build_id = store.create(tenant, str(status))
        return Reply(200, app.encode({"build_id": build_id}, build_id))
    if len(parts) in (3, 4) and parts[:2] == ["", "builds"]:
        build_id = decode_id(parts[2])
        if len(parts) == 3 and method in ("GET", "HEAD"):
            snapshot = store.view(tenant, build_id)
        elif len(parts) == 4 and parts[3] == "advance" and method == "POST":
            outcome = store.advance(tenant, build_id)
            if outcome is False:
                raise Invalid(409, "transition_conflict", "the build cannot advance")
            snapshot = outcome if isinstance(outcome, dict) else None
        else:
            raise Invalid(404, "not_found", "no such resource")
        if snapshot is None:
            raise Invalid(404, *NOT_FOUND)
        return app.snapshot(snapshot)
    raise Invalid(404, "not_found", "no such resource")
