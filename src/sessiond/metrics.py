"""Prometheus metrics of one sessiond process (text format on ``GET /metrics``)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The counters and gauges sessiond exports, in a registry of their own."""

    def __init__(self, denylist_sizes: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sessions_created = Counter(
            "sessiond_sessions_created", "Sessions created.", registry=self.registry
        )
        self.refreshes = Counter(
            "sessiond_refreshes",
            "Refresh attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.revocations = Counter(
            "sessiond_revocations",
            "Revocations published by kind.",
            ["kind"],
            registry=self.registry,
        )
        denylist = Gauge(
            "sessiond_denylist_entries",
            "Denylist entries by kind.",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("token", "session", "subject"):
            denylist.labels(kind).set_function(_size_of(denylist_sizes, kind))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _size_of(sizes: Callable[[], dict[str, int]], kind: str) -> Callable[[], float]:
    return lambda: sizes()[kind]
