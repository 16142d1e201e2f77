"""Template parameters resolved at deploy time, never typed in (template.yaml Metadata
dxops.DeployTimeParameters names them and their resolvers).

    python tools/deploy_parameters.py --region eu-west-1     ->  TrainingImageUri=1415...:3.0-5 InferenceImageUri=""
    python tools/deploy_parameters.py --config-env prod      ->  samconfig.toml's overrides of prod, then these
    python tools/deploy_parameters.py --config-env prod --field stack_name   ->  dxops-prod

`make deploy` passes the output to `sam deploy --parameter-overrides` (which replaces samconfig's
own overrides, hence both); the local cloud calls the same resolvers when it deploys the template
(localcloud/cloud.py), so both use one image URI.

The image parameters (IMAGE_PARAMETERS) are always passed, and an environment variable named after
one overrides it (samconfig's overrides come first, so they cannot): the dxops images of
containers/ instead of the framework image and the empty InferenceImageUri (docs/containers.md).

    TrainingImageUri=<registry>/dxops-training:<tag> InferenceImageUri=<registry>/dxops-inference:<tag> make deploy
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import tomllib
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped,unused-ignore]

ROOT = Path(__file__).resolve().parents[1]
XGBOOST_FRAMEWORK_VERSION = "3.0-5"  # the image's Python (3.10) is what ml/ is tested on (make ml-compat)
# Passed by every deploy; the environment variable of the same name, when set and not empty, overrides one.
IMAGE_PARAMETERS = ("TrainingImageUri", "InferenceImageUri")


@functools.lru_cache(maxsize=8)
def training_image_uri(region: str) -> str:
    """The SageMaker XGBoost framework image of this region, from the sagemaker SDK's own table."""
    with warnings.catch_warnings():  # the SDK's modules raise SyntaxWarnings on import (3.13)
        warnings.simplefilter("ignore")
        from sagemaker.core import image_uris  # noqa: PLC0415 - heavy: imported when needed

    return str(image_uris.retrieve("xgboost", region=region, version=XGBOOST_FRAMEWORK_VERSION))


def resolvers(template: Path = ROOT / "template.yaml") -> dict[str, Callable[[str], str]]:
    """Parameter name -> resolver (a function of the region), from the template's Metadata."""
    named = yaml_parse(template.read_text()).get("Metadata", {}).get("dxops", {}).get("DeployTimeParameters", {})
    found = {}
    for parameter, target in named.items():
        module, _, function = str(target).partition(":")
        found[parameter] = getattr(importlib.import_module(module), function)
    return found


def overrides(environment: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The image parameters the environment names (the dxops images instead of the resolved one)."""
    return {name: environment[name] for name in IMAGE_PARAMETERS if environment.get(name)}


def resolve(
    region: str, template: Path = ROOT / "template.yaml", environment: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The deploy-time parameters, resolved unless the environment overrides them (`overrides`), and
    every image parameter: one neither resolved nor named is empty (InferenceImageUri: the training
    image), since sam deploy keeps a parameter's previous value when it is not given one."""
    given = overrides(environment)
    resolved = {name: resolver(region) for name, resolver in resolvers(template).items() if name not in given}
    return {**dict.fromkeys(IMAGE_PARAMETERS, ""), **resolved, **given}


def assignments(parameters: dict[str, str]) -> str:
    """NAME=VALUE ... as sam deploy --parameter-overrides reads them (NAME="" for an empty value)."""
    return " ".join(f"{name}={value}" if value else f'{name}=""' for name, value in parameters.items())


def samconfig(environment: str) -> dict[str, str]:
    """stack_name, region and parameter_overrides of an environment of samconfig.toml."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())[environment]
    return {**config["global"]["parameters"], **config["deploy"]["parameters"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--region")
    where.add_argument("--config-env", help="an environment of samconfig.toml (dev, prod)")
    parser.add_argument("--field", help="print this samconfig.toml field of the environment instead")
    args = parser.parse_args()
    if args.config_env is None:
        print(assignments(resolve(args.region)))
        return
    config = samconfig(args.config_env)
    if args.field:
        print(config[args.field])
        return
    print(f"{config.get('parameter_overrides', '')} {assignments(resolve(config['region']))}".strip())


if __name__ == "__main__":
    main()
