"""`StoreConnector` for Shopify: listing writes as paced `productSet`/`productDelete` calls."""

from __future__ import annotations

import html
from collections.abc import Sequence

from app.connectors.base import ListingResult, ListingWrite, WriteAction
from app.connectors.shopify.client import ShopifyClient, product_input
from app.errors import UpstreamError


def _description_html(text: str) -> str:
    paragraphs = [part.strip() for part in text.split("\n\n") if part.strip()]
    return "".join(f"<p>{html.escape(part)}</p>" for part in paragraphs)


class ShopifyListings:
    """Lists products in one shop. `productSet` finds a product by its SKU when its id is
    unknown, so a re-sent write updates rather than duplicates; an out-of-stock lot becomes a
    draft (unpublished) product."""

    batch_size = 25

    def __init__(self, client: ShopifyClient) -> None:
        self.client = client

    async def aclose(self) -> None:
        await self.client.aclose()

    async def apply(self, writes: Sequence[ListingWrite]) -> list[ListingResult]:
        return [await self._one(write) for write in writes]

    async def _one(self, write: ListingWrite) -> ListingResult:
        if write.action is WriteAction.DELETE:
            if write.external_id:
                try:
                    await self.client.delete_product(write.external_id)
                except UpstreamError as exc:
                    if exc.code != "store_rejected":
                        raise  # the store as a whole failed (credentials, outage)
                    return ListingResult(
                        write.product_id,
                        ok=False,
                        external_id=write.external_id,
                        error_code=exc.code,
                        error_message=exc.message,
                    )
            return ListingResult(write.product_id, ok=True)
        if write.action is WriteAction.OUT_OF_STOCK and not write.external_id:
            return ListingResult(write.product_id, ok=True)
        if write.external_id:
            self.client.remember(write.sku, write.external_id)
        result = await self.client.product_set(
            product_input(
                write.sku,
                write.title,
                write.price,
                _description_html(write.description),
                write.images,
                active=write.action is WriteAction.UPSERT,
            )
        )
        if result.ok:
            return ListingResult(write.product_id, ok=True, external_id=result.product_id)
        first = result.user_errors[0] if result.user_errors else None
        return ListingResult(
            write.product_id,
            ok=False,
            external_id=write.external_id,
            error_code=(first.code or "store_user_error") if first else "store_user_error",
            error_message="; ".join(e.message for e in result.user_errors) or None,
        )
