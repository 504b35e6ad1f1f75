"""Prometheus metrics of one app: request latency by route, plus the engines' own counters read at
scrape time from every open tenant (notes, links, ... and the job queue once it exists).

Each app has its own ``CollectorRegistry`` (no process globals), so several apps can live in one
process (tests) without clashing.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's metrics. Usage: ``m = Metrics(registry.open_tenants)``; ``m.render()`` for /metrics."""

    def __init__(self, open_tenants: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("engram_http_request_duration_seconds", "HTTP request latency",
                                 ("method", "route", "status"), buckets=_BUCKETS, registry=self.registry)
        self.errors = Counter("engram_http_errors_total", "HTTP responses with an error code",
                              ("code",), registry=self.registry)
        self.registry.register(EngineCollector(open_tenants))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class EngineCollector(Collector):
    """Gauges from each open tenant's ``stats()`` and, when the engine has a job queue, its depth
    and failures. Read at scrape time, so they are never stale."""

    def __init__(self, open_tenants: Callable[[], dict[str, Any]]) -> None:
        self._open_tenants = open_tenants

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # names depend on the engines; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Summed over tenants: a per-tenant label would tell an unauthenticated scraper who the
        # tenants are.
        tenants = self._open_tenants()
        totals: dict[str, float] = {}
        for mem in tenants.values():
            for name, value in _engine_numbers(mem).items():
                totals[name] = totals.get(name, 0.0) + value
        yield GaugeMetricFamily("engram_open_tenants", "tenants open in this process", value=len(tenants))
        for name, value in sorted(totals.items()):
            yield GaugeMetricFamily(f"engram_{name}", f"engine counter {name}, summed over open tenants", value=value)


def _engine_numbers(mem: Any) -> dict[str, float]:
    """Numeric entries of ``mem.stats()`` (bools and strings are not counters)."""
    out: dict[str, float] = {}
    for key, value in mem.stats().items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"store_{key}"] = float(value)
        elif isinstance(value, dict):  # nested counters, e.g. {"jobs": {"queued": 3, "failed": 1}}
            for sub, inner in value.items():
                if isinstance(inner, int | float) and not isinstance(inner, bool):
                    out[f"{key}_{sub}"] = float(inner)
    return out


class LatencyMiddleware:
    """Times every HTTP request and labels it with its route template (``/v1/memories/{note_id}``),
    never the raw path, so ids do not explode the label set."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], route, str(status)).observe(time.perf_counter() - start)
