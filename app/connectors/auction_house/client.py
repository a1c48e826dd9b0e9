"""The auction-house API client: pages of lots, conditional requests, retries with back-off."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.connectors.auction_house.catalog import Lot, lot_from_json
from app.connectors.http import Backoff, OwnedClient, read_retry_after
from app.errors import UpstreamError

Sleep = Callable[[float], Awaitable[None]]

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class Page:
    """One page of the catalog. On `not_modified` (HTTP 304) `lots` is empty: nothing changed
    since the page was last read with this `etag`."""

    number: int
    lots: list[Lot]
    etag: str | None
    not_modified: bool = False
    next_page: int | None = None
    total: int | None = None
    generation: int | None = None
    changed_since: int | None = None  # set on pages of a `changed_since` read


@dataclass
class _Seen:
    etag: str
    next_page: int | None
    total: int | None = None
    generation: int | None = None


class AuctionHouseClient(OwnedClient):
    """Reads the auction house's catalog page by page.

    `pages()` sends `If-None-Match` with the ETag remembered for each page and yields
    `not_modified` pages for those that did not change; `lots()` streams every lot with full
    reads. Only one page is held in memory at a time. Rate limits (429), server errors (5xx)
    and transport errors are retried with exponential back-off and jitter, honouring
    `Retry-After`; after `max_retries` retries an `UpstreamError(retryable=True)` is raised,
    and a rejected token raises `UpstreamError(retryable=False)` at once.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        client: httpx.AsyncClient | None = None,
        page_size: int = 100,
        max_retries: int = 5,
        timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= page_size <= 500:
            raise ValueError("page_size must be between 1 and 500")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._url = base_url.rstrip("/") + "/v1/lots"
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self.page_size = page_size
        self.max_retries = max_retries
        self._sleep = sleep
        self._backoff = Backoff(backoff_base, backoff_cap, rng or random.Random())
        self._seen: dict[int, _Seen] = {}

    def remember_page(self, number: int, etag: str, next_page: int | None) -> None:
        """Seed what an earlier run learned of a page, so `pages()` asks with `If-None-Match`."""
        self._seen[number] = _Seen(etag, next_page)

    def forget_etags(self) -> None:
        """Drop remembered ETags, so the next `pages()` reads everything again."""
        self._seen.clear()

    async def pages(
        self, *, conditional: bool = True, changed_since: int | None = None
    ) -> AsyncIterator[Page]:
        """Every page in order, following `next_page` (remembered from earlier reads on 304).
        With `changed_since` (a catalog generation), only the lots that arrived, changed or
        left since it (left: `available` false); a feed that cannot answer raises
        `UpstreamError(code="feed_changes_unavailable")`."""
        number: int | None = 1
        while number is not None:
            if changed_since is None:
                page = await self.fetch_page(number, conditional=conditional)
            else:
                page = await self._fetch_changes(number, changed_since)
            yield page
            number = page.next_page

    async def _fetch_changes(self, number: int, since: int) -> Page:
        params = {"page": number, "page_size": self.page_size, "changed_since": since}
        response = await self._request(params, dict(self._headers))
        if response.status_code in (400, 404, 410):
            raise UpstreamError(
                f"The auction house cannot list changes since generation {since} "
                f"({response.status_code}).",
                retryable=False,
                code="feed_changes_unavailable",
            )
        if response.status_code != 200:
            raise UpstreamError(
                f"Auction house answered {response.status_code} for page {number}.",
                retryable=False,
                code="upstream_unexpected_status",
            )
        page = self._parse(number, response)
        try:
            page.changed_since = int(response.json()["changed_since"])
        except (KeyError, TypeError, ValueError):
            raise UpstreamError(
                "The auction house ignored `changed_since`: it lists no changes.",
                retryable=False,
                code="feed_changes_unavailable",
            ) from None
        return page

    async def lots(self) -> AsyncIterator[Lot]:
        """Every lot in the catalog, streamed page by page."""
        async for page in self.pages(conditional=False):
            for lot in page.lots:
                yield lot

    async def fetch_page(self, number: int, *, conditional: bool = True) -> Page:
        """One page; with `conditional`, a 304 for an unchanged page gives a `not_modified` one."""
        headers = dict(self._headers)
        seen = self._seen.get(number)
        if conditional and seen is not None:
            headers["If-None-Match"] = seen.etag
        params = {"page": number, "page_size": self.page_size}
        response = await self._request(params, headers)
        if response.status_code == 304 and seen is not None:
            return Page(
                number=number,
                lots=[],
                etag=response.headers.get("etag", seen.etag),
                not_modified=True,
                next_page=seen.next_page,
                total=seen.total,
                generation=seen.generation,
            )
        if response.status_code != 200:
            raise UpstreamError(
                f"Auction house answered {response.status_code} for page {number}.",
                retryable=False,
                code="upstream_unexpected_status",
            )
        page = self._parse(number, response)
        if page.etag:
            self._seen[number] = _Seen(page.etag, page.next_page, page.total, page.generation)
        else:
            self._seen.pop(number, None)
        return page

    async def _request(self, params: dict[str, int], headers: dict[str, str]) -> httpx.Response:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.get(
                    self._url, params=params, headers=headers, timeout=self._timeout
                )
            except httpx.TransportError as exc:
                problem = f"transport error: {type(exc).__name__}"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise UpstreamError(
                        f"Auction house rejected the token ({status}).",
                        retryable=False,
                        code="upstream_unauthorized",
                    )
                if status not in RETRYABLE_STATUSES:
                    return response
                problem = f"status {status}"
                retry_after = read_retry_after(response)
            if attempt >= self.max_retries:
                raise UpstreamError(
                    f"Auction house unavailable after {attempt + 1} attempts ({problem}).",
                    retryable=True,
                    retry_after=retry_after,
                    code="upstream_unavailable",
                )
            await self._sleep(self._backoff.delay(attempt, retry_after))
            attempt += 1

    def _parse(self, number: int, response: httpx.Response) -> Page:
        try:
            body: Any = response.json()
            lots = [lot_from_json(item) for item in body["lots"]]
            next_page = body["next_page"]
            if next_page is not None and (not isinstance(next_page, int) or next_page <= number):
                raise ValueError("next_page must follow the current page")
            total = int(body["total"])
            generation = int(body["generation"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(
                f"Auction house sent a malformed page {number}: {exc}.",
                retryable=False,
                code="upstream_malformed",
            ) from exc
        return Page(
            number=number,
            lots=lots,
            etag=response.headers.get("etag"),
            next_page=next_page,
            total=total,
            generation=generation,
        )
