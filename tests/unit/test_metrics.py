import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from churn.metrics import DURATION_BUCKETS, FLUSH_INTERVAL_S, PROBABILITY_BUCKETS, Metrics

METADATA: dict[str, object] = {"model_sha256": "0" * 64, "C": 1.0, "versions": {"scikit-learn": "1.9.1"}}
# On the bounds, between them, below the first and past the last.
DURATIONS = [0.0, 0.0001, 0.00010001, 0.0003, 0.0025, 0.07, 2.5, 2.6, 40.0]
PROBABILITIES = [0.0, 0.05, 0.1, 0.30000000000000004, 0.5, 0.5000001, 0.9, 0.99, 1.0]


def observed(name: str, buckets: tuple[float, ...], amounts: list[float]) -> dict[str, float]:
    """What prometheus_client's own Histogram reports after observing ``amounts`` one by one."""
    registry = CollectorRegistry()
    histogram = Histogram(name, "reference", buckets=buckets, registry=registry)
    for amount in amounts:
        histogram.observe(amount)
    return samples(registry, name)


def samples(registry: CollectorRegistry, name: str, **labels: str) -> dict[str, float]:
    """A histogram's bucket, count and sum samples, by bound (``count``, ``sum``), without other labels."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.startswith(name) and all(sample.labels.get(k) == v for k, v in labels.items()):
                found[sample.labels.get("le", sample.name.rpartition("_")[2])] = sample.value
    return found


def test_tallied_histograms_report_what_observing_one_by_one_does() -> None:
    metrics = Metrics(METADATA)
    for seconds in DURATIONS:
        metrics.request("/predict", 200, seconds)
    metrics.scored(PROBABILITIES, 0.5)
    metrics.flush()

    durations = samples(metrics.registry, "churn_request_duration_seconds", endpoint="/predict")
    reference = observed("churn_request_duration_seconds", DURATION_BUCKETS, DURATIONS)
    assert durations.pop("created") > 0
    del reference["created"]
    assert durations == pytest.approx(reference)
    probabilities = samples(metrics.registry, "churn_prediction_probability")
    reference = observed("churn_prediction_probability", PROBABILITY_BUCKETS, PROBABILITIES)
    assert probabilities.pop("created") > 0
    del reference["created"]
    assert probabilities == pytest.approx(reference)
    value = metrics.registry.get_sample_value
    assert value("churn_predictions_total", {"decision": "churn"}) == 5
    assert value("churn_predictions_total", {"decision": "no_churn"}) == 4
    assert value("churn_requests_total", {"endpoint": "/predict", "status": "200"}) == len(DURATIONS)


def test_counts_reach_the_metrics_within_the_flush_interval_unasked() -> None:
    metrics = Metrics(METADATA)
    for _ in range(3):
        metrics.request("/ping", 200, 0.0001)
    deadline = time.monotonic() + 10 * FLUSH_INTERVAL_S
    value = metrics.registry.get_sample_value
    while value("churn_requests_total", {"endpoint": "/ping", "status": "200"}) is None:
        assert time.monotonic() < deadline, "the counts were not flushed"
        time.sleep(0.05)
    assert value("churn_requests_total", {"endpoint": "/ping", "status": "200"}) == 3
    assert value("churn_request_duration_seconds_count", {"endpoint": "/ping"}) == 3
