"""An in-process WooCommerce REST API v3, for tests and demos: `create_simulator(...)`.

Serves `/wp-json/wc/v3/products` (list, create, read, update, delete), `/products/batch` with
WooCommerce's limit on objects per call (413 above it) and its per-item errors inside the
arrays, and `/orders` (filtered by `after`, paginated with `X-WP-Total`/`X-WP-TotalPages`).
Authentication is HTTP Basic with the consumer key and secret, or the query-string fallback;
`strip_authorization=True` behaves like hosts that drop the `Authorization` header.
`app.state.store` holds the products, the orders (`add_order`) and call counters (`stats`);
`app.state.faults` makes the next responses fail (429 with `Retry-After`, 503, ...).
This module is a web edge by design: it imports Starlette.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.connectors.faults import Faults

PREFIX = "/wp-json/wc/v3"
MAX_PER_PAGE = 100
_PRICE = re.compile(r"^\d+(\.\d+)?$")
_PRODUCT_FIELDS = (
    "name",
    "sku",
    "type",
    "status",
    "regular_price",
    "description",
    "short_description",
    "manage_stock",
    "stock_quantity",
    "stock_status",
    "sold_individually",
    "images",
    "meta_data",
)


class ItemError(Exception):
    """A WordPress REST error for one object: `code`, `message` and the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status}}


@dataclass
class Stats:
    """What clients did, for tests and benchmarks."""

    requests: Counter[str] = field(default_factory=Counter)
    batch_calls: int = 0
    batch_objects: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    item_errors: int = 0
    auth_failures: int = 0
    too_large: int = 0
    faults_served: int = 0

    @property
    def written(self) -> int:
        """Objects created, updated or deleted, by any route."""
        return self.created + self.updated + self.deleted


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()


def _gmt(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat()


@dataclass
class WooStore:
    """The simulated shop: products by id, orders, and counters.

    `_ids_by_sku` indexes the products' non-empty SKUs (trashed products keep theirs, as in
    WooCommerce) so that SKU checks and look-ups stay O(1) with 100,000 products; it is kept
    up to date by `create_product`, `update_product` and `delete_product`."""

    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    next_product_id: int = 101
    next_order_id: int = 5001
    _ids_by_sku: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._ids_by_sku = {}
        for product_id, product in self.products.items():
            self._index_sku(product_id, product.get("sku"))

    # Products

    def _index_sku(self, product_id: int, sku: Any) -> None:
        if isinstance(sku, str) and sku:
            self._ids_by_sku.setdefault(sku, product_id)

    def _unindex_sku(self, product_id: int, sku: Any) -> None:
        if isinstance(sku, str) and self._ids_by_sku.get(sku) == product_id:
            del self._ids_by_sku[sku]

    def _sku_taken(self, sku: str, *, other_than: int | None = None) -> bool:
        owner = self._ids_by_sku.get(sku)
        return owner is not None and owner != other_than

    def product_by_sku(self, sku: str) -> dict[str, Any] | None:
        """The stored product (trashed ones included) with this non-empty SKU, if any."""
        product_id = self._ids_by_sku.get(sku)
        return None if product_id is None else self.products[product_id]

    def _check(self, data: dict[str, Any], *, product_id: int | None) -> None:
        if not isinstance(data, dict):
            raise ItemError("rest_invalid_param", "Invalid parameter(s): body.")
        if product_id is None:
            missing = [key for key in ("name", "regular_price") if not data.get(key)]
            if missing:
                raise ItemError("rest_missing_callback_param", f"Missing parameter(s): {missing}.")
        if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
            raise ItemError("rest_invalid_param", "Invalid parameter(s): name.")
        price = data.get("regular_price")
        if price is not None and (not isinstance(price, str) or not _PRICE.match(price)):
            raise ItemError("rest_invalid_param", "Invalid parameter(s): regular_price.")
        sku = data.get("sku")
        if sku is not None:
            if not isinstance(sku, str):
                raise ItemError("rest_invalid_param", "Invalid parameter(s): sku.")
            if sku and self._sku_taken(sku, other_than=product_id):
                raise ItemError(
                    "product_invalid_sku",
                    "Invalid or duplicated SKU.",
                )
        images = data.get("images")
        if images is not None and (
            not isinstance(images, list)
            or not all(isinstance(i, dict) and isinstance(i.get("src"), str) for i in images)
        ):
            raise ItemError("rest_invalid_param", "Invalid parameter(s): images.")
        status = data.get("stock_status")
        if status is not None and status not in ("instock", "outofstock", "onbackorder"):
            raise ItemError("rest_invalid_param", "Invalid parameter(s): stock_status.")

    @staticmethod
    def _apply(product: dict[str, Any], data: dict[str, Any]) -> None:
        for key in _PRODUCT_FIELDS:
            if key in data:
                product[key] = data[key]
        if images := data.get("images"):
            product["images"] = [
                {"id": i + 1, "src": image["src"], "name": image.get("name", "")}
                for i, image in enumerate(images)
            ]
        if product["manage_stock"] and product["stock_quantity"] is not None:
            product["stock_status"] = "instock" if product["stock_quantity"] > 0 else "outofstock"
        product["price"] = product["regular_price"]
        product["date_modified_gmt"] = _now()

    def create_product(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and store a new product; raises `ItemError` as WooCommerce would."""
        self._check(data, product_id=None)
        product_id = self.next_product_id
        self.next_product_id += 1
        product: dict[str, Any] = {
            "id": product_id,
            "name": "",
            "sku": "",
            "type": "simple",
            "status": "publish",
            "regular_price": "",
            "price": "",
            "description": "",
            "short_description": "",
            "manage_stock": False,
            "stock_quantity": None,
            "stock_status": "instock",
            "sold_individually": False,
            "images": [],
            "meta_data": [],
            "permalink": f"https://shop.example/product/{product_id}/",
            "date_created_gmt": _now(),
        }
        self._apply(product, data)
        self.products[product_id] = product
        self._index_sku(product_id, product["sku"])
        self.stats.created += 1
        return dict(product)

    def _get(self, product_id: Any) -> dict[str, Any]:
        try:
            return self.products[int(product_id)]
        except (KeyError, TypeError, ValueError):
            raise ItemError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404) from None

    def update_product(self, product_id: Any, data: dict[str, Any]) -> dict[str, Any]:
        product = self._get(product_id)
        self._check(data, product_id=product["id"])
        old_sku = product["sku"]
        try:
            self._apply(product, data)
        finally:  # `_apply` may fail half-way, after the SKU has changed
            if product["sku"] != old_sku:
                self._unindex_sku(product["id"], old_sku)
                self._index_sku(product["id"], product["sku"])
        self.stats.updated += 1
        return dict(product)

    def delete_product(self, product_id: Any, *, force: bool = True) -> dict[str, Any]:
        product = self._get(product_id)
        if force:
            del self.products[product["id"]]
            self._unindex_sku(product["id"], product["sku"])
        else:
            product["status"] = "trash"
        self.stats.deleted += 1
        return dict(product)

    # Orders

    def add_order(
        self,
        *,
        date_created: datetime | None = None,
        status: str = "processing",
        line_items: list[dict[str, Any]] | None = None,
        total: str = "0.00",
        currency: str = "USD",
        **extra: Any,
    ) -> dict[str, Any]:
        """Record an order as if a customer had placed it (timestamps are GMT)."""
        created = _gmt(date_created) if date_created is not None else _now()
        order = {
            "id": self.next_order_id,
            "status": status,
            "currency": currency,
            "total": total,
            "date_created": created,
            "date_created_gmt": created,
            "date_modified_gmt": created,
            "line_items": list(line_items or []),
            **extra,
        }
        self.next_order_id += 1
        self.orders.append(order)
        return dict(order)


def _error(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"code": code, "message": message, "data": {"status": status}},
        status_code=status,
        headers=headers,
    )


def _credentials(request: Request) -> tuple[str, str] | None:
    if not request.app.state.strip_authorization:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                key, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return ("", "")
            return (key, secret) if sep else ("", "")
    key = request.query_params.get("consumer_key")
    if key is None:
        return None
    return (key, request.query_params.get("consumer_secret", ""))


def _auth_problem(request: Request) -> Response | None:
    credentials = _credentials(request)
    app_state = request.app.state
    message: str | None = None
    if credentials is None:
        message = "Consumer key is missing."
    elif not hmac.compare_digest(credentials[0].encode(), app_state.consumer_key.encode()):
        message = "Consumer key is invalid."
    elif not hmac.compare_digest(credentials[1].encode(), app_state.consumer_secret.encode()):
        message = "Consumer secret is invalid."
    if message is None:
        return None
    app_state.store.stats.auth_failures += 1
    return _error("woocommerce_rest_authentication_error", message, 401)


def _guard(request: Request, name: str) -> Response | None:
    store: WooStore = request.app.state.store
    store.stats.requests[name] += 1
    if (problem := _auth_problem(request)) is not None:
        return problem
    faults: Faults = request.app.state.faults
    if faults.pending:
        fault = faults.pending.popleft()
        store.stats.faults_served += 1
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return _error("injected_fault", "Injected fault.", fault.status, headers)
    return None


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise ItemError("rest_invalid_json", "Invalid JSON body passed.") from None


def _page_params(request: Request) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", "10"))
    except ValueError:
        raise ItemError("rest_invalid_param", "Invalid parameter(s): page, per_page.") from None
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise ItemError("rest_invalid_param", "Invalid parameter(s): page, per_page.")
    return page, per_page


def _paginated(request: Request, items: list[dict[str, Any]]) -> Response:
    page, per_page = _page_params(request)
    total = len(items)
    pages = math.ceil(total / per_page)
    if total and page > pages:
        raise ItemError(
            "woocommerce_rest_invalid_page_number",
            "The page number requested is larger than the number of pages available.",
        )
    window = items[(page - 1) * per_page : page * per_page]
    return JSONResponse(window, headers={"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)})


async def products(request: Request) -> Response:
    if (denied := _guard(request, f"{request.method} products")) is not None:
        return denied
    store: WooStore = request.app.state.store
    try:
        if request.method == "POST":
            return JSONResponse(store.create_product(await _json_body(request)), status_code=201)
        if sku := request.query_params.get("sku"):
            found = store.product_by_sku(sku)
            items = [found] if found is not None else []
        else:
            items = sorted(store.products.values(), key=lambda p: p["id"])
        return _paginated(request, items)
    except ItemError as exc:
        return _error(exc.code, exc.message, exc.status)


async def product(request: Request) -> Response:
    if (denied := _guard(request, f"{request.method} product")) is not None:
        return denied
    store: WooStore = request.app.state.store
    product_id = request.path_params["id"]
    try:
        if request.method == "PUT":
            return JSONResponse(store.update_product(product_id, await _json_body(request)))
        if request.method == "DELETE":
            force = request.query_params.get("force", "").lower() in ("1", "true")
            return JSONResponse(store.delete_product(product_id, force=force))
        return JSONResponse(dict(store._get(product_id)))
    except ItemError as exc:
        return _error(exc.code, exc.message, exc.status)


def _item_error(exc: ItemError, item_id: Any = 0) -> dict[str, Any]:
    return {"id": item_id, "error": exc.to_json()}


async def products_batch(request: Request) -> Response:
    if (denied := _guard(request, "POST products/batch")) is not None:
        return denied
    store: WooStore = request.app.state.store
    try:
        body = await _json_body(request)
    except ItemError as exc:
        return _error(exc.code, exc.message, exc.status)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key, []), list) for key in ("create", "update", "delete")
    ):
        return _error("rest_invalid_param", "Invalid parameter(s): create, update, delete.", 400)
    create, update, delete = (body.get(key, []) for key in ("create", "update", "delete"))
    total = len(create) + len(update) + len(delete)
    limit: int = request.app.state.max_batch
    if total > limit:
        store.stats.too_large += 1
        return _error(
            "woocommerce_rest_request_entity_too_large",
            f"Unable to accept more than {limit} items for this request.",
            413,
        )
    store.stats.batch_calls += 1
    store.stats.batch_objects += total
    result: dict[str, list[dict[str, Any]]] = {}
    if create:
        result["create"] = []
        for data in create:
            try:
                result["create"].append(store.create_product(data))
            except ItemError as exc:
                store.stats.item_errors += 1
                result["create"].append(_item_error(exc))
    if update:
        result["update"] = []
        for data in update:
            item_id = data.get("id", 0) if isinstance(data, dict) else 0
            try:
                if not item_id:
                    raise ItemError("woocommerce_rest_product_invalid_id", "Invalid ID.")
                fields = {k: v for k, v in data.items() if k != "id"}
                result["update"].append(store.update_product(item_id, fields))
            except ItemError as exc:
                store.stats.item_errors += 1
                result["update"].append(_item_error(exc, item_id))
    if delete:
        result["delete"] = []
        for item_id in delete:
            try:
                result["delete"].append(store.delete_product(item_id, force=True))
            except ItemError as exc:
                store.stats.item_errors += 1
                result["delete"].append(_item_error(exc, item_id))
    return JSONResponse(result)


def _parse_after(raw: str) -> str:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ItemError("rest_invalid_param", "Invalid parameter(s): after.") from None
    return _gmt(value)


async def orders(request: Request) -> Response:
    if (denied := _guard(request, "GET orders")) is not None:
        return denied
    store: WooStore = request.app.state.store
    try:
        items = list(store.orders)
        if after := request.query_params.get("after"):
            bound = _parse_after(after)
            items = [o for o in items if o["date_created_gmt"] > bound]
        if status := request.query_params.get("status"):
            items = [o for o in items if o["status"] == status]
        descending = request.query_params.get("order", "desc").lower() != "asc"
        items.sort(key=lambda o: (o["date_created_gmt"], o["id"]), reverse=descending)
        return _paginated(request, items)
    except ItemError as exc:
        return _error(exc.code, exc.message, exc.status)


def create_simulator(
    *,
    consumer_key: str,
    consumer_secret: str,
    max_batch: int = 100,
    strip_authorization: bool = False,
) -> Starlette:
    """A Starlette app acting as one WooCommerce shop with these REST API keys."""
    app = Starlette(
        routes=[
            Route(f"{PREFIX}/products", products, methods=["GET", "POST"]),
            Route(f"{PREFIX}/products/batch", products_batch, methods=["POST"]),
            Route(f"{PREFIX}/products/{{id:int}}", product, methods=["GET", "PUT", "DELETE"]),
            Route(f"{PREFIX}/orders", orders, methods=["GET"]),
        ]
    )
    app.state.consumer_key = consumer_key
    app.state.consumer_secret = consumer_secret
    app.state.max_batch = max_batch
    app.state.strip_authorization = strip_authorization
    app.state.store = WooStore()
    app.state.faults = Faults()
    return app
