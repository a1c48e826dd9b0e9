"""`/v1/stores` and the GraphQL store fields, end to end in-process: shapes, updates, write-only
credentials, validation, and the same rules over GraphQL."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import pytest

from app.accounts.models import Environment
from app.stores import service
from app.stores.models import Store
from rest_compat.schemas import StoreObject
from tests.conftest import make_store

WOO_SECRETS = ("ck_live_1234", "cs_live_5678")
SHOPIFY_TOKEN = "shpat_0123456789abcdef"
NEW_KEY, NEW_SECRET = "ck_rotated_aaaa1111", "cs_rotated_bbbb2222"
# Anything a response must never carry: the secrets, their ciphertext, the column name.
FORBIDDEN_WORDS = ("credentials_encrypted", "consumer_key", "consumer_secret", "access_token")


def assert_no_credentials(text: str, *stores: Store, field_names: bool = True) -> None:
    """No secret value nor ciphertext; in objects, not even a credential field name (an error
    message may name the fields it expects)."""
    words = (*WOO_SECRETS, SHOPIFY_TOKEN, NEW_KEY, NEW_SECRET)
    for word in (*words, *(FORBIDDEN_WORDS if field_names else ())):
        assert word not in text
    for store in stores:
        assert store.credentials_encrypted and store.credentials_encrypted not in text


async def snapshot(store_id: str) -> dict[str, Any]:
    [row] = await Store.filter(id=store_id).values()
    return row


async def test_list_has_the_documented_shape_and_no_credentials(client, tenant, other_tenant):
    woo = await make_store(tenant)
    await asyncio.sleep(0.002)  # ids order by millisecond; see test_list_pages_with_a_cursor
    shop = await make_store(
        tenant,
        name="Coin Shop on Shopify",
        platform="shopify",
        url="https://coins.myshopify.com/",
        credentials={"access_token": SHOPIFY_TOKEN},
        sync_enabled=False,
    )
    await make_store(tenant, name="Sandbox Shop", environment=Environment.SANDBOX)
    await make_store(other_tenant, name="Rival Store")

    response = await client.get("/v1/stores", headers=tenant.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["has_more"] is False and body["next_cursor"] is None
    assert [s["id"] for s in body["data"]] == [shop.id, woo.id]  # newest first, own live only
    first, second = body["data"]
    assert first["id"].startswith("store_") and second["id"].startswith("store_")
    assert first == {
        "id": shop.id,
        "object": "store",
        "name": "Coin Shop on Shopify",
        "platform": "shopify",
        "url": "https://coins.myshopify.com",
        "sync_enabled": False,
        "simulated": False,
        "credentials_set": True,
        "settings": {
            "sold_lots": "out_of_stock",
            "filters": {"metals": [], "services": [], "min_cost": None, "max_cost": None},
        },
        "livemode": True,
        "created_at": first["created_at"],
        "updated_at": first["updated_at"],
    }
    assert first["created_at"].endswith("Z")
    assert (second["name"], second["platform"], second["sync_enabled"]) == (
        "My WooCommerce Store",
        "woocommerce",
        True,
    )
    for item in body["data"]:
        StoreObject.model_validate(item)
    assert_no_credentials(response.text, woo, shop)


async def test_list_pages_with_a_cursor(client, tenant):
    created = [await make_store(tenant, name=f"Store {i}") for i in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/stores", params=params, headers=tenant.headers())
        body = response.json()
        assert len(body["data"]) <= 2
        seen += [s["id"] for s in body["data"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        cursor = body["next_cursor"]
    # Every store exactly once, in the stable order (newest first by time-ordered id; ids made
    # within one millisecond order by their random part).
    assert seen == sorted((s.id for s in created), reverse=True)


async def test_sandbox_key_sees_only_sandbox_stores(client, tenant):
    await make_store(tenant)
    sandbox = await make_store(tenant, name="Test Shop", environment=Environment.SANDBOX)
    body = (await client.get("/v1/stores", headers=tenant.headers(tenant.test))).json()
    assert [(s["id"], s["livemode"]) for s in body["data"]] == [(sandbox.id, False)]


async def test_get_one(client, tenant):
    store = await make_store(tenant)
    response = await client.get(f"/v1/stores/{store.id}", headers=tenant.headers())
    assert response.status_code == 200
    data = response.json()["data"]
    StoreObject.model_validate(data)
    assert (data["id"], data["name"], data["url"], data["credentials_set"]) == (
        store.id,
        "My WooCommerce Store",
        "https://shop.example.com",
        True,
    )
    assert_no_credentials(response.text, store)


async def test_get_unknown_store_is_404(client, tenant):
    response = await client.get("/v1/stores/store_doesnotexist", headers=tenant.headers())
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert response.json()["error"]["code"] == "resource_missing"


async def test_put_changes_everything_and_replaces_credentials(client, tenant):
    store = await make_store(tenant)
    before = await snapshot(store.id)
    body = {
        "name": "  Renamed Coins  ",
        "url": "http://coins.example.org/shop/",
        "sync_enabled": False,
        "settings": {
            "sold_lots": "delete",
            "filters": {
                "metals": ["Gold", "Silver"],
                "services": ["PCGS"],
                "min_cost": 100.5,
                "max_cost": 2500,
            },
        },
        "credentials": {"consumer_key": NEW_KEY, "consumer_secret": NEW_SECRET},
    }
    response = await client.put(f"/v1/stores/{store.id}", json=body, headers=tenant.headers())
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    StoreObject.model_validate(data)
    assert data["name"] == "Renamed Coins"
    assert data["url"] == "http://coins.example.org/shop"
    assert data["sync_enabled"] is False
    assert data["credentials_set"] is True
    assert data["settings"] == {
        "sold_lots": "delete",
        "filters": {
            "metals": ["Gold", "Silver"],
            "services": ["PCGS"],
            "min_cost": 100.5,  # JSON numbers, like every amount on the wire
            "max_cost": 2500,
        },
    }
    assert_no_credentials(response.text, store)

    after = await snapshot(store.id)
    assert after["credentials_encrypted"] != before["credentials_encrypted"]
    row_text = repr(after)
    for plain in (NEW_KEY, NEW_SECRET, *WOO_SECRETS):
        assert plain not in row_text
    stored = await Store.get(id=store.id)
    assert service.credentials_of(stored) == {
        "consumer_key": NEW_KEY,
        "consumer_secret": NEW_SECRET,
    }
    assert (stored.name, stored.url, stored.sync_enabled) == (
        "Renamed Coins",
        "http://coins.example.org/shop",
        False,
    )

    # And it reads back the same way.
    again = await client.get(f"/v1/stores/{store.id}", headers=tenant.headers())
    assert again.json()["data"]["settings"] == data["settings"]
    assert again.json()["data"]["name"] == "Renamed Coins"


async def test_put_partial_leaves_other_fields(client, tenant):
    store = await make_store(tenant)
    before = await snapshot(store.id)
    response = await client.put(
        f"/v1/stores/{store.id}", json={"sync_enabled": False}, headers=tenant.headers()
    )
    assert response.status_code == 200, response.text
    after = await snapshot(store.id)
    assert after["sync_enabled"] is False
    for name in ("name", "url", "credentials_encrypted", "settings"):
        assert after[name] == before[name]
    assert service.credentials_of(await Store.get(id=store.id)) == {
        "consumer_key": WOO_SECRETS[0],
        "consumer_secret": WOO_SECRETS[1],
    }


async def test_put_replaces_shopify_token(client, tenant):
    store = await make_store(
        tenant, platform="shopify", credentials={"access_token": SHOPIFY_TOKEN}
    )
    response = await client.put(
        f"/v1/stores/{store.id}",
        json={"credentials": {"access_token": "shpat_new_token_42"}},
        headers=tenant.headers(),
    )
    assert response.status_code == 200, response.text
    assert "shpat_new_token_42" not in response.text
    stored = await Store.get(id=store.id)
    assert service.credentials_of(stored) == {"access_token": "shpat_new_token_42"}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"url": "not a url"}, "parameter_invalid", "url"),
        ({"url": "ftp://shop.example.com"}, "parameter_invalid", "url"),
        ({"url": "javascript:alert(1)"}, "parameter_invalid", "url"),
        ({"url": None}, "parameter_invalid", "url"),
        ({"url": "https://admin:hunter2@shop.example.com"}, "parameter_invalid", "url"),
        ({"url": "https://shop.example.com/" + "a" * 500}, "parameter_invalid", "url"),
        ({"name": "Coins\x00Shop"}, "parameter_invalid", "name"),
        (
            {"settings": {"filters": {"metals": ["Go\x00ld"]}}},
            "parameter_invalid",
            "settings.filters.metals.0",
        ),
        ({"colour": "red"}, "unknown_parameter", "colour"),
        ({"name": ""}, "parameter_invalid", "name"),
        ({"name": "   "}, "parameter_invalid", "name"),
        ({"name": None}, "parameter_invalid", "name"),
        ({"name": "x" * 201}, "parameter_invalid", "name"),
        ({"sync_enabled": None}, "parameter_invalid", "sync_enabled"),
        ({"sync_enabled": "maybe"}, "parameter_invalid", "sync_enabled"),
        # Strings and numbers that lax parsing would read as booleans are the wrong JSON type.
        ({"sync_enabled": "no"}, "parameter_invalid", "sync_enabled"),
        ({"sync_enabled": "false"}, "parameter_invalid", "sync_enabled"),
        ({"sync_enabled": 0}, "parameter_invalid", "sync_enabled"),
        (
            {"settings": {"filters": {"metals": [7]}}},
            "parameter_invalid",
            "settings.filters.metals.0",
        ),
        ({"credentials": {"access_token": "shpat_x"}}, "parameter_invalid", "credentials"),
        ({"credentials": {"consumer_key": "ck_only"}}, "parameter_invalid", "credentials"),
        (
            {"credentials": {"consumer_key": "ck", "consumer_secret": "cs", "extra": "x"}},
            "parameter_invalid",
            "credentials",
        ),
        (
            {"credentials": {"consumer_key": "", "consumer_secret": "cs"}},
            "parameter_invalid",
            "credentials",
        ),
        ({"credentials": "ck:cs"}, "parameter_invalid", "credentials"),
        ({"credentials": None}, "parameter_invalid", "credentials"),
        ({"settings": {"sold_lots": "bogus"}}, "parameter_invalid", "settings.sold_lots"),
        ({"settings": {"colour": 1}}, "unknown_parameter", "settings.colour"),
        ({"settings": None}, "parameter_invalid", "settings"),
        (
            {"settings": {"filters": {"min_cost": 500, "max_cost": 100}}},
            "parameter_invalid",
            "settings.filters",
        ),
        (
            {"settings": {"filters": {"min_cost": -1}}},
            "parameter_invalid",
            "settings.filters.min_cost",
        ),
        (
            {"settings": {"filters": {"max_cost": "lots"}}},
            "parameter_invalid",
            "settings.filters.max_cost",
        ),
        (
            {"settings": {"filters": {"metals": "Gold"}}},
            "parameter_invalid",
            "settings.filters.metals",
        ),
    ],
)
async def test_put_rejects_bad_input_and_changes_nothing(client, tenant, body, code, param):
    store = await make_store(tenant)
    before = await snapshot(store.id)
    response = await client.put(f"/v1/stores/{store.id}", json=body, headers=tenant.headers())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["param"] == param
    assert error["code"] == code
    assert await snapshot(store.id) == before
    assert_no_credentials(response.text, store, field_names=False)


async def test_put_with_valid_fields_and_one_bad_field_changes_nothing(client, tenant):
    store = await make_store(tenant)
    before = await snapshot(store.id)
    response = await client.put(
        f"/v1/stores/{store.id}",
        json={"name": "New name", "sync_enabled": False, "credentials": {"access_token": "x"}},
        headers=tenant.headers(),
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "credentials"
    assert await snapshot(store.id) == before


async def test_read_only_key_cannot_put(client, tenant):
    store = await make_store(tenant)
    before = await snapshot(store.id)
    response = await client.put(
        f"/v1/stores/{store.id}", json={"name": "Nope"}, headers=tenant.headers(tenant.live_read)
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert await snapshot(store.id) == before


# --- GraphQL ---------------------------------------------------------------------------------

STORE_FIELDS = """
    id name platform url syncEnabled credentialsSet createdAt updatedAt
    settings { soldLots filters { metals services minCost maxCost } }
"""


async def gql(client, tenant, query: str, variables: dict[str, Any] | None = None, key=None):
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=tenant.headers(key),
    )
    assert response.status_code == 200, response.text
    return response


CREATE = f"""
mutation($input: StoreCreateInput!) {{ storeCreate(input: $input) {{ {STORE_FIELDS} }} }}
"""
UPDATE = f"""
mutation($id: ID!, $input: StoreUpdateInput!) {{
  storeUpdate(id: $id, input: $input) {{ {STORE_FIELDS} }}
}}
"""


async def test_graphql_store_create_with_typed_inputs(client, tenant):
    variables = {
        "input": {
            "name": "GraphQL Coins",
            "platform": "WOOCOMMERCE",
            "url": "https://gql.example.com/",
            "credentials": {"consumerKey": "ck_gql_1", "consumerSecret": "cs_gql_2"},
            "settings": {
                "soldLots": "DELETE",
                "filters": {"metals": ["Gold"], "minCost": "10.50", "maxCost": "900"},
            },
        }
    }
    response = await gql(client, tenant, CREATE, variables)
    body = response.json()
    assert "errors" not in body, body
    created = body["data"]["storeCreate"]
    assert created["id"].startswith("store_")
    assert created["name"] == "GraphQL Coins"
    assert created["platform"] == "WOOCOMMERCE"
    assert created["url"] == "https://gql.example.com"
    assert created["syncEnabled"] is True and created["credentialsSet"] is True
    assert created["settings"]["soldLots"] == "DELETE"
    filters = created["settings"]["filters"]
    assert filters["metals"] == ["Gold"] and filters["services"] == []
    assert Decimal(filters["minCost"]) == Decimal("10.50")
    assert Decimal(filters["maxCost"]) == Decimal("900")
    assert "ck_gql_1" not in response.text and "cs_gql_2" not in response.text
    # Timestamps read as in REST: UTC, seconds, with a Z.
    rest = (await client.get(f"/v1/stores/{created['id']}", headers=tenant.headers())).json()
    assert created["createdAt"] == rest["data"]["created_at"]
    assert created["updatedAt"] == rest["data"]["updated_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["createdAt"])

    stored = await Store.get(id=created["id"])
    assert stored.account_id == tenant.account_id
    assert str(stored.environment) == "live"
    assert service.credentials_of(stored) == {
        "consumer_key": "ck_gql_1",
        "consumer_secret": "cs_gql_2",
    }
    assert "cs_gql_2" not in repr(await snapshot(stored.id))

    # The REST view of the same store agrees and carries numbers.
    rest = (await client.get(f"/v1/stores/{stored.id}", headers=tenant.headers())).json()
    assert rest["data"]["settings"]["filters"]["min_cost"] == 10.5
    assert rest["data"]["settings"]["filters"]["max_cost"] == 900


async def test_graphql_stores_and_store(client, tenant, other_tenant):
    first = await make_store(tenant, name="First")
    await asyncio.sleep(0.002)
    second = await make_store(
        tenant, name="Second", platform="shopify", credentials={"access_token": SHOPIFY_TOKEN}
    )
    await make_store(other_tenant, name="Rival")
    query = f"""
    query($id: ID!) {{
      stores(first: 1) {{
        nodes {{ id name }} edges {{ cursor node {{ id }} }}
        pageInfo {{ hasNextPage endCursor }}
      }}
      store(id: $id) {{ {STORE_FIELDS} }}
    }}
    """
    response = await gql(client, tenant, query, {"id": first.id})
    body = response.json()
    assert "errors" not in body, body
    page = body["data"]["stores"]
    assert page["nodes"] == [{"id": second.id, "name": "Second"}]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = (
        await client.get(
            f"/v1/stores?cursor={page['pageInfo']['endCursor']}", headers=tenant.headers()
        )
    ).json()
    assert [s["id"] for s in rest["data"]] == [first.id]
    one = body["data"]["store"]
    assert (one["id"], one["name"], one["platform"], one["credentialsSet"]) == (
        first.id,
        "First",
        "WOOCOMMERCE",
        True,
    )
    assert one["settings"] == {
        "soldLots": "OUT_OF_STOCK",
        "filters": {"metals": [], "services": [], "minCost": None, "maxCost": None},
    }
    assert_no_credentials(response.text, first, second)


async def test_graphql_store_update(client, tenant):
    store = await make_store(tenant)
    before = await snapshot(store.id)
    variables = {
        "id": store.id,
        "input": {
            "name": "Renamed via GraphQL",
            "syncEnabled": False,
            "credentials": {"consumerKey": NEW_KEY, "consumerSecret": NEW_SECRET},
            "settings": {"filters": {"services": ["NGC"], "maxCost": "75.25"}},
        },
    }
    response = await gql(client, tenant, UPDATE, variables)
    body = response.json()
    assert "errors" not in body, body
    updated = body["data"]["storeUpdate"]
    assert (updated["name"], updated["syncEnabled"]) == ("Renamed via GraphQL", False)
    assert updated["url"] == "https://shop.example.com"
    assert updated["settings"]["filters"]["services"] == ["NGC"]
    assert Decimal(updated["settings"]["filters"]["maxCost"]) == Decimal("75.25")
    assert NEW_SECRET not in response.text
    after = await snapshot(store.id)
    assert after["credentials_encrypted"] != before["credentials_encrypted"]
    assert service.credentials_of(await Store.get(id=store.id)) == {
        "consumer_key": NEW_KEY,
        "consumer_secret": NEW_SECRET,
    }


@pytest.mark.parametrize(
    ("input_", "param"),
    [
        ({"url": "ftp://shop.example.com"}, "input.url"),
        ({"url": "nope"}, "input.url"),
        ({"url": "https://admin:hunter2@shop.example.com"}, "input.url"),
        ({"name": ""}, "input.name"),
        ({"name": None}, "input.name"),
        ({"credentials": {"accessToken": "shpat_x"}}, "input.credentials"),
        ({"credentials": {"consumerKey": "ck_only"}}, "input.credentials"),
        ({"settings": {"soldLots": None}}, "input.settings.sold_lots"),
        ({"settings": {"filters": {"minCost": "10", "maxCost": "5"}}}, "input.settings.filters"),
        ({"settings": {"filters": {"minCost": "-3"}}}, "input.settings.filters.min_cost"),
    ],
)
async def test_graphql_store_update_rejects_bad_input(client, tenant, input_, param):
    store = await make_store(tenant)
    before = await snapshot(store.id)
    response = await gql(client, tenant, UPDATE, {"id": store.id, "input": input_})
    body = response.json()
    assert body["data"] == {"storeUpdate": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "parameter_invalid"
    assert error["extensions"]["param"] == param
    assert await snapshot(store.id) == before


async def test_graphql_store_create_rejects_wrong_credentials(client, tenant):
    variables = {
        "input": {
            "name": "Shopify without token",
            "platform": "SHOPIFY",
            "url": "https://x.myshopify.com",
            "credentials": {"consumerKey": "ck", "consumerSecret": "cs"},
        }
    }
    body = (await gql(client, tenant, CREATE, variables)).json()
    assert body["data"] == {"storeCreate": None}
    assert body["errors"][0]["extensions"]["code"] == "parameter_invalid"
    assert body["errors"][0]["extensions"]["param"] == "input.credentials"
    assert await Store.filter(account_id=tenant.account_id).count() == 0


@pytest.mark.parametrize("credentials", ["left out", None, {}])
async def test_graphql_simulated_store_needs_no_credentials(client, tenant, credentials):
    store_input: dict[str, Any] = {
        "name": "Practice shop",
        "platform": "SHOPIFY",
        "url": "https://practice.example.com",
        "simulated": True,
    }
    if credentials != "left out":
        store_input["credentials"] = credentials
    body = (await gql(client, tenant, CREATE, {"input": store_input}, key=tenant.test)).json()
    assert "errors" not in body, body
    created = body["data"]["storeCreate"]
    assert created["credentialsSet"] is True
    stored = await Store.get(id=created["id"])
    assert str(stored.environment) == "sandbox" and stored.simulated
    assert service.credentials_of(stored) == {"access_token": "shpat_simulated"}


@pytest.mark.parametrize("credentials", ["left out", None])
async def test_graphql_real_store_needs_credentials(client, tenant, credentials):
    store_input: dict[str, Any] = {
        "name": "Real shop",
        "platform": "SHOPIFY",
        "url": "https://x.myshopify.com",
    }
    if credentials != "left out":
        store_input["credentials"] = credentials
    body = (await gql(client, tenant, CREATE, {"input": store_input})).json()
    [error] = body["errors"]
    assert error["extensions"]["param"] == "input.credentials"
    assert error["message"] == "shopify credentials need exactly: access_token."
    assert await Store.filter(account_id=tenant.account_id).count() == 0


async def test_a_simulated_store_keeps_the_credentials_it_was_given(client, tenant):
    store_input = {
        "name": "Practice shop",
        "platform": "WOOCOMMERCE",
        "url": "https://practice.example.com",
        "simulated": True,
        "credentials": {"consumerKey": "ck_mine"},
    }
    body = (await gql(client, tenant, CREATE, {"input": store_input}, key=tenant.test)).json()
    assert "errors" not in body, body
    stored = await Store.get(id=body["data"]["storeCreate"]["id"])
    assert service.credentials_of(stored) == {
        "consumer_key": "ck_mine",
        "consumer_secret": "cs_simulated",
    }


async def test_a_credential_too_long_says_so_without_echoing_it(client, tenant):
    store = await make_store(tenant)
    secret = "cs_" + "9" * 600
    response = await client.put(
        f"/v1/stores/{store.id}",
        json={"credentials": {"consumer_key": "ck_1", "consumer_secret": secret}},
        headers=tenant.headers(),
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "credentials"
    assert error["message"].startswith("Invalid credentials: consumer_secret: String should")
    assert secret not in response.text


async def test_graphql_unknown_store_and_read_only_key(client, tenant):
    store = await make_store(tenant)
    body = (await gql(client, tenant, '{ store(id: "store_nope") { id } }')).json()
    assert body["errors"][0]["extensions"]["code"] == "resource_missing"
    before = await snapshot(store.id)
    body = (
        await gql(
            client, tenant, UPDATE, {"id": store.id, "input": {"name": "x"}}, key=tenant.live_read
        )
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "insufficient_scope"
    assert await snapshot(store.id) == before


async def test_put_settings_merges_into_the_current_settings(client, tenant):
    store = await make_store(
        tenant,
        settings={"sold_lots": "delete", "filters": {"metals": ["Gold"], "max_cost": "100"}},
    )
    url = f"/v1/stores/{store.id}"
    response = await client.put(
        url, json={"settings": {"filters": {"min_cost": 25}}}, headers=tenant.headers()
    )
    assert response.status_code == 200, response.text
    settings = response.json()["data"]["settings"]
    assert settings["sold_lots"] == "delete"
    assert settings["filters"]["metals"] == ["Gold"]
    assert (settings["filters"]["min_cost"], settings["filters"]["max_cost"]) == (25, 100)

    # The merged result must hold as a whole: a minimum above the stored maximum is refused.
    response = await client.put(
        url, json={"settings": {"filters": {"min_cost": 500}}}, headers=tenant.headers()
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "settings.filters"
    stored = await Store.get(id=store.id)
    assert Decimal(str(stored.settings["filters"]["min_cost"])) == Decimal("25")


async def test_concurrent_updates_of_different_settings_both_land(client, tenant):
    import asyncio as _asyncio

    store = await make_store(tenant)
    url = f"/v1/stores/{store.id}"
    first, second = await _asyncio.gather(
        client.put(url, json={"settings": {"sold_lots": "delete"}}, headers=tenant.headers()),
        client.put(
            url, json={"settings": {"filters": {"metals": ["Gold"]}}}, headers=tenant.headers()
        ),
    )
    assert (first.status_code, second.status_code) == (200, 200)
    settings = (await Store.get(id=store.id)).settings
    assert settings["sold_lots"] == "delete"
    assert settings["filters"]["metals"] == ["Gold"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://shop.example.com", "https"),
        ("https://169.254.169.254/latest", "private"),
        ("https://127.0.0.1:8443", "private"),
        ("https://10.1.2.3", "private"),
        ("https://[::1]", "private"),
    ],
)
async def test_production_refuses_urls_into_our_own_network(settings, url, why):
    """In production a store URL must be https on a public address (no SSRF via syncs)."""
    import httpx
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from tests.conftest import make_tenant

    production = settings.model_copy(update={"env": "production"})
    application = create_app(production)
    async with LifespanManager(application):
        tenant = await make_tenant()
        # A public address literal: validated without DNS (nothing is ever sent to it).
        store = await make_store(tenant, url="https://93.184.215.14")
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.put(
                f"/v1/stores/{store.id}", json={"url": url}, headers=tenant.headers()
            )
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("url_not_allowed", "url")
        assert why in error["message"]
        assert (await Store.get(id=store.id)).url == "https://93.184.215.14"


async def test_settings_amounts_read_back_whatever_notation_they_were_stored_in(client, tenant):
    """`"0.0000000"` is a plain amount; stored, it reads `0E-7`. Stored settings are the
    application's own data: reading them back never applies the client-notation rule."""
    store = await make_store(tenant)
    response = await client.put(
        f"/v1/stores/{store.id}",
        json={"settings": {"filters": {"min_cost": "0.0000000"}}},
        headers=tenant.headers(),
    )
    assert response.status_code == 200, response.text
    await Store.filter(id=store.id).update(
        settings={"sold_lots": "delete", "filters": {"min_cost": "1E+2", "max_cost": "2E+3"}}
    )
    listed = await client.get("/v1/stores", headers=tenant.headers())
    assert listed.status_code == 200, listed.text
    [data] = listed.json()["data"]
    assert (data["settings"]["filters"]["min_cost"], data["settings"]["filters"]["max_cost"]) == (
        100,
        2000,
    )
    # A later partial update of another setting keeps them.
    changed = await client.put(
        f"/v1/stores/{store.id}",
        json={"settings": {"sold_lots": "out_of_stock"}},
        headers=tenant.headers(),
    )
    assert changed.status_code == 200, changed.text
    body = await gql(
        client, tenant, "{ stores(first: 5) { nodes { settings { filters { minCost } } } } }"
    )
    assert body.json()["data"]["stores"]["nodes"][0]["settings"]["filters"]["minCost"] == "100.00"
