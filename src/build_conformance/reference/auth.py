"""Authentication: exactly `Authorization: Bearer <token>` of a known tenant, decided before anything else.

The scheme is matched case-insensitively (RFC 9110 §11.1); the token must match a tenant's token
exactly, compared in constant time. Every other way of presenting a credential is refused, and the
401 never repeats what was presented.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message

from .errors import ApiError
from .fixtures import caller_identity

REALM = "templates"


@dataclass(frozen=True)
class Tenant:
    name: str
    token: str


@dataclass(frozen=True)
class Identity:
    tenant: Tenant
    caller: str  # recorded as cancel_requested_by: names the key's owner, never contains the key


def _identity(tenant: Tenant) -> Identity:
    return Identity(tenant, caller_identity(tenant.name))


def _same(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


def _basic_candidates(credential: str) -> list[str]:
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return [credential]
    return [credential, decoded, *decoded.split(":", 1)]


class Authenticator:
    def __init__(self, tenants: Sequence[Tenant], faults: frozenset[str]) -> None:
        self._tenants = tuple(tenants)
        self._faults = faults

    def _match(self, presented: str) -> Tenant | None:
        for tenant in self._tenants:
            if _same(presented, tenant.token):
                return tenant
        if "auth-prefix-token-accepted" in self._faults and len(presented) >= 16:
            for tenant in self._tenants:
                if tenant.token.startswith(presented) or presented.startswith(tenant.token):
                    return tenant
        return None

    def authenticate(self, headers: Message, query: Mapping[str, list[str]]) -> Identity:
        faults = self._faults
        values = headers.get_all("Authorization") or []
        presented: str | None = None
        bearer_token = False
        if len(values) == 1:
            value = values[0].strip()
            scheme, _, credential = value.partition(" ")
            credential = credential.strip()
            presented = credential or scheme
            is_bearer = scheme == "Bearer" if "scheme-case-sensitive" in faults else scheme.lower() == "bearer"
            if is_bearer and credential:
                bearer_token = True
                tenant = self._match(credential)
                if tenant is not None:
                    return _identity(tenant)
            elif "auth-other-schemes-accepted" in faults:
                if scheme.lower() in ("basic", "token") and credential:
                    candidates = _basic_candidates(credential)
                else:
                    candidates = [value] if not credential else []
                for candidate in candidates:
                    tenant = self._match(candidate)
                    if tenant is not None:
                        return _identity(tenant)
        elif not values:
            api_key = headers.get("X-API-Key")
            query_token = next(iter(query.get("access_token") or []), None)
            if api_key and "auth-x-api-key-accepted" in faults:
                tenant = self._match(api_key.strip())
                if tenant is not None:
                    return _identity(tenant)
            if query_token and "query-token-accepted" in faults:
                tenant = self._match(query_token)
                if tenant is not None:
                    return _identity(tenant)
            if "auth-missing-header-accepted" in faults and not api_key and not query_token:
                return _identity(self._tenants[0])
            presented = api_key or query_token
        raise self._unauthorized(presented, bearer_token)

    def _unauthorized(self, presented: str | None, bearer_token: bool) -> ApiError:
        challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if bearer_token else "")
        headers = () if "no-www-authenticate" in self._faults else (("WWW-Authenticate", challenge),)
        message = "missing or invalid API key; send Authorization: Bearer <key>"
        if "token-echo-in-error" in self._faults and presented:
            message = f"invalid API key {presented!r}"
        return ApiError(401, "unauthorized", message, headers=headers)
