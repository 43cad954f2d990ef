"""The one error tree. Every face (CLI, HTTP server, remote client, MCP) maps through it.

Each class fixes the error ``type``, its HTTP status and the CLI exit code; an instance
carries a machine-readable ``code``, a message for people, and optionally the request
``field`` at fault and a ``recovery`` hint saying what to do next.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CheckoutError(Exception):
    type: ClassVar[str] = "internal"
    http_status: int = 500  # a class default; one instance may carry another
    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        recovery: str | None = None,
        http_status: int | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.recovery = recovery
        if http_status is not None:
            self.http_status = http_status
        # Every bad field of a refused request ({field, code, message}); the first is also
        # this error's own field, code and message.
        self.errors = errors

    def to_error_object(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.field is not None:
            obj["field"] = self.field
        if self.recovery is not None:
            obj["recovery"] = self.recovery
        if self.errors:
            obj["errors"] = self.errors
        return obj


class ValidationError(CheckoutError):
    type = "validation"
    http_status = 422
    exit_code = 4


class NotFoundError(CheckoutError):
    type = "not_found"
    http_status = 404
    exit_code = 3


class ConflictError(CheckoutError):
    type = "conflict"
    http_status = 409
    exit_code = 4


class PaymentError(CheckoutError):
    type = "payment"
    http_status = 402
    exit_code = 5


class ForbiddenError(CheckoutError):
    type = "forbidden"
    http_status = 403
    exit_code = 7


class AuthError(CheckoutError):
    type = "auth"
    http_status = 401
    exit_code = 7


class UnavailableError(CheckoutError):
    type = "unavailable"
    http_status = 503
    exit_code = 6


class UsageError(CheckoutError):
    """Bad flags or missing input where no prompt is possible. Never crosses HTTP."""

    type = "usage"
    http_status = 400
    exit_code = 2


class InternalError(CheckoutError):
    type = "internal"
    http_status = 500
    exit_code = 1


ERROR_CLASSES: dict[str, type[CheckoutError]] = {
    cls.type: cls
    for cls in (
        ValidationError,
        NotFoundError,
        ConflictError,
        PaymentError,
        ForbiddenError,
        AuthError,
        UnavailableError,
        UsageError,
        InternalError,
    )
}


def from_error_object(obj: dict[str, Any], http_status: int | None = None) -> CheckoutError:
    """Rebuild the exception an ``error_object`` stands for (the remote client's way back)."""
    cls = ERROR_CLASSES.get(str(obj.get("type")), InternalError)
    return cls(
        str(obj.get("code", "unknown")),
        str(obj.get("message", "")),
        field=obj.get("field"),
        recovery=obj.get("recovery"),
        http_status=http_status,
        errors=_problems(obj.get("errors")),
    )


def _problems(given: Any) -> list[dict[str, str]] | None:
    """A remote answer's ``errors``, kept only as the documented shape."""
    if not isinstance(given, list):
        return None
    keys = ("field", "code", "message")
    return [{k: str(item.get(k, "")) for k in keys} for item in given if isinstance(item, dict)]
