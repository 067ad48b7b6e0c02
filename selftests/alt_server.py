"""A second, independent conformant implementation of `POST /v1/templates/builds/{build_id}/cancel`.

It exists to keep the conformance suite honest about false alarms: it follows every requirement of
the requirement catalogue (MUST and SHOULD) while deliberately making *different* legitimate choices
from a typical implementation, so a suite check tuned to one server's incidental behaviour fails here.

Deliberate choices (each one allowed by the requirements and the client contract):

- the API lives under `/api/v2` and the control hooks under `/internal/test-hooks/v1`;
- build ids are UUID4 strings, template ids `tpl-<n>`; percent-encoded unreserved characters in the
  id segment are decoded (RFC 3986 §2.3), ids of an impossible syntax get 400, unknown ids 404;
- cancellation is synchronous: a waiting or building build is `cancelled` in the cancel response;
- error codes from the documented families: 404 `not_found`, rejected bodies 422
  `invalid_request`, non-JSON media types 415, other methods on the cancel path 404 (not 405);
- timestamps with microseconds and a `+00:00` offset; undocumented extra fields (`region`,
  `queue_position`, `x_meta`) in builds, log entries and error bodies, never null;
- bodies up to 2 MiB are accepted (larger ones are drained and answered 413);
- log offsets start at 100 and step by 10; `next_offset` is the last offset + 1;
- the control API answers 200 `{"build_id"}` on create and 409 when asked to advance a terminal build.

**Production mode** (`production_seed=`, `--production-seed`): the server behaves like a deployment
behind a production stack, as the catalogue's "Production HTTP is legitimate" and "What unchanged
means" allow, every choice drawn from the seed (see `Production` and `TRAITS`): compressed
responses, `Connection: close`, chunked bodies, transient 503/429 on any call, random undocumented
fields at every level, varied id shapes, cancellations that take seconds while the executor logs its
progress, JSend-style error envelopes and wordy error messages. Other methods on the cancel path
get 405 with `Allow: POST` there, as a production router answers. `production_traits=` switches on
only some of the traits, to find which one a suite check trips over.

Standard library only (brotli and zstandard compression when those modules happen to be installed).
`start_alt_server()` runs it on loopback in a background thread.
"""

from __future__ import annotations

import argparse
import base64
import copy
import gzip
import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
import ssl
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

API_PREFIX = "/api/v2"
CONTROL_PREFIX = "/internal/test-hooks/v1"
MAX_BODY = 2 * 1024 * 1024  # accepted request body size
DRAIN_LIMIT = 64 * 1024 * 1024  # larger bodies are read and discarded up to this, then the connection closes
OFFSET_START, OFFSET_STEP = 100, 10
STATUSES = ("waiting", "building", "ready", "error", "cancelled")
TERMINAL = frozenset({"ready", "error", "cancelled"})
ID_SYNTAX = re.compile(r"[A-Za-z0-9._~-]{1,128}")
JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.-]+\+)?json", re.IGNORECASE)
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
REALM = 'realm="alt-build-api"'
JSON_UTF8 = "application/json; charset=utf-8"


# ------------------------------------------------------------------------------------------ the model


def stamp(moment: datetime) -> str:
    """RFC 3339 with microseconds and a numeric offset: 2024-05-01T10:00:00.123456+00:00."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Tenant:
    token: str
    principal: str
    namespace: str


@dataclass
class Pending:
    """A cancellation the executor is still carrying out: a progress tick every `tick` until `due`."""

    due: datetime
    tick: timedelta
    next_tick: datetime
    messages: list[str]


@dataclass
class Build:
    tenant: Tenant
    fields: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)
    pending: Pending | None = None

    def log(self, moment: datetime, kind: str, level: str, message: str, **extra: Any) -> None:
        offset = OFFSET_START + OFFSET_STEP * len(self.entries)
        self.entries.append({
            "build_id": self.fields["build_id"],
            "template_id": self.fields["template_id"],
            "offset": offset,
            "timestamp": stamp(moment),
            "kind": kind,
            "level": level,
            "message": message,
            **extra,
            "x_meta": {"sequence": len(self.entries) + 1, "source": "alt-scheduler"},
        })

    @property
    def next_offset(self) -> int:
        return self.entries[-1]["offset"] + 1 if self.entries else OFFSET_START

    def snapshot(self) -> dict[str, Any]:
        """A copy the caller may render outside the store's lock."""
        return copy.deepcopy({"build": self.fields, "entries": self.entries, "next_offset": self.next_offset})


class Store:
    """Every build in memory; one lock makes each operation atomic (first cancel wins)."""

    def __init__(self, tenants: tuple[Tenant, ...], production: Production | None = None) -> None:
        self.tenants = tenants
        self.production = production
        self._lock = threading.Lock()
        self._builds: dict[str, Build] = {}
        self._template_numbers = itertools.count(1)
        self._last = datetime.now(UTC)

    def _now(self) -> datetime:
        """A clock that never goes backwards, so ordering holds even across a wall-clock step."""
        self._last = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        return self._last

    def _owned(self, tenant: Tenant, build_id: str) -> Build | None:
        build = self._builds.get(build_id)
        if build is None or build.tenant is not tenant:
            return None
        # A pending cancellation progresses with time, whoever looks: bring it up to now first.
        _catch_up(build, self._now())
        return build

    def create(self, tenant: Tenant, status: str) -> str:
        with self._lock:
            now = self._now()
            number = next(self._template_numbers)
            created = now - timedelta(seconds=90)
            name = f"alt-image-{number}"
            fields: dict[str, Any] = {
                "build_id": self.production.build_id() if self.production else str(uuid.uuid4()),
                "template_id": f"tpl-{number}",
                "name": name,
                "tags": ["latest", f"r{number}"],
                "status": "waiting",
                "build_backend": "buildkit",
                "source_type": "dockerfile",
                "canonical_ref": f"{tenant.namespace}/{name}",
                "namespace_slug": tenant.namespace,
                "visibility": "private",
                "created_at": stamp(created),
                "updated_at": stamp(created),
                "queued_at": stamp(created),
                "triggered_by": "api",
                "source_digest": "sha256:" + secrets.token_hex(32),
                "dockerfile_digest": "sha256:" + secrets.token_hex(32),
                "build_config": {"vcpus": 2, "memory_mib": 2048, "internet_access": False, "disk_mb": 4096},
                "region": "alt-north-1",
                "queue_position": number % 7 + 1,
                "x_meta": {"scheduler": "alt", "shard": number % 4},
            }
            build = Build(tenant, fields)
            build.log(created, "message", "info", "build queued", phase="preparing")
            if status == "cancelled":
                _cancel(build, created + timedelta(seconds=20), "operator:pre-run", "cancelled before the run")
            elif status != "waiting":
                _start(build, created + timedelta(seconds=30))
                if status == "ready":
                    _finish_ready(build, created + timedelta(seconds=80))
                elif status == "error":
                    _fail(build, created + timedelta(seconds=75))
            self._builds[fields["build_id"]] = build
            return str(fields["build_id"])

    def view(self, tenant: Tenant, build_id: str) -> dict[str, Any] | None:
        with self._lock:
            build = self._owned(tenant, build_id)
            return None if build is None else build.snapshot()

    def cancel(self, tenant: Tenant, build_id: str, reason: str | None) -> dict[str, Any] | None:
        with self._lock:
            build = self._owned(tenant, build_id)
            if build is None:
                return None
            # Repeats (pending or done) and terminal builds: a no-op.
            if build.fields["status"] not in TERMINAL and "cancel_requested_at" not in build.fields:
                self._first_cancel(build, tenant, reason)
            return build.snapshot()

    def _first_cancel(self, build: Build, tenant: Tenant, reason: str | None) -> None:
        moment = self._now()
        delay = self.production.cancel_delay(build.fields["status"]) if self.production else 0.0
        if delay <= 0:
            _cancel(build, moment, tenant.principal, reason)
            return
        # The executor stops the build in the background; the response shows the request, not the end.
        _request_cancel(build, moment, tenant.principal, reason)
        build.log(moment, "message", "info", "cancellation requested", phase="cleanup")
        assert self.production is not None
        tick = timedelta(seconds=self.production.tick_seconds)
        build.pending = Pending(moment + timedelta(seconds=delay), tick, moment + tick,
                                self.production.progress_messages(build.fields["status"]))

    def advance(self, tenant: Tenant, build_id: str) -> dict[str, Any] | bool | None:
        """The new snapshot, None for no such build, False when the build cannot advance."""
        with self._lock:
            build = self._owned(tenant, build_id)
            if build is None:
                return None
            if build.pending is not None:  # the scheduler's step completes a pending cancellation
                build.pending = None
                _complete_cancel(build, self._now())
                return build.snapshot()
            status = build.fields["status"]
            if status in TERMINAL or "cancel_requested_at" in build.fields:
                return False
            if status == "waiting":
                _start(build, self._now())
            else:
                _finish_ready(build, self._now())
            return build.snapshot()


def _start(build: Build, moment: datetime) -> None:
    fields = build.fields
    fields.pop("queue_position", None)
    fields.update(status="building", started_at=stamp(moment), updated_at=stamp(moment))
    build.log(moment, "start", "info", "build started", phase="vm_create", attempt=1, max_attempts=3)
    build.log(moment, "message", "debug", "step 1/3: FROM base", phase="step", step_index=1, total_steps=3)


def _finish(build: Build, moment: datetime, status: str) -> None:
    fields = build.fields
    started = _parse(fields["started_at"])
    fields.update(
        status=status,
        finished_at=stamp(moment),
        duration_ms=int((moment - started) / timedelta(milliseconds=1)),
        updated_at=stamp(moment),
    )


def _finish_ready(build: Build, moment: datetime) -> None:
    fields = build.fields
    build.log(moment, "cache", "info", "layer cache hit", phase="cache", cache_kind="layer", cache_status="hit",
              cache_subject="sha256:" + secrets.token_hex(8))
    _finish(build, moment, "ready")
    fields.update(
        promotability={"status": "promotable", "promotable": True},
        artifact_availability={"status": "available"},
        artifact_ids=[f"art-{secrets.token_hex(6)}"],
        retention_expires_at=stamp(moment + timedelta(days=30)),
        cache_summary={"layer_hits": 1, "layer_misses": 2, "final_artifact_stores": 1},
        runtime_defaults={
            "start_cmd": "/srv/run",
            "default_user": "app",
            "readiness": {"kind": "http", "port": 8080, "path": "/healthz", "timeout_secs": 20},
        },
    )
    result = {
        "id": fields["template_id"],
        "name": fields["name"],
        "description": "built by the alternative server",
        "builtin": False,
        "canonical_ref": fields["canonical_ref"],
        "namespace_slug": fields["namespace_slug"],
        "visibility": "private",
        "tags": list(fields["tags"]),
    }
    build.log(moment, "end", "info", "build finished", phase="finalize", result=result)


def _fail(build: Build, moment: datetime) -> None:
    detail: dict[str, Any] = {
        "code": "build_error",
        "message": "step 2/3 exited with status 2",
        "phase": "build_step",
        "retryable": False,
        "suggested_action": "fix the failing build step and retry",
        "step_index": 2,
    }
    build.log(moment, "error", "error", detail["message"], phase="step", step_index=2, total_steps=3,
              error_detail=dict(detail))
    _finish(build, moment, "error")
    build.fields.update(
        error=detail["message"],
        error_detail=detail,
        failure_phase="build_step",
        promotability={"status": "not_ready", "promotable": False, "reason": "the build failed"},
        artifact_availability={"status": "failed"},
    )


def _cancel(build: Build, moment: datetime, by: str, reason: str | None) -> None:
    _request_cancel(build, moment, by, reason)
    _complete_cancel(build, moment)


def _request_cancel(build: Build, moment: datetime, by: str, reason: str | None) -> None:
    """The facts of the first effective cancel: who, when, why."""
    fields = build.fields
    fields.pop("queue_position", None)
    fields.update(cancel_requested_at=stamp(moment), cancel_requested_by=by, updated_at=stamp(moment))
    if reason:
        fields["cancellation_reason"] = reason


def _complete_cancel(build: Build, moment: datetime) -> None:
    """The build ends `cancelled` at `moment`, with its one `cancelled` log entry."""
    fields = build.fields
    if "started_at" in fields:
        _finish(build, moment, "cancelled")
    else:  # never started: it ends now, with a zero duration
        fields.update(status="cancelled", finished_at=stamp(moment), duration_ms=0, updated_at=stamp(moment))
    fields.update(
        promotability={"status": "unavailable", "promotable": False, "reason": "the build was cancelled"},
        artifact_availability={"status": "unavailable"},
    )
    build.log(moment, "cancelled", "warn", "build cancelled", phase="cleanup")


def _catch_up(build: Build, now: datetime) -> None:
    """Everything the executor did for a pending cancellation up to `now`: progress, then completion."""
    pending = build.pending
    if pending is None:
        return
    while pending.next_tick < pending.due and pending.next_tick <= now:
        moment = pending.next_tick
        if pending.messages:
            build.log(moment, "message", "info", pending.messages.pop(0), phase="cleanup")
        build.fields["updated_at"] = stamp(moment)
        pending.next_tick = moment + pending.tick
    if pending.due <= now:
        build.pending = None
        _complete_cancel(build, pending.due)


# ------------------------------------------------------------------------------------- production mode

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

    def error_document(self, code: str, message: str, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.wordy(message), "code": code, "request_id": request_id}
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


# ----------------------------------------------------------------------------------------- HTTP logic


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


class Invalid(Exception):
    """A request the server rejects: the status, the error code and a fixed message."""

    def __init__(self, status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


NOT_FOUND = ("not_found", "template build not found")
TRANSIENT = {503: ("capacity_exceeded", "the service is briefly unavailable"),
             429: ("rate_limit_exceeded", "too many requests")}


def error_body(code: str, message: str, request_id: str) -> bytes:
    body = {"error": message, "code": code, "request_id": request_id, "x_meta": {"server": "alt", "retryable": False}}
    return json.dumps(body).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def json_document(body: bytes, headers: Message) -> Any:
    """The body as JSON: 415 for a non-JSON media type, 422 for anything that is not JSON text."""
    content_type = headers.get("Content-Type")
    if content_type is not None:
        media, *parameters = (part.strip() for part in content_type.split(";"))
        charset = [p.split("=", 1)[1].strip('" ').lower() for p in parameters if p.lower().startswith("charset=")]
        if not JSON_MEDIA_TYPE.fullmatch(media) or any(c not in ("utf-8", "utf8") for c in charset):
            raise Invalid(415, "invalid_request", "unsupported content type: send application/json")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise Invalid(422, "invalid_request", "request body is not valid JSON") from None


def cancel_reason(body: bytes, headers: Message) -> str | None:
    """The reason of a cancel body; no body at all is a cancel without reason."""
    if not body:
        return None
    document = json_document(body, headers)
    if not isinstance(document, dict):
        raise Invalid(422, "invalid_request", "request body must be a JSON object")
    reason = document.get("reason")  # unknown members are ignored; null means "no reason"
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise Invalid(422, "invalid_request", "reason must be a string")
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape: not a Unicode string
        raise Invalid(422, "invalid_request", "reason must be valid Unicode text") from None
    return reason


def decode_id(segment: str) -> str:
    """The build id a path segment names: percent-decoded once, strictly UTF-8, of a possible syntax."""
    if not segment:
        raise Invalid(404, *NOT_FOUND)
    try:
        build_id = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(400, "invalid_request", "malformed build id") from None
    if not ID_SYNTAX.fullmatch(build_id):
        raise Invalid(400, "invalid_request", "malformed build id")
    return build_id


class App:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.production = store.production

    def encode(self, document: dict[str, Any], key: str) -> bytes:
        """A JSON body; in production mode with undocumented fields, the same ones for the same `key`."""
        if self.production is not None:
            document = self.production.garnish(document, key)
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def snapshot(self, document: dict[str, Any]) -> Reply:
        return Reply(200, self.encode(document, str(document["build"]["build_id"])))

    def error(self, code: str, message: str, request_id: str) -> bytes:
        if self.production is None:
            return error_body(code, message, request_id)
        return json.dumps(self.production.error_document(code, message, request_id)).encode("utf-8")

    def transient(self, method: str, target: str, headers: Message, body: bytes, request_id: str) -> Reply | None:
        """Production mode's 503/429, decided before anything else: such an answer has no side effect."""
        if self.production is None:
            return None
        digest = hashlib.sha256(body).hexdigest()
        credentials = hashlib.sha256("\n".join(headers.get_all("Authorization") or []).encode()).hexdigest()
        outcome = self.production.transient(f"{method} {target} {digest} {credentials}")
        if outcome is None:
            return None
        status, retry_after = outcome
        code, message = TRANSIENT[status]
        return Reply(status, self.error(code, message, request_id), (("Retry-After", retry_after),) if retry_after
                     else ())

    def authenticate(self, headers: Message) -> Tenant:
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
        found = [t for t in self.store.tenants if hmac.compare_digest(presented, t.token.encode("utf-8"))]
        if not found:
            raise failure
        return found[0]

    def handle(self, method: str, target: str, headers: Message, body: bytes, oversized: bool) -> Reply:
        if target.startswith(("http://", "https://")):  # absolute-form request target
            split = urlsplit(target)
            target = split.path + (f"?{split.query}" if split.query else "")
        path = target.split("?", 1)[0]  # query parameters never change the result
        if path.startswith(API_PREFIX + "/"):
            return self.api(method, path[len(API_PREFIX):].split("/"), headers, body, oversized)
        if path.startswith(CONTROL_PREFIX + "/"):
            return self.control(method, path[len(CONTROL_PREFIX):].split("/"), headers, body, oversized)
        raise Invalid(404, "not_found", "no such resource")

    def api(self, method: str, parts: list[str], headers: Message, body: bytes, oversized: bool) -> Reply:
        tenant = self.authenticate(headers)  # before anything about the path or the id is looked at
        if len(parts) != 6 or parts[:4] != ["", "v1", "templates", "builds"] or parts[5] != "cancel":
            raise Invalid(404, "not_found", "no such resource")
        if method != "POST":
            if self.production is not None:  # a production stack's router knows the method: 405 and Allow
                raise Invalid(405, "invalid_request", "method not allowed", (("Allow", "POST"),))
            raise Invalid(404, "not_found", "no such resource")
        build_id = decode_id(parts[4])
        if oversized:
            raise Invalid(413, "invalid_request", "request body too large")
        reason = cancel_reason(body, headers)
        snapshot = self.store.cancel(tenant, build_id, reason)
        if snapshot is None:
            raise Invalid(404, *NOT_FOUND)
        return self.snapshot(snapshot)

    def control(self, method: str, parts: list[str], headers: Message, body: bytes, oversized: bool) -> Reply:
        tenant = self.authenticate(headers)
        if oversized:
            raise Invalid(413, "invalid_request", "request body too large")
        if parts == ["", "builds"] and method == "POST":
            document = json_document(body, headers) if body else None
            status = document.get("status") if isinstance(document, dict) else None
            if status not in STATUSES:
                raise Invalid(422, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
            build_id = self.store.create(tenant, str(status))
            return Reply(200, self.encode({"build_id": build_id}, build_id))
        if len(parts) in (3, 4) and parts[:2] == ["", "builds"]:
            build_id = decode_id(parts[2])
            if len(parts) == 3 and method in ("GET", "HEAD"):
                snapshot = self.store.view(tenant, build_id)
            elif len(parts) == 4 and parts[3] == "advance" and method == "POST":
                outcome = self.store.advance(tenant, build_id)
                if outcome is False:
                    raise Invalid(409, "transition_conflict", "the build cannot advance")
                snapshot = outcome if isinstance(outcome, dict) else None
            else:
                raise Invalid(404, "not_found", "no such resource")
            if snapshot is None:
                raise Invalid(404, *NOT_FOUND)
            return self.snapshot(snapshot)
        raise Invalid(404, "not_found", "no such resource")


# ---------------------------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    app: App


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alt-build-api"
    sys_version = ""
    timeout = 30
    # Headers and body are two writes: without TCP_NODELAY the second waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server
    request_id: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        return

    def version_string(self) -> str:
        return self.server_version

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method (GET, PUT, PROPFIND, ...) is answered by the router: never a 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        app = self.server.app
        self.request_id = app.production.request_id() if app.production else "req-" + secrets.token_hex(12)
        # The request target exactly as received (http.server rewrites a leading `//` in self.path).
        words = self.requestline.split()
        target = words[1] if len(words) >= 2 else self.path
        try:
            body, oversized = self._read_body()
            reply = app.transient(self.command, target, self.headers, body, self.request_id) or app.handle(
                self.command, target, self.headers, body, oversized)
        except Invalid as exc:
            self._reply(Reply(exc.status, app.error(exc.code, exc.message, self.request_id), exc.headers))
        except Exception:  # a bug: answer without internals, never a stack trace
            self._reply(Reply(500, error_body("internal_error", "internal error", self.request_id), close=True))
        else:
            self._reply(reply)

    def _read_body(self) -> tuple[bytes, bool]:
        """The request body and whether it was too large (then it was read and discarded)."""
        encoding = self.headers.get("Transfer-Encoding")
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if encoding is not None:
            if lengths or encoding.strip().lower() != "chunked":
                self.close_connection = True
                raise Invalid(400, "invalid_request", "unsupported request framing")
            return self._read_chunked()
        if not lengths:
            return b"", False
        length_text = lengths.pop()
        if lengths or not CONTENT_LENGTH.fullmatch(length_text):
            self.close_connection = True
            raise Invalid(400, "invalid_request", "invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            if length > DRAIN_LIMIT:
                self.close_connection = True
            else:
                self._discard(length)
            return b"", True
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise Invalid(400, "invalid_request", "incomplete request body")
        return body, False

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _read_chunked(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1 << 12)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0 or not line.endswith(b"\n"):
                self.close_connection = True
                raise Invalid(400, "invalid_request", "malformed chunked body")
            if size == 0:
                while self.rfile.readline(1 << 12) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields are ignored
                break
            total += size
            if total > DRAIN_LIMIT:
                self.close_connection = True
                return b"", True
            if total > MAX_BODY:
                self._discard(size)
                parts.clear()
            else:
                parts.append(self.rfile.read(size))
            self.rfile.readline(1 << 12)  # the CRLF after the chunk data
        return (b"", True) if total > MAX_BODY else (b"".join(parts), False)

    def _reply(self, reply: Reply, shaped: bool = True) -> None:
        production = self.server.app.production if shaped else None
        shape = production.shape(len(reply.body), self.headers.get("Accept-Encoding")) if production else Shape()
        body = ENCODERS[shape.encoding](reply.body) if shape.encoding else reply.body
        plain = production is not None and not production.on("charset")
        headers = [("Content-Type", "application/json" if plain else JSON_UTF8), ("Cache-Control", "no-store")]
        if shape.encoding:
            headers += [("Content-Encoding", shape.encoding), ("Vary", "Accept-Encoding")]
        # Chunked framing needs an HTTP/1.1 peer, and a HEAD answer carries no body to frame.
        chunked = shape.chunked and self.request_version == "HTTP/1.1" and self.command != "HEAD"
        headers.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body))))
        headers += [("x-request-id", self.request_id), *reply.headers]
        if reply.close or shape.close:
            self.close_connection = True
        self.send_response(reply.status)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            self._write_chunked(body, shape.chunk_size)
        else:
            self.wfile.write(body)

    def _write_chunked(self, body: bytes, size: int) -> None:
        # Framed in small chunks but written at once: one small write per chunk would stall on Nagle's algorithm.
        pieces = (body[start:start + size] for start in range(0, len(body), size))
        frames = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces]
        self.wfile.write(b"".join([*frames, b"0\r\n\r\n"]))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own rejections (bad request line, 414, 431, 505) as JSON 4xx error objects."""
        self.request_id = "req-" + secrets.token_hex(12)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a request line http.server gave up on: answer with a status line
            self.request_version = "HTTP/1.0"
        status = code if 400 <= code < 500 else 400
        # A request http.server could not parse gets a plain answer: nothing about it is trustworthy.
        self._reply(Reply(status, error_body("invalid_request", "malformed request", self.request_id)), shaped=False)


# ------------------------------------------------------------------------------------------- lifecycle


@dataclass
class AltServer:
    base_url: str
    control_url: str
    tokens: tuple[str, str]
    httpd: _Server
    thread: threading.Thread
    production: Production | None = None

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> AltServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_alt_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    production_seed: int | None = None,
    production_traits: Iterable[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AltServer:
    """The server on `host:port` (0: any free port); `production_seed` switches production mode on
    with every trait of `TRAITS`, or only `production_traits`; `ssl_context` serves HTTPS."""
    if production_traits is not None and production_seed is None:
        raise ValueError("production_traits needs a production_seed")
    production = Production(production_seed, production_traits) if production_seed is not None else None
    tenants = tuple(
        Tenant(secrets.token_urlsafe(48), f"principal:{secrets.token_hex(4)}", f"ns-{name}-{secrets.token_hex(3)}")
        for name in ("north", "south")
    )
    httpd = _Server((host, port), _Handler)
    httpd.app = App(Store(tenants, production))
    if ssl_context is not None:
        # Handshakes on the connection's own thread (its first read): a failing client cannot stall accept().
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, name="alt-build-server", daemon=True)
    thread.start()
    origin = f"{'https' if ssl_context else 'http'}://{host}:{httpd.server_address[1]}"
    return AltServer(origin + API_PREFIX, origin + CONTROL_PREFIX, (tenants[0].token, tenants[1].token), httpd,
                     thread, production)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The alternative conformant server of the cancel endpoint.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--production-seed", type=lambda text: int(text, 0), default=None,
                        help="behave like a production deployment, every choice drawn from this seed")
    parser.add_argument("--production-traits", default=None,
                        help=f"comma-separated subset of the production traits: {', '.join(TRAITS)}")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _arguments()
    traits = arguments.production_traits.split(",") if arguments.production_traits is not None else None
    server = start_alt_server(arguments.host, arguments.port, production_seed=arguments.production_seed,
                              production_traits=traits)
    print(f"BUILD_CONFORMANCE_BASE_URL={server.base_url}")
    print(f"BUILD_CONFORMANCE_CONTROL_URL={server.control_url}")
    print(f"BUILD_CONFORMANCE_TOKEN={server.tokens[0]}")
    print(f"BUILD_CONFORMANCE_OTHER_TOKEN={server.tokens[1]}")
    if server.production is not None:
        print(f"# production seed {server.production.seed}: {server.production.describe()}", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()
