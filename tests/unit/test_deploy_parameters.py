"""tools/deploy_parameters.py: what make deploy passes to sam deploy. The framework image the
sagemaker SDK resolves (offline, from its own table) unless the environment names the dxops images
(docs/containers.md)."""

from __future__ import annotations

import re
import sys

import pytest
from samcli.cli.types import CfnParameterOverridesType  # type: ignore[import-untyped,unused-ignore]
from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped,unused-ignore]

from tools import deploy_parameters

REGION = "eu-west-1"
FRAMEWORK = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
TRAINING = f"{REGISTRY}/dxops-training:e09fd7e"
INFERENCE = f"{REGISTRY}/dxops-inference@sha256:{'0a1b2c3d' * 8}"


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in deploy_parameters.IMAGE_PARAMETERS:  # the caller's shell must not decide these tests
        monkeypatch.delenv(name, raising=False)


def test_without_overrides_the_framework_image_of_the_region_trains_and_serves() -> None:
    # InferenceImageUri is passed empty (the training image): sam deploy would keep a previous value.
    assert deploy_parameters.resolve(REGION) == {"TrainingImageUri": FRAMEWORK, "InferenceImageUri": ""}


def test_an_empty_variable_overrides_nothing() -> None:
    environment = {"TrainingImageUri": "", "InferenceImageUri": ""}
    assert deploy_parameters.resolve(REGION, environment=environment) == {
        "TrainingImageUri": FRAMEWORK,
        "InferenceImageUri": "",
    }


def test_the_environment_names_the_dxops_images_instead() -> None:
    environment = {"TrainingImageUri": TRAINING, "InferenceImageUri": INFERENCE, "PATH": "/usr/bin"}
    assert deploy_parameters.resolve(REGION, environment=environment) == {
        "TrainingImageUri": TRAINING,
        "InferenceImageUri": INFERENCE,
    }


def test_an_inference_image_alone_keeps_the_resolved_training_image() -> None:
    assert deploy_parameters.resolve(REGION, environment={"InferenceImageUri": INFERENCE}) == {
        "TrainingImageUri": FRAMEWORK,
        "InferenceImageUri": INFERENCE,
    }


def test_make_deploy_gets_samconfigs_overrides_then_the_images(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TrainingImageUri", TRAINING)
    monkeypatch.setenv("InferenceImageUri", INFERENCE)
    monkeypatch.setattr(sys, "argv", ["deploy_parameters.py", "--config-env", "prod"])

    deploy_parameters.main()

    overrides = capsys.readouterr().out.split()
    assert overrides[0] == "Environment=prod"
    assert overrides[-2:] == [f"TrainingImageUri={TRAINING}", f"InferenceImageUri={INFERENCE}"]


def test_an_empty_inference_image_reaches_sam_deploy_as_an_empty_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["deploy_parameters.py", "--config-env", "dev"])
    deploy_parameters.main()

    parsed = CfnParameterOverridesType().convert(  # the parser of sam deploy --parameter-overrides
        (capsys.readouterr().out.strip(),), None, None
    )
    assert (parsed["TrainingImageUri"], parsed["InferenceImageUri"]) == (FRAMEWORK, "")


@pytest.mark.parametrize("uri", [FRAMEWORK, TRAINING, INFERENCE, f"{REGISTRY}/dxops-training:3.0-5.post1"])
def test_the_template_accepts_tagged_and_digest_uris(uri: str) -> None:
    parameters = yaml_parse((deploy_parameters.ROOT / "template.yaml").read_text())["Parameters"]
    for name in deploy_parameters.IMAGE_PARAMETERS:
        assert re.fullmatch(parameters[name]["AllowedPattern"], uri), (name, uri)


@pytest.mark.parametrize(
    "uri",
    [
        f"{REGISTRY}/dxops-training",  # neither tag nor digest
        f"{REGISTRY}/dxops-training@sha256:0a1b",  # not a digest
        "dxops-training:latest",  # no registry
    ],
)
def test_the_template_refuses_an_image_without_registry_tag_or_digest(uri: str) -> None:
    parameters = yaml_parse((deploy_parameters.ROOT / "template.yaml").read_text())["Parameters"]
    for name in deploy_parameters.IMAGE_PARAMETERS:
        assert not re.fullmatch(parameters[name]["AllowedPattern"], uri), (name, uri)


def test_only_the_inference_image_may_be_left_empty() -> None:
    parameters = yaml_parse((deploy_parameters.ROOT / "template.yaml").read_text())["Parameters"]
    assert parameters["InferenceImageUri"]["Default"] == ""
    assert re.fullmatch(parameters["InferenceImageUri"]["AllowedPattern"], "")
    assert "Default" not in parameters["TrainingImageUri"]
    assert not re.fullmatch(parameters["TrainingImageUri"]["AllowedPattern"], "")
