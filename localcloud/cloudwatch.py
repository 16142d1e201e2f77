"""CloudWatch on the local cloud: the functions' EMF metrics land in CloudWatch, and alarms evaluate.

moto 5.2.5 stores metrics and alarms but never evaluates an alarm, starts new alarms in OK (AWS:
INSUFFICIENT_DATA), and nothing turns the Embedded Metric Format documents that functions print
(Powertools Metrics) into metrics. Here:

- Every EMF document a function prints becomes metric data in moto (namespace, each dimension set,
  metrics, units, timestamp), through the local runtime's output listeners. It goes straight to
  the in-process backend: the listener runs inside the handler's print, and a PutMetricData call
  per line would add an HTTP round trip to every invocation in server mode.
- `evaluate_alarms()` computes each metric alarm's statistic over EvaluationPeriods periods of
  Period seconds (aligned to the period, the last one being the period that contains `now`),
  applies ComparisonOperator, Threshold, DatapointsToAlarm and TreatMissingData, and sets the
  state with AWS-style reasons. Metric math, anomaly detection and composite alarms are not
  evaluated: they keep their state (logged once).
- `CloudWatchBackend.set_alarm_state` is wrapped: every state change, from an evaluation or from
  the SetAlarmState API, sends "CloudWatch Alarm State Change" to EventBridge (default bus) and
  runs the alarm's actions for the new state (SNS topics, Lambda functions), as AWS does.
- `CloudWatchBackend.put_metric_alarm` is wrapped: new alarms start INSUFFICIENT_DATA; updating an
  alarm keeps its state.
- AWS::CloudWatch::Alarm and AWS::CloudWatch::Dashboard provisioners (a dashboard body must be a
  JSON object with a "widgets" list, as CloudWatch requires: InvalidParameterInput otherwise;
  moto's PutDashboard checks only that it is JSON); `start_alarm_evaluator(interval)` evaluates
  on a clock.

tests/localcloud/cloudwatch/test_moto_pins.py pins the moto internals used here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from moto.cloudwatch.models import CloudWatchBackend, MetricAggregatedDatum, MetricDatum, cloudwatch_backends

from localcloud import events
from localcloud.background import Periodic
from localcloud.provision import ACCOUNT_ID, Context, register_provisioner
from localcloud.runtime import LocalFunction, add_output_listener, remove_output_listener
from localcloud.template import Physical

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

logger = logging.getLogger(__name__)

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
_REGION_NAMES = {
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)",
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
}


# --------------------------------------------------------------------------------------------------
# EMF -> metrics.


def _utc_naive(moment: dt.datetime) -> dt.datetime:
    """moto keeps metric timestamps as naive UTC datetimes."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _numbers(value: Any) -> list[float]:
    values = value if isinstance(value, list) else [value]
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def metric_data_from_emf(document: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, PutMetricData entries) for one EMF document; [] when it is not one.

    Each metric is published once per dimension set; a dimension set naming a key the document
    lacks is skipped (CloudWatch rejects it)."""
    directives = document.get("_aws")
    if not isinstance(directives, dict):
        return []
    stamp = directives.get("Timestamp")
    timestamp = (
        dt.datetime.fromtimestamp(stamp / 1000, dt.UTC) if isinstance(stamp, (int, float)) else dt.datetime.now(dt.UTC)
    )
    result = []
    for directive in directives.get("CloudWatchMetrics", []):
        namespace = directive.get("Namespace")
        dimension_sets = directive.get("Dimensions") or [[]]
        data = []
        for metric in directive.get("Metrics", []):
            values = _numbers(document.get(metric.get("Name")))
            if not values:
                continue
            for keys in dimension_sets:
                if any(key not in document for key in keys):
                    continue
                datum: dict[str, Any] = {
                    "MetricName": metric["Name"],
                    "Timestamp": _utc_naive(timestamp),
                    "Unit": metric.get("Unit", "None"),
                    "Dimensions": [{"Name": key, "Value": str(document[key])} for key in keys],
                }
                datum.update({"Value": values[0]} if len(values) == 1 else {"Values": values})
                data.append(datum)
        if namespace and data:
            result.append((str(namespace), data))
    return result


def _on_function_output(function: LocalFunction, line: str) -> None:
    """Output listener: EMF lines become metrics in the function's account and region."""
    if '"_aws"' not in line:
        return
    try:
        document = json.loads(line)
    except ValueError:
        return
    if not isinstance(document, dict):
        return
    try:
        region, account = function.arn.split(":")[3:5]
        backend = cloudwatch_backends[account][region]
        for namespace, data in metric_data_from_emf(document):
            backend.put_metric_data(namespace, data)
    except Exception as exc:  # a metric problem must never fail the handler
        logger.warning("EMF metrics of %s were not recorded: %s", function.logical_id, type(exc).__name__)


def _listen() -> None:
    # runtime.clear_registry() drops the listeners when a local cloud stops: registered again at
    # every start (install() runs then) and by attach(); adding twice keeps one.
    add_output_listener(_on_function_output)


# --------------------------------------------------------------------------------------------------
# Alarm evaluation.


@dataclass(frozen=True)
class Datapoint:
    start: dt.datetime  # naive UTC, start of the period
    value: float | None  # None: no data in the period
    sample_count: float


@dataclass(frozen=True)
class Evaluation:
    alarm: str
    previous: str
    state: str  # after the evaluation (unchanged when not evaluated)
    evaluated: bool
    datapoints: tuple[Datapoint, ...] = ()

    @property
    def changed(self) -> bool:
        return self.state != self.previous


def _aws_timestamp(moment: dt.datetime) -> str:
    """CloudWatch's timestamps in events and reason data: 2026-11-27T11:20:00.000+0000."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _statistic(alarm: Any) -> str:
    return str(alarm.extended_statistic or alarm.statistic)


def _value(data: list[Any], statistic: str) -> tuple[float | None, float]:
    """(statistic value, sample count) of one period's data."""
    singles = [float(d.value) for d in data if isinstance(d, MetricDatum)]
    aggregated = [d for d in data if isinstance(d, MetricAggregatedDatum)]
    count = len(singles) + sum(float(a.sample_count) for a in aggregated)
    if count == 0:
        return None, 0.0
    total = sum(singles) + sum(float(a.sum) for a in aggregated)
    if statistic.startswith("p"):
        if not singles:  # aggregated statistic sets carry no distribution
            return None, count
        rank = max(1, math.ceil(float(statistic[1:]) / 100 * len(singles)))  # nearest rank
        return sorted(singles)[rank - 1], count
    values = {
        "Sum": total,
        "Average": total / count,
        "SampleCount": count,
        "Minimum": min(singles + [float(a.min) for a in aggregated]),
        "Maximum": max(singles + [float(a.max) for a in aggregated]),
    }
    return values.get(statistic), count


def _matching_data(backend: Any, alarm: Any, start: dt.datetime, end: dt.datetime) -> list[Any]:
    """The alarm's metric: same namespace and name, exactly the same dimensions (as on AWS)."""
    source = backend.get_all_metrics() if str(alarm.namespace).startswith("AWS/") else backend.metric_data
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    return [
        d
        for d in source
        if d.namespace == alarm.namespace
        and d.name == alarm.metric_name
        and start <= _utc_naive(d.timestamp) < end
        and {(x.name, x.value) for x in d.dimensions} == wanted
        and (alarm.unit is None or d.unit == alarm.unit)
    ]


def datapoints(backend: Any, alarm: Any, now: dt.datetime) -> list[Datapoint]:
    """One datapoint per evaluation period, oldest first; the last period contains `now`."""
    period = int(alarm.period)
    epoch = dt.datetime(1970, 1, 1)
    elapsed = int((now - epoch).total_seconds())
    end = epoch + dt.timedelta(seconds=elapsed - elapsed % period + period)
    periods = int(alarm.evaluation_periods)
    first = end - dt.timedelta(seconds=period * periods)
    data = _matching_data(backend, alarm, first, end)
    points = []
    for index in range(periods):
        start = first + dt.timedelta(seconds=period * index)
        stop = start + dt.timedelta(seconds=period)
        value, count = _value([d for d in data if start <= _utc_naive(d.timestamp) < stop], _statistic(alarm))
        points.append(Datapoint(start, value, count))
    return points


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _decide(alarm: Any, points: list[Datapoint], now: dt.datetime) -> tuple[str, str, str] | None:
    """(state, reason, reason data) from the datapoints; None keeps the current state."""
    compare, phrase = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods)
    treat = alarm.treat_missing_data or "missing"
    present = [p for p in points if p.value is not None]
    missing = len(points) - len(present)

    def breaches(point: Datapoint) -> bool:
        return point.value is not None and compare(point.value, threshold)

    breaching = len([p for p in present if breaches(p)])
    reason_data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _aws_timestamp(now),
        "startDate": _aws_timestamp(points[0].start),
        "statistic": _statistic(alarm),
        "period": int(alarm.period),
        "recentDatapoints": [p.value for p in present],
        "threshold": threshold,
    }
    if present:
        reason_data["evaluatedDatapoints"] = [
            {"timestamp": _aws_timestamp(p.start), "sampleCount": p.sample_count, "value": p.value}
            for p in reversed(present)
        ]
    if not present and treat in ("missing", "ignore"):
        if treat == "ignore":
            return None
        reason = f"Insufficient Data: {_plural(missing, 'datapoint')} {'was' if missing == 1 else 'were'} unknown."
        return INSUFFICIENT_DATA, reason, json.dumps(reason_data)
    if treat == "breaching":
        breaching += missing
    state = ALARM if breaching >= needed else OK
    if not present:
        treated = "Breaching" if treat == "breaching" else "NonBreaching"
        reason = (
            f"Threshold Crossed: no datapoints were received for {_plural(missing, 'period')} and "
            f"{_plural(missing, 'missing datapoint')} {'was' if missing == 1 else 'were'} treated as [{treated}]."
        )
        return state, reason, json.dumps(reason_data)
    shown = [p for p in present if breaches(p) == (state == ALARM)]
    listed = ", ".join(f"{p.value} ({p.start:%d/%m/%y %H:%M:%S})" for p in reversed(shown))
    verb = "was" if len(shown) == 1 else "were"
    negation = "" if state == ALARM else "not "
    if len(points) == 1:
        reason = f"Threshold Crossed: 1 datapoint [{listed}] {verb} {negation}{phrase} the threshold ({threshold})."
    else:
        reason = (
            f"Threshold Crossed: {len(shown)} out of the last {len(points)} datapoints [{listed}] {verb} "
            f"{negation}{phrase} the threshold ({threshold}) (minimum {_plural(needed, 'datapoint')} for "
            f"{alarm.state_value} -> {state} transition)."
        )
    return state, reason, json.dumps(reason_data)


_UNSUPPORTED_LOGGED: set[str] = set()


def _unsupported(alarm: Any) -> str | None:
    if getattr(alarm, "rule", None):
        return "composite alarm"
    if alarm.metric_data_queries or alarm.threshold_metric_id:
        return "metric math or anomaly detection alarm"
    if alarm.comparison_operator not in _COMPARISONS:
        return f"comparison {alarm.comparison_operator}"
    if not alarm.metric_name or not alarm.period or not alarm.evaluation_periods:
        return "alarm without a single metric"
    return None


def evaluate_alarms(
    now: dt.datetime | None = None, *, region: str | None = None, account: str = ACCOUNT_ID
) -> list[Evaluation]:
    """Evaluate every metric alarm of the account and region once (as CloudWatch does each period)."""
    moment = _utc_naive(now or dt.datetime.now(dt.UTC))
    backend = cloudwatch_backends[account][region or _region()]
    results = []
    for alarm in list(backend.alarms.values()):
        unsupported = _unsupported(alarm)
        if unsupported:
            if alarm.alarm_arn not in _UNSUPPORTED_LOGGED:
                _UNSUPPORTED_LOGGED.add(alarm.alarm_arn)
                logger.info("alarm %s is not evaluated locally (%s): it keeps its state", alarm.name, unsupported)
            results.append(Evaluation(alarm.name, alarm.state_value, alarm.state_value, False))
            continue
        points = datapoints(backend, alarm, moment)
        previous = alarm.state_value
        decision = _decide(alarm, points, moment)
        if decision is not None and decision[0] != previous:
            state, reason, reason_data = decision
            backend.set_alarm_state(alarm.name, reason, reason_data, state)
        results.append(Evaluation(alarm.name, previous, alarm.state_value, True, tuple(points)))
    return results


# --------------------------------------------------------------------------------------------------
# State changes: EventBridge and alarm actions.


@dataclass(frozen=True)
class _State:
    value: str
    reason: str
    reason_data: str | None
    timestamp: dt.datetime

    @classmethod
    def of(cls, alarm: Any) -> _State:
        return cls(alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp)

    def describe(self) -> dict[str, Any]:
        described = {"value": self.value, "reason": self.reason, "timestamp": _aws_timestamp(self.timestamp)}
        if self.reason_data and self.reason_data != "{}":
            described["reasonData"] = self.reason_data
        return described


def _configuration(alarm: Any) -> dict[str, Any]:
    metrics: list[dict[str, Any]] = []
    if alarm.metric_name:
        metrics.append(
            {
                "id": hashlib.sha256(alarm.alarm_arn.encode()).hexdigest()[:32],
                "metricStat": {
                    "metric": {
                        "namespace": alarm.namespace,
                        "name": alarm.metric_name,
                        "dimensions": {d.name: d.value for d in alarm.dimensions},
                    },
                    "period": alarm.period,
                    "stat": _statistic(alarm),
                },
                "returnData": True,
            }
        )
    for query in alarm.metric_data_queries:
        described: dict[str, Any] = {"id": query.id, "returnData": query.return_data is not False}
        if query.expression:
            described["expression"] = query.expression
        if query.label:
            described["label"] = query.label
        metrics.append(described)
    return {"description": alarm.description or "", "metrics": metrics}


def _sns_message(alarm: Any, previous: _State, region: str, account: str) -> str:
    """The JSON an alarm action publishes to SNS (AWS's layout)."""
    return json.dumps(
        {
            "AlarmName": alarm.name,
            "AlarmDescription": alarm.description,
            "AWSAccountId": account,
            "AlarmConfigurationUpdatedTimestamp": _aws_timestamp(alarm.configuration_updated_timestamp),
            "NewStateValue": alarm.state_value,
            "NewStateReason": alarm.state_reason,
            "StateChangeTime": _aws_timestamp(alarm.state_updated_timestamp),
            "Region": _REGION_NAMES.get(region, region),
            "AlarmArn": alarm.alarm_arn,
            "OldStateValue": previous.value,
            "OKActions": list(alarm.ok_actions),
            "AlarmActions": list(alarm.alarm_actions),
            "InsufficientDataActions": list(alarm.insufficient_data_actions),
            "Trigger": {
                "MetricName": alarm.metric_name,
                "Namespace": alarm.namespace,
                "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
                "Statistic": str(_statistic(alarm)).upper(),
                "Unit": alarm.unit,
                "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
                "Period": alarm.period,
                "EvaluationPeriods": alarm.evaluation_periods,
                "DatapointsToAlarm": alarm.datapoints_to_alarm or alarm.evaluation_periods,
                "ComparisonOperator": alarm.comparison_operator,
                "Threshold": alarm.threshold,
                "TreatMissingData": alarm.treat_missing_data or "missing",
                "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
            },
        }
    )


def _run_actions(alarm: Any, previous: _State, detail: Mapping[str, Any], event_id: str, account: str) -> None:
    if not alarm.actions_enabled:
        return
    actions: Iterable[str] = {
        ALARM: alarm.alarm_actions,
        OK: alarm.ok_actions,
        INSUFFICIENT_DATA: alarm.insufficient_data_actions,
    }.get(alarm.state_value, [])
    region = alarm.region_name
    connection = events.current_connection()
    for arn in actions:
        service = arn.split(":")[2]
        if service == "sns":
            subject = f'{alarm.state_value}: "{alarm.name}" in {_REGION_NAMES.get(region, region)}'[:100]
            payload = _sns_message(alarm, previous, region, account)
        elif service == "lambda":
            subject = None
            payload = json.dumps(
                {
                    "source": "aws.cloudwatch",
                    "alarmArn": alarm.alarm_arn,
                    "accountId": account,
                    "time": _aws_timestamp(alarm.state_updated_timestamp),
                    "region": region,
                    "alarmData": dict(detail),
                }
            )
        else:
            logger.warning("alarm action %s of %s is not supported locally", arn, alarm.name)
            continue
        target = {"Arn": arn, "Id": f"{alarm.state_value}Action"}
        events.deliver(events.Job(alarm.alarm_arn, "alarm", target, event_id, payload, payload, connection, subject))


def _announce(backend: Any, alarm: Any, previous: _State) -> None:
    """A state change: the EventBridge event, then the actions for the new state."""
    detail = {
        "alarmName": alarm.name,
        "state": _State.of(alarm).describe(),
        "previousState": previous.describe(),
        "configuration": _configuration(alarm),
    }
    event = events.make_event(
        source="aws.cloudwatch",
        detail_type="CloudWatch Alarm State Change",
        detail=detail,
        resources=[alarm.alarm_arn],
        account=backend.account_id,
        region=alarm.region_name,
        time=alarm.state_updated_timestamp,
    )
    logger.info("alarm %s: %s -> %s", alarm.name, previous.value, alarm.state_value)
    events.put_event(event, account=backend.account_id)
    _run_actions(alarm, previous, detail, event["id"], backend.account_id)


_MOTO_SET_ALARM_STATE = CloudWatchBackend.set_alarm_state
_MOTO_PUT_METRIC_ALARM = CloudWatchBackend.put_metric_alarm


def _set_alarm_state(self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
    """Wraps CloudWatchBackend.set_alarm_state: a change of state is announced, as on AWS."""
    alarm = self.alarms.get(alarm_name)
    previous = _State.of(alarm) if alarm is not None else None
    _MOTO_SET_ALARM_STATE(self, alarm_name, reason, reason_data, state_value)
    if previous is not None and previous.value != state_value:
        try:
            _announce(self, self.alarms[alarm_name], previous)
        except Exception:
            logger.exception("the state change of alarm %s was not announced", alarm_name)


def _put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Wraps CloudWatchBackend.put_metric_alarm: AWS starts a new alarm in INSUFFICIENT_DATA (moto:
    OK) and keeps the state of an alarm that is updated (moto: replaced, back to OK)."""
    previous = self.alarms.get(name)
    alarm = _MOTO_PUT_METRIC_ALARM(self, name, *args, **kwargs)
    if previous is None:
        alarm.state_value = INSUFFICIENT_DATA
    else:
        for attribute in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
            setattr(alarm, attribute, getattr(previous, attribute))
    return alarm


# --------------------------------------------------------------------------------------------------
# Provisioner.

_ALARM_INTS = ("EvaluationPeriods", "DatapointsToAlarm", "Period")
_ALARM_PROPERTIES = (
    "AlarmDescription",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Unit",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "ThresholdMetricId",
    "ComparisonOperator",
)


def _metric_queries(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shaped = []
    for query in queries:
        copied = dict(query)
        if "Period" in copied:
            copied["Period"] = int(copied["Period"])
        if "MetricStat" in copied:
            copied["MetricStat"] = {**copied["MetricStat"], "Period": int(copied["MetricStat"]["Period"])}
        shaped.append(copied)
    return shaped


def cloudwatch_alarm(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("AlarmName") or ctx.name(logical_id, max_length=255)
    args: dict[str, Any] = {"AlarmName": name}
    args.update({key: props[key] for key in _ALARM_PROPERTIES if key in props})
    args.update({key: int(props[key]) for key in _ALARM_INTS if key in props})
    if "Threshold" in props:
        args["Threshold"] = float(props["Threshold"])
    if "ActionsEnabled" in props:
        args["ActionsEnabled"] = str(props["ActionsEnabled"]).lower() == "true"
    if "Metrics" in props:
        args["Metrics"] = _metric_queries(props["Metrics"])
    if props.get("Tags"):
        args["Tags"] = [{"Key": t["Key"], "Value": str(t["Value"])} for t in props["Tags"]]
    ctx.client("cloudwatch").put_metric_alarm(**args)
    return Physical(name, {"Arn": ctx.arn("cloudwatch", f"alarm:{name}")})


def _dashboard_body_problem(body: Any) -> str | None:
    """Why CloudWatch would refuse a DashboardBody (InvalidParameterInput, with its message), or
    None. moto checks only that the body parses as JSON."""
    if not isinstance(body, str):
        return f"DashboardBody must be a string (JSON text), not {type(body).__name__}"
    try:
        document = json.loads(body)
    except ValueError:
        return "Body is invalid JSON"
    if not isinstance(document, dict):
        path, message = "", "Should be object"
    elif "widgets" not in document:
        path, message = "", "Should have required property 'widgets'"
    elif not isinstance(document["widgets"], list):
        path, message = "/widgets", "Should be array"
    else:
        return None
    detail = json.dumps([{"dataPath": path, "message": message}], indent=1)
    return f"The dashboard body is invalid, there are 1 validation errors:\n{detail}"


def cloudwatch_dashboard(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    """AWS::CloudWatch::Dashboard: PutDashboard with the body as given (after Fn::Sub); a body that
    is not a JSON object with a "widgets" list fails the deployment as CloudWatch refuses it."""
    name = props.get("DashboardName") or ctx.name(logical_id, max_length=255)
    body = props.get("DashboardBody")
    problem = _dashboard_body_problem(body)
    if problem is not None:
        raise ClientError(
            {"Error": {"Code": "InvalidParameterInput", "Message": f"{logical_id}: {problem}"}}, "PutDashboard"
        )
    ctx.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=body)
    return Physical(name)


# --------------------------------------------------------------------------------------------------
# Life cycle.

_INSTALLED = False
_REGION: str | None = None


def _region() -> str:
    return _REGION or events.current_connection().region


class AlarmEvaluator(Periodic):
    """Evaluates the alarms every `interval` seconds (CloudWatch evaluates once a period)."""

    name = "localcloud-alarms"

    def __init__(self, interval: float, region: str, connection: events.Connection) -> None:
        super().__init__(interval)
        self.region = region
        self.connection = connection
        self.evaluations = 0

    def tick(self) -> None:
        with events.using(self.connection):
            evaluate_alarms(region=self.region)
        self.evaluations += 1


_EVALUATOR: AlarmEvaluator | None = None


def start_alarm_evaluator(interval: float = 10.0, *, region: str | None = None) -> AlarmEvaluator:
    """Evaluate alarms on a clock (the demo); `shutdown()` stops it. Tests call evaluate_alarms()."""
    global _EVALUATOR  # noqa: PLW0603 - one evaluator per process, like the local cloud
    if _EVALUATOR is not None:
        _EVALUATOR.stop()
    connection = events.current_connection()
    _EVALUATOR = AlarmEvaluator(interval, region or connection.region, connection).start()
    return _EVALUATOR


def install() -> None:
    """Wrap moto's alarm state and creation once; register the provisioners and the EMF listener."""
    global _INSTALLED  # noqa: PLW0603 - process-wide patches, applied once
    if not _INSTALLED:
        CloudWatchBackend.set_alarm_state = _set_alarm_state  # type: ignore[method-assign]
        CloudWatchBackend.put_metric_alarm = _put_metric_alarm  # type: ignore[method-assign]
        _INSTALLED = True
    register_provisioner("AWS::CloudWatch::Alarm", cloudwatch_alarm)
    register_provisioner("AWS::CloudWatch::Dashboard", cloudwatch_dashboard)
    _listen()


def attach(cloud: LocalCloud) -> None:
    """Bind to a running local cloud: its region; EMF listening (the runtime's listeners are per cloud)."""
    global _REGION  # noqa: PLW0603 - the running cloud, one per process
    install()
    _REGION = cloud.environment.get("AWS_REGION")
    _UNSUPPORTED_LOGGED.clear()


def shutdown() -> None:
    """Stop the alarm evaluator and the EMF listener. Call before events.shutdown() (state changes
    send events) and before the moto context closes."""
    global _EVALUATOR, _REGION  # noqa: PLW0603 - see start_alarm_evaluator and attach
    if _EVALUATOR is not None:
        _EVALUATOR.stop()
        _EVALUATOR = None
    remove_output_listener(_on_function_output)
    _REGION = None
