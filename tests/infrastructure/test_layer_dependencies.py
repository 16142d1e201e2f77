"""The layer's requirements.txt (plus what the Lambda runtime provides) is enough to import every
handler: a package that only the dev environment has would pass every other test and fail on AWS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from tools.build_openapi import function_environment

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "layers" / "shared"
RUNTIME_PROVIDED = ("boto3",)  # the python3.13 Lambda runtime ships boto3 (and its closure)
_SAM = yaml_parse((REPO / "template.yaml").read_text())
FUNCTION_PROPERTIES = {
    Path(r["Properties"]["CodeUri"]).name: r["Properties"]
    for r in _SAM["Resources"].values()
    if r["Type"] == "AWS::Serverless::Function"
}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+).*", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_layer_pins_agree_with_the_dev_lock() -> None:
    layer, dev = _pins(LAYER / "requirements.txt"), _pins(REPO / "requirements" / "dev.lock")
    assert layer, "layers/shared/requirements.txt pins nothing"
    assert {name: version for name, version in layer.items() if dev.get(name) != version} == {}


@pytest.mark.skipif(shutil.which("uv", path=str(Path(sys.executable).parent)) is None, reason="needs uv in the venv")
def test_handlers_import_with_only_the_layer_and_the_runtime(tmp_path: Path) -> None:
    uv = str(Path(sys.executable).parent / "uv")
    venv = tmp_path / "lambda"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    dev = _pins(REPO / "requirements" / "dev.lock")
    runtime = [f"{name}=={dev[name]}" for name in RUNTIME_PROVIDED]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(LAYER / "requirements.txt"), *runtime],
        check=True,
        env=env,
    )
    for handler in sorted((REPO / "functions").glob("*/app.py")):
        probe = (
            "import importlib.util, sys; "
            f"sys.path[:0] = [{str(handler.parent)!r}, {str(LAYER)!r}]; "
            f"spec = importlib.util.spec_from_file_location('app', {str(handler)!r}); "
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            "assert callable(module.lambda_handler)"
        )
        # Every variable the template gives the function, as deployed (or a stand-in).
        lambda_env = {
            "PATH": os.environ["PATH"],
            "AWS_DEFAULT_REGION": "eu-west-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **function_environment(_SAM, FUNCTION_PROPERTIES[handler.parent.name]),
        }
        completed = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, env=lambda_env, check=False, cwd=tmp_path
        )
        assert completed.returncode == 0, f"{handler.parent.name}: {completed.stderr[-2000:]}"
