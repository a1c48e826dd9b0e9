"""Stores: the merchant's WooCommerce and Shopify shops. Credentials are encrypted at rest and
never leave the service; callers see only whether they are set."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from tortoise.transactions import in_transaction

from app import runtime
from app.accounts.models import Environment
from app.auth.principal import Principal
from app.errors import InvalidInput, from_validation_error
from app.ids import new_id
from app.money import Money
from app.netguard import ensure_public_url
from app.pagination import Page, PageParams, paginate
from app.partial import not_null, without_null
from app.stores.models import Platform, Store
from app.tenancy import get_owned, owned
from app.text import FilterValue, Name


def _store_url(url: AnyHttpUrl) -> AnyHttpUrl:
    if url.username is not None or url.password is not None:
        raise ValueError("must not embed credentials; send them in `credentials`")
    if len(str(url).rstrip("/")) > 500:
        raise ValueError("must be at most 500 characters")
    return url


StoreUrl = Annotated[AnyHttpUrl, AfterValidator(_store_url)]
Secret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class WooCommerceCredentials(BaseModel):
    """REST API keys from WooCommerce > Settings > Advanced > REST API."""

    model_config = ConfigDict(extra="forbid")
    consumer_key: Secret
    consumer_secret: Secret


class ShopifyCredentials(BaseModel):
    """An Admin API access token of a custom app with product and order scopes."""

    model_config = ConfigDict(extra="forbid")
    access_token: Secret


class StoreFilters(BaseModel):
    """Which products this store lists (empty = everything)."""

    model_config = ConfigDict(extra="forbid")
    metals: list[FilterValue] = Field(default_factory=list, max_length=20)
    services: list[FilterValue] = Field(default_factory=list, max_length=20)
    min_cost: Money | None = None
    max_cost: Money | None = None

    @model_validator(mode="after")
    def _range(self) -> StoreFilters:
        if (
            self.min_cost is not None
            and self.max_cost is not None
            and self.min_cost > self.max_cost
        ):
            raise ValueError("min_cost must not exceed max_cost")
        return self


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sold_lots: Literal["out_of_stock", "delete"] = Field(
        default="out_of_stock", description="What happens to a listing when its lot sells."
    )
    filters: StoreFilters = Field(default_factory=StoreFilters)


class StoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    platform: Platform
    url: StoreUrl
    credentials: dict[str, Any] = Field(
        default_factory=dict, description="Required, except for a simulated store."
    )
    sync_enabled: bool = True
    settings: StoreSettings = Field(default_factory=StoreSettings)
    simulated: bool = Field(
        default=False,
        description="Back the store with the built-in simulator of its platform instead of a "
        "real shop (sandbox; live data only in development).",
    )


_STORE_NOT_NULL = (
    "name",
    "url",
    "credentials",
    "sync_enabled",
    "settings",
)


class StoreChanges(BaseModel):
    """Partial update. `settings` is merged into the current settings (send only what changes);
    `credentials` replaces the stored ones as a whole."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=without_null(*_STORE_NOT_NULL))
    name: Name | None = None
    url: StoreUrl | None = None
    credentials: dict[str, Any] | None = None
    sync_enabled: bool | None = None
    settings: StoreSettings | None = None

    _not_null = not_null(*_STORE_NOT_NULL)


def merge_settings(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a partial settings update: keys sent replace, keys left out stay (one level down
    into `filters` too), and the result must be valid as a whole (e.g. min_cost <= max_cost)."""
    merged = {**current, **{k: v for k, v in patch.items() if k != "filters"}}
    if "filters" in patch:
        merged["filters"] = {**current.get("filters", {}), **patch["filters"]}
    try:
        return StoreSettings.model_validate(merged).model_dump(mode="json")
    except ValidationError as exc:
        raise from_validation_error(exc, prefix="settings") from None


# What a simulated store keeps for the credentials it was created without (its simulator
# accepts any).
SIMULATED_CREDENTIALS = {
    Platform.WOOCOMMERCE: {"consumer_key": "ck_simulated", "consumer_secret": "cs_simulated"},
    Platform.SHOPIFY: {"access_token": "shpat_simulated"},
}


def validate_credentials(platform: Platform, credentials: dict[str, Any]) -> dict[str, str]:
    model = WooCommerceCredentials if platform is Platform.WOOCOMMERCE else ShopifyCredentials
    try:
        return model.model_validate(credentials).model_dump()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] in ("missing", "extra_forbidden") or not error["loc"]:
            fields = ", ".join(model.model_fields)
            message = f"{platform.value} credentials need exactly: {fields}."
        else:  # the right fields, a bad value (never echoed: it may be a secret)
            message = f"Invalid credentials: {error['loc'][0]}: {error['msg']}."
        raise InvalidInput(message, code="parameter_invalid", param="credentials") from None


async def list_stores(actor: Principal, *, page: PageParams) -> Page[Store]:
    """The caller's stores, newest first."""
    actor.require("stores:read")
    return await paginate(owned(Store, actor), page, prefix="store")


async def get_store(actor: Principal, store_id: str) -> Store:
    """One store; another account's id is a 404 like a missing one."""
    actor.require("stores:read")
    return await get_owned(Store, actor, store_id, prefix="store", noun="store")


async def create_store(actor: Principal, *, data: StoreCreate) -> Store:
    """Connect a store; its credentials are validated for the platform and encrypted."""
    actor.require("stores:write")
    given = data.credentials
    if data.simulated:  # the simulator takes any credentials: what is not sent is filled in
        given = {**SIMULATED_CREDENTIALS[data.platform], **given}
    credentials = validate_credentials(data.platform, given)
    if data.simulated:
        if (
            actor.environment is not Environment.SANDBOX
            and not runtime.current().settings.is_development
        ):
            raise InvalidInput(
                "Simulated stores are for the sandbox (use a sa_test_ key); live data needs "
                "a real store.",
                code="simulated_store_live",
                param="simulated",
            )
    else:
        await ensure_public_url(_url_text(data.url))
    return await Store.create(
        id=new_id("store"),
        account_id=actor.account_id,
        environment=actor.environment,
        name=data.name,
        platform=data.platform,
        url=_url_text(data.url),
        credentials_encrypted=runtime.current().secret_box.encrypt(credentials),
        sync_enabled=data.sync_enabled,
        simulated=data.simulated,
        settings=data.settings.model_dump(mode="json"),
    )


async def update_store(actor: Principal, store_id: str, *, changes: StoreChanges) -> Store:
    """Change a store's name, URL, credentials (replaced whole), sync switch or settings.

    The row is locked for the read-merge-write, so concurrent updates of different settings
    both land (on SQLite the transaction itself serialises writers)."""
    actor.require("stores:write")
    provided = changes.model_dump(exclude_unset=True)
    if "url" in provided:
        await ensure_public_url(_url_text(changes.url))  # type: ignore[arg-type]
    async with in_transaction() as connection:
        store = await get_owned(
            Store, actor, store_id, prefix="store", noun="store", lock=connection
        )
        fields: list[str] = []
        if "name" in provided:
            store.name = changes.name  # type: ignore[assignment]
            fields.append("name")
        if "url" in provided:
            store.url = _url_text(changes.url)  # type: ignore[arg-type]
            fields.append("url")
        if "sync_enabled" in provided:
            store.sync_enabled = bool(changes.sync_enabled)
            fields.append("sync_enabled")
        if "settings" in provided:
            store.settings = merge_settings(store.settings or {}, provided["settings"])
            fields.append("settings")
        if "credentials" in provided:
            credentials = validate_credentials(Platform(store.platform), changes.credentials or {})
            store.credentials_encrypted = runtime.current().secret_box.encrypt(credentials)
            fields.append("credentials_encrypted")
        if fields:
            await store.save(using_db=connection, update_fields=[*fields, "updated_at"])
    return store


def credentials_of(store: Store) -> dict[str, str]:
    """Decrypted credentials, for connectors only."""
    if not store.credentials_encrypted:
        return {}
    return runtime.current().secret_box.decrypt(store.credentials_encrypted)


def _url_text(url: AnyHttpUrl) -> str:
    text = str(url).rstrip("/")
    if len(text) > 500:
        raise InvalidInput("url must be at most 500 characters.", param="url")
    return text
