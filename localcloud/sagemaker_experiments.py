"""SageMaker Experiments on the local cloud: what a training pipeline needs to record one trial per run.

moto 5.2.5 stores experiments, trials and trial components (Parameters, InputArtifacts,
OutputArtifacts, Status, MetadataProperties), associations, and BatchPutMetrics, whose values
DescribeTrialComponent summarises under Metrics (Min, Max, Avg, StdDev, Count, Last) as AWS does.
Three gaps would lose data, and are closed here (tests/localcloud/sagemaker/test_moto_pins.py pins them):

- BatchPutMetrics: Step is optional on AWS; moto failed the whole call (KeyError) without it, and
  kept one value per step (a second value at the same step replaced the first). Here every
  datapoint counts, `Last` is the latest by timestamp and TimeStamp is the latest update.
- UpdateTrialComponent: Parameters, InputArtifacts and OutputArtifacts add to and replace the
  component's entries by key on AWS; moto replaced the whole map (the parameters recorded when the
  run started were lost when the run recorded its end), and a *ToRemove key that is absent failed.
- ListTrialComponents: moto ignored ExperimentName, SourceArn, CreatedAfter/Before and the sort,
  and knew only the component's last trial. Here the filters and sort apply, and a component
  belongs to every trial it was associated with.

Not emulated: ExperimentConfig on CreateTrainingJob (AWS creates a "<job>-aws-training-job" trial
component itself; locally the pipeline records its own), and Description/DisplayName/Tags of
CreateExperiment and CreateTrial (moto drops them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeTrialComponent


def _epoch(value: Any) -> float:
    """A metric timestamp as moto receives it (epoch seconds) or a datetime -> epoch seconds."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float(value)


def batch_put_metrics(self: Any, trial_component_name: str, metric_data: list[dict[str, Any]]) -> dict[str, Any]:
    """Replaces SageMakerMetricsBackend.batch_put_metrics (same signature and result)."""
    components = self.sagemaker_backend.trial_components
    if trial_component_name not in components:
        return {"Errors": [{"Code": "VALIDATION_ERROR", "MetricIndex": 0}]}
    component = components[trial_component_name]
    errors: list[dict[str, Any]] = []
    for index, datum in enumerate(metric_data):
        try:
            name, value, at = str(datum["MetricName"]), float(datum["Value"]), _epoch(datum["Timestamp"])
        except (KeyError, TypeError, ValueError):
            errors.append({"Code": "VALIDATION_ERROR", "MetricIndex": index})
            continue
        metric = component.metrics.setdefault(name, {"MetricName": name, "Timestamp": at, "Values": {}})
        values = metric["Values"]
        # moto summarises with max(keys) as the last value: (timestamp, arrival) orders them so.
        values[(at, len(values))] = {**datum, "Value": value, "Timestamp": at}
        metric["Timestamp"] = max(float(metric["Timestamp"]), at)
    return {"Errors": errors}


def _merge(current: Mapping[str, Any] | None, added: Mapping[str, Any] | None, removed: list[str] | None) -> Any:
    merged = {**(current or {}), **(added or {})}
    for key in removed or []:
        merged.pop(key, None)
    return merged


def update_trial_component(
    self: Any,
    *,  # moto's response passes every argument by name
    trial_component_name: str,
    status: dict[str, str] | None,
    display_name: str | None,
    start_time: Any,
    end_time: Any,
    parameters: dict[str, Any] | None,
    parameters_to_remove: list[str] | None,
    input_artifacts: dict[str, Any] | None,
    input_artifacts_to_remove: list[str] | None,
    output_artifacts: dict[str, Any] | None,
    output_artifacts_to_remove: list[str] | None,
) -> dict[str, str]:
    """Replaces SageMakerModelBackend.update_trial_component (same signature): maps merge by key."""
    component = self.trial_components.get(trial_component_name)
    if component is None:
        arn = FakeTrialComponent.arn_formatter(trial_component_name, self.account_id, self.region_name)
        raise ValidationError(message=f"Could not find trial component '{arn}'")
    if status:
        component.status = status
    if display_name:
        component.display_name = display_name
    if start_time:
        component.start_time = start_time
    if end_time:
        component.end_time = end_time
    component.parameters = _merge(component.parameters, parameters, parameters_to_remove)
    component.input_artifacts = _merge(component.input_artifacts, input_artifacts, input_artifacts_to_remove)
    component.output_artifacts = _merge(component.output_artifacts, output_artifacts, output_artifacts_to_remove)
    component.last_modified_time = utcnow()
    return {"TrialComponentArn": component.arn}


def _aware(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def list_trial_components(self: Any) -> ActionResult:
    """Replaces SageMakerResponse.list_trial_components: ListTrialComponents with its filters."""
    backend = self.sagemaker_backend
    trial_name = self._get_param("TrialName")
    experiment_name = self._get_param("ExperimentName")
    source_arn = self._get_param("SourceArn")
    after, before = _aware(self._get_param("CreatedAfter")), _aware(self._get_param("CreatedBefore"))
    trials = dict(backend.trials)
    if trial_name is not None:
        trials = {trial_name: trials[trial_name]} if trial_name in trials else {}
    if experiment_name is not None:
        trials = {name: trial for name, trial in trials.items() if trial.experiment_name == experiment_name}
    members: set[str] | None = None
    if trial_name is not None or experiment_name is not None:
        members = {c for trial in trials.values() for c in trial.trial_components}

    def wanted(component: Any) -> bool:
        created = _aware(component.creation_time)
        return (
            (members is None or component.trial_component_name in members)
            and (source_arn is None or any(s.get("SourceArn") == source_arn for s in component.sources or []))
            and (after is None or (created is not None and created > after))
            and (before is None or (created is not None and created < before))
        )

    found = [c for c in backend.trial_components.values() if wanted(c)]
    key = {"Name": lambda c: c.trial_component_name}.get(self._get_param("SortBy"), lambda c: c.creation_time)
    found.sort(key=key, reverse=self._get_param("SortOrder", "Descending") == "Descending")
    start = int(self._get_param("NextToken") or 0)
    size = int(self._get_param("MaxResults") or 10)
    page = found[start : start + size]
    summaries = [
        {
            "TrialComponentName": c.trial_component_name,
            "TrialComponentArn": c.arn,
            "DisplayName": c.display_name,
            "Status": c.status,
            "CreationTime": c.creation_time,
            "LastModifiedTime": c.last_modified_time,
        }
        for c in page
    ]
    result: dict[str, Any] = {"TrialComponentSummaries": [{k: v for k, v in s.items() if v} for s in summaries]}
    if start + size < len(found):
        result["NextToken"] = str(start + size)
    return ActionResult(result)
