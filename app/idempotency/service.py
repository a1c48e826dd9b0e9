"""`Idempotency-Key` on POST: the first response is stored and replayed for 24 hours; the same
key with a different request is a 409. A key whose first request is still running is a 409 too."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import orjson
from tortoise.exceptions import IntegrityError

from app import runtime
from app.auth.principal import Principal
from app.errors import Conflict, DomainError, InvalidInput
from app.idempotency.models import IdempotencyRecord

REPLAY_WINDOW = timedelta(hours=24)
ABANDONED_AFTER = timedelta(minutes=5)


def single_key(values: list[str]) -> str | None:
    """The request's `Idempotency-Key` header, if it has one. Several are refused: which one
    would the retry match?"""
    if len(values) > 1:
        raise InvalidInput("Send one Idempotency-Key header, not several.", param="Idempotency-Key")
    return values[0] if values else None


async def run_once(
    actor: Principal,
    *,
    key: str,
    method: str,
    path: str,
    body: bytes,
    query: str = "",
    run: Callable[[], Awaitable[tuple[int, bytes]]],
) -> tuple[int, bytes, bool]:
    """Run `run` once per key; returns (status, body, replayed). The request is identified by
    its method, path, query string and body (a JSON body by its content: `_canonical`)."""
    if not key or len(key) > 255:
        raise InvalidInput("Idempotency-Key must be 1–255 characters.", param="Idempotency-Key")
    target = f"{path}?{query}" if query else path
    head = f"{method} {target}\n".encode()
    fingerprint = hashlib.sha256(head + _canonical(body)).hexdigest()
    # The very same bytes are the same request too (a record may hold the hash of the bytes).
    same_bytes = hashlib.sha256(head + body).hexdigest()
    try:
        record = await IdempotencyRecord.create(
            account_id=actor.account_id,
            environment=actor.environment,
            key=key,
            method=method,
            path=path,
            request_hash=fingerprint,
        )
    except IntegrityError:
        existing = await IdempotencyRecord.get_or_none(
            account_id=actor.account_id, environment=actor.environment, key=key
        )
        if existing is None:  # purged in between: treat as new
            return (*await run(), False)
        age = datetime.now(UTC) - existing.created_at
        if age > REPLAY_WINDOW or (existing.status_code is None and age > ABANDONED_AFTER):
            # Expired, or its first request died with its process: the key is free again.
            await existing.delete()
            return await run_once(
                actor, key=key, method=method, path=path, body=body, query=query, run=run
            )
        if existing.request_hash not in (fingerprint, same_bytes):
            raise Conflict(
                "This Idempotency-Key was used with a different request.",
                code="idempotency_key_reused",
                param="Idempotency-Key",
            ) from None
        if existing.status_code is None:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed.",
                code="idempotency_in_progress",
                param="Idempotency-Key",
            ) from None
        try:
            stored = runtime.current().secret_box.open(bytes(existing.response_body or b""))
        except ValueError:  # written under another secret key: forget it, run again
            await existing.delete()
            return await run_once(
                actor, key=key, method=method, path=path, body=body, query=query, run=run
            )
        return existing.status_code, stored, True
    try:
        status, body = await run()
    except DomainError as exc:
        if exc.status_code in (409, 429) or exc.status_code >= 500:
            await record.delete()
            raise
        body = orjson.dumps({"error": exc.to_dict()})
        record.status_code, record.response_body = exc.status_code, _sealed(body)
        await record.save(update_fields=["status_code", "response_body"])
        raise
    except BaseException:
        await record.delete()
        raise
    # Encrypted at rest: a response may carry a secret shown once (a webhook signing secret).
    record.status_code, record.response_body = status, _sealed(body)
    await record.save(update_fields=["status_code", "response_body"])
    return status, body, False


def _canonical(body: bytes) -> bytes:
    """A retry that sends the same JSON with its keys in another order or other spacing is the
    same request; any other body is compared byte for byte."""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # not JSON, or nested too deep
        return body


def _sealed(body: bytes) -> bytes:
    return runtime.current().secret_box.seal(body)


async def purge_expired() -> int:
    """Forget responses older than the replay window (the hourly job calls this)."""
    cutoff = datetime.now(UTC) - REPLAY_WINDOW
    return await IdempotencyRecord.filter(created_at__lt=cutoff).delete()
