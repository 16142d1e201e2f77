"""The human approval gate: a registered version waits (the training run's waitForTaskToken task) until
a reviewer approves or rejects it through the API, or the wait times out.

request_approval   keeps the waiting execution's task token with the version (the notification is
                   the state machine's); a version decided already answers the token at once.
decide_approval    records the reviewer's identity, decision and rationale (once: a version is
                   decided at most once), sets the package's status in the registry (Approved starts
                   the deployment through the registry's state-change event) and resumes the waiting
                   execution: success for an approval, the ModelRejected error for a rejection.
expire_approval    the wait timed out: the version is rejected by expiry, so it never deploys later.
"""

from __future__ import annotations

import datetime as dt
import json

from dxops.adapters.ports import ModelRegistry, ModelVersions, TaskTokens
from dxops.domain.errors import DomainError
from dxops.schemas.models import ApprovalDecisionBody, ApprovalRecord, ApprovalTask

REJECTED_ERROR = "ModelRejected"  # the training state machine's Catch for a rejection


class VersionNotFound(DomainError):
    pass


class NotPending(DomainError):
    """The version was decided already (or was never waiting for a person)."""


def request_approval(task: ApprovalTask, versions: ModelVersions, tokens: TaskTokens) -> None:
    """Keep the token with the version. A reviewer may have decided between the registration and
    this step (before any token was stored): the decision then answers the token at once."""
    outcome = task.outcome
    if outcome.package_version is None:
        raise DomainError("only a registered version waits for approval")
    try:
        versions.set_task_token(outcome.package_version, task.task_token)
    except NotPending:
        record = versions.get(outcome.package_version)
        if record is None or record.approval is None:
            raise
        _answer(task.task_token, record.approval, tokens)


def decide_approval(
    package_version: int,
    body: ApprovalDecisionBody,
    *,
    reviewer: str,
    now: dt.datetime,
    versions: ModelVersions,
    registry: ModelRegistry,
    tokens: TaskTokens,
) -> ApprovalRecord:
    """Record the decision once, then apply it (registry, waiting run). Applying is resumable: if the
    registry or Step Functions failed after the decision was recorded, the same decision sent again
    finishes the job instead of being refused."""
    record = versions.get(package_version)
    if record is None:
        raise VersionNotFound(f"no model version {package_version}")
    status = "Approved" if body.decision == "approve" else "Rejected"
    if record.approval_status != "PendingManualApproval":
        if record.approval is None or record.approval.status != status or record.approval.decided_via != "api":
            raise NotPending(f"model version {package_version} is {record.approval_status} already")
        approval = record.approval  # a retry of a decision whose application was interrupted
    else:
        approval = ApprovalRecord(
            package_version=package_version,
            status=status,
            decided_by=reviewer,
            decided_via="api",
            rationale=body.rationale,
            decided_at=now,
        )
        versions.decide(package_version, approval)  # NotPending if another reviewer was first
    _apply(approval, record.package_arn, versions=versions, registry=registry, tokens=tokens)
    return approval


def _apply(
    approval: ApprovalRecord, package_arn: str, *, versions: ModelVersions, registry: ModelRegistry, tokens: TaskTokens
) -> None:
    # The rationale stays in the versions table (KMS): registry descriptions and execution histories
    # are read by more people and services than reviewers.
    registry.set_status(package_arn, approval.status, f"{approval.status} by {approval.decided_by}"[:1024])
    token = versions.task_token(approval.package_version)
    if token is not None:
        _answer(token, approval, tokens)
        versions.clear_task_token(approval.package_version)


def _answer(token: str, approval: ApprovalRecord, tokens: TaskTokens) -> None:
    if approval.status == "Approved":
        tokens.succeed(token, json.dumps({"package_version": approval.package_version, "status": "Approved"}))
    else:
        cause = json.dumps({"package_version": approval.package_version, "by": approval.decided_by})
        tokens.fail(token, REJECTED_ERROR, cause)


def expire_approval(
    package_version: int, *, now: dt.datetime, versions: ModelVersions, registry: ModelRegistry
) -> bool:
    """Reject a version whose review timed out; False if someone decided it meanwhile."""
    record = versions.get(package_version)
    if record is None:
        raise VersionNotFound(f"no model version {package_version}")
    approval = ApprovalRecord(
        package_version=package_version,
        status="Rejected",
        decided_by="policy:approval-timeout",
        decided_via="expiry",
        rationale="no decision before the review period ended",
        decided_at=now,
    )
    try:
        versions.decide(package_version, approval)
    except NotPending:
        return False
    versions.clear_task_token(package_version)  # its wait has ended
    registry.set_status(record.package_arn, "Rejected", "Rejected: the review period ended without a decision")
    return True
