"""tools/sagemaker_pipeline.py: the training flow as a SageMaker Pipeline definition, built from the step
configuration the Step Functions flow uses. Offline: no account, no credentials, every AWS call refused.

The SDK takes several seconds to import: it is imported once, by the module fixture, not at collection.
The equivalence tests resolve the definition's pipeline variables (parameters, the execution id, the
training step's outputs, the comparison's property file) with the values of one run and compare the
result with what PrepareRun and ConcludeRun ask SageMaker for in that run."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.client
import pytest

from dxops.domain.training_runs import COMPARISON_JSON, PASSING_VERDICT, candidate_artifact
from dxops.schemas.models import TrainingPlan
from dxops.settings import TrainingRunSettings
from tests.unit.test_training_runs import (
    ARTIFACTS,
    CANDIDATE_MODEL,
    CODE_SHA,
    CURATED,
    DATA_KEY,
    GROUP,
    IMAGE,
    VERSION,
    Account,
    comparison,
    manual,
    training_settings,
)

REGION = "eu-west-1"
JOB_ROLE = "arn:aws:iam::123456789012:role/dxops-dev-SageMakerExecutionRole-0A1B2C3D"
HYPERPARAMETERS = {"max_depth": "6", "imbalance": "focal"}
SPOT_VPC_DISTRIBUTED = {
    "TRAINING_USE_SPOT": "true",
    "TRAINING_INSTANCE_COUNT": "2",
    "TRAINING_INSTANCE_TYPE": "ml.c5.4xlarge",
    "TRAINING_VOLUME_GB": "80",
    "TRAINING_HYPERPARAMETERS": '{"n_estimators": 300}',
    "GATE_TOLERANCES": '{"rare_recall_tolerance": 0.03, "macro_f1_tolerance": 0.005}',
    "VPC_SUBNET_IDS": "subnet-0a1b2c3d4e5f60718,subnet-1b2c3d4e5f6071829",
    "VPC_SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
}
STEPS = {  # name -> type, in the order they run
    "CheckDatasetDrift": "Processing",
    "TrainCandidate": "Training",
    "CompareWithChampion": "Processing",
    "PromotionGate": "Condition",
    "RegisterCandidate": "RegisterModel",
    "CandidateRejected": "Fail",
}
COMPARISON_FILE = {"Get": "Steps.CompareWithChampion.PropertyFiles.Comparison"}


@pytest.fixture(scope="module")
def tool() -> Iterator[ModuleType]:
    """The module, with a region and no way to reach AWS."""

    def refused(self: Any, operation: str, params: Any) -> Any:
        raise AssertionError(f"an AWS call ({operation}) while building a definition offline")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setattr(botocore.client.BaseClient, "_make_api_call", refused)
        yield importlib.import_module("tools.sagemaker_pipeline")


Build = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def build(tool: ModuleType) -> Build:
    """settings, options -> the definition document of build_pipeline (one SDK session for the module)."""
    session = tool.Session(boto_session=boto3.Session(region_name=REGION))

    def definition(settings: TrainingRunSettings, **options: Any) -> dict[str, Any]:
        configuration = tool.StepConfiguration(settings=settings, job_role_arn=JOB_ROLE, code_version=CODE_SHA)
        document: dict[str, Any] = tool.definition(tool.build_pipeline(configuration, session=session, **options))
        return document

    return definition


def steps(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step by name, the condition's branches included (each with the condition it is under)."""
    found: dict[str, dict[str, Any]] = {}
    for step in document["Steps"]:
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            for branch in ("IfSteps", "ElseSteps"):
                for inner in step["Arguments"][branch]:
                    found[inner["Name"]] = {**inner, "Under": step["Name"]}
    return found


def upstream(step: dict[str, Any]) -> set[str]:
    """The steps a step waits for: DependsOn, the steps whose properties its arguments read, its condition."""
    own = step["Arguments"]["Conditions"] if step["Type"] == "Condition" else step["Arguments"]
    referenced = set(re.findall(r'"Steps\.(\w+)\.', json.dumps(own)))
    return referenced | set(step.get("DependsOn", [])) | ({step["Under"]} if "Under" in step else set())


def json_path(document: Any, path: str) -> Any:
    for part in re.findall(r"\w+|\[\d+\]", path):
        document = document[int(part[1:-1])] if part.startswith("[") else document[part]
    return document


def resolved(value: Any, variables: dict[str, Any], comparison_json: dict[str, Any] | None = None) -> Any:
    """The value a pipeline execution sees: Get, Std:Join and Std:JsonGet evaluated."""
    if isinstance(value, list):
        return [resolved(item, variables, comparison_json) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return variables[value["Get"]]
    if set(value) == {"Std:Join"}:
        join = value["Std:Join"]
        return join["On"].join(str(resolved(item, variables, comparison_json)) for item in join["Values"])
    if set(value) == {"Std:JsonGet"}:
        assert value["Std:JsonGet"]["PropertyFile"] == COMPARISON_FILE and comparison_json is not None
        return json_path(comparison_json, value["Std:JsonGet"]["Path"])
    return {key: resolved(item, variables, comparison_json) for key, item in value.items()}


def run_variables(plan: TrainingPlan) -> dict[str, Any]:
    """The pipeline variables of an execution on the plan's dataset version, champion and settings, its
    id standing for the plan's job name (which the state machine's paths hold)."""
    job = plan.training_job
    assert plan.champion is not None
    return {
        "Parameters.DatasetVersion": plan.dataset.dataset_version,
        "Parameters.ChampionModelDataUrl": plan.champion.model_data_url,
        "Parameters.TrainingInstanceType": job["ResourceConfig"]["InstanceType"],
        "Parameters.ProcessingInstanceType": plan.comparison_job["ProcessingResources"]["ClusterConfig"][
            "InstanceType"
        ],
        "Parameters.VolumeSizeInGB": job["ResourceConfig"]["VolumeSizeInGB"],
        "Parameters.ModelPackageGroupName": GROUP,
        "Parameters.ModelApprovalStatus": "PendingManualApproval",
        "Execution.PipelineExecutionId": job["TrainingJobName"],
        "Steps.TrainCandidate.TrainingJobName": job["TrainingJobName"],
        "Steps.TrainCandidate.ModelArtifacts.S3ModelArtifacts": candidate_artifact(job),
    }


def prepared(settings: TrainingRunSettings) -> tuple[Account, TrainingPlan]:
    """PrepareRun's plan of a run on VERSION against a champion, asked for by hand with hyperparameters."""
    account = Account(settings=settings)
    account.earlier_versions(1)
    plan = account.prepare(manual("studio-comparison", dataset_version=VERSION, hyperparameters=HYPERPARAMETERS))
    return account, plan


# --- Shape ------------------------------------------------------------------------------------------------


def test_the_steps_have_their_types_and_run_in_the_state_machines_order(build: Build) -> None:
    document = build(training_settings())
    found = steps(document)

    assert {name: step["Type"] for name, step in found.items()} == STEPS
    assert [step["Name"] for step in document["Steps"]] == list(STEPS)[:4]  # the branches are the gate's
    assert {name: upstream(step) for name, step in found.items()} == {
        "CheckDatasetDrift": set(),
        "TrainCandidate": {"CheckDatasetDrift"},
        "CompareWithChampion": {"TrainCandidate"},
        "PromotionGate": {"CompareWithChampion"},
        "RegisterCandidate": {"PromotionGate", "CompareWithChampion", "TrainCandidate"},
        "CandidateRejected": {"PromotionGate", "CompareWithChampion"},
    }
    gate = found["PromotionGate"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterCandidate"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["CandidateRejected"]
    assert "<<" not in json.dumps(document)  # every placeholder became a pipeline variable
    # The runs are trials of the experiment the state machine's runs are recorded in.
    assert document["PipelineExperimentConfig"] == {
        "ExperimentName": "dxops-dev-diagnosis",
        "TrialName": {"Get": "Execution.PipelineExecutionId"},
    }


def test_the_parameters_are_what_varies_per_run_with_the_settings_as_defaults(build: Build) -> None:
    settings = training_settings(TRAINING_INSTANCE_TYPE="ml.c5.4xlarge", COMPARISON_INSTANCE_TYPE="ml.m5.large")
    parameters = {p.pop("Name"): p for p in build(settings)["Parameters"]}

    assert parameters == {
        "DatasetVersion": {"Type": "String"},  # no default: an execution names its data and its champion
        "ChampionModelDataUrl": {"Type": "String"},
        "TrainingInstanceType": {"Type": "String", "DefaultValue": "ml.c5.4xlarge"},
        "ProcessingInstanceType": {"Type": "String", "DefaultValue": "ml.m5.large"},
        "VolumeSizeInGB": {"Type": "Integer", "DefaultValue": 30},
        "ModelPackageGroupName": {"Type": "String", "DefaultValue": GROUP},
        # A reviewer approves (Studio's Model Registry or the API): a start cannot register Approved.
        "ModelApprovalStatus": {
            "Type": "String",
            "DefaultValue": "PendingManualApproval",
            "EnumValues": ["PendingManualApproval"],
        },
    }


# --- The same step configuration as the state machine's ------------------------------------------------------


@pytest.mark.parametrize("environment", [{}, SPOT_VPC_DISTRIBUTED], ids=["defaults", "spot-vpc-distributed"])
def test_the_job_steps_are_prepare_runs_requests_for_the_same_inputs(build: Build, environment: dict[str, str]) -> None:
    settings = training_settings(**environment)
    _, plan = prepared(settings)
    found = steps(build(settings, hyperparameters=HYPERPARAMETERS))
    train, compare = found["TrainCandidate"]["Arguments"], found["CompareWithChampion"]["Arguments"]

    # As the state machine passes them on: the request, less the job's name (Pipelines names it), with
    # the role the template gives the jobs.
    variables = run_variables(plan)
    expected_training = {k: v for k, v in plan.training_job.items() if k != "TrainingJobName"}
    expected_comparison = {k: v for k, v in plan.comparison_job.items() if k != "ProcessingJobName"}
    assert resolved(train, variables) == {**expected_training, "RoleArn": JOB_ROLE}
    assert resolved(compare, variables) == {**expected_comparison, "RoleArn": JOB_ROLE}

    # Spelled out: what comes from the settings is in the definition as PrepareRun has it.
    job = plan.training_job
    assert train["AlgorithmSpecification"] == job["AlgorithmSpecification"]
    assert train["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert train["HyperParameters"] == {
        **job["HyperParameters"],
        "dataset_version": {"Get": "Parameters.DatasetVersion"},
    }
    assert train["HyperParameters"]["max_depth"] == "6"  # the request's own, as POST /trainings'
    assert train["StoppingCondition"] == job["StoppingCondition"]
    assert (
        train["OutputDataConfig"]
        == job["OutputDataConfig"]
        == {
            "S3OutputPath": f"s3://{ARTIFACTS}/training/models/",
            "KmsKeyId": DATA_KEY,
        }
    )
    assert train["ResourceConfig"] == {
        **job["ResourceConfig"],
        "InstanceType": {"Get": "Parameters.TrainingInstanceType"},
        "VolumeSizeInGB": {"Get": "Parameters.VolumeSizeInGB"},
    }
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == compare["ProcessingOutputConfig"]["KmsKeyId"] == DATA_KEY
    assert train["EnableManagedSpotTraining"] is job["EnableManagedSpotTraining"]
    assert train.get("VpcConfig") == job.get("VpcConfig")
    assert compare["AppSpecification"] == plan.comparison_job["AppSpecification"]  # the gate's tolerances
    assert compare["ProcessingInputs"][1]["S3Input"]["S3Uri"] == {
        "Get": "Steps.TrainCandidate.ModelArtifacts.S3ModelArtifacts"
    }


def test_a_distributed_definition_shards_the_data_as_prepare_run_does(build: Build) -> None:
    # The instance count decides the data distribution and the traffic encryption: not a parameter.
    train = steps(build(training_settings(TRAINING_INSTANCE_COUNT="3")))["TrainCandidate"]["Arguments"]

    assert train["ResourceConfig"]["InstanceCount"] == 3
    assert train["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert train["EnableInterContainerTrafficEncryption"] is True


def test_the_drift_check_runs_ml_monitor_on_the_dataset_version_against_the_champion(build: Build) -> None:
    drift = steps(build(training_settings()))["CheckDatasetDrift"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in drift["ProcessingInputs"]}

    assert drift["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/dxops_monitor.py",
    ]
    assert inputs == {
        "code": f"s3://{ARTIFACTS}/training/code/{CODE_SHA}/source/",
        "model": {"Get": "Parameters.ChampionModelDataUrl"},
        "data": {
            "Std:Join": {
                "On": "",
                "Values": [f"s3://{CURATED}/datasets/", {"Get": "Parameters.DatasetVersion"}, "/table/"],
            }
        },
    }
    assert drift["ProcessingOutputConfig"]["KmsKeyId"] == DATA_KEY


# --- The gate and the registration: ConcludeRun's ----------------------------------------------------------


def test_the_gate_is_conclude_runs_rule_on_the_comparisons_property_file(build: Build) -> None:
    found = steps(build(training_settings()))
    (condition,) = found["PromotionGate"]["Arguments"]["Conditions"]

    assert found["CompareWithChampion"]["PropertyFiles"] == [
        {"PropertyFileName": "Comparison", "OutputName": "comparison", "FilePath": COMPARISON_JSON}
    ]
    assert condition == {
        "Type": "Equals",
        "LeftValue": {"Std:JsonGet": {"PropertyFile": COMPARISON_FILE, "Path": "verdict"}},
        "RightValue": PASSING_VERDICT,
    }


@pytest.mark.parametrize("verdict", ["pass", "reject"])
def test_the_gate_decides_as_conclude_run_does(build: Build, verdict: str) -> None:
    account, plan = prepared(training_settings())
    compared = comparison(verdict=verdict, champion=True, reasons=() if verdict == "pass" else ("macro_f1 below",))
    (condition,) = steps(build(account.settings))["PromotionGate"]["Arguments"]["Conditions"]

    registers = resolved(condition["LeftValue"], {}, compared) == condition["RightValue"]

    assert registers is (account.conclude(plan, compared).outcome == "registered")


def test_registration_is_conclude_runs_package_request_pending_manual_approval(build: Build) -> None:
    account, plan = prepared(training_settings())
    compared = comparison(champion=True)
    outcome = account.conclude(plan, compared)
    assert outcome.package_arn is not None and outcome.approval == "manual"
    registered = account.registry.packages[outcome.package_arn]
    register = steps(build(account.settings))["RegisterCandidate"]["Arguments"]

    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert register["ModelPackageGroupName"] == {"Get": "Parameters.ModelPackageGroupName"}
    package = resolved(register, run_variables(plan), compared)
    assert package["ModelApprovalStatus"] == registered["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelPackageGroupName"] == GROUP
    for field in ("ModelPackageDescription", "InferenceSpecification", "ModelMetrics"):
        assert package[field] == registered[field], field
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == f"{plan.comparison_uri}{COMPARISON_JSON}"
    # Lineage as ConcludeRun records it, less what only the state machine writes: its evidence.json, its
    # run's name (here the execution) and the metrics (they are in ModelMetrics).
    properties = registered["CustomerMetadataProperties"]
    assert package["CustomerMetadataProperties"] == {
        key: value
        for key, value in properties.items()
        if key not in {"evidence_uri", "run_name"} and not key.startswith("metric_")
    } | {"run_name": plan.training_job["TrainingJobName"]}
    assert package["CustomerMetadataProperties"]["model_version"] == CANDIDATE_MODEL  # what the deployment reads


def test_a_rejection_fails_the_execution_with_the_gates_first_reason(build: Build) -> None:
    _, plan = prepared(training_settings())
    rejected = steps(build(training_settings()))["CandidateRejected"]["Arguments"]
    compared = comparison(verdict="reject", champion=True, reasons=("rare_recall 0.58 below the champion's",))

    assert resolved(rejected["ErrorMessage"], run_variables(plan), compared) == (
        "the promotion gate rejected the candidate: rare_recall 0.58 below the champion's "
        f"({plan.comparison_uri}comparison.md)"
    )


# --- CLI ----------------------------------------------------------------------------------------------------


def test_the_cli_writes_the_definition_offline_from_the_template(tool: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "pipeline" / "training-pipeline.json"

    assert tool.main(["definition", "--out", str(out), "--set", "TRAINING_INSTANCE_COUNT=2"]) == 0

    document = json.loads(out.read_text())
    found = steps(document)
    assert {name: step["Type"] for name, step in found.items()} == STEPS
    train = found["TrainCandidate"]["Arguments"]
    # The template's settings: the deploy-time image, the stack's resources as placeholders.
    from tools.deploy_parameters import training_image_uri

    assert train["AlgorithmSpecification"]["TrainingImage"] == training_image_uri(REGION)
    assert train["OutputDataConfig"] == {
        "S3OutputPath": "s3://${ArtifactsBucket}/training/models/",
        "KmsKeyId": "${DataKey.Arn}",
    }
    assert train["RoleArn"] == "${SageMakerExecutionRole.Arn}"
    assert train["ResourceConfig"]["InstanceCount"] == 2
    assert train["HyperParameters"]["sagemaker_submit_directory"] == (
        "s3://${ArtifactsBucket}/training/code/${TrainingCodeVersion}/sourcedir.tar.gz"
    )
    assert {p["Name"]: p.get("DefaultValue") for p in document["Parameters"]}["ModelPackageGroupName"] == GROUP


def test_the_default_definition_path_is_under_artifacts_pipeline(tool: ModuleType) -> None:
    assert Path("artifacts/pipeline/training-pipeline.json") == tool.DEFAULT_OUT
