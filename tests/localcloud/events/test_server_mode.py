"""EventBridge in server mode: a handler's event triggers a handler that writes to S3, whose
EventBridge notification triggers the next targets, all through the moto server."""

from __future__ import annotations

import boto3

from localcloud import events
from tests.localcloud.events.support import messages, put_event, received_by_probe, started


def test_event_to_handler_to_s3_to_eventbridge_in_server_mode() -> None:
    with started(server=True) as cloud:
        assert cloud.endpoint is not None
        assert boto3.client("s3").meta.endpoint_url == cloud.endpoint

        event_id = put_event({"record_id": "r-1", "forward_to_raw": "chained.json"})
        # The probe's own S3 write triggers the raw-prefix rules: deliveries are asynchronous, so
        # the handler never waits for the handler it triggers (which would deadlock the runtime).
        assert events.flush()

        received = received_by_probe(cloud)
        assert len(received) == 2
        assert {r["id"] for r in received} > {event_id}
        [raw] = messages(cloud.physical_id("RawQueue"), expected=1)
        assert raw["Json"]["detail"]["object"]["key"] == "raw/chained.json"
        delivered = [d for d in events.deliveries() if d.outcome == "delivered"]
        assert len(delivered) >= 6  # 3 queues + probe for the custom event; queue + probe for the object
