"""CloudWatch in server mode: EMF from invocations through the moto server becomes metrics, and the
alarm's state change reaches EventBridge and SNS."""

from __future__ import annotations

import boto3

from localcloud import cloudwatch, events
from tests.localcloud.cloudwatch.support import MINUTE, alarm_cloud, minute, reject
from tests.localcloud.events.support import messages


def test_emf_to_alarm_to_eventbridge_in_server_mode() -> None:
    with alarm_cloud(server=True) as local:
        assert boto3.client("lambda").meta.endpoint_url == local.cloud.endpoint
        name = local.cloud.physical_id("RejectedAlarm")
        t0 = minute()
        reject(8, t0 - MINUTE)
        reject(9, t0)

        cloudwatch.evaluate_alarms(now=t0)
        assert events.flush()

        [change] = messages(local.cloud.physical_id("AlarmEventsQueue"), expected=1)
        detail = change["Json"]["detail"]
        assert (detail["alarmName"], detail["previousState"]["value"], detail["state"]["value"]) == (
            name,
            "INSUFFICIENT_DATA",
            "ALARM",
        )
        [notification] = messages(local.notifications, expected=1)
        assert notification["Json"]["Subject"] == f'ALARM: "{name}" in EU (Ireland)'
