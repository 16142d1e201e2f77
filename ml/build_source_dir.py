"""Builds the SageMaker source dir of the training job and the endpoint (sourcedir.tar.gz).

    python -m ml.build_source_dir OUT.tar.gz

Contents: the ml package with its data (the HPO disease annotations), the parts of the shared
layer it imports (dxops.vocab: HPO index, units, measurement table), requirements.txt at the root
(ml/requirements.txt: what the XGBoost 3.0-5 image lacks; SageMaker pip-installs it), and three
entry points at the root, because SageMaker runs the entry point as a script from the source dir:
  dxops_train.py      the training job's entry point (ml.train under the container contract)
  dxops_inference.py  the endpoint's entry point (model_fn, input_fn, predict_fn, output_fn)
  dxops_compare.py    the promotion gate's processing job (ml.compare under the processing
                      contract; a processing job installs nothing: the entry point installs
                      requirements.txt when the image lacks it)
  dxops_monitor.py    the drift and live-quality monitor's processing job (ml.monitor, the same way)
The archive is reproducible: sorted members, fixed times and owners.
"""

from __future__ import annotations

import gzip
import io
import sys
import tarfile
from pathlib import Path

ML = Path(__file__).resolve().parent
ROOT = ML.parent
LAYER = ROOT / "layers" / "shared"
VOCAB_FILES = (
    "__init__.py",
    "codes.py",
    "hpo.py",
    "hpo_index.json.gz",
    "identifiers.py",
    "measurements.py",
    "training_metrics.py",
    "units.py",
)
TRAIN_ENTRY, INFERENCE_ENTRY, COMPARE_ENTRY = "dxops_train.py", "dxops_inference.py", "dxops_compare.py"
MONITOR_ENTRY = "dxops_monitor.py"
_PROCESSING_ENTRY = (
    '"""SageMaker Processing entry point: {what} ({module})."""\n\n'
    "import importlib.util\nimport subprocess\nimport sys\nfrom pathlib import Path\n\n"
    'if importlib.util.find_spec("imblearn") is None:\n'
    '    requirements = Path(__file__).with_name("requirements.txt")\n'
    '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)\n'
    "sys.path.insert(0, str(Path(__file__).parent))\n\n"
    "from {package} import main  # noqa: E402\n\nsys.exit(main())\n"
)
ENTRY_POINTS = {
    TRAIN_ENTRY: '"""SageMaker training entry point (script mode)."""\n\n'
    "import sys\n\nfrom ml.train import main\n\nsys.exit(main())\n",
    INFERENCE_ENTRY: '"""SageMaker inference entry point (serving contract)."""\n\n'
    "from ml.inference import input_fn, model_fn, output_fn, predict_fn\n\n"
    '__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]\n',
    # Processing jobs, unlike training jobs, install no requirements.txt: the entry point installs
    # what the image lacks before importing the code that needs it.
    COMPARE_ENTRY: _PROCESSING_ENTRY.format(
        what="the promotion gate's evaluation", module="ml/compare.py", package="ml.compare"
    ),
    MONITOR_ENTRY: _PROCESSING_ENTRY.format(
        what="the drift and live-quality monitor", module="ml/monitor.py", package="ml.monitor"
    ),
}
# Tooling that never runs in the image (plots need matplotlib; this builder).
EXCLUDED = {"report.py", "evaluate.py", "rank.py", "build_source_dir.py"}


def members() -> dict[str, bytes]:
    files = {f"ml/{p.name}": p.read_bytes() for p in sorted(ML.glob("*.py")) if p.name not in EXCLUDED}
    files.update({f"ml/data/{p.name}": p.read_bytes() for p in sorted((ML / "data").glob("*")) if p.is_file()})
    files["dxops/__init__.py"] = (LAYER / "dxops" / "__init__.py").read_bytes()
    files.update({f"dxops/vocab/{name}": (LAYER / "dxops" / "vocab" / name).read_bytes() for name in VOCAB_FILES})
    files["requirements.txt"] = (ML / "requirements.txt").read_bytes()
    files.update({name: text.encode() for name, text in ENTRY_POINTS.items()})
    return files


def build_source_dir(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(members().items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    out.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return out


if __name__ == "__main__":
    print(build_source_dir(Path(sys.argv[1])))
