"""`syncauction serve` for real: a uvicorn subprocess on a free loopback port, in development
mode on SQLite, driven the way the developer page says an integrator will (Python `requests`,
the `curl` binary) and the way an operator will (the banner, Ctrl-C/SIGTERM, restarts)."""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from tests.test_cli import SCRIPT, cli_env, ok_json

BANNER_END = "curl -H"
STARTUP_SECONDS = 30
GRACEFUL_SECONDS = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    data_dir: Path
    banner: str

    def shown(self, label: str) -> str:
        """The value printed after `label:` in the start-up banner."""
        match = re.search(rf"^\s*{label}:\s+(\S+)", self.banner, re.MULTILINE)
        assert match, f"no {label!r} in the banner:\n{self.banner}"
        return match.group(1)

    @property
    def base(self) -> str:
        api = self.shown("API")
        assert api.endswith("/v1/products")
        return api.removesuffix("/v1/products")

    @property
    def live_key(self) -> str:
        return self.shown("Live key")

    @property
    def test_key(self) -> str:
        return self.shown("Sandbox key")

    @property
    def account_id(self) -> str:
        return self.shown("Demo account")

    def stop(self, sig: signal.Signals) -> int:
        """Send `sig` and return the exit status; fail unless it exits in time."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(GRACEFUL_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not stop within {GRACEFUL_SECONDS} s of {sig.name}")


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def serve(data_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """Start `syncauction serve`, wait for the banner and for the port to answer; always kill
    the process on the way out."""
    port = free_port()
    env = cli_env(data_dir, SYNCAUCTION_LOG_LEVEL="WARNING")
    stderr = (tmp_path / f"server-{port}.stderr").open("w")
    process = subprocess.Popen(
        [SCRIPT, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    pump.start()
    try:
        banner: list[str] = []
        deadline = time.monotonic() + STARTUP_SECONDS
        while not any(BANNER_END in line for line in banner):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                stderr.flush()
                pytest.fail(
                    "no banner from the server; stdout:\n"
                    + "".join(banner)
                    + "\nstderr:\n"
                    + (tmp_path / f"server-{port}.stderr").read_text()
                )
            banner.append(line)
        # The banner is printed during the lifespan start-up, just before the socket is bound.
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None:
                stderr.flush()
                pytest.fail(
                    "the server exited during start-up; stderr:\n"
                    + (tmp_path / f"server-{port}.stderr").read_text()
                )
            assert time.monotonic() < deadline, "the server never answered /healthz"
            time.sleep(0.05)
        yield Server(process, port, data_dir, "".join(banner))
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        pump.join(5)
        process.stdout.close()
        stderr.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("live")
    with serve(tmp / "data", tmp) as running:
        yield running


def test_banner_shows_the_urls_and_two_demo_keys(server: Server):
    base = f"http://127.0.0.1:{server.port}"
    assert server.base == base
    assert server.shown("GraphQL IDE") == f"{base}/graphql"
    assert server.shown("API docs") == f"{base}/docs"
    assert server.account_id.startswith("acct_")
    assert re.fullmatch(r"sa_live_[0-9A-Za-z]{20,}", server.live_key)
    assert re.fullmatch(r"sa_test_[0-9A-Za-z]{20,}", server.test_key)
    assert f'curl -H "Authorization: Bearer {server.live_key}" {base}/v1/products' in server.banner


def test_the_developer_page_python_example(server: Server):
    api_key = server.live_key

    # -- the developer page's example, with our base URL (and a timeout) --
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    response = requests.get(server.base + "/v1/products", headers=headers, timeout=10)
    products = response.json()
    # --

    assert response.status_code == 200, products
    assert response.headers["content-type"].startswith("application/json")
    first = products["data"][0]
    assert first["id"].startswith("prod_")
    assert isinstance(first["title"], str) and first["title"]
    assert isinstance(first["price"], int | float) and not isinstance(first["price"], bool)
    assert isinstance(first["ha_lot"], str) and first["ha_lot"]
    assert len(products["data"]) == 25  # the first sync listed the simulated catalog
    morgan = requests.get(
        server.base + "/v1/products?ha_lot=123456", headers=headers, timeout=10
    ).json()["data"]
    assert [(p["title"], p["price"]) for p in morgan] == [("1921 Morgan Dollar MS65", 430.50)]
    # The FAQ: rate limit headers on every response; professional = 500 requests/minute.
    assert response.headers["X-RateLimit-Limit"] == "500"
    assert int(response.headers["X-RateLimit-Remaining"]) < 500
    assert int(response.headers["X-RateLimit-Reset"]) > time.time() - 5

    # The sandbox key sees the sandbox copy of the demo catalog, not live data.
    sandbox = requests.get(
        server.base + "/v1/products",
        headers={"Authorization": f"Bearer {server.test_key}", "Accept": "application/json"},
        timeout=10,
    ).json()
    assert {p["ha_lot"] for p in sandbox["data"]} == {p["ha_lot"] for p in products["data"]}
    assert not {p["id"] for p in sandbox["data"]} & {p["id"] for p in products["data"]}


def test_the_developer_page_curl_example(server: Server):
    curl = shutil.which("curl")
    assert curl, "the `curl` binary is needed: the developer page's first example is cURL"
    result = subprocess.run(
        [
            curl,
            "-sS",
            "--max-time",
            "10",
            "--write-out",
            "\n%{http_code}",
            "-X",
            "GET",
            f"{server.base}/v1/products",
            "-H",
            f"Authorization: Bearer {server.live_key}",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    assert status == "200", body
    product = json.loads(body)["data"][0]
    assert product["id"].startswith("prod_")
    assert {"title", "price", "ha_lot"} <= product.keys()

    # And without a key: a coded 401, not an HTML page.
    result = subprocess.run(
        [
            curl,
            "-sS",
            "--max-time",
            "10",
            "-H",
            "Accept: application/json",
            server.base + "/v1/products",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert json.loads(result.stdout)["error"]["type"] == "authentication"


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_docs_are_served_from_local_assets(server: Server):
    response = requests.get(server.base + "/docs", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(response.text)
    assert parser.urls, "the docs page loads no assets"
    assert not re.search(r"""["'(](https?:)?//""", response.text), "the docs page uses a CDN"
    for url in parser.urls:
        assert url.startswith("/docs/static/"), url
        assert requests.get(server.base + url, timeout=10).status_code == 200, url
    bundle = requests.get(server.base + "/docs/static/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    assert "/v1/openapi.json" in response.text
    spec = requests.get(server.base + "/v1/openapi.json", timeout=10)
    assert spec.status_code == 200 and "/v1/products" in spec.json()["paths"]


def test_graphql_ide_in_development(server: Server):
    response = requests.get(server.base + "/graphql", headers={"Accept": "text/html"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


def test_a_key_revoked_with_the_cli_stops_working_on_the_running_server(server: Server):
    data_dir = server.data_dir
    products = server.base + "/v1/products"

    def get(key: str) -> requests.Response:
        return requests.get(products, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    def status(key: str) -> int:
        return get(key).status_code

    new_key = ["keys", "create", "--account", server.account_id, "--mode", "live"]
    kept, revoked = ok_json(data_dir, *new_key), ok_json(data_dir, *new_key)
    assert status(kept["key"]) == 200  # a key made by the CLI works at once on the server

    assert ok_json(data_dir, "keys", "revoke", revoked["id"])["revoked"] is True
    response = get(revoked["key"])
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication"
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert status(kept["key"]) == 200
    assert status(server.live_key) == 200  # the other keys are untouched


def test_restart_prints_the_same_keys_and_stops_gracefully(tmp_path: Path):
    data_dir = tmp_path / "data"
    with serve(data_dir, tmp_path) as first:
        keys = (first.account_id, first.live_key, first.test_key)
        count = len(
            requests.get(
                first.base + "/v1/products",
                headers={"Authorization": f"Bearer {first.live_key}"},
                timeout=10,
            ).json()["data"]
        )
        assert first.stop(signal.SIGINT) == 0
    saved = data_dir / "demo-keys.json"
    assert saved.stat().st_mode & 0o077 == 0, "the demo keys file must be private"

    with serve(data_dir, tmp_path) as second:
        assert (second.account_id, second.live_key, second.test_key) == keys
        response = requests.get(
            second.base + "/v1/products",
            headers={"Authorization": f"Bearer {second.live_key}"},
            timeout=10,
        )
        assert response.status_code == 200
        assert len(response.json()["data"]) == count  # the sample catalog is not seeded twice
        assert second.stop(signal.SIGTERM) == 0
