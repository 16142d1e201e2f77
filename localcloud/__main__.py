"""`make localcloud`: run dxops's whole template on this machine until Ctrl-C.

Starts a moto server holding one account (other processes reach it with the printed
AWS_ENDPOINT_URL and the test credentials), deploys template.yaml into it, serves the REST API
over HTTP, runs an MQTT broker with the template's IoT rules, polls the SQS event sources, and
(where the local cloud has them) fires scheduled rules and evaluates alarms on a clock.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from localcloud import cloudwatch, events
from localcloud.api_gateway import serve_api
from localcloud.cloud import LocalCloud
from localcloud.event_sources import Pollers
from localcloud.iot import start_rules_bridge
from localcloud.mqtt_broker import LocalMqttBroker


@contextlib.contextmanager
def _clocks(cloud: LocalCloud, alarm_interval: float) -> Iterator[list[str]]:
    """Scheduled rules fire on the wall clock; alarms are evaluated every alarm_interval seconds.
    Both stop with the local cloud (services' shutdown())."""
    events.start_scheduler(cloud)
    cloudwatch.start_alarm_evaluator(alarm_interval)
    yield ["scheduled rules (real time)", f"alarm evaluation every {alarm_interval:g} s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="moto server port (default 5000)")
    parser.add_argument("--api-port", type=int, default=3000, help="REST API port (default 3000)")
    parser.add_argument("--mqtt-port", type=int, default=1883, help="MQTT broker port (default 1883)")
    parser.add_argument("--alarm-interval", type=float, default=10.0, help="seconds between alarm evaluations")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def _interrupt(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with (
        LocalCloud.start(server=True, port=args.port) as cloud,
        serve_api(cloud, port=args.api_port) as api,
        LocalMqttBroker(port=args.mqtt_port) as broker,
        _clocks(cloud, args.alarm_interval) as clocks,
    ):
        bridge, _ = start_rules_bridge(cloud, broker.host, broker.port)
        pollers = Pollers(cloud).start()
        try:
            _print_summary(cloud, api.base_url(), broker.address, clocks)
            stop.wait()
        finally:
            pollers.stop()
            bridge.stop()
    print("local cloud stopped", file=sys.stderr)
    return 0


def _print_summary(cloud: LocalCloud, api_url: str, mqtt: str, clocks: list[str]) -> None:
    by_type: dict[str, list[str]] = {}
    for logical_id, kind in sorted(cloud.stack.types.items()):
        by_type.setdefault(kind, []).append(f"{logical_id} ({cloud.physical_id(logical_id)})")
    lines = [
        "dxops local cloud is running (Ctrl-C to stop)",
        "",
        f"  AWS endpoint     export AWS_ENDPOINT_URL={cloud.endpoint} AWS_ACCESS_KEY_ID=testing "
        "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1",
        f"  REST API         {api_url}",
        "                   (SigV4: curl --aws-sigv4 'aws:amz:eu-west-1:execute-api' --user testing:testing ...)",
        f"  MQTT broker      mqtt://{mqtt}   topic dxops/devices/<device id>/readings",
        f"  Clocks           {', '.join(clocks) or 'none'}",
        "",
        "  Deployed from template.yaml:",
    ]
    for kind in sorted(by_type):
        lines.append(f"    {kind}")
        lines += [f"      {entry}" for entry in by_type[kind]]
    if cloud.stack.not_emulated:
        lines += ["", f"  Not emulated (recorded only): {', '.join(cloud.stack.not_emulated)}"]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
