"""Endpoint data capture on the local cloud: what SageMaker writes to S3 for an endpoint configuration
with a DataCaptureConfig (Model Monitor's input).

Each sampled InvokeEndpoint becomes one JSON line, as SageMaker writes it:

    {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                       "data": "...", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-11-27T11:20:00Z"},
     "eventVersion": "0"}

- `data` is the body as text with encoding "CSV" or "JSON" when its content type (the media type,
  parameters ignored) is listed in CaptureContentTypeHeader.CsvContentTypes / JsonContentTypes,
  else base64 with encoding "BASE64" (SageMaker's default when no header is listed). A body listed
  as text that is not UTF-8 is captured as BASE64.
- CaptureOptions decide which of endpointInput / endpointOutput a line has (Input, Output,
  InputAndOutput). eventMetadata.inferenceId is the request's InferenceId, when it has one.
- InitialSamplingPercentage (0-100) samples invocations; only invocations the model answered
  (HTTP 200) are captured.
- Lines are buffered per endpoint and variant and written every SETTINGS-chosen interval
  (`flush_interval`, a few seconds; SageMaker takes minutes) or when the fleet stops, to
  `{DestinationS3Uri}/{EndpointName}/{VariantName}/yyyy/mm/dd/hh/{mm}-{ss}-{mmm}-{uuid}.jsonl` (the
  hour of the inferences it holds; one file per hour per flush), with SSE-KMS and the KmsKeyId
  when the DataCaptureConfig names one.

Request and response bodies go to S3 only, never to a log: they may be clinical records.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud.background import Periodic

logger = logging.getLogger(__name__)

_RANDOM = secrets.SystemRandom()


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class CaptureConfig:
    """An enabled DataCaptureConfig."""

    destination: str  # DestinationS3Uri
    sampling_percentage: float
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str] = frozenset()
    json_types: frozenset[str] = frozenset()
    kms_key_id: str | None = None

    @classmethod
    def parse(cls, config: Mapping[str, Any] | None) -> CaptureConfig | None:
        """The capture an endpoint configuration asks for; None when it asks for none."""
        if not config or not config.get("EnableCapture", True) or not config.get("DestinationS3Uri"):
            return None
        modes = {str(option.get("CaptureMode", "")) for option in config.get("CaptureOptions") or []}
        headers = config.get("CaptureContentTypeHeader") or {}
        return cls(
            destination=str(config["DestinationS3Uri"]).rstrip("/"),
            sampling_percentage=float(config.get("InitialSamplingPercentage", 100)),
            capture_input=bool(modes & {"Input", "InputAndOutput"}),
            capture_output=bool(modes & {"Output", "InputAndOutput"}),
            csv_types=frozenset(_media_type(t) for t in headers.get("CsvContentTypes") or []),
            json_types=frozenset(_media_type(t) for t in headers.get("JsonContentTypes") or []),
            kms_key_id=config.get("KmsKeyId") or None,
        )

    def sampled(self) -> bool:
        return _RANDOM.random() * 100 < self.sampling_percentage

    def payload(self, body: bytes, content_type: str, mode: str) -> dict[str, str]:
        media = _media_type(content_type)
        encoding = "CSV" if media in self.csv_types else "JSON" if media in self.json_types else "BASE64"
        data: str | None = None
        if encoding != "BASE64":
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError:
                encoding = "BASE64"
        if data is None:
            data = base64.b64encode(body).decode("ascii")
        return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_line(
    config: CaptureConfig,
    *,
    request: bytes,
    request_type: str,
    response: bytes,
    response_type: str,
    at: dt.datetime,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """One capture record as SageMaker writes it."""
    capture: dict[str, Any] = {}
    if config.capture_input:
        capture["endpointInput"] = config.payload(request, request_type, "INPUT")
    if config.capture_output:
        capture["endpointOutput"] = config.payload(response, response_type, "OUTPUT")
    metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


@dataclass(eq=False)  # buffers are told apart by identity
class CaptureBuffer:
    """The captured lines of one variant of one endpoint, waiting for their S3 file."""

    config: CaptureConfig
    endpoint: str
    variant: str
    s3: Callable[[], Any]  # a boto3 S3 client of the endpoint's account
    lines: list[tuple[dt.datetime, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: list[str] = field(default_factory=list)  # what was written (tests and status output)

    def add(
        self,
        *,
        request: bytes,
        request_type: str,
        response: bytes,
        response_type: str,
        inference_id: str | None = None,
    ) -> bool:
        """Capture one answered invocation if it is sampled; whether it was."""
        if not self.config.sampled():
            return False
        at = dt.datetime.now(dt.UTC)
        line = capture_line(
            self.config,
            request=request,
            request_type=request_type,
            response=response,
            response_type=response_type,
            at=at,
            inference_id=inference_id,
        )
        with self.lock:
            self.lines.append((at, json.dumps(line, separators=(",", ":"))))
        _FLUSHER.ensure_running()
        return True

    def flush(self) -> list[str]:
        """Write what is buffered: one object per hour of inference time; the keys written."""
        with self.lock:
            lines, self.lines = self.lines, []
        if not lines:
            return []
        by_hour: dict[str, list[tuple[dt.datetime, str]]] = {}
        for at, line in lines:
            by_hour.setdefault(at.strftime("%Y/%m/%d/%H"), []).append((at, line))
        bucket, _, prefix = self.config.destination[len("s3://") :].partition("/")
        written = []
        for hour, entries in by_hour.items():
            first = entries[0][0]
            name = f"{first:%M-%S}-{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            key = "/".join(p for p in (prefix, self.endpoint, self.variant, hour, name) if p)
            args: dict[str, Any] = {
                "Bucket": bucket,
                "Key": key,
                "Body": ("\n".join(line for _, line in entries) + "\n").encode(),
                "ContentType": "application/jsonlines",
            }
            if self.config.kms_key_id:
                args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.config.kms_key_id)
            try:
                self.s3().put_object(**args)
            except Exception as exc:  # SageMaker drops capture it cannot write; serving goes on
                logger.warning(
                    "data capture of %s/%s: %d lines not written (%s)",
                    self.endpoint,
                    self.variant,
                    len(entries),
                    type(exc).__name__,
                )
                continue
            written.append(key)
        self.keys.extend(written)
        return written


class _Flusher(Periodic):
    """Writes every registered buffer every `interval` seconds (started at the first capture)."""

    name = "localcloud-data-capture"

    def __init__(self, interval: float) -> None:
        super().__init__(interval)
        self._started = False

    def tick(self) -> None:
        if self._started:  # Periodic ticks at once: the first write waits one interval
            flush_all()
        self._started = True


@dataclass
class _State:
    interval: float = 5.0
    flusher: _Flusher | None = None
    buffers: list[CaptureBuffer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure_running(self) -> None:
        with self.lock:
            if self.flusher is None or self.flusher.stopped:
                self.flusher = _Flusher(self.interval)
                self.flusher.start()


_FLUSHER = _State()


def configure(*, flush_interval: float | None = None) -> None:
    """How often buffered capture is written (seconds); a running flusher restarts with it."""
    if flush_interval is not None:
        _FLUSHER.interval = flush_interval
        with _FLUSHER.lock:
            flusher, _FLUSHER.flusher = _FLUSHER.flusher, None
        if flusher is not None:
            flusher.stop()


def register(buffer: CaptureBuffer) -> CaptureBuffer:
    with _FLUSHER.lock:
        _FLUSHER.buffers.append(buffer)
    return buffer


def release(buffer: CaptureBuffer) -> None:
    """Write what the buffer holds and forget it (its fleet stopped)."""
    buffer.flush()
    with _FLUSHER.lock:
        if buffer in _FLUSHER.buffers:
            _FLUSHER.buffers.remove(buffer)


def flush_all() -> list[str]:
    """Write every buffer now (tests call it instead of waiting for the interval); the keys written."""
    with _FLUSHER.lock:
        buffers = list(_FLUSHER.buffers)
    return [key for buffer in buffers for key in buffer.flush()]


def shutdown() -> None:
    """Write what is buffered and stop the flusher (before moto stops)."""
    with _FLUSHER.lock:
        flusher, _FLUSHER.flusher = _FLUSHER.flusher, None
    if flusher is not None:
        flusher.stop()
    flush_all()
    with _FLUSHER.lock:
        _FLUSHER.buffers.clear()
