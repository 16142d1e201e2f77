"""Code that runs in AWS Glue 5.0 (Python 3.11) or in SageMaker framework images must at least
compile on Python 3.11: the Glue job (glue/), the shared vocabulary it ships (layers/shared/dxops),
the cohort simulator the training code uses and the models (ml/). The tooling itself runs on 3.13."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GLUE_PYTHON = "3.11"


def _python311() -> str | None:
    found = shutil.which(f"python{GLUE_PYTHON}")
    if found and "shims" not in found:
        return found
    root = (
        subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False).stdout.strip()
        if shutil.which("pyenv")
        else os.path.expanduser("~/.pyenv")
    )
    candidates = sorted(glob.glob(f"{root}/versions/{GLUE_PYTHON}*/bin/python{GLUE_PYTHON}"))
    return candidates[-1] if candidates else None


@pytest.mark.skipif(_python311() is None, reason="no Python 3.11 on this machine (pyenv install 3.11)")
def test_glue_code_compiles_on_python_311(tmp_path: Path) -> None:
    python = _python311()
    assert python is not None
    sources = [str(REPO / folder) for folder in ("glue", "layers/shared/dxops", "cohorts", "ml")]
    completed = subprocess.run(
        [python, "-m", "compileall", "-q", "-d", str(tmp_path), *sources],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
