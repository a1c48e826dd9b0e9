"""The Shopify store: products pushed with `productSet`, orders polled, over Admin GraphQL.

`client.ShopifyClient` talks to a real shop (or the simulator) and paces itself by the
calculated query cost. The Starlette simulator lives in `simulator` and is imported explicitly,
so importing the client never pulls in the web framework.
"""

from __future__ import annotations

from app.connectors.shopify.client import (
    OrderLine,
    ProductSetResult,
    ShopifyClient,
    ShopifyOrder,
    UserError,
    product_input,
)

__all__ = [
    "OrderLine",
    "ProductSetResult",
    "ShopifyClient",
    "ShopifyOrder",
    "UserError",
    "product_input",
]
