"""Account resolvers."""

from __future__ import annotations

from strawberry.types import Info

from app.accounts import service
from resolvers.common import actor
from schema import types


async def me(info: Info) -> types.Account:
    principal = actor(info)
    account = await service.get_me(principal)
    return types.Account(
        id=account.id,
        name=account.name,
        plan=types.Plan(str(account.plan)),
        rate_limit=principal.rate_limit,
        environment=types.Environment(str(principal.environment)),
        created_at=account.created_at,
    )
