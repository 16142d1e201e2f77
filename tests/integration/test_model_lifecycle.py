"""The model lifecycle on the local cloud, end to end, with the real handlers, state machines,
training code, comparison job and model servers: DatasetReady -> training -> comparison with the
champion -> registration -> approval through the API -> blue/green deployment -> /predict.

One local cloud for the module (a training run takes about 20 s here): the first fixture makes the
champion, the tests after it build on the account it leaves.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest

from localcloud.cloud import LocalCloud
from tests.integration.api_events import load_event
from tests.integration.lifecycle import (
    LIFECYCLE_PARAMETERS,
    REVIEWER,
    announce,
    api_event,
    call,
    deployable_cloud,
    executions,
    publish_dataset,
    states_entered,
    version_id,
    wait_execution,
    wait_for,
)
from tests.records import PATIENT_IDS
from tests.unit.ml.tables import clinical_table

pytestmark = pytest.mark.integration
TRAINING, DEPLOYMENT = "TrainingStateMachineArn", "DeploymentStateMachineArn"


def models(cloud: LocalCloud) -> dict[int, dict[str, Any]]:
    code, body = call(cloud, "ModelsApiFunction", api_event("GET", "/models"))
    assert code == 200
    return {m["package_version"]: m for m in body}


def package(cloud: LocalCloud, version: int) -> dict[str, Any]:
    sagemaker = boto3.client("sagemaker")
    group = cloud.outputs["ModelPackageGroupName"]
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    arn = next(p["ModelPackageArn"] for p in listed if p["ModelPackageVersion"] == version)
    return dict(sagemaker.describe_model_package(ModelPackageName=arn))


def predict(cloud: LocalCloud) -> tuple[int, dict[str, Any]]:
    response = cloud.invoke("PredictApiFunction", load_event("predict_api/post_predict.json"))
    return int(response["statusCode"]), json.loads(response["body"])


def deployment_names(cloud: LocalCloud) -> list[str]:
    return [e["name"] for e in executions(cloud, DEPLOYMENT)]


def wait_pending(cloud: LocalCloud, version: int) -> dict[str, Any]:
    """The version once registered and its run waiting for the reviewer (task token stored)."""

    def waiting() -> dict[str, Any] | None:
        found = models(cloud).get(version)
        table = boto3.client("dynamodb")
        item = table.get_item(
            TableName=cloud.outputs["ModelVersionsTableName"], Key={"pk": {"S": f"version#{version}"}}
        ).get("Item", {})
        return found if found and "task_token" in item else None

    return dict(wait_for(waiting, 300, f"model version {version} to wait for review"))


def last_deployment(cloud: LocalCloud, before: list[str]) -> dict[str, Any]:
    name = wait_for(lambda: [n for n in deployment_names(cloud) if n not in before], 60, "a new deployment")[0]
    return wait_execution(cloud, DEPLOYMENT, name)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with deployable_cloud(LIFECYCLE_PARAMETERS) as local_cloud:
        yield local_cloud


@pytest.fixture(scope="module")
def champion(cloud: LocalCloud) -> dict[str, Any]:
    """DatasetReady (delivered twice) -> one training run -> version 1 waits for review -> approved
    through the API -> deployed; the version as GET /models/1 shows it."""
    version = version_id(1)
    detail = publish_dataset(cloud, version, clinical_table(300, seed=1))
    announce(detail)
    announce(detail)  # a duplicate delivery

    pending = wait_pending(cloud, 1)
    assert pending["approval_status"] == "PendingManualApproval" and pending["dataset_version"] == version
    assert package(cloud, 1)["ModelApprovalStatus"] == "PendingManualApproval"
    assert deployment_names(cloud) == []  # nothing deploys before the approval

    body = {"decision": "approve", "rationale": "Beats the floors; per-site recall reviewed."}
    code, approval = call(cloud, "ModelsApiFunction", api_event("POST", "/models/1/approval", body))
    assert code == 200 and approval["decided_by"] == REVIEWER and approval["status"] == "Approved"

    run = wait_execution(cloud, TRAINING, f"dataset-{version}")
    assert run["status"] == "SUCCEEDED" and states_entered(run["executionArn"])[-1] == "ApprovedByReviewer"
    deployment = last_deployment(cloud, [])
    assert deployment["status"] == "SUCCEEDED", states_entered(deployment["executionArn"])
    code, shown = call(cloud, "ModelsApiFunction", api_event("GET", "/models/1"))
    assert code == 200
    return dict(shown)


def test_duplicate_dataset_ready_events_start_one_training(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    assert [e["name"] for e in executions(cloud, TRAINING)] == [f"dataset-{version_id(1)}"]
    assert len(boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == 1


def test_the_approved_version_serves_predictions(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    assert champion["champion"] and champion["deployment_status"] == "serving"
    assert champion["approval"]["decided_by"] == REVIEWER and champion["approval"]["decided_via"] == "api"
    registered = package(cloud, 1)
    assert registered["ModelApprovalStatus"] == "Approved"
    properties = registered["CustomerMetadataProperties"]
    assert properties["dataset_version"] == version_id(1) and properties["model_version"] == champion["model_version"]
    assert properties["training_job"] == champion["training_job"] and properties["code_version"]

    code, answer = predict(cloud)

    assert code == 200, answer
    assert answer["model_version"] == champion["model_version"]
    prediction = answer["predictions"][0]
    assert prediction["diagnoses"] and prediction["prediction_id"].startswith(answer["request_id"])
    assert all(0 <= d["probability"] <= 1 for d in prediction["diagnoses"])


def test_an_ehr_gets_fhir_risk_assessments(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    from fhir.resources.R4B.bundle import Bundle

    event = load_event("predict_api/post_fhir_predict.json")
    sent = json.loads(event["body"])
    response = cloud.invoke("PredictApiFunction", event)

    assert response["statusCode"] == 200, response["body"]
    assert response["multiValueHeaders"]["Content-Type"] == ["application/fhir+json"]
    bundle = Bundle.model_validate_json(response["body"])  # valid FHIR, by the library's models
    encounters = [e["resource"] for e in sent["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert bundle.type == "collection" and len(bundle.entry) == len(encounters)
    [assessment] = [entry.resource for entry in bundle.entry]
    assert assessment.get_resource_type() == "RiskAssessment" and assessment.status == "final"
    assert assessment.subject.reference == encounters[0]["subject"]["reference"]
    assert assessment.encounter.reference == f"Encounter/{encounters[0]['id']}"
    assert assessment.method.coding[0].code == champion["model_version"]
    outcomes = [p.outcome.coding[0] for p in assessment.prediction]
    assert outcomes and all(c.system and c.code for c in outcomes)
    assert all(0 <= p.probabilityDecimal <= 1 for p in assessment.prediction)
    # the patient's identifiers went to the pseudonymisation only: not into the answer
    patient = next(e["resource"] for e in sent["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["identifier"][0]["value"] not in response["body"]


def test_the_run_is_recorded_with_its_evidence_and_as_an_experiment_trial(
    cloud: LocalCloud, champion: dict[str, Any]
) -> None:
    bucket, key = champion["evidence_uri"].removeprefix("s3://").split("/", 1)
    evidence = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert evidence["comparison"]["verdict"] == "pass" and evidence["comparison"]["champion"] is None
    assert evidence["dataset"]["dataset_version"] == version_id(1)
    assert evidence["training_job"]["final_metrics"]["test_macro_f1"] > 0
    component = boto3.client("sagemaker").describe_trial_component(
        TrialComponentName=f"{champion['training_job']}-evaluation"
    )
    assert component["Parameters"]["dataset_version"]["StringValue"] == version_id(1)
    assert {m["MetricName"] for m in component.get("Metrics", [])} >= {"macro_f1", "rare_recall", "ece"}


def test_package_changes_other_than_approval_deploy_nothing(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    before = deployment_names(cloud)
    arn = package(cloud, 1)["ModelPackageArn"]
    sagemaker = boto3.client("sagemaker")
    # Metadata-only updates of an approved package: the registry emits an event that still says
    # Approved (the deployment's own champion annotation already was one).
    sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"reviewed": "yes"})
    sagemaker.update_model_package(ModelPackageArn=arn, ApprovalDescription="re-read by audit")
    from localcloud import events

    events.flush()
    assert deployment_names(cloud) == before


def test_a_worse_candidate_is_rejected_with_its_evidence(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    table = clinical_table(300, seed=1)
    table["label"] = np.random.default_rng(0).permutation(table["label"].to_numpy())  # learns nothing
    version = version_id(2)
    announce(publish_dataset(cloud, version, table))

    run = wait_execution(cloud, TRAINING, f"dataset-{version}")

    assert run["status"] == "SUCCEEDED" and states_entered(run["executionArn"])[-1] == "CandidateRejected"
    assert set(models(cloud)) == {1}  # not registered
    item = boto3.client("dynamodb").get_item(
        TableName=cloud.outputs["ModelVersionsTableName"], Key={"pk": {"S": f"rejected#dataset-{version}"}}
    )["Item"]
    rejected = json.loads(item["doc"]["S"])
    assert any("macro-F1" in reason for reason in rejected["reasons"]), rejected["reasons"]
    code, answer = predict(cloud)
    assert code == 200 and answer["model_version"] == champion["model_version"]


def test_a_reviewer_rejection_ends_the_waiting_run(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    request = api_event("POST", "/trainings", {"dataset_version": version_id(1)})
    request["headers"]["Idempotency-Key"] = "retrain-after-review-0001"
    code, started = call(cloud, "ModelsApiFunction", request)
    assert code == 202 and started["started"] and started["run_name"] == "manual-retrain-after-review-0001"
    assert call(cloud, "ModelsApiFunction", request)[1]["started"] is False  # a retry starts nothing
    wait_pending(cloud, 2)
    before = deployment_names(cloud)

    body = {"decision": "reject", "rationale": "No gain over version 1 on the rare diseases."}
    code, decision = call(cloud, "ModelsApiFunction", api_event("POST", "/models/2/approval", body))

    assert code == 200 and decision["status"] == "Rejected"
    run = wait_execution(cloud, TRAINING, started["run_name"])
    assert run["status"] == "SUCCEEDED" and states_entered(run["executionArn"])[-1] == "RejectedByReviewer"
    assert package(cloud, 2)["ModelApprovalStatus"] == "Rejected"
    again = call(cloud, "ModelsApiFunction", api_event("POST", "/models/2/approval", {**body, "decision": "approve"}))
    assert again[0] == 409  # decided once
    assert deployment_names(cloud) == before


def _register_by_hand(cloud: LocalCloud, model_data_url: str, model_version: str) -> int:
    """An approved package registered outside the pipeline (as from SageMaker Studio)."""
    template = package(cloud, 1)
    container = template["InferenceSpecification"]["Containers"][0]
    arn = boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=cloud.outputs["ModelPackageGroupName"],
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            **template["InferenceSpecification"],
            "Containers": [{**container, "ModelDataUrl": model_data_url}],
        },
        CustomerMetadataProperties={"model_version": model_version},
    )["ModelPackageArn"]
    return int(boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelPackageVersion"])


def test_a_broken_model_fails_its_deployment_and_the_previous_version_keeps_serving(
    cloud: LocalCloud, champion: dict[str, Any]
) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b'{"not": "a model"}'
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    bucket = cloud.outputs["ArtifactsBucketName"]
    boto3.client("s3").put_object(Bucket=bucket, Key="training/models/broken/model.tar.gz", Body=archive.getvalue())
    before = deployment_names(cloud)

    broken = _register_by_hand(cloud, f"s3://{bucket}/training/models/broken/model.tar.gz", "broken-1")
    deployment = last_deployment(cloud, before)

    assert deployment["status"] == "FAILED" and deployment["error"] == "DeploymentFailed"
    assert "RolledBackBySageMaker" in states_entered(deployment["executionArn"])
    code, answer = predict(cloud)
    assert code == 200 and answer["model_version"] == champion["model_version"]
    item = boto3.client("dynamodb").get_item(
        TableName=cloud.outputs["ModelVersionsTableName"], Key={"pk": {"S": f"version#{broken}"}}
    )["Item"]
    assert item["deployment_status"]["S"] == "failed"


def test_an_endpoint_alarm_during_the_canary_rolls_the_update_back(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    """The template's error alarm in ALARM while the canary bakes: SageMaker's automatic rollback."""
    cloudwatch = boto3.client("cloudwatch")
    alarm = cloud.physical_id("EndpointErrorsAlarm")
    before = deployment_names(cloud)
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test: 5xx errors of the canary")
    try:
        _register_by_hand(
            cloud, package(cloud, 1)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"], "canary-1"
        )
        deployment = last_deployment(cloud, before)
    finally:
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test: over")

    assert deployment["status"] == "FAILED"
    assert "RolledBackBySageMaker" in states_entered(deployment["executionArn"])
    code, answer = predict(cloud)
    assert code == 200 and answer["model_version"] == champion["model_version"]


def test_rollback_by_one_api_call_restores_the_previous_version(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    before = deployment_names(cloud)
    newer = _register_by_hand(
        cloud, package(cloud, 1)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"], champion["model_version"]
    )
    assert last_deployment(cloud, before)["status"] == "SUCCEEDED"
    champion_item = boto3.client("dynamodb").get_item(
        TableName=cloud.outputs["ModelVersionsTableName"], Key={"pk": {"S": "champion"}}
    )["Item"]
    assert json.loads(champion_item["doc"]["S"])["package_version"] == newer

    before = deployment_names(cloud)
    code, rollback = call(cloud, "ModelsApiFunction", api_event("POST", "/models/rollback"))

    assert code == 202 and rollback == {"from_version": newer, "to_version": 1, "run_name": rollback["run_name"]}
    assert last_deployment(cloud, before)["status"] == "SUCCEEDED"
    assert models(cloud)[1]["champion"] and models(cloud)[1]["deployment_status"] == "serving"
    assert call(cloud, "ModelsApiFunction", api_event("POST", "/models/rollback"))[0] == 409  # nothing older left


def test_no_patient_identifier_reaches_the_lifecycle_records(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    table = boto3.client("dynamodb").scan(TableName=cloud.outputs["ModelVersionsTableName"])["Items"]
    stored = json.dumps(table)
    assert not any(patient in stored for patient in PATIENT_IDS)
