"""The training flow as a SageMaker Pipeline, built from the Step Functions flow's own step configuration
(docs/orchestration.md says which orchestrator to use where).

    python -m tools.sagemaker_pipeline definition [--out artifacts/pipeline/training-pipeline.json]
    python -m tools.sagemaker_pipeline definition --stack-name dxops-dev     the deployed stack's settings
    python -m tools.sagemaker_pipeline upsert --role-arn ARN [--stack-name dxops-dev]

Steps (the state machine's names where it has the step):
  CheckDatasetDrift    Processing  ml/monitor.py --data: the dataset version against the champion's
                                   training baseline (dxops has no SageMaker preprocessing: the data-processing
                                   state machine curates and gates the versions, ml/train.py splits them)
  TrainCandidate       Training    PrepareRun's CreateTrainingJob request
  CompareWithChampion  Processing  PrepareRun's CreateProcessingJob request of ml/compare.py
  PromotionGate        Condition   comparison.json's verdict is ConcludeRun's passing verdict
  RegisterCandidate    RegisterModel  ConcludeRun's CreateModelPackage request, PendingManualApproval
  CandidateRejected    Fail        the gate's first reason

The requests come from dxops.domain.training_runs.run_jobs and package_request, the functions the
Lambdas call, with placeholders where a pipeline execution decides (its parameters, its id, the
training step's outputs), then turned into pipeline variables. The settings are the PrepareRun
function's environment: with --stack-name, the deployed function's (and the published code version,
training/code/current.json); without, the template's (samconfig's --config-env overrides, the image URI
of tools/deploy_parameters.py), the stack's resources left as ${LogicalId} placeholders, as in the state
machines' DefinitionSubstitutions. `upsert` always reads the stack. --set NAME=VALUE overrides one of
the function's variables (TRAINING_INSTANCE_COUNT=4, TRAINING_USE_SPOT=true, GATE_TOLERANCES=...).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import shlex
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped,unused-ignore]

from dxops.adapters.s3 import S3JsonDocuments
from dxops.domain.dataset_versions import DATASETS_PREFIX, s3_uri
from dxops.domain.monitoring import MONITOR_ENTRY
from dxops.domain.processing_jobs import ProcessingJob, processing_input
from dxops.domain.training_runs import (
    COMPARISON_JSON,
    PASSING_VERDICT,
    candidate_artifact,
    code_uri,
    package_request,
    run_jobs,
)
from dxops.schemas.models import ChampionRef, DatasetRef, TrainingPlan, TrainingRequest
from dxops.settings import TrainingRunSettings
from localcloud.template import Physical, Resolver
from tools.deploy_parameters import resolve as deploy_time_parameters
from tools.deploy_parameters import samconfig

with warnings.catch_warnings():  # the SDK's modules raise SyntaxWarnings on import (3.13)
    warnings.simplefilter("ignore")
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterInteger, ParameterString
    from sagemaker.core.workflow.properties import Properties, PropertyFile
    from sagemaker.mlops.workflow import (
        CacheConfig,
        ConditionStep,
        ConfigurableRetryStep,
        FailStep,
        Pipeline,
        PipelineExperimentConfig,
        ProcessingStep,
        StepExceptionTypeEnum,
        StepRetryPolicy,
        StepTypeEnum,
        TrainingStep,
    )

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
DEFAULT_OUT = Path("artifacts/pipeline/training-pipeline.json")
PREPARE_FUNCTION = "PrepareTrainingRunFunction"  # its environment is the step configuration's settings
TRAINING_STATE_MACHINE = "TrainingStateMachine"  # its SageMakerRoleArn substitution: the jobs' role
CODE_VERSION_PLACEHOLDER = "${TrainingCodeVersion}"  # offline: training/code/current.json is the stack's

DRIFT, TRAIN, COMPARE, GATE, REGISTER, REJECTED = (
    "CheckDatasetDrift",
    "TrainCandidate",
    "CompareWithChampion",
    "PromotionGate",
    "RegisterCandidate",
    "CandidateRejected",
)
COMPARISON_FILE = "Comparison"  # the property file of comparison.json
PENDING = "PendingManualApproval"

# Placeholders in the domain's requests, replaced by pipeline variables: <<Name>>.
_TOKEN = re.compile(r"<<(\w+)>>")


def _token(name: str) -> str:
    return f"<<{name}>>"


DATASET_VERSION, CHAMPION, EXECUTION, JOB = (_token(n) for n in ("DatasetVersion", "Champion", "Execution", "Job"))
TRAINING_INSTANCE, PROCESSING_INSTANCE, VOLUME = (
    _token(n) for n in ("TrainingInstanceType", "ProcessingInstanceType", "VolumeSizeInGB")
)
GROUP, STATUS, MODEL_ARTIFACTS, MODEL_VERSION = (
    _token(n) for n in ("ModelPackageGroup", "ApprovalStatus", "ModelArtifacts", "ModelVersion")
)


# --- Settings: the PrepareRun function's environment -------------------------------------------------


@dataclass(frozen=True)
class StepConfiguration:
    """What the state machine's steps run with: PrepareRun's settings, the role its jobs run as and
    the published code version."""

    settings: TrainingRunSettings
    job_role_arn: str
    code_version: str


def _assignments(items: Sequence[str]) -> dict[str, str]:
    pairs = dict(item.split("=", 1) for item in items if "=" in item)
    if len(pairs) != len(items):
        raise SystemExit(f"expected NAME=VALUE: {', '.join(i for i in items if '=' not in i)}")
    return pairs


def template_configuration(
    config_env: str, region: str, overrides: Mapping[str, str] | None = None, template: Path = TEMPLATE
) -> StepConfiguration:
    """Offline: PrepareRun's environment as the template sets it, with the parameters of samconfig's
    environment and the deploy-time parameters; the stack's resources are ${LogicalId} placeholders."""
    sam = yaml_parse(template.read_text())
    declared = sam.get("Parameters", {})
    config = samconfig(config_env)
    parameters = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
    parameters |= _assignments(shlex.split(config.get("parameter_overrides", "")))
    parameters |= deploy_time_parameters(region, template)
    resolver = Resolver(
        parameters,
        pseudo={
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::AccountId": "${AWS::AccountId}",
            "AWS::StackName": config["stack_name"],
        },
        conditions=sam.get("Conditions", {}),
        list_parameters=frozenset(
            name
            for name, spec in declared.items()
            if spec.get("Type") == "CommaDelimitedList" or str(spec.get("Type", "")).startswith("List<")
        ),
    )
    resolver.physical = {
        name: Physical(ref=f"${{{name}}}", attributes={"Arn": f"${{{name}.Arn}}"}) for name in sam["Resources"]
    }
    variables = {
        **sam.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
        **sam["Resources"][PREPARE_FUNCTION]["Properties"]["Environment"]["Variables"],
    }
    environment = {name: str(value) for name, value in resolver.resolve(variables).items()}
    role = _job_role(sam)
    return StepConfiguration(
        settings=TrainingRunSettings.model_validate({**environment, **(overrides or {})}),
        job_role_arn=str(resolver.resolve(role)),
        code_version=CODE_VERSION_PLACEHOLDER,
    )


def _job_role(sam: Mapping[str, Any]) -> Any:
    """The training state machine's SageMakerRoleArn (an intrinsic function of the template)."""
    return sam["Resources"][TRAINING_STATE_MACHINE]["Properties"]["DefinitionSubstitutions"]["SageMakerRoleArn"]


def stack_configuration(
    stack_name: str, session: Any, overrides: Mapping[str, str] | None = None, template: Path = TEMPLATE
) -> StepConfiguration:
    """The deployed stack's: PrepareRun's environment, the jobs' role and the published code version."""
    cloudformation = session.client("cloudformation")

    def physical(logical_id: str) -> str:
        detail = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
        return str(detail["StackResourceDetail"]["PhysicalResourceId"])

    function = session.client("lambda").get_function_configuration(FunctionName=physical(PREPARE_FUNCTION))
    settings = TrainingRunSettings.model_validate({**function["Environment"]["Variables"], **(overrides or {})})
    role = _job_role(yaml_parse(template.read_text()))["Fn::GetAtt"]  # [<role>, "Arn"] or "<role>.Arn"
    logical_id = role[0] if isinstance(role, list) else str(role).split(".", 1)[0]
    role_arn = session.client("iam").get_role(RoleName=physical(logical_id))["Role"]["Arn"]
    folder = code_uri(settings.training_code_uri, S3JsonDocuments(session.client("s3")))
    return StepConfiguration(
        settings=settings, job_role_arn=str(role_arn), code_version=folder.rstrip("/").split("/")[-1]
    )


# --- The pipeline ---------------------------------------------------------------------------------------


class _RequestTrainingStep(TrainingStep):  # type: ignore[misc]
    """A TrainingStep whose arguments are a CreateTrainingJob request as given (v3's TrainingStep takes
    ModelTrainer.train()'s arguments only, which would rebuild the request from other settings)."""

    def __init__(self, name: str, request: dict[str, Any], **options: Any) -> None:
        super().__init__(name, **options)
        self._request = request

    @property
    def arguments(self) -> dict[str, Any]:
        return self._request


class _RequestProcessingStep(ProcessingStep):  # type: ignore[misc]
    """A ProcessingStep whose arguments are a CreateProcessingJob request as given."""

    def __init__(
        self,
        name: str,
        request: dict[str, Any],
        *,
        property_files: list[Any] | None = None,
        cache_config: Any = None,
        **options: Any,
    ) -> None:
        # ProcessingStep.__init__ insists on Processor.run()'s arguments: what it sets, set here.
        ConfigurableRetryStep.__init__(self, name, StepTypeEnum.PROCESSING, **options)
        self.step_args = None
        self.property_files = property_files or []
        self.cache_config = cache_config
        self._properties = Properties(step_name=name, step=self, shape_name="DescribeProcessingJobResponse")
        self._request = request

    @property
    def arguments(self) -> dict[str, Any]:
        return self._request


class _RegisterModelStep(ConfigurableRetryStep):  # type: ignore[misc]
    """Pipelines' RegisterModel step from a CreateModelPackage request (v3's ModelStep takes
    ModelBuilder.register()'s arguments only)."""

    def __init__(self, name: str, request: dict[str, Any], **options: Any) -> None:
        super().__init__(name, StepTypeEnum.REGISTER_MODEL, **options)
        self._request = request
        self._properties = Properties(step_name=name, step=self, shape_name="DescribeModelPackageOutput")

    @property
    def arguments(self) -> dict[str, Any]:
        return self._request

    @property
    def properties(self) -> Any:
        return self._properties


def _substituted(value: Any, whole: Mapping[str, Any], parts: Mapping[str, Any]) -> Any:
    """`value` with pipeline variables for the placeholders: a string that is one of `whole` becomes
    its variable; a string holding <<Name>> tokens the Join of its pieces (parts[<<Name>>])."""
    if isinstance(value, dict):
        return {key: _substituted(item, whole, parts) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, whole, parts) for item in value]
    if not isinstance(value, str):
        return value
    if value in whole:
        return whole[value]
    pieces = _TOKEN.split(value)
    if len(pieces) == 1:
        return value
    # split() keeps the tokens' names at the odd positions
    values = [parts[_token(piece)] if index % 2 else piece for index, piece in enumerate(pieces) if piece]
    return values[0] if len(values) == 1 else Join(on="", values=values)


def _step_request(request: dict[str, Any], name_field: str, role_arn: str) -> dict[str, Any]:
    """The job's request as a step's arguments: Pipelines names the job; the role is the stack's."""
    return {**{key: value for key, value in request.items() if key != name_field}, "RoleArn": role_arn}


def build_pipeline(
    configuration: StepConfiguration,
    *,
    session: Any,
    name: str | None = None,
    hyperparameters: Mapping[str, str] | None = None,
    cache_expire_after: str | None = None,
) -> Any:
    """The training Pipeline of `configuration` (a sagemaker.mlops.workflow.Pipeline)."""
    settings = configuration.settings
    name = name or f"dxops-{settings.dxops_environment}-training"
    dataset_version = ParameterString(name="DatasetVersion")  # required: a run names its data
    champion = ParameterString(name="ChampionModelDataUrl")  # required: the champion's model.tar.gz
    training_instance = ParameterString(name="TrainingInstanceType", default_value=settings.training_instance_type)
    processing_instance = ParameterString(
        name="ProcessingInstanceType", default_value=settings.comparison_instance_type
    )
    volume = ParameterInteger(name="VolumeSizeInGB", default_value=settings.training_volume_gb)
    group = ParameterString(name="ModelPackageGroupName", default_value=settings.model_package_group)
    # Approval is a reviewer's (in Studio's Model Registry: the API's needs ConcludeRun's record): an Approved
    # registration would deploy (the registry's Approved event starts the deployment state machine).
    status = ParameterString(name="ModelApprovalStatus", default_value=PENDING, enum_values=[PENDING])
    parameters = [dataset_version, champion, training_instance, processing_instance, volume, group, status]

    # The step configuration, from the functions PrepareRun and ConcludeRun call, with placeholders.
    per_run = settings.model_copy(
        update={
            "training_instance_type": TRAINING_INSTANCE,
            "comparison_instance_type": PROCESSING_INSTANCE,
            "training_volume_gb": VOLUME,
        }
    )
    request = TrainingRequest(
        reason="manual",
        requested_by=f"sagemaker-pipeline:{name}",
        trigger_id=name,
        hyperparameters=dict(hyperparameters or {}),
    )
    # Not validated: placeholders are no version ids. The table is where the version's manifest points
    # (dxops.domain.dataset_versions.publish_version).
    dataset = DatasetRef.model_construct(
        dataset_version=DATASET_VERSION,
        manifest_uri=s3_uri(settings.curated_bucket, f"{DATASETS_PREFIX}{DATASET_VERSION}/manifest.json"),
        table_uri=s3_uri(settings.curated_bucket, f"{DATASETS_PREFIX}{DATASET_VERSION}/table/"),
        labelled_rows=0,
        classes=0,
    )
    champion_ref = ChampionRef.model_construct(
        package_version=0, package_arn="", model_version="", model_data_url=CHAMPION
    )
    code = f"{settings.training_code_uri}{configuration.code_version}/"
    jobs = run_jobs(JOB, request=request, dataset=dataset, champion=champion_ref, code=code, settings=per_run)
    plan = TrainingPlan.model_construct(
        run_name=EXECUTION,
        request=request,
        dataset=dataset,
        champion=champion_ref,
        training_job=jobs.training_job,
        comparison_job=jobs.comparison_job,
        comparison_uri=jobs.comparison_uri,
        experiment_name=settings.experiment_name,
        prepared_at=dt.datetime.now(dt.UTC),  # not in the request
    )
    package = package_request(
        plan,
        model_data_url=MODEL_ARTIFACTS,
        model_version=MODEL_VERSION,
        code_version=configuration.code_version,
        status=STATUS,
        evidence_uri="",
        comparison={},  # its figures are the ModelMetrics (comparison.json), not properties here
        group=GROUP,
        image=settings.inference_image_uri,  # as ConcludeRun registers it
    )
    # ConcludeRun writes evidence.json; a pipeline's evidence is its execution.
    package["CustomerMetadataProperties"].pop("evidence_uri")
    drift = ProcessingJob(
        name=f"{JOB}-drift",
        entry_point=MONITOR_ENTRY,
        code_uri=code,
        inputs=[processing_input("model", CHAMPION), processing_input("data", dataset.table_uri)],
        output_name="monitoring",
        output_uri=f"s3://{settings.artifacts_bucket}/training/runs/{JOB}/dataset-drift/",
        environment={"DXOPS_DATASET_VERSION": DATASET_VERSION},
    ).request(per_run.processing_host)

    parts: dict[str, Any] = {
        DATASET_VERSION: dataset_version,
        CHAMPION: champion,
        TRAINING_INSTANCE: training_instance,
        PROCESSING_INSTANCE: processing_instance,
        VOLUME: volume,
        GROUP: group,
        STATUS: status,
        JOB: ExecutionVariables.PIPELINE_EXECUTION_ID,  # in paths, the run's job name stands for the run
        EXECUTION: ExecutionVariables.PIPELINE_EXECUTION_ID,
    }
    role = configuration.job_role_arn
    retry = [
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
            interval_seconds=10,
            backoff_rate=2.0,
            max_attempts=3,
        )
    ]
    cache = CacheConfig(enable_caching=True, expire_after=cache_expire_after) if cache_expire_after else None
    drift_step = _RequestProcessingStep(
        DRIFT,
        _substituted(_step_request(drift, "ProcessingJobName", role), {}, parts),
        description="ml/monitor.py --data: the dataset version's drift from the champion's training baseline",
        cache_config=cache,
        retry_policies=retry,
    )
    train = _RequestTrainingStep(
        TRAIN,
        _substituted(_step_request(jobs.training_job, "TrainingJobName", role), {}, parts),
        description="PrepareRun's CreateTrainingJob request (ml/train.py, script mode)",
        depends_on=[drift_step],
        cache_config=cache,
        retry_policies=retry,
    )
    trained = {
        candidate_artifact(jobs.training_job): train.properties.ModelArtifacts.S3ModelArtifacts,
        JOB: train.properties.TrainingJobName,
    }
    comparison_output = jobs.comparison_job["ProcessingOutputConfig"]["Outputs"][0]["OutputName"]
    comparison_file = PropertyFile(name=COMPARISON_FILE, output_name=comparison_output, path=COMPARISON_JSON)
    compare = _RequestProcessingStep(
        COMPARE,
        _substituted(_step_request(jobs.comparison_job, "ProcessingJobName", role), trained, parts),
        description="PrepareRun's CreateProcessingJob request of ml/compare.py: candidate against champion",
        property_files=[comparison_file],
        cache_config=cache,
        retry_policies=retry,
    )

    def comparison(path: str) -> Any:
        return JsonGet(step_name=compare.name, property_file=comparison_file, json_path=path)

    register = _RegisterModelStep(
        REGISTER,
        _substituted(
            package,
            {**trained, MODEL_ARTIFACTS: train.properties.ModelArtifacts.S3ModelArtifacts},
            {**parts, MODEL_VERSION: comparison("candidate.model_version")},
        ),
        description="ConcludeRun's CreateModelPackage request: the model package, pending a reviewer's approval",
        retry_policies=retry,
    )
    report = _substituted(package["CustomerMetadataProperties"]["comparison_report_uri"], {}, parts)
    rejected = FailStep(
        name=REJECTED,
        description="The candidate did not pass the promotion gate (ml/compare.py)",
        error_message=Join(
            on="",
            values=[
                "the promotion gate rejected the candidate: ",
                comparison("reasons[0]"),
                " (",
                *(report.values if isinstance(report, Join) else [report]),
                ")",
            ],
        ),
    )
    gate = ConditionStep(
        name=GATE,
        description="ConcludeRun's rule: the comparison's verdict (the gate's tolerances are ml/compare.py's flags)",
        conditions=[ConditionEquals(left=comparison("verdict"), right=PASSING_VERDICT)],
        if_steps=[register],
        else_steps=[rejected],
    )
    return Pipeline(
        name=name,
        parameters=parameters,
        # The runs are trials of the experiment the state machine's runs are recorded in.
        pipeline_experiment_config=PipelineExperimentConfig(
            settings.experiment_name, ExecutionVariables.PIPELINE_EXECUTION_ID
        ),
        steps=[drift_step, train, compare, gate],
        sagemaker_session=session,
    )


def definition(pipeline: Any) -> dict[str, Any]:
    """The pipeline's definition document (what CreatePipeline receives)."""
    document: dict[str, Any] = json.loads(pipeline.definition())
    return document


# --- CLI ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sagemaker_pipeline", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("definition", help="write the pipeline definition (offline without --stack-name)")
    write.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    upsert = commands.add_parser("upsert", help="create or update the pipeline in the stack's account")
    upsert.add_argument("--role-arn", required=True, help="the role SageMaker Pipelines runs the pipeline as")
    for command in (write, upsert):
        command.add_argument("--config-env", default="dev", help="samconfig.toml environment (default: dev)")
        command.add_argument("--stack-name", help="read the settings from this deployed stack")
        command.add_argument("--region", help="default: the samconfig environment's")
        command.add_argument("--pipeline-name", help="default: dxops-<environment>-training")
        command.add_argument("--job-role-arn", help="the role the jobs run as (default: the stack's SageMaker role)")
        command.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a PrepareRun variable")
        command.add_argument(
            "--hyperparameter", action="append", default=[], metavar="KEY=VALUE", help="as POST /trainings' own"
        )
        command.add_argument("--cache-expire-after", metavar="ISO8601", help="cache the job steps (e.g. P30D)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for logger in ("sagemaker", "sagemaker.config"):  # the SDK's notices ("Not applying SDK defaults ...")
        logging.getLogger(logger).setLevel(logging.WARNING)
    config = samconfig(args.config_env)
    region = args.region or config["region"]
    session = boto3.Session(region_name=region)
    overrides = _assignments(args.set)
    stack_name = args.stack_name or (config["stack_name"] if args.command == "upsert" else None)
    configuration = (
        stack_configuration(stack_name, session, overrides)
        if stack_name
        else template_configuration(args.config_env, region, overrides)
    )
    if args.job_role_arn:
        configuration = StepConfiguration(configuration.settings, args.job_role_arn, configuration.code_version)
    pipeline = build_pipeline(
        configuration,
        session=Session(boto_session=session),
        name=args.pipeline_name,
        hyperparameters=_assignments(args.hyperparameter),
        cache_expire_after=args.cache_expire_after,
    )
    if args.command == "definition":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(definition(pipeline), indent=2) + "\n", encoding="utf-8")
        print(args.out)
        return 0
    response = pipeline.upsert(
        role_arn=args.role_arn,
        description="dxops training flow (tools/sagemaker_pipeline.py; docs/orchestration.md)",
        tags=[
            {"Key": "Project", "Value": "dxops"},
            {"Key": "Environment", "Value": configuration.settings.dxops_environment},
        ],
    )
    print(response["PipelineArn"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
