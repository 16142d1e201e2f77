"""Publish the training code after `sam deploy` (make deploy): the SageMaker source dir
(ml/build_source_dir.py) goes to the artifacts bucket, content-addressed, so every model version
keeps running the code it was trained with:

    s3://<ArtifactsBucket>/training/code/<sha256>/sourcedir.tar.gz   training job and endpoint (script mode)
    s3://<ArtifactsBucket>/training/code/<sha256>/source/...         the same files, for processing jobs
    s3://<ArtifactsBucket>/training/code/current.json               {"sha256": ...}: what new runs use

The local cloud publishes the same way when it deploys the template (localcloud/cloud.py).

Usage: python tools/publish_training_code.py --stack-name dxops-dev [--region eu-west-1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "training/code/"
BUCKET_OUTPUT = "ArtifactsBucketName"


def _builder() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import ml.build_source_dir  # noqa: PLC0415 - the repository's own builder

    return ml.build_source_dir


def publish(bucket: str, s3: Any | None = None) -> str:
    """Upload this checkout's code; its sha256 (the code version)."""
    s3 = s3 or boto3.client("s3")
    builder = _builder()
    with tempfile.TemporaryDirectory(prefix="dxops-code-") as folder_path:
        archive = builder.build_source_dir(Path(folder_path) / "sourcedir.tar.gz").read_bytes()
    sha = hashlib.sha256(archive).hexdigest()  # reproducible archive: same code, same version
    folder = f"{PREFIX}{sha}/"
    s3.put_object(Bucket=bucket, Key=f"{folder}sourcedir.tar.gz", Body=archive, ContentType="application/gzip")
    for name, data in builder.members().items():
        s3.put_object(Bucket=bucket, Key=f"{folder}source/{name}", Body=data)
    s3.put_object(
        Bucket=bucket,
        Key=f"{PREFIX}current.json",
        Body=json.dumps({"sha256": sha}).encode(),
        ContentType="application/json",
    )
    return sha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region")
    args = parser.parse_args()
    session = boto3.Session(region_name=args.region)
    outputs = session.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"][0]["Outputs"]
    bucket = next(o["OutputValue"] for o in outputs if o["OutputKey"] == BUCKET_OUTPUT)
    print(f"s3://{bucket}/{PREFIX}{publish(bucket, session.client('s3'))}/")


if __name__ == "__main__":
    main()
