"""CloudWatch adapter: which of the retraining alarms are in ALARM (cloudwatch:DescribeAlarms)."""

from __future__ import annotations

from typing import Any

import boto3


class CloudWatchFiringAlarms:
    """FiringAlarms of the named alarms (the template's drift and quality alarms)."""

    def __init__(self, alarm_names: list[str], client: Any | None = None) -> None:
        self.alarm_names = alarm_names
        self._client = client or boto3.client("cloudwatch")

    def firing(self) -> list[dict[str, Any]]:
        if not self.alarm_names:
            return []
        alarms = self._client.describe_alarms(AlarmNames=self.alarm_names, StateValue="ALARM")["MetricAlarms"]
        alarms = [a for a in alarms if a["StateValue"] == "ALARM"]  # moto 5.2.5 ignores StateValue with AlarmNames
        return [
            {
                "name": alarm["AlarmName"],
                "state": alarm["StateValue"],
                "reason": alarm.get("StateReason", ""),
                "changed_at": alarm["StateUpdatedTimestamp"].isoformat(),
                "previous_state": None,
            }
            for alarm in alarms
        ]
