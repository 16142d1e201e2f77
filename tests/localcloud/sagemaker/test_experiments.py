"""SageMaker Experiments as a training pipeline records them: one trial per training run, whose trial
component holds the run's parameters, the dataset version it read, the model it wrote and its metrics
(SageMaker Metrics, BatchPutMetrics), in-process moto."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.localcloud.sagemaker.support import Env, started, unique

START = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with started() as started_env:
        yield started_env


def record_run(env: Env, experiment: str, learning_rate: float, dataset_version: str) -> str:
    """What the pipeline does for one training run; the trial component's name."""
    sagemaker, metrics = env.sagemaker, boto3.client("sagemaker-metrics")
    trial = unique("run")
    sagemaker.create_trial(TrialName=trial, ExperimentName=experiment)
    component = f"{trial}-training"
    sagemaker.create_trial_component(
        TrialComponentName=component,
        DisplayName="training",
        Status={"PrimaryStatus": "InProgress"},
        StartTime=START,
        Parameters={"learning_rate": {"NumberValue": learning_rate}, "algorithm": {"StringValue": "xgboost"}},
        InputArtifacts={
            "dataset": {"Value": env.uri(f"datasets/{dataset_version}/"), "MediaType": "text/csv"},
            "dataset_version": {"Value": dataset_version},
        },
    )
    sagemaker.associate_trial_component(TrialName=trial, TrialComponentName=component)
    losses = [0.9, 0.5, 0.3]
    metrics.batch_put_metrics(
        TrialComponentName=component,
        MetricData=[
            {"MetricName": "train:loss", "Timestamp": START + dt.timedelta(minutes=i), "Step": i, "Value": loss}
            for i, loss in enumerate(losses)
        ],
    )
    for minute, f1 in ((4, 0.8), (5, 0.85)):  # no Step: a metric that is not per epoch
        answer = metrics.batch_put_metrics(
            TrialComponentName=component,
            MetricData=[
                {"MetricName": "validation:f1", "Timestamp": START + dt.timedelta(minutes=minute), "Value": f1}
            ],
        )
        assert answer.get("Errors", []) == []
    sagemaker.update_trial_component(
        TrialComponentName=component,
        Status={"PrimaryStatus": "Completed", "Message": "model trained"},
        EndTime=START + dt.timedelta(minutes=6),
        Parameters={"epochs": {"NumberValue": len(losses)}},
        OutputArtifacts={"model": {"Value": env.uri(f"models/{trial}/output/model.tar.gz")}},
    )
    return component


def test_a_trial_records_a_runs_parameters_dataset_model_and_metrics(env: Env) -> None:
    experiment = unique("diagnosis")
    env.sagemaker.create_experiment(ExperimentName=experiment)
    component = record_run(env, experiment, 0.5, "2026-11-27")

    described = env.sagemaker.describe_trial_component(TrialComponentName=component)

    assert described["Status"] == {"PrimaryStatus": "Completed", "Message": "model trained"}
    # The update added to the parameters recorded at the start (moto replaced them).
    assert described["Parameters"] == {
        "learning_rate": {"NumberValue": 0.5},
        "algorithm": {"StringValue": "xgboost"},
        "epochs": {"NumberValue": 3.0},
    }
    assert described["InputArtifacts"]["dataset_version"] == {"Value": "2026-11-27"}
    assert described["OutputArtifacts"]["model"]["Value"].endswith("/output/model.tar.gz")
    assert described["EndTime"] - described["StartTime"] == dt.timedelta(minutes=6)
    summaries: dict[str, Any] = {m["MetricName"]: m for m in described["Metrics"]}
    loss, f1 = summaries["train:loss"], summaries["validation:f1"]
    assert (loss["Count"], loss["Min"], loss["Max"], loss["Last"]) == (3, 0.3, 0.9, 0.3)
    assert loss["Avg"] == pytest.approx(0.5666, abs=1e-3)
    assert (f1["Count"], f1["Last"], f1["Max"]) == (2, 0.85, 0.85)
    assert f1["TimeStamp"] == START + dt.timedelta(minutes=5)  # the latest datapoint
    assert f1["SourceArn"] == described["TrialComponentArn"]


def test_trial_components_are_listed_by_experiment_and_trial(env: Env) -> None:
    experiment, other = unique("diagnosis"), unique("other")
    env.sagemaker.create_experiment(ExperimentName=experiment)
    env.sagemaker.create_experiment(ExperimentName=other)
    runs = [record_run(env, experiment, rate, "v1") for rate in (0.5, 0.1)]
    unrelated = record_run(env, other, 0.3, "v1")

    def listed(**filters: Any) -> list[str]:
        pages = env.sagemaker.get_paginator("list_trial_components").paginate(**filters)
        return [s["TrialComponentName"] for page in pages for s in page["TrialComponentSummaries"]]

    assert listed(ExperimentName=experiment, SortOrder="Ascending") == runs
    assert listed(ExperimentName=other) == [unrelated]
    trial = runs[1].removesuffix("-training")
    assert listed(TrialName=trial) == [runs[1]]
    assert listed(ExperimentName=unique("none")) == []
    summary = env.sagemaker.list_trial_components(TrialName=trial)["TrialComponentSummaries"][0]
    assert (summary["DisplayName"], summary["Status"]["PrimaryStatus"]) == ("training", "Completed")
