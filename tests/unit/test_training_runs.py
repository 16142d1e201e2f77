"""Training runs: what starts one, what it trains on, how its SageMaker jobs are asked for, and what
happens to the candidate (rejected with evidence, or registered pending review or approved by
policy). In-memory fakes, no AWS; tests/integration/test_model_lifecycle.py runs the happy paths
end to end on the local cloud."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from dxops.domain.errors import DomainError
from dxops.domain.training_guard import GuardPolicy
from dxops.domain.training_runs import (
    DatasetNotFound,
    NotEnoughData,
    TrainingCodeMissing,
    candidate_artifact,
    code_uri,
    conclude_training_run,
    prepare_training_run,
    resolve_dataset,
    run_name,
    start_training,
)
from dxops.schemas.datasets import DatasetManifest, PreviousVersion
from dxops.schemas.models import (
    ChampionRecord,
    ModelVersionRecord,
    TrainingOutcome,
    TrainingPlan,
    TrainingRequest,
)
from dxops.settings import TrainingRunSettings
from tests.fakes import (
    InMemoryExecutions,
    InMemoryJsonDocuments,
    InMemoryModelVersions,
    InMemoryRegistry,
    InMemoryTrainingTriggers,
    RecordingExperiments,
)
from tests.records import PATIENT_IDS

STARTED = dt.datetime(2026, 11, 27, 14, 3, 9, tzinfo=dt.UTC)
CONCLUDED = STARTED + dt.timedelta(minutes=23)
CURATED, ARTIFACTS, GROUP = "dxops-dev-curated", "dxops-dev-artifacts", "dxops-dev-diagnosis"
CODE_URI = f"s3://{ARTIFACTS}/training/code/"
CODE_SHA = hashlib.sha256(b"sourcedir.tar.gz of commit e09fd7e").hexdigest()
DATA_KEY = "arn:aws:kms:eu-west-1:123456789012:key/5b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5"
# The dxops images (containers/), pushed to the stack's account: by tag and by digest.
DXOPS_TRAINING_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dxops-training:e09fd7e"
DXOPS_INFERENCE_IMAGE = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/dxops-inference@sha256:{'7e8f90a1' * 8}"
VERSION, OLDER_VERSION = "v20261127T130000Z-0a1b2c3d", "v20261120T130000Z-9f8e7d6c"
CLASSES = {"ORPHA:558": 120, "ICD10:G40.9": 95, "ICD10:J45": 85}
CANDIDATE_MODEL, CHAMPION_MODEL = "7d2e9a10-0123456789ab-1c2d3e4f", "3f9c2ab1-0123456789ab-5e6f7a8b"
EVENT_ID = "5c1f7d2a-9b3e-4e8f-a0d1-6b2c3d4e5f60"


def training_settings(**environment: str) -> TrainingRunSettings:
    """The training functions' settings, parsed from their environment as in the Lambda."""
    return TrainingRunSettings.model_validate(
        {
            "DXOPS_ENVIRONMENT": "dev",
            "CURATED_BUCKET": CURATED,
            "ARTIFACTS_BUCKET": ARTIFACTS,
            "MODEL_VERSIONS_TABLE": "dxops-dev-model-versions",
            "MODEL_PACKAGE_GROUP": GROUP,
            "EXPERIMENT_NAME": "dxops-dev-diagnosis",
            "DATA_KEY_ARN": DATA_KEY,
            "TRAINING_IMAGE_URI": IMAGE,
            "TRAINING_CODE_URI": CODE_URI,
            "TRAINING_TRIGGERS_TABLE": "dxops-dev-training-triggers",
            **environment,
        }
    )


def dataset_ready(version: str | None = VERSION, trigger_id: str = EVENT_ID, **fields: Any) -> TrainingRequest:
    return TrainingRequest(
        reason="dataset-ready",
        requested_by="events:DatasetReady",
        trigger_id=trigger_id,
        dataset_version=version,
        **fields,
    )


def manual(trigger_id: str, **fields: Any) -> TrainingRequest:
    return TrainingRequest(
        reason="manual",
        requested_by="arn:aws:sts::123456789012:assumed-role/ml-engineer/dr-lee",
        trigger_id=trigger_id,
        **fields,
    )


def manifest_uri(version: str) -> str:
    return f"s3://{CURATED}/datasets/{version}/manifest.json"


def manifest(version: str, class_counts: dict[str, int]) -> dict[str, Any]:
    """datasets/<version>/manifest.json as the data-processing pipeline writes it."""
    prefix = f"s3://{CURATED}/datasets/{version}/"
    labelled = sum(class_counts.values())
    return DatasetManifest(
        dataset_version=version,
        created_at=STARTED - dt.timedelta(hours=1),
        content_hash="sha256:" + hashlib.sha256(version.encode()).hexdigest(),
        schema_version="1.0",
        table_uri=f"{prefix}table/",
        partition_keys=["source"],
        partitions=["source=site-a", "source=site-b"],
        rows={"curated": labelled + 40},
        class_counts=class_counts,
        label_status_counts={"confirmed": labelled},
        columns={"features": ["HP:0001250", "HP:0001263"], "labs": ["2345-7"]},
        sources_uri=f"{prefix}sources.json",
        source_objects=4,
        dq_status="pass",
        dq_ruleset="curated-v1",
        dq_report_uri=f"{prefix}dq_report.json",
        run_summary_uri=f"{prefix}run_summary.json",
        previous_version=None,
        pipeline={"execution": "raw-20261127T130000Z", "glue_job_run_id": "jr_0123abcd", "trigger": "raw-objects"},
    ).model_dump(mode="json")


def buckets(
    *versions: str, published: str | None = VERSION, class_counts: dict[str, int] | None = None, code: bool = True
) -> InMemoryJsonDocuments:
    """The curated bucket with these dataset versions (and the published pointer), and the published
    training code's pointer in the artifacts bucket."""
    documents = InMemoryJsonDocuments()
    for version in versions or (VERSION,):
        documents.write(manifest_uri(version), manifest(version, CLASSES if class_counts is None else class_counts))
    if published is not None:
        pointer = PreviousVersion(
            dataset_version=published,
            content_hash="sha256:" + hashlib.sha256(published.encode()).hexdigest(),
            row_count=340,
            manifest_uri=manifest_uri(published),
        )
        documents.write(f"s3://{CURATED}/datasets/published.json", pointer.model_dump(mode="json"))
    if code:
        documents.write(f"{CODE_URI}current.json", {"sha256": CODE_SHA, "published_at": "2026-11-26T09:00:00Z"})
    return documents


def summary(model_version: str, macro_f1: float, rare_recall: float, ece: float) -> dict[str, Any]:
    """One model's block of comparison.json (ml/compare.py evaluate)."""
    return {
        "model_version": model_version,
        "dataset_version": VERSION,
        "source": f"s3://{ARTIFACTS}/training/models/{model_version}/output/model.tar.gz",
        "macro_f1": macro_f1,
        "rare_recall": rare_recall,
        "ece": ece,
        "accuracy": 0.801,
        "top3_accuracy": 0.934,
        "intervals": {"macro_f1": [macro_f1 - 0.03, macro_f1 + 0.03]},
    }


def comparison(
    *, verdict: str = "pass", champion: bool = False, clearly_better: bool = False, reasons: tuple[str, ...] = ()
) -> dict[str, Any]:
    """comparison.json as ml/compare.py writes it."""
    return {
        "verdict": verdict,
        "clearly_better": clearly_better,
        "reasons": list(reasons),
        "warnings": [],
        "checks": [
            {
                "name": "macro_f1",
                "candidate": 0.712,
                "champion": 0.694 if champion else None,
                "tolerance": 0.01,
                "limit": 0.684 if champion else 0.5,
                "passed": verdict == "pass",
            }
        ],
        "candidate": summary(CANDIDATE_MODEL, 0.712, 0.655, 0.0413),
        "champion": summary(CHAMPION_MODEL, 0.694, 0.61, 0.05) if champion else None,
        "groups": {},
        "macro_f1_difference": (
            {"estimate": 0.018, "low": 0.004, "high": 0.031, "resamples": 1000, "confidence": 0.95, "seed": 7}
            if champion
            else {"estimate": None, "low": None, "high": None}
        ),
        "rows": {"held_out": 68, "evaluated": 68, "excluded_seen_by_champion": 0},
        "leakage_checked": True if champion else None,
        "tolerances": {"macro_f1": 0.01, "rare_recall": 0.02, "ece": 0.01},
        "seconds": 4.2,
    }


def described(plan: TrainingPlan) -> dict[str, Any]:
    """DescribeTrainingJob of the finished job, as createTrainingJob.sync hands it on."""
    name = plan.training_job["TrainingJobName"]
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{name}",
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": candidate_artifact(plan.training_job)},
        "FinalMetricDataList": [
            {"MetricName": "test_macro_f1", "Value": 0.712, "Timestamp": "2026-11-27T14:20:00Z"},
            {"MetricName": "test_ece", "Value": 0.0413, "Timestamp": "2026-11-27T14:20:00Z"},
        ],
        "BillableTimeInSeconds": 311,
    }


@dataclass
class Account:
    """What a training run reads and writes: buckets, registry, versions table, experiments."""

    settings: TrainingRunSettings = field(default_factory=training_settings)
    documents: InMemoryJsonDocuments = field(default_factory=buckets)
    registry: InMemoryRegistry = field(default_factory=InMemoryRegistry)
    versions: InMemoryModelVersions = field(default_factory=InMemoryModelVersions)
    experiments: RecordingExperiments = field(default_factory=RecordingExperiments)

    def prepare(self, request: TrainingRequest | None = None) -> TrainingPlan:
        request = request or dataset_ready()
        return prepare_training_run(
            request,
            name=run_name(request),
            now=STARTED,
            settings=self.settings,
            documents=self.documents,
            versions=self.versions,
        )

    def conclude(
        self, plan: TrainingPlan, compared: dict[str, Any] | None, job: dict[str, Any] | None = None
    ) -> TrainingOutcome:
        if compared is not None:
            self.documents.write(f"{plan.comparison_uri}comparison.json", compared)
        return conclude_training_run(
            plan,
            described(plan) if job is None else job,
            now=CONCLUDED,
            settings=self.settings,
            documents=self.documents,
            registry=self.registry,
            versions=self.versions,
            experiments=self.experiments,
        )

    def earlier_versions(self, count: int) -> None:
        """count approved versions registered before, the last one the champion."""
        for n in range(1, count + 1):
            arn, version = self.registry.register(
                {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved", "CustomerMetadataProperties": {}}
            )
            model_data = f"s3://{ARTIFACTS}/training/models/dxops-dev-2026110{n}-{n:08x}/output/model.tar.gz"
            self.versions.put_version(
                ModelVersionRecord(
                    package_version=version,
                    package_arn=arn,
                    model_version=f"model-{n}",
                    run_name=f"manual-run-{n}",
                    training_job=f"dxops-dev-2026110{n}-{n:08x}",
                    dataset_version=OLDER_VERSION,
                    model_data_url=model_data,
                    registered_at=STARTED - dt.timedelta(days=30 - n),
                    metrics={"macro_f1": round(0.6 + n / 100, 3), "ece": None},
                    evidence_uri=f"s3://{ARTIFACTS}/training/runs/job-{n}/evidence.json",
                    approval_status="Approved",
                )
            )
            self.versions.set_champion(
                ChampionRecord(
                    package_version=version,
                    package_arn=arn,
                    model_version=CHAMPION_MODEL,
                    model_data_url=model_data,
                    endpoint_config=f"dxops-dev-config-v{version}-0a1b2c3d",
                    since=STARTED - dt.timedelta(days=10 - n),
                    previous=list(range(1, version)),
                )
            )

    def evidence(self, outcome: TrainingOutcome) -> dict[str, Any]:
        document = self.documents.read(outcome.evidence_uri)
        assert document is not None, outcome.evidence_uri
        return dict(document)


# --- Which run a cause starts ----------------------------------------------------------------------------


def test_a_dataset_ready_run_is_named_after_its_dataset_version() -> None:
    assert run_name(dataset_ready()) == f"dataset-{VERSION}"
    # every delivery of the event names the same run, whatever its event id
    assert run_name(dataset_ready(trigger_id="another-delivery")) == f"dataset-{VERSION}"


@pytest.mark.parametrize(
    ("reason", "trigger_id", "name"),
    [
        ("schedule", "20261127T020000Z", "schedule-20261127T020000Z"),
        ("retraining-trigger", EVENT_ID, f"retrain-{EVENT_ID}"),
        ("manual", "retrain-after-review-0001", "manual-retrain-after-review-0001"),
    ],
)
def test_other_runs_are_named_after_their_trigger(reason: str, trigger_id: str, name: str) -> None:
    request = TrainingRequest.model_validate(
        {"reason": reason, "requested_by": "events:Scheduled Event", "trigger_id": trigger_id}
    )
    assert run_name(request) == name
    assert run_name(request.model_copy(update={"dataset_version": VERSION})) == name  # the trigger names it


def test_unsafe_characters_in_a_trigger_are_replaced_and_the_name_fits_step_functions() -> None:
    assert re.fullmatch(r"manual-nightly-2026-11-27-1-[0-9a-f]{12}", run_name(manual("nightly/2026:11 27#1")))
    long_name = run_name(manual("k" * 128))
    assert len(long_name) == 80 and re.fullmatch(r"[A-Za-z0-9_-]+", long_name)


def test_a_dataset_ready_request_without_its_dataset_version_is_refused() -> None:
    with pytest.raises(DomainError, match="dataset version"):
        run_name(dataset_ready(version=None))


@pytest.mark.parametrize(
    ("first", "second"),
    [("nightly.2026-11-27", "nightly:2026-11-27"), ("x" * 100 + "-first", "x" * 100 + "-second")],
)
def test_distinct_trigger_ids_start_distinct_runs(first: str, second: str) -> None:
    runs, triggers, policy = InMemoryExecutions(), InMemoryTrainingTriggers(), GuardPolicy(dt.timedelta(0), 10, 0)
    assert start_training(manual(first), runs=runs, triggers=triggers, policy=policy).outcome == "started"
    runs.finish(run_name(manual(first)))  # one training at a time
    assert start_training(manual(second), runs=runs, triggers=triggers, policy=policy).outcome == "started"


def test_the_same_request_twice_starts_one_run() -> None:
    runs, triggers = InMemoryExecutions(), InMemoryTrainingTriggers()
    request = dataset_ready()
    policy = GuardPolicy(dt.timedelta(hours=6), 2, 0)

    first = start_training(request, runs=runs, triggers=triggers, policy=policy)
    again = start_training(request, runs=runs, triggers=triggers, policy=policy)

    assert (first.run_name, first.outcome) == (f"dataset-{VERSION}", "started")
    assert (again.run_name, again.outcome) == (f"dataset-{VERSION}", "already-started")
    assert runs.starts == [f"dataset-{VERSION}"]
    assert TrainingRequest.model_validate(runs.input(f"dataset-{VERSION}")) == request


# --- What a run trains on ----------------------------------------------------------------------------------


def test_a_named_dataset_version_trains_on_its_own_manifest() -> None:
    documents = buckets(VERSION, OLDER_VERSION, published=VERSION)
    dataset = resolve_dataset(dataset_ready(OLDER_VERSION), CURATED, documents)
    assert dataset.dataset_version == OLDER_VERSION and dataset.manifest_uri == manifest_uri(OLDER_VERSION)
    assert dataset.table_uri == f"s3://{CURATED}/datasets/{OLDER_VERSION}/table/"
    assert (dataset.labelled_rows, dataset.classes) == (300, 3)


def test_without_a_named_version_the_published_one_is_used() -> None:
    documents = buckets(VERSION, OLDER_VERSION, published=OLDER_VERSION)
    dataset = resolve_dataset(manual("req-1"), CURATED, documents)
    assert dataset.dataset_version == OLDER_VERSION and dataset.manifest_uri == manifest_uri(OLDER_VERSION)


def test_no_published_version_is_refused() -> None:
    with pytest.raises(DatasetNotFound, match="no dataset version is published"):
        resolve_dataset(manual("req-1"), CURATED, buckets(published=None))


@pytest.mark.parametrize("request_", [dataset_ready("v20261201T000000Z-00000000"), manual("req-1")])
def test_a_version_without_a_manifest_is_refused(request_: TrainingRequest) -> None:
    documents = buckets(published="v20261201T000000Z-00000000")  # the pointer names a withdrawn version
    with pytest.raises(DatasetNotFound, match="has no manifest"):
        resolve_dataset(request_, CURATED, documents)


@pytest.mark.parametrize("class_counts", [{}, {"ORPHA:558": 300}, {"ORPHA:558": 300, "ICD10:J45": 0}])
def test_a_version_with_fewer_than_two_labelled_classes_cannot_train(class_counts: dict[str, int]) -> None:
    with pytest.raises(NotEnoughData, match=VERSION):
        resolve_dataset(dataset_ready(), CURATED, buckets(class_counts=class_counts))


def test_classes_without_rows_are_not_counted() -> None:
    documents = buckets(class_counts={"ORPHA:558": 30, "ICD10:J45": 12, "OMIM:154700": 0})
    dataset = resolve_dataset(dataset_ready(), CURATED, documents)
    assert (dataset.labelled_rows, dataset.classes) == (42, 2)


def test_the_published_training_code_is_its_content_addressed_folder() -> None:
    assert code_uri(CODE_URI, buckets()) == f"{CODE_URI}{CODE_SHA}/"


@pytest.mark.parametrize("pointer", [None, {}, {"published_at": "2026-11-26T09:00:00Z"}])
def test_without_published_training_code_nothing_trains(pointer: dict[str, Any] | None) -> None:
    documents = buckets(code=False)
    if pointer is not None:
        documents.write(f"{CODE_URI}current.json", pointer)
    with pytest.raises(TrainingCodeMissing, match="make deploy"):
        code_uri(CODE_URI, documents)
    with pytest.raises(TrainingCodeMissing):
        Account(documents=documents).prepare()


# --- The SageMaker jobs ----------------------------------------------------------------------------------


def test_hyperparameters_settings_then_request_then_the_runs_own() -> None:
    account = Account(
        settings=training_settings(TRAINING_HYPERPARAMETERS='{"folds": 5, "threads": 2, "candidates": "all"}')
    )
    request = dataset_ready(
        hyperparameters={"folds": "2", "dataset_version": OLDER_VERSION, "sagemaker_program": "other.py"}
    )

    hyperparameters = account.prepare(request).training_job["HyperParameters"]

    assert hyperparameters == {
        "folds": "2",  # the request's over the environment's
        "threads": "2",  # SageMaker takes strings only
        "candidates": "all",
        "dataset_version": VERSION,  # the run's own over anything asked
        "sagemaker_program": "dxops_train.py",
        "sagemaker_submit_directory": f"{CODE_URI}{CODE_SHA}/sourcedir.tar.gz",
    }


@pytest.mark.parametrize(("max_wait", "runtime", "expected"), [("28800", "14400", 28_800), ("3600", "7200", 7_200)])
def test_spot_training_may_wait_at_least_as_long_as_it_may_run(max_wait: str, runtime: str, expected: int) -> None:
    settings = training_settings(
        TRAINING_USE_SPOT="true", TRAINING_MAX_WAIT_SECONDS=max_wait, TRAINING_MAX_RUNTIME_SECONDS=runtime
    )
    job = Account(settings=settings).prepare().training_job
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": int(runtime), "MaxWaitTimeInSeconds": expected}
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{ARTIFACTS}/training/checkpoints/{job['TrainingJobName']}/"


def test_on_demand_training_has_no_wait_time() -> None:
    job = Account(settings=training_settings(TRAINING_MAX_WAIT_SECONDS="28800")).prepare().training_job
    assert job["EnableManagedSpotTraining"] is False
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 14_400}


def test_several_instances_shard_the_data_and_encrypt_the_traffic_between_them() -> None:
    several = Account(settings=training_settings(TRAINING_INSTANCE_COUNT="4")).prepare().training_job
    one = Account().prepare().training_job

    source = several["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert source["S3DataDistributionType"] == "ShardedByS3Key"
    assert source["S3Uri"] == f"s3://{CURATED}/datasets/{VERSION}/table/"
    assert several["ResourceConfig"]["InstanceCount"] == 4 and several["EnableInterContainerTrafficEncryption"]
    assert one["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"
    assert one["EnableInterContainerTrafficEncryption"] is False


def test_the_comparison_gets_a_champion_input_only_when_a_champion_serves() -> None:
    first = Account().prepare()
    account = Account()
    account.earlier_versions(2)
    challenger = account.prepare()

    def inputs(plan: TrainingPlan) -> dict[str, str]:
        return {i["InputName"]: i["S3Input"]["S3Uri"] for i in plan.comparison_job["ProcessingInputs"]}

    assert first.champion is None and set(inputs(first)) == {"code", "candidate", "data"}
    champion = account.versions.champion()
    assert challenger.champion is not None and challenger.champion.package_version == 2
    assert inputs(challenger) == {
        "code": f"{CODE_URI}{CODE_SHA}/source/",
        "candidate": candidate_artifact(challenger.training_job),
        "data": challenger.dataset.table_uri,
        "champion": champion.model_data_url,
    }


def test_gate_tolerances_become_the_comparisons_arguments() -> None:
    tolerances = '{"rare_recall_tolerance": 0.02, "macro_f1_tolerance": 0.01}'
    job = Account(settings=training_settings(GATE_TOLERANCES=tolerances)).prepare().comparison_job
    assert job["AppSpecification"]["ContainerArguments"] == [
        "--macro-f1-tolerance",
        "0.01",
        "--rare-recall-tolerance",
        "0.02",
    ]
    assert "ContainerArguments" not in Account().prepare().comparison_job["AppSpecification"]


def test_outputs_and_volumes_are_encrypted_with_the_data_key() -> None:
    plan = Account().prepare()
    training, compare = plan.training_job, plan.comparison_job
    assert training["OutputDataConfig"]["KmsKeyId"] == DATA_KEY
    assert training["ResourceConfig"]["VolumeKmsKeyId"] == DATA_KEY
    assert compare["ProcessingOutputConfig"]["KmsKeyId"] == DATA_KEY
    assert compare["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == DATA_KEY


SUBNETS, SECURITY_GROUPS = "subnet-0a1b2c3d4e5f60718,subnet-1b2c3d4e5f6071829", "sg-0123456789abcdef0"
IN_VPC = {"VPC_SUBNET_IDS": SUBNETS, "VPC_SECURITY_GROUP_IDS": SECURITY_GROUPS}
VPC_CONFIG = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": SUBNETS.split(",")}


def test_outside_a_vpc_the_jobs_name_no_network() -> None:
    # The template's default: VpcSubnetIds empty, joined into empty variables.
    plan = Account(settings=training_settings(VPC_SUBNET_IDS="", VPC_SECURITY_GROUP_IDS="")).prepare()
    assert "VpcConfig" not in plan.training_job
    assert plan.comparison_job["NetworkConfig"] == {"EnableNetworkIsolation": False}  # always there (the ASL names it)


def test_in_a_vpc_the_training_and_comparison_jobs_run_in_its_subnets() -> None:
    plan = Account(settings=training_settings(**IN_VPC, TRAINING_INSTANCE_COUNT="2")).prepare()
    assert plan.training_job["VpcConfig"] == VPC_CONFIG
    assert plan.training_job["EnableInterContainerTrafficEncryption"] is True  # several instances in the VPC
    assert plan.comparison_job["NetworkConfig"] == {"EnableNetworkIsolation": False, "VpcConfig": VPC_CONFIG}
    # Still KMS everywhere.
    assert plan.training_job["ResourceConfig"]["VolumeKmsKeyId"] == DATA_KEY


@pytest.mark.parametrize(
    "environment",
    [{"VPC_SUBNET_IDS": SUBNETS}, {"VPC_SECURITY_GROUP_IDS": SECURITY_GROUPS}],
    ids=["subnets-only", "security-groups-only"],
)
def test_subnets_and_security_groups_go_together(environment: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS go together"):
        training_settings(**environment)


def test_the_candidate_is_where_sagemaker_writes_it_and_a_retried_step_names_the_same_jobs() -> None:
    plan = Account().prepare()
    name = plan.training_job["TrainingJobName"]

    assert candidate_artifact(plan.training_job) == f"s3://{ARTIFACTS}/training/models/{name}/output/model.tar.gz"
    assert plan.comparison_job["ProcessingJobName"] == f"{name}-compare" and len(f"{name}-compare") <= 63
    assert plan.comparison_uri == f"s3://{ARTIFACTS}/training/runs/{name}/comparison/"
    assert plan.comparison_job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == plan.comparison_uri
    assert Account().prepare() == plan  # same run, same start: same jobs (a retry creates nothing new)
    assert Account().prepare(manual("req-2")).training_job["TrainingJobName"] != name


# --- The candidate's fate ----------------------------------------------------------------------------------


def test_a_rejected_candidate_is_recorded_with_its_reasons_and_evidence_and_nothing_is_registered() -> None:
    account = Account()
    account.earlier_versions(1)
    plan = account.prepare()
    reasons = ("macro-F1 0.402 is below 0.684 (the champion's 0.694 less the tolerance 0.01)",)

    outcome = account.conclude(plan, comparison(verdict="reject", champion=True, reasons=reasons))

    assert (outcome.outcome, outcome.approval, outcome.package_version) == ("rejected", None, None)
    assert outcome.model_version == CANDIDATE_MODEL and reasons[0] in outcome.message
    rejected = account.versions.rejections[f"dataset-{VERSION}"]
    assert rejected.reasons == list(reasons) and rejected.evidence_uri == outcome.evidence_uri
    assert rejected.training_job == plan.training_job["TrainingJobName"] and rejected.rejected_at == CONCLUDED
    evidence = account.evidence(outcome)
    assert evidence["decision"] == {"outcome": "rejected", "reasons": list(reasons)}
    assert evidence["comparison"]["verdict"] == "reject" and evidence["champion"]["package_version"] == 1
    assert len(account.registry.packages) == 1 and [v.package_version for v in account.versions.list_versions()] == [1]


def test_a_retried_conclusion_registers_the_candidate_once() -> None:
    account = Account()
    plan = account.prepare()
    first = account.conclude(plan, comparison())
    again = account.conclude(plan, comparison())  # the step retried after a Lambda service error

    assert (first.package_version, first.package_arn) == (again.package_version, again.package_arn)
    assert len(account.registry.packages) == 1


def test_a_rejection_without_reasons_still_says_why() -> None:
    account = Account()
    outcome = account.conclude(account.prepare(), comparison(verdict="reject"))
    assert account.versions.rejections[outcome.run_name].reasons == ["the comparison rejected it"]


def test_under_the_manual_policy_a_passing_candidate_waits_for_review() -> None:
    account = Account()
    account.earlier_versions(1)

    outcome = account.conclude(account.prepare(), comparison(champion=True, clearly_better=True))

    assert (outcome.outcome, outcome.approval, outcome.package_version) == ("registered", "manual", 2)
    assert account.registry.status(2) == "PendingManualApproval"
    record = account.versions.get(2)
    assert record is not None and record.approval_status == "PendingManualApproval" and record.approval is None
    assert "POST /models/2/approval" in outcome.message
    assert account.evidence(outcome)["decision"] == {
        "outcome": "registered",
        "approval_status": "PendingManualApproval",
    }


@pytest.mark.parametrize(
    ("champion", "clearly_better", "approved"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_the_automatic_policy_approves_only_a_candidate_clearly_better_than_a_champion(
    champion: bool, clearly_better: bool, approved: bool
) -> None:
    account = Account(settings=training_settings(APPROVAL_POLICY="auto-if-clearly-better"))
    if champion:
        account.earlier_versions(1)

    outcome = account.conclude(account.prepare(), comparison(champion=champion, clearly_better=clearly_better))

    version = outcome.package_version
    assert version is not None
    record = account.versions.get(version)
    assert record is not None
    if approved:
        assert outcome.approval == "automatic" and account.registry.status(version) == "Approved"
        assert record.approval_status == "Approved" and record.approval is not None
        assert record.approval.decided_via == "policy" and record.approval.decided_by == "policy:auto-if-clearly-better"
        assert record.approval.rationale.endswith("0.018 [0.004, 0.031]") and record.approval.decided_at == CONCLUDED
    else:
        assert outcome.approval == "manual" and account.registry.status(version) == "PendingManualApproval"
        assert record.approval_status == "PendingManualApproval" and record.approval is None


def test_the_registered_package_carries_its_lineage() -> None:
    account = Account()
    plan = account.prepare()

    outcome = account.conclude(plan, comparison())

    package = account.registry.describe(account.registry.arn(1))
    assert package["ModelPackageGroupName"] == GROUP
    properties = package["CustomerMetadataProperties"]
    assert properties["code_version"] == CODE_SHA  # the published code's sha256 folder
    assert {k: properties[k] for k in ("dataset_version", "training_job", "model_version", "evidence_uri")} == {
        "dataset_version": VERSION,
        "training_job": plan.training_job["TrainingJobName"],
        "model_version": CANDIDATE_MODEL,
        "evidence_uri": outcome.evidence_uri,
    }
    assert (properties["run_name"], properties["reason"]) == (f"dataset-{VERSION}", "dataset-ready")
    assert (properties["metric_macro_f1"], properties["metric_ece"]) == ("0.712", "0.041")
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri": f"{plan.comparison_uri}comparison.json",
    }
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == IMAGE and container["ModelDataUrl"] == candidate_artifact(plan.training_job)
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "dxops_inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": f"{CODE_URI}{CODE_SHA}/sourcedir.tar.gz",
    }
    record = account.versions.get(1)
    assert record is not None and record.model_data_url == container["ModelDataUrl"]
    assert record.metrics["macro_f1"] == 0.712 and record.evidence_uri == outcome.evidence_uri


@pytest.mark.parametrize(
    ("inference_image", "served_by"),
    [
        ("", DXOPS_TRAINING_IMAGE),  # the template's default: the training image serves as well
        (DXOPS_INFERENCE_IMAGE, DXOPS_INFERENCE_IMAGE),  # InferenceImageUri (containers/sagemaker, target inference)
    ],
)
def test_the_model_package_runs_the_inference_image_when_one_is_set(inference_image: str, served_by: str) -> None:
    environment = {"TRAINING_IMAGE_URI": DXOPS_TRAINING_IMAGE, "INFERENCE_IMAGE_URI": inference_image}
    account = Account(settings=training_settings(**environment))
    plan = account.prepare()

    account.conclude(plan, comparison())

    (container,) = account.registry.describe(account.registry.arn(1))["InferenceSpecification"]["Containers"]
    assert container["Image"] == served_by
    # Training and the comparison run the training image either way.
    assert plan.training_job["AlgorithmSpecification"]["TrainingImage"] == DXOPS_TRAINING_IMAGE
    assert plan.comparison_job["AppSpecification"]["ImageUri"] == DXOPS_TRAINING_IMAGE


def test_the_model_is_found_where_the_job_says_it_wrote_it() -> None:
    account = Account()
    plan = account.prepare()
    job = described(plan) | {"ModelArtifacts": {"S3ModelArtifacts": f"s3://{ARTIFACTS}/elsewhere/model.tar.gz"}}
    account.conclude(plan, comparison(), job)
    record = account.versions.get(1)
    assert record is not None and record.model_data_url == f"s3://{ARTIFACTS}/elsewhere/model.tar.gz"


def test_the_evidence_lists_at_most_five_previous_versions_newest_first() -> None:
    account = Account()
    account.earlier_versions(7)

    outcome = account.conclude(account.prepare(), comparison(champion=True))

    evidence = account.evidence(outcome)
    listed = evidence["previous_versions"]
    assert [v["package_version"] for v in listed] == [7, 6, 5, 4, 3]
    assert listed[0] == {
        "package_version": 7,
        "model_version": "model-7",
        "dataset_version": OLDER_VERSION,
        "approval_status": "Approved",
        "deployment_status": None,
        "metrics": {"macro_f1": 0.67, "ece": None},
    }
    assert evidence["training_job"]["final_metrics"] == {"test_macro_f1": 0.712, "test_ece": 0.0413}
    assert evidence["training_job"]["billable_seconds"] == 311 and evidence["approval_policy"] == "manual"


def test_a_run_without_its_comparison_is_an_error_and_records_nothing() -> None:
    account = Account()
    with pytest.raises(DomainError, match=r"comparison\.json"):
        account.conclude(account.prepare(), None)
    assert account.registry.packages == {} and account.versions.items == {} and account.experiments.runs == {}


@pytest.mark.parametrize("verdict", ["pass", "reject"])
def test_every_run_is_an_experiment_trial_with_its_parameters_metrics_and_artifacts(verdict: str) -> None:
    account = Account(settings=training_settings(TRAINING_HYPERPARAMETERS='{"folds": "2"}'))
    plan = account.prepare()
    compared = comparison(verdict=verdict, reasons=() if verdict == "pass" else ("ECE 0.2 is above 0.15",))
    compared["candidate"]["rare_recall"] = None  # no rare disease among the held-out rows

    outcome = account.conclude(plan, compared)

    trial = account.experiments.runs[plan.training_job["TrainingJobName"]]
    assert trial["parameters"] == {
        "dataset_version": VERSION,
        "reason": "dataset-ready",
        "verdict": verdict,
        **plan.training_job["HyperParameters"],
    }
    assert trial["metrics"] == {"macro_f1": 0.712, "ece": 0.0413, "accuracy": 0.801, "top3_accuracy": 0.934}
    assert trial["artifacts"] == {
        "dataset": plan.dataset.table_uri,
        "model": candidate_artifact(plan.training_job),
        "comparison": f"{plan.comparison_uri}comparison.json",
        "evidence": outcome.evidence_uri,
    }


@pytest.mark.parametrize("verdict", ["pass", "reject"])
def test_the_notification_never_names_a_patient(verdict: str) -> None:
    account = Account()
    account.earlier_versions(1)
    # A retraining trigger's evidence and the comparison's warnings are kept as evidence; neither is
    # notified (the notification goes to a mailing list).
    request = TrainingRequest(
        reason="retraining-trigger",
        requested_by="events:RetrainingTrigger",
        trigger_id=EVENT_ID,
        evidence={"drift": {"psi": 0.31, "examples": list(PATIENT_IDS)}},
    )
    compared = comparison(
        verdict=verdict, champion=True, reasons=() if verdict == "pass" else ("rare-disease recall 0.31 < 0.59",)
    )
    compared["warnings"] = [f"patient {PATIENT_IDS[1]} has rows in both splits"]

    outcome = account.conclude(account.prepare(request), compared)

    notification = json.dumps([outcome.subject, outcome.message])
    assert not any(patient in notification for patient in PATIENT_IDS)
    assert "macro_f1 0.712 (champion 0.694)" in outcome.message and outcome.evidence_uri in outcome.message
    assert len(outcome.subject) <= 100
