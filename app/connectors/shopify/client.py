"""The Shopify Admin GraphQL client: `productSet` upserts, deletes and order polling, paced by
the calculated query cost so that Shopify rarely has to throttle us."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from app.connectors.http import Backoff, OwnedClient, read_retry_after
from app.errors import UpstreamError

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
ORDERS_PAGE_SIZE = 50

PRODUCT_SET = """
mutation SyncProductSet($input: ProductSetInput!) {
  productSet(input: $input, synchronous: true) {
    product { id handle status variants(first: 100) { nodes { id sku price } } }
    userErrors { field message code }
  }
}
"""

PRODUCT_DELETE = """
mutation SyncProductDelete($id: ID!) {
  productDelete(input: {id: $id}) { deletedProductId userErrors { field message code } }
}
"""

PRODUCT_BY_SKU = """
query SyncProductBySku($query: String!) {
  products(first: 1, query: $query) { nodes { id } }
}
"""

ORDERS = """
query SyncOrders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name createdAt email
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) { nodes { sku quantity title } }
    }
  }
}
"""


@dataclass(frozen=True)
class UserError:
    """A `userErrors` entry: Shopify refused part of the input (nothing was retried)."""

    field: list[str]
    message: str
    code: str | None = None


@dataclass
class ProductSetResult:
    """The outcome of one `productSet`: the product's gid, or the user errors that stopped it."""

    sku: str | None
    product_id: str | None
    user_errors: list[UserError] = field(default_factory=list)
    created: bool = False

    @property
    def ok(self) -> bool:
        return self.product_id is not None and not self.user_errors


@dataclass(frozen=True)
class OrderLine:
    sku: str | None
    quantity: int
    title: str


@dataclass(frozen=True)
class ShopifyOrder:
    """An order as read from `orders`: enough to forward it to the auction house."""

    id: str
    name: str
    created_at: datetime
    email: str | None
    total: Decimal
    currency: str
    lines: list[OrderLine]


@dataclass
class _Throttle:
    """What we last heard of the shop's cost bucket, projected forward with the clock."""

    maximum: float | None = None
    available: float = 0.0
    restore_rate: float = 0.0
    observed_at: float = 0.0

    def estimate(self, now: float) -> float | None:
        if self.maximum is None:
            return None
        return min(self.maximum, self.available + (now - self.observed_at) * self.restore_rate)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until `cost` points should be available (0 when unknown or already there)."""
        available = self.estimate(now)
        if available is None or available + 1e-6 >= cost or self.restore_rate <= 0:
            return 0.0
        return (min(cost, self.maximum or cost) - available) / self.restore_rate

    def observe(self, status: dict[str, Any], now: float) -> None:
        try:
            self.maximum = float(status["maximumAvailable"])
            self.available = float(status["currentlyAvailable"])
            self.restore_rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        self.observed_at = now

    def spend(self, cost: float, now: float) -> None:
        available = self.estimate(now)
        if available is not None:
            self.available = available - cost
            self.observed_at = now


def product_input(
    sku: str,
    title: str,
    price: Decimal,
    description_html: str = "",
    images: Iterable[str] = (),
    active: bool = True,
) -> dict[str, Any]:
    """A `ProductSetInput` for a one-variant product identified by `sku`. The `files` list is
    always sent, so images removed at the source are removed from the store too."""
    return {
        "title": title,
        "descriptionHtml": description_html,
        "status": "ACTIVE" if active else "DRAFT",
        "productOptions": [{"name": "Title", "values": [{"name": "Default Title"}]}],
        "variants": [
            {
                "optionValues": [{"optionName": "Title", "name": "Default Title"}],
                "price": f"{Decimal(price):.2f}",
                "inventoryItem": {"sku": sku},
            }
        ],
        "files": [{"originalSource": url, "contentType": "IMAGE", "alt": title} for url in images],
    }


def product_set_cost(product: dict[str, Any]) -> int:
    """`productSet`'s requested cost: 10, plus 1 per variant."""
    return 10 + len(product.get("variants") or [])


def _sku_of(product: dict[str, Any]) -> str | None:
    for variant in product.get("variants") or []:
        sku = (variant.get("inventoryItem") or {}).get("sku") or variant.get("sku")
        if sku:
            return str(sku)
    return None


def _user_errors(raw: Any) -> list[UserError]:
    return [
        UserError(
            field=[str(part) for part in (item.get("field") or [])],
            message=str(item.get("message", "")),
            code=item.get("code"),
        )
        for item in raw or []
    ]


class ShopifyClient(OwnedClient):
    """Talks to one shop's Admin GraphQL API.

    Before each operation costing C points it waits until the bucket, as last reported in
    `extensions.cost.throttleStatus` and refilled at `restoreRate` since, holds C, so throttling
    is rare. A `THROTTLED` reply (HTTP 200) waits `(C - currentlyAvailable) / restoreRate` and
    retries; 429, 5xx and transport errors are retried with back-off and jitter; after
    `max_retries` an `UpstreamError(retryable=True)` is raised. A rejected token (401/403)
    raises `UpstreamError(retryable=False, code="store_auth_failed")` at once. Per-product
    `userErrors` are returned in `ProductSetResult`, never raised.
    """

    def __init__(
        self,
        shop_url: str,
        access_token: str,
        *,
        api_version: str = "2025-01",
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        max_retries: int = 5,
        timeout: float = 15,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
        lookup_by_sku: bool = True,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        base = shop_url.rstrip("/")
        if "://" not in base:
            base = "https://" + base
        self._url = f"{base}/admin/api/{api_version}/graphql.json"
        self._headers = {
            "X-Shopify-Access-Token": access_token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self.max_retries = max_retries
        self._backoff = Backoff(backoff_base, backoff_cap, rng or random.Random())
        self._throttle = _Throttle()
        self._lock = asyncio.Lock()
        self.lookup_by_sku = lookup_by_sku
        self._gid_by_sku: dict[str, str] = {}
        self.throttled_replies = 0
        self.last_requested_cost: float | None = None

    def remember(self, sku: str, gid: str) -> None:
        """Tell the client which product holds `sku` (e.g. from the database), saving a lookup."""
        self._gid_by_sku[sku] = gid

    # -- products ---------------------------------------------------------------------------

    async def product_set(self, product: dict[str, Any]) -> ProductSetResult:
        """Create or update one product (a `ProductSetInput`). Without `id`, the product is
        found by its first variant's SKU (remembered, else looked up), so a re-push updates."""
        sku = _sku_of(product)
        payload = dict(product)
        known = bool(payload.get("id"))
        if not known and sku:
            gid = self._gid_by_sku.get(sku)
            if gid is None and self.lookup_by_sku:
                gid = await self.find_product_by_sku(sku)
            if gid is not None:
                payload["id"] = gid
        result = await self._product_set_once(sku, payload)
        stale = any(e.code == "NOT_FOUND" and e.field[-1:] == ["id"] for e in result.user_errors)
        if stale and not known and "id" in payload:
            # Deleted in the store since we learned its id: create it afresh.
            if sku:
                self._gid_by_sku.pop(sku, None)
            payload.pop("id")
            result = await self._product_set_once(sku, payload)
        return result

    async def _product_set_once(self, sku: str | None, payload: dict[str, Any]) -> ProductSetResult:
        data = await self.execute(PRODUCT_SET, {"input": payload}, cost=product_set_cost(payload))
        body = data.get("productSet") or {}
        errors = _user_errors(body.get("userErrors"))
        gid = (body.get("product") or {}).get("id")
        if gid and sku:
            self._gid_by_sku[sku] = gid
        return ProductSetResult(
            sku=sku, product_id=gid, user_errors=errors, created="id" not in payload
        )

    async def push_products(self, products: Iterable[dict[str, Any]]) -> list[ProductSetResult]:
        """`product_set` for each product in order, paced; one result per product."""
        return [await self.product_set(product) for product in products]

    async def find_product_by_sku(self, sku: str) -> str | None:
        """The gid of the product with a variant carrying `sku`, or None."""
        escaped = sku.replace("\\", "\\\\").replace('"', '\\"')
        data = await self.execute(PRODUCT_BY_SKU, {"query": f'sku:"{escaped}"'}, cost=2)
        nodes = (data.get("products") or {}).get("nodes") or []
        gid = nodes[0].get("id") if nodes else None
        if gid:
            self._gid_by_sku[sku] = gid
        return gid

    async def delete_product(self, gid: str) -> bool:
        """Delete a product; False if it was already gone."""
        data = await self.execute(PRODUCT_DELETE, {"id": gid}, cost=10)
        body = data.get("productDelete") or {}
        for sku, known in list(self._gid_by_sku.items()):
            if known == gid:
                del self._gid_by_sku[sku]
        if body.get("deletedProductId"):
            return True
        errors = _user_errors(body.get("userErrors"))
        if all(e.code == "NOT_FOUND" for e in errors):
            return False
        raise UpstreamError(
            f"Shopify refused to delete {gid}: {errors[0].message}",
            retryable=False,
            code="store_rejected",
        )

    # -- orders -----------------------------------------------------------------------------

    async def list_orders(self, after: datetime | None = None) -> list[ShopifyOrder]:
        """Every order created strictly after `after` (all orders if None), oldest first."""
        query = None
        if after is not None:
            if after.tzinfo is None:
                after = after.replace(tzinfo=UTC)
            query = f"created_at:>'{after.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        orders: list[ShopifyOrder] = []
        cursor: str | None = None
        cost = 1 + ORDERS_PAGE_SIZE
        while True:
            variables = {"first": ORDERS_PAGE_SIZE, "after": cursor, "query": query}
            data = await self.execute(ORDERS, variables, cost=cost)
            connection = data.get("orders") or {}
            orders.extend(self._order(node) for node in connection.get("nodes") or [])
            # Shopify's real cost counts nested connections: pace the next page by it.
            cost = max(cost, self.last_requested_cost or 0)
            page = connection.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return orders
            cursor = page.get("endCursor")

    @staticmethod
    def _order(node: dict[str, Any]) -> ShopifyOrder:
        try:
            money = node["totalPriceSet"]["shopMoney"]
            return ShopifyOrder(
                id=node["id"],
                name=node["name"],
                created_at=datetime.fromisoformat(node["createdAt"].replace("Z", "+00:00")),
                email=node.get("email"),
                total=Decimal(str(money["amount"])),
                currency=money["currencyCode"],
                lines=[
                    OrderLine(item.get("sku"), int(item["quantity"]), item.get("title", ""))
                    for item in (node.get("lineItems") or {}).get("nodes") or []
                ],
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise UpstreamError(
                f"Shopify sent a malformed order: {exc!r}.",
                retryable=False,
                code="store_malformed",
            ) from exc

    # -- transport --------------------------------------------------------------------------

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, cost: float = 1
    ) -> dict[str, Any]:
        """Run one operation costing about `cost` points and return its `data`."""
        failures = 0
        throttles = 0
        while True:
            async with self._lock:
                wait = self._throttle.wait_for(cost, self._clock())
                if wait > 0:
                    await self._sleep(wait)
                self._throttle.spend(cost, self._clock())
            retry_after: float | None = None
            try:
                response = await self._client.post(
                    self._url,
                    json={"query": query, "variables": variables or {}},
                    headers=self._headers,
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                problem = f"transport error: {type(exc).__name__}"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise UpstreamError(
                        f"Shopify rejected the access token ({status}).",
                        retryable=False,
                        code="store_auth_failed",
                    )
                if status == 200:
                    body = self._json(response)
                    throttled = self._observe(body)
                    if throttled is None:
                        return self._data(body)
                    throttles += 1
                    self.throttled_replies += 1
                    if throttles > self.max_retries:
                        raise UpstreamError(
                            f"Shopify kept throttling after {throttles} attempts.",
                            retryable=True,
                            retry_after=throttled,
                            code="store_throttled",
                        )
                    await self._sleep(throttled)
                    continue
                if status not in RETRYABLE_STATUSES:
                    raise UpstreamError(
                        f"Shopify answered {status}.",
                        retryable=False,
                        code="store_unexpected_status",
                    )
                problem = f"status {status}"
                retry_after = read_retry_after(response)
            if failures >= self.max_retries:
                raise UpstreamError(
                    f"Shopify unavailable after {failures + 1} attempts ({problem}).",
                    retryable=True,
                    retry_after=retry_after,
                    code="store_unavailable",
                )
            await self._sleep(self._backoff.delay(failures, retry_after))
            failures += 1

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError(
                "Shopify sent a response that is not JSON.",
                retryable=True,
                code="store_malformed",
            ) from exc
        if not isinstance(body, dict):
            raise UpstreamError(
                "Shopify sent an unexpected JSON body.", retryable=True, code="store_malformed"
            )
        return body

    def _observe(self, body: dict[str, Any]) -> float | None:
        """Record the bucket; for a THROTTLED reply, the seconds to wait before retrying."""
        cost = (body.get("extensions") or {}).get("cost") or {}
        if isinstance(cost.get("requestedQueryCost"), int | float):
            self.last_requested_cost = float(cost["requestedQueryCost"])
        status = cost.get("throttleStatus")
        if isinstance(status, dict):
            self._throttle.observe(status, self._clock())
        errors = body.get("errors")
        if not isinstance(errors, list):
            return None
        codes = {((e or {}).get("extensions") or {}).get("code") for e in errors}
        if "THROTTLED" not in codes:
            return None
        requested = float(cost.get("requestedQueryCost") or 0)
        available = self._throttle.available
        rate = self._throttle.restore_rate
        if rate <= 0:
            return self._backoff.delay(0, None)
        return max(requested - available, 0.0) / rate

    @staticmethod
    def _data(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data")
        errors = body.get("errors")
        if errors or not isinstance(data, dict):
            if isinstance(errors, list) and errors:
                message = "; ".join(str((e or {}).get("message", e)) for e in errors)
            else:
                message = str(errors or "no data")
            raise UpstreamError(
                f"Shopify GraphQL error: {message}", retryable=False, code="store_graphql_error"
            )
        return data
