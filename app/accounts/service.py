"""Accounts: operator-level creation (CLI) and the caller's own account (`me`)."""

from __future__ import annotations

from app.accounts.models import Account, Environment, Plan
from app.accounts.plans import PLANS, rate_limit_for
from app.auth.principal import Principal, expand_key_scopes
from app.errors import InvalidInput, NotFound, PermissionDenied
from app.ids import is_valid_id, new_id


async def create_account(*, name: str, plan: Plan | str, rate_limit: int | None = None) -> Account:
    """Create a merchant account. `rate_limit` (requests/minute) applies to enterprise only."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1–200 characters.", param="name")
    try:
        plan = Plan(plan)
    except ValueError:
        raise InvalidInput(
            f"plan must be one of {', '.join(p.value for p in Plan)}.", param="plan"
        ) from None
    if rate_limit is not None:
        if plan is not Plan.ENTERPRISE:
            raise InvalidInput("A custom rate limit needs the enterprise plan.", param="rate_limit")
        if not 1 <= rate_limit <= 1_000_000:
            raise InvalidInput("rate_limit must be 1–1000000 requests/minute.", param="rate_limit")
    return await Account.create(id=new_id("acct"), name=name, plan=plan, rate_limit=rate_limit)


async def list_accounts() -> list[Account]:
    """Every account, oldest first (operator use: the CLI)."""
    return await Account.all().order_by("id")


async def get_account(account_id: str) -> Account:
    """One account by id, or 404 (operator use: no principal, no tenant filter)."""
    account = await Account.get_or_none(id=account_id) if is_valid_id(account_id, "acct") else None
    if account is None:
        raise NotFound(f"No such account: {account_id}", param="account")
    return account


async def get_me(actor: Principal) -> Account:
    """The caller's own account."""
    actor.require("account:read")
    return await get_account(actor.account_id)


def operator_principal(account: Account, environment: Environment) -> Principal:
    """Write access to `account` in `environment` for operator tools (the CLI, the demo), with
    the plan's rules: no sandbox for a plan without one."""
    if environment is Environment.SANDBOX and not PLANS[account.plan].sandbox:
        raise PermissionDenied(
            f"The {account.plan.value} plan has no sandbox: "
            "sandbox data needs the professional or enterprise plan.",
            code="plan_restriction",
            param="mode",
        )
    return Principal(
        account_id=account.id,
        environment=environment,
        scopes=expand_key_scopes(["write"]),
        plan=account.plan,
        rate_limit=effective_rate_limit(account),
    )


def effective_rate_limit(account: Account) -> int:
    """Requests per minute the account's plan (or custom limit) allows."""
    return rate_limit_for(account.plan, account.rate_limit)
