"""An ASGI app served by uvicorn in a thread of the test process, for tests whose event loop
must not host the server (a child process talks to it while the test blocks or kills)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app: Any, name: str) -> Iterator[str]:
    """Serve `app` on a free loopback port; yields its base URL (`http://127.0.0.1:PORT`)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), f"{name} did not start"
        assert time.monotonic() < deadline, f"{name} did not start in time"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
