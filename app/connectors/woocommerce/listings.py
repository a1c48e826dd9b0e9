"""`StoreConnector` for WooCommerce: listing writes as `/products/batch` calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.connectors.base import ListingResult, ListingWrite, WriteAction
from app.connectors.woocommerce.client import (
    BatchResult,
    ItemOutcome,
    WooCommerceClient,
    product_payload,
)

# A create whose SKU exists already: an earlier create was applied but its answer was lost.
DUPLICATE_SKU = "product_invalid_sku"
# An update or delete of a product the store no longer has (deleted by hand in WordPress).
UNKNOWN_ID = "woocommerce_rest_product_invalid_id"


def _store_id(write: ListingWrite) -> int | None:
    try:
        return int(write.external_id) if write.external_id else None
    except ValueError:
        return None


def _payload(write: ListingWrite) -> dict[str, Any]:
    return product_payload(
        write.sku, write.title, write.price, write.description, write.images, in_stock=True
    )


class WooCommerceListings:
    """Creates, updates, marks out of stock and deletes products in one shop, 100 per call.

    Re-sending is safe: a create refused as a duplicate SKU becomes an update of the product
    holding that SKU, and an update of a product deleted in the shop becomes a create."""

    def __init__(self, client: WooCommerceClient) -> None:
        self.client = client
        self.batch_size = client.batch_size

    async def aclose(self) -> None:
        await self.client.aclose()

    async def apply(self, writes: Sequence[ListingWrite]) -> list[ListingResult]:
        results: dict[str, ListingResult] = {}
        create: list[ListingWrite] = []
        update: list[tuple[ListingWrite, int]] = []
        delete: list[tuple[ListingWrite, int]] = []
        for write in writes:
            store_id = _store_id(write)
            if write.action is WriteAction.UPSERT:
                if store_id is None:
                    create.append(write)
                else:
                    update.append((write, store_id))
            elif store_id is None:
                # Never listed (or already gone): nothing to take down.
                results[write.product_id] = ListingResult(write.product_id, ok=True)
            elif write.action is WriteAction.OUT_OF_STOCK:
                update.append((write, store_id))
            else:
                delete.append((write, store_id))

        retry_create: list[ListingWrite] = []
        retry_update: list[tuple[ListingWrite, int]] = []
        outcome = await self._send(create, update, delete)
        for write, item in outcome:
            if item.ok:
                results[write.product_id] = self._done(write, item)
            elif item.error_code == UNKNOWN_ID and write.action is WriteAction.UPSERT:
                retry_create.append(write)
            elif item.error_code == UNKNOWN_ID:
                results[write.product_id] = ListingResult(write.product_id, ok=True)
            elif item.error_code == DUPLICATE_SKU and item.action == "create":
                found = await self.client.find_product_id_by_sku(write.sku)
                if found is None:
                    results[write.product_id] = self._failed(write, item)
                else:
                    retry_update.append((write, found))
            else:
                results[write.product_id] = self._failed(write, item)
        if retry_create or retry_update:
            for write, item in await self._send(retry_create, retry_update, []):
                results[write.product_id] = (
                    self._done(write, item) if item.ok else self._failed(write, item)
                )
        return [results[write.product_id] for write in writes]

    async def _send(
        self,
        create: list[ListingWrite],
        update: list[tuple[ListingWrite, int]],
        delete: list[tuple[ListingWrite, int]],
    ) -> list[tuple[ListingWrite, ItemOutcome]]:
        if not (create or update or delete):
            return []
        updates = []
        for write, store_id in update:
            if write.action is WriteAction.UPSERT:
                updates.append({"id": store_id, **_payload(write)})
            else:
                updates.append(
                    {
                        "id": store_id,
                        "manage_stock": True,
                        "stock_quantity": 0,
                        "stock_status": "outofstock",
                    }
                )
        result: BatchResult = await self.client.batch(
            create=[_payload(write) for write in create],
            update=updates,
            delete=[store_id for _, store_id in delete],
        )
        by_action = {
            "create": create,
            "update": [write for write, _ in update],
            "delete": [write for write, _ in delete],
        }
        return [(by_action[item.action][item.index], item) for item in result.outcomes]

    @staticmethod
    def _done(write: ListingWrite, item: ItemOutcome) -> ListingResult:
        external = None if write.action is WriteAction.DELETE else item.external_id
        return ListingResult(
            write.product_id, ok=True, external_id=str(external) if external else None
        )

    @staticmethod
    def _failed(write: ListingWrite, item: ItemOutcome) -> ListingResult:
        return ListingResult(
            write.product_id,
            ok=False,
            external_id=write.external_id,
            error_code=item.error_code,
            error_message=item.error_message,
        )
