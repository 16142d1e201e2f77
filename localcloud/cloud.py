"""LocalCloud: the template deployed into moto, with its functions runnable in-process.

with LocalCloud.start() as cloud:            # moto in this process, template deployed
    cloud.invoke("IngestApiFunction", event)
    cloud.outputs["RawBucketName"]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto import mock_aws

from localcloud.provision import LocalStack, deploy
from localcloud.runtime import LocalFunction, function_roots
from localcloud.template import TEMPLATE_PATH, Template, load_template

REGION = "eu-west-1"
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class LocalCloud:
    template: Template
    stack: LocalStack
    functions: dict[str, LocalFunction]

    @property
    def outputs(self) -> dict[str, str]:
        return self.stack.outputs

    def physical_id(self, logical_id: str) -> str:
        return self.stack.physical_id(logical_id)

    def invoke(self, logical_id: str, event: Any) -> Any:
        return self.functions[logical_id].invoke(event)

    @classmethod
    @contextmanager
    def start(
        cls, template_path: Path = TEMPLATE_PATH, parameters: dict[str, str] | None = None
    ) -> Iterator[LocalCloud]:
        saved = {k: os.environ.get(k) for k in LOCAL_CREDENTIALS}
        os.environ.update(LOCAL_CREDENTIALS)
        try:
            with mock_aws():
                yield cls.deploy(load_template(template_path, region=REGION), parameters)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @classmethod
    def deploy(cls, template: Template, parameters: dict[str, str] | None = None) -> LocalCloud:
        stack = deploy(template, region=REGION, parameters=parameters)
        roots = function_roots(list(template.functions.values()))
        functions = {}
        for logical_id, source in template.functions.items():
            props = stack.properties[logical_id]
            functions[logical_id] = LocalFunction(
                logical_id=logical_id,
                name=stack.physical_id(logical_id),
                arn=stack.resolver.get_att(logical_id, "Arn"),
                source=source,
                environment={k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()},
                all_roots=roots,
                memory_mb=int(props.get("MemorySize", 128)),
                timeout_seconds=int(props.get("Timeout", 3)),
            )
        return cls(template=template, stack=stack, functions=functions)
