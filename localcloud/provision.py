"""Provisioners: create each CloudFormation resource of the template in the emulated account.

One function per resource type, each returning the resource's physical id (what Ref gives) and
its attributes (what Fn::GetAtt gives). Types the local cloud does not emulate yet are recorded
in LocalStack.not_emulated with a placeholder id, so that references to them still resolve.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import string
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from localcloud.template import Physical, Resolver, Template, creation_order

ACCOUNT_ID = "123456789012"


@dataclass
class Context:
    stack: str
    region: str
    template: Template | None = None
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            # The service name is data (from resource types), so boto3-stubs' overloads cannot apply.
            self.clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self.clients[service]

    def name(self, logical_id: str, max_length: int = 63, lower: bool = False) -> str:
        # CloudFormation-style generated name: stack-logical-suffix, stable for one stack.
        suffix = hashlib.sha256(f"{self.stack}/{logical_id}".encode()).hexdigest()[:12]
        name = f"{self.stack}-{logical_id}"[: max_length - 13] + f"-{suffix}"
        return name.lower() if lower else name

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{ACCOUNT_ID if region else ''}:{resource}"


Provisioner = Callable[[Context, str, dict[str, Any]], Physical]


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags", [])]


def kms_key(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    kms = ctx.client("kms")
    meta = (
        kms.create_key(
            Description=props.get("Description", logical_id),
            Policy=json.dumps(props["KeyPolicy"]) if "KeyPolicy" in props else "",
            Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(props)],
        )["KeyMetadata"]
        if "KeyPolicy" in props
        else ctx.client("kms").create_key()["KeyMetadata"]
    )
    if props.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    return Physical(meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]})


def kms_alias(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    ctx.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
    return Physical(props["AliasName"])


_NOTIFICATION_TARGETS = {  # CloudFormation key -> (API key, target key in CFN, target key in the API)
    "LambdaConfigurations": ("LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
    "QueueConfigurations": ("QueueConfigurations", "Queue", "QueueArn"),
    "TopicConfigurations": ("TopicConfigurations", "Topic", "TopicArn"),
}


def _bucket_notifications(config: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration in the shape of PutBucketNotificationConfiguration."""
    result: dict[str, Any] = {}
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        result["EventBridgeConfiguration"] = {}
    for cfn_key, (api_key, target, api_target) in _NOTIFICATION_TARGETS.items():
        entries = []
        for entry in config.get(cfn_key, []):
            converted: dict[str, Any] = {api_target: entry[target], "Events": [entry["Event"]]}
            rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            if rules:
                converted["Filter"] = {"Key": {"FilterRules": rules}}
            entries.append(converted)
        if entries:
            result[api_key] = entries
    return result


def s3_bucket(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    s3 = ctx.client("s3")
    name = props.get("BucketName") or ctx.name(logical_id, lower=True)
    locked = bool(props.get("ObjectLockEnabled"))
    s3.create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": ctx.region}, ObjectLockEnabledForBucket=locked
    )
    if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if locked and "ObjectLockConfiguration" in props:
        lock = props["ObjectLockConfiguration"]
        retention = lock.get("Rule", {}).get("DefaultRetention")
        if retention:  # parameters resolve to strings; the API wants whole days or years
            lock = {
                **lock,
                "Rule": {
                    "DefaultRetention": {k: int(v) if k in ("Days", "Years") else v for k, v in retention.items()}
                },
            }
        s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=lock)
    if "BucketEncryption" in props:
        # CloudFormation says ServerSideEncryptionByDefault where the API says ApplyServerSideEncryptionByDefault.
        rules = [
            {
                ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                for k, v in rule.items()
            }
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    notifications = _bucket_notifications(props.get("NotificationConfiguration", {}))
    if notifications:
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=notifications)
    if _tags(props):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props)})
    return Physical(
        name,
        {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
        },
    )


def enforceable_statements(document: dict[str, Any]) -> dict[str, Any]:
    """The statements of a bucket policy that moto can evaluate.

    moto 5.2.5 ignores the Condition of bucket policy statements, so a conditional Deny (TLS only,
    KMS only) would deny every request. Those statements are kept in the template (and checked
    by tests/infrastructure) but not applied locally: there is no TLS or KMS to enforce here.
    tests/localcloud/test_moto_behaviour.py fails when moto starts evaluating conditions.
    """
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    return {**document, "Statement": [s for s in statements if not (s.get("Effect") == "Deny" and "Condition" in s)]}


def s3_bucket_policy(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    document = enforceable_statements(props["PolicyDocument"])
    if document["Statement"]:
        ctx.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
    return Physical(props["Bucket"])


def dynamodb_table(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    ddb = ctx.client("dynamodb")
    name = props.get("TableName") or ctx.name(logical_id, max_length=255)
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        args["ProvisionedThroughput"] = {k: int(v) for k, v in props["ProvisionedThroughput"].items()}
    table = ddb.create_table(**args)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    return Physical(name, {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")})


def _generated_secret(spec: dict[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?[]^_{|}~"
    password = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)
    return password


def secretsmanager_secret(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("Name") or ctx.name(logical_id, max_length=256)
    value = props.get("SecretString") or _generated_secret(props.get("GenerateSecretString", {}))
    args: dict[str, Any] = {"Name": name, "SecretString": value}
    if props.get("KmsKeyId"):
        args["KmsKeyId"] = props["KmsKeyId"]
    arn = ctx.client("secretsmanager").create_secret(**args)["ARN"]
    return Physical(arn, {"Id": arn})


_SQS_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "FifoQueue",
    "SqsManagedSseEnabled",
)


def sqs_queue(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    sqs = ctx.client("sqs")
    name = props.get("QueueName") or ctx.name(logical_id, max_length=80)
    attributes = {
        k: str(props[k]).lower() if isinstance(props[k], bool) else str(props[k]) for k in _SQS_ATTRIBUTES if k in props
    }
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def sqs_queue_policy(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    for url in props["Queues"]:
        ctx.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    return Physical(ctx.name(logical_id))


def log_group(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("LogGroupName") or ctx.name(logical_id, max_length=512)
    logs = ctx.client("logs")
    logs.create_log_group(logGroupName=name)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    return Physical(name, {"Arn": ctx.arn("logs", f"log-group:{name}:*")})


def iam_role(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    iam = ctx.client("iam")
    name = props.get("RoleName") or ctx.name(logical_id, max_length=64)
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
        Path=props.get("Path", "/"),
    )["Role"]
    for policy in props.get("Policies", []):
        # SAM policy templates (LambdaInvokePolicy, ...) expand without a Version, which IAM's
        # API (and moto) refuse: CloudFormation fills it in; so does the local deploy.
        document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
    return Physical(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})


def iam_policy(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    """An inline policy put on each role it names (CloudFormation's AWS::IAM::Policy)."""
    document = json.dumps({"Version": "2012-10-17", **props["PolicyDocument"]})
    for role in props.get("Roles", []):
        ctx.client("iam").put_role_policy(RoleName=role, PolicyName=props["PolicyName"], PolicyDocument=document)
    return Physical(ctx.name(logical_id))


def cloudtrail_trail(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    """A trail with its event selectors, logging if IsLogging says so (moto records it; nothing is delivered)."""
    cloudtrail = ctx.client("cloudtrail")
    name = props.get("TrailName") or ctx.name(logical_id, max_length=128)
    args: dict[str, Any] = {"Name": name, "S3BucketName": props["S3BucketName"]}
    for key in ("S3KeyPrefix", "SnsTopicName", "CloudWatchLogsLogGroupArn", "CloudWatchLogsRoleArn"):
        if key in props:
            args[key] = props[key]
    for key in ("IncludeGlobalServiceEvents", "IsMultiRegionTrail", "EnableLogFileValidation", "IsOrganizationTrail"):
        if key in props:
            args[key] = str(props[key]).lower() == "true"  # parameters and conditions resolve to strings
    if "KMSKeyId" in props:
        args["KmsKeyId"] = props["KMSKeyId"]
    if _tags(props):
        args["TagsList"] = _tags(props)
    trail = cloudtrail.create_trail(**args)
    if props.get("EventSelectors"):
        selectors = [
            {
                **selector,
                **(
                    {"IncludeManagementEvents": str(selector["IncludeManagementEvents"]).lower() == "true"}
                    if "IncludeManagementEvents" in selector
                    else {}
                ),
            }
            for selector in props["EventSelectors"]
        ]
        cloudtrail.put_event_selectors(TrailName=name, EventSelectors=selectors)
    if str(props.get("IsLogging", "false")).lower() == "true":
        cloudtrail.start_logging(Name=name)
    return Physical(name, {"Arn": trail["TrailARN"], "SnsTopicArn": trail.get("SnsTopicARN", "")})


def iot_policy(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("PolicyName") or ctx.name(logical_id, max_length=128).replace("-", "_")
    policy = ctx.client("iot").create_policy(policyName=name, policyDocument=json.dumps(props["PolicyDocument"]))
    return Physical(name, {"Arn": policy["policyArn"]})


def camel_keys(value: Any) -> Any:
    """CloudFormation's PascalCase keys -> an API's camelCase (Sqs -> sqs, QueueUrl -> queueUrl)."""
    if isinstance(value, dict):
        return {k[0].lower() + k[1:]: camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def iot_topic_rule(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    # Rule names allow only [a-zA-Z0-9_].
    name = props.get("RuleName") or ctx.name(logical_id, max_length=128).replace("-", "_")
    rule = camel_keys(props["TopicRulePayload"])
    ctx.client("iot").create_topic_rule(ruleName=name, topicRulePayload=rule)
    return Physical(name, {"Arn": ctx.arn("iot", f"rule/{name}")})


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "dxops local cloud: the code runs from the repository (localcloud.runtime)")
    return buffer.getvalue()


def lambda_function(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    # moto holds the function (so every invoke path finds it); the code runs through the local
    # runtime (localcloud.lambda_service), so the package is a placeholder.
    name = props.get("FunctionName") or ctx.name(logical_id, max_length=64)
    function = ctx.client("lambda").create_function(
        FunctionName=name,
        Runtime=props.get("Runtime", "python3.13"),
        Role=props["Role"],
        Handler=props.get("Handler", "app.lambda_handler"),
        Code={"ZipFile": _placeholder_zip()},
        Timeout=int(props.get("Timeout", 3)),
        MemorySize=int(props.get("MemorySize", 128)),
        Environment={"Variables": {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}},
        Architectures=props.get("Architectures", ["x86_64"]),
    )
    return Physical(name, {"Arn": function["FunctionArn"]})


def lambda_layer(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("LayerName") or logical_id
    return Physical(ctx.arn("lambda", f"layer:{name}:1"))


def lambda_permission(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    # Resource policies are not evaluated locally (moto does not either); recorded for Ref only.
    return Physical(f"{props.get('FunctionName', '')}:{logical_id}")


def sns_topic(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("TopicName") or ctx.name(logical_id, max_length=256)
    attributes = {"KmsMasterKeyId": props["KmsMasterKeyId"]} if props.get("KmsMasterKeyId") else {}
    arn = ctx.client("sns").create_topic(Name=name, Attributes=attributes, Tags=_tags(props))["TopicArn"]
    for subscription in props.get("Subscription", []):
        ctx.client("sns").subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
    return Physical(arn, {"TopicArn": arn, "TopicName": name})


def sns_subscription(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    arn = ctx.client("sns").subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    return Physical(arn)


def served_elsewhere(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    """Stages, deployments and SQS event source mappings: localcloud.api_gateway and
    localcloud.event_sources read them from the deployed template; nothing to create in moto."""
    return Physical(ctx.name(logical_id))


def rest_api(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    api_id = hashlib.sha256(f"{ctx.stack}/{logical_id}".encode()).hexdigest()[:10]
    return Physical(api_id, {"RootResourceId": f"{api_id}-root"})


PROVISIONERS: dict[str, Provisioner] = {
    "AWS::KMS::Key": kms_key,
    "AWS::KMS::Alias": kms_alias,
    "AWS::S3::Bucket": s3_bucket,
    "AWS::S3::BucketPolicy": s3_bucket_policy,
    "AWS::DynamoDB::Table": dynamodb_table,
    "AWS::SecretsManager::Secret": secretsmanager_secret,
    "AWS::SQS::Queue": sqs_queue,
    "AWS::SQS::QueuePolicy": sqs_queue_policy,
    "AWS::Logs::LogGroup": log_group,
    "AWS::IAM::Role": iam_role,
    "AWS::IAM::Policy": iam_policy,
    "AWS::CloudTrail::Trail": cloudtrail_trail,
    "AWS::IoT::Policy": iot_policy,
    "AWS::IoT::TopicRule": iot_topic_rule,
    "AWS::Lambda::Function": lambda_function,
    "AWS::Lambda::LayerVersion": lambda_layer,
    "AWS::Lambda::Permission": lambda_permission,
    "AWS::SNS::Topic": sns_topic,
    "AWS::SNS::Subscription": sns_subscription,
    "AWS::ApiGateway::RestApi": rest_api,
    "AWS::ApiGateway::Stage": served_elsewhere,
    "AWS::ApiGateway::Deployment": served_elsewhere,
    "AWS::Lambda::EventSourceMapping": served_elsewhere,
}


def register_provisioner(resource_type: str, provisioner: Provisioner) -> None:
    """Service modules of the local cloud (localcloud/<service>.py) add the types they emulate."""
    PROVISIONERS[resource_type] = provisioner


@dataclass
class LocalStack:
    """What a deployment produced: physical resources, resolved properties and outputs."""

    resolver: Resolver
    properties: dict[str, dict[str, Any]]
    types: dict[str, str]
    outputs: dict[str, str]
    not_emulated: list[str]

    def physical_id(self, logical_id: str) -> str:
        return self.resolver.ref(logical_id)


def deploy(
    template: Template,
    *,
    stack: str = "dxops-local",
    region: str = "eu-west-1",
    parameters: dict[str, str] | None = None,
) -> LocalStack:
    cfn = template.cfn
    resolver = Resolver(
        parameters={**template.parameter_defaults(), **(parameters or {})},
        pseudo={
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack}/local",
        },
        conditions=cfn.get("Conditions", {}),
        list_parameters=template.list_parameters(),
    )
    ctx = Context(stack=stack, region=region, template=template)
    properties: dict[str, dict[str, Any]] = {}
    types: dict[str, str] = {}
    not_emulated: list[str] = []
    resources = cfn["Resources"]
    for logical_id in creation_order(resources):
        resource = resources[logical_id]
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        props = resolver.resolve(resource.get("Properties", {}))
        provisioner = PROVISIONERS.get(resource["Type"])
        if provisioner is None:
            not_emulated.append(f"{logical_id} ({resource['Type']})")
            resolver.physical[logical_id] = Physical(ctx.name(logical_id))
        else:
            resolver.physical[logical_id] = provisioner(ctx, logical_id, props)
        properties[logical_id] = props
        types[logical_id] = resource["Type"]
    outputs = {
        name: str(resolver.resolve(out["Value"]))
        for name, out in cfn.get("Outputs", {}).items()
        if "Condition" not in out or resolver.condition(out["Condition"])
    }
    return LocalStack(resolver=resolver, properties=properties, types=types, outputs=outputs, not_emulated=not_emulated)
