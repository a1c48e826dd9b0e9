"""The account default rule and `pricingRulePreview`: what a merchant sees before and after
saving a rule, and what the next sync does with it."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.pricing.core import CENT
from app.products.models import Product
from app.sync.models import SyncStatus
from tests.conftest import Tenant, make_pricing_rule
from tests.test_sync_engine import run, simulated_store, woo_products


async def test_one_default_rule_at_a_time_and_without_conditions(client, tenant: Tenant) -> None:
    first = await client.post(
        "/v1/pricing-rules",
        json={"name": "House default +30 %", "markup_percent": 30, "is_default": True},
        headers=tenant.headers(),
    )
    assert first.status_code == 201, first.text
    assert first.json()["data"]["is_default"] is True
    second = await client.post(
        "/v1/pricing-rules",
        json={"name": "New default +25 %", "markup_percent": 25, "is_default": True},
        headers=tenant.headers(),
    )
    assert second.status_code == 201
    rules = (await client.get("/v1/pricing-rules", headers=tenant.headers())).json()["data"]
    assert {r["name"]: r["is_default"] for r in rules} == {
        "House default +30 %": False,
        "New default +25 %": True,
    }

    refused = await client.post(
        "/v1/pricing-rules",
        json={"name": "Gold default", "markup_percent": 5, "is_default": True, "metals": ["Gold"]},
        headers=tenant.headers(),
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "default_rule_conditions"
    assert refused.json()["error"]["param"] == "metals"
    made_default = await client.put(
        f"/v1/pricing-rules/{first.json()['data']['id']}",
        json={"is_default": True, "min_cost": 100},
        headers=tenant.headers(),
    )
    assert made_default.status_code == 400
    assert made_default.json()["error"]["code"] == "default_rule_conditions"
    assert (
        len((await client.get("/v1/pricing-rules", headers=tenant.headers())).json()["data"]) == 2
    )


async def test_the_default_prices_what_no_rule_matches(tenant: Tenant) -> None:
    await make_pricing_rule(
        tenant, name="Gold +5 %", markup_percent="5", metals=["Gold"], rounding="none"
    )
    await make_pricing_rule(
        tenant, name="Default +40 %", markup_percent="40", is_default=True, rounding="none"
    )
    await simulated_store(tenant)

    job = await run(tenant, "full")

    assert job.status is SyncStatus.COMPLETED
    for product in await Product.filter(account_id=tenant.account_id):
        percent = Decimal("1.05") if product.metal == "Gold" else Decimal("1.40")
        expected = (product.cost * percent).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert product.price == expected, product.title


async def gql(client, tenant: Tenant, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=tenant.headers()
    )
    assert response.status_code == 200
    return response.json()


PREVIEW = """query($input: PricingRuleCreateInput!, $id: ID) {
  pricingRulePreview(input: $input, id: $id) {
    productsConsidered productsChanged
    samples { productId sku cost priceBefore priceAfter marginBefore marginAfter }
  }
}"""


async def test_preview_shows_what_a_rule_would_change_and_saves_nothing(
    client, tenant: Tenant
) -> None:
    rule = await make_pricing_rule(tenant, name="All +10 %", markup_percent="10", rounding="none")
    store = await simulated_store(tenant)
    await run(tenant, "full")
    total = await Product.filter(account_id=tenant.account_id).count()
    silver = await Product.filter(account_id=tenant.account_id, metal="Silver").count()

    body = await gql(
        client,
        tenant,
        PREVIEW,
        input={"name": "Silver +25 %", "markupPercent": "25", "metals": ["Silver"], "priority": 1},
    )
    preview = body["data"]["pricingRulePreview"]
    assert preview["productsConsidered"] == total
    assert preview["productsChanged"] == silver
    assert 0 < len(preview["samples"]) <= 10
    changes = [Decimal(s["priceAfter"]) - Decimal(s["priceBefore"]) for s in preview["samples"]]
    assert changes == sorted(changes, reverse=True)  # the largest first
    sample = preview["samples"][0]
    cost = Decimal(sample["cost"])
    assert Decimal(sample["priceBefore"]) == (cost * Decimal("1.10")).quantize(CENT, ROUND_HALF_UP)
    assert Decimal(sample["priceAfter"]) == (cost * Decimal("1.25")).quantize(CENT, ROUND_HALF_UP)
    assert Decimal(sample["marginAfter"]) == Decimal(sample["priceAfter"]) - cost

    # Previewing a change to the existing rule replaces it in the evaluation.
    replaced = await gql(
        client, tenant, PREVIEW, input={"name": "All +10 %", "markupPercent": "10"}, id=rule.id
    )
    assert replaced["data"]["pricingRulePreview"]["productsChanged"] == 0

    # Nothing was saved: the next sync changes nothing.
    before = {p["sku"]: p["regular_price"] for p in woo_products(store).values()}
    job = await run(tenant, "delta")
    assert job.products_updated == 0
    assert {p["sku"]: p["regular_price"] for p in woo_products(store).values()} == before


async def test_preview_rejects_what_saving_would_reject(client, tenant: Tenant) -> None:
    body = await gql(client, tenant, PREVIEW, input={"name": "No markup"})
    assert body["errors"][0]["extensions"]["code"] == "parameter_invalid"
    assert body["errors"][0]["extensions"]["param"] == "input.markup_percent"
    missing = await gql(
        client,
        tenant,
        PREVIEW,
        input={"name": "x", "markupPercent": "5"},
        id="rule_doesnotexist000000000000",
    )
    assert missing["errors"][0]["extensions"]["code"] == "resource_missing"
