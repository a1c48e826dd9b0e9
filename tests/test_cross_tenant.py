"""Tenant isolation, driven by the `/v1` route table: every route that takes an object id answers
another account's id, and an id from the other environment, exactly as it answers an id that does
not exist (404 `not_found`/`resource_missing`), and changes nothing. A new id route without an
entry in RESOURCES / SAMPLE_BODIES below fails loudly instead of going untested."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tortoise.models import Model

from app.accounts.models import Environment
from app.events.models import Event
from app.ids import new_id
from app.pricing.models import PricingRule
from app.products.models import Product
from app.stores.models import Store
from app.sync.models import SyncJob
from app.webhooks.models import WebhookEndpoint
from rest_compat.table import ROUTES, Route
from tests.conftest import Tenant, make_pricing_rule, make_product, make_store

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Resource:
    prefix: str
    model: type[Model]
    make: Callable[[Tenant, Environment], Awaitable[Model]]


async def _product(tenant: Tenant, environment: Environment) -> Model:
    return await make_product(tenant, "424242", environment=environment)


async def _store(tenant: Tenant, environment: Environment) -> Model:
    return await make_store(tenant, environment=environment)


async def _pricing_rule(tenant: Tenant, environment: Environment) -> Model:
    return await make_pricing_rule(tenant, environment=environment)


async def _sync_job(tenant: Tenant, environment: Environment) -> Model:
    from app.sync.models import SyncStatus, SyncType

    return await SyncJob.create(
        id=new_id("sync"),
        account_id=tenant.account_id,
        environment=environment,
        type=SyncType.DELTA,
        status=SyncStatus.COMPLETED,
    )


async def _webhook(tenant: Tenant, environment: Environment) -> Model:
    from app.webhooks import service as webhooks

    created = await webhooks.create_endpoint(
        tenant.principal(environment),
        data=webhooks.WebhookEndpointInput(
            url="https://hooks.example.com/syncauction", event_types=["sync.completed"]
        ),
    )
    return created.endpoint


# The collection a path parameter points into: the path up to the parameter.
RESOURCES: dict[str, Resource] = {
    "/v1/products": Resource("prod", Product, _product),
    "/v1/stores": Resource("store", Store, _store),
    "/v1/pricing-rules": Resource("rule", PricingRule, _pricing_rule),
    "/v1/sync/history": Resource("sync", SyncJob, _sync_job),
    "/v1/webhooks": Resource("whk", WebhookEndpoint, _webhook),
}

# A body that succeeds on the caller's own object, for every id route that takes a body.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/v1/products/{id}"): {"title": "Hijacked title", "price": 1.0, "status": "archived"},
    ("PUT", "/v1/stores/{id}"): {
        "name": "Hijacked",
        "url": "https://attacker.example.com",
        "sync_enabled": False,
        "credentials": {"consumer_key": "ck_attacker", "consumer_secret": "cs_attacker"},
    },
    ("PUT", "/v1/pricing-rules/{id}"): {"name": "Hijacked", "markup_percent": 1, "active": False},
    ("PUT", "/v1/webhooks/{id}"): {"url": "https://attacker.example.com/hook", "active": False},
}

ID_ROUTES = [route for route in ROUTES if _PARAM.search(route.path)]


def _route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


def resource_of(route: Route) -> Resource:
    [param] = _PARAM.findall(route.path)  # one object per path so far; extend for nested ones
    collection = route.path.split("{" + param + "}")[0].rstrip("/")
    resource = RESOURCES.get(collection)
    if resource is None:
        pytest.fail(f"{_route_id(route)}: add {collection!r} to RESOURCES in {__file__}")
    return resource


def body_of(route: Route) -> dict[str, Any] | None:
    if route.body is None:
        return None
    sample = SAMPLE_BODIES.get((route.method, route.path))
    if sample is None:
        pytest.fail(f"{_route_id(route)} takes a body: add a sample to SAMPLE_BODIES")
    route.body[1].model_validate(sample)  # the sample stays a valid body as the model evolves
    return sample


def test_the_table_has_id_routes_and_every_one_is_described():
    assert {(r.method, r.path) for r in ID_ROUTES} >= {
        ("GET", "/v1/products/{id}"),
        ("PUT", "/v1/products/{id}"),
        ("GET", "/v1/stores/{id}"),
        ("PUT", "/v1/stores/{id}"),
        ("PUT", "/v1/pricing-rules/{id}"),
        ("DELETE", "/v1/pricing-rules/{id}"),
    }
    for route in ID_ROUTES:
        resource_of(route)
        body_of(route)


async def call(client, route: Route, object_id: str, key: str) -> Any:
    path = _PARAM.sub(object_id, route.path)
    body = body_of(route)
    return await client.request(
        route.method,
        path,
        headers={"Authorization": f"Bearer {key}"},
        **({"json": body} if body is not None else {}),
    )


async def row(resource: Resource, object_id: str) -> dict[str, Any]:
    [values] = await resource.model.filter(id=object_id).values()
    return values


def error_shape(response: Any, object_id: str) -> tuple[int, str, str, str | None, str]:
    error = response.json()["error"]
    message = error["message"].replace(object_id, "<id>")
    return response.status_code, error["type"], error["code"], error["param"], message


@pytest.mark.parametrize("route", ID_ROUTES, ids=_route_id)
async def test_foreign_ids_are_indistinguishable_from_missing_ones(
    client, tenant, other_tenant, route
):
    resource = resource_of(route)
    missing_id = new_id(resource.prefix)
    missing = await call(client, route, missing_id, tenant.live)
    expected = error_shape(missing, missing_id)
    assert expected[:4] == (404, "not_found", "resource_missing", "id")

    assert tenant.test is not None
    other_live = await resource.make(other_tenant, Environment.LIVE)
    other_sandbox = await resource.make(other_tenant, Environment.SANDBOX)
    own_sandbox = await resource.make(tenant, Environment.SANDBOX)
    own_live = await resource.make(tenant, Environment.LIVE)
    attempts = [
        ("another account's live object, live key", other_live, tenant.live),
        ("another account's sandbox object, live key", other_sandbox, tenant.live),
        ("own sandbox object, live key", own_sandbox, tenant.live),
        ("own live object, sandbox key", own_live, tenant.test),
        ("another account's live object, sandbox key", other_live, tenant.test),
        ("another account's sandbox object, sandbox key", other_sandbox, tenant.test),
    ]
    rows_before = {obj.pk: await row(resource, obj.pk) for _, obj, _ in attempts}
    events_before = await Event.all().count()

    for label, obj, key in attempts:
        response = await call(client, route, obj.pk, key)
        assert error_shape(response, obj.pk) == expected, label
        assert response.headers["content-type"] == missing.headers["content-type"], label

    for _, obj, _ in attempts:
        assert await row(resource, obj.pk) == rows_before[obj.pk]
    assert await Event.all().count() == events_before

    # Control: the same request on the caller's own object in its own environment succeeds,
    # so the 404s above come from tenancy, not from the request itself.
    response = await call(client, route, own_live.pk, tenant.live)
    assert 200 <= response.status_code < 300, response.text
    data = response.json()["data"]
    assert data.get("id", data.get("endpoint_id")) == own_live.pk


# --- GraphQL ---------------------------------------------------------------------------------

GRAPHQL_OPERATIONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (resource collection, document, extra variables)
    "product": ("/v1/products", "query($id: ID!) { product(id: $id) { id title } }", {}),
    "store": ("/v1/stores", "query($id: ID!) { store(id: $id) { id name } }", {}),
    "productUpdate": (
        "/v1/products",
        "mutation($id: ID!, $input: ProductUpdateInput!) "
        "{ productUpdate(id: $id, input: $input) { id title } }",
        {"input": {"title": "Hijacked title", "price": "1.00"}},
    ),
    "storeUpdate": (
        "/v1/stores",
        "mutation($id: ID!, $input: StoreUpdateInput!) "
        "{ storeUpdate(id: $id, input: $input) { id name } }",
        {
            "input": {
                "name": "Hijacked",
                "credentials": {"consumerKey": "ck_attacker", "consumerSecret": "cs_attacker"},
            }
        },
    ),
    "pricingRule": (
        "/v1/pricing-rules",
        "query($id: ID!) { pricingRule(id: $id) { id name } }",
        {},
    ),
    "pricingRuleUpdate": (
        "/v1/pricing-rules",
        "mutation($id: ID!, $input: PricingRuleUpdateInput!) "
        "{ pricingRuleUpdate(id: $id, input: $input) { id name } }",
        {"input": {"name": "Hijacked", "markupPercent": "1", "active": False}},
    ),
    "pricingRuleDelete": (
        "/v1/pricing-rules",
        "mutation($id: ID!) { pricingRuleDelete(id: $id) { id deleted } }",
        {},
    ),
    "syncJob": (
        "/v1/sync/history",
        "query($id: ID!) { syncJob(id: $id) { id status } }",
        {},
    ),
    "webhookEndpoint": (
        "/v1/webhooks",
        "query($id: ID!) { webhookEndpoint(id: $id) { id url } }",
        {},
    ),
    "webhookEndpointUpdate": (
        "/v1/webhooks",
        "mutation($id: ID!) { webhookEndpointUpdate(id: $id, input: {active: false}) { id } }",
        {},
    ),
    "webhookEndpointDelete": (
        "/v1/webhooks",
        "mutation($id: ID!) { webhookEndpointDelete(id: $id) { id deleted } }",
        {},
    ),
    "webhookEndpointRotateSecret": (
        "/v1/webhooks",
        "mutation($id: ID!) { webhookEndpointRotateSecret(id: $id) { secret endpoint { id } } }",
        {},
    ),
}


async def graphql(client, key: str, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("operation", list(GRAPHQL_OPERATIONS))
async def test_graphql_foreign_ids_are_resource_missing(client, tenant, other_tenant, operation):
    collection, document, variables = GRAPHQL_OPERATIONS[operation]
    resource = RESOURCES[collection]
    missing_id = new_id(resource.prefix)
    missing = await graphql(client, tenant.live, document, {**variables, "id": missing_id})
    [expected] = missing["errors"]
    assert not any((missing["data"] or {}).values())  # a refused mutation's field is null
    assert expected["extensions"]["code"] == "resource_missing"

    others = [
        (await resource.make(other_tenant, Environment.LIVE), tenant.live),
        (await resource.make(tenant, Environment.SANDBOX), tenant.live),
        (await resource.make(other_tenant, Environment.SANDBOX), tenant.test),
    ]
    before = {obj.pk: await row(resource, obj.pk) for obj, _ in others}
    events_before = await Event.all().count()
    for obj, key in others:
        body = await graphql(client, key, document, {**variables, "id": obj.pk})
        assert body["data"] == missing["data"]
        [error] = body["errors"]
        assert error["extensions"] == expected["extensions"]
        assert error["message"].replace(obj.pk, "<id>") == expected["message"].replace(
            missing_id, "<id>"
        )
        assert error["path"] == expected["path"] == [operation]
    for obj, _ in others:
        assert await row(resource, obj.pk) == before[obj.pk]
    assert await Event.all().count() == events_before

    own = await resource.make(tenant, Environment.LIVE)
    body = await graphql(client, tenant.live, document, {**variables, "id": own.pk})
    assert "errors" not in body, body
    answer = body["data"][operation]
    assert answer.get("id", answer.get("endpoint", {}).get("id")) == own.pk
