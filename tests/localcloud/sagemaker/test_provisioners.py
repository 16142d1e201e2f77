"""AWS::SageMaker::Model, EndpointConfig, Endpoint and ModelPackageGroup in a template are deployed,
the endpoint InService before the deployment returns, as CloudFormation waits for it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.localcloud.sagemaker.support import archive, predict, script, started


def test_a_templates_endpoint_is_deployed_and_serves(tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(
        archive(
            {
                "model.json": json.dumps({"threshold": 65, "version": "template"}).encode(),
                "code/inference.py": script("inference.py"),
            }
        )
    )
    with started(parameters={"ModelDataUrl": f"file://{model}"}) as env:
        endpoint = env.cloud.outputs["EndpointName"]
        described = env.sagemaker.describe_endpoint(EndpointName=endpoint)
        assert described["EndpointStatus"] == "InService"
        assert described["EndpointArn"] == env.cloud.physical_id("Endpoint")
        config = env.sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        assert config["EndpointConfigArn"] == env.cloud.physical_id("EndpointConfig")
        model_name = config["ProductionVariants"][0]["ModelName"]
        assert env.sagemaker.describe_model(ModelName=model_name)["ModelArn"] == env.cloud.physical_id("Model")
        assert predict(env, endpoint, {"age": 70}) == {"predictions": [{"label": "rare", "model": "template"}]}
