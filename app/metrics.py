"""Prometheus metrics, one registry per app instance."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Route

# Label values must come from a fixed set: a label per raw path (ids, typos, scanners' probes)
# would grow the registry without bound. Anything not matching a known route is "other".
FIXED_ROUTES = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/docs/static/{file}",
    "/v1/openapi.json",
    "/graphql",
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PARAM = re.compile(r"{\w+}")


def _template_pattern(template: str) -> re.Pattern[str]:
    literals = _PARAM.split(template)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in literals) + "$")


class RouteLabels:
    """Maps a request path to the route template it matches (`/v1/products/{id}`)."""

    def __init__(self, templates: Iterable[str] = ()) -> None:
        unique = dict.fromkeys([*FIXED_ROUTES, *templates])
        self.templates = frozenset(unique)
        # Literal templates first, so `/v1/openapi.json` wins over a `/v1/{x}` pattern.
        ordered = sorted(unique, key=lambda t: "{" in t)
        self._patterns = [(_template_pattern(t), t) for t in ordered]

    def __call__(self, path: str) -> str:
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return "other"


class Metrics:
    def __init__(self, route_templates: Iterable[str] = ()) -> None:
        self.route_label = RouteLabels(route_templates)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "syncauction_http_requests_total",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "syncauction_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "syncauction_rate_limited_total", "Requests refused with 429.", registry=self.registry
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(
        self, method: str, path: str, status: int, seconds: float, route: object = None
    ) -> None:
        """Count one request. `route` is the Starlette route that matched it, if any (the
        router leaves it in `scope["route"]`): its template is the label, with no need to
        match the path against every template again."""
        if type(route) is Route and route.path in self.route_label.templates:
            template = route.path
        else:  # no route, or one inside a mount (its path is relative to the mount)
            template = self.route_label(path)
        method = method if method in _METHODS else "other"
        # Label children are looked up once per (method, route, status): `labels()` takes a
        # lock and validates on every call. All three come from fixed sets, so this stays small.
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, template, str(status)),
                self.latency.labels(method, template),
            )
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:
            self.rate_limited.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
