"""Store resolvers: thin adapters over `app.stores.service`."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.stores import service
from app.stores.models import Store as StoreRow
from resolvers.common import (
    After,
    First,
    ObjectId,
    actor,
    connection,
    input_errors,
    money,
    page_params,
    plain,
    validate,
)
from schema import types
from schema.inputs import StoreCreateInput, StoreUpdateInput


def to_type(row: StoreRow) -> types.Store:
    settings = service.StoreSettings.model_validate(row.settings or {})
    filters = settings.filters
    return types.Store(
        id=row.id,
        name=row.name,
        platform=types.Platform(str(row.platform)),
        url=row.url,
        sync_enabled=row.sync_enabled,
        simulated=row.simulated,
        credentials_set=bool(row.credentials_encrypted),
        settings=types.StoreSettings(
            sold_lots=types.SoldLotsBehavior(settings.sold_lots),
            filters=types.StoreFilters(
                metals=filters.metals,
                services=filters.services,
                min_cost=money(filters.min_cost),
                max_cost=money(filters.max_cost),
            ),
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _store_data(input_: object) -> dict:
    data = plain(input_)
    if "credentials" in data and data["credentials"] is not None:
        data["credentials"] = {k: v for k, v in data["credentials"].items() if v is not None}
    return data


async def stores(info: Info, first: First = 25, after: After = None) -> types.StoreConnection:
    page = await service.list_stores(actor(info), page=page_params(first, after))
    return connection(page, to_type, types.StoreConnection, types.StoreEdge)


async def store(info: Info, id: ObjectId) -> types.Store:
    return to_type(await service.get_store(actor(info), id))


async def store_create(
    info: Info,
    input: Annotated[StoreCreateInput, strawberry.argument(description="The store to connect.")],
) -> types.Store:
    fields = _store_data(input)
    if fields.get("credentials", {}) is None:  # null: as if left out
        del fields["credentials"]
    data = validate(service.StoreCreate, fields)
    with input_errors(("credentials",)):
        return to_type(await service.create_store(actor(info), data=data))


async def store_update(
    info: Info,
    id: ObjectId,
    input: Annotated[StoreUpdateInput, strawberry.argument(description="The changes.")],
) -> types.Store:
    changes = validate(service.StoreChanges, _store_data(input))
    with input_errors(("credentials",)):
        return to_type(await service.update_store(actor(info), id, changes=changes))
