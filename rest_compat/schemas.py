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


class PricingRuleObject(_Strict):
    id: str = Field(examples=["rule_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["pricing_rule"]
    name: str = Field(examples=["Silver dollars +15 %"])
    active: bool
    priority: int = Field(description="Lower numbers are evaluated first (0–10000).")
    markup_percent: float = Field(description="Percent of cost added.", examples=[15.0])
    markup_fixed: float = Field(description="Amount added after the percent.", examples=[0.0])
    rounding: Literal["none", "1.00", "0.99", "0.95", "5.00"]
    min_margin: float | None = Field(description="Absolute minimum margin.")
    min_margin_percent: float | None = Field(description="Minimum margin in percent of cost.")
    metals: list[str] = Field(description="Only these metals (empty = any).")
    services: list[str] = Field(description="Only these grading services (empty = any).")
    min_grade: int | None = Field(description="Lowest Sheldon grade, 1–70.")
    max_grade: int | None = Field(description="Highest Sheldon grade, 1–70.")
    min_cost: float | None = Field(description="Only lots costing at least this.")
    max_cost: float | None = Field(description="Only lots costing at most this.")
    title_contains: str | None = Field(description="Only lots whose title contains this.")
    livemode: bool
    created_at: str
    updated_at: str


class DeletedObject(_Strict):
    id: str = Field(examples=["rule_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: str = Field(examples=["pricing_rule"])
    deleted: Literal[True]


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
