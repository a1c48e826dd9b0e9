"""An in-process Shopify Admin GraphQL API, for tests and demos: `create_simulator(...)`.

`POST /admin/api/2025-01/graphql.json` with `X-Shopify-Access-Token` serves a small subset of
the schema, parsed with graphql-core: the `productSet` (synchronous) and `productDelete`
mutations and the `products` and `orders` connections. Throttling works like Shopify's
calculated query cost: every operation has a `requestedQueryCost`, a leaky bucket of
`bucket_size` points refills at `restore_rate` points per second, and a request the bucket
cannot pay for gets HTTP 200 with a `THROTTLED` error and no data. Every response carries
`extensions.cost`. `app.state.shop` holds the products, orders, statistics and injected faults.
This module is a web edge by design, like the auction-house simulator.
"""

from __future__ import annotations

import hmac
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_VERSION = "2025-01"
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
PRODUCT_STATUSES = frozenset({"ACTIVE", "DRAFT", "ARCHIVED"})
MAX_FIRST = 250


@dataclass
class Stats:
    """What the shop has served: operations, throttled replies and points spent."""

    calls: int = 0
    throttled: int = 0
    points_used: float = 0.0
    faults_served: int = 0


@dataclass
class Bucket:
    """Shopify's leaky bucket of query-cost points."""

    size: float
    restore_rate: float
    clock: Callable[[], float]
    available: float = 0.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        self.available = self.size
        self.updated = self.clock()

    def refill(self) -> float:
        now = self.clock()
        self.available = min(self.size, self.available + (now - self.updated) * self.restore_rate)
        self.updated = now
        return self.available

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": self.available,
            "restoreRate": self.restore_rate,
        }


@dataclass
class ShopState:
    """The simulated shop: products by numeric id, orders, the cost bucket and the faults.

    `_numbers_by_sku` indexes the variants' SKUs by product number so that SKU look-ups stay
    O(1) with 100,000 products; `_product_set` and `_product_delete` keep it up to date
    through `index_skus` and `forget_product`."""

    bucket: Bucket
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    faults: deque[int] = field(default_factory=deque)
    _next_id: int = 1000
    _numbers_by_sku: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._numbers_by_sku = {}
        for product in self.products.values():
            self.index_skus(product)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def inject_fault(self, status: int, *, count: int = 1) -> None:
        """Answer the next `count` requests with HTTP `status` (500, 502, 503, 429...)."""
        self.faults.extend([status] * count)

    def add_order(
        self,
        *,
        name: str | None = None,
        created_at: datetime | str | None = None,
        line_items: list[dict[str, Any]] | None = None,
        total: str = "0.00",
        currency: str = "USD",
        email: str | None = None,
    ) -> dict[str, Any]:
        """Record an order as a customer would place it; returns its GraphQL shape."""
        number = self.next_id()
        if created_at is None:
            created_at = datetime.now(UTC)
        if isinstance(created_at, datetime):
            created_at = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        order = {
            "id": f"gid://shopify/Order/{number}",
            "name": name or f"#{number}",
            "createdAt": created_at,
            "email": email,
            "totalPriceSet": {"shopMoney": {"amount": total, "currencyCode": currency}},
            "lineItems": _connection(
                [
                    {
                        "sku": item.get("sku"),
                        "quantity": int(item.get("quantity", 1)),
                        "title": item.get("title", ""),
                    }
                    for item in (line_items or [])
                ],
                first=MAX_FIRST,
            ),
        }
        self.orders.append(order)
        self.orders.sort(key=lambda o: (o["createdAt"], o["id"]))
        return order

    def product_by_sku(self, sku: str) -> dict[str, Any] | None:
        number = self._numbers_by_sku.get(sku)
        return None if number is None else self.products.get(number)

    def index_skus(self, product: dict[str, Any], *, previous: Iterable[Any] = ()) -> None:
        """Record the SKUs of `product`'s variants, after dropping `previous` (its SKUs
        before its variants were replaced)."""
        self._unindex(product["_number"], previous)
        for variant in product["_variants"]:
            if isinstance(variant["sku"], str) and variant["sku"]:
                self._numbers_by_sku.setdefault(variant["sku"], product["_number"])

    def forget_product(self, product: dict[str, Any]) -> None:
        """Drop a deleted product's SKUs from the index."""
        self._unindex(product["_number"], (v["sku"] for v in product["_variants"]))

    def _unindex(self, number: int, skus: Iterable[Any]) -> None:
        for sku in skus:
            if isinstance(sku, str) and self._numbers_by_sku.get(sku) == number:
                del self._numbers_by_sku[sku]


class _Reject(Exception):
    """A request the GraphQL layer refuses as a whole (top-level `errors`)."""


def _connection(items: list[dict[str, Any]], *, first: int, offset: int = 0) -> dict[str, Any]:
    window = items[offset : offset + first]
    edges = [{"cursor": _cursor(offset + i), "node": node} for i, node in enumerate(window)]
    return {
        "edges": edges,
        "nodes": window,
        "pageInfo": {
            "hasNextPage": offset + first < len(items),
            "hasPreviousPage": offset > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _cursor(index: int) -> str:
    return f"c{index}"


def _offset(after: Any) -> int:
    if after is None:
        return 0
    if not isinstance(after, str) or not after.startswith("c") or not after[1:].isdigit():
        raise _Reject(f"Invalid cursor for current pagination sort: {after!r}")
    return int(after[1:]) + 1


def _project(value: Any, selection: SelectionSetNode | None) -> Any:
    """Keep only the selected fields (with aliases), like a GraphQL executor would."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [_project(item, selection) for item in value]
    out: dict[str, Any] = {}
    for node in selection.selections:
        if not isinstance(node, FieldNode):
            continue  # fragments are not part of the subset
        name = node.name.value
        key = node.alias.value if node.alias else name
        if name == "__typename":
            out[key] = value.get("__typename")
            continue
        out[key] = _project(value.get(name), node.selection_set)
    return out


def _args(node: FieldNode, variables: dict[str, Any]) -> dict[str, Any]:
    return {a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments}


def _first(args: dict[str, Any]) -> int:
    first = args.get("first")
    if not isinstance(first, int) or not 1 <= first <= MAX_FIRST:
        raise _Reject(f"Connection requires 'first' between 1 and {MAX_FIRST}.")
    return first


def _cost(operation: OperationDefinitionNode, variables: dict[str, Any]) -> int:
    """The requested cost: 10 + 1 per variant for `productSet`, 10 for other mutations,
    1 + `first` for a connection."""
    total = 0
    for node in operation.selection_set.selections:
        if not isinstance(node, FieldNode) or node.name.value.startswith("__"):
            continue
        args = _args(node, variables)
        if operation.operation is OperationType.MUTATION:
            total += 10
            if node.name.value == "productSet":
                product_input = args.get("input") or {}
                total += len(product_input.get("variants") or [])
        else:
            total += 1 + _first(args)
    return total


def _variant_sku(variant: dict[str, Any]) -> str | None:
    item = variant.get("inventoryItem") or {}
    sku = item.get("sku", variant.get("sku"))
    return sku if isinstance(sku, str) and sku else None


def _user_error(path: list[str], message: str, code: str) -> dict[str, Any]:
    return {"field": path, "message": message, "code": code}


def _product_set(shop: ShopState, args: dict[str, Any]) -> dict[str, Any]:
    data = args.get("input")
    if not isinstance(data, dict):
        raise _Reject("Variable $input of type ProductSetInput! was provided invalid value")
    if args.get("synchronous", True) is not True:
        raise _Reject("Only synchronous productSet is simulated.")
    errors: list[dict[str, Any]] = []
    variants = data.get("variants") or []
    product: dict[str, Any] | None = None
    if data.get("id") is not None:
        try:
            number = int(str(data["id"]).rsplit("/", 1)[-1])
        except ValueError:
            number = -1
        product = shop.products.get(number)
        if product is None:
            errors.append(_user_error(["input", "id"], "Product does not exist", "NOT_FOUND"))
    else:
        for variant in variants:
            sku = _variant_sku(variant)
            if sku and (product := shop.product_by_sku(sku)) is not None:
                break
    title = data.get("title", product["title"] if product else None)
    if not isinstance(title, str) or not title.strip():
        errors.append(_user_error(["input", "title"], "Title can't be blank", "BLANK"))
    status = data.get("status", product["status"] if product else "ACTIVE")
    if status not in PRODUCT_STATUSES:
        errors.append(_user_error(["input", "status"], "Status is invalid", "INVALID"))
    parsed: list[dict[str, Any]] = []
    for index, variant in enumerate(variants):
        try:
            price = Decimal(str(variant.get("price", "0")))
        except InvalidOperation:
            price = None
        if price is None or not price.is_finite():
            errors.append(
                _user_error(
                    ["input", "variants", str(index), "price"], "Price is invalid", "INVALID"
                )
            )
            continue
        if price < 0:
            errors.append(
                _user_error(
                    ["input", "variants", str(index), "price"],
                    "Price must be greater than or equal to 0",
                    "GREATER_THAN_OR_EQUAL_TO",
                )
            )
            continue
        sku = _variant_sku(variant)
        owner = shop.product_by_sku(sku) if sku else None
        if owner is not None and owner is not product:
            errors.append(
                _user_error(
                    ["input", "variants", str(index), "sku"], "SKU is already taken", "TAKEN"
                )
            )
            continue
        parsed.append({"sku": sku, "price": f"{price:.2f}"})
    if errors:
        return {"product": None, "userErrors": errors}
    if product is None:
        number = shop.next_id()
        product = {
            "id": f"gid://shopify/Product/{number}",
            "_number": number,
            "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "_variants": [],
            "_media": [],
        }
        shop.products[number] = product
    product["title"] = title
    product["status"] = status
    product["descriptionHtml"] = data.get("descriptionHtml", product.get("descriptionHtml", ""))
    product["handle"] = data.get("handle") or product.get("handle") or _handle(title)
    if "variants" in data:
        old = {v["sku"]: v for v in product["_variants"]}
        product["_variants"] = []
        for variant in parsed or [{"sku": None, "price": "0.00"}]:
            keep = old.get(variant["sku"])
            vid = keep["id"] if keep else f"gid://shopify/ProductVariant/{shop.next_id()}"
            product["_variants"].append({"id": vid, **variant})
        shop.index_skus(product, previous=old)
    if "files" in data:
        product["_media"] = [
            {
                "id": f"gid://shopify/MediaImage/{shop.next_id()}",
                "alt": f.get("alt") or "",
                "mediaContentType": f.get("contentType", "IMAGE"),
                "preview": {"image": {"url": f.get("originalSource")}},
            }
            for f in data.get("files") or []
        ]
    return {"product": _product_view(product), "userErrors": []}


def _handle(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


def _product_view(product: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in product.items() if not k.startswith("_")}
    view["__typename"] = "Product"
    view["variants"] = _connection(product["_variants"], first=MAX_FIRST)
    view["media"] = _connection(product["_media"], first=MAX_FIRST)
    return view


def _product_delete(shop: ShopState, args: dict[str, Any]) -> dict[str, Any]:
    gid = str((args.get("input") or {}).get("id", ""))
    try:
        number = int(gid.rsplit("/", 1)[-1])
    except ValueError:
        number = -1
    product = shop.products.pop(number, None)
    if product is None:
        return {
            "deletedProductId": None,
            "userErrors": [_user_error(["id"], "Product does not exist", "NOT_FOUND")],
        }
    shop.forget_product(product)
    return {"deletedProductId": gid, "userErrors": []}


def _search(query: Any, field_name: str) -> tuple[str, str] | None:
    """`sku:ABC` -> ("", "ABC"); `created_at:>2025-01-01T00:00:00Z` -> (">", "...")."""
    if not isinstance(query, str) or not query.strip():
        return None
    name, sep, value = query.strip().partition(":")
    if not sep or name != field_name:
        raise _Reject(f"Unsupported search query in the simulator: {query!r}")
    value = value.strip().strip("'\"")
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            return op, value[len(op) :].strip("'\"")
    return "", value


def _products(shop: ShopState, args: dict[str, Any]) -> dict[str, Any]:
    first = _first(args)
    search = _search(args.get("query"), "sku")
    if search is not None:
        found = shop.product_by_sku(search[1])
        items = [found] if found is not None else []
    else:
        items = sorted(shop.products.values(), key=lambda p: p["_number"])
    return _connection(
        [_product_view(p) for p in items], first=first, offset=_offset(args.get("after"))
    )


def _orders(shop: ShopState, args: dict[str, Any]) -> dict[str, Any]:
    first = _first(args)
    items = list(shop.orders)
    search = _search(args.get("query"), "created_at")
    if search is not None:
        op, bound = search
        when = _timestamp(bound)
        compare = {
            ">": lambda t: t > when,
            ">=": lambda t: t >= when,
            "<": lambda t: t < when,
            "<=": lambda t: t <= when,
            "": lambda t: t == when,
        }[op]
        items = [o for o in items if compare(_timestamp(o["createdAt"]))]
    return _connection(items, first=first, offset=_offset(args.get("after")))


def _timestamp(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _Reject(f"Invalid date in search query: {raw!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


RESOLVERS: dict[OperationType, dict[str, Callable[[ShopState, dict[str, Any]], Any]]] = {
    OperationType.MUTATION: {"productSet": _product_set, "productDelete": _product_delete},
    OperationType.QUERY: {"products": _products, "orders": _orders},
}


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json"
    )


async def graphql_endpoint(request: Request) -> Response:
    shop: ShopState = request.app.state.shop
    token: str = request.app.state.access_token
    given = request.headers.get("x-shopify-access-token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return JSONResponse({"errors": INVALID_TOKEN}, status_code=401)
    if shop.faults:
        status = shop.faults.popleft()
        shop.stats.faults_served += 1
        headers = {"Retry-After": "1"} if status == 429 else None
        return JSONResponse({"errors": "Injected fault"}, status_code=status, headers=headers)
    try:
        payload = await request.json()
        document = parse(payload["query"])
        variables = payload.get("variables") or {}
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        wanted = payload.get("operationName")
        if wanted:
            operations = [o for o in operations if o.name and o.name.value == wanted]
        if len(operations) != 1:
            raise _Reject("Provide exactly one operation (or operationName).")
        operation = operations[0]
        cost = _cost(operation, variables)
    except (ValueError, KeyError, TypeError, GraphQLError, _Reject) as exc:
        return _json({"errors": [{"message": str(exc) or type(exc).__name__}]})

    shop.stats.calls += 1
    bucket = shop.bucket
    bucket.refill()
    if cost > bucket.size:
        return _json(
            {
                "errors": [
                    {
                        "message": f"Query cost is {cost}, which exceeds the single query "
                        f"max cost limit ({int(bucket.size)}).",
                        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost},
                    }
                ]
            }
        )
    if bucket.available + 1e-6 < cost:
        shop.stats.throttled += 1
        return _json(
            {
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                "extensions": {"cost": _cost_ext(cost, 0, bucket)},
            }
        )
    bucket.available -= cost
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    resolvers = RESOLVERS.get(operation.operation, {})
    for node in operation.selection_set.selections:
        if not isinstance(node, FieldNode):
            continue
        name = node.name.value
        key = node.alias.value if node.alias else name
        resolver = resolvers.get(name)
        if resolver is None:
            errors.append({"message": f"Field '{name}' is not simulated.", "path": [key]})
            data[key] = None
            continue
        try:
            data[key] = _project(resolver(shop, _args(node, variables)), node.selection_set)
        except _Reject as exc:
            errors.append({"message": str(exc), "path": [key]})
            data[key] = None
    shop.stats.points_used += cost
    body: dict[str, Any] = {"data": data, "extensions": {"cost": _cost_ext(cost, cost, bucket)}}
    if errors:
        body["errors"] = errors
    return _json(body)


def _cost_ext(requested: float, actual: float, bucket: Bucket) -> dict[str, Any]:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": bucket.status(),
    }


def create_simulator(
    *,
    access_token: str,
    bucket_size: int = 1000,
    restore_rate: float = 100.0,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """A Starlette app serving an empty shop; the bucket starts full."""
    app = Starlette(routes=[Route(GRAPHQL_PATH, graphql_endpoint, methods=["POST"])])
    app.state.access_token = access_token
    app.state.shop = ShopState(bucket=Bucket(float(bucket_size), float(restore_rate), clock))
    return app
