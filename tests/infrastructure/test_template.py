"""Static checks of template.yaml: no AWS account, no network.

The SAM template is translated to plain CloudFormation with aws-sam-translator (as
`sam validate` does) so that the assertions see what CloudFormation would deploy: the
generated IAM roles, API Gateway stage and methods, event source mapping and so on.
"""

from __future__ import annotations

import copy
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
    IngestInboxSettings,
    ModelsApiSettings,
    MonitoringSettings,
    PredictApiSettings,
    TrainingRunSettings,
    TrainingTriggerSettings,
)
from tools.publish_glue_libraries import builders

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# AWS-managed policies the stack's roles may carry: only those SAM attaches on its own, each reviewed.
# What each grants (AWS's documents, as reviewed): no wildcard action; their resource is "*", the
# reason each is listed. A managed policy not listed here fails the IAM test, a broad one always.
REVIEWED_MANAGED_POLICIES: dict[str, tuple[str, frozenset[str]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": (
        "SAM, every function: writing its own logs",
        frozenset({"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}),
    ),
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": (
        "SAM, Tracing: Active; X-Ray's write actions have no resource-level permissions",
        frozenset(
            {
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            }
        ),
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": (
        "SAM, SQS event sources: the poller reads the function's queue (the queues are KMS-encrypted, "
        "so reading another queue also needs its key)",
        frozenset(
            {
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            }
        ),
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": (
        "SAM, Globals VpcConfig (even under a false condition): the function's network interfaces in the "
        "VPC; outside a VPC FunctionsOutsideVpcGuard denies them",
        frozenset(
            {
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            }
        ),
    ),
}
# Whatever the review says, these names are never attached (administrator, power-user, full access).
BROAD_MANAGED_POLICY = re.compile(r"(?i)(AdministratorAccess|PowerUserAccess|FullAccess|:policy/ReadOnlyAccess$)")

# Environment variables the handlers read (the contract with functions/*/app.py).
# The settings model each function parses its environment into (dxops/settings.py): the template
# must set exactly the variables the model reads, plus Powertools' own.
SETTINGS_MODELS = {
    "IngestApiFunction": IngestApiSettings,
    "IngestDeviceFunction": IngestDeviceSettings,
    "IngestInboxFunction": IngestInboxSettings,
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
    """A policy's statements; a statement under Fn::If counts with both its branches (what any
    parameter values can deploy), AWS::NoValue with none."""
    found = []
    for statement in as_list(document["Statement"]):
        if set(statement) == {"Fn::If"}:
            found += [b for b in statement["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}]
        else:
            found.append(statement)
    return found


_NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


def under(value: Any, conditions: dict[str, bool]) -> Any:
    """The value as deployed when the named conditions hold (True) or not: their Fn::If resolved,
    AWS::NoValue removed (Fn::If of other conditions stays)."""
    if isinstance(value, list):
        return [v for v in (under(item, conditions) for item in value) if v is not _NO_VALUE]
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            if condition not in conditions:
                return value
            return under(when_true if conditions[condition] else when_false, conditions)
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        return {k: v for k, v in ((k, under(v, conditions)) for k, v in value.items()) if v is not _NO_VALUE}
    return value


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    """template.yaml as written (SAM resources, Globals)."""
    template: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return template


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """A SAM template translated to the plain CloudFormation that a stack deploys: generated roles
    with SAM's policy templates expanded, managed policy names turned into ARNs, and so on."""
    template = copy.deepcopy(template)
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
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """template.yaml translated to plain CloudFormation."""
    return translate(sam)


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


def test_raw_bucket_lifecycle_expires_quarantine_inbox_and_noncurrent_versions_only(
    resources: dict[str, Any],
) -> None:
    rules = resources["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    expiring = [rule for rule in rules if "ExpirationInDays" in rule]
    # Only quarantined objects and inbox files left behind (not ingested) expire; raw data is kept.
    assert expiring == [
        {
            "Id": "ExpireQuarantine",
            "Status": "Enabled",
            "Prefix": "quarantine/",
            "ExpirationInDays": {"Ref": "QuarantineRetentionDays"},
        },
        {
            "Id": "ExpireInbox",
            "Status": "Enabled",
            "Prefix": "inbox/",
            "ExpirationInDays": {"Ref": "InboxRetentionDays"},
        },
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
    assert set(services) == {
        "AllowCloudWatchLogsForDxopsLogGroups",
        "AllowEventAndAlarmSenders",
        "AllowCloudTrailToEncryptAuditLogs",  # CreateAuditTrail only (test_audit_trail_...)
        "AllowCloudTrailToDescribeKey",
    }
    publishers = services["AllowEventAndAlarmSenders"]
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
        "IngestInboxLogGroup",
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
                assert fn in {"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join"}, (name, var)
                if fn == "Fn::Join":  # a list parameter as one comma-separated variable
                    assert arg[0] == "," and set(arg[1]) == {"Ref"}, (name, var)
                    targets = [arg[1]["Ref"]]
                elif fn == "Fn::Sub":
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


# Actions that support no resource-level permissions: a statement may grant them on "*" only, and
# only these. Each with the reason the stack needs it.
_LOG_DELIVERY = "Step Functions' log delivery to a machine's log group (its Logging configuration)"
_VPC = "SageMaker in the VPC (VpcSubnetIds; under the InVpc condition only)"
UNSCOPABLE_ACTIONS: dict[str, str] = {
    "logs:CreateLogDelivery": _LOG_DELIVERY,
    "logs:GetLogDelivery": _LOG_DELIVERY,
    "logs:UpdateLogDelivery": _LOG_DELIVERY,
    "logs:DeleteLogDelivery": _LOG_DELIVERY,
    "logs:ListLogDeliveries": _LOG_DELIVERY,
    "logs:PutResourcePolicy": _LOG_DELIVERY,
    "logs:DescribeResourcePolicies": _LOG_DELIVERY,
    "logs:DescribeLogGroups": _LOG_DELIVERY,
    "cloudwatch:PutMetricData": "SageMaker jobs' metrics; the statement limits it by a cloudwatch:namespace condition",
    "ecr:GetAuthorizationToken": "SageMaker pulls the framework image (the pull itself is scoped to its repository)",
    "ec2:DeleteNetworkInterfacePermission": _VPC,
    "ec2:DescribeNetworkInterfaces": _VPC,
    "ec2:DescribeVpcs": _VPC,
    "ec2:DescribeDhcpOptions": _VPC,
    "ec2:DescribeSubnets": _VPC,
    "ec2:DescribeSecurityGroups": _VPC,
}
EXPECTED_ROLES = {
    "IngestApiFunctionRole",
    "IngestDeviceFunctionRole",
    "IngestInboxFunctionRole",
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


def _role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", []) for s in statements(policy["PolicyDocument"])]


def identity_policies(resources: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every identity policy statement a deployed stack gets, by where it is: the roles' inline policies
    (SAM's generated roles included, policy templates expanded), AWS::IAM::Policy and
    AWS::IAM::ManagedPolicy resources. Statements under a condition count in both branches."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            found[name] = _role_statements(resource)
        elif resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            found[name] = statements(resource["Properties"]["PolicyDocument"])
    return found


def managed_policy_arns(resources: dict[str, Any]) -> dict[str, list[str]]:
    """The managed policies each role, group or user has attached."""
    return {
        name: [render(arn) for arn in r["Properties"].get("ManagedPolicyArns", [])]
        for name, r in resources.items()
        if r["Type"] in {"AWS::IAM::Role", "AWS::IAM::Group", "AWS::IAM::User"}
    }


def wildcard_findings(name: str, statement: dict[str, Any]) -> list[str]:
    """What is wrong with one statement: a grant through NotAction/NotResource, a wildcard action
    ("*", "svc:*" or any pattern), a "*" resource for an action that supports resource-level
    permissions, object access to a whole bucket. A Deny only takes away: it is never a finding."""
    if statement["Effect"] == "Deny":
        return []
    if statement["Effect"] != "Allow":
        return [f"{name}: effect {statement['Effect']!r}"]
    findings = [f"{name}: {key} grants everything else" for key in ("NotAction", "NotResource") if key in statement]
    actions = [str(a) for a in as_list(statement.get("Action", []))]
    resources = [render(r) for r in as_list(statement.get("Resource", []))]
    wildcards = [a for a in actions if "*" in a]
    if wildcards:
        on = "on a wildcard resource" if "*" in resources else "on " + ", ".join(resources)
        findings.append(f"{name}: wildcard action {wildcards} {on}")
    if "*" in resources and not set(actions) <= set(UNSCOPABLE_ACTIONS):
        unscopable = sorted(set(actions) - set(UNSCOPABLE_ACTIONS))
        findings.append(f'{name}: {unscopable} on every resource ("*"), though they can be scoped')
    findings += [f"{name}: object access to all of {r}" for r in resources if r.endswith(".Arn>/*")]
    return findings


def managed_policy_findings(name: str, arn: str) -> list[str]:
    if BROAD_MANAGED_POLICY.search(arn):
        return [f"{name}: broad managed policy {arn}"]
    if arn not in REVIEWED_MANAGED_POLICIES:
        return [f"{name}: managed policy {arn} not reviewed (REVIEWED_MANAGED_POLICIES)"]
    return []


def iam_findings(resources: dict[str, Any]) -> list[str]:
    findings = [
        f for name, stmts in identity_policies(resources).items() for s in stmts for f in wildcard_findings(name, s)
    ]
    return findings + [
        f
        for name, arns in managed_policy_arns(resources).items()
        for arn in arns
        for f in managed_policy_findings(name, arn)
    ]


def test_no_policy_of_the_stack_grants_wildcards_or_unscoped_resources(resources: dict[str, Any]) -> None:
    assert set(of_type(resources, "AWS::IAM::Role")) == EXPECTED_ROLES
    assert not of_type(resources, "AWS::IAM::User") and not of_type(resources, "AWS::IAM::Group"), "no long-lived keys"
    policies = identity_policies(resources)
    assert set(policies) == EXPECTED_ROLES | {"FunctionsOutsideVpcGuard"}
    assert all(policies[name] for name in EXPECTED_ROLES), "every role has its own scoped policy"
    assert iam_findings(resources) == []
    # The reviewed managed policies grant no wildcard action either, and each is in use.
    attached = {arn for arns in managed_policy_arns(resources).values() for arn in arns}
    assert attached == set(REVIEWED_MANAGED_POLICIES)
    for arn, (reason, actions) in REVIEWED_MANAGED_POLICIES.items():
        assert reason and actions and not [a for a in actions if "*" in a], arn


def test_every_unscopable_action_granted_on_everything_is_one_the_stack_uses(resources: dict[str, Any]) -> None:
    on_everything = {
        action
        for stmts in identity_policies(resources).values()
        for s in stmts
        if s["Effect"] == "Allow" and "*" in as_list(s["Resource"])
        for action in as_list(s["Action"])
    }
    assert on_everything == set(UNSCOPABLE_ACTIONS)  # no stale exception
    (metrics,) = [
        s for s in _role_statements(resources["SageMakerExecutionRole"]) if s["Action"] == "cloudwatch:PutMetricData"
    ]
    assert set(metrics["Condition"]["StringLike"]["cloudwatch:namespace"]) == {"/aws/sagemaker/*", "aws/sagemaker/*"}


PLANTED = {
    "wildcard action on a wildcard resource": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
    "everything": {"Effect": "Allow", "Action": "*", "Resource": "*"},
    "wildcard action on one table": {
        "Effect": "Allow",
        "Action": "dynamodb:*",
        "Resource": {"Fn::GetAtt": ["ModelVersionsTable", "Arn"]},
    },
    "scopable action on every resource": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
    "not action": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
}


@pytest.mark.parametrize("planted", sorted(PLANTED))
@pytest.mark.parametrize("where", ["function", "state machine", "role", "policy resource"])
def test_the_iam_check_fires_on_a_planted_wildcard_statement(sam: dict[str, Any], planted: str, where: str) -> None:
    """The check cannot pass vacuously: a wildcard planted anywhere a policy can live is found in the
    translated template."""
    template = copy.deepcopy(sam)
    statement = PLANTED[planted]
    document = {"Version": "2012-10-17", "Statement": [statement]}
    target = {
        "function": "ModelsApiFunction",
        "state machine": "TrainingStateMachine",
        "role": "SageMakerExecutionRole",
        "policy resource": "Planted",
    }[where]
    if where in {"function", "state machine"}:
        template["Resources"][target]["Properties"]["Policies"].append(document)
    elif where == "role":
        template["Resources"][target]["Properties"]["Policies"].append(
            {"PolicyName": "planted", "PolicyDocument": document}
        )
    else:
        template["Resources"][target] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {"PolicyName": "planted", "PolicyDocument": document, "Roles": [{"Ref": "EtlJobRole"}]},
        }
    findings = iam_findings(translate(template)["Resources"])
    role = {"function": "ModelsApiFunctionRole", "state machine": "TrainingStateMachineRole"}.get(where, target)
    assert findings and all(f.startswith(f"{role}: ") for f in findings), findings


@pytest.mark.parametrize("policy", ["AmazonS3FullAccess", "AdministratorAccess", "AmazonSageMakerReadOnly"])
def test_the_iam_check_fires_on_an_unreviewed_or_broad_managed_policy(sam: dict[str, Any], policy: str) -> None:
    template = copy.deepcopy(sam)
    template["Resources"]["PredictApiFunction"]["Properties"]["Policies"].append(policy)  # SAM: a managed policy name
    findings = iam_findings(translate(template)["Resources"])
    assert len(findings) == 1 and findings[0].startswith("PredictApiFunctionRole: "), findings
    assert policy in findings[0]


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
    assert _actions_on(resources["IngestInboxFunctionRole"], "s3:PutObject") == {
        "<RawBucket.Arn>/raw/clinical/*",
        "<RawBucket.Arn>/quarantine/clinical/*",
        "<RawBucket.Arn>/reports/inbox/*",
    }
    # the inbox function reads (and deletes) the inbox only: not the raw zone
    assert _actions_on(resources["IngestInboxFunctionRole"], "s3:GetObject") == {"<RawBucket.Arn>/inbox/*"}
    assert _actions_on(resources["IngestInboxFunctionRole"], "s3:DeleteObjectVersion") == {"<RawBucket.Arn>/inbox/*"}
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
        ("/phenopackets", "post"),
        ("/fhir/bundles", "post"),
        ("/fhir/predict", "post"),
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
        "AuditTrailBucketName",
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
    (target,) = rule["Targets"]
    assert (target["Id"], target["Arn"]) == ("AlertsTopic", {"Ref": "AlertsTopic"})
    # Only the run's identity and status reach the alert, never its input or output.
    assert not any("input" in path or "output" in path for path in target["InputTransformer"]["InputPathsMap"].values())
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


# --------------------------------------------------------------------------- security controls (docs/security.md)

DATA_KEY = {"Fn::GetAtt": ["DataKey", "Arn"]}


def _bucket_key(resources: dict[str, Any], props: dict[str, Any]) -> Any:
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    default = rule["ServerSideEncryptionByDefault"]
    return default.get("KMSMasterKeyID") if default["SSEAlgorithm"] == "aws:kms" else default["SSEAlgorithm"]


def _table_key(resources: dict[str, Any], props: dict[str, Any]) -> Any:
    sse = props["SSESpecification"]
    return sse["KMSMasterKeyId"] if (sse["SSEEnabled"], sse["SSEType"]) == (True, "KMS") else None


def _security_configuration_key(resources: dict[str, Any], props: dict[str, Any]) -> Any:
    encryption = props["EncryptionConfiguration"]
    (s3,) = encryption["S3Encryptions"]
    modes = (
        s3["S3EncryptionMode"],
        encryption["CloudWatchEncryption"]["CloudWatchEncryptionMode"],
        encryption["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"],
    )
    keys = [
        s3["KmsKeyArn"],
        encryption["CloudWatchEncryption"]["KmsKeyArn"],
        encryption["JobBookmarksEncryption"]["KmsKeyArn"],
    ]
    return keys[0] if modes == ("SSE-KMS", "SSE-KMS", "CSE-KMS") and keys.count(keys[0]) == 3 else None


def _glue_job_key(resources: dict[str, Any], props: dict[str, Any]) -> Any:
    configuration = resources[props["SecurityConfiguration"]["Ref"]]["Properties"]
    return _security_configuration_key(resources, configuration)


def _state_machine_log_key(resources: dict[str, Any], props: dict[str, Any]) -> Any:
    # Execution data: no PHI in the logs (IncludeExecutionData false); the log group has the key.
    # The execution history itself is encrypted by Step Functions with an AWS-owned key (SAM's
    # state machine offers no EncryptionConfiguration: docs/security.md, known limits).
    logging = props["LoggingConfiguration"]
    assert logging["IncludeExecutionData"] is False
    (destination,) = logging["Destinations"]
    (group, _) = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"]
    return resources[group]["Properties"]["KmsKeyId"]


# Resource types that hold data at rest, and where their key is named. A resource type of the stack in
# neither table fails test_every_resource_type_is_classified_for_encryption_at_rest.
AT_REST = {
    "AWS::S3::Bucket": _bucket_key,
    "AWS::DynamoDB::Table": _table_key,
    "AWS::SQS::Queue": lambda resources, props: props.get("KmsMasterKeyId"),
    "AWS::SNS::Topic": lambda resources, props: props.get("KmsMasterKeyId"),
    "AWS::Logs::LogGroup": lambda resources, props: props.get("KmsKeyId"),
    "AWS::SecretsManager::Secret": lambda resources, props: props.get("KmsKeyId"),
    "AWS::Lambda::Function": lambda resources, props: props.get("KmsKeyArn"),  # environment variables
    "AWS::CloudTrail::Trail": lambda resources, props: props.get("KMSKeyId"),
    "AWS::Glue::SecurityConfiguration": _security_configuration_key,
    "AWS::Glue::Job": _glue_job_key,
    "AWS::StepFunctions::StateMachine": _state_machine_log_key,
}
NOT_WITH_THE_DATA_KEY = {
    "AccessLogsBucket": "S3 server access log delivery writes to SSE-S3 (AES256) buckets only",
}
NO_DATA_AT_REST = {
    "AWS::KMS::Key": "the key itself (rotated yearly)",
    "AWS::KMS::Alias": "a name",
    "AWS::IAM::Role": "permissions",
    "AWS::IAM::Policy": "permissions",
    "AWS::S3::BucketPolicy": "permissions",
    "AWS::SQS::QueuePolicy": "permissions",
    "AWS::SNS::TopicPolicy": "permissions",
    "AWS::SNS::Subscription": "an e-mail address of the operators, no patient data",
    "AWS::IoT::Policy": "permissions",
    "AWS::IoT::TopicRule": "routing; readings pass to the KMS queue, errors to the KMS raw bucket",
    "AWS::Lambda::LayerVersion": "code",
    "AWS::Lambda::Permission": "permissions",
    "AWS::Lambda::EventSourceMapping": "wiring (the queues hold the messages)",
    "AWS::Lambda::EventInvokeConfig": "wiring (the KMS dead-letter queue holds failed events)",
    "AWS::ApiGateway::RestApi": "routes",
    "AWS::ApiGateway::Stage": "settings; caching is off, so no response is stored",
    "AWS::ApiGateway::Deployment": "a snapshot of routes",
    "AWS::Events::Rule": "routing",
    "AWS::Scheduler::Schedule": "a constant input, no patient data",
    "AWS::CloudWatch::Alarm": "metrics (numbers, no patient data)",
    "AWS::CloudWatch::Dashboard": "a layout",
    "AWS::Glue::Database": "catalog metadata (names); Data Catalog encryption is an account setting (docs/security.md)",
    "AWS::Glue::Table": "catalog metadata (columns, location); the data is in the KMS curated bucket",
    "AWS::SageMaker::ModelPackageGroup": "a name; versions point to KMS-encrypted artifacts",
}


def test_every_resource_type_is_classified_for_encryption_at_rest(resources: dict[str, Any]) -> None:
    types = {r["Type"] for r in resources.values()}
    assert not set(AT_REST) & set(NO_DATA_AT_REST)
    assert types <= set(AT_REST) | set(NO_DATA_AT_REST), sorted(types - set(AT_REST) - set(NO_DATA_AT_REST))
    assert set(AT_REST) <= types  # each check checks something


@pytest.mark.parametrize("resource_type", sorted(AT_REST))
def test_data_at_rest_is_encrypted_with_the_data_key(resources: dict[str, Any], resource_type: str) -> None:
    found = of_type(resources, resource_type)
    assert found
    for name, resource in found.items():
        key = AT_REST[resource_type](resources, resource["Properties"])
        if name in NOT_WITH_THE_DATA_KEY:
            assert key == "AES256", name  # encrypted all the same
            continue
        assert key == DATA_KEY, (name, key)


def test_the_sagemaker_jobs_and_endpoints_are_given_the_data_key(resources: dict[str, Any]) -> None:
    # The jobs and the endpoint configuration are built by the functions (dxops.domain), which put the
    # key on every volume and output (tests/unit/test_training_runs.py, test_deployments.py,
    # test_monitoring.py); here: the functions are given the key, and the role may use it.
    for name in (
        "PrepareTrainingRunFunction",
        "ConcludeTrainingRunFunction",
        "PrepareDeploymentFunction",
        "VerifyDeploymentFunction",
        "PrepareMonitoringRunFunction",
        "PublishMonitoringResultsFunction",
    ):
        assert resources[name]["Properties"]["Environment"]["Variables"]["DATA_KEY_ARN"] == DATA_KEY, name
    role = resources["SageMakerExecutionRole"]
    assert {"kms:GenerateDataKey", "kms:Decrypt", "kms:CreateGrant"} <= {
        a for s in _role_statements(role) if DATA_KEY in as_list(s["Resource"]) for a in as_list(s["Action"])
    }


def _tls_denies(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for s in statements(document)
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]


# Resource type -> (its policy's type, the property naming the resources, the denied actions, the
# resources a deny must name for it).
TLS_POLICIES = {
    "AWS::S3::Bucket": ("AWS::S3::BucketPolicy", "Bucket", "s3:*", lambda n: {f"<{n}.Arn>", f"<{n}.Arn>/*"}),
    "AWS::SQS::Queue": ("AWS::SQS::QueuePolicy", "Queues", "sqs:*", lambda n: {f"<{n}.Arn>"}),
    "AWS::SNS::Topic": ("AWS::SNS::TopicPolicy", "Topics", "sns:Publish", lambda n: {f"<{n}>"}),
}


@pytest.mark.parametrize("resource_type", sorted(TLS_POLICIES))
def test_every_bucket_queue_and_topic_refuses_requests_without_tls(
    resources: dict[str, Any], resource_type: str
) -> None:
    policy_type, targets_key, action, expected = TLS_POLICIES[resource_type]
    denied: dict[str, set[str]] = {}
    conditions: dict[str, str | None] = {}
    for policy in of_type(resources, policy_type).values():
        props = policy["Properties"]
        for target in as_list(props[targets_key]):
            name = target["Ref"]
            conditions[name] = policy.get("Condition")
            for deny in _tls_denies(props["PolicyDocument"]):
                assert deny["Action"] == action, (name, deny)
                denied.setdefault(name, set()).update(render(r) for r in as_list(deny["Resource"]))
    for name, resource in of_type(resources, resource_type).items():
        assert name in denied, f"{name} accepts requests without TLS"
        assert expected(name) <= denied[name], name
        assert conditions[name] == resource.get("Condition"), f"{name}: its policy exists whenever it does"


# The expiry rules of each bucket's current objects: prefix (None: the whole bucket) -> days.
EXPIRY = {
    "AccessLogsBucket": {None: {"Ref": "LogRetentionDays"}},
    # accepted raw data is kept; inbox files are deleted once ingested, and expire if never ingested
    "RawBucket": {"quarantine/": {"Ref": "QuarantineRetentionDays"}, "inbox/": {"Ref": "InboxRetentionDays"}},
    "CuratedBucket": {"quarantine/": {"Ref": "QuarantineRetentionDays"}},  # dataset versions are kept
    "ArtifactsBucket": {"glue/tmp/": 7},  # code, models and evidence are kept
    "MonitoringBucket": {
        prefix: {"Ref": "MonitoringRetentionDays"}
        for prefix in ("capture/", "predictions/", "diagnoses/", "monitoring/runs/")
    },
    "AuditBucket": {None: {"Ref": "AuditRetentionDays"}},  # after the Object Lock retention
    "AuditTrailBucket": {None: {"Ref": "AuditRetentionDays"}},
}


def test_every_bucket_has_retention_rules(resources: dict[str, Any]) -> None:
    assert set(of_type(resources, "AWS::S3::Bucket")) == set(EXPIRY), "a new bucket needs its retention here"


@pytest.mark.parametrize("bucket", sorted(EXPIRY))
def test_bucket_lifecycle_expires_what_its_contents_call_for(resources: dict[str, Any], bucket: str) -> None:
    props = resources[bucket]["Properties"]
    rules = props["LifecycleConfiguration"]["Rules"]
    assert rules and all(rule["Status"] == "Enabled" for rule in rules)
    expiring = {rule.get("Prefix"): rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule}
    assert expiring == EXPIRY[bucket]
    whole_bucket = [rule for rule in rules if "Prefix" not in rule]
    assert any(rule.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 7} for rule in whole_bucket)
    if props.get("VersioningConfiguration") == {"Status": "Enabled"}:  # older versions expire too
        assert any("NoncurrentVersionExpiration" in rule for rule in whole_bucket), bucket
    if props.get("ObjectLockEnabled"):  # write-once for the retention, expired after it
        retention = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        assert retention == {"Mode": "COMPLIANCE", "Days": {"Ref": "AuditRetentionDays"}}
        assert expiring == {None: retention["Days"]}


def test_audit_retention_defaults_to_six_years(cfn: dict[str, Any]) -> None:
    assert cfn["Parameters"]["AuditRetentionDays"]["Default"] == 2190


# --- VPC option


def test_the_vpc_is_an_option_off_by_default(cfn: dict[str, Any]) -> None:
    parameters = cfn["Parameters"]
    for name in ("VpcSubnetIds", "VpcSecurityGroupIds"):
        assert (parameters[name]["Type"], parameters[name]["Default"]) == ("CommaDelimitedList", "")
    no_subnets = {"Fn::Equals": [{"Fn::Join": ["", {"Ref": "VpcSubnetIds"}]}, ""]}
    assert cfn["Conditions"]["InVpc"] == {"Fn::Not": [no_subnets]}
    assert cfn["Conditions"]["OutsideVpc"] == no_subnets

    # Either list without the other fails at deploy, not at the first job.
    def given(name: str) -> dict[str, Any]:
        return {"Fn::Not": [{"Fn::EachMemberEquals": [{"Ref": name}, ""]}]}

    required = [(rule["RuleCondition"], [a["Assert"] for a in rule["Assertions"]]) for rule in cfn["Rules"].values()]
    assert sorted(required, key=str) == sorted(
        [
            (given("VpcSubnetIds"), [given("VpcSecurityGroupIds")]),
            (given("VpcSecurityGroupIds"), [given("VpcSubnetIds")]),
        ],
        key=str,
    )


VPC_ACCESS_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
VPC_ENI_ACTIONS = {a for a in REVIEWED_MANAGED_POLICIES[VPC_ACCESS_POLICY][1] if a.startswith("ec2:")}


@pytest.mark.parametrize("in_vpc", [False, True], ids=["default-no-vpc", "vpc"])
def test_functions_and_sagemaker_get_the_vpc_and_its_permissions_only_when_given(
    resources: dict[str, Any], functions: dict[str, dict[str, Any]], in_vpc: bool
) -> None:
    conditions = {"InVpc": in_vpc, "OutsideVpc": not in_vpc, "CreatesAuditTrail": True}
    for name, function in functions.items():
        config = under(function["Properties"], conditions).get("VpcConfig")
        expected = {"SubnetIds": {"Ref": "VpcSubnetIds"}, "SecurityGroupIds": {"Ref": "VpcSecurityGroupIds"}}
        assert config == (expected if in_vpc else None), name
        variables = function["Properties"]["Environment"]["Variables"]
        if "VPC_SUBNET_IDS" in EXPECTED_ENV[name]:  # the functions that build SageMaker requests
            assert variables["VPC_SUBNET_IDS"] == {"Fn::Join": [",", {"Ref": "VpcSubnetIds"}]}, name
            assert variables["VPC_SECURITY_GROUP_IDS"] == {"Fn::Join": [",", {"Ref": "VpcSecurityGroupIds"}]}, name
    assert {n for n in functions if "VPC_SUBNET_IDS" in EXPECTED_ENV[n]} == {
        "PrepareTrainingRunFunction",
        "ConcludeTrainingRunFunction",
        "PrepareDeploymentFunction",
        "VerifyDeploymentFunction",
        "PrepareMonitoringRunFunction",
        "PublishMonitoringResultsFunction",
    }
    # SAM attaches the VPC access policy whatever the condition; outside a VPC the guard takes its
    # network-interface actions away from every function role.
    guard = resources["FunctionsOutsideVpcGuard"]
    assert guard["Condition"] == "OutsideVpc"
    assert {r["Ref"] for r in guard["Properties"]["Roles"]} == {f"{name}Role" for name in functions}
    (deny,) = statements(guard["Properties"]["PolicyDocument"])
    assert deny["Effect"] == "Deny" and deny["Resource"] == "*" and set(deny["Action"]) == VPC_ENI_ACTIONS
    # The SageMaker jobs and model: their role creates their network interfaces in the VPC only.
    role = under(resources["SageMakerExecutionRole"]["Properties"], conditions)
    ec2 = {
        action
        for policy in role["Policies"]
        for s in as_list(policy["PolicyDocument"]["Statement"])
        for action in as_list(s["Action"])
        if action.startswith("ec2:")
    }
    assert ec2 == (
        {
            "ec2:CreateNetworkInterface",
            "ec2:CreateNetworkInterfacePermission",
            "ec2:DeleteNetworkInterface",
            "ec2:DeleteNetworkInterfacePermission",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeVpcs",
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
        }
        if in_vpc
        else set()
    )


def _choice_into_vpc(states: dict[str, Any], choice: str, plain: str, field: str) -> None:
    """A Choice sends a request naming a VpcConfig to a copy of the task that passes it; the copy
    differs from the task by that one parameter (an absent field cannot be passed through)."""
    in_vpc = f"{plain}InVpc"
    assert states[choice] == {
        "Type": "Choice",
        "Comment": states[choice]["Comment"],
        "Choices": [{"Variable": f"$.{field}.VpcConfig", "IsPresent": True, "Next": in_vpc}],
        "Default": plain,
    }
    assert states[in_vpc]["Parameters"] == {**states[plain]["Parameters"], "VpcConfig.$": f"$.{field}.VpcConfig"}
    for key in ("Resource", "Retry", "Catch", "Next", "ResultPath"):
        assert states[in_vpc].get(key) == states[plain].get(key), (in_vpc, key)
    assert [n for n, s in states.items() if plain in {s.get("Next"), s.get("Default")} and s["Type"] != "Choice"] == []


def test_the_state_machines_pass_the_vpc_of_the_requests_to_sagemaker() -> None:
    machines = {
        name: json.loads((ROOT / "statemachines" / f"{name}.asl.json").read_text())["States"]
        for name in ("training", "deployment", "monitoring")
    }
    training, deployment, monitoring = machines["training"], machines["deployment"], machines["monitoring"]
    assert training["PrepareRun"]["Next"] == "TrainingNetwork"
    _choice_into_vpc(training, "TrainingNetwork", "TrainCandidate", "training_job")
    assert deployment["PrepareDeployment"]["Next"] == "ModelNetwork"
    _choice_into_vpc(deployment, "ModelNetwork", "CreateModel", "model")
    # Processing jobs always name a NetworkConfig (with the VPC inside when there is one).
    assert training["CompareWithChampion"]["Parameters"]["NetworkConfig.$"] == "$.comparison_job.NetworkConfig"
    assert monitoring["RunMonitor"]["Parameters"]["NetworkConfig.$"] == "$.processing_job.NetworkConfig"


# --- Audit trail

TRAIL_ARN = "arn:<AWS::Partition>:cloudtrail:<AWS::Region>:<AWS::AccountId>:trail/dxops-<Environment>-audit"


def test_the_audit_trail_records_management_and_data_events_into_a_write_once_bucket(
    cfn: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert (cfn["Parameters"]["CreateAuditTrail"]["Default"], cfn["Conditions"]["CreatesAuditTrail"]) == (
        "true",
        {"Fn::Equals": [{"Ref": "CreateAuditTrail"}, "true"]},
    )
    trail = resources["AuditTrail"]
    assert trail["Condition"] == "CreatesAuditTrail"
    assert trail["DependsOn"] == "AuditTrailBucketPolicy"
    props = trail["Properties"]
    assert TRAIL_ARN.endswith(":trail/" + render(props["TrailName"]))
    assert props["S3BucketName"] == {"Ref": "AuditTrailBucket"}
    for flag in ("IsLogging", "IsMultiRegionTrail", "IncludeGlobalServiceEvents", "EnableLogFileValidation"):
        assert props[flag] is True, flag
    (selector,) = props["EventSelectors"]
    assert (selector["ReadWriteType"], selector["IncludeManagementEvents"]) == ("All", True)
    data = {d["Type"]: {render(v) for v in d["Values"]} for d in selector["DataResources"]}
    buckets = set(of_type(resources, "AWS::S3::Bucket")) - {"AccessLogsBucket", "AuditTrailBucket"}  # logs: loops
    assert data == {
        "AWS::S3::Object": {f"<{b}.Arn>/" for b in buckets},
        "AWS::DynamoDB::Table": {f"<{t}.Arn>" for t in of_type(resources, "AWS::DynamoDB::Table")},
    }
    bucket = resources["AuditTrailBucket"]
    assert bucket["Condition"] == "CreatesAuditTrail"
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert bucket["Properties"]["ObjectLockEnabled"] is True  # retention: test_bucket_lifecycle_...
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    allows = [
        s
        for s in statements(resources["AuditTrailBucketPolicy"]["Properties"]["PolicyDocument"])
        if s["Effect"] == "Allow"
    ]
    assert {(s["Action"], render(s["Resource"])) for s in allows} == {
        ("s3:GetBucketAcl", "<AuditTrailBucket.Arn>"),
        ("s3:PutObject", "<AuditTrailBucket.Arn>/AWSLogs/<AWS::AccountId>/*"),
    }
    for allow in allows:
        assert allow["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert render(allow["Condition"]["StringEquals"]["aws:SourceArn"]) == TRAIL_ARN  # this trail only


@pytest.mark.parametrize("creates_trail", [True, False])
def test_the_data_key_lets_cloudtrail_encrypt_only_this_trails_log_files(
    resources: dict[str, Any], creates_trail: bool
) -> None:
    policy = under(resources["DataKey"]["Properties"]["KeyPolicy"], {"CreatesAuditTrail": creates_trail})
    trail = {
        s["Sid"]: s for s in as_list(policy["Statement"]) if s["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    }
    if not creates_trail:
        assert trail == {}
        return
    assert set(trail) == {"AllowCloudTrailToEncryptAuditLogs", "AllowCloudTrailToDescribeKey"}
    encrypt = trail["AllowCloudTrailToEncryptAuditLogs"]
    assert encrypt["Action"] == "kms:GenerateDataKey*"  # no decrypt: readers need IAM permission on the key
    assert render(encrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:cloudtrail:arn"]).endswith(
        ":cloudtrail:*:<AWS::AccountId>:trail/*"
    )
    for statement in trail.values():
        assert render(statement["Condition"]["StringEquals"]["aws:SourceArn"]) == TRAIL_ARN
