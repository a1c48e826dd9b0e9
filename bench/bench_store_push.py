"""B5: pushing products to the throttled store simulators.

Shopify  `productSet` through the Admin GraphQL simulator with Shopify's leaky bucket (1,000
         points, 100 points/s restore, 10 points per productSet + 1 per variant, plus the SKU
         lookup a new product needs). Baseline: the points the bucket allows over the same
         wall time (its size plus the restore rate times the elapsed time).
         Goals: >= 0.9 of that budget used; < 1% of calls throttled.
WooCommerce  batch writes through the REST v3 simulator. Baseline: the 100 objects per call
         the API allows. Goals: >= 0.9 of that used per call; no call refused (413).

    .venv/bin/python bench/bench_store_push.py [--shopify-products 250] [--woo-products 2000]

Both simulators run in-process (httpx ASGI transport): the figures are the clients' pacing and
batching, with real time for the Shopify bucket.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from _harness import goal  # noqa: E402

from app.connectors.shopify.client import ShopifyClient, product_input  # noqa: E402
from app.connectors.shopify.simulator import create_simulator as shopify_simulator  # noqa: E402
from app.connectors.woocommerce.client import WooCommerceClient, product_payload  # noqa: E402
from app.connectors.woocommerce.simulator import create_simulator as woo_simulator  # noqa: E402

BUCKET, RESTORE = 1000, 100.0


def lot(number: int) -> tuple[str, str, Decimal]:
    return f"HA-{3_100_000 + number}", f"1921 Morgan Dollar MS{60 + number % 10}", Decimal("430.50")


async def shopify(count: int) -> None:
    app = shopify_simulator(access_token="shpat_bench", bucket_size=BUCKET, restore_rate=RESTORE)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://bench.myshopify.com"
    ) as http:
        client = ShopifyClient("https://bench.myshopify.com", "shpat_bench", client=http)
        products = [
            product_input(sku, title, price) for sku, title, price in map(lot, range(count))
        ]
        started = time.monotonic()
        results = await client.push_products(products)
        elapsed = time.monotonic() - started
    stats = app.state.shop.stats
    budget = BUCKET + RESTORE * elapsed
    failed = sum(1 for r in results if r.user_errors)
    print(
        f"Shopify: {count} products in {elapsed:.1f} s, {stats.calls} calls, "
        f"{stats.throttled} throttled, {stats.points_used} points used of {budget:.0f} allowed "
        f"(bucket {BUCKET} + {RESTORE:g}/s x {elapsed:.1f} s), {failed} with userErrors"
    )
    goal("B5", "Shopify budget used / allowed", stats.points_used / budget, 0.9)
    goal("B5", "Shopify calls throttled", stats.throttled / max(stats.calls, 1), 0.01, "<")


async def woocommerce(count: int) -> None:
    app = woo_simulator(consumer_key="ck_bench", consumer_secret="cs_bench")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as http:
        client = WooCommerceClient("https://shop.example", "ck_bench", "cs_bench", client=http)
        payloads = [
            product_payload(sku, title, price, "", [], True)
            for sku, title, price in map(lot, range(count))
        ]
        started = time.monotonic()
        result = await client.push_products(payloads)
        elapsed = time.monotonic() - started
    stats = app.state.store.stats
    per_call = stats.batch_objects / max(stats.batch_calls, 1)
    print(
        f"WooCommerce: {count} products in {elapsed:.2f} s, {stats.batch_calls} batch calls, "
        f"{per_call:.1f} objects per call (100 allowed), {stats.too_large} refused with 413, "
        f"{len(result.errors)} item errors"
    )
    goal("B5", "WooCommerce objects per call / allowed", per_call / 100, 0.9)
    goal("B5", "WooCommerce calls refused (413)", float(stats.too_large), 1, "<")


def main() -> int:
    parser = argparse.ArgumentParser(description="B5: pushes to throttled store simulators")
    parser.add_argument("--shopify-products", type=int, default=250)
    parser.add_argument("--woo-products", type=int, default=2000)
    args = parser.parse_args()
    print("B5  store pushes")
    asyncio.run(woocommerce(args.woo_products))
    asyncio.run(shopify(args.shopify_products))
    return 0


if __name__ == "__main__":
    sys.exit(main())
