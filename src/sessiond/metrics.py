"""Prometheus metrics of one sessiond process (text format on ``GET /metrics``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sessiond.events import Revocation, kind_of

#: The text format's media type without its ``charset``, which the HTTP layer appends.
MEDIA_TYPE = "; ".join(
    part for part in CONTENT_TYPE_LATEST.split("; ") if not part.startswith("charset=")
)

#: Propagation lag buckets, seconds: the I1 target is a p99 under 2 ms.
LAG_BUCKETS = (
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
)


class Metrics:
    """The counters, gauges and histograms sessiond exports, in a registry of their own."""

    def __init__(
        self,
        denylist_sizes: Callable[[], dict[str, int]],
        staleness: Callable[[float], float],
    ) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # Not "sessions_created": a counter's creation time is its *_created series.
        self.sign_ins = Counter("sessiond_sign_ins", "Sessions created.", registry=registry)
        self.refreshes = Counter(
            "sessiond_refreshes", "Refresh attempts by outcome.", ["outcome"], registry=registry
        )
        self.revocations = Counter(
            "sessiond_revocations", "Revocations made here, by kind.", ["kind"], registry=registry
        )
        self.events_applied = Counter(
            "sessiond_events_applied",
            "Revocation events applied from the stream, by kind.",
            ["kind"],
            registry=registry,
        )
        self.events_rejected = Counter(
            "sessiond_events_rejected",
            "Revocation events from the stream not applied, by reason: unsigned, "
            "bad_signature, unknown_key, malformed.",
            ["reason"],
            registry=registry,
        )
        self.propagation_lag = Histogram(
            "sessiond_propagation_lag_seconds",
            "Time from a revocation request to its arrival in this replica's denylist.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.delivery_lag = Histogram(
            "sessiond_stream_delivery_seconds",
            "Time from the stream storing a revocation (when its publisher is acknowledged) "
            "to its arrival in this replica's denylist (clocks of NATS and this host).",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "sessiond_outbox_depth",
            "Revocations stored but not yet acknowledged by the stream.",
            registry=registry,
        )
        self.policy_decisions = Counter(
            "sessiond_stale_policy_decisions",
            "Tokens checked while the denylist was stale, by policy and decision.",
            ["policy", "decision"],
            registry=registry,
        )
        self.clock_skew = Gauge(
            "sessiond_clock_skew_seconds",
            "This replica's clock minus the session store's (Redis TIME), last measured.",
            registry=registry,
        )
        Gauge(
            "sessiond_denylist_staleness_seconds",
            "Seconds since the denylist was last known to be current.",
            registry=registry,
        ).set_function(lambda: staleness(time.time()))
        denylist = Gauge(
            "sessiond_denylist_entries", "Denylist entries by kind.", ["kind"], registry=registry
        )
        for kind in ("token", "session", "subject"):
            denylist.labels(kind).set_function(_size_of(denylist_sizes, kind))

    def applied(self, event: Revocation, sequence: int, stored_at: float) -> None:
        """Record one event that arrived from the stream."""
        now = time.time()
        self.events_applied.labels(kind_of(event)).inc()
        self.propagation_lag.observe(max(0.0, now - event.at))
        self.delivery_lag.observe(max(0.0, now - stored_at))

    def rejected(self, reason: str) -> None:
        """Record one event from the stream that was not applied, and why."""
        self.events_rejected.labels(reason).inc()

    def stale_decision(self, policy: str, accepted: bool) -> None:
        self.policy_decisions.labels(policy, "accept" if accepted else "reject").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _size_of(sizes: Callable[[], dict[str, int]], kind: str) -> Callable[[], float]:
    return lambda: sizes()[kind]
