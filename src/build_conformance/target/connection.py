"""One connection policy for every byte the suite sends: the CA bundle, the client certificate, the proxy.

Staging deployments sit behind private CAs, corporate proxies and gateways that demand a client
certificate. Every sender — httpx for ordinary requests, the reading-while-writing sender for huge
bodies, the provisioners, preflight and cleanup, which all go through the one `Transport` — takes its
TLS context and its proxy from here, so no request can take another route than the others.

Proxies follow httpx's reading of the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
`NO_PROXY`, upper or lower case, through `urllib.request.getproxies`), decided here once per origin and
handed to both senders; an explicit proxy (`--proxy URL`) carries every request, and `--proxy direct`
ignores the environment. A proxy's user and password, the client key and its password never reach
output: they are registered with the redactor as soon as they are read.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies

import h11
import httpcore
import httpx

from build_conformance.config import DIRECT_PROXY as DIRECT
from build_conformance.config import RunConfig
from build_conformance.redaction import REDACTOR, Secret

PROXY_SCHEMES = ("http", "https")


class ConnectionSetupError(ValueError):
    """The connection settings cannot be used (a client key that does not load, an unsupported proxy)."""


@dataclass(frozen=True)
class Proxy:
    """A forward proxy: CONNECT tunnels for https targets, absolute-form requests for http ones."""

    url: str  # scheme://host:port, without credentials
    username: Secret | None = None
    password: Secret | None = None

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        split = urlsplit(self.url)
        return split.port or (443 if split.scheme == "https" else 80)

    def authorization(self) -> list[tuple[str, str]]:
        """The Proxy-Authorization header its credentials call for (none without credentials)."""
        if self.username is None:
            return []
        pair = f"{self.username.reveal()}:{self.password.reveal() if self.password else ''}"
        return [("Proxy-Authorization", "Basic " + base64.b64encode(pair.encode()).decode("ascii"))]

    def __str__(self) -> str:
        return self.url if self.username is None else self.url.replace("://", "://<proxy-user>@", 1)


def parse_proxy(value: str, name: str = "--proxy") -> Proxy:
    """A proxy URL as given (`http://user:password@host:3128`); its credentials become secrets at once."""
    text = value.strip()
    split = urlsplit(text if "://" in text else f"http://{text}")
    if split.scheme not in PROXY_SCHEMES or not split.hostname:
        hint = " (SOCKS proxies are not supported)" if split.scheme.startswith("socks") else ""
        # The value may carry a password: the message names the scheme only.
        raise ConnectionSetupError(f"{name} must be an http:// or https:// proxy URL{hint}, got a "
                                   f"{split.scheme or 'schemeless'} URL")
    try:
        port = split.port
    except ValueError:
        raise ConnectionSetupError(f"{name} has an invalid port") from None
    username = Secret(unquote(split.username), "proxy-user") if split.username else None
    password = Secret(unquote(split.password), "proxy-password") if split.password else None
    for secret in (username, password):
        if secret is not None:
            REDACTOR.add_token(secret, secret.label)
    host = f"[{split.hostname}]" if ":" in split.hostname else split.hostname
    return Proxy(f"{split.scheme}://{host}" + (f":{port}" if port else ""), username, password)


@dataclass(frozen=True)
class _Exclusion:
    """One NO_PROXY entry, matched as httpx matches its `all://` mount patterns."""

    scheme: str | None
    host: re.Pattern[str]
    port: int | None

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        return ((self.scheme is None or self.scheme == scheme) and bool(self.host.fullmatch(host))
                and (self.port is None or self.port == port))


def _exclusion(entry: str) -> _Exclusion | None:
    scheme: str | None = None
    if "://" in entry:
        split = urlsplit(entry)
        scheme, host, port = split.scheme, split.hostname or "", split.port
    else:
        host, port = entry, None
        if entry.count(":") == 1 and not entry.startswith("["):
            host, _, port_text = entry.partition(":")
            port = int(port_text) if port_text.isdigit() else None
    host = host.strip("[]").lower()
    if not host:
        return None
    if _is_ip(host) or host == "localhost":
        pattern = re.escape(host)  # an address or localhost: that host only
    elif host.startswith("*."):
        pattern = rf".+\.{re.escape(host[2:])}"
    elif host.startswith("."):
        pattern = rf".+{re.escape(host)}"  # .example.com: its subdomains
    else:
        pattern = rf"(.+\.)?{re.escape(host.lstrip('*'))}"  # example.com: itself and its subdomains
    return _Exclusion(scheme, re.compile(pattern), port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class EnvironmentProxies:
    """The proxies the environment names, read once (what `getproxies` returns, as httpx reads it)."""

    by_scheme: dict[str, Proxy]  # "http", "https", "all"
    exclusions: tuple[_Exclusion, ...]
    everything_excluded: bool = False  # NO_PROXY=*

    @classmethod
    def read(cls) -> EnvironmentProxies:
        found = getproxies()
        by_scheme: dict[str, Proxy] = {}
        for scheme in ("http", "https", "all"):
            if found.get(scheme):
                by_scheme[scheme] = parse_proxy(found[scheme], f"{scheme.upper()}_PROXY")
        entries = [e.strip() for e in found.get("no", "").split(",") if e.strip()]
        exclusions = tuple(x for x in (_exclusion(e) for e in entries) if x is not None)
        return cls(by_scheme, exclusions, "*" in entries)

    def for_url(self, url: str) -> Proxy | None:
        split = urlsplit(url)
        scheme, host = split.scheme, (split.hostname or "").lower()
        if self.everything_excluded or any(x.matches(scheme, host, split.port) for x in self.exclusions):
            return None
        return self.by_scheme.get(scheme) or self.by_scheme.get("all")


@dataclass(frozen=True)
class ConnectionPolicy:
    """How the suite connects: CA bundle, client certificate and key, proxy (explicit, environment or none)."""

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    client_key_password: Secret | None = None
    proxy: str | None = None  # a proxy URL, DIRECT, or None: from the environment
    verify: bool = True  # False only for the project's own tests of the plumbing
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def ssl_context(self) -> ssl.SSLContext:
        """The one TLS context of the run (built once): the CA bundle or httpx's default trust, the client cert."""
        with self._lock:
            context = self._cache.get("ssl")
            if context is None:
                context = self._cache["ssl"] = self._build_ssl_context()
        assert isinstance(context, ssl.SSLContext)
        return context

    def _build_ssl_context(self) -> ssl.SSLContext:
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_bundle:
            try:
                context = ssl.create_default_context(cafile=self.ca_bundle)
            except (ssl.SSLError, OSError) as exc:
                raise ConnectionSetupError(f"--ca-bundle {self.ca_bundle!r} holds no usable PEM certificate "
                                           f"({_reason(exc)})") from None
        else:
            # httpx's own default: certifi, or SSL_CERT_FILE / SSL_CERT_DIR when the environment names them.
            context = httpx.create_ssl_context()
        if self.client_cert:
            self._load_client_certificate(context)
        elif self.client_key:
            raise ConnectionSetupError("--client-key needs --client-cert (the certificate the key belongs to)")
        return context

    def _load_client_certificate(self, context: ssl.SSLContext) -> None:
        password = self.client_key_password

        def ask() -> bytes:
            if password is None:
                _encrypted()
            return password.reveal().encode()

        try:
            context.load_cert_chain(self.client_cert or "", self.client_key, password=ask)
        except ConnectionSetupError:
            raise
        except ssl.SSLError as exc:
            what = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(exc) else (
                "the password does not decrypt the key" if password is not None and "BAD_DECRYPT" in str(exc) else
                "not a PEM certificate and key")
            raise ConnectionSetupError(f"--client-cert/--client-key cannot be used: {what} ({_reason(exc)})") from None
        except OSError as exc:
            raise ConnectionSetupError(f"--client-cert/--client-key cannot be read: {exc.strerror}") from None

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy a request to `url` goes through (None: directly), the same for every sender."""
        if self.proxy == DIRECT:
            return None
        if self.proxy:
            with self._lock:
                explicit = self._cache.get("explicit")
                if explicit is None:
                    explicit = self._cache["explicit"] = parse_proxy(self.proxy)
            assert isinstance(explicit, Proxy)
            return explicit
        with self._lock:
            environment = self._cache.get("environment")
            if environment is None:
                environment = self._cache["environment"] = EnvironmentProxies.read()
        assert isinstance(environment, EnvironmentProxies)
        return environment.for_url(url)

    def describe(self, url: str) -> str:
        """For the banner: how requests to `url` travel (no credential shows)."""
        proxy = self.proxy_for(url)
        source = "" if self.proxy else " (from the environment)"
        parts = [f"via proxy {proxy}{source}" if proxy else "direct"]
        if urlsplit(url).scheme == "https":
            parts.append(f"CA bundle {self.ca_bundle}" if self.ca_bundle else "default CAs")
            if self.client_cert:
                parts.append(f"client certificate {self.client_cert}")
        return ", ".join(parts)


def policy_of(config: RunConfig) -> ConnectionPolicy:
    """The run's connection policy, from its configuration."""
    return ConnectionPolicy(ca_bundle=config.ca_bundle, client_cert=config.client_cert, client_key=config.client_key,
                            client_key_password=config.client_key_password, proxy=config.proxy)


class ProxyRefused(Exception):
    """The proxy did not open a tunnel to the target."""


class TunnelHandshake:
    """`CONNECT host:port` through a proxy, without I/O: `request()` to send, then `receive()` what comes back
    until it says the tunnel is open (both senders use it, each with its own I/O)."""

    def __init__(self, host: str, port: int, proxy: Proxy) -> None:
        self.authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.proxy = proxy
        self._connection = h11.Connection(h11.CLIENT)

    def request(self) -> bytes:
        headers = [("Host", self.authority), *self.proxy.authorization()]
        return self._connection.send(h11.Request(method="CONNECT", target=self.authority, headers=headers))

    def receive(self, data: bytes) -> bool:
        """True once the proxy answered 2xx (the stream is then the target's); raises ProxyRefused otherwise."""
        if not data:
            raise ProxyRefused(f"the proxy {self.proxy} closed the connection instead of opening a tunnel")
        self._connection.receive_data(data)
        while True:
            try:
                event = self._connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProxyRefused(f"the proxy {self.proxy} answered CONNECT with something not HTTP ({exc})") from None
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                if 200 <= event.status_code < 300:
                    return True
                raise ProxyRefused(f"the proxy {self.proxy} refused the tunnel to {self.authority}: "
                                   f"{event.status_code} {event.reason.decode('latin-1')}")
            raise ProxyRefused(f"the proxy {self.proxy} answered CONNECT with {type(event).__name__}")


class _ProxiedBackend(httpcore.NetworkBackend):
    """httpcore's connections, made through the proxy: a CONNECT tunnel (`tunnel`) or a plain connection to the
    proxy for absolute-form requests. httpcore's own proxy classes send CONNECT with the request's target
    extension (the suite's byte-exact path) instead of host:port, so the tunnel is opened here."""

    def __init__(self, proxy: Proxy, context: ssl.SSLContext, *, tunnel: bool) -> None:
        self._proxy = proxy
        self._context = context
        self._tunnel = tunnel
        self._direct = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        proxy = self._proxy
        stream = self._direct.connect_tcp(proxy.host, proxy.port, timeout, local_address, socket_options)
        if proxy.scheme == "https":
            stream = stream.start_tls(self._context, server_hostname=proxy.host, timeout=timeout)
        if self._tunnel:
            handshake = TunnelHandshake(host, port, proxy)
            stream.write(handshake.request(), timeout)
            try:
                while not handshake.receive(stream.read(65536, timeout)):
                    pass
            except ProxyRefused as exc:
                stream.close()
                raise httpcore.ConnectError(str(exc)) from None
        return stream

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("no unix sockets through a proxy")

    def sleep(self, seconds: float) -> None:
        self._direct.sleep(seconds)


def httpx_transport(policy: ConnectionPolicy, proxy: Proxy | None, scheme: str, limits: httpx.Limits
                    ) -> httpx.HTTPTransport:
    """httpx's transport for one route: direct, or through `proxy` (tunnelled for https, forwarded for http)."""
    context = policy.ssl_context()
    transport = httpx.HTTPTransport(verify=context, trust_env=False, limits=limits)
    if proxy is not None:
        # The pool is httpx's, with connections made by the backend above (see its docstring).
        transport._pool = httpcore.ConnectionPool(
            ssl_context=context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_ProxiedBackend(proxy, context, tunnel=scheme == "https"),
        )
    return transport


def _encrypted() -> NoReturn:
    raise ConnectionSetupError("--client-key is encrypted: set BUILD_CONFORMANCE_CLIENT_KEY_PASSWORD, or decrypt it "
                               "(openssl pkey -in KEY -out PLAIN_KEY)")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
    return str(reason or type(exc).__name__)


# What a TLS failure means for the person running the suite, by the reason OpenSSL gives (one line each).
TLS_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("certificate has expired",), "the target's certificate has expired"),
    (("certificate is not yet valid",), "the target's certificate is not valid yet (check the clocks)"),
    (("Hostname mismatch", "IP address mismatch", "doesn't match"),
     "the target's certificate does not name this host"),
    (("self-signed certificate", "self signed certificate", "unable to get local issuer certificate",
      "unable to get issuer certificate"),
     "the target's certificate is not signed by a CA the suite trusts: pass the CA with --ca-bundle"),
    (("CERTIFICATE_REQUIRED", "certificate required"),
     "the target requires a client certificate: pass --client-cert (and --client-key)"),
    (("UNKNOWN_CA", "BAD_CERTIFICATE", "bad certificate", "CERTIFICATE_UNKNOWN", "unknown ca"),
     "the target did not accept the client certificate"),
    (("HANDSHAKE_FAILURE", "handshake failure"),
     "the TLS handshake failed: the target may require a client certificate (--client-cert) or share no cipher "
     "with the suite"),
    (("WRONG_VERSION_NUMBER", "wrong version number"),
     "the target does not speak TLS there (an http:// URL, or the wrong port?)"),
    (("UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "PROTOCOL_VERSION", "protocol version"),
     "the target and the suite share no TLS version"),
)


def tls_hint(error: str) -> str | None:
    """What a transport error's TLS reason means, or None when it is not a TLS problem the suite knows."""
    for needles, hint in TLS_HINTS:
        if any(needle in error for needle in needles):
            return hint
    return None
