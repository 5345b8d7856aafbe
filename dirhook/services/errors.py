"""Why a request cannot be done, as the API answers it (``detail`` is the body's message)."""

from __future__ import annotations

from typing import Any, ClassVar


class RequestError(Exception):
    status: ClassVar[int] = 400

    def __init__(self, detail: Any, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class NotFound(RequestError):
    status = 404


class Conflict(RequestError):
    status = 409


class InvalidInput(RequestError):
    status = 422


class Unavailable(RequestError):
    status = 503
