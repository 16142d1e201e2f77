"""The SageMaker inference script (serving contract: model_fn, input_fn, predict_fn, output_fn).

Request (application/json): one ClinicalRecord object, a list of them, or
{"records": [...], "top_k": 10, "explain": true}; application/jsonlines: one record per line.
"explain": false leaves out the contributing features (about 5x faster on large batches). Response
(application/json): {"model_version": ..., "predictions": [{"record_id", "diagnoses",
"rare_candidates", "contributions"}]} in request order. A record with phenotypes only (no labs,
no history) is scored like any other: missing measurements are imputed as in training.
Nothing of a record is logged.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ml.model import DiagnosisModel
from ml.records import RecordError

JSON, JSON_LINES = "application/json", "application/jsonlines"
DEFAULT_TOP_K, MAX_TOP_K, MAX_RECORDS = 10, 50, 1000


class RequestError(ValueError):
    """A request the endpoint refuses: HTTP 400 (the serving toolkit reads `status_code` and
    `message`; a plain exception would become a 500)."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def model_fn(model_dir: str) -> DiagnosisModel:
    model = DiagnosisModel.load(Path(model_dir))
    _ = model.scorer  # builds the knowledge model now, not on the first request
    return model


def input_fn(request_body: str | bytes, content_type: str = JSON) -> dict[str, Any]:
    text = request_body.decode("utf-8") if isinstance(request_body, bytes) else request_body
    media_type = (content_type or JSON).split(";")[0].strip()
    try:
        if media_type == JSON_LINES:
            document: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif media_type == JSON:
            document = json.loads(text)
        else:
            raise RequestError(f"content type {media_type!r}: expected {JSON} or {JSON_LINES}")
    except json.JSONDecodeError as error:
        raise RequestError(f"body is not JSON: {error.msg} (line {error.lineno})") from None
    top_k, explain = DEFAULT_TOP_K, True
    if isinstance(document, dict) and "records" in document:
        top_k = document.get("top_k", DEFAULT_TOP_K)
        explain = document.get("explain", True)
        document = document["records"]
    records = document if isinstance(document, list) else [document]
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise RequestError(f"top_k: expected an integer from 1 to {MAX_TOP_K}")
    if not isinstance(explain, bool):
        raise RequestError("explain: expected true or false")
    if not 1 <= len(records) <= MAX_RECORDS:
        raise RequestError(f"records: expected 1 to {MAX_RECORDS} records, got {len(records)}")
    return {"records": records, "top_k": top_k, "explain": explain}


def predict_fn(data: dict[str, Any], model: DiagnosisModel) -> dict[str, Any]:
    records = data["records"]
    try:
        predictions = model.predict_records(records, top_k=data["top_k"], explain=data.get("explain", True))
    except RecordError as error:
        raise RequestError(str(error)) from None
    return {
        "model_version": model.version,
        "predictions": [
            {
                "record_id": record.get("record_id"),
                "diagnoses": [asdict(d) for d in prediction.diagnoses],
                "rare_candidates": [asdict(d) for d in prediction.rare_candidates],
                "contributions": [{"feature": name, "contribution": value} for name, value in prediction.contributions],
            }
            for record, prediction in zip(records, predictions, strict=True)
        ],
    }


def output_fn(prediction: dict[str, Any], accept: str = JSON) -> tuple[str, str]:
    media_type = (accept or JSON).split(";")[0].strip()
    if media_type not in (JSON, "*/*"):
        raise RequestError(f"accept {media_type!r}: the endpoint answers {JSON}")
    return json.dumps(prediction), JSON
