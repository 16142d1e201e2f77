"""Training runs: what starts one, what it trains on, and what happens to the candidate it makes.

A run is one execution of the training state machine (statemachines/training.asl.json):
  start_training      the run's name says why it runs, so the same cause starts it once: every
                      DatasetReady event of one dataset version names `dataset-<version>`, however
                      often it is delivered; a schedule firing, an alarm's state change (a
                      retraining trigger, with the monitor's evidence) or an API request names its
                      own event or request id. The retraining guard (dxops.domain.training_guard)
                      admits it or records why not.
  prepare_training_run  the dataset version (the named one or the published one), the champion to
                      beat, and the two SageMaker requests: the training job (script mode, ml/train.py)
                      and the comparison job (ml/compare.py: candidate and champion on the
                      candidate's held-out rows).
  conclude_training_run  reads the comparison: a rejected candidate is recorded with its evidence; a
                      passing one is registered in the model package group, pending approval unless
                      the environment's policy approves it automatically (clearly better than the
                      champion). Every run is recorded as an experiment trial.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from dxops.adapters.ports import (
    Executions,
    ExperimentLog,
    FiringAlarms,
    JsonDocuments,
    ModelRegistry,
    ModelVersions,
    TrainingTriggers,
)
from dxops.domain.dataset_versions import DATASETS_PREFIX, PUBLISHED_KEY, s3_uri
from dxops.domain.errors import DomainError
from dxops.domain.processing_jobs import ProcessingJob, processing_input
from dxops.domain.training_guard import GuardPolicy, admit, release_slot
from dxops.schemas.datasets import (
    DATASET_EVENT_SOURCE,
    DATASET_READY,
    DatasetManifest,
    DatasetReadyDetail,
    PreviousVersion,
)
from dxops.schemas.models import (
    ApprovalRecord,
    ChampionRef,
    DatasetRef,
    ModelVersionRecord,
    RejectedCandidate,
    TrainingOutcome,
    TrainingPlan,
    TrainingRequest,
)
from dxops.schemas.training_triggers import (
    ALARM_EVENT_SOURCE,
    ALARM_STATE_CHANGE,
    AlarmStateChange,
    SuppressionReason,
    TriggerOutcome,
    TriggerRecord,
)
from dxops.settings import TrainingRunSettings
from dxops.vocab.training_metrics import METRIC_DEFINITIONS

TRAIN_ENTRY, INFERENCE_ENTRY, COMPARE_ENTRY = "dxops_train.py", "dxops_inference.py", "dxops_compare.py"
CODE_POINTER = "current.json"  # {"sha256": ...}: the code version tools/publish_training_code.py published
CONTENT_TYPES = ["application/json", "application/jsonlines"]
PREVIOUS_VERSIONS_LISTED = 5
# The monitor's latest results (monitoring bucket), written by dxops.domain.monitoring: an alarm's evidence.
MONITORING_SUMMARY_KEY = "monitoring/latest.json"
HEADLINE_METRICS = ("macro_f1", "rare_recall", "ece", "accuracy", "top3_accuracy")
# The comparison job's result (ml/compare.py) and the verdict that registers a candidate: ConcludeRun's
# rule, and the SageMaker Pipeline's condition (tools/sagemaker_pipeline.py).
COMPARISON_JSON, PASSING_VERDICT = "comparison.json", "pass"


class NotEnoughData(DomainError):
    """The dataset version cannot train a classifier (fewer than two labelled classes)."""


class DatasetNotFound(DomainError):
    pass


class TrainingCodeMissing(DomainError):
    """No training code was published (make deploy publishes it; the local cloud at deploy)."""


# --- Start -------------------------------------------------------------------------------------------

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def run_name(request: TrainingRequest) -> str:
    """The execution name: one cause, one run (Step Functions keeps names unique for 90 days)."""
    if request.reason == "dataset-ready":
        if request.dataset_version is None:
            raise DomainError("a dataset-ready request names its dataset version")
        return f"dataset-{request.dataset_version}"
    prefix = {"schedule": "schedule", "retraining-trigger": "retrain", "manual": "manual"}[request.reason]
    safe = _NAME_UNSAFE.sub("-", request.trigger_id)
    if safe == request.trigger_id and len(prefix) + 1 + len(safe) <= 80:
        return f"{prefix}-{safe}"
    # Changed or cut: the trigger id's digest keeps distinct ids distinct.
    return f"{prefix}-{safe[: 80 - len(prefix) - 14]}-{_digest(request.trigger_id, 12)}"


def training_request_for_event(
    *, source: str, detail_type: str, detail: Any, event_id: str, time: dt.datetime
) -> TrainingRequest:
    """DatasetReady (a new dataset version), an alarm going to ALARM (a retraining trigger: drift,
    a quality drop, an SLO breach), else the training schedule's firing (the published version)."""
    if source == DATASET_EVENT_SOURCE and detail_type == DATASET_READY:
        ready = DatasetReadyDetail.model_validate(detail)
        return TrainingRequest(
            reason="dataset-ready",
            requested_by=f"events:{DATASET_READY}",
            trigger_id=event_id,
            dataset_version=ready.dataset_version,
        )
    if source == ALARM_EVENT_SOURCE and detail_type == ALARM_STATE_CHANGE:
        alarm = AlarmStateChange.model_validate(detail)
        return TrainingRequest(
            reason="retraining-trigger",
            requested_by=f"alarm:{alarm.alarm_name}",
            # One alarm episode, one trigger: redeliveries of the same state change name the same run.
            trigger_id=f"{alarm.alarm_name}@{alarm.state.timestamp}",
            evidence={"alarm": alarm.evidence()},
        )
    return TrainingRequest(reason="schedule", requested_by=f"events:{detail_type}", trigger_id=f"{time:%Y%m%dT%H%M%SZ}")


@dataclass(frozen=True)
class TriggerContext:
    """What start_training consults besides the guard: the datasets and the champion (whether the
    schedule has enough new labelled rows) and the monitor's latest results (an alarm's evidence)."""

    curated_bucket: str
    documents: JsonDocuments
    versions: ModelVersions
    monitoring_summary_uri: str | None = None
    alarms: FiringAlarms | None = None  # the retraining alarms: one still firing makes the schedule retrain


def new_labelled_rows(context: TriggerContext) -> tuple[int | None, str]:
    """Labelled rows of the published dataset version beyond the champion's dataset's, and why;
    None when no champion serves (the first model trains on whatever there is)."""
    try:
        published = resolve_dataset(
            TrainingRequest(reason="schedule", requested_by="guard", trigger_id="guard"),
            context.curated_bucket,
            context.documents,
        )
    except (DatasetNotFound, NotEnoughData) as missing:
        return 0, str(missing)
    champion = context.versions.champion()
    record = context.versions.get(champion.package_version) if champion is not None else None
    if record is None:
        return None, "no champion serves"
    if record.dataset_version == published.dataset_version:
        return 0, f"the champion was trained on the published version {published.dataset_version}"
    try:
        trained_on = resolve_dataset(
            TrainingRequest(
                reason="schedule", requested_by="guard", trigger_id="guard", dataset_version=record.dataset_version
            ),
            context.curated_bucket,
            context.documents,
        )
    except (DatasetNotFound, NotEnoughData) as missing:  # nothing to compare with: as without a champion
        return None, f"the champion's dataset cannot be read ({missing})"
    new = max(0, published.labelled_rows - trained_on.labelled_rows)
    return new, (
        f"{published.dataset_version} has {published.labelled_rows} labelled rows, the champion's "
        f"{trained_on.dataset_version} {trained_on.labelled_rows}"
    )


def _for_alarms_still_firing(
    request: TrainingRequest, context: TriggerContext, triggers: TrainingTriggers
) -> TrainingRequest:
    """An alarm changes state once: a trigger the guard suppressed (a run in progress, the cooldown,
    the cap) is not sent again. The schedule takes it up: a retraining alarm in ALARM since after
    the last training started makes its firing a retraining trigger with that alarm as evidence (an
    alarm that a training already answered does not retrain again every day)."""
    if request.reason != "schedule" or context.alarms is None:
        return request
    last_started = triggers.guard_state().last_started_at
    firing = [
        alarm
        for alarm in context.alarms.firing()
        if last_started is None or dt.datetime.fromisoformat(alarm["changed_at"]) > last_started
    ]
    if not firing:
        return request
    names = ", ".join(alarm["name"] for alarm in firing)
    return request.model_copy(
        update={
            "reason": "retraining-trigger",
            "requested_by": f"{request.requested_by} (alarm {names} still in ALARM)"[:512],
            "evidence": {"alarm": firing[0], "alarms": firing},
        }
    )


def _with_monitoring_evidence(request: TrainingRequest, context: TriggerContext) -> TrainingRequest:
    """An alarm's trigger carries the monitor's latest results (report, drifted features, quality)."""
    if request.reason != "retraining-trigger" or context.monitoring_summary_uri is None:
        return request
    summary = context.documents.read(context.monitoring_summary_uri)
    if summary is None:
        return request
    return request.model_copy(update={"evidence": {**(request.evidence or {}), "monitoring": summary}})


def start_training(
    request: TrainingRequest,
    *,
    runs: Executions,
    triggers: TrainingTriggers,
    policy: GuardPolicy,
    context: TriggerContext | None = None,
    now: dt.datetime | None = None,
) -> TriggerRecord:
    """Start the run this request names unless the guard (dxops.domain.training_guard) or, for the
    schedule, too few new labelled rows suppress it; the trigger is recorded either way."""
    now = now or dt.datetime.now(dt.UTC)
    if context is not None:
        firing = _for_alarms_still_firing(request, context, triggers)
        request = _with_monitoring_evidence(firing, context)
    name = run_name(request)

    def recorded(outcome: TriggerOutcome, because: SuppressionReason | None = None, detail: str = "") -> TriggerRecord:
        trigger = TriggerRecord(
            at=now,
            run_name=name,
            reason=request.reason,
            requested_by=request.requested_by,
            trigger_id=request.trigger_id,
            outcome=outcome,
            suppressed_because=because,
            detail=detail,
            evidence=request.evidence,
        )
        triggers.record(trigger)
        return trigger

    if request.reason == "schedule" and context is not None:
        new, detail = new_labelled_rows(context)
        if new is not None and new < policy.min_new_labelled_rows:
            return recorded(
                "suppressed",
                "not-enough-new-data",
                f"{new} new labelled rows (need {policy.min_new_labelled_rows}): {detail}",
            )
    if runs.status(name) is not None:  # a redelivered cause of a run that exists: never the slot again
        return recorded("already-started")
    admission = admit(name, request.reason, triggers=triggers, runs=runs, policy=policy, now=now)
    if not admission.admitted:
        return recorded("suppressed", admission.because, admission.detail)
    started = runs.ensure_started(name, request.model_dump_json())
    return recorded("started" if started else "already-started")


# --- Prepare -----------------------------------------------------------------------------------------


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def resolve_dataset(request: TrainingRequest, curated_bucket: str, documents: JsonDocuments) -> DatasetRef:
    if request.dataset_version is not None:
        manifest_uri = s3_uri(curated_bucket, f"{DATASETS_PREFIX}{request.dataset_version}/manifest.json")
    else:
        pointer = documents.read(s3_uri(curated_bucket, PUBLISHED_KEY))
        if pointer is None:
            raise DatasetNotFound("no dataset version is published yet")
        manifest_uri = PreviousVersion.model_validate(pointer).manifest_uri
    document = documents.read(manifest_uri)
    if document is None:
        raise DatasetNotFound(f"dataset version {request.dataset_version} has no manifest")
    manifest = DatasetManifest.model_validate(document)
    labelled = {label: count for label, count in manifest.class_counts.items() if count > 0}
    if len(labelled) < 2:
        raise NotEnoughData(f"{manifest.dataset_version} has {len(labelled)} labelled class(es): nothing to learn")
    return DatasetRef(
        dataset_version=manifest.dataset_version,
        manifest_uri=manifest_uri,
        table_uri=manifest.table_uri,
        labelled_rows=sum(labelled.values()),
        classes=len(labelled),
    )


def code_uri(code_root: str, documents: JsonDocuments) -> str:
    """The published code version's folder under code_root (content-addressed, so a version always
    runs its code)."""
    pointer = documents.read(code_root + CODE_POINTER)
    if not pointer or "sha256" not in pointer:
        raise TrainingCodeMissing(f"no training code under {code_root}: run make deploy")
    return f"{code_root}{pointer['sha256']}/"


def _training_job(
    name: str, request: TrainingRequest, dataset: DatasetRef, code: str, settings: TrainingRunSettings
) -> dict[str, Any]:
    artifacts = f"s3://{settings.artifacts_bucket}/training"
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds}
    if settings.training_use_spot:  # spot: the job may wait for capacity, up to MaxWaitTimeInSeconds
        stopping["MaxWaitTimeInSeconds"] = max(
            settings.training_max_wait_seconds, settings.training_max_runtime_seconds
        )
    hyperparameters = {
        **{key: str(value) for key, value in settings.training_hyperparameters.items()},
        **request.hyperparameters,
        "dataset_version": dataset.dataset_version,
        "sagemaker_program": TRAIN_ENTRY,
        "sagemaker_submit_directory": f"{code}sourcedir.tar.gz",
    }
    distribution = "ShardedByS3Key" if settings.training_instance_count > 1 else "FullyReplicated"
    job: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": dataset.table_uri,
                        "S3DataDistributionType": distribution,
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"{artifacts}/models/", "KmsKeyId": settings.data_key_arn},
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": settings.training_instance_count,
            "VolumeSizeInGB": settings.training_volume_gb,
            "VolumeKmsKeyId": settings.data_key_arn,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": settings.training_use_spot,
        # A spot interruption restarts the job from the start (training takes minutes, see
        # docs/model.md); the checkpoint folder keeps what a future resumable trainer would need.
        "CheckpointConfig": {"S3Uri": f"{artifacts}/checkpoints/{name}/"},
        # Instances of a distributed job exchange model state: encrypted between them.
        "EnableInterContainerTrafficEncryption": settings.training_instance_count > 1,
        "Tags": [
            {"Key": "dxops:dataset-version", "Value": dataset.dataset_version},
            {"Key": "dxops:reason", "Value": request.reason},
        ],
    }
    if settings.vpc_config is not None:  # the state machine trains in the VPC when the request names one
        job["VpcConfig"] = settings.vpc_config
    return job


def candidate_artifact(training_job: dict[str, Any]) -> str:
    """Where SageMaker writes the job's model.tar.gz."""
    output = training_job["OutputDataConfig"]["S3OutputPath"]
    return f"{output}{training_job['TrainingJobName']}/output/model.tar.gz"


def _comparison_job(  # noqa: PLR0917 (one call site, every argument named there)
    name: str,
    training_job: dict[str, Any],
    dataset: DatasetRef,
    champion: ChampionRef | None,
    code: str,
    output_uri: str,
    settings: TrainingRunSettings,
) -> dict[str, Any]:
    inputs = [
        processing_input("candidate", candidate_artifact(training_job)),
        processing_input("data", dataset.table_uri),
    ]
    if champion is not None:
        inputs.append(processing_input("champion", champion.model_data_url))
    arguments: list[str] = []
    for flag, value in sorted(settings.gate_tolerances.items()):  # {"macro_f1_tolerance": 0.01, ...}
        arguments += [f"--{flag.replace('_', '-')}", str(value)]  # ml/compare.py's flags
    job = ProcessingJob(
        name=name,
        entry_point=COMPARE_ENTRY,
        code_uri=code,
        inputs=inputs,
        output_name="comparison",
        output_uri=output_uri,
        arguments=arguments,
        environment={"DXOPS_DATASET_VERSION": dataset.dataset_version},
    )
    return job.request(settings.processing_host)


@dataclass(frozen=True)
class RunJobs:
    """A run's two SageMaker requests and where the comparison lands."""

    training_job: dict[str, Any]  # CreateTrainingJob
    comparison_job: dict[str, Any]  # CreateProcessingJob of ml/compare.py
    comparison_uri: str


def run_jobs(
    job_name: str,
    *,
    request: TrainingRequest,
    dataset: DatasetRef,
    champion: ChampionRef | None,
    code: str,
    settings: TrainingRunSettings,
) -> RunJobs:
    """The step configuration of a run, pure: PrepareRun's (the state machine passes the requests
    through) and the SageMaker Pipeline's (tools/sagemaker_pipeline.py builds its steps from them)."""
    training_job = _training_job(job_name, request, dataset, code, settings)
    comparison_uri = f"s3://{settings.artifacts_bucket}/training/runs/{job_name}/comparison/"
    comparison_job = _comparison_job(
        f"{job_name}-compare", training_job, dataset, champion, code, comparison_uri, settings
    )
    return RunJobs(training_job, comparison_job, comparison_uri)


def prepare_training_run(
    request: TrainingRequest,
    *,
    name: str,
    now: dt.datetime,
    settings: TrainingRunSettings,
    documents: JsonDocuments,
    versions: ModelVersions,
) -> TrainingPlan:
    dataset = resolve_dataset(request, settings.curated_bucket, documents)
    code = code_uri(settings.training_code_uri, documents)
    champion_record = versions.champion()
    champion = (
        ChampionRef(
            package_version=champion_record.package_version,
            package_arn=champion_record.package_arn,
            model_version=champion_record.model_version,
            model_data_url=champion_record.model_data_url,
        )
        if champion_record is not None
        else None
    )
    job_name = f"dxops-{settings.dxops_environment}-{now:%Y%m%d%H%M%S}-{_digest(name)}"
    jobs = run_jobs(job_name, request=request, dataset=dataset, champion=champion, code=code, settings=settings)
    return TrainingPlan(
        run_name=name,
        request=request,
        dataset=dataset,
        champion=champion,
        training_job=jobs.training_job,
        comparison_job=jobs.comparison_job,
        comparison_uri=jobs.comparison_uri,
        experiment_name=settings.experiment_name,
        prepared_at=now,
    )


# --- Conclude ----------------------------------------------------------------------------------------


def _headline(block: dict[str, Any] | None) -> dict[str, float | None]:
    if not block:
        return {}
    return {key: (float(block[key]) if block.get(key) is not None else None) for key in HEADLINE_METRICS}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _metrics_line(comparison: dict[str, Any]) -> str:
    candidate, champion = _headline(comparison.get("candidate")), _headline(comparison.get("champion"))
    parts = []
    for key in ("macro_f1", "rare_recall", "ece"):
        text = f"{key} {_fmt(candidate.get(key))}"
        if champion:
            text += f" (champion {_fmt(champion.get(key))})"
        parts.append(text)
    return "; ".join(parts)


def _previous_versions(versions: ModelVersions) -> list[dict[str, Any]]:
    listed = sorted(versions.list_versions(), key=lambda v: v.package_version, reverse=True)
    return [
        {
            "package_version": v.package_version,
            "model_version": v.model_version,
            "dataset_version": v.dataset_version,
            "approval_status": v.approval_status,
            "deployment_status": v.deployment_status,
            "metrics": v.metrics,
        }
        for v in listed[:PREVIOUS_VERSIONS_LISTED]
    ]


def package_request(
    plan: TrainingPlan,
    *,
    model_data_url: str,
    model_version: str,
    code_version: str,
    status: str,
    evidence_uri: str,
    comparison: dict[str, Any],
    group: str,
    image: str = "",
) -> dict[str, Any]:
    """image: the model's container image (InferenceImageUri); empty: the training job's."""
    code = plan.training_job["HyperParameters"]["sagemaker_submit_directory"]
    metrics = _headline(comparison.get("candidate"))
    properties = {
        "dataset_version": plan.dataset.dataset_version,
        "training_job": plan.training_job["TrainingJobName"],
        "run_name": plan.run_name,
        "model_version": model_version,
        "code_version": code_version,
        "reason": plan.request.reason,
        "evidence_uri": evidence_uri,
        # written by the comparison job next to comparison.json (ml/compare.py)
        "model_card_uri": f"{plan.comparison_uri}candidate_model_card.md",
        "comparison_report_uri": f"{plan.comparison_uri}comparison.md",
        **{f"metric_{key}": _fmt(value) for key, value in metrics.items()},
    }
    # CreateModelPackage: ConcludeRun's registration, and the SageMaker Pipeline's RegisterModel step.
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"{model_version} trained on {plan.dataset.dataset_version} ({plan.request.reason})",
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": image or plan.training_job["AlgorithmSpecification"]["TrainingImage"],
                    "ModelDataUrl": model_data_url,
                    "Environment": {"SAGEMAKER_PROGRAM": INFERENCE_ENTRY, "SAGEMAKER_SUBMIT_DIRECTORY": code},
                }
            ],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"{plan.comparison_uri}{COMPARISON_JSON}"}
            }
        },
        "CustomerMetadataProperties": properties,
    }


def _code_version(plan: TrainingPlan) -> str:
    # .../training/code/<sha256>/sourcedir.tar.gz
    return str(plan.training_job["HyperParameters"]["sagemaker_submit_directory"]).rstrip("/").split("/")[-2]


def conclude_training_run(
    plan: TrainingPlan,
    training_job: dict[str, Any],
    *,
    now: dt.datetime,
    settings: TrainingRunSettings,
    documents: JsonDocuments,
    registry: ModelRegistry,
    versions: ModelVersions,
    experiments: ExperimentLog,
    triggers: TrainingTriggers | None = None,
) -> TrainingOutcome:
    """training_job: DescribeTrainingJob of the finished job (what createTrainingJob.sync returns).
    With `triggers`, the run gives up the training slot: its training and comparison are done, and
    a review that may take days must not keep retraining from starting."""
    comparison = documents.read(f"{plan.comparison_uri}{COMPARISON_JSON}")
    if comparison is None:
        raise DomainError("the comparison job wrote no comparison.json")
    if triggers is not None:
        release_slot(plan.run_name, triggers)
    job_name = plan.training_job["TrainingJobName"]
    model_data_url = training_job.get("ModelArtifacts", {}).get("S3ModelArtifacts") or candidate_artifact(
        plan.training_job
    )
    model_version = str(comparison["candidate"]["model_version"])
    evidence_uri = f"s3://{settings.artifacts_bucket}/training/runs/{job_name}/evidence.json"
    passed = comparison.get("verdict") == PASSING_VERDICT
    automatic = (
        passed
        and settings.approval_policy == "auto-if-clearly-better"
        and plan.champion is not None
        and bool(comparison.get("clearly_better"))
    )
    evidence = {
        "run_name": plan.run_name,
        "request": plan.request.model_dump(mode="json"),
        "dataset": plan.dataset.model_dump(mode="json"),
        "champion": plan.champion.model_dump(mode="json") if plan.champion else None,
        "training_job": {
            "name": job_name,
            "arn": training_job.get("TrainingJobArn"),
            "final_metrics": {m["MetricName"]: m["Value"] for m in training_job.get("FinalMetricDataList", [])},
            "billable_seconds": training_job.get("BillableTimeInSeconds"),
        },
        "comparison": comparison,
        "previous_versions": _previous_versions(versions),
        "approval_policy": settings.approval_policy,
        "decided_at": now.isoformat(),
    }
    metrics = _headline(comparison.get("candidate"))
    experiments.record_run(
        job_name,
        parameters={
            "dataset_version": plan.dataset.dataset_version,
            "reason": plan.request.reason,
            "verdict": str(comparison.get("verdict")),
            **plan.training_job["HyperParameters"],
        },
        metrics={key: value for key, value in metrics.items() if value is not None},
        artifacts={
            "dataset": plan.dataset.table_uri,
            "model": model_data_url,
            "comparison": f"{plan.comparison_uri}{COMPARISON_JSON}",
            "evidence": evidence_uri,
        },
    )
    line = _metrics_line(comparison)
    if not passed:
        reasons = [str(reason) for reason in comparison.get("reasons", [])] or ["the comparison rejected it"]
        documents.write(evidence_uri, {**evidence, "decision": {"outcome": "rejected", "reasons": reasons}})
        versions.put_rejection(
            RejectedCandidate(
                run_name=plan.run_name,
                training_job=job_name,
                model_version=model_version,
                dataset_version=plan.dataset.dataset_version,
                rejected_at=now,
                reasons=reasons,
                evidence_uri=evidence_uri,
            )
        )
        return TrainingOutcome(
            run_name=plan.run_name,
            training_job=job_name,
            outcome="rejected",
            approval=None,
            package_version=None,
            package_arn=None,
            model_version=model_version,
            evidence_uri=evidence_uri,
            review_timeout_seconds=settings.review_timeout_seconds,
            subject=f"dxops {settings.dxops_environment}: candidate {model_version} rejected"[:100],
            message="\n".join(
                [f"Candidate {model_version} ({plan.run_name}) was rejected:", *reasons, line, evidence_uri]
            ),
        )
    status = "Approved" if automatic else "PendingManualApproval"
    documents.write(evidence_uri, {**evidence, "decision": {"outcome": "registered", "approval_status": status}})
    # A retry of this step (Lambda errors are retried) must not register the candidate twice.
    registered = versions.registration(job_name)
    package_arn, package_version = registered or registry.register(
        package_request(
            plan,
            model_data_url=model_data_url,
            model_version=model_version,
            code_version=_code_version(plan),
            status=status,
            evidence_uri=evidence_uri,
            comparison=comparison,
            group=settings.model_package_group,
            image=settings.inference_image_uri,
        )
    )
    versions.record_registration(job_name, package_arn, package_version)
    approval = None
    if automatic:
        difference = comparison.get("macro_f1_difference", {})
        approval = ApprovalRecord(
            package_version=package_version,
            status="Approved",
            decided_by=f"policy:{settings.approval_policy}",
            decided_via="policy",
            rationale=(
                "clearly better than the champion: macro-F1 difference "
                f"{_fmt(difference.get('estimate'))} [{_fmt(difference.get('low'))}, {_fmt(difference.get('high'))}]"
            ),
            decided_at=now,
        )
    versions.put_version(
        ModelVersionRecord(
            package_version=package_version,
            package_arn=package_arn,
            model_version=model_version,
            run_name=plan.run_name,
            training_job=job_name,
            dataset_version=plan.dataset.dataset_version,
            model_data_url=model_data_url,
            registered_at=now,
            metrics=metrics,
            evidence_uri=evidence_uri,
            approval_status=status,
            approval=approval,
        )
    )
    next_step = (
        "approved by policy: deployment starts"
        if automatic
        else f"awaits review: POST /models/{package_version}/approval "
        f"(or python -m tools.models approve {package_version})"
    )
    return TrainingOutcome(
        run_name=plan.run_name,
        training_job=job_name,
        outcome="registered",
        approval="automatic" if automatic else "manual",
        package_version=package_version,
        package_arn=package_arn,
        model_version=model_version,
        evidence_uri=evidence_uri,
        review_timeout_seconds=settings.review_timeout_seconds,
        subject=f"dxops {settings.dxops_environment}: model version {package_version} registered"[:100],
        message="\n".join(
            [
                f"Candidate {model_version} ({plan.run_name}) is model version {package_version}; {next_step}.",
                line,
                evidence_uri,
            ]
        ),
    )
