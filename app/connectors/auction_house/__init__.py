"""The auction-house source: a catalog of coin and bullion lots, read page by page.

`client.AuctionHouseClient` talks to the real API (or the simulator); `catalog` is the pure,
seeded model both sides share. The Starlette simulator lives in `simulator` and is imported
explicitly, so importing the client never pulls in the web framework.
"""

from __future__ import annotations

from app.connectors.auction_house.catalog import Lot, catalog_at, evolve, generate_catalog
from app.connectors.auction_house.client import AuctionHouseClient, Page

__all__ = ["AuctionHouseClient", "Lot", "Page", "catalog_at", "evolve", "generate_catalog"]
