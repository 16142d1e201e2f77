"""The template's IoT topic rules on the local MQTT broker, with their actions run for real.

Each AWS::IoT::TopicRule of the deployed template is applied by localcloud.iot_rules to the
messages on the embedded broker; its actions run against the emulated account: Sqs (SendMessage),
S3 (PutObject, key templates with ${...} evaluated), Lambda (invoke the local function). When an
action fails, the rule's ErrorAction receives the error payload, as on AWS.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import boto3

from localcloud.iot_rules import IotRulesBridge
from localcloud.template import Template

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

_TEMPLATE = re.compile(r"\$\{([^}]*)\}")
_PARSE_TIME = re.compile(r'parse_time\("([^"]+)",\s*timestamp\(\)\)')
# Java DateTimeFormatter letters used in key templates -> strftime.
_JAVA_TO_STRFTIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def substitute(template: str, topic: str, now_ms: int) -> str:
    """Evaluate the ${...} templates IoT allows in action fields (newuuid, timestamp, parse_time, topic)."""

    def evaluate(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression == "newuuid()":
            return str(uuid.uuid4())
        if expression == "timestamp()":
            return str(now_ms)
        if expression.startswith("topic("):
            level = expression[len("topic(") : -1]
            return topic if not level else topic.split("/")[int(level) - 1]
        parsed = _PARSE_TIME.fullmatch(expression)
        if parsed:
            pattern = parsed.group(1)
            for java, strf in _JAVA_TO_STRFTIME.items():
                pattern = pattern.replace(java, strf)
            return dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC).strftime(pattern)
        raise ValueError(f"substitution template not supported locally: ${{{expression}}}")

    return _TEMPLATE.sub(evaluate, template)


class RuleActions:
    """Runs one rule's actions and error action against the emulated account."""

    def __init__(self, cloud: LocalCloud, payload: dict[str, Any]) -> None:
        self.cloud = cloud
        self.actions = payload.get("Actions", [])
        self.error_action = payload.get("ErrorAction")
        self.delivered = 0
        self.errors = 0
        self._sqs = boto3.client("sqs")
        self._s3 = boto3.client("s3")

    def _run(self, action: dict[str, Any], document: dict[str, Any], topic: str) -> None:
        body = json.dumps(document, separators=(",", ":"))
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        if "Sqs" in action:
            self._sqs.send_message(QueueUrl=action["Sqs"]["QueueUrl"], MessageBody=body)
        elif "S3" in action:
            s3 = action["S3"]
            key = substitute(s3["Key"], topic, now_ms)
            self._s3.put_object(Bucket=s3["BucketName"], Key=key, Body=body.encode())
        elif "Lambda" in action:
            by_arn = {fn.arn: fn for fn in self.cloud.functions.values()}
            by_arn[action["Lambda"]["FunctionArn"]].invoke(document)
        else:
            raise NotImplementedError(f"IoT rule action not emulated: {sorted(action)}")

    def on_output(self, _rule: str, document: dict[str, Any]) -> None:
        # The rule's output no longer names its topic: topic() in an action's template is empty.
        for action in self.actions:
            self._run(action, document, "")
        self.delivered += 1

    def on_error(self, _rule: str, error: dict[str, Any]) -> None:
        self.errors += 1
        if self.error_action:
            self._run(self.error_action, error, str(error.get("topic", "")))


def template_rule_sql(template: Template) -> dict[str, str]:
    """Logical id -> SQL of every topic rule in a template, without deploying it (for tests that
    apply the real rule to messages)."""
    return {
        logical_id: str(resource["Properties"]["TopicRulePayload"]["Sql"])
        for logical_id, resource in template.cfn["Resources"].items()
        if resource["Type"] == "AWS::IoT::TopicRule"
    }


def topic_rules(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    """Rule name -> TopicRulePayload of every topic rule in the deployed template."""
    return {
        cloud.physical_id(logical_id): cloud.stack.properties[logical_id]["TopicRulePayload"]
        for logical_id, kind in cloud.stack.types.items()
        if kind == "AWS::IoT::TopicRule"
        and not cloud.stack.properties[logical_id]["TopicRulePayload"].get("RuleDisabled")
    }


def start_rules_bridge(cloud: LocalCloud, host: str, port: int) -> tuple[IotRulesBridge, dict[str, RuleActions]]:
    """Subscribe the template's rules to the broker at host:port; actions run as messages arrive."""
    payloads = topic_rules(cloud)
    actions = {name: RuleActions(cloud, payload) for name, payload in payloads.items()}
    bridge = IotRulesBridge(
        host,
        port,
        {name: payload["Sql"] for name, payload in payloads.items()},
        on_output=lambda rule, document: actions[rule].on_output(rule, document),
        on_error=lambda rule, error: actions[rule].on_error(rule, error),
        client_id_topic_level=3,
    )
    return bridge.start(), actions
