"""The propagation bench's reading of the replicas' server-side histograms."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Histogram as PromHistogram

from bench.propagation import Histogram

METRIC = "sessiond_stream_delivery_seconds"


def exported(*seconds: float) -> str:
    registry = CollectorRegistry()
    histogram = PromHistogram(
        METRIC, "test", buckets=(0.001, 0.002, 0.005, 0.01), registry=registry
    )
    for value in seconds:
        histogram.observe(value)
    return generate_latest(registry).decode()


def test_count_and_percentile_buckets_come_from_the_exported_text() -> None:
    hist = Histogram.parse(exported(*[0.0015] * 98, 0.007, 0.02), METRIC)
    assert hist.count == 100
    assert hist.bucket_of(50) == "1-2 ms"
    assert hist.bucket_of(99) == "5-10 ms"
    assert hist.bucket_of(100) == "> 10 ms"


def test_an_empty_histogram_has_no_percentile() -> None:
    hist = Histogram.parse(exported(), METRIC)
    assert hist.count == 0
    assert Histogram.parse("", METRIC).bucket_of(50) == "-"
