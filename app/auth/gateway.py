"""The API gateway in front of `/v1` and `/graphql`: request ids, body size limit, bearer-key
authentication and per-plan rate limits, as one pure ASGI middleware.

Every response of either API carries `X-Request-Id` and the `X-RateLimit-*` headers. The
principal lands in `scope["state"]["principal"]`, where the REST handler and the GraphQL
context read it.

A read (GET, HEAD) whose budget is far from empty runs while its Redis check is in flight; its
response start waits for the check and becomes the 429 if the check refused it (see
`RateLimiter.check_early`). Everything else waits for its check before it runs.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import orjson

from app.auth.service import authenticate_api_key
from app.config import Settings
from app.errors import (
    AuthenticationFailed,
    DomainError,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
)
from app.logging import request_id_var
from app.metrics import Metrics
from app.ratelimit import EarlyCheck, RateLimiter, RateLimitResult

logger = logging.getLogger("syncauction.http")

Scope = dict[str, Any]
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REALM = 'Bearer realm="SyncAuction"'
# Safe methods: such a request changes nothing, so it may run while its rate-limit check is in
# flight (`RateLimiter.check_early`). GraphQL refuses mutations over GET.
_READS = frozenset({"GET", "HEAD"})


class _BodyTooLarge(PayloadTooLarge):
    """Raised from `receive` when a streamed body passes the limit. A DomainError, so the
    app's error handler answers 413 (not a logged 500) if it catches it first."""


def json_error_body(error: DomainError, *, graphql: bool) -> bytes:
    if graphql:
        return orjson.dumps(
            {
                "data": None,
                "errors": [{"message": error.message, "extensions": {"code": error.code}}],
            }
        )
    return orjson.dumps({"error": error.to_dict()})


class ApiGateway:
    def __init__(
        self, app: Any, *, settings: Settings, limiter: RateLimiter | None, metrics: Metrics
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.settings = settings
        self.limiter = limiter if settings.rate_limit_enabled else None
        self.max_body = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        incoming = headers.get("x-request-id")
        request_id = (
            incoming
            if incoming and _REQUEST_ID_RE.match(incoming)
            else f"req_{secrets.token_hex(12)}"
        )
        # Set before authentication and the rate-limit check, so that their log lines carry
        # the request's id and its duration counts them.
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            await self._gate(scope, receive, send, headers, request_id, started)
        finally:
            request_id_var.reset(token)

    async def _gate(
        self,
        scope: Scope,
        receive: Any,
        send: Any,
        headers: dict[str, str],
        request_id: str,
        started: float,
    ) -> None:
        path: str = scope["path"]
        is_graphql = path == "/graphql" or path.startswith("/graphql/")
        if not (is_graphql or path == "/v1" or path.startswith("/v1/")):
            await self._with_request_id(scope, receive, send, request_id, started, [])
            return

        extra_headers: list[tuple[bytes, bytes]] = []
        state = scope.setdefault("state", {})
        principal = None
        error: DomainError | None = None
        www_authenticate: str | None = None

        needs_auth = not (
            path == "/v1/openapi.json" or (is_graphql and _is_ide_request(scope, headers))
        )
        authorization = headers.get("authorization")
        if needs_auth:
            try:
                if len(headers) < len(scope["headers"]) and _repeated(scope, b"authorization"):
                    # A proxy and this server could each pick a different one.
                    raise AuthenticationFailed(
                        "Send one Authorization header, not several.", code="invalid_api_key"
                    )
                principal = await self._authenticate(authorization)
            except AuthenticationFailed as exc:
                error = exc
                www_authenticate = (
                    REALM if authorization is None else f'{REALM}, error="invalid_token"'
                )
            except DomainError as exc:  # e.g. a test key of a plan without sandbox
                error = exc
            except Exception:
                logger.exception("authentication backend unavailable")
                error = ServiceUnavailable(
                    "Authentication is temporarily unavailable; retry shortly.",
                    retry_after=5,
                )
        state["principal"] = principal

        early: EarlyCheck | None = None
        if self.limiter is not None:
            if principal is not None:
                key, limit = principal.budget_key, principal.rate_limit
                if scope["method"] in _READS:
                    early = self.limiter.check_early(key, limit)
            else:
                key, limit = f"ip:{_client_ip(scope)}", self.settings.unauthenticated_rate_limit
            if early is None:
                try:
                    result = await self.limiter.hit(key, limit)
                except Exception:
                    _limiter_failed()
                    result = None
                if result is not None:
                    extra_headers += result.headers()
                if result is not None and not result.allowed:
                    # An exhausted per-IP budget answers 429 even to failed authentication;
                    # otherwise key guessing would never be limited.
                    www_authenticate = None
                    error = _rate_limited(result)

        if error is None:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                error = PayloadTooLarge(
                    f"Request bodies are limited to {self.max_body} bytes.",
                    code="payload_too_large",
                )

        if error is not None and www_authenticate:
            extra_headers.append((b"www-authenticate", www_authenticate.encode()))
        # With an error, an early check (a read with a declared body over the limit) still
        # lands: its answer decides between the error and a 429, as a waiting check would have.
        await self._with_request_id(
            scope,
            receive,
            send,
            request_id,
            started,
            extra_headers,
            error=error,
            graphql=is_graphql,
            early=early,
        )

    async def _authenticate(self, authorization: str | None):  # type: ignore[no-untyped-def]
        if not authorization:
            raise AuthenticationFailed(
                "No API key provided. Send `Authorization: Bearer <key>`.", code="missing_api_key"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(
                "Malformed Authorization header; expected `Bearer <key>`.", code="invalid_api_key"
            )
        return await authenticate_api_key(token.strip())

    async def _with_request_id(
        self,
        scope: Scope,
        receive: Any,
        send: Any,
        request_id: str,
        started: float,
        extra_headers: list[tuple[bytes, bytes]],
        *,
        error: DomainError | None = None,
        graphql: bool = False,
        early: EarlyCheck | None = None,
    ) -> None:
        scope.setdefault("state", {})["request_id"] = request_id
        extra_headers = [*extra_headers, (b"x-request-id", request_id.encode())]
        status_holder = {"status": 500, "started": False}

        async def forward(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                names = {name for name, _ in extra_headers}
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in names
                ] + extra_headers
            await send(message)

        refused = False  # an early check said no: the handler's response is dropped

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal early, refused
            if refused:
                return
            if early is not None and message["type"] == "http.response.start":
                # The read went ahead of its rate-limit check; its answer waits for the check.
                check, early = early, None
                result = await _settle(check)
                if result is not None:
                    extra_headers.extend(result.headers())
                    if not result.allowed:
                        refused = True
                        await _send_error(forward, _rate_limited(result), graphql=graphql)
                        return
            await forward(message)

        received = 0

        async def receive_wrapper() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(f"Request bodies are limited to {self.max_body} bytes.")
            return message

        try:
            if error is not None:
                await _send_error(send_wrapper, error, graphql=graphql)
            else:
                try:
                    await self.app(scope, receive_wrapper, send_wrapper)
                except _BodyTooLarge:
                    if status_holder["started"]:
                        raise
                    await _send_error(
                        send_wrapper,
                        PayloadTooLarge(f"Request bodies are limited to {self.max_body} bytes."),
                        graphql=graphql,
                    )
        finally:
            if early is not None:  # no response was started: the check still has to land
                await _settle(early)
            elapsed = time.perf_counter() - started
            self.metrics.observe(
                scope["method"],
                scope["path"],
                status_holder["status"],
                elapsed,
                scope.get("route"),
            )
            if logger.isEnabledFor(logging.INFO):  # the access line; production runs at INFO
                logger.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status_holder["status"],
                    extra={
                        "status": status_holder["status"],
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )


def _rate_limited(result: RateLimitResult) -> RateLimited:
    return RateLimited(
        f"Rate limit of {result.limit} requests per minute exceeded; retry in "
        f"{result.retry_after} s.",
        retry_after=result.retry_after,
    )


# While the limiter's store is down every request fails its check: one warning (with the
# cause) per this many seconds, counting the requests let through since the last one.
LIMITER_WARNING_EVERY = 30.0
_limiter_warning = {"at": float("-inf"), "since": 0}


def _limiter_failed() -> None:
    # Fail open: an unreachable limiter store must not take the API down with it.
    now = time.monotonic()
    _limiter_warning["since"] += 1
    if now - _limiter_warning["at"] < LIMITER_WARNING_EVERY:
        return
    logger.warning(
        "rate limiter unavailable; %d request(s) let through without a check since the last "
        "such warning",
        _limiter_warning["since"],
        exc_info=True,
    )
    _limiter_warning.update(at=now, since=0)


async def _settle(early: EarlyCheck) -> RateLimitResult | None:
    try:
        return await early.result()
    except Exception:
        _limiter_failed()
        return None


async def _send_error(send: Any, error: DomainError, *, graphql: bool) -> None:
    body = json_error_body(error, graphql=graphql)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(error, (RateLimited, ServiceUnavailable)):
        headers.append((b"retry-after", str(error.retry_after).encode()))
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _repeated(scope: Scope, name: bytes) -> bool:
    return sum(1 for key, _ in scope["headers"] if key.lower() == name) > 1


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _is_ide_request(scope: Scope, headers: dict[str, str]) -> bool:
    """The GraphiQL page itself (a browser GET for HTML) needs no key; queries do."""
    return (
        scope["method"] == "GET"
        and "text/html" in headers.get("accept", "")
        and not scope.get("query_string")
    )
