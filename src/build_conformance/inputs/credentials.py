"""Credential probes for the AUTH family: unknown tokens, other schemes, long random probe secrets.

Pure: makes strings, sends nothing. Probe secrets are long and random, so finding one in a response
is never an accident (AUTH-08).
"""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass

PROBE_SECRET_LENGTH = 48


def probe_secret(length: int = PROBE_SECRET_LENGTH) -> str:
    """A long random credential: a match of it in a response is never an accident (AUTH-08)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class CredentialProbe:
    """One way of presenting (or not) a credential; `presented` are the secrets it carries."""

    name: str
    headers: tuple[tuple[str, str], ...]
    presented: tuple[str, ...] = ()
    query: str = ""


def _basic(user_pass: str) -> str:
    return base64.b64encode(user_pass.encode("utf-8")).decode("ascii")


def unknown_bearer_tokens(token: str) -> list[CredentialProbe]:
    """AUTH-02: Bearer tokens the server does not know (random, truncated, extended)."""
    random_token = probe_secret()
    return [
        CredentialProbe("random", (("Authorization", f"Bearer {random_token}"),), (random_token,)),
        CredentialProbe("truncated", (("Authorization", f"Bearer {token[:-1]}"),), (token[:-1],)),
        CredentialProbe("extended", (("Authorization", f"Bearer {token}x"),), (token + "x",)),
    ]


def other_credential_forms(token: str) -> list[CredentialProbe]:
    """AUTH-03: the valid token presented in any form other than `Bearer <token>`.

    "Bearer with an empty token" is sent as the bare scheme name: a header value cannot end in
    whitespace on the wire (RFC 9110 §5.5 strips it; h11 refuses to send it), so `Bearer ` and
    `Bearer` are the same request.
    """
    as_user, as_password = _basic(f"{token}:"), _basic(f":{token}")
    return [
        CredentialProbe("basic-token-as-user", (("Authorization", f"Basic {as_user}"),), (token, as_user)),
        CredentialProbe("basic-token-as-password", (("Authorization", f"Basic {as_password}"),), (token, as_password)),
        CredentialProbe("basic-token-raw", (("Authorization", f"Basic {token}"),), (token,)),
        CredentialProbe("token-scheme", (("Authorization", f"Token {token}"),), (token,)),
        CredentialProbe("bare-token", (("Authorization", token),), (token,)),
        CredentialProbe("bearer-empty", (("Authorization", "Bearer"),), ()),
        CredentialProbe("x-api-key-only", (("X-API-Key", token),), (token,)),
    ]
