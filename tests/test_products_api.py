"""`/v1/products` and the GraphQL product fields, end to end in-process."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from app.accounts.models import Environment
from app.events.models import Event
from app.products.models import Product
from rest_compat.schemas import ProductObject
from tests.conftest import make_product


async def test_list_matches_the_documented_shape(client, tenant):
    product = await make_product(tenant)
    response = await client.get("/v1/products", headers=tenant.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False and body["next_cursor"] is None
    [item] = body["data"]
    assert item["id"] == product.id and item["id"].startswith("prod_")
    assert item["title"] == "1921 Morgan Dollar MS65"
    assert item["price"] == 430.50
    assert item["ha_lot"] == "123456"
    assert item["sku"] == "HA-123456"
    assert item["margin"] == pytest.approx(56.15)
    ProductObject.model_validate(item)


async def test_pages_are_stable_and_complete(client, tenant):
    created = [await make_product(tenant, str(100000 + i)) for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/products", params=params, headers=tenant.headers())).json()
        seen += [p["id"] for p in body["data"]]
        if not body["has_more"]:
            break
        cursor = body["next_cursor"]
    assert seen == [p.id for p in reversed(created)]


async def test_filters(client, tenant):
    await make_product(tenant, "1", title="1924 Saint-Gaudens Double Eagle MS64", metal="Gold")
    await make_product(tenant, "2", title="1921 Morgan Dollar MS63", metal="Silver")
    body = (await client.get("/v1/products?metal=Gold", headers=tenant.headers())).json()
    assert [p["ha_lot"] for p in body["data"]] == ["1"]
    body = (await client.get("/v1/products?search=morgan", headers=tenant.headers())).json()
    assert [p["ha_lot"] for p in body["data"]] == ["2"]


async def test_get_one(client, tenant):
    product = await make_product(tenant)
    response = await client.get(f"/v1/products/{product.id}", headers=tenant.headers())
    assert response.status_code == 200
    assert response.json()["data"]["id"] == product.id


async def test_put_sets_a_price_lock_and_emits_an_event(client, tenant):
    product = await make_product(tenant)
    response = await client.put(
        f"/v1/products/{product.id}",
        json={"title": "1921 Morgan Dollar MS65 CAC", "price": 499.99, "tags": ["morgan", "cac"]},
        headers=tenant.headers(),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["title"] == "1921 Morgan Dollar MS65 CAC"
    assert data["price"] == 499.99 and data["price_locked"] is True
    assert data["margin"] == pytest.approx(125.64)
    assert data["tags"] == ["morgan", "cac"]
    stored = await Product.get(id=product.id)
    assert stored.manual_price == Decimal("499.99")
    event = await Event.filter(type="product.updated").first()
    assert event is not None and event.data["product_id"] == product.id
    assert event.data["price"] == 499.99

    released = await client.put(
        f"/v1/products/{product.id}", json={"price": None}, headers=tenant.headers()
    )
    assert released.json()["data"]["price_locked"] is False


async def test_put_takes_a_price_as_a_numeric_string_exactly(client, tenant):
    product = await make_product(tenant)
    response = await client.put(
        f"/v1/products/{product.id}", json={"price": "1250.10"}, headers=tenant.headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["price"] == 1250.1
    stored = await Product.get(id=product.id)
    assert stored.manual_price == Decimal("1250.10")


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"price": -1}, "parameter_invalid", "price"),
        ({"price": "abc"}, "parameter_invalid", "price"),
        ({"price": 1.234}, "parameter_invalid", "price"),
        ({"title": ""}, "parameter_invalid", "title"),
        ({"title": None}, "parameter_invalid", "title"),
        ({"status": "sold"}, "parameter_invalid", "status"),
        ({"status": "bogus"}, "parameter_invalid", "status"),
        ({"tags": "x"}, "parameter_invalid", "tags"),
        ({"tags": [1]}, "parameter_invalid", "tags.0"),
        ({"price": True}, "parameter_invalid", "price"),
        # A numeric string in the plain notation only: Decimal() alone would take all these.
        ({"price": "1_000"}, "parameter_invalid", "price"),
        ({"price": " 12 "}, "parameter_invalid", "price"),
        ({"price": "12."}, "parameter_invalid", "price"),
        ({"price": "1e2"}, "parameter_invalid", "price"),
        ({"price": "\u0661\u0662"}, "parameter_invalid", "price"),  # Arabic-Indic 12
        ({"price": [12]}, "parameter_invalid", "price"),
        ({"colour": "red"}, "unknown_parameter", "colour"),
    ],
)
async def test_put_rejects_bad_input_and_changes_nothing(client, tenant, body, code, param):
    product = await make_product(tenant)
    response = await client.put(f"/v1/products/{product.id}", json=body, headers=tenant.headers())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert (error["code"], error["param"]) == (code, param)
    stored = await Product.get(id=product.id)
    assert (stored.title, stored.price, stored.manual_price) == (
        product.title,
        product.price,
        None,
    )


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"price"'])
async def test_put_rejects_malformed_json(client, tenant, raw):
    product = await make_product(tenant)
    response = await client.put(
        f"/v1/products/{product.id}",
        content=raw,
        headers={**tenant.headers(), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=5_0", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=%205", "limit"),
        ("limit=", "limit"),
        ("cursor=", "cursor"),
        ("cursor=zzz", "cursor"),
        ("status=gone", "status"),
        ("nope=1", "nope"),
    ],
)
async def test_list_rejects_bad_parameters(client, tenant, query, param):
    response = await client.get(f"/v1/products?{query}", headers=tenant.headers())
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "inner",
    [
        "v1:prod_!!!",  # the right prefix, not an id
        "v1:prod_zzzzzzzzzzzzzzzzzzzzzzzz",  # outside the id alphabet
        "v1:prod_06h1s65ms2677rgv1419kgh",  # one character short
        "v1:prod_06h1s65ms2677rgv1419kgh8\n",  # a well-formed id and a line break
        "v1:store_06h1s65ms2677rgv1419kgh8",  # another list's cursor
        "v2:prod_06h1s65ms2677rgv1419kgh8",
    ],
)
async def test_list_rejects_a_cursor_that_does_not_point_at_an_id(client, tenant, inner):
    await make_product(tenant)
    cursor = base64.urlsafe_b64encode(inner.encode()).decode().rstrip("=")
    response = await client.get(f"/v1/products?cursor={cursor}", headers=tenant.headers())
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_cursor", "cursor")


@pytest.mark.parametrize("product_id", ["prod_doesnotexist", "nope", "prod_" + "0" * 24, "%00"])
async def test_unknown_or_malformed_ids_are_404(client, tenant, product_id):
    response = await client.get(f"/v1/products/{product_id}", headers=tenant.headers())
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


async def test_oversized_body_is_413(client, tenant):
    product = await make_product(tenant)
    response = await client.put(
        f"/v1/products/{product.id}",
        json={"description": "x" * (1024 * 1024 + 10)},
        headers=tenant.headers(),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert (await Product.get(id=product.id)).description == ""


async def test_read_only_key_cannot_write(client, tenant):
    product = await make_product(tenant)
    response = await client.put(
        f"/v1/products/{product.id}", json={"title": "x"}, headers=tenant.headers(tenant.live_read)
    )
    assert response.status_code == 403
    assert response.json()["error"] == {
        "type": "permission",
        "code": "insufficient_scope",
        "message": "This credential lacks the `products:write` scope.",
        "param": None,
    }


async def test_sandbox_and_live_are_separate(client, tenant):
    live = await make_product(tenant, "111")
    sandbox = await make_product(tenant, "222", environment=Environment.SANDBOX)
    live_ids = [
        p["id"] for p in (await client.get("/v1/products", headers=tenant.headers())).json()["data"]
    ]
    test_body = (await client.get("/v1/products", headers=tenant.headers(tenant.test))).json()
    assert live_ids == [live.id]
    assert [p["id"] for p in test_body["data"]] == [sandbox.id]
    assert test_body["data"][0]["livemode"] is False
    response = await client.get(f"/v1/products/{live.id}", headers=tenant.headers(tenant.test))
    assert response.status_code == 404


async def test_graphql_products_and_update(client, tenant):
    product = await make_product(tenant)
    query = """
      query($first: Int!) { products(first: $first, filter: {metal: "Silver"}) {
        edges { cursor node { id title price margin status } } pageInfo { hasNextPage } } }
    """
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"first": 10}}, headers=tenant.headers()
    )
    body = response.json()
    assert "errors" not in body, body
    [edge] = body["data"]["products"]["edges"]
    assert edge["node"] == {
        "id": product.id,
        "title": "1921 Morgan Dollar MS65",
        "price": "430.50",
        "margin": "56.15",
        "status": "ACTIVE",
    }
    mutation = """mutation($id: ID!) { productUpdate(id: $id, input: {price: "512.00"}) {
        price priceLocked margin } }"""
    body = (
        await client.post(
            "/graphql",
            json={"query": mutation, "variables": {"id": product.id}},
            headers=tenant.headers(),
        )
    ).json()
    assert "errors" not in body, body
    assert body["data"]["productUpdate"] == {
        "price": "512.00",
        "priceLocked": True,
        "margin": "137.65",
    }


async def test_graphql_errors_carry_codes(client, tenant):
    product = await make_product(tenant)
    body = (
        await client.post(
            "/graphql",
            json={"query": '{ product(id: "prod_missing") { id } }'},
            headers=tenant.headers(),
        )
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "resource_missing"
    mutation = 'mutation($id: ID!) { productUpdate(id: $id, input: {price: "-5"}) { price } }'
    body = (
        await client.post(
            "/graphql",
            json={"query": mutation, "variables": {"id": product.id}},
            headers=tenant.headers(),
        )
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "parameter_invalid"
    assert body["errors"][0]["extensions"]["param"] == "input.price"
    assert (await Product.get(id=product.id)).price == Decimal("430.50")


async def test_a_sold_product_cannot_be_put_back_on_sale(client, tenant):
    product = await make_product(tenant)
    await Product.filter(id=product.id).update(status="sold")
    response = await client.put(
        f"/v1/products/{product.id}", json={"status": "active"}, headers=tenant.headers()
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "product_sold"
    assert (await Product.get(id=product.id)).status == "sold"
    # Other edits (a note in the description) are still allowed.
    ok = await client.put(
        f"/v1/products/{product.id}",
        json={"description": "Sold 2026-11-27."},
        headers=tenant.headers(),
    )
    assert ok.status_code == 200 and ok.json()["data"]["status"] == "sold"


async def test_negative_zero_price_is_zero(client, tenant):
    product = await make_product(tenant)
    response = await client.put(
        f"/v1/products/{product.id}", json={"price": -0.0}, headers=tenant.headers()
    )
    assert response.status_code == 200
    assert str(response.json()["data"]["price"]) == "0.0"
