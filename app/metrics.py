"""Prometheus metrics, one registry per app instance."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_ID_SEGMENT = re.compile(r"^[a-z]+_[0-9a-v]{24}$")


def route_label(path: str, status: int) -> str:
    if status == 404 and not path.startswith("/v1/"):
        return "other"
    parts = ["{id}" if _ID_SEGMENT.match(p) else p for p in path.split("/")]
    label = "/".join(parts)
    return label if len(label) <= 80 else "other"


class Metrics:
    def __init__(self) -> None:
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
        self.subscribers = Gauge(
            "syncauction_event_subscribers",
            "Live event subscribers in this process.",
            registry=self.registry,
        )

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        route = route_label(path, status)
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status == 429:
            self.rate_limited.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
