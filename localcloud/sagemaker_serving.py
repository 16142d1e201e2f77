"""A SageMaker model server for the local cloud: one process per endpoint variant.

Started by localcloud.sagemaker as `<python> sagemaker_serving.py --model-dir ... --code-dir ...
--program inference.py --ready-file ...`, with the interpreter the model's image stands for, so it
uses only the standard library and runs on any Python 3.8+ (the SageMaker framework images have
their own Python). It follows the SageMaker inference toolkit's contract:

- the inference script is imported from the code dir (the model's code/ folder or the submit
  directory), and `model_fn(model_dir)` is called once, before the server answers anything: a
  model_fn that raises makes the process exit non-zero, which the local cloud reports as a failed
  health check;
- GET /ping answers 200 once the model is loaded;
- POST /invocations runs `transform_fn(model, body, content_type, accept)` when the script has
  one, else `input_fn(body, content_type)` -> `predict_fn(data, model)` -> `output_fn(prediction,
  accept)`, with JSON (and simple CSV) defaults for the functions the script leaves out. Bodies
  of JSON and CSV requests are decoded to str, as the toolkit does; output_fn may return a
  (body, content_type) tuple. A handler error answers 500 with the error and its traceback,
  which InvokeEndpoint turns into a ModelError.

The port is chosen by the OS and written, with the pid, to the ready file once the model is loaded.
Request bodies are never logged: they may be clinical records.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger("localcloud.sagemaker_serving")

JSON = "application/json"
CSV = "text/csv"
UTF8_TYPES = (JSON, CSV)  # the toolkit decodes these request bodies to str before input_fn


class InferenceError(Exception):
    """An error with the HTTP status the toolkit would answer (415, 406, 500)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def default_input_fn(body: Any, content_type: str) -> Any:
    media = _media_type(content_type)
    if media == JSON:
        return json.loads(body)
    if media == CSV:
        rows = [line.split(",") for line in str(body).splitlines() if line.strip()]
        return [[_number(cell) for cell in row] for row in rows]
    raise InferenceError(415, f"Content type {content_type} is not supported by the default input_fn")


def _number(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell.strip()


def default_predict_fn(data: Any, model: Any) -> Any:
    if hasattr(model, "predict"):
        return model.predict(data)
    if callable(model):
        return model(data)
    raise InferenceError(500, "the model has no predict method and is not callable: define predict_fn")


def _plain(value: Any) -> Any:
    """What json.dumps cannot take itself: numpy arrays and scalars (tolist / item)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def default_output_fn(prediction: Any, accept: str) -> Any:
    media = _media_type(accept)
    if media == JSON:
        return json.dumps(prediction, default=_plain), JSON
    if media == CSV:
        rows = prediction if isinstance(prediction, list) else [prediction]
        lines = [",".join(map(str, row)) if isinstance(row, (list, tuple)) else str(row) for row in rows]
        return "\n".join(lines) + "\n", CSV
    raise InferenceError(406, f"Accept {accept} is not supported by the default output_fn")


class Handlers:
    """The inference script's functions, with the toolkit's defaults for missing ones."""

    def __init__(self, module: ModuleType | None, model_dir: Path, default_accept: str) -> None:
        self.module = module
        self.default_accept = default_accept
        model_fn = getattr(module, "model_fn", None)
        if model_fn is None:
            raise InferenceError(500, "the inference script defines no model_fn: the local cloud cannot load the model")
        self.model = model_fn(str(model_dir))
        self.transform_fn = getattr(module, "transform_fn", None)
        self.input_fn = getattr(module, "input_fn", default_input_fn)
        self.predict_fn = getattr(module, "predict_fn", default_predict_fn)
        self.output_fn = getattr(module, "output_fn", default_output_fn)
        # Models need not be thread-safe: one inference at a time, as one toolkit worker does.
        self.lock = threading.Lock()

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        content_type = content_type or JSON
        if not accept or accept == "*/*":
            accept = self.default_accept
        data: Any = body.decode("utf-8") if _media_type(content_type) in UTF8_TYPES else body
        with self.lock:
            if self.transform_fn is not None:
                result = self.transform_fn(self.model, data, content_type, accept)
            else:
                decoded = self.input_fn(data, content_type)
                prediction = self.predict_fn(decoded, self.model)
                result = self.output_fn(prediction, accept)
        response_type = accept
        if isinstance(result, tuple) and len(result) == 2:
            result, response_type = result
        if isinstance(result, str):
            result = result.encode("utf-8")
        return bytes(result), str(response_type)


def load_script(code_dir: Path, program: str) -> ModuleType:
    path = code_dir / program
    if not path.is_file():
        raise FileNotFoundError(f"inference script {program} not found in {code_dir}")
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(Path(program).stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_handler(handlers: Handlers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)  # method, path and status only

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._answer(200, b"", "text/plain")
            else:
                self._answer(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path != "/invocations":
                self._answer(404, b"not found", "text/plain")
                return
            try:
                answer, content_type = handlers.invoke(
                    body, self.headers.get("Content-Type", ""), self.headers.get("Accept", "")
                )
            except InferenceError as exc:
                self._answer(exc.status, str(exc).encode("utf-8"), "text/plain")
            except Exception as exc:
                trace = traceback.format_exc()
                logger.error("inference failed: %s", type(exc).__name__)
                sys.stderr.write(trace)  # the model's log (CloudWatch on AWS)
                self._answer(500, f"{exc}\n{trace}".encode(), "text/plain")
            else:
                self._answer(200, answer, content_type)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--code-dir", required=True, type=Path)
    parser.add_argument("--program", required=True)
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON
    try:
        handlers = Handlers(load_script(args.code_dir, args.program), args.model_dir, default_accept)
    except Exception:
        logger.error("the model could not be loaded:\n%s", traceback.format_exc())
        return 1
    server = ThreadingHTTPServer((args.host, 0), make_handler(handlers))
    server.daemon_threads = True
    partial = args.ready_file.with_suffix(".partial")
    partial.write_text(json.dumps({"port": server.server_address[1], "pid": os.getpid()}))
    partial.replace(args.ready_file)  # atomic: the parent never reads half a file
    logger.info("model loaded; serving on %s:%s", args.host, server.server_address[1])
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
