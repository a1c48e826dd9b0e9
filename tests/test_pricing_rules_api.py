"""`/v1/pricing-rules` and the GraphQL pricing rule fields, end to end in-process: shapes, CRUD,
validation that stores nothing, scopes, idempotent creation, sandbox separation, and the
conversion to the pure pricing core."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.accounts.models import Environment
from app.idempotency.models import IdempotencyRecord
from app.pricing import service
from app.pricing.core import LotFacts, Rounding, price_lot
from app.pricing.models import PricingRule
from rest_compat.schemas import DeletedObject, PricingRuleObject
from tests.conftest import make_pricing_rule

SILVER = {
    "name": "Silver dollars +15 %",
    "priority": 10,
    "markup_percent": 15,
    "rounding": "1.00",
    "min_margin": 20,
    "metals": ["Silver"],
    "services": ["PCGS", "NGC"],
    "min_grade": 60,
    "max_grade": 70,
    "min_cost": 100,
    "max_cost": 5000.5,
    "title_contains": "Morgan",
}


async def count(tenant) -> int:
    return await PricingRule.filter(account_id=tenant.account_id).count()


async def snapshot(rule_id: str) -> dict[str, Any]:
    [row] = await PricingRule.filter(id=rule_id).values()
    return row


async def test_create_answers_201_with_the_documented_shape(client, tenant):
    response = await client.post("/v1/pricing-rules", json=SILVER, headers=tenant.headers())
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    PricingRuleObject.model_validate(data)
    assert data["id"].startswith("rule_") and len(data["id"]) == len("rule_") + 24
    assert data == {
        "id": data["id"],
        "object": "pricing_rule",
        "name": "Silver dollars +15 %",
        "active": True,
        "is_default": False,
        "priority": 10,
        "markup_percent": 15.0,
        "markup_fixed": 0.0,
        "rounding": "1.00",
        "min_margin": 20.0,
        "min_margin_percent": None,
        "metals": ["Silver"],
        "services": ["PCGS", "NGC"],
        "min_grade": 60,
        "max_grade": 70,
        "min_cost": 100.0,
        "max_cost": 5000.5,
        "title_contains": "Morgan",
        "livemode": True,
        "created_at": data["created_at"],
        "updated_at": data["updated_at"],
    }
    assert data["created_at"].endswith("Z")
    # What was stored reads back the same.
    listed = await client.get("/v1/pricing-rules", headers=tenant.headers())
    assert listed.status_code == 200
    assert listed.json()["data"] == [data]


async def test_defaults(client, tenant):
    response = await client.post(
        "/v1/pricing-rules",
        json={"name": "Everything +$25", "markup_fixed": 25},
        headers=tenant.headers(),
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert (data["active"], data["priority"], data["rounding"]) == (True, 100, "none")
    assert (data["markup_percent"], data["markup_fixed"]) == (0.0, 25.0)
    assert (data["metals"], data["services"], data["min_grade"], data["title_contains"]) == (
        [],
        [],
        None,
        None,
    )


async def test_list_newest_first_own_live_only_with_cursor(client, tenant, other_tenant):
    created = [await make_pricing_rule(tenant, name=f"Rule {i}") for i in range(3)]
    await make_pricing_rule(tenant, name="Sandbox rule", environment=Environment.SANDBOX)
    await make_pricing_rule(other_tenant, name="Rival rule")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/pricing-rules", params=params, headers=tenant.headers())
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list" and len(body["data"]) <= 2
        for item in body["data"]:
            PricingRuleObject.model_validate(item)
        seen += [r["id"] for r in body["data"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        cursor = body["next_cursor"]
    assert seen == sorted((r.id for r in created), reverse=True)


async def test_sandbox_key_sees_and_creates_only_sandbox_rules(client, tenant):
    live = await make_pricing_rule(tenant)
    sandbox_key = tenant.headers(tenant.test)
    created = await client.post(
        "/v1/pricing-rules", json={"name": "Test", "markup_percent": 5}, headers=sandbox_key
    )
    assert created.status_code == 201
    assert created.json()["data"]["livemode"] is False
    body = (await client.get("/v1/pricing-rules", headers=sandbox_key)).json()
    assert [r["id"] for r in body["data"]] == [created.json()["data"]["id"]]
    missing = await client.put(
        f"/v1/pricing-rules/{live.id}", json={"name": "x"}, headers=sandbox_key
    )
    assert missing.status_code == 404
    body = (await client.get("/v1/pricing-rules", headers=tenant.headers())).json()
    assert [r["id"] for r in body["data"]] == [live.id]


async def test_put_is_partial(client, tenant):
    rule = await make_pricing_rule(tenant, **{**SILVER, "rounding": "0.99"})
    response = await client.put(
        f"/v1/pricing-rules/{rule.id}",
        json={
            "markup_percent": 20.5,
            "active": False,
            "title_contains": None,
            "max_grade": None,
            "services": None,  # null clears a condition, a list one too
        },
        headers=tenant.headers(),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    PricingRuleObject.model_validate(data)
    assert data["services"] == []
    assert (data["markup_percent"], data["active"], data["title_contains"], data["max_grade"]) == (
        20.5,
        False,
        None,
        None,
    )
    # Everything not sent stays.
    assert (data["name"], data["rounding"], data["min_margin"], data["metals"]) == (
        "Silver dollars +15 %",
        "0.99",
        20.0,
        ["Silver"],
    )
    stored = await snapshot(rule.id)
    assert stored["markup_percent"] == Decimal("20.50")
    assert stored["active"] is False and stored["title_contains"] is None
    listed = (await client.get("/v1/pricing-rules", headers=tenant.headers())).json()["data"]
    assert [r for r in listed if r["id"] == rule.id] == [data]


async def test_delete_then_404(client, tenant):
    rule = await make_pricing_rule(tenant)
    other = await make_pricing_rule(tenant, name="Keep me")
    response = await client.delete(f"/v1/pricing-rules/{rule.id}", headers=tenant.headers())
    assert response.status_code == 200
    assert response.json() == {"data": {"id": rule.id, "object": "pricing_rule", "deleted": True}}
    DeletedObject.model_validate(response.json()["data"])
    assert not await PricingRule.filter(id=rule.id).exists()
    assert await PricingRule.filter(id=other.id).exists()
    for method in ("DELETE",):
        again = await client.request(
            method, f"/v1/pricing-rules/{rule.id}", headers=tenant.headers()
        )
        assert again.status_code == 404, method
        assert again.json()["error"]["code"] == "resource_missing"
    put = await client.put(
        f"/v1/pricing-rules/{rule.id}", json={"name": "x"}, headers=tenant.headers()
    )
    assert put.status_code == 404


BAD_CREATES = [
    ({"name": "No markup"}, "parameter_invalid", "markup_percent"),
    (
        {"name": "Zeros", "markup_percent": 0, "markup_fixed": 0},
        "parameter_invalid",
        "markup_percent",
    ),
    ({"name": "Loss", "markup_percent": -10}, "below_cost", "markup_percent"),
    ({"name": "Loss", "markup_percent": 10, "markup_fixed": -5}, "below_cost", "markup_fixed"),
    ({"name": "R", "markup_percent": 5, "rounding": "0.50"}, "parameter_invalid", "rounding"),
    (
        {"name": "G", "markup_percent": 5, "min_grade": 65, "max_grade": 60},
        "parameter_invalid",
        "min_grade",
    ),
    ({"name": "G", "markup_percent": 5, "min_grade": 0}, "parameter_invalid", "min_grade"),
    ({"name": "G", "markup_percent": 5, "max_grade": 71}, "parameter_invalid", "max_grade"),
    (
        {"name": "C", "markup_percent": 5, "min_cost": 500, "max_cost": 100},
        "parameter_invalid",
        "min_cost",
    ),
    ({"name": "C", "markup_percent": 5, "min_cost": -1}, "parameter_invalid", "min_cost"),
    ({"name": "C", "markup_percent": 5, "min_cost": 1.005}, "parameter_invalid", "min_cost"),
    ({"name": "P", "markup_percent": 5, "priority": -1}, "parameter_invalid", "priority"),
    ({"name": "P", "markup_percent": 5, "priority": 10_001}, "parameter_invalid", "priority"),
    # The JSON type must match: lax parsing would take these as 5, 5 and False.
    ({"name": "P", "markup_percent": 5, "priority": "5"}, "parameter_invalid", "priority"),
    ({"name": "P", "markup_percent": 5, "priority": 5.0}, "parameter_invalid", "priority"),
    ({"name": "A", "markup_percent": 5, "active": "off"}, "parameter_invalid", "active"),
    ({"name": "", "markup_percent": 5}, "parameter_invalid", "name"),
    ({"name": "x" * 201, "markup_percent": 5}, "parameter_invalid", "name"),
    ({"markup_percent": 5}, "parameter_missing", "name"),
    ({"name": "U", "markup_percent": 5, "colour": "red"}, "unknown_parameter", "colour"),
    (
        {"name": "M", "markup_percent": -101, "allow_below_cost": True},
        "parameter_invalid",
        "markup_percent",
    ),
]


@pytest.mark.parametrize(("body", "code", "param"), BAD_CREATES)
async def test_create_rejects_bad_input_and_stores_nothing(client, tenant, body, code, param):
    response = await client.post("/v1/pricing-rules", json=body, headers=tenant.headers())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request", code, param)
    assert await count(tenant) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Clearance", "markup_percent": -10, "allow_below_cost": True},
        {"name": "Floor", "markup_percent": -10, "min_margin_percent": 5},
        {"name": "Fixed discount", "markup_percent": 30, "markup_fixed": -5, "min_margin": 1},
    ],
)
async def test_below_cost_needs_acknowledgement_or_a_margin_floor(client, tenant, body):
    response = await client.post("/v1/pricing-rules", json=body, headers=tenant.headers())
    assert response.status_code == 201, response.text
    assert "allow_below_cost" not in response.json()["data"]
    assert await count(tenant) == 1


async def test_put_validates_the_merged_rule_and_changes_nothing(client, tenant):
    rule = await make_pricing_rule(tenant, min_grade=60, min_cost=100)
    before = await snapshot(rule.id)
    cases = [
        ({"max_grade": 50}, "parameter_invalid", "min_grade"),
        ({"max_cost": 50}, "parameter_invalid", "min_cost"),
        ({"markup_percent": 0}, "parameter_invalid", "markup_percent"),
        ({"markup_percent": -5}, "below_cost", "markup_percent"),
        ({"name": None}, "parameter_invalid", "name"),
        ({"rounding": None}, "parameter_invalid", "rounding"),
        ({"rounding": "up"}, "parameter_invalid", "rounding"),
        ({"name": "ok", "priority": 20_000}, "parameter_invalid", "priority"),
        ({"id": "rule_x"}, "unknown_parameter", "id"),
    ]
    for body, code, param in cases:
        response = await client.put(
            f"/v1/pricing-rules/{rule.id}", json=body, headers=tenant.headers()
        )
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, param), body
        assert await snapshot(rule.id) == before, body


async def test_below_cost_rule_keeps_its_markup_through_unrelated_edits(client, tenant):
    rule = await make_pricing_rule(tenant, markup_percent="-10", allow_below_cost=True)
    url = f"/v1/pricing-rules/{rule.id}"
    renamed = await client.put(url, json={"name": "Clearance"}, headers=tenant.headers())
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data"]["markup_percent"] == -10.0
    # Changing the markup, or dropping the margin floor, asks again.
    deeper = await client.put(url, json={"markup_percent": -20}, headers=tenant.headers())
    assert deeper.status_code == 400
    assert deeper.json()["error"]["code"] == "below_cost"
    ok = await client.put(
        url, json={"markup_percent": -20, "allow_below_cost": True}, headers=tenant.headers()
    )
    assert ok.status_code == 200
    assert ok.json()["data"]["markup_percent"] == -20.0


@pytest.mark.parametrize("body", [b'{"confirm": false}', b"not json{", b"[]"])
async def test_delete_with_a_body_is_refused_and_deletes_nothing(client, tenant, body):
    rule = await make_pricing_rule(tenant)
    response = await client.request(
        "DELETE",
        f"/v1/pricing-rules/{rule.id}",
        content=body,
        headers={**tenant.headers(), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unexpected_body"
    assert await count(tenant) == 1


async def test_read_only_key_cannot_write(client, tenant):
    rule = await make_pricing_rule(tenant)
    before = await snapshot(rule.id)
    read = tenant.headers(tenant.live_read)
    responses = [
        await client.post("/v1/pricing-rules", json=SILVER, headers=read),
        await client.put(f"/v1/pricing-rules/{rule.id}", json={"name": "Nope"}, headers=read),
        await client.delete(f"/v1/pricing-rules/{rule.id}", headers=read),
    ]
    for response in responses:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_scope"
    assert await snapshot(rule.id) == before
    assert await count(tenant) == 1
    # Reading is allowed.
    listed = await client.get("/v1/pricing-rules", headers=read)
    assert [r["id"] for r in listed.json()["data"]] == [rule.id]


async def test_idempotency_key_replays_and_creates_once(client, tenant):
    headers = {**tenant.headers(), "Idempotency-Key": "rule-create-1"}
    first = await client.post("/v1/pricing-rules", json=SILVER, headers=headers)
    second = await client.post("/v1/pricing-rules", json=SILVER, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.json() == first.json()
    assert await count(tenant) == 1
    assert await IdempotencyRecord.filter(key="rule-create-1").count() == 1
    changed = await client.post(
        "/v1/pricing-rules", json={**SILVER, "name": "Other"}, headers=headers
    )
    assert changed.status_code == 409
    assert await count(tenant) == 1


async def test_to_core_prices_like_the_documented_example(tenant, app):
    rule = await make_pricing_rule(tenant, **{**SILVER, "min_margin": None})
    [stored] = await PricingRule.filter(id=rule.id)
    core = service.to_core(stored)
    assert core.rounding is Rounding.WHOLE
    assert core.metals == frozenset({"Silver"}) and core.min_cost == Decimal("100.00")
    lot = LotFacts(
        cost=Decimal("1087.00"),
        title="1921 Morgan Dollar MS65",
        metal="silver",
        service="PCGS",
        grade="MS65",
    )
    decision = price_lot(lot, [core])
    assert (decision.price, decision.margin, decision.rule_id) == (
        Decimal("1250.00"),
        Decimal("163.00"),
        rule.id,
    )
    assert price_lot(LotFacts(cost=Decimal(1087), metal="Gold"), [core]).rule_id is None


# --- GraphQL ---------------------------------------------------------------------------------

RULE_FIELDS = """
    id name active priority markupPercent markupFixed rounding minMargin minMarginPercent
    metals services minGrade maxGrade minCost maxCost titleContains createdAt updatedAt
"""
CREATE = f"""
mutation($input: PricingRuleCreateInput!) {{ pricingRuleCreate(input: $input) {{ {RULE_FIELDS} }} }}
"""
UPDATE = f"""
mutation($id: ID!, $input: PricingRuleUpdateInput!) {{
  pricingRuleUpdate(id: $id, input: $input) {{ {RULE_FIELDS} }}
}}
"""
DELETE = "mutation($id: ID!) { pricingRuleDelete(id: $id) { id deleted } }"
LIST = f"""
query($first: Int!, $after: String) {{
  pricingRules(first: $first, after: $after) {{
    nodes {{ {RULE_FIELDS} }} edges {{ cursor node {{ id }} }} pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""


async def gql(client, tenant, query: str, variables: dict[str, Any] | None = None, key=None):
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=tenant.headers(key),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_graphql_create_update_list_delete(client, tenant):
    variables = {
        "input": {
            "name": "GraphQL gold",
            "markupPercent": "12.5",
            "rounding": "CHARM_99",
            "metals": ["Gold"],
            "minGrade": 63,
        }
    }
    body = await gql(client, tenant, CREATE, variables)
    assert "errors" not in body, body
    created = body["data"]["pricingRuleCreate"]
    assert created["id"].startswith("rule_")
    assert (created["markupPercent"], created["markupFixed"], created["rounding"]) == (
        "12.50",
        "0.00",
        "CHARM_99",
    )
    assert (created["metals"], created["minGrade"], created["maxGrade"], created["priority"]) == (
        ["Gold"],
        63,
        None,
        100,
    )
    listed = (await client.get("/v1/pricing-rules", headers=tenant.headers())).json()["data"]
    [rest] = [r for r in listed if r["id"] == created["id"]]
    assert rest["rounding"] == "0.99" and rest["markup_percent"] == 12.5

    body = await gql(
        client,
        tenant,
        UPDATE,
        {"id": created["id"], "input": {"rounding": "NEAREST_5", "minGrade": None}},
    )
    assert "errors" not in body, body
    updated = body["data"]["pricingRuleUpdate"]
    assert (updated["rounding"], updated["minGrade"], updated["name"]) == (
        "NEAREST_5",
        None,
        "GraphQL gold",
    )

    other = await make_pricing_rule(tenant)
    body = await gql(client, tenant, LIST, {"first": 1})
    connection = body["data"]["pricingRules"]
    assert [n["id"] for n in connection["nodes"]] == [other.id]
    assert connection["pageInfo"]["hasNextPage"] is True
    body = await gql(
        client, tenant, LIST, {"first": 1, "after": connection["pageInfo"]["endCursor"]}
    )
    assert [n["id"] for n in body["data"]["pricingRules"]["nodes"]] == [created["id"]]

    body = await gql(client, tenant, DELETE, {"id": created["id"]})
    assert body["data"]["pricingRuleDelete"] == {"id": created["id"], "deleted": True}
    body = await gql(
        client, tenant, "query($id: ID!) { pricingRule(id: $id) { id } }", {"id": created["id"]}
    )
    assert body["errors"][0]["extensions"]["code"] == "resource_missing"
    assert await count(tenant) == 1


async def test_graphql_one_refused_mutation_keeps_the_others_results(client, tenant):
    """Mutation fields are nullable: a document whose second mutation fails still answers the
    first one's result (it was committed), instead of `data: null`."""
    document = """mutation {
      ok: pricingRuleCreate(input: {name: "Gold +10 %", markupPercent: "10"}) { id name }
      refused: pricingRuleCreate(input: {name: "", markupPercent: "5"}) { id }
    }"""
    body = await gql(client, tenant, document)
    created = body["data"]["ok"]
    assert created["name"] == "Gold +10 %" and created["id"].startswith("rule_")
    assert body["data"]["refused"] is None
    [error] = body["errors"]
    assert (error["path"], error["extensions"]["code"]) == (["refused"], "parameter_invalid")
    assert [rule.id for rule in await PricingRule.filter(account_id=tenant.account_id)] == [
        created["id"]
    ]


@pytest.mark.parametrize(
    ("input_", "code", "param"),
    [
        ({"name": "No markup"}, "parameter_invalid", "input.markup_percent"),
        ({"name": "Loss", "markupFixed": "-1"}, "below_cost", "input.markup_fixed"),
        (
            {"name": "G", "markupPercent": "5", "minGrade": 70, "maxGrade": 1},
            "parameter_invalid",
            "input.min_grade",
        ),
        (
            {"name": "P", "markupPercent": "5", "priority": 10_001},
            "parameter_invalid",
            "input.priority",
        ),
        ({"name": "", "markupPercent": "5"}, "parameter_invalid", "input.name"),
    ],
)
async def test_graphql_create_rejects_bad_input(client, tenant, input_, code, param):
    body = await gql(client, tenant, CREATE, {"input": input_})
    assert body["data"] == {"pricingRuleCreate": None}
    [error] = body["errors"]
    assert (error["extensions"]["code"], error["extensions"]["param"]) == (code, param)
    assert await count(tenant) == 0


async def test_graphql_unknown_rounding_is_a_validation_error(client, tenant):
    body = await gql(
        client, tenant, CREATE, {"input": {"name": "R", "markupPercent": "1", "rounding": "HALF"}}
    )
    assert body["errors"][0]["extensions"]["code"] == "graphql_validation_failed"
    assert await count(tenant) == 0


async def test_graphql_read_only_key_cannot_write(client, tenant):
    rule = await make_pricing_rule(tenant)
    before = await snapshot(rule.id)
    read = tenant.live_read
    for query, variables in [
        (CREATE, {"input": {"name": "Nope", "markupPercent": "1"}}),
        (UPDATE, {"id": rule.id, "input": {"name": "Nope"}}),
        (DELETE, {"id": rule.id}),
    ]:
        body = await gql(client, tenant, query, variables, key=read)
        assert body["errors"][0]["extensions"]["code"] == "insufficient_scope"
    assert await snapshot(rule.id) == before
    assert await count(tenant) == 1
