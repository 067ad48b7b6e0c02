"""CLIENT-02/03: hand a received response to the official SDK's own layer, the code SDK and CLI users run.

`nullspace.template.TemplateBuild.cancel()` sends the cancel through the SDK's API core, which maps
every status of 400 or above to an exception class chosen from the body's `code`
(`client._raise_for_response`) and checks a success body with the SDK's own validator
(`_template_build_status_snapshot_data_from_payload`); `TemplateBuild.connect()` reads the build
first with `GET …/builds/{id}?offset=0` through the same validator. No request leaves the process:
the httpx client of the SDK's API core is replaced by one on an `httpx.MockTransport` that answers
the SDK's one request with the bytes the target sent. What the SDK accepts, and which exception it
raises, is its own code's reading; nothing of it is re-implemented here.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx

from build_conformance.target.exchange import ReceivedResponse

# Never contacted: every request of the SDK is answered by the mock transport below.
SDK_BASE_URL = "http://conformance.invalid"
_SDK_API_KEY = "conformance-suite-sdk-feed"  # never on any wire: the mock transport answers
# The body handed over is already decoded and complete: these would make httpx decode or frame it again.
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
# The exception the SDK should raise per error status, and the CLI's exit code for it.
EXPECTED_EXCEPTIONS = {401: ("AuthError", 4), 404: ("NotFoundError", 3)}


def requested_build_id(target: bytes) -> str | None:
    """The build id a cancel's request target names, as the SDK would have been given it (the SDK sends the
    id percent-encoded with no safe character, so the server's once-decoded segment is the SDK's id)."""
    path = target.decode("latin-1").split("?", 1)[0]
    if not path.endswith("/cancel"):
        return None
    return unquote(path.removesuffix("/cancel").rsplit("/", 1)[-1], errors="replace")


class SdkFeedError(RuntimeError):
    """The SDK did something the feed cannot answer (a second request, another operation): a suite bug."""


@dataclass(frozen=True)
class SdkOutcome:
    """What the SDK made of one response: the snapshot it returned, or the exception it raised."""

    reached_the_wire: bool  # the SDK sent its request (False: it failed before, e.g. on the id: no verdict)
    build_id: str | None = None  # the build the snapshot the SDK returned is of (its handle's id)
    described_build_id: str | None = None  # the build the body the SDK accepted describes
    status: str | None = None  # the status the SDK reports for it
    exception: str | None = None  # class name of what the SDK raised
    code: str | None = None  # the SDK error's code (MachineError.code)
    message: str | None = None
    exit_code: int | None = None  # what `nullspace template cancel` exits with for that exception

    @property
    def raised(self) -> bool:
        return self.exception is not None

    def describe(self) -> str:
        if self.exception is None:
            return f"a snapshot of build {self.build_id!r}, status {self.status!r}"
        code = f" (code {self.code!r})" if self.code is not None else ""
        exit_code = f", CLI exit {self.exit_code}" if self.exit_code is not None else ""
        return f"{self.exception}{code}: {self.message}{exit_code}"


class _Feed:
    """SDK clients whose every request is answered with the response handed in (to the calling thread).

    Each client is used by one call at a time and then kept for the next: making one costs a TLS context with
    the CA bundle loaded (tens of milliseconds), and the suite's threads come and go with its tests.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._idle: list[Any] = []

    def _acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_client()

    def _release(self, client: Any) -> None:
        with self._lock:
            self._idle.append(client)

    def _new_client(self) -> Any:
        from nullspace.client import NullspaceClient

        client = NullspaceClient(api_key=_SDK_API_KEY, base_url=SDK_BASE_URL)
        fed = httpx.Client(base_url=client.base_url, headers={"Authorization": f"Bearer {_SDK_API_KEY}"},
                           transport=httpx.MockTransport(self._answer))
        client._client.close()  # its own (never used) connection pool
        client._client = fed
        # The API core is how TemplateBuild reaches the wire: its generated client gets the fed httpx client
        # (the same injection the SDK itself makes, `set_httpx_client`).
        client.api_core.generated_client.set_httpx_client(fed)
        if client.api_core.generated_client.get_httpx_client() is not fed:
            raise SdkFeedError("the SDK's API core does not use the injected httpx client")
        return client

    def run(self, response: ReceivedResponse, method: str, call: Any) -> tuple[bool, Any, BaseException | None]:
        """`call(client)` with `response` as the answer to its one `method` request: (sent, result, raised)."""
        self._local.pending = (method, response)
        self._local.sent = 0
        client = self._acquire()
        try:
            result = call(client)
        except SdkFeedError:
            raise
        except Exception as exc:  # what the SDK raises is exactly what CLIENT-02/03 judge
            return self._local.sent > 0, None, exc
        finally:
            self._local.pending = None
            self._release(client)
        return True, result, None

    def _answer(self, request: httpx.Request) -> httpx.Response:
        pending = getattr(self._local, "pending", None)
        if pending is None:
            raise SdkFeedError(f"the SDK sent {request.method} {request.url.path} a second time or unasked")
        method, response = pending
        if request.method != method:
            raise SdkFeedError(f"the SDK sent {request.method} {request.url.path}, not {method}")
        self._local.pending = None  # one answer per call: a retry would find none
        self._local.sent += 1
        # As bytes: httpx would refuse a non-ASCII str value (the SDK reads x-request-id alone, and only as text).
        headers = [(k.encode("utf-8"), v.encode("utf-8")) for k, v in response.headers
                   if k.lower() not in _FRAMING_HEADERS]
        return httpx.Response(status_code=response.status, headers=headers, content=response.body,
                              request=request)


_FEED = _Feed()


def warm_up() -> None:
    """Load the official client and make the first fed client, ahead of the first judged response (some seven
    hundred generated attrs classes: half a second of CPU, spent while preflight waits on the network)."""
    from build_conformance.judging import official_client

    official_client.load()
    _FEED._release(_FEED._new_client())


def _handle(client: Any, build_id: str, template_id: str | None) -> Any:
    """A connected build handle for `build_id`, as `connect()` leaves it (what it read is overwritten by
    the cancel's snapshot, except the id, which the handle keeps)."""
    from nullspace.template import TemplateBuild
    from nullspace.types import TemplateBuildStatus

    moment = datetime.now(UTC)
    return TemplateBuild(build_id=build_id, template_id=template_id or "", name="", tags=[],
                         status=TemplateBuildStatus.WAITING, created_at=moment, updated_at=moment, client=client)


def _exit_code(exc: BaseException) -> int | None:
    try:
        from nullspace._exit_codes import exit_code_for_error
    except ImportError:  # the CLI's extra (click) is not installed: the exception class is the verdict
        return None
    return exit_code_for_error(exc)


def _described_build_id(response: ReceivedResponse) -> str | None:
    try:
        body = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None
    build = body.get("build") if isinstance(body, dict) else None
    build_id = build.get("build_id") if isinstance(build, dict) else None
    return build_id if isinstance(build_id, str) else None


def _outcome(sent: bool, build: Any, exc: BaseException | None, response: ReceivedResponse) -> SdkOutcome:
    if exc is not None:
        code = getattr(exc, "code", None)
        return SdkOutcome(sent, exception=type(exc).__name__, code=code if isinstance(code, str) else None,
                          message=str(exc)[:300], exit_code=_exit_code(exc))
    status = getattr(build.status, "value", build.status)
    return SdkOutcome(sent, build_id=build.build_id, described_build_id=_described_build_id(response),
                      status=str(status))


def sdk_cancel(response: ReceivedResponse, build_id: str, template_id: str | None = None) -> SdkOutcome:
    """What `TemplateBuild.cancel()` of `build_id` makes of `response` (the answer to its POST)."""

    def cancel(client: Any) -> Any:
        return _handle(client, build_id, template_id).cancel().build

    sent, build, exc = _FEED.run(response, "POST", cancel)
    return _outcome(sent, build, exc, response)


def sdk_connect(response: ReceivedResponse, build_id: str) -> SdkOutcome:
    """What `TemplateBuild.connect(build_id)` makes of `response` (the answer to its `GET …?offset=0`).

    `connect()` makes its own client from the environment; this runs the two steps it takes with that
    client, on the fed one: the SDK's status read (`offset=0`) and its handle built from what was read.
    """
    from nullspace.template import TemplateBuild, _fetch_template_build_status_snapshot_data

    def connect(client: Any) -> Any:
        snapshot = _fetch_template_build_status_snapshot_data(client, build_id)
        return TemplateBuild._from_data(snapshot.build, client)

    sent, build, exc = _FEED.run(response, "GET", connect)
    return _outcome(sent, build, exc, response)
