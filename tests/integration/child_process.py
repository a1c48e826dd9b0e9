"""Waiting on and killing the child processes the kill-and-resume tests run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    child: subprocess.Popen,
    log: Path,
    what: str,
    *,
    timeout: float,
) -> None:
    """Wait for `condition`; fail with the child's log if it ends or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if child.poll() is not None:
            pytest.fail(f"the child process ended before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")
        await asyncio.sleep(0.01)


def kill(child: subprocess.Popen) -> None:
    """SIGKILL the child (no clean-up of its own) and check that this is how it ended."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
