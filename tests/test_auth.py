"""API-key authentication at the gateway (REST `/v1` and `/graphql`), key storage, plan rules
for keys, scope enforcement, and the production secret-key guard."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

import pytest
from pydantic import ValidationError
from tortoise import connections

from app.accounts.models import Environment, Plan
from app.auth import service as keys
from app.auth.models import ApiKey
from app.config import DEFAULT_SECRET_KEY, Settings
from app.errors import PermissionDenied
from app.products.models import Product
from tests.conftest import make_product, make_tenant

REALM = 'Bearer realm="SyncAuction"'
INVALID_TOKEN = 'Bearer realm="SyncAuction", error="invalid_token"'


async def test_missing_key_is_401_with_www_authenticate(client, tenant):
    response = await client.get("/v1/products")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == REALM
    assert response.json() == {
        "error": {
            "type": "authentication",
            "code": "missing_api_key",
            "message": "No API key provided. Send `Authorization: Bearer <key>`.",
            "param": None,
        }
    }
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",  # wrong scheme
        "Bearer",  # no token
        "Bearer    ",  # blank token
        "sa_live_0123456789abcdefghijklmnopqrstuv",  # token without the scheme
        "Bearer sk_live_0123456789abcdefghijklmnopqrstuv",  # someone else's key format
        "Bearer sa_live_0123456789abcdefghijklmnopqrstuv",  # well-formed but unknown
        "Bearer sa_test_" + "A" * 200,  # absurdly long
    ],
)
async def test_malformed_or_unknown_keys_are_401(client, tenant, authorization):
    response = await client.get("/v1/products", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    error = response.json()["error"]
    assert error["type"] == "authentication"
    assert error["code"] == "invalid_api_key"


async def test_two_authorization_headers_are_401_whichever_comes_first(client, tenant):
    real, bogus = f"Bearer {tenant.live}", "Bearer sa_live_0123456789abcdefghijklmnopqrstuv"
    for first, second in ((bogus, real), (real, bogus), (real, real)):
        response = await client.get(
            "/v1/products", headers=[("Authorization", first), ("Authorization", second)]
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == INVALID_TOKEN
        assert response.json()["error"]["message"] == "Send one Authorization header, not several."


async def test_a_tampered_real_key_is_401(client, tenant):
    assert (await client.get("/v1/products", headers=tenant.headers())).status_code == 200
    last = tenant.live[-1]
    tampered = tenant.live[:-1] + ("B" if last != "B" else "C")
    response = await client.get("/v1/products", headers=tenant.headers(tampered))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_scheme_is_case_insensitive(client, tenant):
    response = await client.get("/v1/products", headers={"Authorization": f"bearer {tenant.live}"})
    assert response.status_code == 200


async def test_revocation_takes_effect_immediately(client, tenant):
    # Authenticate first so the principal is in the in-process cache.
    assert (await client.get("/v1/products", headers=tenant.headers())).status_code == 200
    stored = await ApiKey.get(key_hash=hashlib.sha256(tenant.live.encode()).hexdigest())
    assert stored.revoked_at is None
    revoked = await keys.revoke_key(stored.id)
    assert revoked.revoked_at is not None
    response = await client.get("/v1/products", headers=tenant.headers())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    # Other keys of the account still work.
    assert (
        await client.get("/v1/products", headers=tenant.headers(tenant.test))
    ).status_code == 200
    # Revoking again is harmless and keeps the first timestamp.
    again = await keys.revoke_key(stored.id)
    assert again.revoked_at == revoked.revoked_at


async def test_keys_are_stored_only_as_sha256(app, tenant):
    created = await keys.create_key(account_id=tenant.account_id, mode="live", name="CI")
    secret = created.secret
    assert re.fullmatch(r"sa_live_[0-9A-Za-z]{32}", secret)
    assert re.fullmatch(r"sa_test_[0-9A-Za-z]{32}", tenant.test)

    rows = await connections.get("default").execute_query_dict("SELECT * FROM api_keys")
    assert len(rows) == 4  # the tenant's three keys and this one
    dumped = repr(rows)
    for plaintext in (secret, tenant.live, tenant.test, tenant.live_read):
        assert plaintext not in dumped
        assert plaintext[8:] not in dumped  # not even the random part
    row = next(r for r in rows if r["id"] == created.api_key.id)
    assert row["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert (row["prefix"], row["last4"], row["name"]) == ("sa_live_", secret[-4:], "CI")


async def test_key_modes_map_to_environments(app):
    tenant = await make_tenant(Plan.ENTERPRISE, name="Big Mint")
    live = await keys.authenticate_api_key(tenant.live)
    test = await keys.authenticate_api_key(tenant.test)
    assert (live.environment, test.environment) == (Environment.LIVE, Environment.SANDBOX)
    assert live.account_id == test.account_id == tenant.account_id
    assert live.allows("products:write") and live.allows("products:read")
    read = await keys.authenticate_api_key(tenant.live_read)
    assert read.allows("products:read") and not read.allows("products:write")


async def test_starter_plan_gets_read_only_live_keys(app):
    starter = await make_tenant(Plan.STARTER, name="Small Coins")
    with pytest.raises(PermissionDenied) as write:
        await keys.create_key(account_id=starter.account_id, mode="live", scopes=["read", "write"])
    assert (write.value.code, write.value.param) == ("plan_restriction", "scopes")
    with pytest.raises(PermissionDenied) as sandbox:
        await keys.create_key(account_id=starter.account_id, mode="test")
    assert (sandbox.value.code, sandbox.value.param) == ("plan_restriction", "mode")
    # The default for the plan is a read-only key.
    default = await keys.create_key(account_id=starter.account_id, mode="live")
    assert default.api_key.scopes == ["read"]
    assert await ApiKey.filter(account_id=starter.account_id).count() == 3  # 2 + default


async def test_starter_key_reads_but_cannot_write_rest(client):
    starter = await make_tenant(Plan.STARTER, name="Small Coins")
    product = await make_product(starter)
    listed = await client.get("/v1/products", headers=starter.headers())
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["data"]] == [product.id]
    response = await client.put(
        f"/v1/products/{product.id}", json={"price": 1.00}, headers=starter.headers()
    )
    assert response.status_code == 403
    assert response.json()["error"] == {
        "type": "permission",
        "code": "insufficient_scope",
        "message": "This credential lacks the `products:write` scope.",
        "param": None,
    }
    assert (await Product.get(id=product.id)).price == Decimal("430.50")


async def test_graphql_without_key_is_401_json(client, tenant):
    response = await client.post("/graphql", json={"query": "{ me { id } }"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == REALM
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "missing_api_key"

    bad = await client.post(
        "/graphql",
        json={"query": "{ me { id } }"},
        headers={"Authorization": "Bearer sa_live_nope"},
    )
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == INVALID_TOKEN
    assert bad.json()["errors"][0]["extensions"]["code"] == "invalid_api_key"


async def test_graphql_authenticates_the_key(client, tenant):
    response = await client.post(
        "/graphql",
        json={"query": "{ me { id plan rateLimit environment } }"},
        headers=tenant.headers(tenant.test),
    )
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "me": {
                "id": tenant.account_id,
                "plan": "PROFESSIONAL",
                "rateLimit": 500,
                "environment": "SANDBOX",
            }
        }
    }


async def test_graphql_mutation_with_read_only_key_is_refused(client):
    starter = await make_tenant(Plan.STARTER, name="Small Coins")
    product = await make_product(starter)
    query = {
        "query": 'mutation($id: ID!) { productUpdate(id: $id, input: {price: "1.00"}) { price } }',
        "variables": {"id": product.id},
    }
    body = (await client.post("/graphql", json=query, headers=starter.headers())).json()
    assert body["data"] == {"productUpdate": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "insufficient_scope"
    assert error["message"] == "This credential lacks the `products:write` scope."
    assert (await Product.get(id=product.id)).price == Decimal("430.50")
    # The same key may read.
    read = {"query": "{ products(first: 5) { edges { node { id } } } }"}
    body = (await client.post("/graphql", json=read, headers=starter.headers())).json()
    assert body == {"data": {"products": {"edges": [{"node": {"id": product.id}}]}}}


async def test_graphql_read_only_key_of_a_writable_plan_is_refused(client, tenant):
    product = await make_product(tenant)
    query = {
        "query": 'mutation($id: ID!) { productUpdate(id: $id, input: {price: "1.00"}) { price } }',
        "variables": {"id": product.id},
    }
    body = (
        await client.post("/graphql", json=query, headers=tenant.headers(tenant.live_read))
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "insufficient_scope"
    body = (await client.post("/graphql", json=query, headers=tenant.headers())).json()
    assert body == {"data": {"productUpdate": {"price": "1.00"}}}


def test_production_refuses_the_default_secret(monkeypatch):
    monkeypatch.delenv("SYNCAUCTION_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="SYNCAUCTION_SECRET_KEY is left at its default"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="SYNCAUCTION_SECRET_KEY is left at its default"):
        Settings(env="production", secret_key=DEFAULT_SECRET_KEY)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(env="production", secret_key="s" * 31)
    secret = "0123456789abcdefghij0123456789abcdefghij"
    assert len(secret) == 40
    settings = Settings(env="production", secret_key=secret)
    assert settings.secret_key == secret and not settings.is_development
    # Development keeps working with the default, for `make run`.
    assert Settings(env="development").secret_key == DEFAULT_SECRET_KEY


async def _chunks(total: int, size: int = 100_000):
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


async def test_streamed_oversized_body_is_413_not_500(client, tenant):
    """A chunked body (no Content-Length) over 1 MiB is cut off while it streams in."""
    product = await make_product(tenant)
    headers = {**tenant.headers(), "content-type": "application/json"}
    response = await client.put(
        f"/v1/products/{product.id}", content=_chunks(2 * 1024 * 1024), headers=headers
    )
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "invalid_request",
        "code": "payload_too_large",
        "message": "Request bodies are limited to 1048576 bytes.",
        "param": None,
    }
    assert response.headers["x-ratelimit-limit"] == "500"
    graphql = await client.post("/graphql", content=_chunks(2 * 1024 * 1024), headers=headers)
    assert graphql.status_code == 413
    assert (await Product.get(id=product.id)).description == ""


async def test_a_downgraded_plan_applies_to_existing_keys(client):
    from app.accounts.models import Account, Plan
    from app.auth import service as key_service
    from tests.conftest import make_product, make_tenant

    tenant = await make_tenant(Plan.PROFESSIONAL)
    product = await make_product(tenant)
    await Account.filter(id=tenant.account_id).update(plan=Plan.STARTER)
    key_service.forget_cached_principals()

    read = await client.get(f"/v1/products/{product.id}", headers=tenant.headers())
    assert read.status_code == 200
    assert read.headers["x-ratelimit-limit"] == "100"
    write = await client.put(
        f"/v1/products/{product.id}", json={"title": "x"}, headers=tenant.headers()
    )
    assert write.status_code == 403
    assert write.json()["error"]["code"] == "insufficient_scope"
    sandbox = await client.get("/v1/products", headers=tenant.headers(tenant.test))
    assert sandbox.status_code == 403
    assert sandbox.json()["error"]["code"] == "plan_restriction"
