"""API keys: creation (shown once), listing, revocation, and authentication of a bearer key."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.accounts.models import Account, Environment
from app.accounts.plans import PLANS, rate_limit_for
from app.auth.models import ApiKey
from app.auth.principal import API_KEY_SCOPES, Principal, expand_key_scopes
from app.crypto import hash_api_key
from app.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from app.ids import is_valid_id, new_id

KEY_PREFIXES = {Environment.LIVE: "sa_live_", Environment.SANDBOX: "sa_test_"}
_KEY_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_BODY_LENGTH = 32  # ~190 bits
_MODES = {"live": Environment.LIVE, "test": Environment.SANDBOX, "sandbox": Environment.SANDBOX}

# Authenticated keys are remembered briefly so a request costs no key lookup; revocation in
# this process takes effect at once, in other processes within PRINCIPAL_CACHE_SECONDS.
PRINCIPAL_CACHE_SECONDS = 5.0
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    api_key: ApiKey
    secret: str  # the only time the key is available in clear


async def create_key(
    *, account_id: str, mode: str, scopes: list[str] | None = None, name: str = ""
) -> CreatedKey:
    """Create a key for `mode` live|test. Plans decide which scopes and modes are allowed."""
    account = await Account.get_or_none(id=account_id) if is_valid_id(account_id, "acct") else None
    if account is None:
        raise NotFound(f"No such account: {account_id}", param="account")
    environment = _MODES.get(mode)
    if environment is None:
        raise InvalidInput("mode must be `live` or `test`.", param="mode")
    features = PLANS[account.plan]
    if environment is Environment.SANDBOX and not features.sandbox:
        raise PermissionDenied(
            f"The {account.plan.value} plan has no sandbox: "
            "test keys need the professional or enterprise plan.",
            code="plan_restriction",
            param="mode",
        )
    scopes = list(dict.fromkeys(scopes or features.key_scopes))
    unknown = [s for s in scopes if s not in API_KEY_SCOPES]
    if unknown:
        raise InvalidInput(f"Unknown scope(s): {', '.join(unknown)}.", param="scopes")
    denied = [s for s in scopes if s not in features.key_scopes]
    if denied:
        raise PermissionDenied(
            f"The {account.plan.value} plan allows only {', '.join(features.key_scopes)} keys.",
            code="plan_restriction",
            param="scopes",
        )
    secret = KEY_PREFIXES[environment] + "".join(
        secrets.choice(_KEY_ALPHABET) for _ in range(_KEY_BODY_LENGTH)
    )
    api_key = await ApiKey.create(
        id=new_id("key"),
        account=account,
        environment=environment,
        name=name[:200],
        key_hash=hash_api_key(secret),
        prefix=KEY_PREFIXES[environment],
        last4=secret[-4:],
        scopes=scopes,
    )
    return CreatedKey(api_key=api_key, secret=secret)


async def list_keys(*, account_id: str | None = None) -> list[ApiKey]:
    """Keys (never their secrets), oldest first; all accounts' when `account_id` is None.
    An unknown account is a 404, not an empty list."""
    query = ApiKey.all()
    if account_id is not None:
        if not is_valid_id(account_id, "acct") or not await Account.exists(id=account_id):
            raise NotFound(f"No such account: {account_id}", param="account")
        query = query.filter(account_id=account_id)
    return await query.order_by("id")


async def revoke_key(key_id: str) -> ApiKey:
    """Revoke a key for good (idempotent: revoking twice keeps the first time)."""
    api_key = await ApiKey.get_or_none(id=key_id) if is_valid_id(key_id, "key") else None
    if api_key is None:
        raise NotFound(f"No such API key: {key_id}", param="key")
    if api_key.revoked_at is None:
        api_key.revoked_at = datetime.now(UTC)
        await api_key.save(update_fields=["revoked_at"])
    _principal_cache.pop(api_key.key_hash, None)
    return api_key


_principal_cache: dict[str, tuple[float, Principal]] = {}


def forget_cached_principals() -> None:
    """Drop every remembered key (tests, and after bulk changes to accounts)."""
    _principal_cache.clear()


async def authenticate_api_key(raw_key: str) -> Principal:
    """Resolve a bearer key to its principal, or raise 401."""
    if not raw_key.startswith(("sa_live_", "sa_test_")) or len(raw_key) > 100:
        raise AuthenticationFailed("Invalid API key provided.", code="invalid_api_key")
    key_hash = hash_api_key(raw_key)
    now = time.monotonic()
    cached = _principal_cache.get(key_hash)
    if cached is not None and cached[0] > now:
        return cached[1]
    api_key = await ApiKey.get_or_none(key_hash=key_hash).select_related("account")
    if api_key is None or api_key.revoked_at is not None:
        _principal_cache.pop(key_hash, None)
        raise AuthenticationFailed("Invalid API key provided.", code="invalid_api_key")
    account = api_key.account
    environment = Environment(api_key.environment)
    # The plan is checked on every use, not only when the key was made: a downgraded account
    # keeps its keys but loses what its new plan does not include.
    features = PLANS[account.plan]
    if environment is Environment.SANDBOX and not features.sandbox:
        raise PermissionDenied(
            f"The {account.plan.value} plan has no sandbox; test keys are paused.",
            code="plan_restriction",
        )
    allowed_scopes = [scope for scope in api_key.scopes if scope in features.key_scopes]
    principal = Principal(
        account_id=account.id,
        environment=environment,
        scopes=expand_key_scopes(allowed_scopes) | frozenset({"account:read"}),
        plan=account.plan,
        rate_limit=rate_limit_for(account.plan, account.rate_limit),
        credential_id=api_key.id,
    )
    if len(_principal_cache) > 10_000:
        _principal_cache.clear()
    _principal_cache[key_hash] = (now + PRINCIPAL_CACHE_SECONDS, principal)
    stamp = datetime.now(UTC)
    if api_key.last_used_at is None or stamp - api_key.last_used_at > LAST_USED_RESOLUTION:
        await ApiKey.filter(id=api_key.id).update(last_used_at=stamp)
    return principal
