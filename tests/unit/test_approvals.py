"""The approval gate: a reviewer decides a registered version once, the registry and the waiting
training run follow; a review that times out rejects the version. In-memory fakes, no AWS.

The contract tests at the end run the same scenarios against the DynamoDB adapter of the model
versions table (on moto) and against tests.fakes.InMemoryModelVersions, so the fake cannot drift
from what the adapter's conditional updates do."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.ports import ModelVersions
from dxops.domain.approvals import (
    REJECTED_ERROR,
    NotPending,
    VersionNotFound,
    decide_approval,
    expire_approval,
    request_approval,
)
from dxops.domain.errors import DomainError
from dxops.schemas.models import (
    ApprovalDecisionBody,
    ApprovalRecord,
    ApprovalStatus,
    ApprovalTask,
    ChampionRecord,
    ModelVersionRecord,
    TrainingOutcome,
)
from tests.fakes import InMemoryModelVersions, InMemoryRegistry, RecordingTaskTokens

REGISTERED = dt.datetime(2026, 11, 27, 14, 26, 9, tzinfo=dt.UTC)
DECIDED = REGISTERED + dt.timedelta(hours=5)
REVIEWER = "arn:aws:sts::123456789012:assumed-role/ml-reviewer/dr-lee"
OTHER_REVIEWER = "arn:aws:sts::123456789012:assumed-role/ml-reviewer/dr-okafor"
GROUP = "dxops-dev-diagnosis"
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAd3kXv6W1sMRAP5vT0EXAMPLE+task/token=="
APPROVE = ApprovalDecisionBody(decision="approve", rationale="Beats the floors; per-site recall reviewed.")
REJECT = ApprovalDecisionBody(decision="reject", rationale="No gain over version 1 on the rare diseases.")


def version_record(version: int, arn: str, status: ApprovalStatus = "PendingManualApproval") -> ModelVersionRecord:
    job = f"dxops-dev-20261127140309-{version:08x}"
    approval = None
    if status == "Approved":  # registered approved: only the policy does that
        approval = ApprovalRecord(
            package_version=version,
            status="Approved",
            decided_by="policy:auto-if-clearly-better",
            decided_via="policy",
            rationale="clearly better than the champion: macro-F1 difference 0.018 [0.004, 0.031]",
            decided_at=REGISTERED,
        )
    return ModelVersionRecord(
        package_version=version,
        package_arn=arn,
        model_version=f"7d2e9a10-0123456789ab-{version:08x}",
        run_name="dataset-v20261127T130000Z-0a1b2c3d",
        training_job=job,
        dataset_version="v20261127T130000Z-0a1b2c3d",
        model_data_url=f"s3://dxops-dev-artifacts/training/models/{job}/output/model.tar.gz",
        registered_at=REGISTERED,
        metrics={"macro_f1": 0.712, "rare_recall": 0.655, "ece": 0.041},
        evidence_uri=f"s3://dxops-dev-artifacts/training/runs/{job}/evidence.json",
        approval_status=status,
        approval=approval,
    )


@dataclass
class Account:
    registry: InMemoryRegistry = field(default_factory=InMemoryRegistry)
    versions: InMemoryModelVersions = field(default_factory=InMemoryModelVersions)
    tokens: RecordingTaskTokens = field(default_factory=RecordingTaskTokens)

    def register(self, status: ApprovalStatus = "PendingManualApproval") -> int:
        """A version as conclude_training_run leaves it: in the registry and in the versions table."""
        arn, version = self.registry.register({"ModelPackageGroupName": GROUP, "ModelApprovalStatus": status})
        self.versions.put_version(version_record(version, arn, status))
        return version

    def decide(self, version: int, body: ApprovalDecisionBody, reviewer: str = REVIEWER) -> ApprovalRecord:
        return decide_approval(
            version,
            body,
            reviewer=reviewer,
            now=DECIDED,
            versions=self.versions,
            registry=self.registry,
            tokens=self.tokens,
        )

    def task(self, version: int | None, token: str = TOKEN) -> ApprovalTask:
        """RequestApproval's input: the outcome ConcludeTrainingRun returned, and the task token."""
        outcome = TrainingOutcome(
            run_name="dataset-v20261127T130000Z-0a1b2c3d",
            training_job="dxops-dev-20261127140309-1a2b3c4d",
            outcome="registered" if version is not None else "rejected",
            approval="manual" if version is not None else None,
            package_version=version,
            package_arn=self.registry.arn(version) if version is not None else None,
            model_version="7d2e9a10-0123456789ab-1c2d3e4f",
            evidence_uri="s3://dxops-dev-artifacts/training/runs/dxops-dev-20261127140309-1a2b3c4d/evidence.json",
            subject="dxops dev: model version 1 registered",
            message="Candidate 7d2e9a10-0123456789ab-1c2d3e4f is model version 1; awaits review.",
            review_timeout_seconds=604_800,
        )
        return ApprovalTask(task_token=token, outcome=outcome)

    def request(self, version: int | None, token: str = TOKEN) -> None:
        request_approval(self.task(version, token), self.versions, self.tokens)

    def expire(self, version: int) -> bool:
        return expire_approval(
            version, now=REGISTERED + dt.timedelta(days=7), versions=self.versions, registry=self.registry
        )


# --- A reviewer's decision -------------------------------------------------------------------------


def test_an_approval_sets_the_registry_and_resumes_the_waiting_run_with_the_decision() -> None:
    account = Account()
    version = account.register()
    account.request(version)

    approval = account.decide(version, APPROVE)

    assert (approval.status, approval.decided_by, approval.decided_via) == ("Approved", REVIEWER, "api")
    assert approval.rationale == APPROVE.rationale and approval.decided_at == DECIDED
    ((arn, status, description),) = account.registry.status_changes
    assert (arn, status) == (account.registry.arn(version), "Approved")
    assert description == f"Approved by {REVIEWER}"  # the rationale stays in the versions table
    assert json.loads(account.tokens.succeeded[TOKEN]) == {"package_version": version, "status": "Approved"}
    assert account.tokens.failed == {}
    record = account.versions.get(version)
    assert record is not None and record.approval_status == "Approved" and record.approval == approval
    assert account.versions.task_token(version) is None


def test_a_rejection_sets_the_registry_and_ends_the_waiting_run_with_model_rejected() -> None:
    account = Account()
    version = account.register()
    account.request(version)

    approval = account.decide(version, REJECT)

    assert approval.status == "Rejected" and account.registry.status(version) == "Rejected"
    error, cause = account.tokens.failed[TOKEN]
    assert error == REJECTED_ERROR == "ModelRejected"
    assert json.loads(cause) == {"package_version": version, "by": REVIEWER}
    assert account.tokens.succeeded == {}
    record = account.versions.get(version)
    assert record is not None and record.approval_status == "Rejected" and record.approval == approval


def test_an_unknown_version_cannot_be_decided() -> None:
    account = Account()
    account.register()
    with pytest.raises(VersionNotFound):
        account.decide(7, APPROVE)
    assert account.registry.status_changes == [] and account.tokens.succeeded == {}


def test_a_version_is_decided_once() -> None:
    account = Account()
    version = account.register()
    account.request(version)
    first = account.decide(version, APPROVE)

    with pytest.raises(NotPending):
        account.decide(version, REJECT, reviewer=OTHER_REVIEWER)

    assert [status for _, status, _ in account.registry.status_changes] == ["Approved"]
    assert list(account.tokens.succeeded) == [TOKEN] and account.tokens.failed == {}
    record = account.versions.get(version)
    assert record is not None and record.approval == first


def test_a_version_approved_by_the_policy_takes_no_review() -> None:
    account = Account()
    version = account.register(status="Approved")
    with pytest.raises(NotPending):
        account.decide(version, REJECT)
    assert account.registry.status(version) == "Approved" and account.registry.status_changes == []


def test_a_decision_after_the_run_stopped_waiting_is_still_recorded() -> None:
    account = Account(tokens=RecordingTaskTokens(gone={TOKEN}))  # the execution timed out or was stopped
    version = account.register()
    account.request(version)

    approval = account.decide(version, APPROVE)

    assert approval.status == "Approved" and account.registry.status(version) == "Approved"
    assert account.tokens.refused == [TOKEN] and account.tokens.succeeded == {}
    record = account.versions.get(version)
    assert record is not None and record.approval == approval


@pytest.mark.parametrize("body", [APPROVE, REJECT], ids=["approve", "reject"])
def test_a_decision_made_before_the_run_stored_its_token_answers_the_run_when_it_asks(
    body: ApprovalDecisionBody,
) -> None:
    account = Account()
    version = account.register()
    account.decide(version, body)  # the reviewer was quicker than RequestApproval
    assert account.tokens.succeeded == {} and account.tokens.failed == {}

    account.request(version)

    if body.decision == "approve":
        assert json.loads(account.tokens.succeeded[TOKEN]) == {"package_version": version, "status": "Approved"}
    else:
        error, cause = account.tokens.failed[TOKEN]
        assert error == "ModelRejected" and json.loads(cause) == {"package_version": version, "by": REVIEWER}
    assert account.versions.task_token(version) is None


# --- The waiting run -------------------------------------------------------------------------------


def test_the_waiting_runs_token_is_kept_with_the_version() -> None:
    account = Account()
    version = account.register()

    account.request(version)

    assert account.versions.task_token(version) == TOKEN
    assert account.tokens.succeeded == {} and account.tokens.failed == {}


def test_only_a_registered_candidate_waits_for_approval() -> None:
    account = Account()
    with pytest.raises(DomainError, match="only a registered version"):
        account.request(None)


def test_a_run_cannot_wait_for_a_version_the_table_does_not_know() -> None:
    account = Account()
    account.registry.register({"ModelPackageGroupName": GROUP})  # registered, never recorded in the table
    with pytest.raises(NotPending):
        account.request(1)
    assert account.tokens.succeeded == {} and account.tokens.failed == {}


# --- Review timeout ----------------------------------------------------------------------------------


def test_an_expired_review_rejects_the_version_for_good() -> None:
    account = Account()
    version = account.register()
    account.request(version)

    assert account.expire(version) is True

    assert account.registry.status_changes == [
        (account.registry.arn(version), "Rejected", "Rejected: the review period ended without a decision")
    ]
    record = account.versions.get(version)
    assert record is not None and record.approval_status == "Rejected" and record.approval is not None
    assert (record.approval.decided_by, record.approval.decided_via) == ("policy:approval-timeout", "expiry")
    assert account.tokens.succeeded == {} and account.tokens.failed == {}  # the wait itself timed out
    with pytest.raises(NotPending):
        account.decide(version, APPROVE)  # a late reviewer cannot bring it back


def test_an_expiry_after_a_decision_changes_nothing() -> None:
    account = Account()
    version = account.register()
    approval = account.decide(version, APPROVE)

    assert account.expire(version) is False

    assert [status for _, status, _ in account.registry.status_changes] == ["Approved"]
    record = account.versions.get(version)
    assert record is not None and record.approval == approval


def test_an_unknown_version_cannot_expire() -> None:
    with pytest.raises(VersionNotFound):
        Account().expire(3)


def test_the_registry_description_of_a_decision_fits_its_limit() -> None:
    account = Account()
    version = account.register()
    reviewer = "arn:aws:sts::123456789012:assumed-role/" + "r" * 400 + "/dr-lee"
    account.decide(version, ApprovalDecisionBody(decision="approve", rationale="Reviewed. " * 100), reviewer)
    ((_, _, description),) = account.registry.status_changes
    assert len(description) <= 1024 and description.startswith("Approved by arn:aws:sts::")
    assert "Reviewed." not in description  # the rationale is never in the registry


# --- Contract: the fake behaves as the DynamoDB adapter -------------------------------------------------


@pytest.fixture(params=["in-memory", "dynamodb"])
def table(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelVersions]:
    if request.param == "in-memory":
        yield InMemoryModelVersions()
        return
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(
            TableName="dxops-dev-model-versions",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoDbModelVersions("dxops-dev-model-versions", client)


def arn(version: int) -> str:
    return f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/{version}"


def decision(version: int, status: str = "Approved", by: str = REVIEWER) -> ApprovalRecord:
    return ApprovalRecord(
        package_version=version,
        status=status,  # type: ignore[arg-type]
        decided_by=by,
        decided_via="api",
        rationale="reviewed",
        decided_at=DECIDED,
    )


def test_contract_the_token_is_kept_while_the_version_waits_and_handed_to_its_decision(table: ModelVersions) -> None:
    table.put_version(version_record(1, arn(1)))
    table.set_task_token(1, "token-first")
    table.set_task_token(1, "token-retried")  # a retried RequestApproval keeps the latest

    table.decide(1, decision(1))
    assert table.task_token(1) == "token-retried"  # kept until the decision has answered it
    table.clear_task_token(1)
    assert table.task_token(1) is None

    record = table.get(1)
    assert record is not None and record.approval_status == "Approved" and record.approval == decision(1)
    with pytest.raises(NotPending):
        table.set_task_token(1, "token-late")
    with pytest.raises(NotPending):
        table.decide(1, decision(1, "Rejected", OTHER_REVIEWER))
    record = table.get(1)
    assert record is not None and record.approval == decision(1)


def test_contract_a_decision_without_a_stored_token_leaves_none(table: ModelVersions) -> None:
    table.put_version(version_record(1, arn(1)))
    table.decide(1, decision(1, "Rejected"))
    assert table.task_token(1) is None
    record = table.get(1)
    assert record is not None and record.approval_status == "Rejected"


def test_contract_unknown_and_policy_approved_versions_are_not_pending(table: ModelVersions) -> None:
    table.put_version(version_record(2, arn(2), "Approved"))
    for version in (1, 2):
        with pytest.raises(NotPending):
            table.set_task_token(version, "token")
        with pytest.raises(NotPending):
            table.decide(version, decision(version, "Rejected"))
    assert table.get(1) is None  # a failed condition writes nothing
    record = table.get(2)
    assert record is not None and record.approval_status == "Approved"
    assert record.approval is not None and record.approval.decided_via == "policy"


def test_contract_only_a_change_to_approved_names_a_new_deployment_run(table: ModelVersions) -> None:
    table.put_version(version_record(1, arn(1)))
    seen = [
        table.observe_status(1, "PendingManualApproval", "run-registered"),
        table.observe_status(1, "Approved", "run-approved"),
        table.observe_status(1, "Approved", "run-metadata-update"),  # still Approved: the run remembered
        table.observe_status(1, "Rejected", "run-rejected"),
        table.observe_status(1, "Approved", "run-approved-again"),
        table.observe_status(1, "Approved", "run-redelivered"),
    ]
    assert seen == [None, "run-approved", "run-approved", None, "run-approved-again", "run-approved-again"]


def test_contract_an_approval_seen_before_the_version_is_stored_is_kept(table: ModelVersions) -> None:
    # Approved by policy at registration: the registry's event may arrive before put_version.
    assert table.observe_status(3, "Approved", "run-first") == "run-first"
    table.set_deployment_status(3, "deploying")
    assert table.get(3) is None and table.list_versions() == []

    table.put_version(version_record(3, arn(3), "Approved"))

    record = table.get(3)
    assert record is not None and record.deployment_status == "deploying"
    assert table.observe_status(3, "Approved", "run-second") == "run-first"


def test_contract_versions_listing_deployment_status_and_champion(table: ModelVersions) -> None:
    table.put_version(version_record(2, arn(2)))
    table.put_version(version_record(1, arn(1), "Approved"))
    table.set_deployment_status(1, "serving")
    table.set_deployment_status(9, "retired")  # a package registered by hand: no document

    listed = table.list_versions()

    assert [(r.package_version, r.deployment_status) for r in listed] == [(1, "serving"), (2, None)]
    assert listed[1] == version_record(2, arn(2)) and table.get(9) is None
    assert table.champion() is None
    champion = ChampionRecord(
        package_version=1,
        package_arn=arn(1),
        model_version="7d2e9a10-0123456789ab-00000001",
        model_data_url="s3://dxops-dev-artifacts/training/models/job-1/output/model.tar.gz",
        endpoint_config="dxops-dev-config-v1-0a1b2c3d",
        since=DECIDED,
        previous=[],
        rolled_back=[],
    )
    table.set_champion(champion)
    assert table.champion() == champion


def test_a_decision_whose_application_failed_is_finished_by_sending_it_again() -> None:
    account = Account()
    version = account.register()
    account.request(version)
    failing = account.registry.set_status

    def throttled(*_: object) -> None:
        raise RuntimeError("ThrottlingException")

    account.registry.set_status = throttled  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        account.decide(version, APPROVE)
    assert account.versions.task_token(version) == TOKEN and account.tokens.succeeded == {}

    account.registry.set_status = failing  # type: ignore[method-assign]
    approval = account.decide(version, APPROVE)  # the reviewer's retry (the API answered 503)

    assert approval.status == "Approved" and account.registry.status_changes[-1][1] == "Approved"
    assert json.loads(account.tokens.succeeded[TOKEN])["status"] == "Approved"
    assert account.versions.task_token(version) is None
    with pytest.raises(NotPending):  # the other decision is still refused
        account.decide(version, ApprovalDecisionBody(decision="reject", rationale="changed my mind"))
