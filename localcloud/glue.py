"""Glue on the local cloud: a job run executes the job's script in a local Spark session.

moto keeps Glue jobs and runs but executes nothing (a run is SUCCEEDED at once). Here,
StartJobRun of a job deployed from the template starts the job's script in a subprocess (Spark's
JVM and memory stay out of the local cloud) and GetJobRun reports the real state:
STARTING -> RUNNING -> SUCCEEDED | FAILED | TIMEOUT | STOPPED, with StartedOn, CompletedOn,
ExecutionTime and ErrorMessage. BatchStopJobRun (missing in moto) stops a run. Jobs created
through the API instead of the template keep moto's behaviour unless register_job() names them.

The run, as Glue runs a script:
- the script (Command.ScriptLocation: a local path, relative to the template's folder, which
  `sam package` uploads on AWS; or an s3:// URI read from the emulated S3) is copied into the
  run's folder, as Glue downloads it: sibling modules are not importable there either; ship
  them with --extra-py-files (s3:// URIs, or local paths relative to the template's folder);
- argv: the job's DefaultArguments, the run's Arguments and NonOverridableArguments (merged by
  moto), plus --JOB_ID, --JOB_RUN_ID, --JOB_NAME, --job-bookmark-option, --TempDir, each as
  `--key value`; the `awsglue` stand-in (localcloud/glue_runtime/site) is on PYTHONPATH;
- Spark: master local[*], few shuffle partitions, UI off, warnings only, UTC session time zone;
  PYSPARK_PYTHON and PYSPARK_DRIVER_PYTHON are the configured interpreter (sys.executable);
- the job's Timeout (minutes; the run's Timeout wins; AWS's default 2880) is enforced (tests
  shorten a minute: configure(timeout_minute_seconds=1));
- stdout and stderr go to files in the run's folder and, after the run, to CloudWatch Logs
  groups /aws-glue/jobs/output and /aws-glue/jobs/error, stream = run id, as on AWS;
- ErrorMessage is "<ExceptionType>: <first line of its message>" (never log lines: they may
  hold data values), or "Command failed with exit code N" when the process died.
MaxConcurrentRuns is honoured by moto's own check (ConcurrentRunsExceededException), which sees
the real states. MaxRetries is stored, but a failed run is not retried; job bookmarks are not kept.
Runs go on in background threads (GetJobRun polling sees the transitions); wait_for_job_run()
blocks until one ends; shutdown() stops those still going, and must run before moto stops.

The main difference from AWS, S3 as local folders. Local Spark cannot read s3:// (no hadoop-aws
jars here), so the run mirrors S3: every argument whose value is one s3:// URI (except Glue's own
--extra-* and --spark-event-logs-path) is mapped to a local folder
    s3://bucket/key  ->  file://<workdir>/<job>/<run id>/s3/bucket/key   (trailing "/" kept)
Before the run, the objects under each such prefix are downloaded there (a prefix holding no
object leaves only its parent folder, so Spark's default "error if exists" writes work). The
script receives file:// URIs: Spark reads and writes them as it does s3:// ones; plain Python
opens `urllib.parse.urlparse(uri).path`. After a successful run, the files created or changed
under those prefixes are uploaded to the same keys and the downloaded objects the run deleted
are deleted (Spark's mode("overwrite") replaces the data); Hadoop's .crc side files are skipped;
in the .json files written, mirror paths become the s3:// URIs they stand for (input_file_name()
in a report names the S3 object, as on AWS).
A run that fails, times out or is stopped changes nothing in S3 (on AWS, what it wrote before
stays). In-process mode (mock_aws) the script's own AWS calls cannot reach the emulated account
(AWS_ENDPOINT_URL points at a closed port); with server=True they reach the moto server.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import inspect
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError
from moto.core.responses import ActionResult
from moto.glue.exceptions import EntityNotFoundException
from moto.glue.models import FakeJob, FakeJobRun
from moto.glue.responses import GlueResponse

from localcloud.provision import Context, register_provisioner
from localcloud.template import Physical

logger = logging.getLogger(__name__)

RUNTIME_DIR = Path(__file__).resolve().with_name("glue_runtime")
SITE_DIR = RUNTIME_DIR / "site"  # holds the awsglue stand-in
BOOTSTRAP = RUNTIME_DIR / "bootstrap.py"
LOG4J_CONFIG = RUNTIME_DIR / "log4j2.properties"
OUTPUT_LOG_GROUP = "/aws-glue/jobs/output"
ERROR_LOG_GROUP = "/aws-glue/jobs/error"
DEFAULT_TIMEOUT_MINUTES = 2880
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR"})
# Glue's own arguments: not mirrored as data prefixes.
_NOT_MIRRORED = frozenset({"--extra-py-files", "--extra-files", "--extra-jars", "--spark-event-logs-path"})
# In-process mode the subprocess cannot reach moto: a closed local port fails fast instead of reaching AWS.
UNREACHABLE_ENDPOINT = "http://127.0.0.1:9"
# The runner and the script always use the local cloud's fake credentials, never a credentials file.
_LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

# C1-only JIT: a short job's JVM starts ~40% faster on 2 busy cores; long jobs run slower (bench: leave it off).
QUICK_START_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"

State = Literal["STARTING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED"]


@dataclass(frozen=True)
class GlueSettings:
    """How local runs execute; change with configure()."""

    python: str = sys.executable
    workdir: Path = Path(tempfile.gettempdir()) / "dxops-localcloud" / "glue"
    # Seconds in one minute of a job's Timeout: tests shrink it to see TIMEOUT quickly.
    timeout_minute_seconds: float = 60.0
    shuffle_partitions: int = 4
    spark_conf: Mapping[str, str] = field(default_factory=dict)  # e.g. {"spark.driver.memory": "4g"}
    java_options: str = ""  # extra driver JVM options, e.g. QUICK_START_JAVA_OPTIONS for tests
    keep_mirror: bool = False  # keep the run's S3 mirror and script folder (to debug a run)


_settings = GlueSettings()


def configure(settings: GlueSettings | None = None, /, **changes: Any) -> GlueSettings:
    """Replace the settings (process-wide); returns the previous ones, to restore them."""
    global _settings  # noqa: PLW0603 - one configuration per process, like moto's backends
    previous = _settings
    _settings = replace(settings or _settings, **changes)
    return previous


def current_settings() -> GlueSettings:
    return _settings


@contextlib.contextmanager
def configured(**changes: Any) -> Iterator[GlueSettings]:
    """Settings changed for a block (a test's work folder, JVM options), restored after it."""
    previous = configure(**changes)
    try:
        yield current_settings()
    finally:
        configure(previous)


# --- jobs that run locally ------------------------------------------------------------------


@dataclass(frozen=True)
class LocalJob:
    """A job whose runs execute locally, and how the runner reaches the emulated account."""

    name: str
    base_dir: Path  # local paths (ScriptLocation, --extra-py-files) are relative to it
    aws_env: Mapping[str, str]  # credentials and endpoint when registered


_jobs: dict[str, LocalJob] = {}


def register_job(name: str, base_dir: Path | None = None) -> LocalJob:
    """Make StartJobRun of this job run its script (the provisioner does it for template jobs)."""
    job = LocalJob(
        name=name,
        base_dir=(base_dir or Path.cwd()).resolve(),
        aws_env={
            **{key: os.environ.get(key, default) for key, default in _LOCAL_CREDENTIALS.items()},
            **({"AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"]} if "AWS_ENDPOINT_URL" in os.environ else {}),
        },
    )
    _jobs[name] = job
    return job


_INT_PROPERTIES = ("MaxRetries", "AllocatedCapacity", "Timeout", "NumberOfWorkers")
_PLAIN_PROPERTIES = (
    "Description",
    "LogUri",
    "Connections",
    "SecurityConfiguration",
    "GlueVersion",
    "WorkerType",
    "ExecutionClass",
)


def _string_map(values: Mapping[str, Any]) -> dict[str, str]:
    return {key: (str(v).lower() if isinstance(v, bool) else str(v)) for key, v in values.items()}


def glue_job(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    """AWS::Glue::Job -> a moto job (so get_job / start_job_run work) registered to run locally."""
    name = props.get("Name") or ctx.name(logical_id, max_length=255)
    base_dir = ctx.template.base_dir if ctx.template is not None else Path.cwd()
    command = dict(props["Command"])
    location = str(command.get("ScriptLocation", ""))
    if not location.startswith("s3://"):
        script = (base_dir / location).resolve()
        if not script.is_file():
            raise FileNotFoundError(f"{logical_id}: Command.ScriptLocation {location!r} not found under {base_dir}")
        command["ScriptLocation"] = str(script)  # the file itself: edits apply to the next run
    args: dict[str, Any] = {"Name": name, "Role": props["Role"], "Command": command}
    args.update({key: props[key] for key in _PLAIN_PROPERTIES if key in props})
    args.update({key: int(props[key]) for key in _INT_PROPERTIES if key in props})
    for key in ("DefaultArguments", "NonOverridableArguments", "Tags"):
        if key in props:
            args[key] = _string_map(props[key])
    if "MaxCapacity" in props:
        args["MaxCapacity"] = float(props["MaxCapacity"])
    for key in ("ExecutionProperty", "NotificationProperty"):
        if key in props:
            args[key] = {k: int(v) for k, v in props[key].items()}
    ctx.client("glue").create_job(**args)
    register_job(name, base_dir)
    builder = _resource_metadata(ctx, logical_id).get(EXTRA_PY_FILES_BUILDER)
    if builder:
        _publish_extra_py_files(
            ctx, base_dir / str(builder), str(args.get("DefaultArguments", {}).get("--extra-py-files", ""))
        )
    return Physical(name)


# Metadata of a job whose --extra-py-files is built from the repository: the builder script
# (`python BUILDER OUT.zip`) makes the zip, which the local deploy uploads to the URI the job names,
# as `make deploy` does on AWS (tools/publish_glue_libraries.py).
EXTRA_PY_FILES_BUILDER = "ExtraPyFilesBuilder"


def _resource_metadata(ctx: Context, logical_id: str) -> dict[str, Any]:
    if ctx.template is None:
        return {}
    return dict(ctx.template.cfn["Resources"].get(logical_id, {}).get("Metadata", {}) or {})


def _publish_extra_py_files(ctx: Context, builder: Path, uri: str) -> None:
    if not uri.startswith("s3://") or "," in uri:
        raise ValueError(f"{EXTRA_PY_FILES_BUILDER} needs --extra-py-files to be one s3:// URI, not {uri!r}")
    with tempfile.TemporaryDirectory(prefix="dxops-glue-lib-") as folder:
        out = Path(folder) / Path(uri).name
        subprocess.run([sys.executable, str(builder), str(out)], check=True, capture_output=True)  # noqa: S603
        bucket, key = _split_s3(uri)
        ctx.client("s3").upload_file(str(out), bucket, key)


def glue_database(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    database = dict(props["DatabaseInput"])
    name = database.get("Name") or ctx.name(logical_id, lower=True).replace("-", "_")
    ctx.client("glue").create_database(DatabaseInput={**database, "Name": name})
    return Physical(name)


def glue_table(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    table = dict(props["TableInput"])
    name = table.get("Name") or ctx.name(logical_id, lower=True).replace("-", "_")
    ctx.client("glue").create_table(DatabaseName=props["DatabaseName"], TableInput={**table, "Name": name})
    return Physical(name)


# --- S3 mirror ------------------------------------------------------------------------------


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _is_side_file(path: Path) -> bool:
    """Hadoop's local checksum files and uncommitted task output: never objects in S3."""
    return (path.name.startswith(".") and path.name.endswith(".crc")) or "_temporary" in path.parts


class S3Mirror:
    """s3://bucket/key <-> <root>/bucket/key for one run (the contract is in the module docstring)."""

    def __init__(self, s3: Any, root: Path) -> None:
        self.s3 = s3
        self.root = root.resolve()
        self.prefixes: set[tuple[str, str]] = set()
        self._downloaded: dict[tuple[str, str], tuple[int, int]] = {}  # (bucket, key) -> (size, mtime_ns)

    def _local_path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to((self.root / bucket).resolve()):
            raise ValueError(f"S3 key escapes its bucket's folder locally: s3://{bucket}/{key}")
        return path

    def local_uri(self, uri: str) -> str:
        """The file:// URI the script receives for an s3:// argument (its prefix is mirrored)."""
        bucket, key = _split_s3(uri)
        path = self._local_path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.prefixes.add((bucket, key))
        folder = key == "" or key.endswith("/")
        return f"file://{path}{'/' if folder else ''}"

    def download_file(self, uri: str, target: Path) -> None:
        bucket, key = _split_s3(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(bucket, key, str(target))

    def _covered(self, bucket: str, key: str) -> bool:
        return any(b == bucket and key.startswith(prefix) for b, prefix in self.prefixes)

    def download(self) -> int:
        """Fetch every object under the mirrored prefixes; returns how many."""
        count = 0
        for bucket, prefix in sorted(self.prefixes):
            if any(b == bucket and p != prefix and prefix.startswith(p) for b, p in self.prefixes):
                continue  # a shorter prefix of the same bucket fetches these objects
            try:
                pages = list(self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
                    raise
                logger.warning("s3://%s does not exist: the mirror of s3://%s/%s stays empty", bucket, bucket, prefix)
                continue
            for obj in (o for page in pages for o in page.get("Contents", [])):
                key = obj["Key"]
                path = self._local_path(bucket, key)
                if key.endswith("/"):
                    path.mkdir(parents=True, exist_ok=True)  # a "folder" marker object
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, key, str(path))
                stat = path.stat()
                self._downloaded[(bucket, key)] = (stat.st_size, stat.st_mtime_ns)
                count += 1
        return count

    def _local_files(self) -> Iterator[tuple[str, str, Path]]:
        for bucket in sorted({b for b, _ in self.prefixes}):
            bucket_dir = self.root / bucket
            if not bucket_dir.is_dir():
                continue
            for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file() and not _is_side_file(p)):
                key = path.relative_to(bucket_dir).as_posix()
                if self._covered(bucket, key):
                    yield bucket, key, path

    def upload_changes(self) -> tuple[int, int]:
        """Upload what the run created or changed, delete what it removed; returns (uploaded, deleted)."""
        present: set[tuple[str, str]] = set()
        uploaded = 0
        for bucket, key, path in self._local_files():
            present.add((bucket, key))
            stat = path.stat()
            if self._downloaded.get((bucket, key)) != (stat.st_size, stat.st_mtime_ns):
                if path.suffix == ".json":  # what the script wrote about its inputs names them as on AWS
                    body = self.to_s3(path.read_text(encoding="utf-8")).encode()
                    self.s3.put_object(Bucket=bucket, Key=key, Body=body)
                else:
                    self.s3.upload_file(str(path), bucket, key)
                uploaded += 1
        removed = sorted(k for k in self._downloaded if k not in present and not self._local_path(*k).exists())
        for bucket, key in removed:
            self.s3.delete_object(Bucket=bucket, Key=key)
        return uploaded, len(removed)

    def to_s3(self, text: str) -> str:
        """Local mirror paths in a message -> the s3:// URIs they stand for."""
        pattern = r"(?:file:(?://)?)?" + re.escape(str(self.root)) + "/"
        return re.sub(pattern, "s3://", text)


# --- runs -----------------------------------------------------------------------------------


class RunFailure(Exception):
    """The run cannot start or finish (script missing, S3 unreachable): it ends FAILED with this message."""


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class LocalJobRun:
    """One run of a local job: a subprocess, watched by a thread; moto's FakeJobRun reports its state."""

    def __init__(self, job: LocalJob, fake_job: FakeJob, fake_run: FakeJobRun, settings: GlueSettings) -> None:
        self.job = job
        self.fake_job = fake_job
        self.fake_run = fake_run
        self.settings = settings
        self.run_id: str = fake_run.job_run_id
        self.state: State = "STARTING"
        self.started_on = _now()
        self.modified_on = self.started_on
        self.completed_on: dt.datetime | None = None
        self.error_message: str | None = None
        self.run_dir = settings.workdir / _safe_name(job.name) / self.run_id
        self.stdout_path = self.run_dir / "stdout.log"
        self.stderr_path = self.run_dir / "stderr.log"
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._execute, name=f"glue-run-{self.run_id[:12]}", daemon=True)

    # state seen through the Glue API ---------------------------------------------------------

    @property
    def timeout_minutes(self) -> int:
        return int(self.fake_run.timeout or DEFAULT_TIMEOUT_MINUTES)

    def describe(self) -> dict[str, Any]:
        """The fields of GetJobRun's JobRun that the local run knows better than moto."""
        end = self.completed_on or _now()
        described: dict[str, Any] = {
            "JobRunState": self.state,
            "StartedOn": self.started_on,
            "LastModifiedOn": self.modified_on,
            "ExecutionTime": int((end - self.started_on).total_seconds()) if self.completed_on else 0,
            "Timeout": self.timeout_minutes,
            "LogGroupName": "/aws-glue/jobs",
            "Attempt": 0,
        }
        if self.fake_job.glue_version:
            described["GlueVersion"] = self.fake_job.glue_version
        if self.completed_on:
            described["CompletedOn"] = self.completed_on
        if self.error_message:
            described["ErrorMessage"] = self.error_message
        return described

    def _set_state(self, state: State, error_message: str | None = None) -> None:
        with self._state_lock:
            if self.state in TERMINAL_STATES or (self.state == "STOPPING" and state not in TERMINAL_STATES):
                return  # a stop request is not undone by the run going on; an ended run stays ended
            self.modified_on = _now()
            if state in TERMINAL_STATES:
                self.completed_on = self.modified_on
                self.error_message = error_message
            self.state = state

    # control ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> bool:
        """Ask the run to stop (BatchStopJobRun); False when it had already ended."""
        with self._state_lock:
            if self.state in TERMINAL_STATES or self.state == "STOPPING":
                return self.state == "STOPPING"
            self.state = "STOPPING"
            self.modified_on = _now()
        self._stop.set()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def pid(self) -> int | None:
        """The script's process (leader of its process group), once started."""
        return self._process.pid if self._process is not None else None

    # the run ---------------------------------------------------------------------------------

    def _execute(self) -> None:
        try:
            state, message = self._run()
        except RunFailure as failure:
            state, message = "FAILED", str(failure)
        except Exception as error:  # the local machinery failed: still a failed run, never a hung one
            logger.exception("Glue run %s of %s failed locally", self.run_id, self.job.name)
            state, message = "FAILED", _first_line(error)
        finally:
            if not self.settings.keep_mirror:
                for folder in ("s3", "work", "temp"):
                    shutil.rmtree(self.run_dir / folder, ignore_errors=True)
        self._publish_logs()
        self._set_state(state, message)
        logger.info("Glue run %s of %s: %s (logs in %s)", self.run_id, self.job.name, state, self.run_dir)
        self._done.set()

    def _client(self, service: Literal["s3", "logs"]) -> Any:
        # A session per client: boto3's default session is not safe to share between threads.
        env = self.job.aws_env
        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
            region_name=self.fake_job.backend.region_name,
        )
        return session.client(service, endpoint_url=env.get("AWS_ENDPOINT_URL"))

    def _run(self) -> tuple[State, str | None]:
        self._set_state("RUNNING")
        work = self.run_dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "temp").mkdir(exist_ok=True)
        mirror = S3Mirror(self._client("s3"), self.run_dir / "s3")
        script = self._fetch_script(mirror, work)
        argv, python_path = self._argv(mirror, work)
        count = mirror.download()
        logger.info("Glue run %s: %d objects mirrored from S3", self.run_id, count)
        if self._stop.is_set():
            return "STOPPED", None
        outcome = self._run_script(script, argv, python_path, work)
        if outcome[0] != "SUCCEEDED":
            return outcome[0], mirror.to_s3(outcome[1]) if outcome[1] else None
        uploaded, deleted = mirror.upload_changes()
        logger.info("Glue run %s: %d objects uploaded to S3, %d deleted", self.run_id, uploaded, deleted)
        return "SUCCEEDED", None

    def _fetch_script(self, mirror: S3Mirror, work: Path) -> Path:
        """The script copied into the run's folder, as Glue downloads it from ScriptLocation."""
        command: Mapping[str, Any] = self.fake_job.command  # type: ignore[assignment] # a dict, typed str in moto
        location = str(command.get("ScriptLocation", ""))
        if location.startswith("s3://"):
            target = work / Path(_split_s3(location)[1]).name
            try:
                mirror.download_file(location, target)
            except ClientError as error:
                raise RunFailure(f"ScriptLocation {location} cannot be read: {error}") from error
            return target
        source = self.job.base_dir / location
        if not source.is_file():
            raise RunFailure(f"ScriptLocation {location} not found")
        return Path(shutil.copy2(source, work / source.name))

    def _extra_files(self, mirror: S3Mirror, value: str, target: Path) -> list[Path]:
        """--extra-py-files / --extra-files entries (s3:// or local paths) copied into target."""
        target.mkdir(parents=True, exist_ok=True)
        copied = []
        for entry in (e.strip() for e in value.split(",") if e.strip()):
            try:
                if entry.startswith("s3://"):
                    path = target / Path(_split_s3(entry)[1]).name
                    mirror.download_file(entry, path)
                else:
                    path = Path(shutil.copy2(self.job.base_dir / entry, target))
            except (ClientError, OSError) as error:
                raise RunFailure(f"{entry} cannot be read: {_first_line(error)}") from error
            copied.append(path)
        return copied

    def _argv(self, mirror: S3Mirror, work: Path) -> tuple[list[str], list[Path]]:
        arguments = {
            "--job-bookmark-option": "job-bookmark-disable",
            "--TempDir": f"file://{self.run_dir / 'temp'}/",
            **{str(k): str(v) for k, v in (self.fake_run.arguments or {}).items()},
            "--JOB_ID": f"j_{self.job.name}",
            "--JOB_RUN_ID": self.run_id,
            "--JOB_NAME": self.job.name,
        }
        python_path = [SITE_DIR]
        argv: list[str] = []
        for key, value in arguments.items():
            if key == "--extra-py-files":
                extra = self._extra_files(mirror, value, work / "py-files")
                python_path.append(work / "py-files")
                python_path.extend(p for p in extra if p.suffix in {".zip", ".whl", ".egg"})
            elif key == "--extra-files":
                self._extra_files(mirror, value, work)
            elif key == "--additional-python-modules":
                logger.warning("Glue run %s: --additional-python-modules is not installed locally", self.run_id)
            elif key == "--extra-jars":
                logger.warning("Glue run %s: --extra-jars are not added to the local Spark", self.run_id)
            if key not in _NOT_MIRRORED and value.startswith("s3://") and "," not in value and " " not in value:
                value = mirror.local_uri(value)  # noqa: PLW2901 - the script gets the local URI
            argv += [key, value]
        return argv, python_path

    def _environment(self, python_path: list[Path], work: Path) -> dict[str, str]:
        settings = self.settings
        drop = ("AWS_", "PYSPARK_", "SPARK_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k not in {"PYTHONPATH", "PYTHONHOME"}}
        env.update(self.job.aws_env)
        if "AWS_ENDPOINT_URL" not in env:  # in-process moto: fail at once rather than after retries
            env.update({"AWS_ENDPOINT_URL": UNREACHABLE_ENDPOINT, "AWS_MAX_ATTEMPTS": "1"})
        conf = {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.warehouse.dir": str(work / "spark-warehouse"),
            **settings.spark_conf,
        }
        java_options = f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG} {settings.java_options}".strip()
        submit = ["--master", "local[*]", "--driver-java-options", java_options]
        for key, value in conf.items():
            submit += ["--conf", f"{key}={value}"]
        env.update(
            {
                "AWS_DEFAULT_REGION": self.fake_job.backend.region_name,
                "AWS_REGION": self.fake_job.backend.region_name,
                "PYSPARK_PYTHON": settings.python,
                "PYSPARK_DRIVER_PYTHON": settings.python,
                "PYSPARK_SUBMIT_ARGS": shlex.join([*submit, "pyspark-shell"]),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "PYTHONPATH": os.pathsep.join(str(p) for p in python_path),
                "PYTHONUNBUFFERED": "1",
                "TZ": "UTC",
                "DXOPS_GLUE_ERROR_FILE": str(self.run_dir / "error.json"),
            }
        )
        return env

    def _run_script(self, script: Path, argv: list[str], python_path: list[Path], work: Path) -> tuple[State, str]:
        command = [self.settings.python, str(BOOTSTRAP), str(script), *argv]
        deadline = time.monotonic() + self.timeout_minutes * self.settings.timeout_minute_seconds
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            # A session of its own: stopping the run ends the JVM and Python workers it started.
            self._process = process = subprocess.Popen(  # noqa: S603 - our interpreter, our bootstrap
                command,
                cwd=work,
                env=self._environment(python_path, work),
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            while process.poll() is None:
                if self._stop.wait(0.1):
                    self._kill(process)
                    return "STOPPED", ""
                if time.monotonic() > deadline:
                    self._kill(process)
                    return "TIMEOUT", f"Job run timed out (Timeout: {self.timeout_minutes} min)"
        if process.returncode == 0:
            return "SUCCEEDED", ""
        return "FAILED", self._failure_message(process.returncode)

    def _failure_message(self, returncode: int) -> str:
        error_file = self.run_dir / "error.json"
        if error_file.is_file():
            error = json.loads(error_file.read_text())
            return f"{error['type']}: {error['message']}" if error["message"] else str(error["type"])
        return f"Command failed with exit code {returncode}"

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def _publish_logs(self) -> None:
        """The run's output to CloudWatch Logs as Glue writes it (best effort: the files stay)."""
        try:
            logs = self._client("logs")
            for group, path in ((OUTPUT_LOG_GROUP, self.stdout_path), (ERROR_LOG_GROUP, self.stderr_path)):
                _put_log_file(logs, group, self.run_id, path)
        except Exception:  # logs are a convenience: the run's outcome does not depend on them
            logger.warning("Glue run %s: logs not published to CloudWatch Logs", self.run_id, exc_info=True)


def _put_log_file(logs: Any, group: str, stream: str, path: Path, max_events: int = 10_000) -> None:
    lines = path.read_text(errors="replace").splitlines()[-max_events:] if path.is_file() else []
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    timestamp = int(time.time() * 1000)
    events = [{"timestamp": timestamp, "message": line[:8192] or " "} for line in lines]
    for start in range(0, len(events), 1000):
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start : start + 1000])


# --- moto patches (each pinned by tests/localcloud/glue/test_moto_glue_pins.py) ------------

_moto_start_job_run = FakeJob.start_job_run
_moto_status: property = inspect.getattr_static(FakeJobRun, "status")
_moto_as_dict = FakeJobRun.as_dict
_MOTO_BATCH_STOP_JOB_RUN = getattr(GlueResponse, "batch_stop_job_run", None)

_local_runs: weakref.WeakKeyDictionary[FakeJobRun, LocalJobRun] = weakref.WeakKeyDictionary()
_runs: dict[str, LocalJobRun] = {}
_runs_lock = threading.Lock()


def _start_job_run(self: FakeJob, *args: Any, **kwargs: Any) -> str:
    """moto's StartJobRun (concurrency check, merged arguments, the run record), then the real run."""
    run_id: str = _moto_start_job_run(self, *args, **kwargs)
    job = _jobs.get(self.name)
    if job is None:
        return run_id  # not a local job: moto's behaviour
    fake_run = next(run for run in self.job_runs if run.job_run_id == run_id)
    run = LocalJobRun(job, self, fake_run, _settings)
    with _runs_lock:
        _local_runs[fake_run] = run
        _runs[run_id] = run
    run.start()
    return run_id


def _status(self: FakeJobRun) -> str | None:
    run = _local_runs.get(self)
    if run is not None:
        return run.state
    status: str | None = _moto_status.__get__(self)
    return status


def _set_status(self: FakeJobRun, value: str) -> None:
    if self in _local_runs:
        raise AttributeError("the state of a local Glue run follows its process")
    _moto_status.__set__(self, value)


def _as_dict(self: FakeJobRun) -> dict[str, Any]:
    described: dict[str, Any] = _moto_as_dict(self)
    run = _local_runs.get(self)
    if run is None:
        return described
    described.pop("CompletedOn", None)
    return {**described, **run.describe()}


def _batch_stop_job_run(self: GlueResponse) -> ActionResult:
    """BatchStopJobRun, which moto lacks: local runs are stopped (STOPPING -> STOPPED)."""
    job_name = self._get_param("JobName")
    stopped: list[dict[str, str]] = []
    errors: list[dict[str, Any]] = []
    for run_id in self._get_param("JobRunIds") or []:
        ref = {"JobName": job_name, "JobRunId": run_id}
        try:
            fake_run = self.glue_backend.get_job_run(job_name, run_id)
        except EntityNotFoundException as error:
            errors.append(
                {**ref, "ErrorDetail": {"ErrorCode": "EntityNotFoundException", "ErrorMessage": error.message}}
            )
            continue
        run = _local_runs.get(fake_run)
        if run is None:
            fake_run.status = "STOPPED"  # a moto-only run has no process to stop
        elif not run.stop():
            detail = {"ErrorCode": "InvalidInputException", "ErrorMessage": f"Job run {run_id} has already ended"}
            errors.append({**ref, "ErrorDetail": detail})
            continue
        stopped.append(ref)
    return ActionResult({"SuccessfulSubmissions": stopped, "Errors": errors})


_installed = False


def install() -> None:
    """Patch moto's Glue job runs and register the AWS::Glue::Job provisioner (idempotent, process-wide)."""
    global _installed  # noqa: PLW0603 - the patches are process-wide by nature
    if _installed:
        return
    setattr(FakeJob, "start_job_run", _start_job_run)  # noqa: B010 - patching moto
    setattr(FakeJobRun, "status", property(_status, _set_status))  # noqa: B010
    setattr(FakeJobRun, "as_dict", _as_dict)  # noqa: B010
    setattr(GlueResponse, "batch_stop_job_run", _batch_stop_job_run)  # noqa: B010
    register_provisioner("AWS::Glue::Job", glue_job)
    register_provisioner("AWS::Glue::Database", glue_database)
    register_provisioner("AWS::Glue::Table", glue_table)
    atexit.register(shutdown)
    _installed = True


# --- helpers for the local cloud and tests ----------------------------------------------------


def local_run(run_id: str) -> LocalJobRun | None:
    """The local run behind a JobRunId (its log files, its state), if it is one."""
    return _runs.get(run_id)


def wait_for_job_run(job_name: str, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Block until a local run has ended; returns its JobRun as GetJobRun describes it."""
    run = _runs.get(run_id)
    if run is None or run.job.name != job_name:
        raise KeyError(f"no local run {run_id} of Glue job {job_name}")
    if not run.wait(timeout):
        raise TimeoutError(f"Glue run {run_id} of {job_name} still {run.state} after {timeout} s")
    return _as_dict(run.fake_run)


def shutdown(timeout: float = 15.0) -> None:
    """Stop the runs still going (their Spark JVMs too) and forget the local jobs; call before moto stops."""
    with _runs_lock:
        runs = list(_runs.values())
        _runs.clear()
    for run in runs:
        run.stop()
    for run in runs:
        if not run.wait(timeout):
            logger.warning("Glue run %s did not stop within %s s", run.run_id, timeout)
    _jobs.clear()
