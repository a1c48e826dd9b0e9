"""Product resolvers: thin adapters over `app.products.service`."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.products import service
from app.products.models import Product as ProductRow
from resolvers.common import (
    After,
    First,
    ObjectId,
    actor,
    connection,
    money,
    page_params,
    plain,
    validate,
)
from schema import types
from schema.inputs import ProductFilter, ProductUpdateInput


def to_type(row: ProductRow) -> types.Product:
    return types.Product(
        id=row.id,
        title=row.title,
        description=row.description,
        ha_lot=row.ha_lot,
        sku=row.sku,
        price=money(row.price),
        cost=money(row.cost),
        margin=money(row.margin),
        currency=row.currency,
        price_locked=row.manual_price is not None,
        metal=row.metal,
        grade=row.grade,
        service=row.service,
        year=row.year,
        mint=row.mint,
        denomination=row.denomination,
        images=list(row.images or []),
        tags=list(row.tags or []),
        status=types.ProductStatus(str(row.status)),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def products(
    info: Info,
    first: First = 25,
    after: After = None,
    filter: Annotated[
        ProductFilter | None, strawberry.argument(description="Only matching products.")
    ] = None,
) -> types.ProductConnection:
    filters = validate(service.ProductFilters, plain(filter) if filter else {}, param="filter")
    page = await service.list_products(actor(info), page=page_params(first, after), filters=filters)
    return connection(page, to_type, types.ProductConnection, types.ProductEdge)


async def product(info: Info, id: ObjectId) -> types.Product:
    return to_type(await service.get_product(actor(info), id))


async def product_update(
    info: Info,
    id: ObjectId,
    input: Annotated[ProductUpdateInput, strawberry.argument(description="The changes.")],
) -> types.Product:
    changes = validate(service.ProductChanges, plain(input))
    return to_type(await service.update_product(actor(info), id, changes=changes))
