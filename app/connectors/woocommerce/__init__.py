"""The WooCommerce destination: products pushed in batches, orders polled back.

`client.WooCommerceClient` talks to a shop's REST API v3 (or the simulator). The Starlette
simulator lives in `simulator` and is imported explicitly, so importing the client never pulls
in the web framework.
"""

from __future__ import annotations

from app.connectors.woocommerce.client import (
    BatchInterrupted,
    BatchResult,
    ItemOutcome,
    WooCommerceClient,
    product_payload,
)

__all__ = ["BatchInterrupted", "BatchResult", "ItemOutcome", "WooCommerceClient", "product_payload"]
