"""Runs the template's Lambda functions in-process, each isolated as it would be on AWS.

Isolation: every function gets its own environment variables (from the template, resolved), its
own copies of the modules loaded from its code and layer folders (each function imports dxops
afresh, so module-level state such as settings never leaks between functions) and its own
loggers (Powertools names them by service, and logging keeps them process-wide).
A handler's exception surfaces as FunctionError, like a Lambda "Unhandled" error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from localcloud.faults import FunctionCrash
from localcloud.template import FunctionSource

_LOCK = threading.RLock()  # os.environ and sys.modules are process-global: one invocation at a time
_REGISTRY: dict[str, LocalFunction] = {}  # by function name and by ARN: what moto's invoke paths resolve


def register_function(function: LocalFunction) -> None:
    _REGISTRY[function.name] = function
    _REGISTRY[function.arn] = function


def registered_function(name_or_arn: str) -> LocalFunction | None:
    return _REGISTRY.get(name_or_arn)


def clear_registry() -> None:
    _REGISTRY.clear()
    _OUTPUT_LISTENERS.clear()


OutputListener = Callable[["LocalFunction", str], None]
_OUTPUT_LISTENERS: list[OutputListener] = []


def add_output_listener(listener: OutputListener) -> None:
    """Receive what every function writes to stdout, line by line (what CloudWatch Logs gets on
    AWS: JSON log lines and EMF metric documents). Cleared when the local cloud stops; adding a
    listener twice keeps one."""
    if listener not in _OUTPUT_LISTENERS:
        _OUTPUT_LISTENERS.append(listener)


def remove_output_listener(listener: OutputListener) -> None:
    if listener in _OUTPUT_LISTENERS:
        _OUTPUT_LISTENERS.remove(listener)


class _FunctionStdout(io.TextIOBase):
    """A function's stdout: writes go to the process's stdout of the moment (so pytest's capture
    and redirect_stdout still work) and, line by line, to the output listeners. Loggers created
    at the function's cold start bind to this object, so their lines are seen too."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function
        self.target: TextIO = sys.__stdout__ or sys.stderr
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.target.write(text)
        if _OUTPUT_LISTENERS:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                for listener in list(_OUTPUT_LISTENERS):
                    listener(self.function, line)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):  # the stream of a finished capture or a closed redirect
            self.target.flush()


class LocalRuntimeBusy(Exception):
    """The local runtime runs one invocation at a time (functions share this process's environment
    and modules). Waiting longer than any invocation can take means a deadlock: typically a handler
    that synchronously invokes another function while the local cloud runs in server mode."""

    def __init__(self, function: str, waited: float) -> None:
        super().__init__(
            f"{function}: the local runtime stayed busy for {waited:.0f} s (a handler synchronously invoking "
            "another function deadlocks in server mode: invoke it asynchronously, or use the in-process mode)"
        )


class FunctionError(Exception):
    def __init__(self, function: str, error: BaseException) -> None:
        super().__init__(f"{function}: {type(error).__name__}: {error}")
        self.function = function
        self.error_type = type(error).__name__
        self.error = error


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 30
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_seconds * 1000


# Libraries whose module-level state belongs to one function on AWS (each function is its own
# process there): Powertools caches boto3 clients for parameters, the cold-start flag and metric
# sets. Pure Python, so a fresh import per function is cheap and safe.
ISOLATED_PACKAGES = ("aws_lambda_powertools",)


def _owned(name: str, module: ModuleType, roots: tuple[str, ...]) -> bool:
    if name.partition(".")[0] in ISOLATED_PACKAGES:
        return True
    file = getattr(module, "__file__", None) or ""
    return bool(file) and file.startswith(roots)


def _owned_modules(roots: tuple[str, ...]) -> dict[str, ModuleType]:
    # Snapshot first (one C-level copy, atomic under the GIL): background threads (job workers,
    # pollers) may import while this filter runs, and iterating sys.modules live would then fail.
    return {n: m for n, m in list(sys.modules.items()) if _owned(n, m, roots)}


class LocalFunction:
    def __init__(
        self,
        *,
        logical_id: str,
        name: str,
        arn: str,
        source: FunctionSource,
        environment: dict[str, str],
        all_roots: tuple[str, ...],
        memory_mb: int = 512,
        timeout_seconds: int = 30,
    ) -> None:
        self.logical_id = logical_id
        self.name = name
        self.arn = arn
        self.source = source
        self.environment = environment
        self.memory_mb = memory_mb
        self.timeout_seconds = timeout_seconds
        self._roots = all_roots  # code and layer folders of every function: their modules are swapped
        self._modules: dict[str, ModuleType] = {}
        self._loggers: dict[str, Any] = {}
        self._handler: Any = None
        self._stdout = _FunctionStdout(self)

    @contextlib.contextmanager
    def _sandbox(self) -> Iterator[None]:
        if not _LOCK.acquire(timeout=self.timeout_seconds * 2 + 30):
            raise FunctionError(self.logical_id, LocalRuntimeBusy(self.logical_id, self.timeout_seconds * 2 + 30))
        try:
            with self._isolated():
                yield
        finally:
            _LOCK.release()

    @contextlib.contextmanager
    def _isolated(self) -> Iterator[None]:
        function_env = {
            **self.environment,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
        }
        # Only the function's own variables are set and put back: never clear the environment,
        # which background threads (pollers, clocks, job workers) may be reading meanwhile.
        saved_env = {key: os.environ.get(key) for key in function_env}
        saved_path = list(sys.path)
        registry = logging.Logger.manager.loggerDict
        loggers_before = set(registry)
        registry.update(self._loggers)
        outside = _owned_modules(self._roots)
        for name in outside:
            del sys.modules[name]
        sys.modules.update(self._modules)
        os.environ.update(function_env)
        sys.path[:0] = [str(self.source.code_dir), *map(str, self.source.layer_dirs)]
        self._stdout.target = sys.stdout
        saved_stdout, sys.stdout = sys.stdout, self._stdout
        try:
            yield
        finally:
            sys.stdout = saved_stdout
            # Loggers are process-global too: the ones this function created (Powertools keys
            # them by service name) stay with it, bound to the streams of its own cold start.
            self._loggers.update({n: registry[n] for n in set(registry) - loggers_before})
            for name in self._loggers:
                registry.pop(name, None)
            self._modules = _owned_modules(self._roots)
            for name in self._modules:
                del sys.modules[name]
            sys.modules.update(outside)
            sys.path[:] = saved_path
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _load_handler(self) -> Any:
        module_name, _, attribute = self.source.handler.rpartition(".")
        path = self.source.code_dir / (module_name.replace(".", "/") + ".py")
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    def invoke(self, event: Any) -> Any:
        context = LambdaContext(
            function_name=self.name,
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
        )
        with self._sandbox():
            try:
                if self._handler is None:
                    self._handler = self._load_handler()  # cold start
                return self._handler(event, context)
            except FunctionCrash as crash:
                self._handler = None  # the environment is gone: the next invocation loads the handler again
                raise FunctionError(self.logical_id, crash) from crash
            except Exception as exc:
                raise FunctionError(self.logical_id, exc) from exc


def function_roots(sources: list[FunctionSource]) -> tuple[str, ...]:
    roots: set[Path] = set()
    for source in sources:
        roots.add(source.code_dir.resolve())
        roots.update(d.resolve() for d in source.layer_dirs)
    return tuple(str(r) + os.sep for r in sorted(roots))
