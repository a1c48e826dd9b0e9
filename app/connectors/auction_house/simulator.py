"""An in-process auction-house API, for tests and demos: `create_simulator(seed=..., ...)`.

`GET /v1/lots?page=N&page_size=M` serves the seeded catalog with bearer auth and a strong ETag
per page; `POST /v1/_admin/advance` moves the catalog one generation; `app.state.faults`
makes the next responses fail (429 with `Retry-After`, 503, ...) so clients' retries can be
tested. This module is a web edge by design: it is the only connector module importing Starlette.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.connectors.auction_house.catalog import (
    Lot,
    evolve,
    featured_lots,
    generate_catalog,
    lot_to_json,
)
from app.connectors.faults import Faults

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


@dataclass
class SimulatorState:
    """The simulated catalog: the current generation and its lots, ordered by lot number."""

    seed: int
    size: int
    generation: int = 0
    lots: list[Lot] = field(default_factory=list)
    featured: int = 0  # the first `featured` lots are fixed: they never sell or reprice
    # The generation each offered lot last changed in (arrived, repriced, sold), and the lots
    # gone from the catalog with the generation they went: what `changed_since` serves.
    changed: dict[str, int] = field(default_factory=dict)
    gone: dict[str, tuple[int, Lot]] = field(default_factory=dict)

    def advance(self) -> None:
        self.generation += 1
        before = {lot.ha_lot: lot for lot in self.lots}
        fixed, evolving = self.lots[: self.featured], self.lots[self.featured :]
        self.lots = fixed + evolve(evolving, seed=self.seed, generation=self.generation)
        for lot in self.lots:
            if before.pop(lot.ha_lot, None) != lot:
                self.changed[lot.ha_lot] = self.generation
        for ha_lot, lot in before.items():  # sold last generation, now gone
            self.changed.pop(ha_lot, None)
            self.gone[ha_lot] = (self.generation, replace(lot, available=False))

    def catch_up(self, generation: int) -> None:
        """Advance to `generation` (a catalog is the same for the same seed, size and number
        of steps, so processes that share the count serve the same lots)."""
        while self.generation < generation:
            self.advance()

    def changes_since(self, generation: int) -> list[Lot]:
        """Lots that arrived, changed or sold after `generation`, and the lots that left the
        catalog since (as `available: false`), in lot-number order."""
        lots = [lot for lot in self.lots if self.changed.get(lot.ha_lot, 0) > generation]
        lots += [lot for gen, lot in self.gone.values() if gen > generation]
        return sorted(lots, key=lambda lot: (len(lot.ha_lot), lot.ha_lot))


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _authorized(request: Request) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token: str = request.app.state.token
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.encode(), token.encode())


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw)  # ValueError -> 400 below
    if not low <= value <= high:
        raise ValueError(name)
    return value


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or etag in (tag.strip() for tag in header.split(","))


async def list_lots(request: Request) -> Response:
    if not _authorized(request):
        return _error(
            401,
            "invalid_token",
            "Missing or invalid bearer token.",
            {"WWW-Authenticate": "Bearer"},
        )
    faults: Faults = request.app.state.faults
    if faults.pending:
        fault = faults.pending.popleft()
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return _error(fault.status, "injected_fault", "Injected fault.", headers)
    try:
        page = _int_param(request, "page", 1, 1, 10**9)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    except ValueError:
        return _error(400, "parameter_invalid", f"page >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}.")

    state: SimulatorState = request.app.state.catalog
    shared: SharedGeneration | None = request.app.state.shared
    if shared is not None:
        state.catch_up(await shared.current())
    lots = state.lots
    since: int | None = None
    if "changed_since" in request.query_params:
        try:
            since = _int_param(request, "changed_since", 0, 0, 10**9)
        except ValueError:
            return _error(400, "parameter_invalid", "changed_since must be a generation >= 0.")
        if since > state.generation:
            return _error(
                400,
                "generation_unknown",
                f"changed_since={since} is ahead of the catalog (generation {state.generation}).",
            )
        lots = state.changes_since(since)
    start = (page - 1) * page_size
    window = lots[start : start + page_size]
    total = len(lots)
    body: dict[str, object] = {
        "lots": [lot_to_json(lot) for lot in window],
        "page": page,
        "page_size": page_size,
        "total": total,
        "next_page": page + 1 if start + page_size < total else None,
        "generation": state.generation,
    }
    if since is not None:
        body["changed_since"] = since
    content = json.dumps(body, separators=(",", ":")).encode()
    etag = f'"{hashlib.sha256(content).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


async def advance(request: Request) -> Response:
    if not _authorized(request):
        return _error(401, "invalid_token", "Missing or invalid bearer token.")
    state: SimulatorState = request.app.state.catalog
    shared: SharedGeneration | None = request.app.state.shared
    if shared is None:
        state.advance()
    else:
        try:
            generation = await shared.advance()
        except Exception:
            return _error(503, "unavailable", "The shared generation cannot be advanced now.")
        state.catch_up(generation)
    return JSONResponse({"generation": state.generation, "total": len(state.lots)})


class SharedGeneration(Protocol):
    """The catalog's generation, kept where several processes' simulators read it."""

    async def current(self) -> int: ...

    async def advance(self) -> int:
        """One generation more, for every process; returns the new one."""
        ...


def create_simulator(
    *,
    seed: int = 1,
    size: int = 1_000,
    token: str = "sim-token",
    featured: bool = False,
    shared: SharedGeneration | None = None,
) -> Starlette:
    """A Starlette app serving the catalog for `seed` and `size`, starting at generation 0;
    with `featured`, the developer page's example coins open the catalog. With `shared`, the
    generation is the shared one: an advance through any process reaches them all."""
    app = Starlette(
        routes=[
            Route("/v1/lots", list_lots, methods=["GET"]),
            Route("/v1/_admin/advance", advance, methods=["POST"]),
        ]
    )
    app.state.token = token
    app.state.faults = Faults()
    app.state.shared = shared
    fixed = featured_lots() if featured else []
    app.state.catalog = SimulatorState(
        seed=seed, size=size, lots=fixed + generate_catalog(seed, size), featured=len(fixed)
    )
    return app
