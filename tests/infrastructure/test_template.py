"""Static checks of template.yaml: no AWS account, no network.

The SAM template is translated to plain CloudFormation with aws-sam-translator (as
`sam validate` does) so that the assertions see what CloudFormation would deploy: the
generated IAM roles, API Gateway stage and methods, event source mapping and so on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform  # type: ignore[import-untyped,unused-ignore]
from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped,unused-ignore]

from dxops.settings import (
    ApprovalSettings,
    BeginErasureSettings,
    CompleteErasureSettings,
    DatasetPipelineSettings,
    DatasetTriggerSettings,
    DeploymentSettings,
    DeploymentTriggerSettings,
    EraseRawObjectsSettings,
    IngestApiSettings,
    IngestDeviceSettings,
    ModelsApiSettings,
    MonitoringSettings,
    PredictApiSettings,
    TrainingRunSettings,
    TrainingTriggerSettings,
)
from tools.publish_glue_libraries import builders

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# AWS-managed policies SAM attaches on its own (basic execution, X-Ray, SQS poller).
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}

# Environment variables the handlers read (the contract with functions/*/app.py).
# The settings model each function parses its environment into (dxops/settings.py): the template
# must set exactly the variables the model reads, plus Powertools' own.
SETTINGS_MODELS = {
    "IngestApiFunction": IngestApiSettings,
    "IngestDeviceFunction": IngestDeviceSettings,
    "DatasetTriggerFunction": DatasetTriggerSettings,
    "PrepareDatasetRunFunction": DatasetPipelineSettings,
    "EvaluateDatasetQualityFunction": DatasetPipelineSettings,
    "PublishDatasetVersionFunction": DatasetPipelineSettings,
    "WithdrawDatasetRunFunction": DatasetPipelineSettings,
    "BeginErasureFunction": BeginErasureSettings,
    "EraseRawObjectsFunction": EraseRawObjectsSettings,
    "CompleteErasureFunction": CompleteErasureSettings,
    "PredictApiFunction": PredictApiSettings,
    "StartTrainingFunction": TrainingTriggerSettings,
    "PrepareTrainingRunFunction": TrainingRunSettings,
    "ConcludeTrainingRunFunction": TrainingRunSettings,
    "RequestApprovalFunction": ApprovalSettings,
    "ModelsApiFunction": ModelsApiSettings,
    "DeploymentTriggerFunction": DeploymentTriggerSettings,
    "PrepareDeploymentFunction": DeploymentSettings,
    "VerifyDeploymentFunction": DeploymentSettings,
    "PrepareMonitoringRunFunction": MonitoringSettings,
    "PublishMonitoringResultsFunction": MonitoringSettings,
}
# The front doors (API, devices) reserve concurrency; the pipeline's functions are bounded by
# their callers (an event source mapping's MaximumConcurrency, the state machine).
FRONT_DOORS = {"IngestApiFunction", "IngestDeviceFunction", "PredictApiFunction"}
POWERTOOLS_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
    "POWERTOOLS_TRACER_CAPTURE_ERROR",
}
EXPECTED_ENV = {
    name: {field.alias for field in model.model_fields.values() if field.alias} | POWERTOOLS_ENV
    for name, model in SETTINGS_MODELS.items()
}


class _NoManagedPolicies:
    """Managed-policy loader stub: the template names no managed policy to resolve."""

    def load(self) -> dict[str, str]:
        return {}


# --------------------------------------------------------------------------- helpers


def render(value: Any) -> str:
    """Render a string or intrinsic as text: Ref/GetAtt/${Var} become <Name>, ${!x} becomes ${x}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return "<{}>".format(".".join(arg) if isinstance(arg, list) else arg)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            text = text.replace("${!", "\x00")
            text = re.sub(
                r"\$\{([^}]+)\}",
                lambda m: render(variables[m.group(1)]) if m.group(1) in variables else f"<{m.group(1)}>",
                text,
            )
            return text.replace("\x00", "${")
    raise AssertionError(f"cannot render {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def of_type(resources: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == type_}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(document["Statement"])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    """template.yaml as written (SAM resources, Globals)."""
    template: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return template


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """template.yaml translated to plain CloudFormation."""
    template: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        # Local folders are uploaded by `sam build/package`; the translator wants S3 URIs.
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://bucket/function.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://bucket/layer.zip"
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            props["DefinitionUri"] = "s3://bucket/definition.asl.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        translated: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return translated


@pytest.fixture(scope="module")
def resources(cfn: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = cfn["Resources"]
    return found


@pytest.fixture(scope="module")
def functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = of_type(resources, "AWS::Lambda::Function")
    assert set(found) == set(EXPECTED_ENV)
    return found


# --------------------------------------------------------------------------- storage


def test_raw_bucket_is_kms_encrypted_with_the_data_key(resources: dict[str, Any]) -> None:
    rules = resources["RawBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert len(rules) == 1
    assert rules[0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }
    assert rules[0]["BucketKeyEnabled"] is True


def test_raw_bucket_is_versioned_private_logged_retained_and_notifies_eventbridge(
    resources: dict[str, Any],
) -> None:
    bucket = resources["RawBucket"]
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"] == {"EventBridgeEnabled": True}
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"


def test_raw_bucket_lifecycle_expires_quarantine_and_noncurrent_versions_only(
    resources: dict[str, Any],
) -> None:
    rules = resources["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    expiring = [rule for rule in rules if "ExpirationInDays" in rule]
    # Only quarantined objects expire; accepted raw data is kept.
    assert expiring == [
        {
            "Id": "ExpireQuarantine",
            "Status": "Enabled",
            "Prefix": "quarantine/",
            "ExpirationInDays": {"Ref": "QuarantineRetentionDays"},
        }
    ]
    noncurrent = [rule for rule in rules if "NoncurrentVersionExpiration" in rule]
    assert len(noncurrent) == 1
    assert "Prefix" not in noncurrent[0]
    assert noncurrent[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}


@pytest.mark.parametrize(
    ("policy", "bucket"), [("RawBucketPolicy", "RawBucket"), ("AccessLogsBucketPolicy", "AccessLogsBucket")]
)
def test_bucket_policies_deny_requests_without_tls(resources: dict[str, Any], policy: str, bucket: str) -> None:
    props = resources[policy]["Properties"]
    assert props["Bucket"] == {"Ref": bucket}
    tls_denies = [
        s
        for s in statements(props["PolicyDocument"])
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls_denies) == 1
    deny = tls_denies[0]
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert {render(r) for r in as_list(deny["Resource"])} == {f"<{bucket}.Arn>", f"<{bucket}.Arn>/*"}


def test_raw_bucket_policy_rejects_other_encryption(resources: dict[str, Any]) -> None:
    # Only an upload that asks for another algorithm or key is denied (Null: header present); one
    # without headers gets the bucket default, SSE-KMS with DataKey. StringNotEqualsIfExists would
    # deny those too, breaking every writer that relies on default encryption.
    denies = {s["Sid"]: s for s in statements(resources["RawBucketPolicy"]["Properties"]["PolicyDocument"])}
    assert denies["DenyObjectsNotEncryptedWithKms"]["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption": "false"},
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
    }
    assert denies["DenyOtherKmsKeys"]["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
        "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": {"Fn::GetAtt": ["DataKey", "Arn"]}},
    }
    assert all(s["Effect"] == "Deny" for s in denies.values())
    encryption = resources["RawBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": ["DataKey", "Arn"]}


def test_access_logs_bucket_is_encrypted_private_versioned_and_expires(resources: dict[str, Any]) -> None:
    props = resources["AccessLogsBucket"]["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    # S3 server access log delivery supports SSE-S3 only.
    assert sse == {"SSEAlgorithm": "AES256"}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert any(
        r.get("ExpirationInDays") == {"Ref": "LogRetentionDays"} for r in props["LifecycleConfiguration"]["Rules"]
    )
    delivery = [
        s
        for s in statements(resources["AccessLogsBucketPolicy"]["Properties"]["PolicyDocument"])
        if s["Effect"] == "Allow"
    ]
    logged = {
        name: r
        for name, r in of_type(resources, "AWS::S3::Bucket").items()
        if "LoggingConfiguration" in r["Properties"]
    }
    assert set(logged) == {"RawBucket", "CuratedBucket", "MonitoringBucket"}
    assert len(delivery) == len(logged)
    for statement in delivery:
        assert statement["Principal"] == {"Service": "logging.s3.amazonaws.com"}
        (source,) = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::GetAtt"][:1]
        prefix = logged[source]["Properties"]["LoggingConfiguration"]["LogFilePrefix"]
        assert render(statement["Resource"]) == f"<AccessLogsBucket.Arn>/{prefix}*"
    assert {s["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in delivery} == set(logged)


def test_idempotency_table(resources: dict[str, Any]) -> None:
    props = resources["IdempotencyTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}


def test_pseudonym_secret(resources: dict[str, Any]) -> None:
    # Also a tripwire: changing GenerateSecretString after deployment regenerates the key.
    secret = resources["PseudonymKeySecret"]
    props = secret["Properties"]
    assert props["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    generated = props["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == {"key_id": "v1"}
    assert generated["GenerateStringKey"] == "key"
    assert generated["PasswordLength"] >= 64
    assert generated["ExcludePunctuation"] is True
    assert secret["DeletionPolicy"] == "Retain"
    assert not of_type(resources, "AWS::SecretsManager::RotationSchedule"), "rotation is manual (runbook)"


# --------------------------------------------------------------------------- encryption and logs


def test_data_key_rotates_and_limits_cloudwatch_logs_to_dxops_log_groups(resources: dict[str, Any]) -> None:
    key = resources["DataKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    assert render(resources["DataKeyAlias"]["Properties"]["AliasName"]) == "alias/dxops-<Environment>-data"
    stmts = statements(key["Properties"]["KeyPolicy"])
    principals = [s["Principal"] for s in stmts]
    assert all(p != "*" and p != {"AWS": "*"} for p in principals)
    services = {s["Sid"]: s for s in stmts if "Service" in s["Principal"]}
    assert set(services) == {"AllowCloudWatchLogsForDxopsLogGroups", "AllowAlertPublishers"}
    publishers = services["AllowAlertPublishers"]
    assert set(publishers["Principal"]["Service"]) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    assert set(publishers["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}  # no key administration
    assert publishers["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    logs = services["AllowCloudWatchLogsForDxopsLogGroups"]
    assert render(logs["Principal"]["Service"]) == "logs.<AWS::Region>.amazonaws.com"
    assert all("*" not in action for action in as_list(logs["Action"]))
    contexts = [render(c) for c in as_list(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])]
    assert [c.rsplit(":log-group:", 1)[1] for c in contexts] == [
        "/dxops/<Environment>/*",
        "API-Gateway-Execution-Logs_*",
        "/aws-glue/jobs/dxops-<Environment>-etl-security-*",
    ]


def test_every_log_group_is_encrypted_retained_and_covered_by_the_key_policy(resources: dict[str, Any]) -> None:
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert set(groups) == {
        "IngestApiAccessLogGroup",
        "IngestApiExecutionLogGroup",
        "IngestApiLogGroup",
        "IngestDeviceLogGroup",
        "DatasetTriggerLogGroup",
        "PrepareDatasetRunLogGroup",
        "EvaluateDatasetQualityLogGroup",
        "PublishDatasetVersionLogGroup",
        "WithdrawDatasetRunLogGroup",
        "DataProcessingLogGroup",
        "BeginErasureLogGroup",
        "EraseRawObjectsLogGroup",
        "CompleteErasureLogGroup",
        "ErasureLogGroup",
        "PredictApiLogGroup",
        "StartTrainingLogGroup",
        "PrepareTrainingRunLogGroup",
        "ConcludeTrainingRunLogGroup",
        "RequestApprovalLogGroup",
        "ModelsApiLogGroup",
        "TrainingLogGroup",
        "DeploymentTriggerLogGroup",
        "PrepareDeploymentLogGroup",
        "VerifyDeploymentLogGroup",
        "DeploymentLogGroup",
        "PrepareMonitoringRunLogGroup",
        "PublishMonitoringResultsLogGroup",
        "MonitoringLogGroup",
    }
    for group in groups.values():
        props = group["Properties"]
        assert props["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # Must match the key policy's encryption-context condition, or log creation fails.
        name = render(props["LogGroupName"])
        assert name.startswith(("/dxops/<Environment>/", "API-Gateway-Execution-Logs_")), name
    # The name API Gateway itself gives the execution logs of the stage.
    assert render(groups["IngestApiExecutionLogGroup"]["Properties"]["LogGroupName"]) == (
        "API-Gateway-Execution-Logs_<IngestApi>/<Environment>"
    )


# --------------------------------------------------------------------------- functions and IAM


def test_functions_runtime_layer_tracing_and_own_log_group(
    functions: dict[str, dict[str, Any]], resources: dict[str, Any]
) -> None:
    log_groups = set(of_type(resources, "AWS::Logs::LogGroup"))
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["Handler"] == "app.lambda_handler", name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["KmsKeyArn"] == {"Fn::GetAtt": ["DataKey", "Arn"]}, name
        if name in FRONT_DOORS:  # reserved unless the parameter is 0 (new accounts cannot spare one)
            reserved = props["ReservedConcurrentExecutions"]["Fn::If"]
            assert reserved[2] == {"Ref": "AWS::NoValue"}, name
        else:
            assert "ReservedConcurrentExecutions" not in props, name
        (layer,) = props["Layers"]
        assert resources[layer["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_group in log_groups, name
    used = [f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions.values()]
    assert len(set(used)) == len(used), "each function has its own log group"


def test_function_env_vars_are_the_expected_ones_and_reference_existing_things(
    functions: dict[str, dict[str, Any]], cfn: dict[str, Any]
) -> None:
    known = set(cfn["Resources"]) | set(cfn["Parameters"])
    for name, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        optional = {f.alias for f in SETTINGS_MODELS[name].model_fields.values() if not f.is_required()}
        assert EXPECTED_ENV[name] - optional <= set(variables) <= EXPECTED_ENV[name], name
        for var, value in variables.items():
            if isinstance(value, dict):
                ((fn, arg),) = value.items()
                assert fn in {"Ref", "Fn::GetAtt", "Fn::Sub"}, (name, var)
                if fn == "Fn::Sub":
                    targets = [t for t in re.findall(r"<([^>.]+)", render(value)) if not t.startswith("AWS::")]
                else:
                    targets = [arg if fn == "Ref" else arg[0]]
                for target in targets:
                    assert target in known, (name, var, target)
    api_variables = functions["IngestApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api_variables["RAW_BUCKET"] == {"Ref": "RawBucket"}
    assert api_variables["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}


def test_code_folders_exist(sam: dict[str, Any]) -> None:
    for name, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            folder = ROOT / props["CodeUri"]
            module = props["Handler"].rsplit(".", 1)[0]
            assert (folder / f"{module}.py").is_file(), f"{name}: {folder}/{module}.py missing"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            assert resource["Metadata"]["BuildMethod"] == "python3.13"
            folder = ROOT / props["ContentUri"]
            assert (folder / "dxops" / "__init__.py").is_file(), f"{name}: package must sit directly in {folder}"


# Step Functions' log delivery (its Logging configuration) needs these on "*" (no resource types).
LOG_DELIVERY_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# Actions with no resource-level permissions either; each statement granting one on "*" limits it
# by a condition where IAM offers one (PutMetricData: its namespace).
NO_RESOURCE_LEVEL_ACTIONS = {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"}


def _role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", []) for s in statements(policy["PolicyDocument"])]


def test_no_iam_role_has_wildcard_actions_or_unscoped_resources(resources: dict[str, Any]) -> None:
    roles = of_type(resources, "AWS::IAM::Role")
    assert set(roles) == {
        "IngestApiFunctionRole",
        "IngestDeviceFunctionRole",
        "IotRuleRole",
        "DatasetTriggerFunctionRole",
        "PrepareDatasetRunFunctionRole",
        "EvaluateDatasetQualityFunctionRole",
        "PublishDatasetVersionFunctionRole",
        "WithdrawDatasetRunFunctionRole",
        "DataProcessingStateMachineRole",
        "DataProcessingStateMachinePeriodicRunRole",
        "EtlJobRole",
        "BeginErasureFunctionRole",
        "EraseRawObjectsFunctionRole",
        "CompleteErasureFunctionRole",
        "ErasureStateMachineRole",
        "ErasureJobRole",
        "PredictApiFunctionRole",
        "StartTrainingFunctionRole",
        "PrepareTrainingRunFunctionRole",
        "ConcludeTrainingRunFunctionRole",
        "RequestApprovalFunctionRole",
        "ModelsApiFunctionRole",
        "TrainingStateMachineRole",
        "DeploymentTriggerFunctionRole",
        "PrepareDeploymentFunctionRole",
        "VerifyDeploymentFunctionRole",
        "DeploymentStateMachineRole",
        "SageMakerExecutionRole",
        "PrepareMonitoringRunFunctionRole",
        "PublishMonitoringResultsFunctionRole",
        "MonitoringStateMachineRole",
        "MonitoringStateMachineMonitorRole",  # EventBridge Scheduler's, to start monitoring runs
    }
    for name, role in roles.items():
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= ALLOWED_MANAGED_POLICIES, name
        stmts = _role_statements(role)
        assert stmts, name
        for statement in stmts:
            if statement["Effect"] == "Deny":  # guard rails (e.g. the Glue jobs never touch manifests)
                assert statement["Sid"] == "NeverTouchPublishedVersions", name
                continue
            assert statement["Effect"] == "Allow", name
            assert "NotAction" not in statement and "NotResource" not in statement, name
            for action in as_list(statement["Action"]):
                assert "*" not in action, (name, action)
            for resource in as_list(statement["Resource"]):
                if set(as_list(statement["Action"])) <= LOG_DELIVERY_ACTIONS | NO_RESOURCE_LEVEL_ACTIONS:
                    continue  # these CloudWatch Logs actions support no resource-level permissions
                assert resource != "*", (name, statement)
                assert not render(resource).endswith(".Arn>/*"), (name, "whole-bucket object access")


def _actions_on(role: dict[str, Any], action: str) -> set[str]:
    """The resources a role is allowed the action on."""
    return {
        render(r)
        for s in _role_statements(role)
        if s["Effect"] == "Allow" and action in as_list(s["Action"])
        for r in as_list(s["Resource"])
    }


def _denied_on(role: dict[str, Any], action: str) -> set[str]:
    return {
        render(r)
        for s in _role_statements(role)
        if s["Effect"] == "Deny" and action in as_list(s["Action"])
        for r in as_list(s["Resource"])
    }


def test_s3_writes_are_scoped_to_each_writers_prefixes(resources: dict[str, Any]) -> None:
    assert _actions_on(resources["IngestApiFunctionRole"], "s3:PutObject") == {
        "<RawBucket.Arn>/raw/clinical/*",
        "<RawBucket.Arn>/quarantine/clinical/*",
        "<AuditBucket.Arn>/audit/erasure/*",  # the erasure request's audit record
    }
    assert _actions_on(resources["IngestDeviceFunctionRole"], "s3:PutObject") == {
        "<RawBucket.Arn>/raw/device/*",
        "<RawBucket.Arn>/quarantine/device/*",
    }
    assert _actions_on(resources["IotRuleRole"], "s3:PutObject") == {"<RawBucket.Arn>/quarantine/device/*"}
    for role in ("IngestApiFunctionRole", "IngestDeviceFunctionRole", "IotRuleRole"):
        assert not any(r.startswith("<RawBucket") for r in _actions_on(resources[role], "s3:GetObject")), (
            "no writer reads the raw zone"
        )


def test_other_permissions_are_scoped_to_the_table_secret_key_and_queue(resources: dict[str, Any]) -> None:
    api, device, iot = (resources[r] for r in ("IngestApiFunctionRole", "IngestDeviceFunctionRole", "IotRuleRole"))
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem"):
        assert _actions_on(api, action) == {"<IdempotencyTable.Arn>"}
        assert _actions_on(device, action) == set()
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem"):
        assert _actions_on(api, action) == {"<IdempotencyTable.Arn>", "<DeviceBindingsTable.Arn>"}
        assert _actions_on(device, action) == set()
    assert _actions_on(device, "dynamodb:BatchGetItem") == {"<DeviceBindingsTable.Arn>"}
    assert _actions_on(api, "dynamodb:BatchGetItem") == set()
    for role in (api, device):
        assert _actions_on(role, "secretsmanager:GetSecretValue") == {"<PseudonymKeySecret>"}
    for role in (api, device, iot):
        assert _actions_on(role, "kms:Decrypt") == {"<DataKey.Arn>"}
        assert _actions_on(role, "kms:GenerateDataKey") == {"<DataKey.Arn>"}
    assert _actions_on(iot, "sqs:SendMessage") == {"<DeviceReadingsQueue.Arn>"}


def test_iot_rule_role_trust_is_limited_to_this_rule(resources: dict[str, Any]) -> None:
    (trust,) = statements(resources["IotRuleRole"]["Properties"]["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    rule_name = render(resources["DeviceTopicRule"]["Properties"]["RuleName"])
    assert render(trust["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(f":rule/{rule_name}")


# --------------------------------------------------------------------------- REST API


def test_every_api_method_requires_iam_and_uses_no_caller_credentials(resources: dict[str, Any]) -> None:
    (api,) = of_type(resources, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    paths = api["Properties"]["Body"]["paths"]
    methods = {(path, verb): op for path, ops in paths.items() for verb, op in ops.items()}
    assert set(methods) == {
        ("/records", "post"),
        ("/openapi.json", "get"),
        ("/devices/{device_id}/binding", "put"),
        ("/devices/{device_id}/binding", "delete"),
        ("/erasure-requests", "post"),
        ("/erasure-requests/{request_id}", "get"),
        ("/predict", "post"),
        ("/diagnoses", "post"),
        ("/trainings", "post"),
        ("/trainings/triggers", "get"),
        ("/models", "get"),
        ("/models/{version}", "get"),
        ("/models/{version}/approval", "post"),
        ("/models/rollback", "post"),
    }
    for key, op in methods.items():
        assert op["security"] == [{"AWS_IAM": []}], key
        # InvokeRole NONE: API Gateway invokes through the function's resource policy,
        # callers never need lambda:InvokeFunction.
        assert "credentials" not in op["x-amazon-apigateway-integration"], key
    scheme = api["Properties"]["Body"]["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_api_stage_throttles_traces_and_never_logs_bodies(resources: dict[str, Any]) -> None:
    stages = of_type(resources, "AWS::ApiGateway::Stage")
    assert list(stages) == ["IngestApiStage"], "no extra default 'Stage' stage"
    props = stages["IngestApiStage"]["Properties"]
    assert props["StageName"] == {"Ref": "Environment"}
    assert props["TracingEnabled"] is True
    (settings,) = props["MethodSettings"]
    assert settings["ResourcePath"] == "/*" and settings["HttpMethod"] == "*"
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert settings["DataTraceEnabled"] is False
    assert settings["MetricsEnabled"] is True
    assert settings.get("CachingEnabled", False) is False

    access = props["AccessLogSetting"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["IngestApiAccessLogGroup", "Arn"]}
    fields = json.loads(access["Format"])
    assert set(fields) == {
        "requestId",
        "extendedRequestId",
        "caller",
        "httpMethod",
        "resourcePath",
        "status",
        "responseLength",
        "integrationLatency",
        "requestTime",
    }
    assert fields["caller"] == "$context.identity.userArn"
    lowered = access["Format"].lower()
    for forbidden in ("sourceip", "body", "$input", "querystring", "path.", "header"):
        assert forbidden not in lowered, forbidden


def test_invoke_permissions_are_scoped_to_the_api_routes_and_the_rules(resources: dict[str, Any]) -> None:
    permissions = of_type(resources, "AWS::Lambda::Permission")
    assert permissions
    rules = of_type(resources, "AWS::Events::Rule")
    for permission in permissions.values():
        props = permission["Properties"]
        if props["Principal"] == "events.amazonaws.com":  # an EventBridge rule (or schedule) of this stack
            (rule, attribute) = props["SourceArn"]["Fn::GetAtt"]
            assert rule in rules and attribute == "Arn"
            continue
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert render(props["SourceArn"]).split(":")[-1].startswith("<IngestApi>/")


# --------------------------------------------------------------------------- devices


def test_device_policy_lets_a_thing_act_only_as_itself(resources: dict[str, Any]) -> None:
    stmts = statements(resources["DevicePolicy"]["Properties"]["PolicyDocument"])
    by_action = {s["Action"]: s for s in stmts}
    assert set(by_action) == {"iot:Connect", "iot:Publish"}, "no subscribe/receive/retain, no wildcard"
    assert all(s["Effect"] == "Allow" for s in stmts)
    connect = by_action["iot:Connect"]
    assert render(connect["Resource"]).endswith(":client/${iot:Connection.Thing.ThingName}")
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    publish = render(by_action["iot:Publish"]["Resource"])
    assert publish.endswith(":topic/dxops/devices/${iot:Connection.Thing.ThingName}/readings")
    assert "+" not in publish and "#" not in publish and not publish.endswith("*")


def test_topic_rule_tags_readings_and_forwards_them_to_the_queue(resources: dict[str, Any]) -> None:
    payload = resources["DeviceTopicRule"]["Properties"]["TopicRulePayload"]
    assert payload["AwsIotSqlVersion"] == "2016-03-23"
    assert payload["RuleDisabled"] is False
    sql = payload["Sql"]
    assert re.search(r"\btopic\(3\)\s+AS\s+device_id\b", sql)
    assert re.search(r"\btimestamp\(\)\s+AS\s+received_at\b", sql)
    assert sql.endswith("FROM 'dxops/devices/+/readings'")
    (action,) = payload["Actions"]
    assert action["Sqs"] == {
        "QueueUrl": {"Ref": "DeviceReadingsQueue"},
        "RoleArn": {"Fn::GetAtt": ["IotRuleRole", "Arn"]},
        "UseBase64": False,
    }
    error = payload["ErrorAction"]["S3"]
    assert error["BucketName"] == {"Ref": "RawBucket"}
    assert error["RoleArn"] == {"Fn::GetAtt": ["IotRuleRole", "Arn"]}
    # After Fn::Sub, IoT must see its own substitution templates.
    assert render(error["Key"]) == (
        'quarantine/device/rule-errors/${parse_time("yyyy-MM-dd", timestamp())}/${newuuid()}.json'
    )


def test_device_queue_buffers_with_dlq_and_feeds_batches(
    resources: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    queue = resources["DeviceReadingsQueue"]["Properties"]
    dlq = resources["DeviceReadingsDlq"]["Properties"]
    for props in (queue, dlq):
        assert props["KmsMasterKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeviceReadingsDlq", "Arn"]},
        "maxReceiveCount": 5,
    }
    (mapping,) = [
        m
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "IngestDeviceFunction"}
    ]
    m = mapping["Properties"]
    assert m["EventSourceArn"] == {"Fn::GetAtt": ["DeviceReadingsQueue", "Arn"]}
    assert m["FunctionName"] == {"Ref": "IngestDeviceFunction"}
    assert m["BatchSize"] == 1000
    assert m["MaximumBatchingWindowInSeconds"] == 30
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    timeout = functions["IngestDeviceFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout + m["MaximumBatchingWindowInSeconds"]
    reserved = functions["IngestDeviceFunction"]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"]
    # The pollers' ceiling is the reservation itself when there is one: never throttled into the DLQ.
    assert m["ScalingConfig"]["MaximumConcurrency"]["Fn::If"][:2] == reserved[:2]


# --------------------------------------------------------------------------- outputs and review trail


def test_outputs(cfn: dict[str, Any]) -> None:
    outputs = cfn["Outputs"]
    assert set(outputs) == {
        "ApiUrl",
        "RawBucketName",
        "IdempotencyTableName",
        "PseudonymKeySecretArn",
        "DataKeyArn",
        "DeviceTopicFilter",
        "DevicePolicyName",
        "DeviceReadingsQueueUrl",
        "CuratedBucketName",
        "ArtifactsBucketName",
        "EtlJobName",
        "DataProcessingStateMachineArn",
        "CatalogDatabaseName",
        "CuratedTableName",
        "AlertsTopicArn",
        "ErasureStateMachineArn",
        "AuditBucketName",
        "TrainingStateMachineArn",
        "DeploymentStateMachineArn",
        "ModelPackageGroupName",
        "ModelVersionsTableName",
        "EndpointName",
        "MonitoringBucketName",
        "MonitoringStateMachineArn",
        "TrainingTriggersTableName",
        "DashboardName",
    }
    assert render(outputs["ApiUrl"]["Value"]) == (
        "https://<IngestApi>.execute-api.<AWS::Region>.<AWS::URLSuffix>/<Environment>"
    )
    sql = cfn["Resources"]["DeviceTopicRule"]["Properties"]["TopicRulePayload"]["Sql"]
    assert sql.endswith(f"FROM '{outputs['DeviceTopicFilter']['Value']}'")


def test_every_checkov_skip_is_justified(sam: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, resource in sam["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
        assert len(skip.get("comment", "")) >= 40, f"{name}: {skip['id']} needs a real justification"


# --------------------------------------------------------------------------- data processing

ASL = ROOT / "statemachines" / "data_processing.asl.json"


def test_raw_objects_reach_the_trigger_through_an_eventbridge_rule_and_a_queue(
    resources: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    rule = resources["RawObjectsRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["EventPattern"]["detail"]["bucket"]["name"] == [{"Ref": "RawBucket"}]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "raw/clinical/"}, {"prefix": "raw/device/"}]
    assert rule["Targets"] == [{"Id": "DatasetTriggerQueue", "Arn": {"Fn::GetAtt": ["DatasetTriggerQueue", "Arn"]}}]
    allow = [
        s
        for s in statements(resources["DatasetTriggerQueuePolicy"]["Properties"]["PolicyDocument"])
        if s["Effect"] == "Allow"
    ]
    assert allow == [
        {
            "Sid": "AllowRawObjectsRule",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": ["DatasetTriggerQueue", "Arn"]},
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["RawObjectsRule", "Arn"]}}},
        }
    ]
    (mapping,) = [
        m["Properties"]
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "DatasetTriggerFunction"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["DatasetTriggerQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources["DatasetTriggerQueue"]["Properties"]
    timeout = functions["DatasetTriggerFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout + mapping["MaximumBatchingWindowInSeconds"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DatasetTriggerDlq", "Arn"]}


def test_etl_job_runs_the_repository_script_one_run_at_a_time(sam: dict[str, Any], resources: dict[str, Any]) -> None:
    job = resources["EtlJob"]
    props = job["Properties"]
    assert (ROOT / props["Command"]["ScriptLocation"]).is_file()
    assert props["GlueVersion"] == "5.0" and props["Command"]["Name"] == "glueetl"
    assert props["ExecutionProperty"] == {"MaxConcurrentRuns": 1}
    assert props["SecurityConfiguration"] == {"Ref": "EtlSecurityConfiguration"}
    arguments = props["DefaultArguments"]
    assert render(arguments["--extra-py-files"]) == "s3://<ArtifactsBucket>/glue/dxops_etl.zip"
    # `make deploy` and the local cloud build and upload the library named by each job's Metadata.
    jobs = builders(TEMPLATE)
    assert set(jobs) == {"EtlJob", "ErasureJob"} and all(script.is_file() for script in jobs.values())
    (pin,) = [
        line for line in (ROOT / "requirements" / "dev.lock").read_text().splitlines() if line.startswith("cuallee==")
    ]
    assert arguments["--additional-python-modules"] == pin  # the version the tests run
    encryption = resources["EtlSecurityConfiguration"]["Properties"]["EncryptionConfiguration"]
    assert encryption["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"
    assert encryption["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"


def test_data_processing_writes_are_scoped_to_their_prefixes(resources: dict[str, Any]) -> None:
    etl = resources["EtlJobRole"]
    assert _actions_on(etl, "s3:PutObject") == {
        "<CuratedBucket.Arn>/datasets/*",
        "<CuratedBucket.Arn>/quarantine/*",
        "<ArtifactsBucket.Arn>/glue/*",
    }
    assert "<RawBucket.Arn>/raw/*" in _actions_on(etl, "s3:GetObject")
    published = {"<CuratedBucket.Arn>/datasets/*/manifest.json", "<CuratedBucket.Arn>/datasets/published.json"}
    for glue_role in (etl, resources["ErasureJobRole"]):  # only the state machine's functions publish
        assert _denied_on(glue_role, "s3:PutObject") == _denied_on(glue_role, "s3:DeleteObject") == published
    assert not any(
        r.startswith("<RawBucket") for r in _actions_on(etl, "s3:PutObject") | _actions_on(etl, "s3:DeleteObject")
    )
    assert _actions_on(resources["PublishDatasetVersionFunctionRole"], "s3:PutObject") == published
    assert _actions_on(resources["EvaluateDatasetQualityFunctionRole"], "s3:PutObject") == set()
    assert _actions_on(resources["PrepareDatasetRunFunctionRole"], "s3:PutObject") == set()
    trigger = resources["DatasetTriggerFunctionRole"]
    assert _actions_on(trigger, "states:StartExecution") == {"<DataProcessingStateMachine>"}
    assert _actions_on(resources["IngestApiFunctionRole"], "states:StartExecution") == {"<ErasureStateMachine>"}


def test_state_machine_substitutions_match_its_definition(resources: dict[str, Any]) -> None:
    machine = resources["DataProcessingStateMachine"]["Properties"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == set(machine["DefinitionSubstitutions"])
    assert render(machine["StateMachineName"]) == "dxops-<Environment>-data-processing"


def test_every_failure_ends_in_a_named_alerting_state() -> None:
    states = json.loads(ASL.read_text())["States"]
    fails = {name for name, state in states.items() if state["Type"] == "Fail"}
    assert fails == {"EtlJobFailed", "QualityGateFailed", "PipelineStepFailed", "PublicationFailed"}
    alerts = {name: state for name, state in states.items() if state.get("Resource") == "arn:aws:states:::sns:publish"}
    # Each alert publishes to the alerts topic, then (even if publishing fails) ends in its Fail state.
    for name, alert in alerts.items():
        assert alert["Parameters"]["TopicArn"] == "${AlertsTopicArn}", name
        assert alert["Next"] in fails and {c["Next"] for c in alert["Catch"]} == {alert["Next"]}, name
    assert {a["Next"] for a in alerts.values()} == fails
    # Every other task catches everything into an alert; only alerts lead to Fail states.
    for name, state in states.items():
        if state["Type"] == "Task" and name not in alerts:
            assert [c["ErrorEquals"] for c in state["Catch"]] == [["States.ALL"]], name
            assert {c["Next"] for c in state["Catch"]} <= set(alerts), name
            assert state["Retry"], f"{name}: transient errors are retried"
            assert all(r["BackoffRate"] > 1 for r in state["Retry"]), name
        if name not in alerts:
            assert state.get("Next") not in fails, f"{name} reaches a Fail state without alerting"


def test_a_schedule_also_starts_runs(sam: dict[str, Any]) -> None:
    events = sam["Resources"]["DataProcessingStateMachine"]["Properties"]["Events"]
    (schedule,) = events.values()
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == {"Ref": "DatasetSchedule"}
    assert json.loads(schedule["Properties"]["Input"]) == {"trigger": "schedule"}


def test_runs_that_time_out_or_are_stopped_and_dead_letters_alert(resources: dict[str, Any]) -> None:
    rule = resources["RunsEndedAbnormallyRule"]["Properties"]
    assert rule["EventPattern"]["detail"]["status"] == ["TIMED_OUT", "ABORTED"]  # FAILED alerts from its states
    machines = of_type(resources, "AWS::StepFunctions::StateMachine")
    assert sorted(r["Ref"] for r in rule["EventPattern"]["detail"]["stateMachineArn"]) == sorted(machines)  # every one
    assert rule["Targets"] == [{"Id": "AlertsTopic", "Arn": {"Ref": "AlertsTopic"}}]
    dlqs = {name for name, r in of_type(resources, "AWS::SQS::Queue").items() if name.endswith("Dlq")}
    alarmed = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmActions"] == [{"Ref": "AlertsTopic"}]
        and "Fn::GetAtt" in a["Properties"]["Dimensions"][0]["Value"]
    }
    assert dlqs <= alarmed


# --------------------------------------------------------------------------- model lifecycle

LIFECYCLE_MACHINES = {
    "TrainingStateMachine": ("training", "TrainingRunFailed"),
    "DeploymentStateMachine": ("deployment", "DeploymentFailed"),
}


@pytest.mark.parametrize("logical_id", sorted(LIFECYCLE_MACHINES))
def test_lifecycle_machines_substitute_every_placeholder_and_alert_before_failing(
    sam: dict[str, Any], logical_id: str
) -> None:
    name, fail_state = LIFECYCLE_MACHINES[logical_id]
    props = sam["Resources"][logical_id]["Properties"]
    definition = (ROOT / props["DefinitionUri"]).read_text()
    assert set(re.findall(r"\$\{(\w+)\}", definition)) == set(props["DefinitionSubstitutions"])
    assert render(props["Name"]) == f"dxops-<Environment>-{name}"
    states = json.loads(definition)["States"]
    fails = {n for n, s in states.items() if s["Type"] == "Fail"}
    assert fails == {fail_state}
    # Only an SNS alert leads to the Fail state; every task retries what is transient.
    for state_name, state in states.items():
        if state.get("Next") in fails:
            assert state["Resource"] == "arn:aws:states:::sns:publish", state_name
        if state["Type"] == "Task" and not state["Resource"].endswith("sns:publish"):
            assert state.get("Retry"), f"{state_name}: transient errors are retried"
            assert state.get("Catch"), f"{state_name}: failures are caught"


def test_only_a_real_approval_of_this_groups_packages_reaches_the_deployment_trigger(sam: dict[str, Any]) -> None:
    (event,) = sam["Resources"]["DeploymentTriggerFunction"]["Properties"]["Events"].values()
    pattern = event["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.sagemaker"]
    assert pattern["detail-type"] == ["SageMaker Model Package State Change"]
    # Every state change of the group (the function decides on transitions, not on the status alone).
    assert set(pattern["detail"]) == {"ModelPackageGroupName"}


# --------------------------------------------------------------------------- monitoring


def test_drift_and_quality_alarms_start_retraining_and_slo_alarms_only_if_configured(resources: dict[str, Any]) -> None:
    rules = {
        name: r["Properties"]
        for name, r in of_type(resources, "AWS::Events::Rule").items()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["CloudWatch Alarm State Change"]
    }
    (rule,) = rules.values()
    assert rule["EventPattern"]["detail"] == {"state": {"value": ["ALARM"]}}
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["StartTrainingFunction", "Arn"]}
    always = [{"Fn::GetAtt": ["DriftAlarm", "Arn"]}, {"Fn::GetAtt": ["QualityDropAlarm", "Arn"]}]
    condition, with_slo, without_slo = rule["EventPattern"]["resources"]["Fn::If"]
    assert condition == "RetrainsOnSloBreach" and without_slo == always
    assert with_slo == [
        *always,
        {"Fn::GetAtt": ["ApiLatencySloAlarm", "Arn"]},
        {"Fn::GetAtt": ["ApiErrorSloAlarm", "Arn"]},
    ]


def test_the_alarms_judge_the_monitors_metrics_with_the_parameters_the_job_gets(resources: dict[str, Any]) -> None:
    drift = resources["DriftAlarm"]["Properties"]
    # The job's verdict: drifted features above DriftShareThreshold (its flag), or prediction or presentation drift.
    assert (drift["MetricName"], drift["ComparisonOperator"], drift["Threshold"]) == (
        "DriftDetected",
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert drift["Period"] == {"Ref": "MonitoringPeriodSeconds"}
    assert drift["EvaluationPeriods"] == drift["DatapointsToAlarm"] == {"Ref": "DriftAlarmPeriods"}
    assert drift["TreatMissingData"] == "notBreaching"  # no data is never drift
    variables = resources["PrepareMonitoringRunFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["DRIFT_SHARE_THRESHOLD"] == {"Ref": "DriftShareThreshold"}  # the job's --share-threshold
    assert variables["MONITORING_PERIOD_SECONDS"] == {"Ref": "MonitoringPeriodSeconds"}  # the job's window
    quality = resources["QualityDropAlarm"]["Properties"]
    assert (quality["MetricName"], quality["Threshold"]) == ("QualityDrop", 1)
    for alarm in (drift, quality):
        assert alarm["Namespace"] == {"Fn::Sub": "dxops/${Environment}"}
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "monitoring"}]


def test_the_dashboard_shows_only_metrics_that_dxops_publishes(resources: dict[str, Any]) -> None:
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    substituted = re.sub(r"\$\{[A-Za-z0-9.:]+\}", "0", body)
    widgets = json.loads(substituted)["widgets"]
    assert {w["type"] for w in widgets} == {"text", "metric", "alarm"}
    names = set()
    for widget in widgets:
        namespace = None
        for row in widget["properties"].get("metrics", []):
            namespace = row[0] if isinstance(row[0], str) and row[0] != "." else namespace  # "." repeats it
            if isinstance(row[0], dict):  # a SEARCH expression
                names.update(re.findall(r'MetricName=\\?"(\w+)\\?"', row[0]["expression"]))
            elif namespace == "dxops/0" and row[1] != ".":
                names.add(row[1])
    sources = "\n".join(p.read_text() for p in (TEMPLATE.parent / "functions").glob("*/app.py"))
    published = set(re.findall(r'"([A-Z][A-Za-z0-9]+)"', sources))  # metric names are CamelCase literals
    assert names and names <= published, sorted(names - published)
    assert {
        "DriftDetected",
        "DriftShare",
        "LiveMacroF1",
        "PredictionsByDiagnosis",
        "TrainingTriggersSuppressed",
    } <= names
