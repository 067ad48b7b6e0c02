"""HTTPS for the reference server, as staging deployments serve it.

TLS 1.3 servers send session tickets right after the handshake (OpenSSL: two by default), before
the client has sent a byte of its request: a client that takes a readable socket for an answer
stalls there. The reference server keeps that default so the suite meets it, and can be pinned to
TLS 1.2 or 1.3, and can require a client certificate signed by a given CA (mutual TLS, as gateways
in front of staging often do).
"""

from __future__ import annotations

import ssl

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(
    cert_file: str,
    key_file: str | None = None,
    *,
    version: str | None = None,
    client_ca: str | None = None,
    session_tickets: int = 2,
) -> ssl.SSLContext:
    """A server TLS context: `version` "1.2" or "1.3" pins the protocol (None: both); `client_ca` requires a
    client certificate signed by that CA; `session_tickets` (TLS 1.3) is how many tickets follow the handshake."""
    if version is not None and version not in TLS_VERSIONS:
        raise ValueError(f"the TLS version must be one of {', '.join(TLS_VERSIONS)} (got {version!r})")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the server certificate {cert_file!r}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if version is not None:
        context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
    context.num_tickets = session_tickets
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the client CA {client_ca!r}: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
