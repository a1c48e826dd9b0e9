"""Opening the external systems a sync talks to, from settings and stored credentials."""

from __future__ import annotations

from app import runtime
from app.accounts.models import Environment
from app.connectors.auction_house.client import AuctionHouseClient
from app.connectors.base import StoreConnector
from app.connectors.simulated import (
    AUCTION_HOUSE_TOKEN,
    AUCTION_HOUSE_URL,
    Simulators,
    asgi_client,
)
from app.errors import UpstreamError
from app.stores.models import Platform, Store
from app.stores.service import credentials_of

FEED_PAGE_SIZE = 500


def simulators() -> Simulators:
    rt = runtime.current()
    if rt.simulators is None:
        rt.simulators = Simulators(rt.settings)
    return rt.simulators


def auction_house(environment: Environment) -> AuctionHouseClient:
    """The lot feed: the configured auction house for live data, else (and for the sandbox)
    the built-in simulator."""
    settings = runtime.current().settings
    if environment is Environment.LIVE and settings.auction_house_url:
        return AuctionHouseClient(
            settings.auction_house_url,
            settings.auction_house_token or "",
            page_size=FEED_PAGE_SIZE,
        )
    if environment is Environment.LIVE and not settings.is_development:
        # Never list simulated coins in a merchant's real stores.
        raise UpstreamError(
            "No auction house is configured for live data: set SYNCAUCTION_AUCTION_HOUSE_URL "
            "and SYNCAUCTION_AUCTION_HOUSE_TOKEN.",
            retryable=False,
            code="auction_house_unconfigured",
        )
    return AuctionHouseClient(
        AUCTION_HOUSE_URL,
        AUCTION_HOUSE_TOKEN,
        client=asgi_client(simulators().auction_house),
        page_size=FEED_PAGE_SIZE,
    ).owning()


def store_connector(store: Store) -> tuple[StoreConnector, bool]:
    """The store's connector, and whether the store is known to be empty (a simulated shop
    just created in this process: its recorded listings are void)."""
    credentials = credentials_of(store)
    client = None
    empty = False
    if store.simulated:
        client = asgi_client(simulators().shop(store.id, store.platform.value, credentials))
        empty = simulators().take_fresh(store.id)
    if store.platform is Platform.WOOCOMMERCE:
        from app.connectors.woocommerce.client import WooCommerceClient
        from app.connectors.woocommerce.listings import WooCommerceListings

        woo = WooCommerceClient(
            store.url,
            credentials.get("consumer_key", ""),
            credentials.get("consumer_secret", ""),
            client=client,
        )
        return WooCommerceListings(woo.owning()), empty
    from app.connectors.shopify.client import ShopifyClient
    from app.connectors.shopify.listings import ShopifyListings

    shop = ShopifyClient(store.url, credentials.get("access_token", ""), client=client)
    return ShopifyListings(shop.owning()), empty
