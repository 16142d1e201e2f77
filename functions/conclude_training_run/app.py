"""Training step 3: read the comparison with the champion; record a rejected candidate, or register
the version (pending approval, or approved by the environment's policy), and record the experiment
trial, and give up the training slot (dxops.domain.training_runs.conclude_training_run). Invoked by
the training state machine."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.s3 import S3JsonDocuments
from dxops.adapters.sagemaker import SageMakerExperiments, SageMakerModelRegistry
from dxops.adapters.training_triggers import DynamoDbTrainingTriggers
from dxops.domain.training_runs import conclude_training_run
from dxops.observability import logger, metrics, tracer
from dxops.schemas.models import ConcludeTrainingRequest
from dxops.settings import TrainingRunSettings, load_settings

settings = load_settings(TrainingRunSettings)
documents = S3JsonDocuments()
versions = DynamoDbModelVersions(settings.model_versions_table)
registry = SageMakerModelRegistry()
experiments = SageMakerExperiments(settings.experiment_name)
triggers = DynamoDbTrainingTriggers(settings.training_triggers_table, dt.timedelta(days=400))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=ConcludeTrainingRequest)
def lambda_handler(event: ConcludeTrainingRequest, context: LambdaContext) -> dict[str, Any]:
    outcome = conclude_training_run(
        event.plan,
        event.training_job,
        now=dt.datetime.now(dt.UTC),
        settings=settings,
        documents=documents,
        registry=registry,
        versions=versions,
        experiments=experiments,
        triggers=triggers,
    )
    metrics.add_metric(
        name="CandidatesRegistered" if outcome.outcome == "registered" else "CandidatesRejected",
        unit=MetricUnit.Count,
        value=1,
    )
    logger.info(
        "training run concluded",
        extra={
            "run": outcome.run_name,
            "outcome": outcome.outcome,
            "approval": outcome.approval,
            "package_version": outcome.package_version,
            "model_version": outcome.model_version,
        },
    )
    return outcome.model_dump(mode="json")
