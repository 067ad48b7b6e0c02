"""Tenants and their bearer tokens: who a request comes from, or 401."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message

from .messages import Invalid

REALM = 'realm="alt-build-api"'
TENANT_NAMES = ("north", "south")


@dataclass(frozen=True)
class Tenant:
    token: str
    principal: str  # recorded as cancel_requested_by: stable and not secret
    namespace: str


def new_tenants() -> tuple[Tenant, Tenant]:
    """Two tenants with fresh random tokens, principals and namespaces."""
    north, south = (
        Tenant(secrets.token_urlsafe(48), f"principal:{secrets.token_hex(4)}", f"ns-{name}-{secrets.token_hex(3)}")
        for name in TENANT_NAMES
    )
    return north, south


def authenticate(headers: Message, tenants: Sequence[Tenant]) -> Tenant:
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
    found = [t for t in tenants if hmac.compare_digest(presented, t.token.encode("utf-8"))]
    if not found:
        raise failure
    return found[0]
