"""The WooCommerce REST API v3 client: batched product writes, order polling, retries.

WooCommerce accepts at most 100 objects per `/products/batch` call (413 above) and reports
failures per object inside the response arrays, with HTTP 200; some hosts strip the
`Authorization` header, so a 401 saying the consumer key is missing switches the session to
query-string authentication.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import httpx

from app.connectors.http import Backoff, OwnedClient, read_retry_after
from app.errors import UpstreamError

Sleep = Callable[[float], Awaitable[None]]
Action = Literal["create", "update", "delete"]

API_PREFIX = "/wp-json/wc/v3"
MAX_BATCH = 100
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CENT = Decimal("0.01")


def product_payload(
    sku: str,
    title: str,
    price: Decimal,
    description: str,
    images: Iterable[str],
    in_stock: bool,
) -> dict[str, Any]:
    """A lot as a WooCommerce simple product. Each lot is unique, so stock is managed with a
    quantity of 1 (WooCommerce then stops selling it after one order)."""
    if not price.is_finite() or price < 0:
        raise ValueError("price must be a finite, non-negative amount")
    return {
        "sku": sku,
        "name": title,
        "type": "simple",
        "status": "publish",
        "regular_price": f"{price.quantize(_CENT, rounding=ROUND_HALF_UP):.2f}",
        "description": description,
        "images": [{"src": src} for src in images],
        "manage_stock": True,
        "stock_quantity": 1 if in_stock else 0,
        "stock_status": "instock" if in_stock else "outofstock",
        "sold_individually": True,
    }


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one object of a batch. `index` is its position in the caller's list
    for that action; `external_id` is the WooCommerce product id (on success, or the id the
    caller sent for update/delete); `error_code`/`error_message` are set on failure."""

    action: Action
    index: int
    external_id: int | None
    sku: str | None = None
    product: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass
class BatchResult:
    """Every object's outcome (none is dropped) and the number of HTTP batch calls made."""

    outcomes: list[ItemOutcome] = field(default_factory=list)
    calls: int = 0

    def _ok(self, action: Action) -> list[ItemOutcome]:
        return [o for o in self.outcomes if o.action == action and o.ok]

    @property
    def created(self) -> list[ItemOutcome]:
        return self._ok("create")

    @property
    def updated(self) -> list[ItemOutcome]:
        return self._ok("update")

    @property
    def deleted(self) -> list[ItemOutcome]:
        return self._ok("delete")

    @property
    def errors(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.errors

    def ids_by_sku(self) -> dict[str, int]:
        """External ids of the created or updated products, by SKU."""
        return {
            o.sku: o.external_id
            for o in self.outcomes
            if o.ok and o.action != "delete" and o.sku and o.external_id is not None
        }


class BatchInterrupted(UpstreamError):
    """A batch call failed as a whole (after retries, or on rejected credentials).
    `result` holds the outcomes of the calls that succeeded, plus an error outcome for every
    object of the failed call and of those not sent, so nothing is lost."""

    def __init__(self, cause: UpstreamError, result: BatchResult):
        super().__init__(
            cause.message, retryable=cause.retryable, retry_after=cause.retry_after, code=cause.code
        )
        self.result = result


def _error_body(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("code", "")), str(body.get("message", ""))


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number or None


class WooCommerceClient(OwnedClient):
    """Talks to one WooCommerce shop's REST API v3 with its consumer key and secret.

    `batch()` splits writes into calls of at most 100 objects and returns every object's
    outcome; `list_orders()` reads orders created after a moment, page by page. Rate limits
    (429), server errors (5xx) and transport errors are retried with exponential back-off and
    jitter, honouring `Retry-After`; after `max_retries` retries an `UpstreamError(retryable=
    True)` is raised. Rejected credentials raise `UpstreamError(retryable=False,
    code="store_auth_failed")`.

    Retrying a batch after a 5xx or a transport error is not idempotent on WooCommerce's side:
    if the first attempt was applied, creates come back as duplicate-SKU errors.
    """

    def __init__(
        self,
        base_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        max_retries: int = 5,
        timeout: float = 15,
        batch_size: int = MAX_BATCH,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._base = base_url.rstrip("/") + API_PREFIX
        self._key = consumer_key
        self._secret = consumer_secret
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self._sleep = sleep
        self.max_retries = max_retries
        self.batch_size = batch_size
        self._backoff = Backoff(backoff_base, backoff_cap, rng or random.Random())
        self._basic_accepted = False
        self.query_string_auth = False

    # Products

    async def push_products(self, products: list[dict[str, Any]]) -> BatchResult:
        """Create these products (as built by `product_payload`) in batches."""
        return await self.batch(create=products)

    async def batch(
        self,
        *,
        create: Sequence[dict[str, Any]] = (),
        update: Sequence[dict[str, Any]] = (),
        delete: Sequence[int] = (),
    ) -> BatchResult:
        """Create, update (each with its `id`) and delete products in calls of at most
        `batch_size` objects. Raises `BatchInterrupted` (an `UpstreamError`) if a call fails
        as a whole; per-object failures are outcomes in the result."""
        work: list[tuple[Action, int, Any]] = [
            *(("create", i, item) for i, item in enumerate(create)),
            *(("update", i, item) for i, item in enumerate(update)),
            *(("delete", i, item) for i, item in enumerate(delete)),
        ]
        result = BatchResult()
        for start in range(0, len(work), self.batch_size):
            chunk = work[start : start + self.batch_size]
            body: dict[str, list[Any]] = {}
            for action, _, item in chunk:
                body.setdefault(action, []).append(item)
            try:
                response = await self._request("POST", "/products/batch", json=body)
                result.calls += 1
                answer = self._batch_answer(response)
            except UpstreamError as exc:
                for action, index, item in work[start:]:
                    result.outcomes.append(
                        _failed(action, index, item, exc.code, exc.message, exc.retryable)
                    )
                raise BatchInterrupted(exc, result) from exc
            seen: dict[str, int] = {}
            for action, index, item in chunk:
                position = seen.get(action, 0)
                seen[action] = position + 1
                answered = answer.get(action) or []
                reply = answered[position] if position < len(answered) else None
                result.outcomes.append(_outcome(action, index, item, reply))
        return result

    async def find_product_id_by_sku(self, sku: str) -> int | None:
        """The id of the product with this SKU, or None if the shop has none.

        Used to recover from a duplicate-SKU error on a create that was applied but whose
        answer was lost. A trashed product keeps its SKU (so creates still collide with it),
        but WooCommerce leaves trashed products out of this list, so None is possible after
        such an error. Raises `UpstreamError` if the shop refuses the query or answers
        something else than a list of products, and `ValueError` for an empty SKU (which
        WooCommerce would ignore, listing every product)."""
        if not sku:
            raise ValueError("sku must not be empty")
        response = await self._request("GET", "/products", params={"sku": sku, "per_page": 1})
        if response.status_code != 200:
            code, message = _error_body(response)
            raise UpstreamError(
                f"WooCommerce refused the product search ({response.status_code} {code}: "
                f"{message}).",
                retryable=False,
                code="store_rejected",
            )
        try:
            products = response.json()
        except ValueError:
            products = None
        if not isinstance(products, list):
            raise UpstreamError(
                "WooCommerce sent a malformed product search response.",
                retryable=False,
                code="store_malformed",
            )
        if not products:
            return None
        first = products[0]
        return _int_or_none(first.get("id")) if isinstance(first, dict) else None

    @staticmethod
    def _batch_answer(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            code, message = _error_body(response)
            raise UpstreamError(
                f"WooCommerce refused the batch ({response.status_code} {code}: {message}).",
                retryable=False,
                code="store_payload_too_large" if response.status_code == 413 else "store_rejected",
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamError(
                "WooCommerce sent a malformed batch response.",
                retryable=False,
                code="store_malformed",
            )
        return answer

    # Orders

    async def iter_orders(
        self, after: datetime | None = None, *, per_page: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Orders created after `after` (aware datetime), oldest first, page by page.

        Oldest-first keeps pages stable while new orders arrive; an order seen twice (if one
        shifts the pages) is yielded once."""
        if after is not None and after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        if not 1 <= per_page <= 100:
            raise ValueError("per_page must be between 1 and 100")
        params: dict[str, str | int] = {"orderby": "date", "order": "asc", "per_page": per_page}
        if after is not None:
            params["after"] = after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            params["dates_are_gmt"] = "true"
        seen: set[int] = set()
        page = 1
        while True:
            response = await self._request("GET", "/orders", params={**params, "page": page})
            if response.status_code != 200:
                code, message = _error_body(response)
                raise UpstreamError(
                    f"WooCommerce refused the orders list "
                    f"({response.status_code} {code}: {message}).",
                    retryable=False,
                    code="store_rejected",
                )
            try:
                orders = response.json()
                if not isinstance(orders, list):
                    raise ValueError("not a list")
                total_pages = int(response.headers.get("x-wp-totalpages", "0"))
            except ValueError as exc:
                raise UpstreamError(
                    f"WooCommerce sent a malformed orders page {page}: {exc}.",
                    retryable=False,
                    code="store_malformed",
                ) from exc
            for order in orders:
                order_id = order.get("id") if isinstance(order, dict) else None
                if isinstance(order_id, int):
                    if order_id in seen:
                        continue
                    seen.add(order_id)
                yield order
            if not orders or len(orders) < per_page or page >= total_pages:
                return
            page += 1

    async def list_orders(
        self, after: datetime | None = None, *, per_page: int = 100
    ) -> list[dict[str, Any]]:
        """Every order created after `after`, oldest first (see `iter_orders`)."""
        return [order async for order in self.iter_orders(after, per_page=per_page)]

    # Transport

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            retry_after: float | None = None
            query = dict(params or {})
            auth: httpx.BasicAuth | None = None
            if self.query_string_auth:
                query.update(consumer_key=self._key, consumer_secret=self._secret)
            else:
                auth = httpx.BasicAuth(self._key, self._secret)
            try:
                response = await self._client.request(
                    method,
                    self._base + path,
                    params=query,
                    json=json,
                    auth=auth,
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                problem = f"transport error: {type(exc).__name__}"
            else:
                status = response.status_code
                if status in (401, 403):
                    if self._should_fall_back(response):
                        self.query_string_auth = True
                        continue
                    raise UpstreamError(
                        f"WooCommerce rejected the API keys ({status}).",
                        retryable=False,
                        code="store_auth_failed",
                    )
                if status not in RETRYABLE_STATUSES:
                    if not self.query_string_auth:
                        self._basic_accepted = True
                    return response
                problem = f"status {status}"
                retry_after = read_retry_after(response)
            if attempt >= self.max_retries:
                raise UpstreamError(
                    f"WooCommerce unavailable after {attempt + 1} attempts ({problem}).",
                    retryable=True,
                    retry_after=retry_after,
                    code="store_unavailable",
                )
            await self._sleep(self._backoff.delay(attempt, retry_after))
            attempt += 1

    def _should_fall_back(self, response: httpx.Response) -> bool:
        # Only when basic auth has never worked in this session: a host that strips the header
        # makes WooCommerce see no key at all.
        if self.query_string_auth or self._basic_accepted or response.status_code != 401:
            return False
        _, message = _error_body(response)
        return "consumer key is missing" in message.lower()


def _failed(
    action: Action, index: int, item: Any, code: str | None, message: str, retryable: bool
) -> ItemOutcome:
    return ItemOutcome(
        action=action,
        index=index,
        external_id=_item_id(action, item),
        sku=_item_sku(item),
        error_code=code or "store_error",
        error_message=message,
        retryable=retryable,
    )


def _item_id(action: Action, item: Any) -> int | None:
    if action == "delete":
        return _int_or_none(item)
    if action == "update" and isinstance(item, dict):
        return _int_or_none(item.get("id"))
    return None


def _item_sku(item: Any) -> str | None:
    if isinstance(item, dict) and isinstance(item.get("sku"), str):
        return item["sku"] or None
    return None


def _outcome(action: Action, index: int, item: Any, reply: Any) -> ItemOutcome:
    if not isinstance(reply, dict):
        return _failed(
            action,
            index,
            item,
            "store_missing_in_response",
            "WooCommerce did not report on this object.",
            True,
        )
    error = reply.get("error")
    if isinstance(error, dict):
        return _failed(
            action,
            index,
            item,
            str(error.get("code") or "store_item_error"),
            str(error.get("message") or ""),
            False,
        )
    external_id = _int_or_none(reply.get("id"))
    if external_id is None:
        return _failed(
            action, index, item, "store_malformed", "WooCommerce sent no product id.", False
        )
    sku = reply.get("sku") if isinstance(reply.get("sku"), str) else None
    return ItemOutcome(
        action=action,
        index=index,
        external_id=external_id,
        sku=sku or _item_sku(item),
        product=reply,
    )
