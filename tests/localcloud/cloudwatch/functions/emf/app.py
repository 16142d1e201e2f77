"""Probe handler for the CloudWatch tests: publishes Powertools EMF metrics, optionally at a given
time (so that a test can fill several alarm periods without waiting for them)."""

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics()  # namespace and service from POWERTOOLS_METRICS_NAMESPACE / POWERTOOLS_SERVICE_NAME


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    metrics.add_metric(name="RecordsRejected", unit=MetricUnit.Count, value=event["rejected"])
    metrics.add_metric(name="BatchLatency", unit=MetricUnit.Milliseconds, value=event.get("latency_ms", 12.5))
    if "timestamp_ms" in event:
        metrics.set_timestamp(int(event["timestamp_ms"]))
    return {"rejected": event["rejected"]}
