"""Error responses: one JSON object {error, code, request_id} for every 4xx and 5xx.

`code` is always an ErrorResponseCode value, since the official client rejects any other, and the
message is a fixed sentence: nothing the client sent (credentials above all) and nothing internal
(stack traces, paths, SQL) ever reaches it.
"""

from __future__ import annotations

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


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "internal error", close=True)


def render_error(error: ApiError, request_id: str, faults: frozenset[str]) -> Response:
    if error.status == 401 and "non-json-401" in faults:
        return Response(401, b"Unauthorized\n", "text/plain; charset=utf-8", error.headers, error.close)
    if error.status == 405 and "plain-405-body" in faults:
        return Response(405, b"Method Not Allowed\n", "text/plain; charset=utf-8", error.headers, error.close)
    message: object = error.message
    if error.status in (400, 422) and "nested-error-object" in faults:
        message = {"message": error.message, "code": error.code}
    body_request_id = new_request_id() if "request-id-mismatch" in faults else request_id
    payload = {"error": message, "code": error.code, "request_id": body_request_id}
    return json_response(error.status, payload, headers=error.headers, close=error.close)
