"""`syncauction` command line: serve, worker, migrate, accounts, keys, stores, sync.

With `--json`, a command prints one JSON object as its last line; errors go to stderr with a
non-zero exit status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError
from tortoise.exceptions import DBConnectionError

from app import db, runtime
from app.config import Settings, get_settings
from app.errors import DomainError, from_validation_error


class CliError(Exception):
    pass


def _config_error(exc: ValidationError) -> CliError:
    """The first configuration problem, naming the environment variable it came from."""
    error = exc.errors(include_url=False)[0]
    message = error["msg"].removeprefix("Value error, ")
    if error["loc"]:
        variable = "SYNCAUCTION_" + str(error["loc"][0]).upper()
        return CliError(f"invalid configuration: {variable}: {message}")
    return CliError(f"invalid configuration: {message}")


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise _config_error(exc) from None


async def _with_db(settings: Settings, work: Callable[[], Awaitable[Any]]) -> Any:
    runtime.install(settings)
    if settings.should_migrate_at_startup:
        await db.migrate(settings.resolved_database_url)
    await db.init_orm(settings.resolved_database_url)
    try:
        return await work()
    finally:
        await db.close_orm()


def _emit(args: argparse.Namespace, human: str, payload: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(payload, default=str))
    else:
        print(human)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        settings = get_settings(**overrides)
    except ValidationError as exc:
        raise _config_error(exc) from None
    from app.main import create_app

    # uvicorn stops gracefully on SIGTERM, then raises the signal again with the default
    # disposition, which kills the process (status -15) after a clean shutdown. A graceful stop
    # (systemd, Docker, Kubernetes all send SIGTERM) exits 0, as it does on Ctrl-C.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # The port is taken before the application starts: a port in use is one line, before the
    # start-up (migrations, the demo, its banner of URLs) rather than after it.
    listening = _listen(settings.host, settings.port)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=20,
        proxy_headers=True,
        ws="websockets-sansio",
    )
    # Ctrl-C: uvicorn stops gracefully, then raises the signal again; that is an exit 0.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((address, port))
    except OSError as exc:
        listening.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listening


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


WORKER_STOP_WAIT = 20  # seconds, as `serve` gives requests in flight


def cmd_worker(args: argparse.Namespace) -> None:
    settings = _settings()
    if not settings.redis_url:
        raise CliError(
            "the worker needs Redis: set SYNCAUCTION_REDIS_URL (in embedded mode the API process "
            "runs jobs itself)"
        )
    from arq.worker import Worker

    from workers.settings import worker_settings

    async def run() -> None:
        # On SIGTERM/SIGINT running jobs get WORKER_STOP_WAIT seconds to finish, then are
        # cancelled (their rows stay due: the sweepers queue them again).
        worker = Worker(
            **worker_settings(settings), burst=args.burst, job_completion_wait=WORKER_STOP_WAIT
        )
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass  # the signal: arq stops by cancelling its main task; a clean exit
        finally:
            # arq's close() gathers the job tasks without return_exceptions: one the signal
            # cancelled would abort it before the shutdown hook runs. Settle them first.
            await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
            worker.tasks.clear()
            await worker.close()

    asyncio.run(run())


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings()
    asyncio.run(db.migrate(settings.resolved_database_url))
    _emit(args, "migrations applied", {"migrated": True})


def cmd_accounts_create(args: argparse.Namespace) -> None:
    from app.accounts import service

    async def work() -> Any:
        return await service.create_account(
            name=args.name, plan=args.plan, rate_limit=args.rate_limit
        )

    account = asyncio.run(_with_db(_settings(), work))
    _emit(
        args,
        f"created account {account.id} ({account.plan.value})",
        {"id": account.id, "name": account.name, "plan": account.plan.value},
    )


def cmd_accounts_list(args: argparse.Namespace) -> None:
    from app.accounts import service

    rows = asyncio.run(_with_db(_settings(), service.list_accounts))
    data = [
        {
            "id": a.id,
            "name": a.name,
            "plan": a.plan.value,
            "rate_limit": service.effective_rate_limit(a),
        }
        for a in rows
    ]
    human = "\n".join(
        f"{a['id']}  {a['plan']:<12}  {a['rate_limit']:>6}/min  {a['name']}" for a in data
    )
    _emit(args, human or "no accounts", {"accounts": data})


def cmd_keys_create(args: argparse.Namespace) -> None:
    from app.auth import service

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()] if args.scopes else None

    async def work() -> Any:
        return await service.create_key(
            account_id=args.account, mode=args.mode, scopes=scopes, name=args.name or ""
        )

    created = asyncio.run(_with_db(_settings(), work))
    key = created.api_key
    _emit(
        args,
        f"created {key.id} with scopes {','.join(key.scopes)}; "
        f"store it now, it is not shown again:\n{created.secret}",
        {
            "id": key.id,
            "key": created.secret,
            "scopes": key.scopes,
            "environment": str(key.environment),
        },
    )


def cmd_keys_list(args: argparse.Namespace) -> None:
    from app.auth import service

    async def work() -> Any:
        return await service.list_keys(account_id=args.account)

    rows = asyncio.run(_with_db(_settings(), work))
    data = [
        {
            "id": k.id,
            "account": k.account_id,
            "environment": str(k.environment),
            "key": f"{k.prefix}…{k.last4}",
            "scopes": k.scopes,
            "revoked": k.revoked_at is not None,
            "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
        }
        for k in rows
    ]
    human = "\n".join(
        f"{k['id']}  {k['account']}  {k['key']}  {','.join(k['scopes'])}"
        f"{'  revoked' if k['revoked'] else ''}"
        for k in data
    )
    _emit(args, human or "no keys", {"keys": data})


def cmd_keys_revoke(args: argparse.Namespace) -> None:
    from app.auth import service

    async def work() -> Any:
        return await service.revoke_key(args.key_id)

    key = asyncio.run(_with_db(_settings(), work))
    _emit(args, f"revoked {key.id}", {"id": key.id, "revoked": True})


def cmd_stores_create(args: argparse.Namespace) -> None:
    from app.accounts import service as accounts
    from app.accounts.models import Environment
    from app.stores import service

    if args.platform == "woocommerce":
        given = {"consumer_key": args.consumer_key, "consumer_secret": args.consumer_secret}
    else:
        given = {"access_token": args.access_token}
    # Only what was given: the service names what a real store lacks, and fills in what a
    # simulated one does.
    credentials = {name: value for name, value in given.items() if value}
    url = args.url
    if url is None:
        if not args.simulated:
            raise CliError("--url is required (unless --simulated)")
        url = f"https://{args.platform}.simulated.invalid"

    async def work() -> Any:
        account = await accounts.get_account(args.account)
        environment = Environment.SANDBOX if args.mode == "test" else Environment.LIVE
        actor = accounts.operator_principal(account, environment)
        try:
            data = service.StoreCreate(
                name=args.name,
                platform=args.platform,
                url=url,
                credentials=credentials,
                simulated=args.simulated,
            )
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        return await service.create_store(actor, data=data)

    store = asyncio.run(_with_db(_settings(), work))
    kind = "simulated " if store.simulated else ""
    _emit(
        args,
        f"created {kind}store {store.id} ({store.platform.value}) {store.url}",
        {
            "id": store.id,
            "platform": store.platform.value,
            "url": store.url,
            "simulated": store.simulated,
        },
    )


def cmd_sync(args: argparse.Namespace) -> None:
    """Start a sync; with --wait, follow it to the end with a progress bar."""
    from app.accounts import service as accounts
    from app.accounts.models import Environment
    from app.sync import service as sync
    from app.sync.models import SyncJob, SyncStatus, SyncTrigger

    settings = _settings()

    async def work() -> Any:
        account = await accounts.get_account(args.account)
        environment = Environment.SANDBOX if args.mode == "test" else Environment.LIVE
        actor = accounts.operator_principal(account, environment)
        data = sync.SyncTriggerInput(type=args.type, store_ids=args.store or [])
        if settings.redis_url:
            from app.jobs import ArqQueue

            runtime.current().jobs = await ArqQueue.connect(settings.redis_url)
        embedded = settings.redis_url is None
        try:
            if embedded:
                # No worker to hand it to: this process runs the job.
                job = await sync.trigger_sync(actor, data=data, trigger=SyncTrigger.CLI, run=False)
            else:
                job = await sync.trigger_sync(actor, data=data, trigger=SyncTrigger.CLI)
            if not args.wait and not embedded:
                return job
            progress = _Progress(enabled=not args.json and args.wait)
            if embedded:
                runner = asyncio.create_task(sync.run_job(job.id))
                while not runner.done():
                    progress.show(await SyncJob.get(id=job.id))
                    await asyncio.wait({runner}, timeout=0.25)
                runner.result()
            else:
                while True:
                    current = await SyncJob.get(id=job.id)
                    progress.show(current)
                    if current.status in (SyncStatus.COMPLETED, SyncStatus.FAILED):
                        break
                    await asyncio.sleep(0.5)
            progress.done()
            return await SyncJob.get(id=job.id)
        finally:
            if not embedded and runtime.current().jobs is not None:
                await runtime.current().jobs.close()

    job = asyncio.run(_with_db(settings, work))
    summary = sync.job_summary(job)
    stats = summary["stats"]
    human = (
        f"sync {job.id} ({job.type.value}) {job.status.value}: "
        f"{stats['products_added']} added, {stats['products_updated']} updated, "
        f"{stats['products_removed']} removed, {stats['errors']} errors"
    )
    if job.error_message:
        human += f" — {job.error_message}"
    _emit(args, human, summary)
    if job.status.value == "failed":
        raise CliError(f"sync {job.id} failed: {job.error_message}")


class _Progress:
    """A one-line progress bar on stderr (a terminal), else one line per phase."""

    WIDTH = 30

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.phase: str | None = None

    def show(self, job: Any) -> None:
        if not self.enabled:
            return
        total = job.lots_total or 0
        fraction = min(job.lots_processed / total, 1.0) if total else 0.0
        if self.tty:
            filled = int(fraction * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            sys.stderr.write(
                f"\r[{bar}] {fraction:4.0%} {job.phase:<10} {job.lots_processed}/{total} lots"
            )
            sys.stderr.flush()
        elif job.phase != self.phase:
            print(f"{job.phase}: {job.lots_processed}/{total} lots", file=sys.stderr, flush=True)
        self.phase = job.phase

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def cmd_simulate_auction_house(args: argparse.Namespace) -> None:
    """Serve the auction-house lot feed simulator on its own (for demos and local syncs)."""
    import uvicorn

    from app.connectors.auction_house.simulator import create_simulator

    if args.size < 1 or args.size > 1_000_000:
        raise CliError("--size must be 1-1000000 lots")
    print(
        f"auction-house simulator: http://{args.host}:{args.port}/v1/lots "
        f"({args.size} lots, seed {args.seed}); token: {args.token}",
        flush=True,
    )
    uvicorn.run(
        create_simulator(seed=args.seed, size=args.size, token=args.token),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncauction", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the API server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", parents=[common], help="run an arq worker (needs Redis)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", parents=[common], help="apply database migrations").set_defaults(
        func=cmd_migrate
    )

    accounts = sub.add_parser("accounts", help="manage accounts").add_subparsers(
        dest="sub", required=True
    )
    create = accounts.add_parser("create", parents=[common])
    create.add_argument("--name", required=True)
    create.add_argument("--plan", required=True, choices=["starter", "professional", "enterprise"])
    create.add_argument("--rate-limit", type=int, help="requests/minute (enterprise)")
    create.set_defaults(func=cmd_accounts_create)
    accounts.add_parser("list", parents=[common]).set_defaults(func=cmd_accounts_list)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="sub", required=True)
    kcreate = keys.add_parser("create", parents=[common])
    kcreate.add_argument("--account", required=True)
    kcreate.add_argument("--mode", required=True, choices=["live", "test"])
    kcreate.add_argument("--scopes", help="read or read,write (default: what the plan allows)")
    kcreate.add_argument("--name")
    kcreate.set_defaults(func=cmd_keys_create)
    klist = keys.add_parser("list", parents=[common])
    klist.add_argument("--account")
    klist.set_defaults(func=cmd_keys_list)
    krevoke = keys.add_parser("revoke", parents=[common])
    krevoke.add_argument("key_id")
    krevoke.set_defaults(func=cmd_keys_revoke)

    stores = sub.add_parser("stores", help="manage stores").add_subparsers(
        dest="sub", required=True
    )
    screate = stores.add_parser("create", parents=[common])
    screate.add_argument("--account", required=True)
    screate.add_argument("--platform", required=True, choices=["woocommerce", "shopify"])
    screate.add_argument("--name", required=True)
    screate.add_argument("--url", help="store base URL (optional with --simulated)")
    screate.add_argument(
        "--simulated",
        action="store_true",
        help="back the store with the built-in simulator of its platform (demo, sandbox)",
    )
    screate.add_argument("--mode", choices=["live", "test"], default="live")
    screate.add_argument("--consumer-key")
    screate.add_argument("--consumer-secret")
    screate.add_argument("--access-token")
    screate.set_defaults(func=cmd_stores_create)
    syncp = sub.add_parser("sync", parents=[common], help="start a sync (and follow it)")
    syncp.add_argument("--account", required=True)
    syncp.add_argument("--mode", choices=["live", "test"], default="live")
    syncp.add_argument("--type", choices=["delta", "full"], default="delta")
    syncp.add_argument("--store", action="append", help="a store id (repeat; default: all)")
    syncp.add_argument("--wait", action="store_true", help="follow the sync to its end")
    syncp.set_defaults(func=cmd_sync)
    simulate = sub.add_parser("simulate", help="run a simulator of an external system")
    systems = simulate.add_subparsers(dest="system", required=True)
    house = systems.add_parser("auction-house", parents=[common], help="the auction-house lot feed")
    house.add_argument("--host", default="127.0.0.1")
    house.add_argument("--port", type=int, default=8100)
    house.add_argument("--seed", type=int, default=1)
    house.add_argument("--size", type=int, default=500, help="lots in the catalog")
    house.add_argument("--token", default="sim-token", help="bearer token the feed accepts")
    house.set_defaults(func=cmd_simulate_auction_house)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, DomainError) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1
    except (
        ConnectionRefusedError,
        ConnectionResetError,
        ConnectionAbortedError,
        TimeoutError,
        socket.gaierror,
        DBConnectionError,
        RedisError,
    ) as exc:
        # The database or Redis cannot be reached: say which and why, not a traceback.
        print(f"error: cannot connect: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
