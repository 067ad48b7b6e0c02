"""Production mode: the seeded traits of a deployment behind a production stack (see `TRAITS`).

A seed fixes a plan (shares, thresholds, encodings, id shapes, delays); one seeded stream of dice
decides each request's shape in arrival order, so the same requests get the same answers.
"""

from __future__ import annotations

import base64
import gzip
import random
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TRAITS = (
    "compression",  # gzip / deflate (br, zstd when importable) above a seeded size, when Accept-Encoding allows
    "connection-close",  # `Connection: close` on some responses, and the connection really closes
    "chunked",  # `Transfer-Encoding: chunked` instead of Content-Length on some responses
    "transient-errors",  # 503 (with or without Retry-After) and 429 on a share of requests, never 3 in a row
    "charset",  # `application/json; charset=utf-8` (off: plain `application/json`)
    "extra-fields",  # random undocumented fields at every level of every body (never inside error_detail)
    "id-shapes",  # build ids of seeded shapes (UUID, tb_ + base32, long hex, ULID, dotted, tilde)
    "slow-cancel",  # a cancel takes seconds: progress entries and a moving updated_at until `cancelled`
    "jsend-errors",  # error bodies also carry `"status": "error"`
    "wordy-errors",  # error messages in plain English that happen to say select/update/delete/from/where/set
    "strict-text",  # for some seeds, a store that refuses a reason with NUL or a lone surrogate (422, no effect)
)

# Encoders a response may use: what the standard library has, and what happens to be installed.
ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),  # mtime 0: the same bytes for the same body
    "deflate": zlib.compress,  # HTTP "deflate" is the zlib format
}
try:
    import brotli

    ENCODERS["br"] = brotli.compress
except ImportError:  # pragma: no cover - depends on the environment
    pass
try:
    import zstandard

    ENCODERS["zstd"] = lambda data: zstandard.ZstdCompressor().compress(data)  # one per call: not thread-safe
except ImportError:  # pragma: no cover - depends on the environment
    pass

ALL_ENCODINGS = ("br", "deflate", "gzip", "zstd")

# Names of undocumented fields: none is a property name anywhere in the contract's schemas.
EXTRA_NAMES = (
    "region", "zone", "trace_id", "shard", "revision", "etag", "hints", "_links", "meta", "owner_team",
    "features", "cost_estimate", "priority", "node", "audit", "annotations", "lineage", "quota",
    "schema_version", "deprecations", "sla", "metrics", "span", "x_request_context",
)
WORDS = ("north", "blue", "canary", "stable", "edge", "v2", "batch", "pool", "green", "west", "spot", "warm")
UNGARNISHED = frozenset({"error_detail", "details", "labels"})  # exact shapes or open maps: left as they are

ID_SHAPES = ("uuid", "tb-base32", "hex", "ulid", "dotted", "tilde")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

STOP_MESSAGES = (
    "stopping build containers", "releasing the build VM", "flushing the layer cache",
    "uploading partial build logs", "detaching build volumes", "revoking build credentials",
)
DEQUEUE_MESSAGES = ("removing the build from the queue", "releasing the queue slot")

# Plain-English variants of each fixed message; every one says a word a naive SQL detector knows.
WORDY = {
    "authentication required": (
        "we could not find a valid API token; select a key from your dashboard and set it in the "
        "Authorization header",
        "this request carries no credentials we accept, so nothing will update; set a bearer token from "
        "your account settings",
    ),
    "template build not found": (
        "no template build was found where the id matches one of yours; select an id from your builds",
        "we could not find the build you asked to update; it may have been removed from the history",
    ),
    "no such resource": ("there is nothing to select from at this path; check the URL and the method you set",),
    "request body is not valid JSON": (
        "we could not read the request body; to update a build, set the body to a JSON object or send none",
    ),
    "request body must be a JSON object": (
        "the body must be a JSON object; select the fields you want from the documented ones and set them",
    ),
    "reason must be a string": ("the reason must be text; please update the request and set reason to a string",),
    "reason must be valid Unicode text": (
        "the reason must be valid Unicode text; update the request where the reason is set",
    ),
    "unsupported content type: send application/json": (
        "we only read JSON bodies; set the Content-Type header to application/json and select a JSON encoder",
    ),
    "request body too large": ("the body is too large; select a shorter reason from your notes and send it again",),
    "reason must be text the store can hold": (
        "we cannot store that reason as it is: delete the NUL and lone surrogate characters from it, or set none",
    ),
    "malformed build id": (
        "this is not a build id we could have issued; select the id from the response where the build was made",
    ),
    "method not allowed": ("only POST may update a build from this path; set the method to POST",),
    "the build cannot advance": ("you may not update a build that is already set to a terminal status",),
    "the service is briefly unavailable": (
        "we could not update anything right now; please wait and select the same request from your retry queue",
    ),
    "too many requests": ("you sent too many requests; select a slower rate from your client settings",),
}
WORDY_FALLBACK = "; nothing will update, so set the request right and send it again"


@dataclass(frozen=True)
class Shape:
    """How one response goes on the wire."""

    encoding: str | None = None
    close: bool = False
    chunked: bool = False
    chunk_size: int = 4096


class Production:
    """A seed's production behaviour: a plan drawn once from the seed, and dice for every decision.

    The plan (shares, threshold, encodings, id shapes, delays) depends on the seed only. Decisions
    are drawn from one seeded stream in the order requests arrive, so the same requests in the same
    order get the same answers (ids, compression, closes, chunking, transient errors, delays).
    Extra fields are a function of the seed and of where they sit, so a build reads the same twice.
    """

    def __init__(self, seed: int, traits: Iterable[str] | None = None) -> None:
        chosen = frozenset(TRAITS if traits is None else traits)
        unknown = sorted(chosen - set(TRAITS))
        if unknown:
            raise ValueError(f"unknown production traits: {', '.join(unknown)} (known: {', '.join(TRAITS)})")
        self.seed, self.traits = seed, chosen
        plan = random.Random(f"alt-production-plan:{seed}")
        self.compress_threshold = plan.randint(64, 600)
        self.compress_share = plan.uniform(0.5, 1.0)
        # Drawn from every encoding, then narrowed to the installed ones: the rest of the plan is the
        # same for a seed whether or not brotli and zstandard are there.
        wanted = plan.sample(ALL_ENCODINGS, plan.randint(1, len(ALL_ENCODINGS)))
        self.encodings = tuple(e for e in wanted if e in ENCODERS) or ("gzip",)
        self.close_share = plan.uniform(0.05, 0.3)
        self.chunked_share = plan.uniform(0.1, 0.5)
        self.chunk_size = plan.choice((7, 64, 512, 4096))
        self.transient_share = plan.uniform(0.05, 0.10)
        self.transient_kinds = tuple(plan.sample(
            [(503, None), (503, "0"), (503, "1"), (429, "0"), (429, "1")], plan.randint(2, 5)))
        self.id_shapes = tuple(plan.sample(ID_SHAPES, plan.randint(1, 2)))
        low = plan.uniform(1.0, 2.5)
        self.building_delay = (low, plan.uniform(low + 0.3, 4.0))
        self.waiting_delay = (0.0, 0.0) if plan.random() < 0.5 else (0.1, plan.uniform(0.3, 1.0))
        self.tick_seconds = plan.uniform(0.15, 0.5)
        self.jsend_share = plan.choice((0.5, 1.0))
        # Drawn apart from the plan above, so adding the trait left every other choice of a seed as it was.
        self.strict_text = self.on("strict-text") and random.Random(f"alt-production-text:{seed}").random() < 0.5
        self._dice = random.Random(f"alt-production-dice:{seed}")
        self._lock = threading.Lock()
        self._streaks: dict[str, int] = {}

    def on(self, trait: str) -> bool:
        return trait in self.traits

    def request_id(self) -> str:
        """Drawn like every other decision, so error bodies (and their extra fields) replay too."""
        with self._lock:
            return "req-" + self._dice.randbytes(12).hex()

    def describe(self) -> str:
        """One line for a results table: what this seed chose, for the traits that are on."""
        parts = []
        if self.on("compression"):
            parts.append(f"{'/'.join(self.encodings)} >{self.compress_threshold}B {self.compress_share:.0%}")
        if self.on("connection-close"):
            parts.append(f"close {self.close_share:.0%}")
        if self.on("chunked"):
            parts.append(f"chunked {self.chunked_share:.0%}/{self.chunk_size}B")
        if self.on("transient-errors"):
            kinds = ",".join(f"{s}{'+' + ra if ra else ''}" for s, ra in self.transient_kinds)
            parts.append(f"{kinds} {self.transient_share:.0%}")
        if self.on("id-shapes"):
            parts.append("ids " + "+".join(self.id_shapes))
        if self.on("slow-cancel"):
            waiting = "at once" if not self.waiting_delay[1] else f"{self.waiting_delay[1]:.1f}s"
            parts.append(f"cancel {self.building_delay[0]:.1f}-{self.building_delay[1]:.1f}s (waiting {waiting})")
        if self.strict_text:
            parts.append("refuses NUL/lone surrogates")
        return ", ".join(parts)

    # ---------------------------------------------------------------------------- the build store

    def build_id(self) -> str:
        with self._lock:
            shape = self._dice.choice(self.id_shapes) if self.on("id-shapes") else "uuid"
            return _new_id(shape, self._dice)

    def cancel_delay(self, status: str) -> float:
        """Seconds until a first cancel of a `status` build completes (0: in the cancel response)."""
        if not self.on("slow-cancel"):
            return 0.0
        low, high = self.building_delay if status == "building" else self.waiting_delay
        with self._lock:
            return self._dice.uniform(low, high) if high else 0.0

    def progress_messages(self, status: str) -> list[str]:
        with self._lock:
            if status == "building":
                return self._dice.sample(STOP_MESSAGES, self._dice.randint(2, 4))
            return [self._dice.choice(DEQUEUE_MESSAGES)]

    # ----------------------------------------------------------------------------------- HTTP

    def transient(self, key: str) -> tuple[int, str | None] | None:
        """A 503/429 (and its Retry-After) for this request, or None; never 3 in a row for the same request."""
        if not self.on("transient-errors"):
            return None
        with self._lock:
            streak = self._streaks.pop(key, 0)
            if streak >= 2 or self._dice.random() >= self.transient_share:
                return None
            self._streaks[key] = streak + 1
            return self._dice.choice(self.transient_kinds)

    def shape(self, size: int, accept_encoding: str | None) -> Shape:
        with self._lock:
            encoding = None
            if self.on("compression") and size > self.compress_threshold and self._dice.random() < self.compress_share:
                encoding = negotiate(accept_encoding, self.encodings)
            close = self.on("connection-close") and self._dice.random() < self.close_share
            chunked = self.on("chunked") and self._dice.random() < self.chunked_share
        return Shape(encoding, close, chunked, self.chunk_size)

    # ----------------------------------------------------------------------------------- bodies

    def garnish(self, document: Any, key: str) -> Any:
        """`document` with undocumented fields in every object, the same ones for the same `key` and place."""
        if not self.on("extra-fields"):
            return document
        return self._garnished(document, key, "")

    def _garnished(self, node: Any, key: str, path: str) -> Any:
        if isinstance(node, list):
            return [self._garnished(item, key, f"{path}/{index}") for index, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out = {name: value if name in UNGARNISHED else self._garnished(value, key, f"{path}/{name}")
               for name, value in node.items()}
        place = random.Random(f"alt-production-extras:{self.seed}:{key}:{path}")
        for name in place.sample(EXTRA_NAMES, place.randint(1, 3)):
            out.setdefault(name, _extra_value(place, depth=2))
        return out

    def error_document(self, code: str, message: str, request_id: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.wordy(message), "code": code, "request_id": request_id, **extra}
        with self._lock:
            jsend = self.on("jsend-errors") and self._dice.random() < self.jsend_share
        if jsend:
            body = {"status": "error", **body}
        body["x_meta"] = {"server": "alt", "retryable": code in ("capacity_exceeded", "rate_limit_exceeded")}
        return dict(self.garnish(body, request_id))

    def wordy(self, message: str) -> str:
        if not self.on("wordy-errors"):
            return message
        with self._lock:
            variants = WORDY.get(message)
            return self._dice.choice(variants) if variants else message + WORDY_FALLBACK


def negotiate(accept_encoding: str | None, preferences: tuple[str, ...]) -> str | None:
    """The first of our `preferences` the request's Accept-Encoding allows (q > 0), if any."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        token, *parameters = (part.strip() for part in item.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if token:
            weights[token.lower()] = weight
    for encoding in preferences:
        if weights.get(encoding, weights.get("*", 0.0)) > 0:
            return encoding
    return None


def _new_id(shape: str, dice: random.Random) -> str:
    """A build id of `shape`, unreserved characters only (RFC 3986), so it is one path segment as is."""
    if shape == "tb-base32":
        return "tb_" + base64.b32encode(dice.randbytes(15)).decode("ascii").lower()
    if shape == "hex":
        return dice.randbytes(20).hex()
    if shape == "ulid":
        moment = int(datetime.now(UTC).timestamp() * 1000) << 80 | dice.getrandbits(80)
        return "".join(CROCKFORD[(moment >> shift) & 31] for shift in range(125, -1, -5))
    if shape == "dotted":
        return f"bld.{datetime.now(UTC):%Y%m%d}.{dice.randbytes(8).hex()}"
    if shape == "tilde":
        return f"{dice.randbytes(6).hex()}~{dice.randbytes(6).hex()}"
    return str(uuid.UUID(int=dice.getrandbits(128), version=4))


def _extra_value(place: random.Random, depth: int) -> Any:
    """A random JSON value of any type but null: numbers, strings, booleans, arrays and objects."""
    kinds = ("int", "float", "str", "bool", "list", "object") if depth else ("int", "float", "str", "bool")
    kind = place.choice(kinds)
    if kind == "int":
        return place.randint(-1000, 10**9)
    if kind == "float":
        return round(place.uniform(0, 1000), 3)
    if kind == "str":
        return "-".join(place.choice(WORDS) for _ in range(place.randint(1, 3)))
    if kind == "bool":
        return place.random() < 0.5
    if kind == "list":
        return [_extra_value(place, depth - 1) for _ in range(place.randint(0, 3))]
    return {name: _extra_value(place, depth - 1) for name in place.sample(EXTRA_NAMES, place.randint(1, 3))}

