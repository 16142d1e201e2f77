"""Local cloud: seconds to start it with the whole template deployed (goal: under 5 s), and the
overhead of one Lambda invocation through the local cloud (boto3 Invoke -> moto -> the real
handler) next to calling the same handler directly in the same run."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import boto3

from bench.report import write_result
from localcloud.cloud import LocalCloud
from localcloud.runtime import LambdaContext
from tests.integration.api_events import load_event

STARTS = 5
INVOCATIONS = 200


def _start_seconds(server: bool) -> list[float]:
    seconds = []
    for i in range(STARTS):
        began = time.perf_counter()
        with LocalCloud.start(server=server):
            seconds.append(time.perf_counter() - began)
        print(f"\r  localcloud: start {i + 1}/{STARTS} (server={server})", end="", file=sys.stderr)
    print(file=sys.stderr)
    return seconds


def _per_call(run: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    in_process = _start_seconds(server=False)
    served = _start_seconds(server=True)
    event = load_event("ingest_api/get_openapi.json")  # no AWS call inside: pure invocation overhead
    with LocalCloud.start(server=True) as cloud, open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        function = cloud.functions["IngestApiFunction"]
        client = boto3.client("lambda")
        payload = json.dumps(event).encode()

        def through_local_cloud() -> object:
            response = client.invoke(FunctionName=function.name, Payload=payload)
            return response["Payload"].read()

        through_local_cloud()  # cold start, outside the measurement
        handler = function._handler
        context = LambdaContext(function_name=function.name, invoked_function_arn=function.arn)
        with function._sandbox():  # the function's environment and modules, without the local cloud's path

            def direct() -> object:
                return handler(event, context)

            direct_times = _per_call(direct, INVOCATIONS)
        cloud_times = _per_call(through_local_cloud, INVOCATIONS)
    cloud_ms, direct_ms = statistics.median(cloud_times) * 1000, statistics.median(direct_times) * 1000
    path = write_result(
        "localcloud",
        metrics={
            "start_seconds_in_process": round(statistics.median(in_process), 3),
            "start_seconds_server": round(statistics.median(served), 3),
            "invoke_ms_through_local_cloud_p50": round(cloud_ms, 3),
            "invoke_ms_through_local_cloud_p99": round(sorted(cloud_times)[int(0.99 * INVOCATIONS) - 1] * 1000, 3),
        },
        baseline={"invoke_ms_handler_direct_p50": round(direct_ms, 3)},
        ratio={"invoke_local_cloud_over_direct": round(cloud_ms / direct_ms, 2)},
        goal_start_seconds=5,
        starts=STARTS,
        invocations=INVOCATIONS,
        template="template.yaml (whole)",
        invoked="IngestApiFunction, GET /openapi.json event, warm",
    )
    print(
        f"localcloud: start {statistics.median(served):.2f} s (server), {statistics.median(in_process):.2f} s "
        f"(in-process); invoke {cloud_ms:.2f} ms vs {direct_ms:.2f} ms direct -> {path}"
    )


if __name__ == "__main__":
    main()
