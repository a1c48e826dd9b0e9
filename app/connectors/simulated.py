"""The built-in simulators this process talks to: the auction-house feed and one shop per
simulated store. Clients reach them through `httpx.ASGITransport`, so every request still goes
through the real protocol client; only the network is skipped.

A simulated shop lives in this process's memory: it starts empty when the process starts and
the next sync lists every product in it again (its listings no longer match, see the Woo and
Shopify connectors' recovery of unknown ids)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp

from app.config import Settings
from app.connectors.auction_house.simulator import create_simulator as auction_house_simulator

logger = logging.getLogger("syncauction.simulators")

AUCTION_HOUSE_TOKEN = "simulated-auction-house"
AUCTION_HOUSE_URL = "http://auction-house.simulated"


class RedisGeneration:
    """The simulated catalog's generation in Redis (distributed mode), so that an advance sent
    to one API process reaches the workers' simulators, which serve their syncs."""

    TIMEOUT = 2.0

    def __init__(self, redis_url: str, *, seed: int, size: int, featured: bool) -> None:
        self.redis_url = redis_url
        self.key = f"syncauction:simulator:auction-house:{seed}:{size}:{int(featured)}"

    def _redis(self) -> Redis:
        # One connection per call: a feed is read a page at a time, a few pages a sync.
        return Redis.from_url(
            self.redis_url, socket_timeout=self.TIMEOUT, socket_connect_timeout=self.TIMEOUT
        )

    async def current(self) -> int:
        try:
            async with self._redis() as redis:
                return int(await redis.get(self.key) or 0)
        except RedisError:  # serve the generation this process has (a catalog never goes back)
            logger.warning("simulated auction house: the shared generation is unreadable")
            return 0

    async def advance(self) -> int:
        async with self._redis() as redis:
            return int(await redis.incr(self.key))


class Simulators:
    def __init__(self, settings: Settings) -> None:
        featured = settings.should_create_demo
        self.auction_house = auction_house_simulator(
            seed=settings.simulator_seed,
            size=settings.simulator_catalog_size,
            token=AUCTION_HOUSE_TOKEN,
            featured=featured,
            shared=(
                RedisGeneration(
                    settings.redis_url,
                    seed=settings.simulator_seed,
                    size=settings.simulator_catalog_size,
                    featured=featured,
                )
                # Only development serves the advance route; elsewhere there is nothing to share.
                if settings.redis_url and settings.is_development
                else None
            ),
        )
        self._shops: dict[str, ASGIApp] = {}
        self._fresh: set[str] = set()

    def shop(self, store_id: str, platform: str, credentials: dict[str, str]) -> Any:
        """The simulator app of a simulated store, created on first use with its credentials."""
        app = self._shops.get(store_id)
        if app is None:
            if platform == "woocommerce":
                from app.connectors.woocommerce.simulator import create_simulator

                app = create_simulator(
                    consumer_key=credentials.get("consumer_key", ""),
                    consumer_secret=credentials.get("consumer_secret", ""),
                )
            else:
                from app.connectors.shopify.simulator import create_simulator as shopify

                # A generous bucket: simulated shops should not slow a demo down.
                app = shopify(
                    access_token=credentials.get("access_token", ""),
                    bucket_size=20_000,
                    restore_rate=5_000.0,
                )
            self._shops[store_id] = app
            self._fresh.add(store_id)
        return app

    def take_fresh(self, store_id: str) -> bool:
        """True once after the shop of `store_id` was created in this process: it is empty,
        whatever listings an earlier process recorded."""
        if store_id in self._fresh:
            self._fresh.discard(store_id)
            return True
        return False


def asgi_client(app: Any, *, timeout: float = 15.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=timeout)
