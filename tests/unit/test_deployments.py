"""Deployments: only a change to Approved deploys, once; the endpoint's requests per hosting mode;
the smoke test with real pseudonymised records; the champion and its rollback targets; rollback.
In-memory fakes, no AWS; tests/integration/test_model_lifecycle.py runs the happy paths end to end."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from dxops import SCHEMA_VERSION
from dxops.domain.deployments import (
    NothingToRollBackTo,
    SmokeTestFailed,
    SmokeTestUnavailable,
    VersionNotDeployable,
    deployment_run_name,
    prepare_deployment,
    roll_back,
    smoke_test,
    start_deployment_on_approval,
    verify_deployment,
)
from dxops.domain.prediction import EndpointUnavailable, ModelRefused
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.models import (
    ApprovalStatus,
    DeploymentPlan,
    DeploymentReason,
    DeploymentRequest,
    DeploymentResult,
    ModelPackageStateChange,
    ModelVersionRecord,
)
from dxops.settings import DeploymentSettings
from tests.fakes import (
    InMemoryExecutions,
    InMemoryModelVersions,
    InMemoryRegistry,
    ScriptedEndpoint,
    StaticSampleRecords,
    StubEndpointState,
)
from tests.records import PATIENT_IDS, clinical_record

NOW = dt.datetime(2026, 11, 27, 15, 40, 2, tzinfo=dt.UTC)
GROUP, ENDPOINT = "dxops-dev-diagnosis", "dxops-dev-diagnosis"
DATA_KEY = "arn:aws:kms:eu-west-1:123456789012:key/5b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
CAPTURE = "s3://dxops-dev-monitoring/capture/"
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5"
ALARMS = ["dxops-dev-endpoint-5xx", "dxops-dev-endpoint-latency"]
KEY = PseudonymKey(key_id="dev-2026-11", secret=b"test-secret-key-0123456789")


def deployment_settings(**environment: str) -> DeploymentSettings:
    """The deployment functions' settings, parsed from their environment as in the Lambda."""
    return DeploymentSettings.model_validate(
        {
            "DXOPS_ENVIRONMENT": "dev",
            "MODEL_VERSIONS_TABLE": "dxops-dev-model-versions",
            "ENDPOINT_NAME": ENDPOINT,
            "DATA_KEY_ARN": DATA_KEY,
            "CAPTURE_URI": CAPTURE,
            "RAW_BUCKET": "dxops-dev-raw",
            "INFERENCE_MODE": "instance",
            "INFERENCE_INSTANCE_COUNT": "2",
            "ROLLBACK_ALARMS": " , ".join(ALARMS),
            "BAKE_SECONDS": "300",
            **environment,
        }
    )


def model_version(package_version: int) -> str:
    return f"7d2e9a10-0123456789ab-{package_version:08x}"


def stored_records(count: int) -> list[dict[str, Any]]:
    """Raw-zone lines as ingestion stores them: pseudonymised clinical records."""
    lines = []
    for index in range(count):
        record = ClinicalRecord.model_validate(clinical_record(index))
        stored = PseudonymisedRecord.from_record(
            record,
            pseudonym=pseudonymise(KEY, record.source, record.patient_id),
            key_id=KEY.key_id,
            ingested_at=NOW - dt.timedelta(minutes=index),
            schema_version=SCHEMA_VERSION,
        )
        lines.append(stored.model_dump(mode="json"))
    return lines


def diagnosis(code: str, name: str | None, probability: float) -> dict[str, Any]:
    return {"disease_id": code, "name": name, "probability": probability}


def endpoint_answer(record_ids: list[str], version: str, diagnoses: list[dict[str, Any]] | None = None) -> bytes:
    """The endpoint's body as ml/inference.py answers it (explain false: no contributions). The
    ranking is the model's decision order, not always the order of the probabilities."""
    ranked = (
        [
            diagnosis("ICD10:G40.9", "Epilepsy, unspecified", 0.21),
            diagnosis("ORPHA:558", "Marfan syndrome", 0.62),
            diagnosis("OMIM:154700", None, 0.09),
        ]
        if diagnoses is None
        else diagnoses
    )
    predictions = [
        {
            "record_id": record_id,
            "diagnoses": ranked,
            "rare_candidates": [diagnosis("ORPHA:558", "Marfan syndrome", 0.48)],
            "contributions": [],
        }
        for record_id in record_ids
    ]
    return json.dumps({"model_version": version, "predictions": predictions}).encode()


@dataclass
class Account:
    registry: InMemoryRegistry = field(default_factory=InMemoryRegistry)
    versions: InMemoryModelVersions = field(default_factory=InMemoryModelVersions)
    deployments: InMemoryExecutions = field(default_factory=InMemoryExecutions)
    endpoint_state: StubEndpointState = field(default_factory=StubEndpointState)
    settings: DeploymentSettings = field(default_factory=deployment_settings)
    samples: StaticSampleRecords = field(default_factory=lambda: StaticSampleRecords(stored_records(8)))

    def register(self, status: ApprovalStatus = "Approved") -> int:
        """A version in the registry and the versions table, as conclude_training_run leaves it."""
        version = len(self.registry.packages) + 1
        job = f"dxops-dev-2026112{version}140309-{version:08x}"
        model_data = f"s3://dxops-dev-artifacts/training/models/{job}/output/model.tar.gz"
        arn, version = self.registry.register(
            {
                "ModelPackageGroupName": GROUP,
                "ModelApprovalStatus": status,
                "InferenceSpecification": {
                    "Containers": [
                        {
                            "Image": IMAGE,
                            "ModelDataUrl": model_data,
                            "Environment": {
                                "SAGEMAKER_PROGRAM": "dxops_inference.py",
                                "SAGEMAKER_SUBMIT_DIRECTORY": "s3://dxops-dev-artifacts/training/code/ab12/sourcedir.tar.gz",
                            },
                        }
                    ]
                },
                "CustomerMetadataProperties": {"model_version": model_version(version), "training_job": job},
            }
        )
        self.versions.put_version(
            ModelVersionRecord(
                package_version=version,
                package_arn=arn,
                model_version=model_version(version),
                run_name=f"manual-run-{version}",
                training_job=job,
                dataset_version="v20261127T130000Z-0a1b2c3d",
                model_data_url=model_data,
                registered_at=NOW - dt.timedelta(days=10 - version),
                metrics={"macro_f1": 0.7},
                evidence_uri=f"s3://dxops-dev-artifacts/training/runs/{job}/evidence.json",
                approval_status=status,
            )
        )
        return version

    def event(self, version: int, status: str, event_id: str, group: str = GROUP) -> str | None:
        """The registry's "SageMaker Model Package State Change" reaching the deployment trigger."""
        detail = ModelPackageStateChange.model_validate(
            {
                "ModelPackageGroupName": group,
                "ModelPackageName": f"{group}/{version}",
                "ModelPackageVersion": version,
                "ModelPackageArn": self.registry.arn(version),
                "ModelApprovalStatus": status,
                "ModelPackageStatus": "Completed",
                "CreationTime": 1795795569000,
            }
        )
        return start_deployment_on_approval(
            detail, event_id=event_id, group=GROUP, versions=self.versions, deployments=self.deployments
        )

    def request(self, version: int, reason: DeploymentReason = "approved") -> DeploymentRequest:
        return DeploymentRequest(
            package_version=version,
            package_arn=self.registry.arn(version),
            reason=reason,
            requested_by="events:model-package-approved"
            if reason == "approved"
            else "arn:aws:iam::123456789012:user/ops",
        )

    def plan(self, version: int, reason: DeploymentReason = "approved", run_name: str | None = None) -> DeploymentPlan:
        return prepare_deployment(
            self.request(version, reason),
            run_name=run_name or deployment_run_name(version, f"event-{version}-{reason}"),
            settings=self.settings,
            registry=self.registry,
            endpoint=self.endpoint_state,
            versions=self.versions,
        )

    def verify(self, plan: DeploymentPlan, endpoint: ScriptedEndpoint | None = None) -> DeploymentResult:
        if endpoint is None:
            ids = [line["record_id"] for line in self.samples.lines[: self.settings.smoke_records]]
            endpoint = ScriptedEndpoint(endpoint_answer(ids, plan.model_version))
        return verify_deployment(
            plan,
            now=NOW,
            settings=self.settings,
            endpoint=endpoint,
            samples=self.samples,
            versions=self.versions,
            registry=self.registry,
        )

    def deploy(self, version: int, reason: DeploymentReason = "approved") -> DeploymentResult:
        """One deployment run, prepared and verified; the endpoint then serves the new configuration."""
        plan = self.plan(version, reason)
        result = self.verify(plan)
        self.endpoint_state.configs[ENDPOINT] = plan.endpoint_config["EndpointConfigName"]
        return result

    def status(self, version: int) -> str | None:
        record = self.versions.get(version)
        assert record is not None
        return record.deployment_status

    def roll_back(self, trigger_id: str = "b1946ac9-2f0e-4c5d-8a3b-6e7f8091a2b3") -> tuple[int, int, str]:
        return roll_back(
            requested_by="arn:aws:iam::123456789012:user/ops",
            trigger_id=trigger_id,
            versions=self.versions,
            registry=self.registry,
            deployments=self.deployments,
        )


# --- From approval to a deployment run ---------------------------------------------------------------


def test_another_groups_packages_deploy_nothing() -> None:
    account = Account()
    version = account.register()
    assert account.event(version, "Approved", "evt-1", group="dxops-prod-diagnosis") is None
    assert account.deployments.starts == [] and account.versions.items[version].get("last_event_status") is None


def test_a_version_pending_review_deploys_nothing() -> None:
    account = Account()
    version = account.register(status="PendingManualApproval")
    assert account.event(version, "PendingManualApproval", "evt-registered") is None
    assert account.deployments.starts == []


def test_an_approval_starts_one_deployment_run_named_after_its_event() -> None:
    account = Account()
    version = account.register()

    run = account.event(version, "Approved", "evt-approved")

    assert run == deployment_run_name(version, "evt-approved")
    assert run == f"deploy-v{version}-{hashlib.sha256(b'evt-approved').hexdigest()[:12]}"
    assert account.deployments.starts == [run]
    assert DeploymentRequest.model_validate(account.deployments.input(run)) == DeploymentRequest(
        package_version=version,
        package_arn=account.registry.arn(version),
        reason="approved",
        requested_by="events:model-package-approved",
    )


def test_an_approved_packages_later_updates_start_no_new_run() -> None:
    account = Account()
    version = account.register()
    run = account.event(version, "Approved", "evt-approved")

    # the champion_since annotation, an audit's metadata, a redelivery: each still says Approved
    later = [account.event(version, "Approved", event) for event in ("evt-annotated", "evt-audit", "evt-approved")]

    assert later == [None, None, None] and account.deployments.starts == [run]  # started: forgotten


def test_approved_again_after_a_rejection_deploys_again() -> None:
    account = Account()
    version = account.register()
    first = account.event(version, "Approved", "evt-approved")
    assert account.event(version, "Rejected", "evt-rejected") is None

    second = account.event(version, "Approved", "evt-approved-again")

    assert second == deployment_run_name(version, "evt-approved-again") != first
    assert account.deployments.starts == [first, second]


def test_a_retry_after_a_crash_between_recording_and_starting_starts_the_remembered_run() -> None:
    account = Account()
    version = account.register()
    account.deployments.fail_next = TimeoutError("the function timed out after recording the status")
    with pytest.raises(TimeoutError):
        account.event(version, "Approved", "evt-approved")
    assert account.deployments.starts == []

    retried = account.event(version, "Approved", "evt-approved")  # EventBridge retries the delivery

    assert retried == deployment_run_name(version, "evt-approved") and account.deployments.starts == [retried]


def test_a_metadata_update_long_after_a_deployment_deploys_nothing() -> None:
    account = Account()
    first = account.register()
    first_run = account.event(first, "Approved", "evt-approved-1")
    account.deploy(first)
    second = account.register()
    second_run = account.event(second, "Approved", "evt-approved-2")
    account.deploy(second)
    assert first_run is not None
    account.deployments.forget(first_run)  # 90 days after it closed

    account.event(first, "Approved", "evt-audit-annotation")  # a metadata-only update of version 1

    assert account.deployments.starts == [first_run, second_run]


# --- The SageMaker requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_only_an_approved_package_is_deployed(status: ApprovalStatus) -> None:
    account = Account()
    version = account.register(status=status)
    with pytest.raises(VersionNotDeployable, match=status):
        account.plan(version)


def test_a_version_rejected_in_the_registry_after_its_approval_is_not_deployed() -> None:
    account = Account()
    version = account.register()
    account.registry.set_status(account.registry.arn(version), "Rejected", "Rejected by audit")
    with pytest.raises(VersionNotDeployable):
        account.plan(version)


def test_instance_hosting_captures_data_encrypts_and_rolls_out_blue_green_under_the_alarms() -> None:
    account = Account(settings=deployment_settings(INFERENCE_INSTANCE_TYPE="ml.c5.xlarge"))
    plan = account.plan(account.register())
    config = plan.endpoint_config
    (variant,) = config["ProductionVariants"]
    assert variant == {
        "VariantName": "AllTraffic",
        "ModelName": plan.model["ModelName"],
        "InitialVariantWeight": 1.0,
        "InstanceType": "ml.c5.xlarge",
        "InitialInstanceCount": 2,
    }
    assert config["KmsKeyId"] == DATA_KEY
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": CAPTURE,
        "KmsKeyId": DATA_KEY,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json", "application/jsonlines"]},
    }
    assert plan.deployment_config == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                "WaitIntervalInSeconds": 300,
            },
            "TerminationWaitInSeconds": 300,
            "MaximumExecutionTimeoutInSeconds": 1500,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
    }


def test_sampling_nothing_disables_capture_and_no_alarms_means_no_automatic_rollback() -> None:
    account = Account(settings=deployment_settings(CAPTURE_SAMPLING_PERCENT="0", ROLLBACK_ALARMS=""))
    plan = account.plan(account.register())
    capture = plan.endpoint_config["DataCaptureConfig"]
    assert (capture["EnableCapture"], capture["InitialSamplingPercentage"]) == (False, 0)
    assert "AutoRollbackConfiguration" not in plan.deployment_config
    assert plan.deployment_config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"


def test_serverless_hosting_takes_neither_a_volume_key_nor_data_capture_nor_blue_green() -> None:
    settings = deployment_settings(INFERENCE_MODE="serverless", SERVERLESS_MEMORY_MB="4096")
    account = Account(settings=settings)
    plan = account.plan(account.register())
    (variant,) = plan.endpoint_config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "KmsKeyId" not in plan.endpoint_config and "DataCaptureConfig" not in plan.endpoint_config
    assert plan.deployment_config == {}


VPC = {
    "VPC_SUBNET_IDS": "subnet-0a1b2c3d4e5f60718,subnet-1b2c3d4e5f6071829",
    "VPC_SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
}


def test_instance_hosting_runs_the_model_in_the_vpc_when_the_stack_has_one() -> None:
    account = Account(settings=deployment_settings(**VPC))
    plan = account.plan(account.register())
    assert plan.model["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0a1b2c3d4e5f60718", "subnet-1b2c3d4e5f6071829"],
    }
    outside = Account()
    assert "VpcConfig" not in outside.plan(outside.register()).model


def test_serverless_hosting_takes_no_vpc() -> None:
    # AWS refuses a VpcConfig for serverless endpoints: the model runs in SageMaker's network.
    account = Account(settings=deployment_settings(**VPC, INFERENCE_MODE="serverless"))
    assert "VpcConfig" not in account.plan(account.register()).model


def test_the_model_is_the_packages_container_and_version() -> None:
    account = Account()
    version = account.register()
    plan = account.plan(version)
    container = account.registry.describe(account.registry.arn(version))["InferenceSpecification"]["Containers"][0]
    assert plan.model["PrimaryContainer"] == container
    assert plan.model_version == model_version(version) and plan.endpoint_name == ENDPOINT
    assert plan.model["Tags"] == [{"Key": "dxops:package-version", "Value": str(version)}]
    assert plan.endpoint_config["ProductionVariants"][0]["ModelName"] == plan.model["ModelName"]


def test_a_first_deployment_creates_the_endpoint_and_a_later_one_updates_it() -> None:
    account = Account()
    first = account.plan(account.register())
    assert (first.endpoint_exists, first.previous_endpoint_config, first.previous_package_version) == (
        False,
        None,
        None,
    )
    account.deploy(1)

    second = account.plan(account.register())

    assert second.endpoint_exists and second.previous_endpoint_config == first.endpoint_config["EndpointConfigName"]
    assert second.previous_package_version == 1


def test_each_run_names_its_own_model_and_configuration_and_a_retry_the_same() -> None:
    account = Account()
    version = account.register()
    first = account.plan(version, run_name=deployment_run_name(version, "evt-approved"))
    retried = account.plan(version, run_name=deployment_run_name(version, "evt-approved"))
    again = account.plan(version, run_name=deployment_run_name(version, "evt-approved-again"))

    names = (first.model["ModelName"], first.endpoint_config["EndpointConfigName"])
    assert names == (retried.model["ModelName"], retried.endpoint_config["EndpointConfigName"])
    assert names[0] != again.model["ModelName"] and names[1] != again.endpoint_config["EndpointConfigName"]
    assert names[0].startswith(f"dxops-dev-model-v{version}-") and names[1].startswith(f"dxops-dev-config-v{version}-")
    assert all(len(name) <= 63 for name in names)  # SageMaker's limit


# --- The smoke test ----------------------------------------------------------------------------------


def smoke_plan() -> DeploymentPlan:
    account = Account()
    return account.plan(account.register())


def records_sent(endpoint: ScriptedEndpoint) -> list[dict[str, Any]]:
    (body,) = endpoint.sent
    return list(body["records"])


def test_the_smoke_test_passes_when_the_deployed_version_answers_every_record_sensibly() -> None:
    plan = smoke_plan()
    samples = StaticSampleRecords(stored_records(3))
    ids = ["rec-00000", "rec-00001", "rec-00002"]
    endpoint = ScriptedEndpoint(endpoint_answer(ids, plan.model_version))

    assert smoke_test(plan, endpoint, samples, 5) == 3

    assert samples.asked == [5] and endpoint.content_types == ["application/json"]
    (body,) = endpoint.sent
    assert (body["top_k"], body["explain"]) == (3, False)
    assert [r["record_id"] for r in body["records"]] == ids
    assert set(body["records"][0]) == {"record_id", "sex", "age_years", "phenotypes", "history", "labs", "vitals"}
    sent = json.dumps(body)
    assert not any(patient in sent for patient in PATIENT_IDS)
    assert not any(line["patient_pseudonym"] in sent for line in samples.lines)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (endpoint_answer(["rec-00000", "rec-00001"], model_version(9)), "serves 7d2e9a10-0123456789ab-00000009"),
        (endpoint_answer(["rec-00001", "rec-00000"], model_version(1)), "do not match the records"),
        (endpoint_answer(["rec-00000"], model_version(1)), "do not match the records"),
        (endpoint_answer(["rec-00000", "rec-00001"], model_version(1), []), "ranking is empty"),
        (
            endpoint_answer(["rec-00000", "rec-00001"], model_version(1), [diagnosis("ORPHA:558", None, 1.2)]),
            "unexpected format",
        ),
        (
            endpoint_answer(["rec-00000", "rec-00001"], model_version(1), [diagnosis("ORPHA:558", None, -0.01)]),
            "unexpected format",
        ),
        (b"<html>502 Bad Gateway</html>", "unexpected format"),
        (b'{"predictions": []}', "unexpected format"),
    ],
    ids=[
        "another-version",
        "reordered",
        "missing-record",
        "empty-ranking",
        "probability-above-1",
        "negative-probability",
        "not-json",
        "no-model-version",
    ],
)
def test_the_smoke_test_fails_on_an_answer_that_is_not_the_deployed_models(answer: bytes, why: str) -> None:
    plan = smoke_plan()
    with pytest.raises(SmokeTestFailed, match=why):
        smoke_test(plan, ScriptedEndpoint(answer), StaticSampleRecords(stored_records(2)), 5)


def test_the_smoke_test_fails_when_the_model_refuses_the_records() -> None:
    endpoint = ScriptedEndpoint(ModelRefused("records: expected 1 to 1000"))
    with pytest.raises(SmokeTestFailed, match="refused"):
        smoke_test(smoke_plan(), endpoint, StaticSampleRecords(stored_records(2)), 5)


def test_an_endpoint_that_cannot_answer_yet_is_retried_not_failed() -> None:
    endpoint = ScriptedEndpoint(EndpointUnavailable("throttled", "the endpoint is throttling"))
    with pytest.raises(SmokeTestUnavailable, match="could not answer"):  # the state machine retries it
        smoke_test(smoke_plan(), endpoint, StaticSampleRecords(stored_records(2)), 5)


def test_the_smoke_test_fails_without_stored_records_and_calls_nothing() -> None:
    endpoint = ScriptedEndpoint(endpoint_answer([], model_version(1)))
    with pytest.raises(SmokeTestFailed, match="no stored clinical record"):
        smoke_test(smoke_plan(), endpoint, StaticSampleRecords([]), 5)
    assert endpoint.bodies == []


def test_the_smoke_test_skips_lines_that_are_not_pseudonymised_records() -> None:
    plan = smoke_plan()
    stored = stored_records(3)
    older_schema = {**stored[1], "encounter_site_code": "A-17"}
    raw_record = clinical_record(7)  # a client's record, identity included: never a stored line
    samples = StaticSampleRecords([stored[0], older_schema, raw_record, stored[2]])
    endpoint = ScriptedEndpoint(endpoint_answer(["rec-00000", "rec-00002"], plan.model_version))

    assert smoke_test(plan, endpoint, samples, 5) == 2

    assert [r["record_id"] for r in records_sent(endpoint)] == ["rec-00000", "rec-00002"]
    assert PATIENT_IDS[7 % len(PATIENT_IDS)] not in endpoint.bodies[0].decode()


def test_a_smoke_test_where_only_unreadable_lines_are_stored_fails() -> None:
    endpoint = ScriptedEndpoint(endpoint_answer([], model_version(1)))
    with pytest.raises(SmokeTestFailed, match="no stored clinical record"):
        smoke_test(smoke_plan(), endpoint, StaticSampleRecords([clinical_record(0), {"record_id": "x"}]), 5)


# --- The champion ----------------------------------------------------------------------------------------


def test_the_first_version_to_pass_becomes_the_champion() -> None:
    account = Account()
    version = account.register()
    plan = account.plan(version)

    result = account.verify(plan)

    champion = account.versions.champion()
    assert champion is not None and (champion.package_version, champion.previous, champion.rolled_back) == (1, [], [])
    assert champion.model_version == model_version(1) and champion.since == NOW
    assert champion.endpoint_config == plan.endpoint_config["EndpointConfigName"]
    assert champion.model_data_url == plan.model["PrimaryContainer"]["ModelDataUrl"]
    assert account.status(version) == "serving"
    assert account.registry.annotations == [(account.registry.arn(1), {"champion_since": "2026-11-27T15:40:02+00:00"})]
    assert (result.package_version, result.smoke_records, result.champion_since) == (1, 5, NOW)
    assert account.samples.asked == [5]


def test_a_new_approved_version_retires_the_champion_into_the_rollback_targets() -> None:
    account = Account()
    for version in (1, 2, 3):
        account.register()
        account.deploy(version)

    champion = account.versions.champion()
    assert champion is not None and (champion.package_version, champion.previous) == (3, [1, 2])
    assert [account.status(v) for v in (1, 2, 3)] == ["retired", "retired", "serving"]


def test_a_rollback_marks_the_version_rolled_back_and_never_lists_it_as_a_target() -> None:
    account = Account()
    for version in (1, 2, 3):
        account.register()
        account.deploy(version)

    account.deploy(2, reason="rollback")

    champion = account.versions.champion()
    assert champion is not None
    assert (champion.package_version, champion.previous, champion.rolled_back) == (2, [1], [3])
    assert [account.status(v) for v in (1, 2, 3)] == ["retired", "serving", "rolled-back"]

    account.register()
    account.deploy(4)  # the next approved version: the rolled-back one stays out of the targets
    champion = account.versions.champion()
    assert champion is not None and (champion.previous, champion.rolled_back) == ([1, 2], [3])


def test_a_failed_smoke_test_crowns_nothing() -> None:
    account = Account()
    account.register()
    account.deploy(1)
    account.register()
    plan = account.plan(2)

    with pytest.raises(SmokeTestFailed):
        account.verify(plan, ScriptedEndpoint(endpoint_answer(["rec-00000"], model_version(1))))

    champion = account.versions.champion()
    assert champion is not None and champion.package_version == 1
    assert account.status(1) == "serving" and account.status(2) == "deploying"  # the run records its failure
    assert [arn for arn, _ in account.registry.annotations] == [account.registry.arn(1)]


def test_verifying_the_same_deployment_again_changes_nothing() -> None:
    account = Account()
    for version in (1, 2):
        account.register()
        account.deploy(version)
    champion = account.versions.champion()

    account.verify(account.plan(2))  # a retried step

    again = account.versions.champion()
    assert again is not None and champion is not None
    assert (again.previous, again.rolled_back) == (champion.previous, champion.rolled_back) == ([1], [])


# --- Rollback --------------------------------------------------------------------------------------------


def test_nothing_is_rolled_back_without_a_champion() -> None:
    account = Account()
    account.register()
    with pytest.raises(NothingToRollBackTo, match="no model version is deployed"):
        account.roll_back()
    assert account.deployments.starts == []


def test_rollback_deploys_the_most_recent_earlier_champion_in_a_run_of_its_own() -> None:
    account = Account()
    for version in (1, 2, 3):
        account.register()
        account.deploy(version)

    from_version, to_version, run = account.roll_back("b1946ac9-2f0e-4c5d-8a3b-6e7f8091a2b3")

    digest = hashlib.sha256(b"b1946ac9-2f0e-4c5d-8a3b-6e7f8091a2b3").hexdigest()[:8]
    assert (from_version, to_version, run) == (3, 2, f"rollback-v2-{digest}")
    assert DeploymentRequest.model_validate(account.deployments.input(run)) == DeploymentRequest(
        package_version=2,
        package_arn=account.registry.arn(2),
        reason="rollback",
        requested_by="arn:aws:iam::123456789012:user/ops",
    )
    assert account.roll_back("b1946ac9-2f0e-4c5d-8a3b-6e7f8091a2b3")[2] == run  # a retried request
    assert account.deployments.starts == [run]


@pytest.mark.parametrize("withdrawn", ["registry", "table", "unrecorded"])
def test_rollback_skips_earlier_champions_no_longer_approved(withdrawn: str) -> None:
    account = Account()
    for version in (1, 2, 3):
        account.register()
        account.deploy(version)
    if withdrawn == "registry":  # rejected since, in the console
        account.registry.set_status(account.registry.arn(2), "Rejected", "Rejected: a data issue")
    elif withdrawn == "table":
        record = account.versions.get(2)
        assert record is not None
        account.versions.put_version(record.model_copy(update={"approval_status": "Rejected"}))
    else:  # registered by hand: no document in the versions table
        del account.versions.items[2]["doc"]

    assert account.roll_back()[:2] == (3, 1)


def test_nothing_is_rolled_back_when_no_earlier_champion_is_still_approved() -> None:
    account = Account()
    for version in (1, 2):
        account.register()
        account.deploy(version)
    account.registry.set_status(account.registry.arn(1), "Rejected", "Rejected: a data issue")

    with pytest.raises(NothingToRollBackTo, match="from version 2"):
        account.roll_back()
    assert account.deployments.starts == []


def test_a_second_rollback_goes_further_back_never_to_the_rolled_back_version() -> None:
    account = Account()
    for version in (1, 2, 3):
        account.register()
        account.deploy(version)
    assert account.roll_back("first")[:2] == (3, 2)
    account.deploy(2, reason="rollback")

    assert account.roll_back("second")[:2] == (2, 1)
    account.deploy(1, reason="rollback")

    with pytest.raises(NothingToRollBackTo):
        account.roll_back("third")
    champion = account.versions.champion()
    assert champion is not None and (champion.previous, champion.rolled_back) == ([], [3, 2])
