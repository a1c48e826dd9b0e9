"""Tenant scoping shared by every domain service: a query only ever sees the principal's
account and environment, and an id from anywhere else is the same 404 as one that never was."""

from __future__ import annotations

from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.auth.principal import Principal
from app.errors import NotFound
from app.ids import is_valid_id

M = TypeVar("M", bound=Model)


def owned(model: type[M], actor: Principal) -> QuerySet[M]:
    """`model`'s rows in the caller's account and environment."""
    return model.filter(account_id=actor.account_id, environment=actor.environment)


async def get_owned(
    model: type[M], actor: Principal, object_id: str, *, prefix: str, noun: str, lock: Any = None
) -> M:
    """One of the caller's rows by public id, else 404 `resource_missing`. With `lock` (a
    transaction's connection) the row is read FOR UPDATE inside that transaction."""
    row = None
    if is_valid_id(object_id, prefix):
        query = owned(model, actor).filter(id=object_id)
        if lock is not None:
            query = query.using_db(lock).select_for_update()
        row = await query.first()
    if row is None:
        raise NotFound(f"No such {noun}: {object_id}", param="id")
    return row
