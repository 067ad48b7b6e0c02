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
- the control API answers 200 `{"build_id"}` on create and 409 when asked to advance a terminal build
  (or any build started through the public API: the scheduler alone moves those);
- a reason holding NUL is stored exactly, an escaped lone surrogate refused (422); with `strict_text=`
  (`--strict-text`) the store refuses both with 422 `invalid_request` and no effect — each one of the
  outcomes BODY-02 allows.

**Public API** (public_api.py, scheduler.py, definition.py): start a build from a definition
(`POST /v1/templates/builds`), its status (`GET /v1/templates/builds/{id}?offset=N`), a template's
history (`GET /v1/templates/refs/{ref}/builds`) and validate (`POST /v1/templates/validate`), with
the same authentication and error style as the cancel endpoint. Builds really run their definition
in real time (`RUN sleep N` takes N seconds, `RUN exit N` and `RUN false` fail the build), at most
`max_concurrent_builds` per tenant at once, the rest waiting in a FIFO queue. Its choices differ from
the reference server's on purpose: ids `tb_<ulid>`; 202 with a `Location` header; history oldest
first, in pages of 3 (at most 5, `page_size` or `limit`) with opaque signed `next_cursor` tokens, an
unknown template an empty 200; an admission delay before a queued build starts; `step_seconds` per
step; undocumented `queue_position`, `problems` and `summary` members; validation errors naming
their `field`; an empty start body is an empty definition. `AltServer.started_builds()` is the
platform's own count of what the public API started.

**Production mode** (`production_seed=`, `--production-seed`): the server behaves like a deployment
behind a production stack, as the catalogue's "Production HTTP is legitimate" and "What unchanged
means" allow, every choice drawn from the seed (see `Production` and `TRAITS`): compressed
responses, `Connection: close`, chunked bodies, transient 503/429 on any call, random undocumented
fields at every level, varied id shapes, cancellations that take seconds while the executor logs its
progress, JSend-style error envelopes and wordy error messages, and for about half the seeds the
strict text store. Other methods on the cancel path get 405 with `Allow: POST` there, as a production
router answers. `production_traits=` switches on
only some of the traits, to find which one a suite check trips over.

Standard library only (brotli and zstandard compression when those modules happen to be installed).
`start_alt_server()` runs it on loopback in a background thread (`server.py`); `python -m alt_server`
from selftests/ (or `python -m selftests.alt_server`) serves it until Ctrl-C.

One concern per module: `wire.py` HTTP framing, `app.py` routing and the cancel endpoint,
`messages.py` replies, errors and request bodies, `auth.py` tenants and tokens, `store.py` builds and
their log entries, `control.py` the test hooks, `public_api.py` the public API's endpoints,
`definition.py` build definitions (checking them, and the steps they run), `scheduler.py` the queue,
the limit and the steps in real time, `production.py` production mode, `server.py` start and stop,
`__main__.py` the command line.
"""

from .app import API_PREFIX, CONTROL_PREFIX, App
from .auth import Tenant
from .messages import ID_SYNTAX, Invalid, Reply
from .production import ENCODERS, EXTRA_NAMES, TRAITS, WORDY, Production
from .scheduler import Scheduler
from .server import ADMISSION_DELAY, STEP_SECONDS, AltServer, start_alt_server
from .store import STATUSES, TERMINAL, Store

__all__ = [
    "ADMISSION_DELAY", "API_PREFIX", "CONTROL_PREFIX", "ENCODERS", "EXTRA_NAMES", "ID_SYNTAX", "STATUSES",
    "STEP_SECONDS", "TERMINAL", "TRAITS", "WORDY", "AltServer", "App", "Invalid", "Production", "Reply",
    "Scheduler", "Store", "Tenant", "start_alt_server",
]
