"""Domain errors, mapped once per edge (REST handler, GraphQL error formatter, job runner).

DomainError(code, message, param)
├── InvalidInput            400 invalid_request
│   └── PayloadTooLarge     413 invalid_request
├── AuthenticationFailed    401 authentication
├── PermissionDenied        403 permission
├── NotFound                404 not_found
├── Conflict                409 conflict
├── RateLimited             429 rate_limited
└── UpstreamError           502 server (retryable or not; for jobs and connectors)
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a client may see. `code` is stable and machine-readable."""

    status_code = 400
    error_type = "invalid_request"
    default_code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        # Extra machine-readable context (e.g. the running job of a 409), sent with the error.
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.error_type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        if self.details:
            body.update(self.details)
        return body


class InvalidInput(DomainError):
    """The request is malformed or a value is out of range."""


class PayloadTooLarge(InvalidInput):
    status_code = 413
    default_code = "payload_too_large"


class AuthenticationFailed(DomainError):
    """Missing, malformed, unknown or revoked credentials."""

    status_code = 401
    error_type = "authentication"
    default_code = "invalid_api_key"


class PermissionDenied(DomainError):
    """Authenticated, but the credentials lack a scope or the plan lacks a feature."""

    status_code = 403
    error_type = "permission"
    default_code = "insufficient_scope"


class NotFound(DomainError):
    """No such object in the caller's account and environment."""

    status_code = 404
    error_type = "not_found"
    default_code = "resource_missing"


class Conflict(DomainError):
    """The request conflicts with the current state (or a reused idempotency key)."""

    status_code = 409
    error_type = "conflict"
    default_code = "conflict"


class RateLimited(DomainError):
    """Too many requests for this account and environment (or IP, unauthenticated)."""

    status_code = 429
    error_type = "rate_limited"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A dependency (database, Redis) is unreachable; the client should retry."""

    status_code = 503
    error_type = "server"
    default_code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UpstreamError(DomainError):
    """An external system (auction house, store) failed; `retryable` tells jobs what to do."""

    status_code = 502
    error_type = "server"
    default_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: str | None = None,
    ):
        super().__init__(message, code=code)
        self.retryable = retryable
        self.retry_after = retry_after


def from_validation_error(exc: object, *, prefix: str = "") -> InvalidInput:
    """A pydantic `ValidationError` as one clear `InvalidInput` naming the first bad field."""
    errors = exc.errors(include_url=False)  # type: ignore[attr-defined]
    if not errors:
        return InvalidInput("Invalid request.")
    first = errors[0]
    parts = [*(prefix.split(".") if prefix else []), *first["loc"]]
    param = ".".join(str(part) for part in parts)
    kind = first["type"]
    if kind == "extra_forbidden":
        return InvalidInput(f"Unknown parameter: {param}.", code="unknown_parameter", param=param)
    if kind == "missing":
        return InvalidInput(
            f"Missing required parameter: {param}.", code="parameter_missing", param=param
        )
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return InvalidInput(
        f"Invalid {param}: {message}.", code="parameter_invalid", param=param or None
    )


def reject_nul(data: object, *, prefix: str = "") -> None:
    """Refuse NUL characters anywhere in client input: PostgreSQL cannot store them in text or
    JSON, so they would otherwise fail deep in the database instead of as a 400."""
    stack: list[tuple[str, object]] = [(prefix, data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidInput(
                    f"Invalid {path or 'value'}: NUL characters are not allowed.",
                    code="parameter_invalid",
                    param=path or None,
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((f"{path}.{key}" if path else str(key), key))
                stack.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
