"""Response shapes of `/v1`, for the OpenAPI document (and checked against real responses in
the tests, so the document cannot drift from what the serializers send)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProductObject(_Strict):
    id: str = Field(examples=["prod_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["product"]
    title: str = Field(examples=["1921 Morgan Dollar MS65"])
    price: float = Field(description="Selling price in `currency`.", examples=[430.5])
    ha_lot: str = Field(description="Auction-house lot number.", examples=["123456"])
    sku: str = Field(examples=["HA-123456"])
    description: str
    cost: float = Field(description="What the lot costs at the auction house.")
    margin: float = Field(description="price - cost")
    currency: str = Field(examples=["USD"])
    price_locked: bool = Field(description="True when a manual price overrides the pricing rules.")
    metal: str | None = Field(examples=["Silver"])
    grade: str | None = Field(examples=["MS65"])
    service: str | None = Field(examples=["PCGS"])
    year: int | None
    mint: str | None
    denomination: str | None
    images: list[str]
    tags: list[str]
    status: Literal["active", "draft", "archived", "sold"]
    livemode: bool
    created_at: str
    updated_at: str


class StoreObject(_Strict):
    id: str = Field(examples=["store_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["store"]
    name: str
    platform: Literal["woocommerce", "shopify"]
    url: str
    sync_enabled: bool
    credentials_set: bool = Field(description="Credentials are write-only; this says they exist.")
    settings: dict
    livemode: bool
    created_at: str
    updated_at: str


class ErrorBody(_Strict):
    type: Literal[
        "invalid_request",
        "authentication",
        "permission",
        "not_found",
        "conflict",
        "rate_limited",
        "server",
    ]
    code: str
    message: str
    param: str | None


class ErrorResponse(_Strict):
    error: ErrorBody
