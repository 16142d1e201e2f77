"""LocalCloud: template.yaml deployed into one emulated AWS account, with its code running for real.

    with LocalCloud.start() as cloud:               # in-process moto: fastest, for tests
        cloud.invoke("IngestApiFunction", event)
    with LocalCloud.start(server=True) as cloud:    # a moto server other processes can share
        cloud.endpoint                               # http://127.0.0.1:<port> (AWS_ENDPOINT_URL)

Both modes run the same handlers, state machines and jobs: moto holds the resources, and the
pieces of localcloud/ replace what moto only records (Lambda invocation, IoT rules, ...).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.core.config import default_user_config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from localcloud.provision import LocalStack, deploy
from localcloud.runtime import LocalFunction, clear_registry, function_roots, register_function
from localcloud.template import TEMPLATE_PATH, Template, load_template

REGION = "eu-west-1"
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Step Functions executes real ASL only when asked; Lambda keeps its Docker path, which
# localcloud.lambda_service replaces with the local runtime.
MOTO_CONFIG: dict[str, Any] = {"stepfunctions": {"execute_state_machine": True}}
# Each service module's install() patches moto where it only records (idempotent, process-wide)
# and registers provisioners for the resource types it emulates.
SERVICES = ("faults", "lambda_service", "stepfunctions", "sagemaker", "events", "cloudwatch", "glue", "api_gateway")


def _service_modules() -> list[Any]:
    modules = []
    for name in SERVICES:
        try:
            modules.append(importlib.import_module(f"localcloud.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"localcloud.{name}":
                raise
    return modules


def install_services() -> list[str]:
    installed = []
    for module in _service_modules():
        module.install()
        installed.append(module.__name__)
    return installed


def shutdown_services() -> None:
    """Stop what services run in the background (jobs, model servers, clocks) while moto still
    answers: a job finishing after moto stopped would fail on its last S3 write."""
    for module in reversed(_service_modules()):  # cloudwatch before events: state changes send events
        shutdown = getattr(module, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except Exception:  # one service failing to stop must not keep the others running
                logging.getLogger(__name__).exception("stopping %s failed", module.__name__)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310 - our server
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - our server
        pass


@contextmanager
def _moto_server(port: int) -> Iterator[str]:
    """A moto server in this process (so the local runtime can patch its backends)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # 0: the OS picks, no race
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call otherwise
    saved = {k: dict(v) for k, v in default_user_config.items() if isinstance(v, dict)}
    for service, settings in MOTO_CONFIG.items():
        default_user_config[service].update(settings)  # type: ignore[literal-required]
    server.start()
    host, bound = server.get_host_and_port()
    endpoint = f"http://{host}:{bound}"
    # moto's backends live in module globals: a server started earlier in this process left its
    # resources there. Start from an empty account, and leave one.
    _reset(endpoint)
    try:
        yield endpoint
    finally:
        _reset(endpoint)
        server.stop()
        for service, settings in saved.items():
            default_user_config[service] = settings  # type: ignore[literal-required]


@dataclass
class LocalCloud:
    template: Template
    stack: LocalStack
    functions: dict[str, LocalFunction]
    endpoint: str | None = None  # the moto server's URL in server mode

    @property
    def outputs(self) -> dict[str, str]:
        return self.stack.outputs

    @property
    def environment(self) -> dict[str, str]:
        """What another process needs to use this account: credentials, region, endpoint."""
        return {**LOCAL_CREDENTIALS, **({"AWS_ENDPOINT_URL": self.endpoint} if self.endpoint else {})}

    def physical_id(self, logical_id: str) -> str:
        return self.stack.physical_id(logical_id)

    def ndjson_lines(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """Every NDJSON line stored under a prefix of a bucket, in key order (to see what landed)."""
        s3 = boto3.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        listing = [obj for page in pages for obj in page.get("Contents", [])]  # past 1,000 objects
        return [
            json.loads(line)
            for obj in sorted(listing, key=lambda o: o["Key"])
            for line in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode().splitlines()
        ]

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call a function's handler directly (the Lambda Invoke API reaches the same code)."""
        return self.functions[logical_id].invoke(event)

    @classmethod
    @contextmanager
    def start(
        cls,
        template_path: Path = TEMPLATE_PATH,
        parameters: dict[str, str] | None = None,
        *,
        server: bool = False,
        port: int = 0,
    ) -> Iterator[LocalCloud]:
        install_services()
        template = load_template(template_path, region=REGION)
        with _environment(LOCAL_CREDENTIALS):
            try:
                if server:
                    with _moto_server(port) as endpoint, _environment({"AWS_ENDPOINT_URL": endpoint}):
                        try:
                            cloud = cls.deploy(template, parameters)
                            cloud.endpoint = endpoint
                            yield cloud
                        finally:
                            shutdown_services()
                else:
                    with mock_aws(config=MOTO_CONFIG):  # type: ignore[call-overload]
                        try:
                            yield cls.deploy(template, parameters)
                        finally:
                            shutdown_services()
            finally:
                clear_registry()

    @classmethod
    def deploy(cls, template: Template, parameters: dict[str, str] | None = None) -> LocalCloud:
        parameters = {**_deploy_time_parameters(template, parameters or {}), **(parameters or {})}
        stack = deploy(template, region=REGION, parameters=parameters)
        _publish_training_code(template, stack)
        roots = function_roots(list(template.functions.values()))
        functions = {}
        for logical_id, source in template.functions.items():
            props = stack.properties[logical_id]
            function = LocalFunction(
                logical_id=logical_id,
                name=stack.physical_id(logical_id),
                arn=stack.resolver.get_att(logical_id, "Arn"),
                source=source,
                environment={k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()},
                all_roots=roots,
                memory_mb=int(props.get("MemorySize", 128)),
                timeout_seconds=int(props.get("Timeout", 3)),
            )
            register_function(function)
            functions[logical_id] = function
        cloud = cls(template=template, stack=stack, functions=functions)
        for module in _service_modules():  # services that follow a deployment (e.g. EMF -> metrics)
            attach = getattr(module, "attach", None)
            if attach is not None:
                attach(cloud)
        return cloud


def _dxops_metadata(template: Template) -> dict[str, Any]:
    return dict(template.cfn.get("Metadata", {}).get("dxops", {}) or {})


def _deploy_time_parameters(template: Template, given: dict[str, str]) -> dict[str, str]:
    """The template's DeployTimeParameters that the caller did not give, resolved as make deploy
    resolves them (tools/deploy_parameters.py), so both deploy the same values."""
    named = _dxops_metadata(template).get("DeployTimeParameters", {})
    missing = {name: target for name, target in named.items() if name not in given}
    resolved = {}
    for name, target in missing.items():
        module, _, function = str(target).partition(":")
        resolved[name] = str(getattr(importlib.import_module(module), function)(REGION))
    return resolved


def _publish_training_code(template: Template, stack: LocalStack) -> None:
    """The training code goes to the bucket the template names, as make deploy publishes it
    (tools/publish_training_code.py)."""
    bucket = _dxops_metadata(template).get("TrainingCodeBucket")
    if bucket:
        from tools.publish_training_code import publish  # noqa: PLC0415 - only templates that train

        publish(stack.physical_id(str(bucket)))
