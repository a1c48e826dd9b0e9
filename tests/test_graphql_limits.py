"""GraphQL query limits and error codes as a client sees them over HTTP, and the schema's
documentation (every type and field described: the schema is the API reference)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    specified_scalar_types,
)
from graphql.language import Lexer, Source, TokenKind

from schema.root import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, build_schema
from tests.conftest import make_product


def _nested(levels: int) -> str:
    """`{ f<levels-1> { … { f0 { id } } } }`: `levels` selection sets below the root field."""
    selection = "id"
    for i in range(levels):
        selection = f"f{i} {{ {selection} }}"
    return "{ " + selection + " }"


async def _post(client, tenant, query: str, variables: dict[str, Any] | None = None):
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return await client.post("/graphql", json=body, headers=tenant.headers())


def _codes(response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


def _assert_refused(response) -> None:
    """A refused query: client-error status (GraphQL-over-HTTP allows 200), no data."""
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["data"] is None
    assert body["errors"], body
    assert "internal_error" not in _codes(response)


@pytest.fixture
def no_unexpected_errors_logged(caplog):
    """Client mistakes must not be logged as server faults (nor masked as internal_error)."""
    with caplog.at_level(logging.ERROR, logger="syncauction.graphql"):
        yield
    logged = [r.getMessage() for r in caplog.get_records("call") if r.name == "syncauction.graphql"]
    assert logged == []


async def test_query_deeper_than_the_limit_is_refused(client, tenant, no_unexpected_errors_logged):
    response = await _post(client, tenant, _nested(MAX_DEPTH + 1))
    _assert_refused(response)
    assert "query_too_deep" in _codes(response)
    [deep] = [e for e in response.json()["errors"] if e["extensions"]["code"] == "query_too_deep"]
    assert f"exceeds maximum operation depth of {MAX_DEPTH}" in deep["message"]


async def test_query_at_the_depth_limit_is_not_called_too_deep(client, tenant):
    # The schema is not deeper than the limit, so this nesting can only use unknown fields:
    # it fails validation, but not for its depth.
    response = await _post(client, tenant, _nested(MAX_DEPTH))
    _assert_refused(response)
    assert set(_codes(response)) == {"graphql_validation_failed"}


def _aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(count)) + " }"


async def test_too_many_aliases_are_refused(client, tenant, no_unexpected_errors_logged):
    response = await _post(client, tenant, _aliases(MAX_ALIASES + 1))
    _assert_refused(response)
    assert _codes(response) == ["query_too_complex"]
    assert response.json()["errors"][0]["message"] == (
        f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}"
    )


async def test_aliases_up_to_the_limit_are_answered(client, tenant):
    response = await _post(client, tenant, _aliases(MAX_ALIASES))
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body or not body["errors"], body
    assert body["data"] == {f"a{i}": {"id": tenant.account_id} for i in range(MAX_ALIASES)}


def _token_count(query: str) -> int:
    lexer = Lexer(Source(query))
    count = 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def _tokens(count: int) -> str:
    """A valid, realistic query of exactly `count` tokens (fragments on products). Not one field
    repeated ~2000 times: graphql-core's overlapping-fields rule gives up on such a query."""
    fragments = (count - 17) // 10  # 16 fixed tokens, >= 1 padding `id`, 10 per fragment
    padding = count - 16 - 10 * fragments
    query = (
        "{ me { "
        + " ".join(["id"] * padding)
        + " } products(first: 1) { nodes { "
        + " ".join(f"...F{i}" for i in range(fragments))
        + " } } } "
        + " ".join(f"fragment F{i} on Product {{ id title }}" for i in range(fragments))
    )
    assert _token_count(query) == count
    return query


async def test_too_many_tokens_are_refused(client, tenant, no_unexpected_errors_logged):
    response = await _post(client, tenant, _tokens(MAX_TOKENS + 1))
    _assert_refused(response)
    assert _codes(response) == ["query_too_complex"]
    assert f"more than {MAX_TOKENS} tokens" in response.json()["errors"][0]["message"]


async def test_tokens_up_to_the_limit_are_answered(client, tenant):
    product = await make_product(tenant)
    response = await _post(client, tenant, _tokens(MAX_TOKENS))
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "me": {"id": tenant.account_id},
            "products": {"nodes": [{"id": product.id, "title": "1921 Morgan Dollar MS65"}]},
        }
    }


@pytest.mark.parametrize(
    "query",
    ["{ me { id ", "query {", "{ me { id } } }", "{ products(first: ) { nodes { id } } }", "}"],
)
async def test_malformed_query_text_is_a_coded_validation_error(
    client, tenant, query, no_unexpected_errors_logged
):
    response = await _post(client, tenant, query)
    _assert_refused(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "graphql_validation_failed"
    assert error["message"].startswith("Syntax Error:")


async def test_malformed_query_over_get_is_coded_too(client, tenant):
    response = await client.get(
        "/graphql", params={"query": "{ me { id "}, headers=tenant.headers()
    )
    _assert_refused(response)
    assert _codes(response) == ["graphql_validation_failed"]


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"query": ""}', "application/json", "No GraphQL query found in the request"),
        (b'{"variables": {}}', "application/json", "No GraphQL query found in the request"),
        (b"{not json", "application/json", "Unable to parse request body as JSON"),
    ],
)
async def test_requests_strawberry_cannot_parse_get_a_json_coded_400(
    client, tenant, content, content_type, message
):
    response = await client.post(
        "/graphql",
        content=content,
        headers={**tenant.headers(), "content-type": content_type},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": "invalid_request"}}],
    }
    assert response.headers["x-request-id"]


async def test_mutation_over_get_is_a_json_coded_400(client, tenant):
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { storeUpdate(id: "x", input: {}) { id } }'},
        headers=tenant.headers(),
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "invalid_request"


async def test_unknown_field_is_a_validation_error(client, tenant, no_unexpected_errors_logged):
    response = await _post(client, tenant, "{ me { id nope } }")
    _assert_refused(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "graphql_validation_failed"
    assert error["message"].startswith("Cannot query field 'nope' on type 'Account'.")


TWO_OPERATIONS = 'query Me { me { id } } mutation Rename { storeUpdate(id: "x", input: {}) { id } }'


async def test_several_operations_without_a_name_run_none(
    client, tenant, no_unexpected_errors_logged
):
    for response in (
        await _post(client, tenant, TWO_OPERATIONS),
        await client.get("/graphql", params={"query": TWO_OPERATIONS}, headers=tenant.headers()),
    ):
        _assert_refused(response)
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "graphql_validation_failed"
        assert "operationName" in error["message"]


async def test_a_subscription_over_http_is_a_coded_400(client, tenant, no_unexpected_errors_logged):
    subscription = "subscription { events { id } }"
    for response in (
        await _post(client, tenant, subscription),
        await client.get("/graphql", params={"query": subscription}, headers=tenant.headers()),
    ):
        assert response.status_code == 400
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "invalid_request"
        assert "websocket" in error["message"]


@pytest.mark.parametrize("price", ['"1_000"', '" 12 "', '"12."', '"1e2"', '"NaN"', "true"])
async def test_a_decimal_takes_plain_notation_only(
    client, tenant, price, no_unexpected_errors_logged
):
    product = await make_product(tenant)
    response = await _post(
        client,
        tenant,
        f'mutation {{ productUpdate(id: "{product.id}", input: {{price: {price}}}) {{ price }} }}',
    )
    _assert_refused(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "graphql_validation_failed"
    assert "send a number such as 12.50" in error["message"]


@pytest.mark.parametrize(("price", "stored"), [('"499.00"', "499.00"), ("499.5", "499.50")])
async def test_a_decimal_takes_a_string_or_a_number(client, tenant, price, stored):
    product = await make_product(tenant)
    response = await _post(
        client,
        tenant,
        f'mutation {{ productUpdate(id: "{product.id}", input: {{price: {price}}}) {{ price }} }}',
    )
    assert response.json() == {"data": {"productUpdate": {"price": stored}}}


async def test_operation_name_chooses_among_several(client, tenant):
    response = await client.post(
        "/graphql",
        json={"query": TWO_OPERATIONS, "operationName": "Me"},
        headers=tenant.headers(),
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"id": tenant.account_id}}}


@pytest.mark.parametrize(
    ("variables", "message_part"),
    [
        ({}, "Expected a value of non-null type 'Int!' to be provided."),
        ({"first": "ten"}, "Int cannot represent non-integer value"),
        ({"first": None}, "not to be None"),
    ],
)
async def test_bad_variables_are_validation_errors_not_internal(
    client, tenant, variables, message_part, no_unexpected_errors_logged
):
    query = "query($first: Int!) { products(first: $first) { nodes { id } } }"
    response = await _post(client, tenant, query, variables)
    _assert_refused(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "graphql_validation_failed"
    assert error["message"].startswith("Variable '$first' has invalid value: ")
    assert message_part in error["message"]


@pytest.mark.parametrize("first", [0, -1, 101, 1000])
async def test_first_out_of_range_is_parameter_invalid(client, tenant, first):
    response = await _post(client, tenant, f"{{ products(first: {first}) {{ nodes {{ id }} }} }}")
    _assert_refused(response)
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "parameter_invalid", "param": "first"}
    assert error["path"] == ["products"]


@pytest.mark.parametrize("first", [1, 100])
async def test_first_at_the_bounds_is_accepted(client, tenant, first):
    product = await make_product(tenant)
    query = f"{{ products(first: {first}) {{ nodes {{ id }} pageInfo {{ hasNextPage }} }} }}"
    response = await _post(client, tenant, query)
    assert response.json() == {
        "data": {"products": {"nodes": [{"id": product.id}], "pageInfo": {"hasNextPage": False}}}
    }


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "after",
    [
        "zzz",
        "",
        "!!!",
        _b64("v1:store_01hx3y8k2q9m4c7d0b5e6f7g8h"),  # another list's cursor
        _b64("v2:prod_01hx3y8k2q9m4c7d0b5e6f7g8h"),
        _b64("v1:prod_" + "x" * 60),
    ],
)
async def test_invalid_after_cursor_is_invalid_cursor(client, tenant, after):
    await make_product(tenant)
    response = await _post(
        client,
        tenant,
        "query($after: String) { products(after: $after) { nodes { id } } }",
        {"after": after},
    )
    # An empty cursor too: the first page is asked for by leaving `after` out.
    _assert_refused(response)
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "invalid_cursor", "param": "cursor"}


async def test_cursor_of_a_page_gives_the_next_page(client, tenant):
    older = await make_product(tenant, "1")
    newer = await make_product(tenant, "2")
    query = """query($after: String) { products(first: 1, after: $after) {
        edges { cursor node { id } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
    first = (await _post(client, tenant, query, {"after": None})).json()["data"]["products"]
    assert [e["node"]["id"] for e in first["edges"]] == [newer.id]
    [edge] = first["edges"]

    def page_info(cursor: str, *, next_: bool, previous: bool) -> dict[str, Any]:
        return {
            "hasNextPage": next_,
            "hasPreviousPage": previous,
            "startCursor": cursor,
            "endCursor": cursor,
        }

    assert first["pageInfo"] == page_info(edge["cursor"], next_=True, previous=False)
    second = (await _post(client, tenant, query, {"after": first["pageInfo"]["endCursor"]})).json()
    last = second["data"]["products"]
    assert [e["node"]["id"] for e in last["edges"]] == [older.id]
    # The last page still names its cursors (Relay): only hasNextPage says it is the last.
    [edge] = last["edges"]
    assert last["pageInfo"] == page_info(edge["cursor"], next_=False, previous=True)
    empty = (await _post(client, tenant, query, {"after": edge["cursor"]})).json()
    assert empty["data"]["products"]["edges"] == []
    assert empty["data"]["products"]["pageInfo"]["endCursor"] is None


def _undocumented() -> list[str]:
    schema = build_schema()._schema
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in specified_scalar_types:
            continue
        if not (graphql_type.description or "").strip():
            missing.append(name)
        if isinstance(
            graphql_type, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType
        ):
            for field_name, field in graphql_type.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in (getattr(field, "args", None) or {}).items():
                    if not (arg.description or "").strip():
                        missing.append(f"{name}.{field_name}({arg_name})")
        if isinstance(graphql_type, GraphQLEnumType):
            for value_name, value in graphql_type.values.items():
                if not (value.description or "").strip():
                    missing.append(f"{name}.{value_name}")
    return missing


def test_every_type_field_and_enum_value_has_a_description():
    schema = build_schema()._schema
    # The walk covers what a client sees: roots, objects, inputs, enums, custom scalars.
    assert {
        "Query",
        "Mutation",
        "Product",
        "ProductUpdateInput",
        "ProductStatus",
        "Decimal",
    } <= set(schema.type_map)
    assert _undocumented() == []
