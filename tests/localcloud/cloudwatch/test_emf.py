"""EMF documents that real handlers print become CloudWatch metrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import boto3
import pytest

from localcloud.cloud import LocalCloud
from localcloud.cloudwatch import metric_data_from_emf
from tests.localcloud.cloudwatch.support import MINUTE, NAMESPACE, SERVICE, TEMPLATE, minute, reject
from tests.localcloud.events.support import started


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with started(TEMPLATE) as local_cloud:
        yield local_cloud


def _statistics(metric: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, float]]:
    datapoints = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=SERVICE,
        StartTime=start,
        EndTime=end,
        Period=600,
        Statistics=["Sum", "SampleCount", "Maximum"],
    )["Datapoints"]
    return [{k: v for k, v in d.items() if k in ("Sum", "SampleCount", "Maximum", "Unit")} for d in datapoints]


def test_emf_from_a_real_handler_becomes_metrics(cloud: LocalCloud) -> None:
    t0 = minute()
    reject(3, t0)  # through the Lambda API
    cloud.invoke("EmfFunction", {"rejected": 4, "latency_ms": 40.0})  # direct call of the handler

    assert _statistics("RecordsRejected", t0 - 5 * MINUTE, t0 + 5 * MINUTE) == [
        {"Sum": 7.0, "SampleCount": 2.0, "Maximum": 4.0, "Unit": "Count"}
    ]
    [latency] = _statistics("BatchLatency", t0 - 5 * MINUTE, t0 + 5 * MINUTE)
    assert (latency["Maximum"], latency["Unit"]) == (40.0, "Milliseconds")


def test_emf_timestamps_are_kept(cloud: LocalCloud) -> None:
    t0 = minute()
    reject(5, t0 - 30 * MINUTE)
    assert _statistics("RecordsRejected", t0 - 5 * MINUTE, t0 + 5 * MINUTE) == []
    assert _statistics("RecordsRejected", t0 - 35 * MINUTE, t0 - 25 * MINUTE)[0]["Sum"] == 5.0


def test_emf_documents_to_metric_data() -> None:
    document = {
        "_aws": {
            "Timestamp": 1_795_600_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Dxops",
                    "Dimensions": [["service"], ["service", "source"], ["missing_key"]],
                    "Metrics": [{"Name": "Accepted", "Unit": "Count"}, {"Name": "Size"}, {"Name": "Absent"}],
                }
            ],
        },
        "service": "ingest",
        "source": "api",
        "Accepted": [1.0, 2.0],
        "Size": 512,
        "note": "properties that are not metrics or dimensions are ignored",
    }
    [(namespace, data)] = metric_data_from_emf(document)
    assert namespace == "Dxops"
    summary = [
        (d["MetricName"], [x["Value"] for x in d["Dimensions"]], d.get("Value", d.get("Values")), d["Unit"])
        for d in data
    ]
    assert summary == [
        ("Accepted", ["ingest"], [1.0, 2.0], "Count"),
        ("Accepted", ["ingest", "api"], [1.0, 2.0], "Count"),
        ("Size", ["ingest"], 512.0, "None"),
        ("Size", ["ingest", "api"], 512.0, "None"),
    ]
    assert data[0]["Timestamp"] == dt.datetime(2026, 11, 25, 9, 46, 40)  # naive UTC, as moto keeps it
    assert metric_data_from_emf({"level": "INFO", "message": "a log line"}) == []
