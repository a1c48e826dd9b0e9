"""Process-wide services opened by the app lifespan, the worker start-up or the CLI: the
settings, the secret box, the event bus and the job queue. There is one of each per process
(the bus and queue are per-process by nature); `install()` replaces them, so tests and
benchmarks build their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.config import Settings
from app.crypto import SecretBox

if TYPE_CHECKING:
    from app.connectors.simulated import Simulators
    from app.events.bus import EventBus
    from app.jobs import JobQueue


@dataclass
class Runtime:
    settings: Settings
    secret_box: SecretBox
    bus: EventBus | None = None
    jobs: JobQueue | None = None
    simulators: Simulators | None = None


_current: Runtime | None = None


def install(settings: Settings) -> Runtime:
    global _current
    _current = Runtime(settings=settings, secret_box=SecretBox(settings.secret_key))
    return _current


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the runtime is not installed (create_app, worker or CLI start-up)")
    return _current
