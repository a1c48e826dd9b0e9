"""Who is calling: the principal every service receives first.

Scopes are domain-qualified (`products:read`, `stores:write`, …). An API key's `read`/`write`
scope expands to the wildcard `*:read`/`*:write`, so the same check serves OAuth tokens, whose
scopes name domains, without services knowing where a principal came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.accounts.models import Environment, Plan
from app.errors import PermissionDenied

API_KEY_SCOPES = ("read", "write")

DOMAIN_SCOPES = (
    "account:read",
    "products:read",
    "products:write",
    "stores:read",
    "stores:write",
    "pricing:read",
    "pricing:write",
)


def expand_key_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    """`read` -> `*:read`; `write` -> `*:write` and `*:read` (write implies read)."""
    granted: set[str] = set()
    for scope in scopes:
        if scope == "read":
            granted.add("*:read")
        elif scope == "write":
            granted.update({"*:read", "*:write"})
        else:
            granted.add(scope)
    return frozenset(granted)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, bound to one account and one environment."""

    account_id: str
    environment: Environment
    scopes: frozenset[str]
    plan: Plan
    rate_limit: int
    credential_id: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    # The rate-limit budget the caller draws on, one per account and environment; built once
    # (principals are cached per key), not on every request.
    budget_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget_key", f"acct:{self.account_id}:{self.environment}")

    def allows(self, scope: str) -> bool:
        domain, _, action = scope.partition(":")
        return scope in self.scopes or f"*:{action}" in self.scopes or f"{domain}:*" in self.scopes

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            raise PermissionDenied(
                f"This credential lacks the `{scope}` scope.", code="insufficient_scope"
            )

    @property
    def tenant(self) -> dict[str, str]:
        """Filter kwargs that pin a query to this principal's account and environment."""
        return {"account_id": self.account_id, "environment": self.environment}
