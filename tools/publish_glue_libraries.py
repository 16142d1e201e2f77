"""Upload the Glue jobs' libraries after `sam deploy` (make deploy): for every AWS::Glue::Job of
template.yaml whose Metadata names an ExtraPyFilesBuilder, build the zip with that script and put
it at the S3 URI the deployed job's --extra-py-files names. The local cloud does the same when it
deploys the template (localcloud/glue.py), so both run the code of this checkout.

Usage: python tools/publish_glue_libraries.py --stack-name dxops-dev [--region eu-west-1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped,unused-ignore]

ROOT = Path(__file__).resolve().parents[1]
BUILDER_KEY = "ExtraPyFilesBuilder"


def builders(template: Path) -> dict[str, Path]:
    """Logical id of each Glue job -> its library builder script."""
    resources = yaml_parse(template.read_text())["Resources"]
    return {
        logical_id: ROOT / resource["Metadata"][BUILDER_KEY]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Glue::Job" and BUILDER_KEY in resource.get("Metadata", {})
    }


def publish(stack_name: str, region: str | None, template: Path = ROOT / "template.yaml") -> list[str]:
    session = boto3.Session(region_name=region)
    cloudformation, glue, s3 = session.client("cloudformation"), session.client("glue"), session.client("s3")
    published = []
    for logical_id, builder in builders(template).items():
        job = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
        name = job["StackResourceDetail"]["PhysicalResourceId"]
        uri = glue.get_job(JobName=name)["Job"]["DefaultArguments"]["--extra-py-files"]
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / Path(key).name
            subprocess.run([sys.executable, str(builder), str(out)], check=True)  # noqa: S603
            s3.upload_file(str(out), bucket, key)
        published.append(f"{name}: {uri}")
    return published


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region")
    args = parser.parse_args()
    for line in publish(args.stack_name, args.region):
        print(line)


if __name__ == "__main__":
    main()
