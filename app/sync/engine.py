"""The sync engine: auction-house lots become priced products, and stores list them.

    feed (streamed pages, ETags) -> content hash per lot -> diff with the stored products
      -> price new and changed lots -> upsert in batches, one transaction each, with their
         `product.*` events and the job's counters -> reprice if the rules changed
      -> per store: the listings whose pushed state differs -> connector batches
         -> listing state recorded per batch -> `sync.completed`

Every step is idempotent and the database is the truth, so a run killed at any point is
finished by the next one (the same job, resumed): the diff finds the committed batches
unchanged, and each store is sent only what its listing state says is missing, which is at
most the one batch that was in flight.

A `full` sync reads every page unconditionally and re-sends every listing; a `delta` sync skips
feed pages whose ETag is unchanged and sends stores only what changed.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from app import runtime, sqltext
from app.accounts.models import Environment
from app.connectors.auction_house.catalog import Lot
from app.connectors.base import ListingResult, ListingWrite, StoreConnector, WriteAction
from app.errors import UpstreamError
from app.events.models import Event
from app.events.service import atomic
from app.events.types import EventType
from app.ids import new_id
from app.pricing.core import LotFacts, Rule, price_lot
from app.pricing.service import tenant_pricing
from app.products.models import Product, ProductStatus
from app.products.service import product_event_data
from app.stores.models import Store
from app.sync import connect
from app.sync.diff import ChangeKind, LotChange, LotDiff, listing_hash, lot_hash
from app.sync.models import Listing, ListingStatus, SyncJob, SyncState, SyncType
from app.sync.upsert import ProductRow, write_events, write_products

logger = logging.getLogger("syncauction.sync")

HEARTBEAT_SECONDS = 10.0
# A table that grew by this many rows in one sync gets fresh planner statistics.
ANALYZE_AFTER = 2000


MINTS = {
    "P": "Philadelphia",
    "D": "Denver",
    "S": "San Francisco",
    "O": "New Orleans",
    "CC": "Carson City",
    "W": "West Point",
}


def describe(lot: Lot) -> str:
    """The description a new product starts with (the merchant may rewrite it)."""
    parts = [f"{lot.title}, graded {lot.grade} by {lot.service}."]
    details = ", ".join(
        part
        for part in (
            f"{lot.denomination} {lot.metal.lower()}" if lot.metal else lot.denomination,
            f"struck at the {MINTS.get(lot.mint, lot.mint)} mint ({lot.mint})"
            if lot.mint
            else None,
        )
        if part
    )
    if details:
        parts.append(details[0].upper() + details[1:] + ".")
    parts.append(f"Auction-house lot {lot.ha_lot}.")
    return " ".join(parts)


def rules_fingerprint(rules: Sequence[Rule], default: Rule | None = None) -> str:
    """Changes when any price the rules give may change; the same in every process."""

    def canonical(rule: Rule | None) -> Any:
        if rule is None:
            return None
        values = {f.name: getattr(rule, f.name) for f in fields(rule)}
        values["metals"], values["services"] = sorted(rule.metals), sorted(rule.services)
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}

    text = orjson.dumps(
        {
            "rules": [canonical(r) for r in sorted(rules, key=lambda r: r.id)],
            "default": canonical(default),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(text).hexdigest()


_LISTING_FIELDS = (
    "external_id",
    "status",
    "pushed_hash",
    "error_code",
    "error_message",
    "pushed_at",
)


class LostClaim(Exception):
    """Another execution took the job over (this one was presumed dead): stop writing."""


@dataclass
class _Counters:
    added: int = 0
    updated: int = 0
    removed: int = 0
    errors: int = 0
    lots: int = 0


@dataclass
class _StoreOutcome:
    pushed: int = 0
    errors: int = 0
    error: str | None = None
    error_messages: list[str] = field(default_factory=list)


class SyncRun:
    """One execution of a sync job (a resumed job is a new execution of the same job)."""

    def __init__(self, job: SyncJob) -> None:
        self.job = job
        self.account_id = job.account_id
        self.environment = Environment(job.environment)
        self.batch_size = runtime.current().settings.sync_batch_size
        self._last_beat = 0.0
        self.default_rule: Rule | None = None
        self._sold: set[str] = set()  # lots whose product is sold (a lot may come back)
        self._feed_generation: int | None = None
        self._had_products = True  # whether products existed before this run wrote any
        # This execution's counts; a resumed job adds them to what earlier executions saved.
        self.counters = _Counters()
        self._base = _Counters(
            added=job.products_added,
            updated=job.products_updated,
            removed=job.products_removed,
        )

    # -- orchestration --------------------------------------------------------------------

    async def run(self) -> None:
        rules, default = await tenant_pricing(self.account_id, self.environment.value)
        self.default_rule = default
        fingerprint = rules_fingerprint(rules, default)
        state = await self._state()
        full = self.job.type is SyncType.FULL
        if self.job.phase != "pushing":  # else a resumed job whose products are written
            await self._update_products(rules, fingerprint, state, full=full)
        for store in await self._stores():
            await self._push_store(store, force=full)

    async def _update_products(
        self, rules: list[Rule], fingerprint: str, state: SyncState, *, full: bool
    ) -> None:
        await self._phase("fetching")
        self._feed_generation = state.feed_generation
        pages: list[Any] | None = None
        if not full and state.feed_generation is not None:
            try:
                await self._ingest_changes(rules, state.feed_generation)
                pages = list(state.pages)
            except UpstreamError as exc:
                if exc.code != "feed_changes_unavailable":
                    raise
                logger.info("sync %s: %s; reading the whole feed", self.job.id, exc.message)
        if pages is None:
            pages = await self._ingest(rules, state, conditional=not full)
        # Ingest priced what it wrote with today's rules; the rest needs it only if the rules
        # changed since the last sync (and never on a tenant's first sync).
        if state.rules_fingerprint != fingerprint and self._had_products:
            await self._phase("repricing")
            await self._reprice(rules)
        now = datetime.now(UTC)
        state.pages = pages
        state.feed_generation = self._feed_generation
        state.rules_fingerprint = fingerprint
        if full:
            state.last_full_at = now
        else:
            state.last_delta_at = now
        self.job.phase = "pushing"
        async with atomic() as tx:
            await state.save(using_db=tx.connection)
            await self._update_job(connection=tx.connection, phase="pushing")

    # -- feed -> products -------------------------------------------------------------------

    async def _ingest(self, rules: list[Rule], state: SyncState, *, conditional: bool) -> list[Any]:
        known: dict[str, str] = {}
        self._sold = set()
        for ha_lot, digest, status in await self._tenant(Product).values_list(
            "ha_lot", "content_hash", "status"
        ):
            if status == ProductStatus.SOLD:
                self._sold.add(ha_lot)
            else:
                known[ha_lot] = digest
        self._had_products = bool(known or self._sold)
        ordered_lots = sorted(known, key=_lot_key)
        diff = LotDiff(known)
        feed = connect.auction_house(self.environment)
        remembered = {entry[0]: entry for entry in state.pages} if conditional else {}
        for number, etag, next_page, *_ in remembered.values():
            feed.remember_page(number, etag, next_page)
        pages: list[Any] = []
        pending: list[LotChange] = []
        counters = self.counters
        generations: set[int] = set()
        try:
            async for page in feed.pages(conditional=conditional):
                if not page.not_modified and page.generation is not None:
                    generations.add(page.generation)
                if page.total is not None and self.job.lots_total != page.total:
                    self.job.lots_total = page.total
                if page.not_modified:
                    entry = remembered[page.number]
                    first, last = entry[3], entry[4]
                    if first is not None:
                        low = bisect.bisect_left(ordered_lots, _lot_key(first), key=_lot_key)
                        high = bisect.bisect_right(ordered_lots, _lot_key(last), key=_lot_key)
                        diff.mark_seen(ordered_lots[low:high])
                    counters.lots += entry[5]
                    pages.append(entry)
                else:
                    for lot in page.lots:
                        change = diff.feed(lot)
                        if change is not None:
                            pending.append(change)
                    counters.lots += len(page.lots)
                    first = page.lots[0].ha_lot if page.lots else None
                    last = page.lots[-1].ha_lot if page.lots else None
                    pages.append(
                        [page.number, page.etag, page.next_page, first, last, len(page.lots)]
                    )
                if len(pending) >= self.batch_size:
                    await self._write_batch(pending, rules, counters)
                    pending = []
                else:
                    await self._beat(counters)
        finally:
            await feed.aclose()
        await self._write_batch(pending, rules, counters)
        if counters.added >= ANALYZE_AFTER:
            await _analyze("products")
        if len(generations) == 1:
            self._feed_generation = next(iter(generations))
        elif generations:
            self._feed_generation = None
        if len(generations) > 1:
            # The catalog changed while it was read: offsets shifted, so a lot still offered
            # may have been skipped. Removing is deferred to a run that reads one generation
            # (and no page is remembered, so that run reads every page).
            logger.warning("sync %s: the feed changed while read; removals deferred", self.job.id)
            return []
        if counters.lots == 0 and known:
            logger.warning("sync %s: the feed offered no lots; nothing removed", self.job.id)
            return []
        await self._remove(diff.removed(), counters)
        return [entry for entry in pages if entry[1]]

    async def _ingest_changes(self, rules: list[Rule], since: int) -> None:
        """A delta through the feed's change list: only the lots that arrived, changed or left
        since generation `since` are read, looked up and written."""
        counters = self.counters
        feed = connect.auction_house(self.environment)
        generations: set[int] = set()
        offered: list[Any] = []
        gone: list[str] = []
        try:
            async for page in feed.pages(changed_since=since):
                if page.generation is not None:
                    generations.add(page.generation)
                self.job.lots_total = page.total
                for lot in page.lots:
                    (offered if lot.available else gone).append(lot)
                counters.lots += len(page.lots)
                if len(offered) >= self.batch_size:
                    await self._write_changed(offered, rules)
                    offered = []
                else:
                    await self._beat(counters)
        finally:
            await feed.aclose()
        await self._write_changed(offered, rules)
        await self._remove(sorted(lot.ha_lot for lot in gone), counters)
        # Read at one generation: the next delta starts there. Otherwise (the catalog moved
        # while read) it asks again from `since`; applying a change twice changes nothing.
        self._feed_generation = next(iter(generations)) if len(generations) == 1 else since

    async def _write_changed(self, lots: list[Any], rules: list[Rule]) -> None:
        stored = {
            ha_lot: (digest, status)
            for ha_lot, digest, status in await self._tenant(Product)
            .filter(ha_lot__in=[lot.ha_lot for lot in lots])
            .values_list("ha_lot", "content_hash", "status")
        }
        changes = []
        for lot in lots:
            digest = lot_hash(lot)
            known = stored.get(lot.ha_lot)
            if known is None:
                changes.append(LotChange(ChangeKind.CREATED, lot, digest))
            elif known[0] != digest or known[1] == ProductStatus.SOLD:
                changes.append(LotChange(ChangeKind.UPDATED, lot, digest))
        await self._write_batch(changes, rules, self.counters)

    async def _write_batch(
        self, changes: list[LotChange], rules: list[Rule], counters: _Counters
    ) -> None:
        if not changes:
            await self._save_counters(counters, force=True)
            return
        now = datetime.now(UTC)
        by_lot = {change.lot.ha_lot: change for change in changes}
        # Only lots the diff knows are stored (changed, or sold and back) need their row: a
        # first sync of a large catalog looks nothing up.
        lookup = [
            ha_lot
            for ha_lot, change in by_lot.items()
            if change.kind is ChangeKind.UPDATED or ha_lot in self._sold
        ]
        existing = (
            {p.ha_lot: p for p in await self._tenant(Product).filter(ha_lot__in=lookup)}
            if lookup
            else {}
        )
        rows: list[ProductRow] = []
        events: list[Event] = []
        for ha_lot, change in by_lot.items():
            lot = change.lot
            current = existing.get(ha_lot)
            decision = price_lot(LotFacts.of(lot), rules, default=self.default_rule)
            manual = current.manual_price if current is not None else None
            row = ProductRow.for_lot(
                lot,
                id=current.id if current is not None else new_id("prod"),
                account_id=self.account_id,
                environment=self.environment.value,
                price=Decimal(manual) if manual is not None else decision.price,
                description=current.description if current is not None else describe(lot),
                content_hash=change.content_hash,
                now=now,
                current=current,
            )
            rows.append(row)
            revived = current is not None and current.status is ProductStatus.SOLD
            kind = (
                EventType.PRODUCT_CREATED
                if current is None or revived or change.kind is ChangeKind.CREATED
                else EventType.PRODUCT_UPDATED
            )
            data = product_event_data(row)
            if kind is EventType.PRODUCT_UPDATED and current is not None:
                data["changed"] = _changed(current, row)
                counters.updated += 1
            else:
                counters.added += 1
            events.append(self._event(kind, data, now))
        async with atomic() as tx:
            await write_products(tx.connection, rows)
            await write_events(tx.connection, events)
            tx.events.extend(events)
            await self._save_counters(counters, connection=tx.connection, force=True)

    async def _remove(self, lots: list[str], counters: _Counters) -> None:
        """Lots the feed no longer offers (sold or withdrawn): their products become `sold`."""
        for start in range(0, len(lots), self.batch_size):
            chunk = lots[start : start + self.batch_size]
            now = datetime.now(UTC)
            products = await self._tenant(Product).filter(ha_lot__in=chunk)
            events = [
                self._event(
                    EventType.PRODUCT_DELETED, {**product_event_data(p), "reason": "sold"}, now
                )
                for p in products
                if p.status is not ProductStatus.SOLD
            ]
            counters.removed += len(events)
            async with atomic() as tx:
                await (
                    self._tenant(Product)
                    .using_db(tx.connection)
                    .filter(ha_lot__in=chunk)
                    .update(status=ProductStatus.SOLD, updated_at=now)
                )
                await write_events(tx.connection, events)
                tx.events.extend(events)
                await self._save_counters(counters, connection=tx.connection, force=True)

    async def _reprice(self, rules: list[Rule]) -> None:
        """Prices the rules give now, for every product without a manual price; changed ones
        are written with a `product.updated` event (`changed: ["price", "margin"]`)."""
        counters = self.counters
        after = ""
        while True:
            products = (
                await self._tenant(Product)
                .filter(manual_price=None, id__gt=after)
                .exclude(status=ProductStatus.SOLD)
                .order_by("id")
                .limit(self.batch_size)
            )
            if not products:
                break
            after = products[-1].id
            now = datetime.now(UTC)
            changed: list[tuple[Product, Decimal]] = []
            for product in products:
                price = price_lot(LotFacts.of(product), rules, default=self.default_rule).price
                if price != Decimal(product.price):
                    changed.append((product, price))
            if not changed:
                continue
            events = []
            async with atomic() as tx:
                for product, price in changed:
                    product.price = price
                    product.margin = price - Decimal(product.cost)
                    product.listing_hash = listing_hash(
                        title=product.title,
                        description=product.description,
                        price=price,
                        images=list(product.images or []),
                        sku=product.sku,
                    )
                    product.updated_at = now
                    data = {**product_event_data(product), "changed": ["margin", "price"]}
                    events.append(self._event(EventType.PRODUCT_UPDATED, data, now))
                await Product.bulk_update(
                    [product for product, _ in changed],
                    fields=["price", "margin", "listing_hash", "updated_at"],
                    using_db=tx.connection,
                )
                counters.updated += len(changed)
                await write_events(tx.connection, events)
                tx.events.extend(events)
                await self._save_counters(counters, connection=tx.connection, force=True)

    # -- products -> stores ------------------------------------------------------------------

    async def _stores(self) -> list[Store]:
        query = self._tenant(Store).filter(sync_enabled=True)
        if self.job.store_ids:
            query = query.filter(id__in=list(self.job.store_ids))
        return list(await query.order_by("id"))

    async def _push_store(self, store: Store, *, force: bool) -> None:
        outcome = _StoreOutcome(**self._store_record(store.id, reset=False))
        connector: StoreConnector | None = None
        created = 0
        try:
            connector, empty = connect.store_connector(store)
            if empty:
                await Listing.filter(store_id=store.id).delete()
            plan = await self._plan(store, force=force)
            size = max(1, connector.batch_size)
            # Product rows are loaded a few batches at a time: a full push of a large catalog
            # never holds every product in memory.
            step = size * 10
            for start in range(0, len(plan), step):
                writes = await self._writes(plan[start : start + step])
                for offset in range(0, len(writes), size):
                    batch = writes[offset : offset + size]
                    results = await connector.apply(batch)
                    created += await self._record(store, batch, results, outcome)
        except UpstreamError as exc:
            outcome.error = f"{exc.code}: {exc.message}" if exc.code else exc.message
            outcome.errors += 1
            logger.warning("sync %s: store %s failed: %s", self.job.id, store.id, outcome.error)
        except (LostClaim, asyncio.CancelledError):
            raise
        except Exception:
            # One store's unexpected failure must not starve the others.
            logger.exception("sync %s: store %s failed unexpectedly", self.job.id, store.id)
            outcome.error = "internal_error: the push to this store stopped unexpectedly"
            outcome.errors += 1
        finally:
            if connector is not None:
                await connector.aclose()
        if created >= ANALYZE_AFTER:
            await _analyze("listings")
        await self._save_store(store.id, outcome)

    async def _plan(self, store: Store, *, force: bool) -> list[_Planned]:
        """What the store must be sent, decided in one query: a listing per product it should
        show that it does not (or shows an older version of; every one on `force`), and a
        take-down per listing whose product sold, was withdrawn, or no longer passes the
        store's filters. A no-op delta reads no product row."""
        settings = store.settings or {}
        take_down = (
            WriteAction.DELETE
            if settings.get("sold_lots") == "delete"
            else WriteAction.OUT_OF_STOCK
        )
        connection = Listing._meta.db
        query = _CandidateQuery(connection.capabilities.dialect, settings.get("filters") or {})
        sql = query.render(store.id, self.account_id, self.environment.value, force=force)
        rows = await connection.execute_query_dict(sql, query.params)
        # A resumed `full` job does not re-send what an earlier execution of it pushed.
        since = self.job.started_at
        plan: list[_Planned] = []
        for row in rows:
            if row["show"]:
                if force and row["l_status"] == ListingStatus.LISTED.value:
                    pushed_at = _timestamp(row["pushed_at"])
                    if (
                        row["pushed_hash"] == row["listing_hash"]
                        and since is not None
                        and pushed_at is not None
                        and pushed_at >= since
                    ):
                        continue
                action = WriteAction.UPSERT
            else:
                action = take_down
            plan.append(_Planned(row["id"], action, row["external_id"], row["listing_id"]))
        return plan

    async def _writes(self, planned: list[_Planned]) -> list[ListingWrite]:
        products = {
            product.id: product
            for product in await Product.filter(id__in=[p.product_id for p in planned])
        }
        writes = []
        for item in planned:
            product = products.get(item.product_id)
            if product is None:  # deleted with its account meanwhile
                continue
            writes.append(
                ListingWrite(
                    product_id=product.id,
                    sku=product.sku,
                    action=item.action,
                    external_id=item.external_id,
                    title=product.title,
                    description=product.description,
                    price=Decimal(product.price),
                    images=tuple(product.images or ()),
                    listing_hash=product.listing_hash,
                    listing_id=item.listing_id,
                )
            )
        return writes

    async def _record(
        self,
        store: Store,
        batch: list[ListingWrite],
        results: list[ListingResult],
        outcome: _StoreOutcome,
    ) -> int:
        """Record what the store now holds; returns how many listings were created."""
        now = datetime.now(UTC)
        known = [w.listing_id for w in batch if w.listing_id is not None]
        async with atomic() as tx:
            existing = {
                listing.product_id: listing
                for listing in (
                    await Listing.filter(id__in=known).using_db(tx.connection) if known else []
                )
            }
            created: list[Listing] = []
            for write, result in zip(batch, results, strict=True):
                listing = existing.get(write.product_id)
                if listing is None:
                    listing = Listing(
                        account_id=self.account_id,
                        environment=self.environment,
                        store_id=store.id,
                        product_id=write.product_id,
                    )
                    created.append(listing)
                if result.ok:
                    outcome.pushed += 1
                    listing.error_code = listing.error_message = None
                    listing.pushed_at = now
                    if write.action is WriteAction.UPSERT:
                        listing.status = ListingStatus.LISTED
                        listing.pushed_hash = write.listing_hash
                        listing.external_id = result.external_id or write.external_id
                    elif write.action is WriteAction.OUT_OF_STOCK:
                        listing.status = ListingStatus.OUT_OF_STOCK
                    else:
                        listing.status = ListingStatus.DELETED
                        listing.external_id = None
                else:
                    outcome.errors += 1
                    listing.status = ListingStatus.ERROR
                    listing.error_code = (result.error_code or "store_error")[:60]
                    listing.error_message = result.error_message
                    if result.external_id:
                        listing.external_id = result.external_id
                    if len(outcome.error_messages) < 5:
                        outcome.error_messages.append(
                            f"{write.sku}: {result.error_code}: {result.error_message}"
                        )
            # Two statements per batch, not one per listing.
            if created:
                await Listing.bulk_create(created, using_db=tx.connection)
            if existing:
                await Listing.bulk_update(
                    list(existing.values()), fields=_LISTING_FIELDS, using_db=tx.connection
                )
            self.job.stores[store.id] = _store_json(outcome)
            # Fenced: if another execution took the job over, this batch's records roll back.
            await self._update_job(connection=tx.connection, stores=self.job.stores)
        return len(created)

    # -- bookkeeping ------------------------------------------------------------------------

    def _tenant(self, model: Any) -> Any:
        return model.filter(account_id=self.account_id, environment=self.environment)

    async def _state(self) -> SyncState:
        key = f"{self.account_id}:{self.environment.value}"
        state, _ = await SyncState.get_or_create(
            id=key, defaults={"account_id": self.account_id, "environment": self.environment}
        )
        return state

    def _event(self, kind: EventType, data: dict[str, Any], now: datetime) -> Event:
        return Event(
            id=new_id("evt"),
            account_id=self.account_id,
            environment=self.environment,
            type=kind.value,
            data=data,
            created_at=now,
        )

    async def _update_job(self, *, connection: Any = None, **values: Any) -> None:
        """Write the job row, only while this execution still owns the job (its attempt)."""
        query = SyncJob.filter(id=self.job.id, attempts=self.job.attempts)
        if connection is not None:
            query = query.using_db(connection)
        if not await query.update(heartbeat_at=datetime.now(UTC), **values):
            raise LostClaim(self.job.id)

    async def _phase(self, phase: str) -> None:
        self.job.phase = phase
        await self._update_job(phase=phase)

    async def _beat(self, counters: _Counters) -> None:
        if time.monotonic() - self._last_beat >= HEARTBEAT_SECONDS:
            await self._save_counters(counters, force=True)

    async def _save_counters(
        self, counters: _Counters, *, connection: Any = None, force: bool = False
    ) -> None:
        """Counters are cumulative over executions: a resumed run adds to what the earlier
        one committed (the diff does not count a committed batch twice)."""
        job, base = self.job, self._base
        job.products_added = base.added + counters.added
        job.products_updated = base.updated + counters.updated
        job.products_removed = base.removed + counters.removed
        job.lots_processed = counters.lots
        self._last_beat = time.monotonic()
        await self._update_job(
            connection=connection,
            products_added=job.products_added,
            products_updated=job.products_updated,
            products_removed=job.products_removed,
            lots_processed=job.lots_processed,
            lots_total=job.lots_total,
        )
        await asyncio.sleep(0)

    def _store_record(self, store_id: str, *, reset: bool) -> dict[str, Any]:
        record = {} if reset else dict(self.job.stores.get(store_id) or {})
        return {
            "pushed": int(record.get("pushed", 0)),
            "errors": int(record.get("errors", 0)),
        }

    async def _save_store(self, store_id: str, outcome: _StoreOutcome) -> None:
        self.job.stores[store_id] = _store_json(outcome)
        await self._update_job(stores=self.job.stores)


@dataclass(frozen=True, slots=True)
class _Planned:
    product_id: str
    action: WriteAction
    external_id: str | None
    listing_id: int | None


class _CandidateQuery:
    """The products a store must be sent, as SQL both databases run: products left-joined to
    the store's listings, where what the store should show differs from what it holds."""

    def __init__(self, dialect: str, filters: dict[str, Any]) -> None:
        self.postgres = dialect == "postgres"
        self.filters = filters
        self.params: list[Any] = []

    def _param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}" if self.postgres else "?"

    def _show(self) -> str:
        """SQL true when the store should list the product (active, passing the filters)."""
        parts = ["p.status = 'active'"]
        for column, key in (("metal", "metals"), ("service", "services")):
            values = [str(v).casefold() for v in self.filters.get(key) or ()]
            if values:
                listed = ", ".join(self._param(v) for v in values)
                parts.append(f"LOWER(COALESCE(p.{column}, '')) IN ({listed})")
        cost = "p.cost" if self.postgres else "CAST(p.cost AS REAL)"
        for key, operator in (("min_cost", ">="), ("max_cost", "<=")):
            bound = self.filters.get(key)
            if bound is not None:
                value = Decimal(str(bound)) if self.postgres else float(bound)
                parts.append(f"{cost} {operator} {self._param(value)}")
        return "(" + " AND ".join(parts) + ")"

    def render(self, store_id: str, account_id: str, environment: str, *, force: bool) -> str:
        self.params = []
        show_column = self._show()
        store = self._param(store_id)
        account, env = self._param(account_id), self._param(environment)
        differs = (
            "TRUE"
            if force
            else "(l.id IS NULL OR l.status <> 'listed' OR l.pushed_hash <> p.listing_hash)"
        )
        show_where, show_not = self._show(), self._show()
        return (
            f"SELECT p.id, p.listing_hash, CASE WHEN {show_column} THEN 1 ELSE 0 END AS show, "
            "l.id AS listing_id, l.status AS l_status, l.pushed_hash, l.external_id, "
            "l.pushed_at "
            f"FROM products p LEFT JOIN listings l ON l.product_id = p.id AND l.store_id = {store} "
            f"WHERE p.account_id = {account} AND p.environment = {env} AND ("
            f"({show_where} AND {differs}) "
            f"OR (NOT {show_not} AND l.status IN ('listed', 'error'))"
            ") ORDER BY p.id"
        )


def _timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _analyze(table: str) -> None:
    """Refresh PostgreSQL's statistics after a table grew a lot (a first sync): without them
    the planner may scan a tenant's rows for every batch lookup."""
    connection = Listing._meta.db
    if sqltext.is_postgres(connection):
        await connection.execute_script(f"ANALYZE {table}")


def _store_json(outcome: _StoreOutcome) -> dict[str, Any]:
    return {
        "pushed": outcome.pushed,
        "errors": outcome.errors,
        "error": outcome.error,
        "error_samples": outcome.error_messages,
    }


def _lot_key(ha_lot: str) -> tuple[int, str]:
    return (len(ha_lot), ha_lot) if ha_lot.isdigit() else (1 << 30, ha_lot)


def _changed(current: Product, row: ProductRow) -> list[str]:
    names = ("title", "price", "cost", "margin", "metal", "grade", "service", "images", "status")
    changed = []
    for name in names:
        before, after = getattr(current, name), getattr(row, name)
        if isinstance(before, Decimal) or isinstance(after, Decimal):
            if Decimal(before) != Decimal(after):
                changed.append(name)
        elif str(before) != str(after) if name == "status" else before != after:
            changed.append(name)
    return sorted(changed)
