"""Helpers shared by resolvers: the caller, input conversion, model -> type mapping."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import OperationType
from pydantic import BaseModel, ValidationError
from strawberry.types import Info

from app.auth.principal import Principal
from app.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    from_validation_error,
    reject_nul,
)
from app.pagination import MAX_LIMIT, Page, PageParams

M = TypeVar("M", bound=BaseModel)

# Arguments shared by connections and by-id fields, described once.
First = Annotated[int, strawberry.argument(description="Page size, 1–100.")]
After = Annotated[str | None, strawberry.argument(description="`endCursor` of the previous page.")]
ObjectId = Annotated[strawberry.ID, strawberry.argument(description="The object's id.")]


def actor(info: Info) -> Principal:
    """The authenticated caller. Over a websocket only subscriptions run: queries and mutations
    go over HTTP, where every request is rate limited and sees key revocation at once."""
    principal = info.context.get("principal")
    if principal is None:
        raise AuthenticationFailed("No API key provided.", code="missing_api_key")
    request = info.context.get("request")
    if (
        request is not None
        and request.scope["type"] == "websocket"
        and info.operation.operation is not OperationType.SUBSCRIPTION
    ):
        raise PermissionDenied(
            "Send queries and mutations over HTTP; the websocket carries subscriptions.",
            code="subscriptions_only",
        )
    return principal


def plain(value: Any) -> Any:
    """A strawberry input as plain data: UNSET fields dropped, enums as their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not strawberry.UNSET
        }
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


@contextmanager
def input_errors(fields: Collection[str]) -> Iterator[None]:
    """Errors a service raises about one of `fields` name it as GraphQL clients see it:
    `input.<field>`."""
    try:
        yield
    except InvalidInput as exc:
        if exc.param in fields:
            exc.param = f"input.{exc.param}"
        raise


def validate(model: type[M], data: dict[str, Any], *, param: str = "input") -> M:
    reject_nul(data, prefix=param)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=param) from None


def page_params(first: int, after: str | None) -> PageParams:
    if not 1 <= first <= MAX_LIMIT:
        raise InvalidInput(f"first must be 1–{MAX_LIMIT}.", code="parameter_invalid", param="first")
    return PageParams(limit=first, cursor=after)


def connection(page: Page[Any], convert: Any, connection_type: Any, edge_type: Any) -> Any:
    from schema.types import PageInfo

    nodes = [convert(item) for item in page.items]
    from app.pagination import encode_cursor

    edges = [
        edge_type(cursor=encode_cursor(item.id), node=node)
        for item, node in zip(page.items, nodes, strict=True)
    ]
    return connection_type(
        edges=edges,
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.has_more,
            has_previous_page=page.after_cursor,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))
