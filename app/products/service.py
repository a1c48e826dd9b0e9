"""Products: the merchant's view of auction-house lots."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from tortoise.router import router

from app.auth.principal import Principal
from app.errors import Conflict, InvalidInput, NotFound
from app.events.service import atomic, emit
from app.events.types import EventType
from app.ids import is_valid_id, new_id
from app.money import Money
from app.pagination import Page, PageParams, paginate
from app.partial import not_null, without_null
from app.pricing.core import LotFacts, price_lot
from app.pricing.service import tenant_pricing
from app.products.models import Product, ProductStatus
from app.sqltext import is_postgres
from app.sync.diff import listing_hash
from app.tenancy import get_owned, owned

if TYPE_CHECKING:
    from app.sync.upsert import ProductRow

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class ProductFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ProductStatus | None = Field(default=None, description="Only this status.")
    metal: str | None = Field(default=None, max_length=20, description="e.g. `Silver`, `Gold`.")
    service: str | None = Field(default=None, max_length=20, description="`PCGS`, `NGC`, …")
    grade: str | None = Field(default=None, max_length=20, description="e.g. `MS65`.")
    ha_lot: str | None = Field(default=None, max_length=40, description="Auction-house lot number.")
    search: str | None = Field(
        default=None, min_length=1, max_length=100, description="Title contains (any case)."
    )


# The statuses a merchant may set (`sold` is the sync's), as the API documents them.
MerchantStatus = Annotated[
    ProductStatus,
    WithJsonSchema(
        {"type": "string", "enum": [s.value for s in ProductStatus if s is not ProductStatus.SOLD]}
    ),
]


_PRODUCT_NOT_NULL = ("title", "description", "status", "tags")


class ProductChanges(BaseModel):
    """Fields a merchant may change. A `price` locks the price against syncs; `null` releases
    the lock (the next sync prices the product with the rules again)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=without_null(*_PRODUCT_NOT_NULL))

    title: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
        | None
    ) = None
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    price: Money | None = None
    status: MerchantStatus | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None

    @field_validator("status")
    @classmethod
    def _merchant_status(cls, value: ProductStatus | None) -> ProductStatus | None:
        if value is ProductStatus.SOLD:
            raise ValueError("`sold` is set by the sync when a lot sells")
        return value

    _not_null = not_null(*_PRODUCT_NOT_NULL)


class LotInput(BaseModel):
    """A lot as the auction house describes it (the sync engine's input)."""

    model_config = ConfigDict(extra="forbid")

    ha_lot: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{1,40}$")]
    title: str
    cost: Money
    price: Money
    description: str = ""
    metal: str | None = None
    grade: str | None = None
    service: str | None = None
    year: int | None = None
    mint: str | None = None
    denomination: str | None = None
    images: list[str] = Field(default_factory=list)


async def list_products(
    actor: Principal, *, page: PageParams, filters: ProductFilters | None = None
) -> Page[Product]:
    """The caller's products, newest first."""
    actor.require("products:read")
    query = owned(Product, actor)
    if filters is not None:
        for name in ("status", "metal", "service", "grade", "ha_lot"):
            value = getattr(filters, name)
            if value is not None:
                query = query.filter(**{name: value})
        if filters.search:
            query = query.filter(title__icontains=filters.search)
    return await paginate(query, page, prefix="prod")


async def get_product(actor: Principal, product_id: str) -> Product:
    """One product; another account's id is a 404 like a missing one."""
    actor.require("products:read")
    product = await _read(actor, product_id) if is_valid_id(product_id, "prod") else None
    if product is None:
        raise NotFound(f"No such product: {product_id}", param="id")
    return product


# `GET /v1/products/:id` is the API's hottest read, and Tortoise builds and renders a fresh query
# tree on every call (~130 µs of CPU, a fifth of the whole request on PostgreSQL). So the read
# `_load` would run is rendered once per dialect and environment, with placeholder values, and
# then executed through the ORM's own executor with the real values: the same SQL, and rows
# become models exactly as `QuerySet` makes them.
_ACCOUNT_SLOT, _PRODUCT_SLOT = "\x00account", "\x00product"
_read_templates: dict[tuple[str, str], tuple[str, list[Any], int, int]] = {}


async def _read(actor: Principal, product_id: str) -> Product | None:
    db = router.db_for_read(Product) or Product._meta.db
    key = (db.capabilities.dialect, str(actor.environment))
    template = _read_templates.get(key)
    if template is None:
        query: Any = (
            Product.filter(account_id=_ACCOUNT_SLOT, environment=actor.environment)
            .filter(id=_PRODUCT_SLOT)
            .using_db(db)
            .first()
        )
        query.sql()  # builds `query.query`
        sql, values = query.query.get_parameterized_sql()
        template = (sql, values, values.index(_ACCOUNT_SLOT), values.index(_PRODUCT_SLOT))
        _read_templates[key] = template
    sql, values, account_at, product_at = template
    values = list(values)
    values[account_at], values[product_at] = actor.account_id, product_id
    if is_postgres(db):
        # asyncpg directly on the ORM's connection (the transaction's, inside one): the
        # executor would add a wrapper per call, an upper-cased copy of the SQL and a list.
        async with db.acquire_connection() as connection:
            row = await connection.fetchrow(sql, *values)
        return None if row is None else Product._init_from_db(**row)
    rows = await db.executor_class(model=Product, db=db).execute_select(sql, values)
    return rows[0] if rows else None


async def update_product(actor: Principal, product_id: str, *, changes: ProductChanges) -> Product:
    """Apply a merchant's edits; emits `product.updated` when anything changed."""
    actor.require("products:write")
    provided = changes.model_dump(exclude_unset=True)
    async with atomic() as tx:
        product = await get_owned(
            Product, actor, product_id, prefix="prod", noun="product", lock=tx.connection
        )
        if "status" in provided and product.status == ProductStatus.SOLD:
            raise Conflict(
                "The lot has sold at the auction house; its status cannot change.",
                code="product_sold",
                param="status",
            )
        changed: list[str] = []
        for name in ("title", "description", "status", "tags"):
            if name in provided and getattr(product, name) != provided[name]:
                setattr(product, name, provided[name])
                changed.append(name)
        if "price" in provided:
            price = provided["price"]
            if price is None:
                if product.manual_price is not None:
                    product.manual_price = None
                    changed.append("manual_price")
                    # Released: the rules price it again, now (and stores get it next sync).
                    rules, default = await tenant_pricing(actor.account_id, actor.environment)
                    ruled = price_lot(LotFacts.of(product), rules, default=default).price
                    if ruled != product.price:
                        product.price = ruled
                        product.margin = ruled - Decimal(product.cost)
                        changed += ["price", "margin"]
            else:
                price = Decimal(price).quantize(Decimal("0.01")) + 0  # `+ 0` turns -0.00 into 0.00
                if product.manual_price != price or product.price != price:
                    product.manual_price = price
                    product.price = price
                    product.margin = price - Decimal(product.cost)
                    changed += ["price", "manual_price", "margin"]
        if changed:
            if {"title", "description", "price"} & set(changed):
                # What stores show changed: the next sync (delta included) pushes it.
                product.listing_hash = listing_hash(
                    title=product.title,
                    description=product.description,
                    price=Decimal(product.price),
                    images=list(product.images or []),
                    sku=product.sku,
                )
                changed.append("listing_hash")
            await product.save(using_db=tx.connection, update_fields=[*set(changed), "updated_at"])
            await emit(
                tx,
                account_id=actor.account_id,
                environment=actor.environment,
                type=EventType.PRODUCT_UPDATED,
                data={
                    **product_event_data(product),
                    "changed": sorted(set(changed) - {"listing_hash"}),
                },
            )
    return product


async def create_product(actor: Principal, *, lot: LotInput) -> Product:
    """Create a product from a priced lot (used by the sync engine and the demo); emits
    `product.created`. A lot already listed is a 400 `duplicate_lot`."""
    actor.require("products:write")
    async with atomic() as tx:
        exists = (
            await owned(Product, actor).using_db(tx.connection).filter(ha_lot=lot.ha_lot).exists()
        )
        if exists:
            raise InvalidInput(
                f"Lot {lot.ha_lot} is already a product.", code="duplicate_lot", param="ha_lot"
            )
        product = Product(
            id=new_id("prod"),
            account_id=actor.account_id,
            environment=actor.environment,
            sku=f"HA-{lot.ha_lot}",
            margin=lot.price - lot.cost,
            **lot.model_dump(),
        )
        product.listing_hash = listing_hash(
            title=product.title,
            description=product.description,
            price=product.price,
            images=list(product.images or []),
            sku=product.sku,
        )
        await product.save(using_db=tx.connection)
        await emit(
            tx,
            account_id=actor.account_id,
            environment=actor.environment,
            type=EventType.PRODUCT_CREATED,
            data=product_event_data(product),
        )
    return product


def product_event_data(product: Product | ProductRow) -> dict[str, Any]:
    """The documented `product.*` webhook payload `data`, of a stored product or of the row a
    sync is writing."""
    return {
        "product_id": product.id,
        "sku": product.sku,
        "ha_lot": product.ha_lot,
        "title": product.title,
        "price": float(product.price),
        "cost": float(product.cost),
        "margin": float(product.margin),
        "metal": product.metal,
        "grade": product.grade,
        "service": product.service,
        "images": list(product.images or []),
    }
