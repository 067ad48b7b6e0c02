"""The public API beside the cancel endpoint: start a build, its status, a template's history, validate.

Same authentication, error bodies and method handling as the cancel endpoint. Its own choices,
each within the contract the official client encodes:

- `POST /v1/templates/builds` answers 202 with the bare TemplateBuild (always `waiting`, with an
  undocumented `queue_position`) and a `Location` header naming its status URL; an empty body is an
  empty definition; a definition this server finds invalid is 400 `invalid_request`, the message
  naming each problem and an undocumented `problems` array giving them one by one; a body that is
  not JSON is 400, a non-JSON media type 415;
- build ids `tb_` + 26 lower-case Crockford base32 characters (time-ordered; production mode's id
  shapes when that trait is on); template ids `tpl-<n>`, one per name within the tenant;
- `GET /v1/templates/builds/{id}?offset=N` gives the entries whose offset is N or more (offsets
  start at 100 and step by 10); an offset that is not a non-negative integer is 400;
- `GET /v1/templates/refs/{ref}/builds` lists `[namespace/]name[:tag]` oldest first, in pages of 3
  (`page_size`, or the client's `limit`, from 1 to 5; more is capped at 5), each page but the
  last with an opaque, signed `next_cursor` bound to the listing it came from; rows are whole
  TemplateBuild objects; a name the tenant never built, or another namespace, is an empty 200;
  `name:<build id>` lists that one build;
- `POST /v1/templates/validate` is 200 `{valid, errors, warnings}` for any JSON body, every error
  naming its `field`, plus an undocumented `summary` of what a valid definition would build; a body
  that is not JSON is 400.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .auth import Tenant
from .definition import NAME, examine
from .messages import NOT_FOUND, Invalid, Reply, decode_id, json_document
from .store import STATUSES

if TYPE_CHECKING:
    from .app import App

Query = Mapping[str, Sequence[str]]

PAGE_SIZE, MAX_PAGE_SIZE = 3, 5
BACKENDS = ("native", "buildkit")
SOURCE_TYPES = ("declarative", "dockerfile", "oci_import", "template_base")


def _definition_document(body: bytes, headers: Message) -> Any:
    """The definition a start or validate request carries: an empty body is an empty definition."""
    return json_document(body, headers, status=400) if body else {}


# --------------------------------------------------------------------------------------------- start


def start(app: App, tenant: Tenant, headers: Message, body: bytes) -> Reply:
    definition, findings, _ = examine(_definition_document(body, headers))
    if definition is None:
        problems = [finding.to_json() for finding in findings]
        message = "invalid build definition: " + "; ".join(
            f"{f.field}: {f.message}" if f.field else f.message for f in findings)
        raise Invalid(400, "invalid_request", message, problems=problems)
    assert app.scheduler is not None
    build = app.scheduler.submit(tenant, definition)
    location = f"{app.api_prefix}/v1/templates/builds/{build['build_id']}"
    return Reply(202, app.encode(build, str(build["build_id"])), (("Location", location),))


# -------------------------------------------------------------------------------------------- status


def status(app: App, tenant: Tenant, segment: str, query: Query) -> Reply:
    since = 0
    if "offset" in query:
        text = query["offset"][0]
        if not (text.isascii() and text.isdigit()):
            raise Invalid(400, "invalid_request", "offset must be a non-negative integer")
        since = int(text)
    snapshot = app.store.view(tenant, decode_id(segment), since)
    if snapshot is None:
        raise Invalid(404, *NOT_FOUND)
    return app.snapshot(snapshot)


# ------------------------------------------------------------------------------------------- history


class Cursors:
    """Opaque page tokens: the last build shown, signed together with the listing they belong to."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _signature(self, listing: str, position: int) -> bytes:
        return hmac.new(self._key, f"{listing}|{position}".encode(), hashlib.sha256).digest()[:12]

    def issue(self, listing: str, position: int) -> str:
        raw = position.to_bytes(8, "big") + self._signature(listing, position)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def read(self, listing: str, token: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        position = int.from_bytes(raw[:8], "big") if len(raw) == 20 else -1
        if position < 0 or not hmac.compare_digest(raw[8:], self._signature(listing, position)):
            raise Invalid(400, "invalid_request", "cursor is not one this listing issued")
        return position


def _choice(query: Query, key: str, allowed: Sequence[str]) -> str | None:
    if key not in query:
        return None
    value = query[key][0]
    if value not in allowed:
        raise Invalid(400, "invalid_request", f"{key} must be one of {', '.join(allowed)}")
    return value


def _page_size(query: Query) -> int:
    key = "page_size" if "page_size" in query else "limit"
    if key not in query:
        return PAGE_SIZE
    text = query[key][0]
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise Invalid(400, "invalid_request", f"{key} must be a positive integer")
    return min(int(text), MAX_PAGE_SIZE)


def history(app: App, tenant: Tenant, ref_segments: list[str], query: Query) -> Reply:
    try:
        ref = unquote("/".join(ref_segments), errors="strict")
    except UnicodeDecodeError:
        raise Invalid(400, "invalid_request", "ref must be [namespace/]name[:tag]") from None
    namespace, _, named = ref.rpartition("/")
    name, _, tag = named.partition(":")
    if not NAME.fullmatch(name) or (tag and not NAME.fullmatch(tag)) or "/" in namespace:
        raise Invalid(400, "invalid_request", "ref must be [namespace/]name[:tag]")
    filters = {field: _choice(query, key, allowed) for key, field, allowed in (
        ("status", "status", STATUSES), ("backend", "build_backend", BACKENDS),
        ("source_type", "source_type", SOURCE_TYPES))}
    size = _page_size(query)
    listing = json.dumps([tenant.namespace, namespace, name, tag, sorted(filters.items())])
    cursor = query.get("cursor", [""])[0]
    after = app.cursors.read(listing, cursor) if cursor else 0
    shown: list[tuple[int, dict[str, Any]]] = []
    more = False
    if namespace in ("", tenant.namespace):  # another namespace's templates are not the caller's to list
        with app.store.lock:
            for build in app.store.builds_named(tenant, name):
                fields = build.fields
                if build.sequence <= after or (tag and tag not in fields["tags"] and tag != fields["build_id"]):
                    continue
                if any(wanted is not None and fields[field] != wanted for field, wanted in filters.items()):
                    continue
                if len(shown) == size:
                    more = True
                    break
                shown.append((build.sequence, copy.deepcopy(fields)))
    page: dict[str, Any] = {"builds": [fields for _, fields in shown]}
    if more:
        page["next_cursor"] = app.cursors.issue(listing, shown[-1][0])
    return Reply(200, app.encode(page, f"history:{listing}:{after}"))


# ------------------------------------------------------------------------------------------ validate


def validate(app: App, tenant: Tenant, headers: Message, body: bytes) -> Reply:
    definition, findings, warnings = examine(_definition_document(body, headers))
    answer: dict[str, Any] = {"valid": not findings, "errors": [f.to_json() for f in findings], "warnings": warnings}
    if definition is not None:
        answer["summary"] = {
            "name": definition.name,
            "tags": list(definition.tags),
            "source_type": definition.source_type,
            "build_backend": definition.build_backend,
            "steps": [step.label for step in definition.steps],
        }
    return Reply(200, app.encode(answer, "validate:" + hashlib.sha256(body).hexdigest()))
