"""Error responses: one JSON object {error, code, request_id} for every 4xx and 5xx.

`code` is always an ErrorResponseCode value, since the official client rejects any other, and the
message is a fixed sentence: nothing the client sent (credentials above all) and nothing internal
(stack traces, paths, SQL) ever reaches it. Two clean variations (variations.py) change the body
the way production APIs do: a JSend-style envelope, and long English messages.
"""

from __future__ import annotations

from typing import Any

from .clock import formatter, now_ms
from .messages import Response, json_response, new_request_id

NOT_FOUND = "template_build_not_found"
INVALID = "invalid_request"


class ApiError(Exception):
    """A request the server refuses; `kind` tells the body faults which rejection this was."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
        kind: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.close = close
        self.kind = kind


class ResetConnection(Exception):
    """huge-body-reset: the connection is dropped with a TCP reset and no response at all."""


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "internal error", close=True)


# wordy-errors: prose that happens to use SQL's words, by status.
WORDY_MESSAGES = {
    400: "we could not accept this request: delete from the body whatever is not valid for this endpoint, "
         "set the fields to their documented types, and send it again",
    401: "we could not tell who you are: update the Authorization header and set it to Bearer followed by "
         "your API key, then send the request again",
    404: "select a different build id from your own builds; the one you sent was not found where we looked",
    405: "this method is not allowed on this path; select one of the methods listed in the Allow header "
         "from this response and send the request again",
    409: "you may not update a build that is already set to a terminal status",
    413: "the request body is larger than we accept; insert into it only the values you need and keep it "
         "under 64 KiB",
    415: "select a JSON body: set Content-Type to application/json and send the values as a JSON object",
    422: "we understood the request but cannot act on it: update the values you set and send it again",
    429: "you have too many builds in progress; wait until one of them is done, then select this definition "
         "again and start it",
}
WORDY_FALLBACK = "; if this keeps happening, update the request and set its values as the API reference describes"


# unauthorized-detail-extra-member: the 401's structured detail, a documented TemplateFailureDetail, to which
# the fault adds one undocumented member.
UNAUTHORIZED_DETAIL = {
    "code": "unauthorized",
    "message": "the API key is missing or not valid",
    "phase": "auth",
    "retryable": False,
    "suggested_action": "send Authorization: Bearer followed by a valid API key",
}


def _jsend(error: ApiError, variations: frozenset[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "http_status": error.status,
        "retryable": error.status in (429, 503),
        "timestamp": formatter(variations)(now_ms()),
    }


def render_error(
    error: ApiError, request_id: str, faults: frozenset[str], variations: frozenset[str] = frozenset()
) -> Response:
    if error.status == 401 and "non-json-401" in faults:
        return Response(401, b"Unauthorized\n", "text/plain; charset=utf-8", error.headers, error.close)
    if error.status == 405 and "plain-405-body" in faults:
        return Response(405, b"Method Not Allowed\n", "text/plain; charset=utf-8", error.headers, error.close)
    message: object = error.message
    if "wordy-errors" in variations:
        message = WORDY_MESSAGES.get(error.status, error.message + WORDY_FALLBACK)
    if error.status in (400, 422) and "nested-error-object" in faults:
        message = {"message": error.message, "code": error.code}
    body_request_id = new_request_id() if "request-id-mismatch" in faults else request_id
    payload: dict[str, Any] = {"error": message, "code": error.code, "request_id": body_request_id}
    if error.status == 401 and "unauthorized-detail-extra-member" in faults:
        payload["error_detail"] = {**UNAUTHORIZED_DETAIL, "docs_url": "https://docs.example.invalid/errors/unauthorized"}
    if "jsend-error-envelope" in variations:
        payload.update(_jsend(error, variations))
    return json_response(error.status, payload, headers=error.headers, close=error.close)
