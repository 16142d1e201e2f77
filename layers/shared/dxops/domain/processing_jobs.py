"""SageMaker Processing job requests of the ml/ entry points (the promotion gate's comparison, the
drift and quality monitor): the training image, the published code as an input, KMS everywhere.

The request is the CreateProcessingJob API's (and the createProcessingJob.sync integration's
Parameters), built here so that the state machines pass it through unchanged. NetworkConfig is
always there (the state machines name it), with the VPC when the stack has one (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PROCESSING = "/opt/ml/processing"


def processing_input(
    name: str, uri: str, data_type: Literal["S3Prefix", "ManifestFile"] = "S3Prefix"
) -> dict[str, Any]:
    """An input at /opt/ml/processing/input/<name>: a prefix, or the objects a manifest lists."""
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"{PROCESSING}/input/{name}",
            "S3DataType": data_type,
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


@dataclass(frozen=True)
class ProcessingHost:
    """Where and how long a job runs: the image, the instance, the data key, the runtime limit, the
    VPC (SageMaker's VpcConfig: SecurityGroupIds and Subnets; None outside a VPC)."""

    image_uri: str
    instance_type: str
    volume_gb: int
    kms_key: str
    max_runtime_seconds: int
    vpc_config: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class ProcessingJob:
    name: str
    entry_point: str  # a script at the root of the published code (ml/build_source_dir.py)
    code_uri: str  # the published code version's folder (…/training/code/<sha>/)
    inputs: list[dict[str, Any]]
    output_name: str
    output_uri: str
    arguments: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    def request(self, host: ProcessingHost) -> dict[str, Any]:
        job: dict[str, Any] = {
            "ProcessingJobName": self.name,
            "AppSpecification": {
                "ImageUri": host.image_uri,
                "ContainerEntrypoint": ["python3", f"{PROCESSING}/input/code/{self.entry_point}"],
            },
            "ProcessingInputs": [processing_input("code", f"{self.code_uri}source/"), *self.inputs],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": self.output_name,
                        "S3Output": {
                            "S3Uri": self.output_uri,
                            "LocalPath": f"{PROCESSING}/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": host.kms_key,
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": host.instance_type,
                    "VolumeSizeInGB": host.volume_gb,
                    "VolumeKmsKeyId": host.kms_key,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": host.max_runtime_seconds},
            "Environment": self.environment,
            # One instance: no traffic between containers to encrypt. Isolation stays off (the default).
            "NetworkConfig": {"EnableNetworkIsolation": False},
        }
        if host.vpc_config is not None:
            job["NetworkConfig"]["VpcConfig"] = host.vpc_config
        if self.arguments:
            job["AppSpecification"]["ContainerArguments"] = self.arguments
        return job
