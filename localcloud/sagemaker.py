"""SageMaker on the local cloud: training and processing jobs run, endpoints serve.

moto keeps every SageMaker resource (so Describe*/List* and the Model Registry are moto's own),
but it runs nothing: jobs are Completed at once, endpoints InService with a canned body. This
module makes them real, in both modes of the local cloud (the moto server runs in this process):

Training (CreateTrainingJob): a worker thread runs the job under the SageMaker training container
contract, InProgress -> Completed / Failed / Stopped with SecondaryStatus transitions:
  - script mode as the SageMaker Python SDK sets it: hyperparameters `sagemaker_program` (the entry
    point) and `sagemaker_submit_directory` (s3:// URI of sourcedir.tar.gz, or a local directory,
    .tar.gz or file:// URI), JSON-encoded or not; or AlgorithmSpecification.ContainerEntrypoint /
    ContainerArguments (paths mapped as below). Other jobs (built-in algorithms) fail with a reason.
  - /opt/ml is laid out in a per-job directory: input/config/{hyperparameters,inputdataconfig,
    resourceconfig}.json, input/data/<channel>/ (S3Prefix and ManifestFile channels downloaded,
    as for processing inputs below), code/, model/,
    output/ (the `failure` file), output/data/, checkpoints (CheckpointConfig synced from/to S3).
  - SM_* variables as the sagemaker-training-toolkit sets them, TRAINING_JOB_NAME/ARN,
    SAGEMAKER_BASE_DIR, and the job's Environment; the command is `<python> <entry point>
    --<hp> <value> ...` (user hyperparameters, sorted, as the toolkit's to_cmd_args) in code/.
  - stdout+stderr go to CloudWatch Logs (/aws/sagemaker/TrainingJobs, stream <job>/algo-1-<epoch>,
    written when the job ends) and the MetricDefinitions regexes are applied to them: the last
    value of each metric is FinalMetricDataList, and all values go to CloudWatch metrics
    (/aws/sagemaker/TrainingJobs, dimension Host=<job>/algo-1).
  - success: model/ -> <S3OutputPath>/<job>/output/model.tar.gz, output/data/ -> output.tar.gz.
    Non-zero exit: FailureReason "AlgorithmError: " + the failure file (or the toolkit's
    ExecuteUserScriptError text with the output's tail). StoppingCondition.MaxRuntimeInSeconds
    (counted from the container's start): the process gets SIGTERM (SIGKILL after
    SETTINGS.stop_grace), what model/ holds is uploaded, and the job ends Stopped with
    SecondaryStatus MaxRuntimeExceeded, as on AWS, plus a FailureReason saying so.
    StopTrainingJob (moto lacks it) stops a job the same way.
    Job names must be unique, as on AWS.
Processing (CreateProcessingJob): ProcessingInputs (S3) are downloaded to their LocalPath, the
  ContainerEntrypoint + ContainerArguments run, ProcessingOutputs are uploaded when it succeeds;
  /opt/ml/output/message becomes ExitMessage; the job's Environment (which moto drops) is kept.
  S3DataType S3Prefix: every object under the prefix; ManifestFile: S3Uri names a manifest (a JSON
  array `[{"prefix": "s3://bucket/some/prefix/"}, "relative/key", ...]`) and each listed object
  lands at LocalPath/<relative key> (only the prefix: an empty LocalPath). A missing or malformed
  manifest, or a listed object that does not exist, fails the job before its container runs
  ("ClientError: Failed to download data. ..."). AugmentedManifestFile is not emulated.
Endpoints (CreateEndpoint / UpdateEndpoint / DeleteEndpoint, InvokeEndpoint): one model server
  process per production variant (localcloud/sagemaker_serving.py: model.tar.gz extracted,
  model_fn once, GET /ping, POST /invocations with input_fn / predict_fn / output_fn).
  Creating -> InService once every variant answers /ping, or Failed with FailureReason.
  UpdateEndpoint (moto: NotImplemented) is blue/green: the new config's fleet starts (Updating),
  is health-checked, traffic shifts to it (ALL_AT_ONCE, CANARY or LINEAR per the DeploymentConfig,
  waiting WaitIntervalInSeconds between steps while watching the AutoRollbackConfiguration alarms),
  then the old fleet stops after TerminationWaitInSeconds. A green fleet that fails its health
  check, or an alarm in ALARM during the bake, rolls back: the old fleet keeps serving and the
  endpoint returns to InService with FailureReason describing the failed update.
  InvokeEndpoint forwards the body to the endpoint's current fleet (weighted variants, or
  TargetVariant) and returns the model's body and content type; a model error surfaces as
  ModelError with OriginalStatusCode, as on AWS. Binary request bodies pass through untouched.
  Data capture: a fleet whose endpoint configuration has a DataCaptureConfig writes the sampled
  invocations to S3 as SageMaker does (localcloud/sagemaker_capture.py).
  Serverless variants (ServerlessConfig) run as one model server; as on AWS, a serverless
  configuration has one variant and no data capture (CreateEndpointConfig), an instance-based
  endpoint cannot be updated to serverless (the reverse works) and serverless endpoints take no
  RollingUpdatePolicy. A DeploymentConfig needs the new configuration to keep the variant names.
Model Registry: moto's, with UpdateModelPackage as AWS applies it (fields left out stay, metadata
  merges), versioned packages PendingManualApproval by default, and tags on model packages.
Events: model package, training job and endpoint state changes go to EventBridge's default bus
  (localcloud/sagemaker_events.py), through localcloud.events like other AWS services' events.
Experiments: moto's, with BatchPutMetrics, UpdateTrialComponent and ListTrialComponents fixed
  (localcloud/sagemaker_experiments.py).

Paths: each job or variant gets a directory standing for the container's "/": a container path
P maps to <root>/P (so /opt/ml/model is <root>/opt/ml/model). SM_* variables and configuration
files carry the mapped paths. In ContainerEntrypoint / ContainerArguments, every path under
/opt/ml and every ProcessingInput/Output LocalPath is rewritten to its mapped form (whole path
components only, also after `=`, `:` or `,`); LOCALCLOUD_CONTAINER_ROOT is set to <root>. Paths
written into the script's own code are not rewritten: take them from arguments or SM_* variables.
A first element `python`, `python3` or `python3.x` (any directory) is replaced by the interpreter.

Interpreter: code that runs in SageMaker images runs on their Python, not on ours. Every job and
model server runs on `SETTINGS.python` (default: sys.executable, or LOCALCLOUD_SAGEMAKER_PYTHON),
or on the interpreter of the first `SETTINGS.interpreters` pattern matching the image URI:
`configure(interpreters={r"sagemaker-scikit-learn": "/opt/py39/bin/python"})`. Requirements in
the source directory are not installed: the interpreter must already have them.

Lifecycle: install() patches moto once per process; shutdown() stops every job and model server
of this process (call it before the moto mock or server stops; it is idempotent) and an atexit
hook kills leftover processes. wait_for_training_job / wait_for_processing_job / wait_for_endpoint
poll Describe* until a final status; model_servers(endpoint) lists the live server processes.
Request bodies are never logged: they may be clinical records.

moto internals patched (moto 5.2.5; tests/localcloud/sagemaker/test_moto_pins.py pins each):
SageMakerResponse.create_training_job / create_processing_job / stop_processing_job /
create_endpoint_config / create_endpoint / delete_endpoint / create_model_package (wrapped: they
read the request, which keeps what moto drops, then call moto's), SageMakerResponse.update_endpoint
/ stop_training_job (added: moto dispatches actions to response methods by name),
SageMakerResponse.update_model_package / list_trial_components and
SageMakerRuntimeResponse.invoke_endpoint (replaced) and its use_raw_body (True);
SageMakerModelBackend._get_resource_from_arn (wrapped: model packages), update_trial_component and
SageMakerMetricsBackend.batch_put_metrics (replaced, same signatures); the workers write status
attributes of moto's FakeTrainingJob / FakeProcessingJob / FakeEndpoint / ModelPackage, which
Describe* turns into PascalCase keys.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.exceptions import ClientError
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakermetrics.models import SageMakerMetricsBackend
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from localcloud import sagemaker_capture, sagemaker_events, sagemaker_experiments
from localcloud.provision import Context, register_provisioner
from localcloud.template import Physical

logger = logging.getLogger(__name__)

SERVING_SCRIPT = Path(__file__).with_name("sagemaker_serving.py")
HOST = "algo-1"
CONTAINER_ML = "/opt/ml"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
_INPUT_DATA_TYPES = ("S3Prefix", "ManifestFile")  # AugmentedManifestFile (Pipe mode) is not emulated
MAX_REASON = 1024  # FailureReason and ExitMessage are at most 1 KB on AWS
MAX_LOG_LINES = 100_000  # per job to CloudWatch Logs; the job's log file has all of them


# --------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """How the local cloud runs SageMaker code; change it with configure()."""

    python: str = field(default_factory=lambda: os.environ.get("LOCALCLOUD_SAGEMAKER_PYTHON") or sys.executable)
    interpreters: dict[str, str] = field(default_factory=dict)  # image URI regex -> interpreter
    work_dir: Path | None = None  # job and endpoint directories (default: a temporary directory)
    keep_work_dirs: bool = field(default_factory=lambda: os.environ.get("LOCALCLOUD_SAGEMAKER_KEEP") == "1")
    health_timeout: float = 60.0  # seconds for a model server to load its model and answer /ping
    invoke_timeout: float = 60.0  # InvokeEndpoint's limit on AWS
    stop_grace: float = 2.0  # SIGTERM -> SIGKILL (120 s on AWS)
    time_scale: float = 1.0  # multiplies blue/green wait intervals (bake, termination wait)

    def interpreter(self, image: str | None) -> str:
        for pattern, python in self.interpreters.items():
            if image and re.search(pattern, image):
                return python
        return self.python


SETTINGS = Settings()


def configure(
    *,
    python: str | None = None,
    interpreters: dict[str, str] | None = None,
    work_dir: Path | None = None,
    keep_work_dirs: bool | None = None,
    health_timeout: float | None = None,
    time_scale: float | None = None,
    capture_flush_interval: float | None = None,
) -> Settings:
    """Change how jobs and model servers run (process-wide); returns the settings.
    capture_flush_interval: seconds between writes of endpoint data capture to S3 (default 5)."""
    sagemaker_capture.configure(flush_interval=capture_flush_interval)
    if python is not None:
        SETTINGS.python = python
    if interpreters is not None:
        SETTINGS.interpreters = dict(interpreters)
    if work_dir is not None:
        SETTINGS.work_dir = work_dir
    if keep_work_dirs is not None:
        SETTINGS.keep_work_dirs = keep_work_dirs
    if health_timeout is not None:
        SETTINGS.health_timeout = health_timeout
    if time_scale is not None:
        SETTINGS.time_scale = time_scale
    return SETTINGS


_WORK: dict[str, Path] = {}


def _work_dir(kind: str, name: str) -> Path:
    """A fresh directory for one job or endpoint deployment under the work directory."""
    with _LOCK:
        if "root" not in _WORK:
            base = SETTINGS.work_dir
            if base is not None:
                base.mkdir(parents=True, exist_ok=True)
            _WORK["root"] = Path(tempfile.mkdtemp(prefix="localcloud-sagemaker-", dir=base))
        path = _WORK["root"] / kind / f"{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


# --------------------------------------------------------------------------- AWS from worker threads


_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class _Aws:
    """The emulated account as a worker thread reaches it.

    Captured on the request's thread, because os.environ is process-global and the local Lambda
    runtime swaps it during invocations; each worker gets its own boto3 session (sessions are not
    thread-safe). In server mode boto3 reaches the moto server through its endpoint URL; in-process
    the moto mock intercepts the calls.
    """

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self.endpoint_url = os.environ.get("AWS_ENDPOINT_URL") or None
        self.credentials = {k: os.environ.get(k, "testing") for k in _CREDENTIAL_VARIABLES}
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session(
                        aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
                        aws_session_token=self.credentials["AWS_SESSION_TOKEN"],
                        region_name=self.region,
                    )
                self._clients[service] = self._session.client(  # type: ignore[call-overload]
                    service, endpoint_url=self.endpoint_url
                )
            return self._clients[service]

    def child_environment(self) -> dict[str, str]:
        """What a job needs to reach this account: in server mode its code can call the local cloud."""
        env = {**self.credentials, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env


# What a job's process inherits from ours; the rest of its environment is the container's.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT")


def _base_environment(aws: _Aws, root: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.update(aws.child_environment())
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", LOCALCLOUD_CONTAINER_ROOT=str(root))
    return env


# --------------------------------------------------------------------------- S3 and local sources


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _local_source(uri: str) -> Path | None:
    """A file:// URI or an absolute local path (local use of the SDK), else None."""
    if uri.startswith("file://"):
        return Path(uri[7:])
    if uri.startswith("/") and not uri.startswith(CONTAINER_ML):
        return Path(uri)
    return None


def _relative_key(prefix: str, key: str) -> str:
    """Where an object under an S3 prefix lands: relative to the prefix's 'directory'."""
    if prefix.endswith("/") or key.startswith(prefix + "/"):
        return key[len(prefix.rstrip("/")) :].lstrip("/")
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(parent) :]


def _inside(base: Path, relative: str) -> Path:
    target = (base / relative).resolve()
    if not target.is_relative_to(base.resolve()):
        raise ValueError(f"{relative} would land outside {base}")
    return target


def _download_prefix(aws: _Aws, uri: str, dest: Path) -> int:
    """Every object under an S3 prefix (or a local file or directory) into dest; how many."""
    dest.mkdir(parents=True, exist_ok=True)
    local = _local_source(uri)
    if local is not None:
        if local.is_dir():
            shutil.copytree(local, dest, dirs_exist_ok=True)
            return sum(1 for p in local.rglob("*") if p.is_file())
        shutil.copy2(local, dest / local.name)
        return 1
    bucket, prefix = _split_s3(uri)
    s3 = aws.client("s3")
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue  # folder marker
            target = _inside(dest, _relative_key(prefix, obj["Key"]))
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            count += 1
    return count


def _download_file(aws: _Aws, uri: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    local = _local_source(uri)
    if local is not None:
        shutil.copy2(local, dest)
        return
    bucket, key = _split_s3(uri)
    aws.client("s3").download_file(bucket, key, str(dest))


def _read_manifest(aws: _Aws, uri: str) -> tuple[str, list[str]]:
    """A manifest file's prefix and relative keys: `[{"prefix": "s3://bucket/some/prefix/"},
    "relative/key", ...]`, as SageMaker reads it for S3DataType ManifestFile."""
    local = _local_source(uri)
    try:
        if local is not None:
            text = local.read_bytes()
        else:
            bucket, key = _split_s3(uri)
            text = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (OSError, ClientError) as exc:
        raise JobError(f"the manifest file {uri} could not be read: {exc}") from exc
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise JobError(f"the manifest file {uri} is not valid JSON: {exc}") from exc
    head = manifest[0] if isinstance(manifest, list) and manifest else None
    prefix = head.get("prefix") if isinstance(head, dict) else None
    if not isinstance(prefix, str) or not prefix.startswith("s3://") or len(prefix) <= len("s3://"):
        raise JobError(f'the manifest file {uri} must be a JSON array starting with {{"prefix": "s3://..."}}')
    keys = manifest[1:]
    if not all(isinstance(k, str) and k for k in keys):
        raise JobError(f"the manifest file {uri} must list its objects as non-empty strings after the prefix")
    return prefix, keys


def _download_manifest(aws: _Aws, uri: str, dest: Path) -> int:
    """Every object a manifest file lists into dest/<relative key> (an empty list: an empty dest);
    how many. A listed object that is missing fails the download."""
    prefix, keys = _read_manifest(aws, uri)
    dest.mkdir(parents=True, exist_ok=True)
    for relative in keys:
        source = prefix + relative
        try:
            target = _inside(dest, relative)
        except ValueError as exc:
            raise JobError(f"the manifest file {uri} lists {relative!r}, which leaves the input directory") from exc
        try:
            _download_file(aws, source, target)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"404", "NoSuchKey", "NoSuchBucket"}:
                raise JobError(f"{source} listed in the manifest file {uri} does not exist") from exc
            raise JobError(f"{source} listed in the manifest file {uri} could not be downloaded: {exc}") from exc
    return len(keys)


def _download_input(aws: _Aws, data_type: str, uri: str, dest: Path) -> int:
    """An S3Prefix or ManifestFile input into dest; how many objects."""
    if data_type == "ManifestFile":
        return _download_manifest(aws, uri, dest)
    return _download_prefix(aws, uri, dest)


def _join_s3(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *parts])


def _upload_dir(aws: _Aws, src: Path, uri: str) -> int:
    if not src.is_dir():
        return 0
    files = [p for p in sorted(src.rglob("*")) if p.is_file()]
    local = _local_source(uri)
    for path in files:
        relative = path.relative_to(src).as_posix()
        if local is not None:
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        else:
            bucket, key = _split_s3(_join_s3(uri, relative))
            aws.client("s3").upload_file(str(path), bucket, key)
    return len(files)


def _upload_file(aws: _Aws, src: Path, uri: str) -> None:
    local = _local_source(uri)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, local)
        return
    bucket, key = _split_s3(uri)
    aws.client("s3").upload_file(str(src), bucket, key)


def _extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")  # no absolute paths or links out of dest


def _tar_dir(src: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False)


def _fetch_source(aws: _Aws, uri: str, dest: Path) -> None:
    """A source directory (sourcedir.tar.gz on S3, a local .tar.gz or a local directory) into dest."""
    local = _local_source(uri)
    if local is not None and local.is_dir():
        shutil.copytree(local, dest, dirs_exist_ok=True)
        return
    archive = dest.parent / f"{dest.name}.tar.gz"
    _download_file(aws, uri, archive)
    _extract(archive, dest)
    archive.unlink()


# --------------------------------------------------------------------------- container conventions


def _decode(value: Any) -> Any:
    """A hyperparameter as the toolkit reads it: JSON when it parses (the SDK JSON-encodes them)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _env_value(value: Any) -> str:
    """The toolkit's mapping.to_env_vars: strings as they are, everything else compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """The toolkit's mapping.to_cmd_args: sorted `--name value` pairs (`-n` for one letter)."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args.append(f"--{key}" if len(key) > 1 else f"-{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append("" if value is None else str(value))
    return args


_PYTHON = re.compile(r"(?:.*/)?python(?:\d+(?:\.\d+)?)?")


def _map_command(command: list[str], root: Path, paths: list[str], image: str | None) -> list[str]:
    """Container paths in an entrypoint and its arguments -> their mapped form; python -> ours."""
    prefixes = sorted({CONTAINER_ML, *(p.rstrip("/") for p in paths if p.startswith("/"))}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, prefixes)) + r")(?=/|$|[^\w.-])")
    mapped = [pattern.sub(lambda m: str(root) + m.group(1), arg) for arg in command]
    if mapped and _PYTHON.fullmatch(command[0]):
        mapped[0] = SETTINGS.interpreter(image)
    return mapped


def _tail(lines: Iterable[str], count: int = 20) -> str:
    return "\n".join(list(lines)[-count:])


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


class JobError(Exception):
    """A job that cannot run locally or whose inputs are missing (FailureReason 'ClientError: ...')."""


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the process group (scripts may have children), SIGKILL after the grace period."""
    if process.poll() is not None:
        return
    _kill_group(process, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGKILL)
        process.wait()


_PROCESSES: set[subprocess.Popen[bytes]] = set()


def _popen(command: list[str], *, env: dict[str, str], cwd: Path, stdout: Any) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 - the job's own command, as the container would run it
        command, env=env, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True
    )
    with _LOCK:
        _PROCESSES.add(process)
    return process


# --------------------------------------------------------------------------- jobs


@dataclass
class _Outcome:
    exit_code: int | None
    timed_out: bool = False
    stopped: bool = False


class _Job:
    """One job's worker: runs the container command, streams its output, ends in a status."""

    kind = "job"
    log_group = ""

    def __init__(self, aws: _Aws, name: str, fake: Any, max_runtime: int | None, image: str | None) -> None:
        self.aws = aws
        self.name = name
        self.fake = fake  # moto's object: status is written to it, Describe reads it
        self.max_runtime = max_runtime
        self.image = image
        self.dir = _work_dir(self.kind, name)
        self.root = self.dir / "container"  # stands for the container's "/"
        self.log_path = self.dir / "output.log"
        self.lines: list[tuple[int, str]] = []  # (epoch ms, line) for CloudWatch Logs, up to MAX_LOG_LINES
        self.tail: deque[str] = deque(maxlen=20)  # the last lines, for failure reasons
        self.started = time.monotonic()
        self.stop_requested = threading.Event()
        self.done = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self._main, name=f"sagemaker-{self.kind}-{name}", daemon=True)

    @property
    def ml(self) -> Path:
        return self.root / CONTAINER_ML.lstrip("/")

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> bool:
        """False once moto forgot the job (mock stopped or reset): then touch no AWS API."""
        return not _CLOSING.is_set() and self._registered() is self.fake

    def _registered(self) -> Any:
        raise NotImplementedError

    def _main(self) -> None:
        try:
            self.run()
        except Exception as exc:
            logger.exception("%s %s failed before or after its container ran", self.kind, self.name)
            reason = str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                self.finish("Failed", _truncate(f"ClientError: {reason}"))
        finally:
            if not SETTINGS.keep_work_dirs:
                shutil.rmtree(self.root, ignore_errors=True)  # the container's disk; the log stays
            self.done.set()

    def run(self) -> None:
        raise NotImplementedError

    def finish(self, status: str, reason: str | None) -> None:
        raise NotImplementedError

    def execute(self, command: list[str], env: dict[str, str], cwd: Path, on_line: Callable[[str], None]) -> _Outcome:
        """Run the container's command; enforce MaxRuntime and StopJob; every output line to on_line."""
        if self.stop_requested.is_set():
            return _Outcome(None, stopped=True)
        with self.log_path.open("ab") as log:
            self.process = process = _popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE)
            reader = threading.Thread(target=self._read, args=(process, log, on_line), daemon=True)
            reader.start()
            # The clock starts with the container: input downloads do not count against MaxRuntime here.
            deadline = time.monotonic() + self.max_runtime if self.max_runtime else None
            outcome = _Outcome(None)
            while process.poll() is None:
                if deadline is not None and time.monotonic() >= deadline:
                    outcome.timed_out = True
                elif self.stop_requested.is_set():
                    outcome.stopped = True
                if outcome.timed_out or outcome.stopped:
                    _terminate(process, SETTINGS.stop_grace)
                    break
                self.stop_requested.wait(0.05)
            process.wait()
            reader.join(5)
        with _LOCK:
            _PROCESSES.discard(process)
        outcome.exit_code = process.returncode
        return outcome

    def _read(self, process: subprocess.Popen[bytes], log: Any, on_line: Callable[[str], None]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            log.write(raw)
            log.flush()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(self.lines) < MAX_LOG_LINES:  # the log file keeps everything
                self.lines.append((int(time.time() * 1000), line))
            self.tail.append(line)
            try:
                on_line(line)
            except Exception:
                logger.exception("output handler of %s %s failed", self.kind, self.name)

    def publish_logs(self, started_epoch: float) -> None:
        """The output as CloudWatch Logs has it on AWS (here written when the job ends)."""
        if not self.lines or not self.alive():
            return
        logs = self.aws.client("logs")
        stream = f"{self.name}/{HOST}-{int(started_epoch)}"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=self.log_group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
        events: list[dict[str, Any]] = [{"timestamp": at, "message": line or " "} for at, line in self.lines]
        batch: list[dict[str, Any]] = []
        size = 0
        for event in events:
            event_size = len(event["message"].encode()) + 26
            if batch and (len(batch) >= 5000 or size + event_size > 800_000):
                logs.put_log_events(logGroupName=self.log_group, logStreamName=stream, logEvents=batch)
                batch, size = [], 0
            batch.append(event)
            size += event_size
        if batch:
            logs.put_log_events(logGroupName=self.log_group, logStreamName=stream, logEvents=batch)


class _TrainingJob(_Job):
    kind = "training"
    log_group = TRAINING_LOG_GROUP

    def __init__(self, aws: _Aws, name: str, fake: Any, request: dict[str, Any]) -> None:
        spec = request.get("AlgorithmSpecification") or {}
        stopping = request.get("StoppingCondition") or {}
        super().__init__(aws, name, fake, stopping.get("MaxRuntimeInSeconds"), spec.get("TrainingImage"))
        self.request = request
        self.metric_definitions = [(m["Name"], re.compile(m["Regex"])) for m in spec.get("MetricDefinitions") or []]
        self.metrics: list[tuple[str, float, Any]] = []
        self.transitions: list[dict[str, Any]] = []
        self.epoch = time.time()

    def _registered(self) -> Any:
        return sagemaker_backends[self.aws.account][self.aws.region].training_jobs.get(self.name)

    def secondary(self, status: str, message: str) -> None:
        now = utcnow()
        transitions = [dict(t) for t in self.transitions]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        self.transitions = transitions
        self.fake.secondary_status = status
        self.fake.secondary_status_transitions = [dict(t) for t in transitions]
        self.fake.last_modified_time = now

    def _on_line(self, line: str) -> None:
        for name, regex in self.metric_definitions:
            match = regex.search(line)
            if match:
                with contextlib.suppress(ValueError, IndexError):
                    value = float(match.group(1))
                    self.metrics.append((name, value, utcnow()))
                    self.fake.final_metric_data_list = self._final_metrics()

    def _final_metrics(self) -> list[dict[str, Any]]:
        last: dict[str, dict[str, Any]] = {}
        for name, value, at in self.metrics:
            last[name] = {"MetricName": name, "Value": value, "Timestamp": at}
        return [last[name] for name, _ in self.metric_definitions if name in last]

    def run(self) -> None:
        request = self.request
        hyperparameters = {k: str(v) for k, v in (request.get("HyperParameters") or {}).items()}
        decoded = {k: _decode(v) for k, v in hyperparameters.items()}
        user_hps = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
        framework = {k: v for k, v in decoded.items() if k.startswith("sagemaker_")}
        environment = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
        spec = request.get("AlgorithmSpecification") or {}
        program = framework.get("sagemaker_program") or environment.get("SAGEMAKER_PROGRAM")
        submit = framework.get("sagemaker_submit_directory") or environment.get("SAGEMAKER_SUBMIT_DIRECTORY")
        if not program and not spec.get("ContainerEntrypoint"):
            raise JobError(
                "the local cloud runs script-mode training only: set the sagemaker_program and "
                "sagemaker_submit_directory hyperparameters, or AlgorithmSpecification.ContainerEntrypoint"
            )

        self.secondary("Downloading", "Downloading input data")
        ml = self.ml
        for sub in ("input/config", "input/data", "code", "model", "output/data", "output/intermediate"):
            (ml / sub).mkdir(parents=True, exist_ok=True)
        channels = self._download_channels(ml / "input" / "data")
        checkpoint = self._restore_checkpoints()
        if submit and program:
            _fetch_source(self.aws, str(submit), ml / "code")
        input_config = self._input_data_config()
        resource_config = self._resource_config()
        (ml / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
        (ml / "input/config/inputdataconfig.json").write_text(json.dumps(input_config))
        (ml / "input/config/resourceconfig.json").write_text(json.dumps(resource_config))
        if (ml / "code" / "requirements.txt").exists():
            logger.warning("training job %s: requirements.txt is not installed locally", self.name)

        env = _base_environment(self.aws, self.root)
        env.update(environment)
        if program:
            env.update(
                self._sm_environment(
                    program=str(program),
                    submit=submit,
                    user_hps=user_hps,
                    framework=framework,
                    channels=channels,
                    input_config=input_config,
                )
            )
            entry = ml / "code" / str(program)
            if not entry.is_file():
                raise JobError(f"the entry point {program} is not in the source directory {submit}")
            launcher = ["/bin/sh"] if entry.suffix == ".sh" else [SETTINGS.interpreter(self.image)]
            command = [*launcher, str(entry), *_cmd_args(user_hps)]
        else:
            entrypoint = [*spec["ContainerEntrypoint"], *(spec.get("ContainerArguments") or [])]
            command = _map_command(entrypoint, self.root, [], self.image)
        env.update(TRAINING_JOB_NAME=self.name, TRAINING_JOB_ARN=self.fake.arn, SAGEMAKER_BASE_DIR=str(ml))

        if not self.alive():
            return
        self.secondary("Training", "Training image download completed. Training in progress.")
        outcome = self.execute(command, env, ml / "code", self._on_line)
        self._after(outcome, command, checkpoint)

    def _after(self, outcome: _Outcome, command: list[str], checkpoint: tuple[str, Path] | None) -> None:
        if not self.alive():
            return
        if checkpoint is not None:
            _upload_dir(self.aws, checkpoint[1], checkpoint[0])
        ml = self.ml
        self.publish_logs(self.epoch)
        self._publish_metrics()
        if outcome.timed_out or outcome.stopped:
            self.secondary("Stopping", "Stopping the training job")
            self._upload_artifacts(only_if_present=True)  # what the SIGTERM window saved
            reason = None
            if outcome.timed_out:
                reason = f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds ({self.max_runtime} s)"
            self.finish("Stopped", reason, secondary="MaxRuntimeExceeded" if outcome.timed_out else "Stopped")
            return
        if outcome.exit_code != 0:
            failure = ml / "output" / "failure"
            text = failure.read_text(errors="replace").strip() if failure.is_file() else ""
            if not text:
                text = (
                    f"ExecuteUserScriptError:\nExitCode {outcome.exit_code}\n"
                    f'ErrorMessage "{_tail(self.tail, 10)}"\nCommand "{" ".join(command)}", '
                    f"exit code: {outcome.exit_code}"
                )
            self.finish("Failed", _truncate(f"AlgorithmError: {text}"))
            return
        self.secondary("Uploading", "Uploading generated training model")
        self._upload_artifacts(only_if_present=False)
        self.finish("Completed", None)

    def _download_channels(self, data_dir: Path) -> dict[str, Path]:
        channels: dict[str, Path] = {}
        for channel in self.request.get("InputDataConfig") or []:
            name = channel["ChannelName"]
            source = channel.get("DataSource") or {}
            s3 = source.get("S3DataSource")
            if s3 is None:
                raise JobError(f"channel {name}: only S3DataSource is supported locally")
            data_type = s3.get("S3DataType", "S3Prefix")
            if data_type not in _INPUT_DATA_TYPES:
                raise JobError(f"channel {name}: S3DataType {data_type} is not supported locally")
            path = data_dir / name
            try:
                count = _download_input(self.aws, data_type, s3["S3Uri"], path)
            except JobError as exc:
                raise JobError(f"Data download failed: channel {name}: {exc}") from exc
            if count == 0:
                raise JobError(f"Data download failed: no objects under {s3['S3Uri']} for channel {name}")
            channels[name] = path
        return channels

    def _restore_checkpoints(self) -> tuple[str, Path] | None:
        config = self.request.get("CheckpointConfig") or {}
        if not config.get("S3Uri"):
            return None
        local = self.root / config.get("LocalPath", "/opt/ml/checkpoints").lstrip("/")
        _download_prefix(self.aws, config["S3Uri"], local)
        return config["S3Uri"], local

    def _input_data_config(self) -> dict[str, Any]:
        mode = (self.request.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
        config: dict[str, Any] = {}
        for channel in self.request.get("InputDataConfig") or []:
            s3 = (channel.get("DataSource") or {}).get("S3DataSource") or {}
            entry = {
                "TrainingInputMode": channel.get("InputMode", mode),
                "S3DistributionType": s3.get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            if channel.get("ContentType"):
                entry["ContentType"] = channel["ContentType"]
            config[channel["ChannelName"]] = entry
        return config

    def _resource_config(self) -> dict[str, Any]:
        instance_type = (self.request.get("ResourceConfig") or {}).get("InstanceType", "local")
        return {
            "current_host": HOST,
            "current_instance_type": instance_type,
            "current_group_name": "homogeneousCluster",
            "hosts": [HOST],
            "instance_groups": [
                {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": [HOST]}
            ],
            "network_interface_name": "eth0",
        }

    def _sm_environment(
        self,
        *,
        program: str,
        submit: Any,
        user_hps: dict[str, Any],
        framework: dict[str, Any],
        channels: dict[str, Path],
        input_config: dict[str, Any],
    ) -> dict[str, str]:
        """The SM_* variables of the sagemaker-training-toolkit (environment.Environment.to_env_vars)."""
        ml = self.ml
        resource_config = self._resource_config()
        paths = {
            "model_dir": str(ml / "model"),
            "input_dir": str(ml / "input"),
            "input_config_dir": str(ml / "input" / "config"),
            "output_dir": str(ml / "output"),
            "output_data_dir": str(ml / "output" / "data"),
            "output_intermediate_dir": str(ml / "output" / "intermediate"),
        }
        training_env: dict[str, Any] = {
            **paths,
            "additional_framework_parameters": framework,
            "channel_input_dirs": {name: str(path) for name, path in channels.items()},
            "current_host": HOST,
            "current_instance_type": resource_config["current_instance_type"],
            "framework_module": None,
            "hosts": [HOST],
            "hyperparameters": user_hps,
            "input_data_config": input_config,
            "job_name": self.name,
            "log_level": 20,
            "module_dir": str(submit or ml / "code"),
            "module_name": Path(program).stem,
            "network_interface_name": "eth0",
            "num_cpus": os.cpu_count() or 1,
            "num_gpus": 0,
            "resource_config": resource_config,
            "user_entry_point": program,
        }
        values: dict[str, Any] = {
            **paths,
            "hosts": [HOST],
            "network_interface_name": "eth0",
            "hps": user_hps,
            "user_entry_point": program,
            "framework_params": framework,
            "resource_config": resource_config,
            "input_data_config": input_config,
            "channels": sorted(channels),
            "current_host": HOST,
            "current_instance_type": resource_config["current_instance_type"],
            "module_name": Path(program).stem,
            "log_level": 20,
            "framework_module": None,
            "num_cpus": os.cpu_count() or 1,
            "num_gpus": 0,
            "module_dir": training_env["module_dir"],
            "training_env": training_env,
            "user_args": _cmd_args(user_hps),
        }
        values.update({f"channel_{name}": str(path) for name, path in channels.items()})
        values.update({f"hp_{name}": value for name, value in user_hps.items()})
        return {f"SM_{key.upper()}": _env_value(value) for key, value in values.items()}

    def _upload_artifacts(self, *, only_if_present: bool) -> None:
        output_path = (self.request.get("OutputDataConfig") or {}).get("S3OutputPath")
        if not output_path:
            return
        model_dir, data_dir = self.ml / "model", self.ml / "output" / "data"
        if only_if_present and not any(model_dir.iterdir()):
            return
        model_uri = _join_s3(output_path, self.name, "output", "model.tar.gz")
        archive = self.dir / "model.tar.gz"
        _tar_dir(model_dir, archive)
        _upload_file(self.aws, archive, model_uri)
        archive.unlink()
        self.fake.model_artifacts = {"S3ModelArtifacts": model_uri}
        if data_dir.is_dir() and any(data_dir.iterdir()):
            archive = self.dir / "output.tar.gz"
            _tar_dir(data_dir, archive)
            _upload_file(self.aws, archive, _join_s3(output_path, self.name, "output", "output.tar.gz"))
            archive.unlink()

    def _publish_metrics(self) -> None:
        if not self.metrics:
            return
        data = [
            {
                "MetricName": name,
                "Dimensions": [{"Name": "Host", "Value": f"{self.name}/{HOST}"}],
                "Value": value,
                "Timestamp": at,
            }
            for name, value, at in self.metrics
        ]
        cloudwatch = self.aws.client("cloudwatch")
        for start in range(0, len(data), 500):
            cloudwatch.put_metric_data(Namespace=TRAINING_LOG_GROUP, MetricData=data[start : start + 500])

    def finish(self, status: str, reason: str | None, secondary: str | None = None) -> None:
        if not self.alive():
            return
        messages = {
            "Completed": "Training job completed",
            "Failed": "Training job failed",
            "Stopped": "Training job stopped",
            "MaxRuntimeExceeded": "The job was stopped because it exceeded the maximum allowed runtime",
        }
        final = secondary or status
        self.secondary(final, messages.get(final, final))
        transitions = [dict(t) for t in self.transitions]
        transitions[-1]["EndTime"] = transitions[-1]["StartTime"]
        self.fake.secondary_status_transitions = transitions
        now = utcnow()
        seconds = max(1, int(time.monotonic() - self.started))
        self.fake.failure_reason = reason
        self.fake.training_end_time = now
        self.fake.training_time_in_seconds = seconds
        self.fake.billable_time_in_seconds = seconds
        self.fake.final_metric_data_list = self._final_metrics()
        self.fake.last_modified_time = now
        self.fake.training_job_status = status
        logger.info("training job %s: %s", self.name, status)
        sagemaker_events.training_job_changed(self.fake.response_object)


class _ProcessingJob(_Job):
    kind = "processing"
    log_group = PROCESSING_LOG_GROUP

    def __init__(self, aws: _Aws, name: str, fake: Any, request: dict[str, Any]) -> None:
        stopping = request.get("StoppingCondition") or {}
        image = (request.get("AppSpecification") or {}).get("ImageUri")
        super().__init__(aws, name, fake, stopping.get("MaxRuntimeInSeconds"), image)
        self.request = request
        self.epoch = time.time()

    def _registered(self) -> Any:
        return sagemaker_backends[self.aws.account][self.aws.region].processing_jobs.get(self.name)

    def _local(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def run(self) -> None:
        app = self.request.get("AppSpecification") or {}
        if not app.get("ContainerEntrypoint"):
            raise JobError("the local cloud runs processing jobs with an AppSpecification.ContainerEntrypoint only")
        outputs = [
            o for o in (self.request.get("ProcessingOutputConfig") or {}).get("Outputs", []) if o.get("S3Output")
        ]
        paths = self._prepare(outputs)
        command = _map_command(
            [*app["ContainerEntrypoint"], *(app.get("ContainerArguments") or [])], self.root, paths, self.image
        )
        env = _base_environment(self.aws, self.root)
        env.update({str(k): str(v) for k, v in (self.request.get("Environment") or {}).items()})
        if not self.alive():
            return
        outcome = self.execute(command, env, self.root, lambda line: None)
        if self.alive():
            self._conclude(outcome, outputs)

    def _prepare(self, outputs: list[dict[str, Any]]) -> list[str]:
        """Inputs downloaded to their mapped LocalPath, output and config folders; the container paths."""
        paths: list[str] = []
        for item in self.request.get("ProcessingInputs") or []:
            s3 = item.get("S3Input")
            if s3 is None:
                raise JobError(f"input {item.get('InputName')}: only S3Input is supported locally")
            data_type = s3.get("S3DataType", "S3Prefix")
            if data_type not in _INPUT_DATA_TYPES:
                raise JobError(f"input {item.get('InputName')}: S3DataType {data_type} is not supported")
            paths.append(s3["LocalPath"])
            try:
                _download_input(self.aws, data_type, s3["S3Uri"], self._local(s3["LocalPath"]))
            except JobError as exc:
                raise JobError(f"Failed to download data. Input {item.get('InputName')}: {exc}") from exc
        for output in outputs:
            paths.append(output["S3Output"]["LocalPath"])
            self._local(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        config_dir = self.ml / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (self.ml / "output").mkdir(parents=True, exist_ok=True)
        (config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": HOST, "hosts": [HOST]}))
        (config_dir / "processingjobconfig.json").write_text(json.dumps(self.request, default=str))
        return paths

    def _conclude(self, outcome: _Outcome, outputs: list[dict[str, Any]]) -> None:
        self.publish_logs(self.epoch)
        message_file = self.ml / "output" / "message"
        if message_file.is_file():
            self.fake.exit_message = _truncate(message_file.read_text(errors="replace"))
        if outcome.timed_out:
            self.finish(
                "Stopped", f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds ({self.max_runtime} s)"
            )
        elif outcome.stopped:
            self.finish("Stopped", None)
        elif outcome.exit_code != 0:
            self.finish(
                "Failed",
                _truncate(
                    f"AlgorithmError: See job logs for more information. Exit code {outcome.exit_code}. "
                    f"Last output:\n{_tail(self.tail, 10)}"
                ),
            )
        else:
            for output in outputs:
                s3 = output["S3Output"]
                _upload_dir(self.aws, self._local(s3["LocalPath"]), s3["S3Uri"])
            self.finish("Completed", None)

    def finish(self, status: str, reason: str | None) -> None:
        if not self.alive():
            return
        now = utcnow()
        self.fake.failure_reason = reason
        self.fake.processing_end_time = now
        self.fake.last_modified_time = now
        self.fake.processing_job_status = status
        logger.info("processing job %s: %s", self.name, status)


_LOCK = threading.RLock()
_CLOSING = threading.Event()  # set during shutdown(): workers stop touching AWS
_JOBS: dict[tuple[str, str, str, str], _Job] = {}  # (kind, account, region, name)


def _register_job(job: _Job) -> None:
    with _LOCK:
        for key in [k for k, j in _JOBS.items() if j.done.is_set()]:
            del _JOBS[key]  # finished jobs need no stopping; their output is in moto and CloudWatch
        _JOBS[(job.kind, job.aws.account, job.aws.region, job.name)] = job


def _find_job(kind: str, name: str, region: str | None = None) -> _Job | None:
    with _LOCK:
        for (job_kind, _, job_region, job_name), job in reversed(list(_JOBS.items())):
            if job_kind == kind and job_name == name and (region is None or job_region == region):
                return job
    return None


# --------------------------------------------------------------------------- endpoints


class DeploymentError(Exception):
    """A fleet that did not become healthy; the message is the endpoint's FailureReason."""


@dataclass
class _VariantSpec:
    name: str
    weight: float
    instances: int
    image: str | None
    model_data_url: str | None
    environment: dict[str, str]
    serverless: dict[str, Any] | None = None  # ServerlessConfig: one model server, no instances


class _ModelServer:
    """One model server process (one production variant of one fleet)."""

    def __init__(self, aws: _Aws, spec: _VariantSpec, directory: Path) -> None:
        self.aws = aws
        self.spec = spec
        self.dir = directory
        self.root = directory / "container"
        self.log_path = directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.capture: sagemaker_capture.CaptureBuffer | None = None  # DataCaptureConfig of its fleet

    @property
    def model_dir(self) -> Path:
        return self.root / "opt/ml/model"

    def _code_dir(self) -> Path:
        submit = self.spec.environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith(CONTAINER_ML):
            return self.root / submit.lstrip("/")
        if submit:
            code = self.root / "opt/ml/code"
            _fetch_source(self.aws, submit, code)
            return code
        return self.model_dir / "code" if (self.model_dir / "code").is_dir() else self.model_dir

    def start(self) -> None:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        if self.spec.model_data_url:
            archive = self.dir / "model.tar.gz"
            _download_file(self.aws, self.spec.model_data_url, archive)
            _extract(archive, self.model_dir)
            archive.unlink()
        code_dir = self._code_dir()
        program = self.spec.environment.get("SAGEMAKER_PROGRAM", "inference.py")
        env = _base_environment(self.aws, self.root)
        env.update(self.spec.environment)
        env["SM_MODEL_DIR"] = str(self.model_dir)
        ready = self.dir / "ready.json"
        command = [
            SETTINGS.interpreter(self.spec.image),
            str(SERVING_SCRIPT),
            "--model-dir",
            str(self.model_dir),
            "--code-dir",
            str(code_dir),
            "--program",
            program,
            "--ready-file",
            str(ready),
        ]
        with self.log_path.open("ab") as log:
            self.process = _popen(command, env=env, cwd=code_dir if code_dir.is_dir() else self.dir, stdout=log)

    def wait_ready(self, deadline: float) -> None:
        """Until the model is loaded and /ping answers 200; DeploymentError otherwise."""
        assert self.process is not None
        ready = self.dir / "ready.json"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DeploymentError(self._unhealthy(f"the model server exited with code {self.process.returncode}"))
            if ready.exists() and not self.port:
                self.port = int(json.loads(ready.read_text())["port"])
            if self.port and self._ping():
                return
            time.sleep(0.02)
        self.stop()
        raise DeploymentError(self._unhealthy(f"no answer to /ping within {SETTINGS.health_timeout:g} s"))

    def _unhealthy(self, detail: str) -> str:
        log = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return _truncate(
            f"The primary container for production variant {self.spec.name} did not pass the ping health check. "
            f"Please check CloudWatch logs for this endpoint. Locally: {detail}: {_tail(log, 6)}"
        )

    def _ping(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/ping")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SETTINGS.invoke_timeout)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type", "")
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process, SETTINGS.stop_grace)
            with _LOCK:
                _PROCESSES.discard(self.process)
        if self.capture is not None:
            capture, self.capture = self.capture, None
            sagemaker_capture.release(capture)  # what it captured still reaches S3
        if not SETTINGS.keep_work_dirs:
            shutil.rmtree(self.root, ignore_errors=True)


class _Fleet:
    """The servers of one endpoint configuration: blue or green during an update."""

    def __init__(self, config_name: str, servers: list[_ModelServer]) -> None:
        self.config_name = config_name
        self.servers = servers

    @classmethod
    def launch(
        cls,
        aws: _Aws,
        endpoint: str,
        config_name: str,
        specs: list[_VariantSpec],
        capture: sagemaker_capture.CaptureConfig | None = None,
    ) -> _Fleet:
        directory = _work_dir("endpoints", endpoint)
        fleet = cls(config_name, [_ModelServer(aws, spec, directory / spec.name) for spec in specs])
        try:
            for server in fleet.servers:
                server.dir.mkdir(parents=True)
                server.start()
            deadline = time.monotonic() + SETTINGS.health_timeout
            for server in fleet.servers:
                server.wait_ready(deadline)
        except Exception as exc:
            fleet.stop()
            if isinstance(exc, DeploymentError):
                raise
            raise DeploymentError(_truncate(f"ClientError: {type(exc).__name__}: {exc}")) from exc
        if capture is not None:  # from the moment the fleet serves
            for server in fleet.servers:
                server.capture = sagemaker_capture.register(
                    sagemaker_capture.CaptureBuffer(capture, endpoint, server.spec.name, lambda: aws.client("s3"))
                )
        return fleet

    def pick(self, target_variant: str | None) -> _ModelServer | None:
        if target_variant:
            return next((s for s in self.servers if s.spec.name == target_variant), None)
        weights = [max(s.spec.weight, 0.0) for s in self.servers]
        if not any(weights):
            weights = [1.0] * len(self.servers)
        point = _RANDOM.random() * sum(weights)
        for server, weight in zip(self.servers, weights, strict=True):
            point -= weight
            if point < 0:
                return server
        return self.servers[-1]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


_RANDOM = secrets.SystemRandom()


class _Endpoint:
    """An endpoint's fleets and traffic split; its status is written to moto's FakeEndpoint."""

    def __init__(self, aws: _Aws, name: str, fake: Any) -> None:
        self.aws = aws
        self.name = name
        self.fake = fake
        self.lock = threading.Lock()
        self.live: _Fleet | None = None  # blue: serves all traffic outside updates
        self.green: _Fleet | None = None  # the new fleet during an update
        self.green_share = 0.0
        self.thread: threading.Thread | None = None
        self.deleted = threading.Event()

    def alive(self) -> bool:
        backend = sagemaker_backends[self.aws.account][self.aws.region]
        return not _CLOSING.is_set() and not self.deleted.is_set() and backend.endpoints.get(self.name) is self.fake

    def _set(self, status: str, reason: str | None = None) -> None:
        if self.alive():
            self.fake.failure_reason = reason
            self.fake.last_modified_time = utcnow()
            self.fake.endpoint_status = status
            sagemaker_events.endpoint_changed(self.fake)

    def _run(self, target: Callable[[], None]) -> None:
        self.thread = threading.Thread(target=target, name=f"sagemaker-endpoint-{self.name}", daemon=True)
        self.thread.start()

    def create(
        self, config_name: str, specs: list[_VariantSpec], capture: sagemaker_capture.CaptureConfig | None
    ) -> None:
        def deploy() -> None:
            try:
                fleet = _Fleet.launch(self.aws, self.name, config_name, specs, capture)
            except DeploymentError as exc:
                self._set("Failed", str(exc))
                return
            with self.lock:
                self.live = fleet
            if not self.alive():
                fleet.stop()
                return
            self._set("InService")

        self._run(deploy)

    def update(
        self,
        config_name: str,
        specs: list[_VariantSpec],
        capture: sagemaker_capture.CaptureConfig | None,
        config: dict[str, Any],
        after: Callable[[], None],
    ) -> None:
        def deploy() -> None:
            try:
                fleet = _Fleet.launch(self.aws, self.name, config_name, specs, capture)
            except DeploymentError as exc:
                self._set("InService", _truncate(f"Failed to update endpoint: {exc}"))
                return
            problem = self._shift(fleet, config)
            if problem is not None:
                self._set("RollingBack")
                with self.lock:
                    self.green, self.green_share = None, 0.0
                fleet.stop()
                self._set("InService", _truncate(f"Failed to update endpoint: {problem}. The update was rolled back."))
                return
            self._wait(float(_policy(config).get("TerminationWaitInSeconds", 0)))
            with self.lock:
                blue, self.live, self.green, self.green_share = self.live, fleet, None, 0.0
            if blue is not None:
                blue.stop()
            if not self.alive():
                fleet.stop()
                return
            after()
            self._set("InService")

        self._run(deploy)

    def _shift(self, fleet: _Fleet, config: dict[str, Any]) -> str | None:
        """Traffic to the green fleet step by step, baking between steps; the reason to roll back, if any."""
        routing = _policy(config).get("TrafficRoutingConfiguration") or {}
        wait = float(routing.get("WaitIntervalInSeconds", 0))
        alarms = [a["AlarmName"] for a in (config.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
        instances = sum(server.spec.instances for server in fleet.servers)
        with self.lock:
            self.green = fleet
        for share in _traffic_steps(routing.get("Type", "ALL_AT_ONCE"), routing, instances):
            with self.lock:
                self.green_share = share
            problem = self._bake(wait, alarms)  # after every step, the last one included
            if problem is not None:
                return problem
        return None

    def _bake(self, seconds: float, alarms: list[str]) -> str | None:
        deadline = time.monotonic() + seconds * SETTINGS.time_scale
        while True:
            if not self.alive():
                return "the endpoint was deleted"
            if alarms:
                cloudwatch = self.aws.client("cloudwatch")
                found = cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
                tripped = [a["AlarmName"] for a in found if a["StateValue"] == "ALARM"]
                if tripped:
                    return f"alarm {', '.join(tripped)} went into ALARM state during the deployment"
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _wait(self, seconds: float) -> None:
        self.deleted.wait(seconds * SETTINGS.time_scale)

    def route(self, target_variant: str | None) -> _ModelServer | None:
        """The server for one request: the green fleet takes its share of traffic during an update."""
        with self.lock:
            live, green, share = self.live, self.green, self.green_share
        if green is not None:
            if target_variant and green.pick(target_variant) and (live is None or not live.pick(target_variant)):
                return green.pick(target_variant)
            if not target_variant and _RANDOM.random() < share:
                return green.pick(None)
        return live.pick(target_variant) if live is not None else None

    def stop(self, *, join: bool = True) -> None:
        """Stop serving; a deployment in flight stops its own fleet when it sees the endpoint gone."""
        self.deleted.set()
        with self.lock:
            fleets = [f for f in (self.live, self.green) if f is not None]
            self.live = self.green = None
        for fleet in fleets:
            fleet.stop()
        if join and self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(SETTINGS.stop_grace + 5)


def _policy(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("BlueGreenUpdatePolicy") or {})


def _traffic_steps(kind: str, routing: dict[str, Any], instances: int) -> list[float]:
    """The green fleet's share of traffic after each step (CANARY / LINEAR / ALL_AT_ONCE)."""

    def fraction(size: dict[str, Any]) -> float:
        value = float(size.get("Value", 100))
        share = value / 100 if size.get("Type") == "CAPACITY_PERCENT" else value / max(instances, 1)
        return min(max(share, 0.0), 1.0)

    if kind == "CANARY":
        return [fraction(routing.get("CanarySize") or {}), 1.0]
    if kind == "LINEAR":
        step = fraction(routing.get("LinearStepSize") or {}) or 1.0
        shares = [min(step * i, 1.0) for i in range(1, int(1 / step + 0.999) + 1)]
        return shares if shares[-1] == 1.0 else [*shares, 1.0]
    return [1.0]


_ENDPOINTS: dict[tuple[str, str, str], _Endpoint] = {}


def _variant_specs(backend: Any, config_name: str) -> tuple[dict[str, Any], list[_VariantSpec]]:
    """The endpoint configuration's variants and their models, as at the time of the request."""
    config = backend.describe_endpoint_config(config_name)
    specs = []
    for variant in config["ProductionVariants"]:
        model = backend.describe_model(variant["ModelName"])
        container = model.primary_container or (model.containers[0] if model.containers else {})
        specs.append(
            _VariantSpec(
                name=variant["VariantName"],
                weight=float(variant.get("InitialVariantWeight", 1.0)),
                instances=int(variant.get("InitialInstanceCount", 1)),
                image=container.get("Image"),
                model_data_url=container.get("ModelDataUrl"),
                environment={str(k): str(v) for k, v in (container.get("Environment") or {}).items()},
                serverless=variant.get("ServerlessConfig"),
            )
        )
    return config, specs


def _capture(config: dict[str, Any]) -> sagemaker_capture.CaptureConfig | None:
    return sagemaker_capture.CaptureConfig.parse(config.get("DataCaptureConfig"))


def _serverless(variants: Iterable[dict[str, Any]]) -> bool:
    return any(v.get("ServerlessConfig") or v.get("CurrentServerlessConfig") for v in variants)


# --------------------------------------------------------------------------- moto patches


_ORIGINALS: dict[tuple[type, str], Any] = {}


def _request(response: Any, *names: str) -> dict[str, Any]:
    """The request's parameters, copied before moto mutates them (it rewrites MetricDefinitions)."""
    return {name: json.loads(json.dumps(response._get_param(name), default=str)) for name in names}


_TRAINING_PARAMS = (
    "TrainingJobName",
    "HyperParameters",
    "AlgorithmSpecification",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "Environment",
    "CheckpointConfig",
)


def _create_training_job(self: Any) -> Any:
    request = _request(self, *_TRAINING_PARAMS)
    name = request["TrainingJobName"]
    backend = self.sagemaker_backend
    if name in backend.training_jobs:
        arn = backend.training_jobs[name].arn
        raise ValidationError(
            "Training job names must be unique within an AWS account and region, and a training job "
            f"with this name already exists ({arn})"
        )
    for definition in (request["AlgorithmSpecification"] or {}).get("MetricDefinitions") or []:
        try:
            re.compile(definition["Regex"])
        except re.error as exc:
            raise ValidationError(f"MetricDefinitions {definition['Name']}: invalid Regex: {exc}") from exc
    result = _ORIGINALS[(SageMakerResponse, "create_training_job")](self)
    fake = backend.training_jobs[name]
    now = utcnow()
    spec = fake.algorithm_specification
    spec.pop("MetricDefinitions", None)  # moto replaced them with a fake one
    if (request["AlgorithmSpecification"] or {}).get("MetricDefinitions"):
        spec["MetricDefinitions"] = request["AlgorithmSpecification"]["MetricDefinitions"]
    # Every attribute Describe shows is set now: workers only reassign them (no dict resizing while
    # another thread serialises the object).
    fake.training_job_status = "InProgress"
    fake.secondary_status = "Starting"
    fake.secondary_status_transitions = [
        {"Status": "Starting", "StartTime": now, "StatusMessage": "Preparing the instances for training"}
    ]
    fake.final_metric_data_list = []
    fake.failure_reason = None
    fake.training_start_time = now
    fake.training_end_time = None
    fake.training_time_in_seconds = None
    fake.billable_time_in_seconds = None
    fake.environment = request["Environment"]
    fake.checkpoint_config = request["CheckpointConfig"]
    job = _TrainingJob(_Aws(self.current_account, self.region), name, fake, request)
    job.transitions = list(fake.secondary_status_transitions)
    _register_job(job)
    sagemaker_events.training_job_changed(fake.response_object)  # InProgress, before the job can end
    job.start()
    return result


def _stop_training_job(self: Any) -> Any:
    """StopTrainingJob (moto has none): Stopping, then the worker stops the script and ends Stopped."""
    name = self._get_param("TrainingJobName")
    backend = self.sagemaker_backend
    if name not in backend.training_jobs:
        backend.describe_training_job(name)  # raises moto's ValidationError for unknown jobs
    fake = backend.training_jobs[name]
    if fake.training_job_status != "InProgress":
        raise ValidationError(
            f"The request was rejected because the training job is in status {fake.training_job_status}."
        )
    job = _find_job("training", name, self.region)
    fake.training_job_status = "Stopping"
    sagemaker_events.training_job_changed(fake.response_object)
    if isinstance(job, _TrainingJob):
        job.stop_requested.set()
    return EmptyResult()


_PROCESSING_PARAMS = (
    "ProcessingJobName",
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "AppSpecification",
    "StoppingCondition",
    "Environment",
    "ProcessingResources",
)


def _create_processing_job(self: Any) -> Any:
    request = _request(self, *_PROCESSING_PARAMS)
    name = request["ProcessingJobName"]
    backend = self.sagemaker_backend
    if name in backend.processing_jobs:
        raise ValidationError(
            f"Processing job names must be unique within an AWS account and region; {name} already exists."
        )
    result = _ORIGINALS[(SageMakerResponse, "create_processing_job")](self)
    fake = backend.processing_jobs[name]
    now = utcnow()
    fake.processing_job_status = "InProgress"
    fake.processing_start_time = now
    fake.processing_end_time = None
    fake.failure_reason = None
    fake.exit_message = None
    fake.environment = request["Environment"]
    fake.processing_resources = request["ProcessingResources"]
    job = _ProcessingJob(_Aws(self.current_account, self.region), name, fake, request)
    _register_job(job)
    job.start()
    return result


def _stop_processing_job(self: Any) -> Any:
    name = self._get_param("ProcessingJobName")
    job = _find_job("processing", name, self.region)
    fake = self.sagemaker_backend.processing_jobs.get(name)
    if job is None or fake is None or fake.processing_job_status != "InProgress":
        return _ORIGINALS[(SageMakerResponse, "stop_processing_job")](self)
    fake.processing_job_status = "Stopping"
    job.stop_requested.set()
    return EmptyResult()


def _create_endpoint_config(self: Any) -> Any:
    """CreateEndpointConfig, refusing what AWS refuses for serverless variants (moto accepts all):
    serverless endpoints have one production variant and no data capture."""
    variants = self._get_param("ProductionVariants") or []
    capture = self._get_param("DataCaptureConfig")
    if _serverless(variants):
        if len(variants) > 1:
            raise ValidationError("Serverless endpoints support a single production variant only.")
        if sagemaker_capture.CaptureConfig.parse(capture) is not None:
            raise ValidationError("DataCaptureConfig is not supported for serverless endpoints.")
    return _ORIGINALS[(SageMakerResponse, "create_endpoint_config")](self)


def _create_endpoint(self: Any) -> Any:
    name = self._get_param("EndpointName")
    config_name = self._get_param("EndpointConfigName")
    backend = self.sagemaker_backend
    if name in backend.endpoints:
        raise ValidationError(f'Cannot create already existing endpoint "{backend.endpoints[name].arn}".')
    config, specs = _variant_specs(backend, config_name)
    result = _ORIGINALS[(SageMakerResponse, "create_endpoint")](self)
    fake = backend.endpoints[name]
    fake.endpoint_status = "Creating"
    fake.failure_reason = None
    fake.last_deployment_config = None
    endpoint = _Endpoint(_Aws(self.current_account, self.region), name, fake)
    with _LOCK:
        previous = _ENDPOINTS.pop((self.current_account, self.region, name), None)
        _ENDPOINTS[(self.current_account, self.region, name)] = endpoint
    if previous is not None:
        previous.stop(join=False)  # moto forgot it (reset) but its servers still ran
    sagemaker_events.endpoint_changed(fake)
    endpoint.create(config_name, specs, _capture(config))
    return result


def _check_update(fake: Any, config: dict[str, Any], deployment: dict[str, Any]) -> None:
    """What AWS refuses in UpdateEndpoint before it starts a deployment."""
    was_serverless = _serverless(fake.production_variants or [])
    new = config["ProductionVariants"]
    if _serverless(new) and not was_serverless:
        raise ValidationError(
            f'Cannot update endpoint "{fake.arn}" from instance-based variants to a serverless variant: '
            "an instance-based endpoint cannot be converted to a serverless one."
        )
    if _serverless(new) and deployment.get("RollingUpdatePolicy"):
        raise ValidationError("RollingUpdatePolicy is not supported for serverless endpoints.")
    if deployment.get("BlueGreenUpdatePolicy") or deployment.get("RollingUpdatePolicy"):
        old_names = sorted(v["VariantName"] for v in fake.production_variants or [])
        new_names = sorted(v["VariantName"] for v in new)
        if old_names != new_names:
            raise ValidationError(
                "A deployment with a DeploymentConfig requires the new endpoint configuration to keep the "
                f"variant names of the current one ({', '.join(old_names)}); got {', '.join(new_names)}."
            )


def _update_endpoint(self: Any) -> Any:
    """UpdateEndpoint (moto has none): a blue/green deployment of the new endpoint configuration."""
    name = self._get_param("EndpointName")
    config_name = self._get_param("EndpointConfigName")
    deployment = self._get_param("DeploymentConfig") or {}
    backend = self.sagemaker_backend
    backend.describe_endpoint(name)  # ValidationError when unknown
    fake = backend.endpoints[name]
    if fake.endpoint_status != "InService":
        raise ValidationError(f'Cannot update in-progress endpoint "{fake.arn}".')
    config, specs = _variant_specs(backend, config_name)
    _check_update(fake, config, deployment)
    with _LOCK:
        endpoint = _ENDPOINTS.get((self.current_account, self.region, name))
    if endpoint is None:
        raise ValidationError(f'Endpoint "{fake.arn}" has no local fleet to update.')

    def switch() -> None:  # once the new fleet serves all traffic (on the worker thread)
        fake.endpoint_config_name = config_name
        fake.production_variants = fake._process_production_variants(config["ProductionVariants"])
        fake.data_capture_config = config.get("DataCaptureConfig")
        if deployment:
            fake.last_deployment_config = deployment

    fake.endpoint_status = "Updating"
    fake.failure_reason = None
    fake.last_modified_time = utcnow()
    sagemaker_events.endpoint_changed(fake)
    endpoint.update(config_name, specs, _capture(config), deployment, switch)
    return ActionResult({"EndpointArn": fake.arn})


def _delete_endpoint(self: Any) -> Any:
    name = self._get_param("EndpointName")
    fake = self.sagemaker_backend.endpoints.get(name)
    result = _ORIGINALS[(SageMakerResponse, "delete_endpoint")](self)
    with _LOCK:
        endpoint = _ENDPOINTS.pop((self.current_account, self.region, name), None)
    if endpoint is not None:
        endpoint.stop(join=False)  # DeleteEndpoint answers at once, as on AWS (status Deleting there)
    if fake is not None:
        fake.endpoint_status = "Deleting"  # moto forgot it already: only the event sees this
        sagemaker_events.endpoint_changed(fake)
    return result


# --------------------------------------------------------------------------- Model Registry


def _create_model_package(self: Any) -> Any:
    """CreateModelPackage: a versioned package without ModelApprovalStatus is PendingManualApproval
    (moto leaves it empty), and the package's state change goes to EventBridge."""
    result = _ORIGINALS[(SageMakerResponse, "create_model_package")](self)
    package = self.sagemaker_backend.model_packages[result.result["ModelPackageArn"]]
    if package.model_package_version is not None and package.model_approval_status is None:
        package.model_approval_status = "PendingManualApproval"
    sagemaker_events.model_package_changed(package)
    return result


def _update_model_package(self: Any) -> Any:
    """UpdateModelPackage as AWS applies it (moto cleared every field the request left out, so a
    metadata-only update revoked the approval): given fields change, CustomerMetadataProperties
    merge by key; every call sends "SageMaker Model Package State Change", as on AWS."""
    arn = self._get_param("ModelPackageArn")
    package = self.sagemaker_backend.describe_model_package(arn)  # ValidationError when unknown
    status = self._get_param("ModelApprovalStatus")
    if status is not None:
        package.set_model_approval_status(status)
    description = self._get_param("ApprovalDescription")
    if description is not None:
        package.approval_description = description
    added = self._get_param("CustomerMetadataProperties")
    removed = self._get_param("CustomerMetadataPropertiesToRemove") or []
    if added or removed:
        merged = {**(package.customer_metadata_properties or {}), **(added or {})}
        for key in removed:
            merged.pop(key, None)
        package.customer_metadata_properties = merged
    specification = self._get_param("InferenceSpecification")
    if specification is not None:
        package.inference_specification = specification
    additional = self._get_param("AdditionalInferenceSpecificationsToAdd")
    if additional is not None:
        package.add_additional_inference_specifications(additional)
    package.modifications_done()
    sagemaker_events.model_package_changed(package)
    return ActionResult({"ModelPackageArn": package.arn})


def _get_resource_from_arn(self: Any, arn: str) -> Any:
    """Tags of model packages (AddTags, ListTags, DeleteTags): moto's lookup cannot split their ARNs
    (model-package/<group>/<version>) and failed with a server error."""
    if ":model-package/" in arn:
        package = self.describe_model_package(arn)  # ValidationError when unknown
        if package.tags is None:
            package.tags = []
        return package
    return _ORIGINALS[(SageMakerModelBackend, "_get_resource_from_arn")](self, arn)


class ModelError(ServiceException):
    """sagemaker-runtime's ModelError: the model answered an error (HTTP 424 to the caller)."""

    code = "ModelError"

    def __init__(self, message: str, status: int, original: str, log_stream_arn: str) -> None:
        super().__init__(message)
        self.OriginalStatusCode = status
        self.OriginalMessage = original
        self.LogStreamArn = log_stream_arn


class RuntimeValidationError(ServiceException):
    code = "ValidationError"


def _invoke_endpoint(self: Any) -> Any:
    """InvokeEndpoint: the body goes to the endpoint's model server, its answer comes back as is."""
    name = unquote(self.path.split("/")[2])  # /endpoints/<name>/invocations
    with _LOCK:
        endpoint = _ENDPOINTS.get((self.current_account, self.region, name))
    if endpoint is None or not endpoint.alive():
        raise RuntimeValidationError(f"Endpoint {name} of account {self.current_account} not found.")
    if endpoint.fake.endpoint_status == "Creating" or endpoint.live is None:
        raise RuntimeValidationError(f"Endpoint {name} is in status {endpoint.fake.endpoint_status}: not ready.")
    target = self.headers.get("X-Amzn-SageMaker-Target-Variant")
    server = endpoint.route(target)
    if server is None:
        raise RuntimeValidationError(f"The variant {target} was not found for endpoint {name}.")
    headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"}
    for header in ("Accept", "X-Amzn-SageMaker-Custom-Attributes"):
        if self.headers.get(header):
            headers[header] = self.headers[header]
    body = self.raw_body if isinstance(self.raw_body, bytes) else str(self.raw_body or "").encode()
    log_group = f"arn:aws:logs:{self.region}:{self.current_account}:log-group:/aws/sagemaker/Endpoints/{name}"
    variant = server.spec.name
    try:
        status, answer, content_type = server.invoke(body, headers)
    except OSError as exc:  # the server died or timed out: AWS answers a ModelError for both
        message = f'Received server error (0) from primary with message "{type(exc).__name__}: {exc}".'
        raise ModelError(message, 500, str(exc), log_group) from exc
    if status != 200:
        original = answer.decode("utf-8", "replace")
        side = "client" if 400 <= status < 500 else "server"
        message = (
            f'Received {side} error ({status}) from primary with message "{original}". '
            f"See {log_group} in account {self.current_account} for more information."
        )
        raise ModelError(message, status, original, log_group)
    capture = server.capture
    if capture is not None:
        capture.add(
            request=body,
            request_type=headers["Content-Type"],
            response=answer,
            response_type=content_type or "application/json",
            inference_id=self.headers.get("X-Amzn-SageMaker-Inference-Id"),
        )
    response_headers = {
        "Content-Type": content_type or "application/json",
        "x-Amzn-Invoked-Production-Variant": variant,
    }
    return 200, response_headers, answer


# Response methods (moto calls them with the request only) and, last, backend methods.
_PATCHES: list[tuple[type, str, Callable[..., Any]]] = [
    (SageMakerResponse, "create_training_job", _create_training_job),
    (SageMakerResponse, "stop_training_job", _stop_training_job),
    (SageMakerResponse, "create_processing_job", _create_processing_job),
    (SageMakerResponse, "stop_processing_job", _stop_processing_job),
    (SageMakerResponse, "create_endpoint_config", _create_endpoint_config),
    (SageMakerResponse, "create_endpoint", _create_endpoint),
    (SageMakerResponse, "update_endpoint", _update_endpoint),
    (SageMakerResponse, "delete_endpoint", _delete_endpoint),
    (SageMakerResponse, "create_model_package", _create_model_package),
    (SageMakerResponse, "update_model_package", _update_model_package),
    (SageMakerResponse, "list_trial_components", sagemaker_experiments.list_trial_components),
    (SageMakerRuntimeResponse, "invoke_endpoint", _invoke_endpoint),
    (SageMakerModelBackend, "_get_resource_from_arn", _get_resource_from_arn),
    (SageMakerModelBackend, "update_trial_component", sagemaker_experiments.update_trial_component),
    (SageMakerMetricsBackend, "batch_put_metrics", sagemaker_experiments.batch_put_metrics),
]
_MISSING = object()


def _apply(patched: bool) -> None:
    for owner, name, function in _PATCHES:
        original = _ORIGINALS[(owner, name)]
        if patched:
            setattr(owner, name, function)
        elif original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    # moto decodes request bodies as UTF-8 unless told not to: model inputs may be binary.
    SageMakerRuntimeResponse.use_raw_body = patched or _ORIGINALS[(SageMakerRuntimeResponse, "use_raw_body")]


@contextlib.contextmanager
def moto_originals() -> Iterator[None]:
    """moto's own SageMaker behaviour for a while (the pin tests check what the patches replace)."""
    installed = bool(_ORIGINALS) and getattr(SageMakerResponse, "create_training_job", None) is _create_training_job
    if installed:
        _apply(patched=False)
    try:
        yield
    finally:
        if installed:
            _apply(patched=True)


# --------------------------------------------------------------------------- provisioners


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags", [])]


def sagemaker_model(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("ModelName") or ctx.name(logical_id)
    args: dict[str, Any] = {"ModelName": name, "ExecutionRoleArn": props.get("ExecutionRoleArn", "")}
    for key in ("PrimaryContainer", "Containers", "VpcConfig"):
        if key in props:
            args[key] = props[key]
    if _tags(props):
        args["Tags"] = _tags(props)
    arn = ctx.client("sagemaker").create_model(**args)["ModelArn"]
    return Physical(arn, {"ModelName": name})


def sagemaker_endpoint_config(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("EndpointConfigName") or ctx.name(logical_id)
    args: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": props["ProductionVariants"]}
    for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig"):
        if key in props:
            args[key] = props[key]
    if _tags(props):
        args["Tags"] = _tags(props)
    arn = ctx.client("sagemaker").create_endpoint_config(**args)["EndpointConfigArn"]
    return Physical(arn, {"EndpointConfigName": name})


def sagemaker_endpoint(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    """Waits for InService, as CloudFormation does; a failed endpoint fails the deployment."""
    name = props.get("EndpointName") or ctx.name(logical_id)
    args: dict[str, Any] = {"EndpointName": name, "EndpointConfigName": props["EndpointConfigName"]}
    if _tags(props):
        args["Tags"] = _tags(props)
    arn = ctx.client("sagemaker").create_endpoint(**args)["EndpointArn"]
    description = wait_for_endpoint(name, SETTINGS.health_timeout + 5, client=ctx.client("sagemaker"))
    if description["EndpointStatus"] != "InService":
        raise RuntimeError(
            f"{logical_id}: endpoint {name} is {description['EndpointStatus']}: {description.get('FailureReason')}"
        )
    return Physical(arn, {"EndpointName": name})


def sagemaker_model_package_group(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("ModelPackageGroupName") or ctx.name(logical_id)
    args: dict[str, Any] = {"ModelPackageGroupName": name}
    if "ModelPackageGroupDescription" in props:
        args["ModelPackageGroupDescription"] = props["ModelPackageGroupDescription"]
    if _tags(props):
        args["Tags"] = _tags(props)
    sagemaker = ctx.client("sagemaker")
    arn = sagemaker.create_model_package_group(**args)["ModelPackageGroupArn"]
    group = sagemaker.describe_model_package_group(ModelPackageGroupName=name)
    return Physical(
        arn,
        {
            "ModelPackageGroupArn": arn,
            "CreationTime": str(group["CreationTime"]),
            "ModelPackageGroupStatus": group.get("ModelPackageGroupStatus", "Completed"),
        },
    )


PROVISIONERS = {
    "AWS::SageMaker::Model": sagemaker_model,
    "AWS::SageMaker::EndpointConfig": sagemaker_endpoint_config,
    "AWS::SageMaker::Endpoint": sagemaker_endpoint,
    "AWS::SageMaker::ModelPackageGroup": sagemaker_model_package_group,
}


# --------------------------------------------------------------------------- install, shutdown, waiting


def install() -> None:
    """Patch moto's SageMaker (idempotent, process-wide) and register the provisioners."""
    with _LOCK:
        if not _ORIGINALS:
            for owner, name, _ in _PATCHES:
                _ORIGINALS[(owner, name)] = owner.__dict__.get(name, _MISSING)
            _ORIGINALS[(SageMakerRuntimeResponse, "use_raw_body")] = SageMakerRuntimeResponse.use_raw_body
            atexit.register(_at_exit)
        _apply(patched=True)
    for resource_type, provisioner in PROVISIONERS.items():
        register_provisioner(resource_type, provisioner)


def shutdown(timeout: float = 10.0) -> None:
    """Stop every job and model server this process started and forget them (idempotent).

    Call it before the moto mock or server stops: a worker that outlives moto would otherwise
    reach for AWS. Work directories are removed unless SETTINGS.keep_work_dirs.
    """
    sagemaker_capture.shutdown()  # what endpoints captured reaches S3 while moto still answers
    _CLOSING.set()
    try:
        with _LOCK:
            jobs, endpoints = list(_JOBS.values()), list(_ENDPOINTS.values())
            _JOBS.clear()
            _ENDPOINTS.clear()
        for job in jobs:
            job.stop_requested.set()
        _kill_processes()  # jobs' and model servers' processes: deployments waiting on them end too
        for endpoint in endpoints:
            endpoint.stop()
        deadline = time.monotonic() + timeout
        for job in jobs:
            job.thread.join(max(0.0, deadline - time.monotonic()))
        with _LOCK:
            root = _WORK.pop("root", None)
        if root is not None and not SETTINGS.keep_work_dirs:
            shutil.rmtree(root, ignore_errors=True)
    finally:
        _CLOSING.clear()


def _at_exit() -> None:
    """The last resort when shutdown() was not called: no model server outlives this process."""
    _kill_processes()
    root = _WORK.pop("root", None)
    if root is not None and not SETTINGS.keep_work_dirs:
        shutil.rmtree(root, ignore_errors=True)


def _kill_processes() -> None:
    with _LOCK:
        processes = list(_PROCESSES)
        _PROCESSES.clear()
    for process in processes:
        _terminate(process, 0.5)


def model_servers(endpoint_name: str) -> dict[str, int]:
    """The process ids of an endpoint's model servers by variant, green fleet included (for status
    output and tests: the servers of a replaced or deleted fleet are gone)."""
    with _LOCK:
        endpoints = [e for (_, _, name), e in _ENDPOINTS.items() if name == endpoint_name]
    servers: dict[str, int] = {}
    for endpoint in endpoints:
        with endpoint.lock:
            fleets = [f for f in (endpoint.live, endpoint.green) if f is not None]
        for fleet in fleets:
            for server in fleet.servers:
                if server.process is not None and server.process.poll() is None:
                    servers[f"{fleet.config_name}/{server.spec.name}"] = server.process.pid
    return servers


_TERMINAL = {
    "training": ("Completed", "Failed", "Stopped"),
    "processing": ("Completed", "Failed", "Stopped"),
}


def _sagemaker_client(client: Any | None) -> Any:
    return client if client is not None else boto3.client("sagemaker")


def wait_for_training_job(name: str, timeout: float = 60.0, *, client: Any | None = None) -> dict[str, Any]:
    """DescribeTrainingJob once the job is Completed, Failed or Stopped (TimeoutError otherwise)."""
    sagemaker = _sagemaker_client(client)
    return _wait(
        lambda: sagemaker.describe_training_job(TrainingJobName=name),
        "TrainingJobStatus",
        _TERMINAL["training"],
        timeout,
    )


def wait_for_processing_job(name: str, timeout: float = 60.0, *, client: Any | None = None) -> dict[str, Any]:
    """DescribeProcessingJob once the job is Completed, Failed or Stopped (TimeoutError otherwise)."""
    sagemaker = _sagemaker_client(client)
    return _wait(
        lambda: sagemaker.describe_processing_job(ProcessingJobName=name),
        "ProcessingJobStatus",
        _TERMINAL["processing"],
        timeout,
    )


def wait_for_endpoint(name: str, timeout: float = 60.0, *, client: Any | None = None) -> dict[str, Any]:
    """DescribeEndpoint once the endpoint is no longer Creating, Updating or RollingBack."""
    sagemaker = _sagemaker_client(client)
    return _wait(
        lambda: sagemaker.describe_endpoint(EndpointName=name),
        "EndpointStatus",
        ("InService", "Failed", "OutOfService", "UpdateRollbackFailed"),
        timeout,
    )


def _wait(
    describe: Callable[[], dict[str, Any]], key: str, terminal: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        description = describe()
        if description[key] in terminal:
            return description
        if time.monotonic() >= deadline:
            raise TimeoutError(f"still {description[key]} after {timeout:g} s")
        time.sleep(0.05)
