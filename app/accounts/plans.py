"""What each plan includes. Pure data: the one place plan rules live."""

from __future__ import annotations

from dataclasses import dataclass

from app.accounts.models import Plan


@dataclass(frozen=True, slots=True)
class PlanFeatures:
    rate_limit: int | None  # requests/minute; None = the account's custom limit
    key_scopes: tuple[str, ...]
    sandbox: bool


PLANS: dict[Plan, PlanFeatures] = {
    Plan.STARTER: PlanFeatures(rate_limit=100, key_scopes=("read",), sandbox=False),
    Plan.PROFESSIONAL: PlanFeatures(rate_limit=500, key_scopes=("read", "write"), sandbox=True),
    Plan.ENTERPRISE: PlanFeatures(rate_limit=None, key_scopes=("read", "write"), sandbox=True),
}

DEFAULT_ENTERPRISE_LIMIT = 2000


def rate_limit_for(plan: Plan, custom: int | None) -> int:
    """Requests per minute for an account on `plan` (enterprise uses its custom limit)."""
    features = PLANS[plan]
    if features.rate_limit is not None:
        return features.rate_limit
    return custom or DEFAULT_ENTERPRISE_LIMIT
