"""Prediction API: the domain with fakes (endpoint, monitoring store, keys), the SageMaker adapter's
error mapping (botocore Stubber, no AWS), and the handler (functions/predict_api/app.py) with API
Gateway proxy events and the fakes swapped in. No PHI in logs: a subprocess at DEBUG, as
tests/integration/test_no_phi_in_logs.py does for ingestion."""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from dxops.adapters.sagemaker_runtime import SageMakerEndpoint, endpoint_config
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.prediction import (
    EndpointUnavailable,
    InvalidRequest,
    ModelRefused,
    PredictLimits,
    parse_diagnoses_body,
    parse_predict_body,
    predict,
    record_diagnoses,
    safe_request_id,
)
from dxops.domain.pseudonymisation import pseudonymise
from tests.fakes import FakeDiagnosisEndpoint, InMemoryMonitoringStore, StaticKeyProvider
from tests.records import PATIENT_IDS, clinical_record, with_change

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "functions" / "predict_api" / "app.py"
EVENTS = REPO / "events" / "predict_api"
LIMITS = PredictLimits(max_records=5)
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
REQUEST_ID = "3b5e7a10-1f2c-4d3e-9a41-5c6d7e8f9a99"
ENDPOINT_FIELDS = {"record_id", "sex", "age_years", "phenotypes", "history", "labs", "vitals"}


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def run_predict(
    payload: object, endpoint: FakeDiagnosisEndpoint | None = None, store: InMemoryMonitoringStore | None = None
) -> Any:
    return predict(
        parse_predict_body(body(payload), LIMITS),
        request_id=REQUEST_ID,
        endpoint=endpoint or FakeDiagnosisEndpoint(),
        store=store or InMemoryMonitoringStore(),
        keys=StaticKeyProvider(),
        now=NOW,
    )


# --- domain: POST /predict -----------------------------------------------------------------------


def test_one_record_is_predicted_served_and_stored() -> None:
    endpoint, store = FakeDiagnosisEndpoint(), InMemoryMonitoringStore()
    outcome = run_predict(clinical_record(0), endpoint, store)
    response = outcome.response
    assert (response.request_id, response.model_version) == (REQUEST_ID, FakeDiagnosisEndpoint.MODEL_VERSION)
    [prediction] = response.predictions
    assert (prediction.prediction_id, prediction.record_id) == (f"{REQUEST_ID}:0", "rec-00000")
    assert [d.code for d in prediction.diagnoses][:2] == ["ORPHA:33069", "ICD10:G40.9"]  # disease_id -> code
    assert prediction.diagnoses[0].name == "Dravet syndrome" and prediction.diagnoses[0].probability == 0.6
    assert [c.feature for c in prediction.contributions] == ["HP:0001250", "HP:0001263", "HP:0000365", "age_years"]
    assert endpoint.content_types == ["application/json"]
    assert endpoint.sent[0]["top_k"] == 10 and endpoint.sent[0]["explain"] is True  # the defaults
    key = f"predictions/date=2026-11-27/hour=10/{REQUEST_ID}.ndjson"
    assert (outcome.stored_key, outcome.store_error) == (key, None)
    [line] = store.lines("predictions/")
    pseudonym = pseudonymise(StaticKeyProvider().key, "site-a", PATIENT_IDS[0])
    assert line == {
        "prediction_id": f"{REQUEST_ID}:0",
        "request_id": REQUEST_ID,
        "record_id": "rec-00000",
        "source": "site-a",
        "patient_pseudonym": pseudonym,
        "pseudonym_key_id": "test-v1",
        "model_version": FakeDiagnosisEndpoint.MODEL_VERSION,
        "predicted": [d.model_dump() for d in prediction.diagnoses],
        "rare_candidates": [d.model_dump() for d in prediction.rare_candidates],
        "served_at": "2026-11-27T10:00:00Z",
        "inputs": json.loads(endpoint.bodies[0])["records"][0],  # exactly what the endpoint read
    }
    statistics = outcome.statistics
    assert statistics.by_diagnosis == {"ORPHA:33069": 1} and statistics.top_probabilities == [0.6]
    assert (statistics.phenotypes, statistics.without_age) == ([len(clinical_record(0)["phenotypes"])], 0)


def test_a_batch_is_predicted_in_request_order_with_its_options() -> None:
    endpoint, store = FakeDiagnosisEndpoint(), InMemoryMonitoringStore()
    records = [clinical_record(i, source="site-b" if i == 1 else "site-a") for i in range(3)]
    outcome = run_predict({"records": records, "top_k": 3, "explain": False}, endpoint, store)
    predictions = outcome.response.predictions
    assert [p.record_id for p in predictions] == ["rec-00000", "rec-00001", "rec-00002"]
    assert [p.prediction_id for p in predictions] == [f"{REQUEST_ID}:{i}" for i in range(3)]
    assert all(len(p.diagnoses) == 3 and p.contributions == [] for p in predictions)
    assert (endpoint.sent[0]["top_k"], endpoint.sent[0]["explain"]) == (3, False)
    assert len(endpoint.bodies) == 1  # one endpoint call per request
    lines = store.lines("predictions/")
    assert [line["source"] for line in lines] == ["site-a", "site-b", "site-a"]
    assert len({line["patient_pseudonym"] for line in lines}) == 3


def test_the_endpoint_receives_what_the_model_reads_and_nothing_identifying() -> None:
    endpoint = FakeDiagnosisEndpoint()
    old = clinical_record(1, birth_year=1920, encounter_date="2026-11-02")  # 106 years old
    run_predict({"records": [clinical_record(0), old]}, endpoint)
    [sent] = endpoint.sent
    text = endpoint.bodies[0].decode()
    for secret in (*PATIENT_IDS, "1961", "1920", "2026-11-0", "site-a", "ORPHA:558", "reference_low"):
        assert secret not in text, secret  # ids, birth years, dates, site, the record's own diagnosis
    key = StaticKeyProvider().key
    for patient in PATIENT_IDS:
        assert pseudonymise(key, "site-a", patient) not in text  # not even the pseudonym
    assert all(set(record) == ENDPOINT_FIELDS for record in sent["records"])
    assert [r["age_years"] for r in sent["records"]] == [65.0, 90.0]  # from birth_year, capped as ingestion caps
    assert sent["records"][0]["phenotypes"][2] == {"hpo_id": "HP:0000365", "status": "excluded"}
    assert sent["records"][0]["labs"] == [{"loinc": "2345-7", "value": 5.1, "unit": "mmol/L"}]
    assert sent["records"][0]["vitals"] == [{"name": "heart_rate", "value": 88.0, "unit": "/min"}]
    assert sent["records"][0]["history"] == ["ICD10:G40.9", "OMIM:154700"]


def test_monitoring_storage_failure_still_serves_the_predictions() -> None:
    store = InMemoryMonitoringStore(fail_with=ConnectionError("s3 down"))
    outcome = run_predict(clinical_record(0), store=store)
    assert len(outcome.response.predictions) == 1
    assert (outcome.stored_key, outcome.store_error) == (None, "ConnectionError")


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (b"not json", "unexpected format"),
        (b'{"predictions": []}', "unexpected format"),
        (b'{"model_version": "v1", "predictions": []}', "do not match"),
        (
            b'{"model_version": "v1", "predictions": [{"record_id": "other", "diagnoses": []}]}',
            "do not match",
        ),
    ],
)
def test_an_answer_outside_the_contract_is_an_unavailable_endpoint(answer: bytes, fragment: str) -> None:
    with pytest.raises(EndpointUnavailable, match=fragment) as caught:
        run_predict(clinical_record(0), FakeDiagnosisEndpoint(answer=answer))
    assert caught.value.kind == "invalid_response"


def test_validation_errors_name_fields_never_values() -> None:
    bad = with_change(clinical_record(0), "phenotypes.0.hpo_id", "HP:9999999")
    with pytest.raises(InvalidRequest) as single:
        parse_predict_body(body(bad), LIMITS)
    assert [f.path for f in single.value.fields] == ["phenotypes[0].hpo_id"]
    secretive = clinical_record(1, notes="Jane Roe complains of dizziness")
    batch = {"records": [clinical_record(0), secretive, with_change(clinical_record(2), "sex", "Jane Roe")], "top_k": 0}
    with pytest.raises(InvalidRequest) as many:
        parse_predict_body(body(batch), LIMITS)
    paths = [f.path for f in many.value.fields]
    assert paths == ["records[1]", "records[2].sex", "top_k"]
    assert "Jane Roe" not in json.dumps([f.model_dump() for f in many.value.fields])


@pytest.mark.parametrize(
    ("raw", "error", "fragment"),
    [
        (b"{not json", MalformedPayload, "not valid JSON"),
        (b"\xff\xfe", MalformedPayload, "not valid JSON"),
        (body([clinical_record(0)]), MalformedPayload, "clinical record object"),
        (body({"records": [clinical_record(i) for i in range(6)]}), PayloadTooLarge, "6 records exceed the limit of 5"),
    ],
)
def test_bad_predict_bodies_are_refused(raw: bytes, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        parse_predict_body(raw, LIMITS)


def test_request_ids_are_kept_only_when_they_look_like_ids() -> None:
    assert safe_request_id(REQUEST_ID) == REQUEST_ID
    for unsafe in (None, "", "../../etc", "a" * 200):
        assert safe_request_id(unsafe) != unsafe and len(safe_request_id(unsafe)) == 36


# --- domain: POST /diagnoses ---------------------------------------------------------------------


def late_diagnosis(index: int = 0, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "prediction_id": f"{REQUEST_ID}:{index}",
        "record_id": f"rec-{index:05d}",
        "patient_id": PATIENT_IDS[index % len(PATIENT_IDS)],
        "source": "site-a",
        "diagnosis": {"code": "ORPHA:558", "status": "confirmed"},
        "confirmed_at": "2026-11-25",
    }
    item.update(overrides)
    return item


def test_diagnoses_are_pseudonymised_and_stored_once() -> None:
    store, keys = InMemoryMonitoringStore(), StaticKeyProvider()
    items = [late_diagnosis(0), late_diagnosis(1, prediction_id=None, patient_id=None)]
    first = record_diagnoses(parse_diagnoses_body(body({"diagnoses": items})), store=store, keys=keys, now=NOW)
    assert (first.received, first.stored, first.replayed) == (2, 2, False)
    key = f"diagnoses/date=2026-11-27/{first.batch_id}.ndjson"
    assert list(store.objects) == [key]
    lines = store.lines("diagnoses/")
    assert lines[0]["patient_pseudonym"] == pseudonymise(keys.key, "site-a", PATIENT_IDS[0])
    assert (lines[0]["code"], lines[0]["confirmed_at"], lines[0]["batch_id"]) == (
        "ORPHA:558",
        "2026-11-25",
        first.batch_id,
    )
    assert (lines[1]["prediction_id"], lines[1]["patient_pseudonym"], lines[1]["pseudonym_key_id"]) == (
        None,
        None,
        None,
    )
    assert PATIENT_IDS[0] not in store.objects[key].decode()
    # The same body, serialised otherwise, an hour later: the same batch, nothing written again.
    reordered = json.dumps({"diagnoses": [dict(reversed(i.items())) for i in items]}, indent=2).encode()
    later = NOW + dt.timedelta(hours=1)
    second = record_diagnoses(parse_diagnoses_body(reordered), store=store, keys=keys, now=later)
    assert (second.batch_id, second.stored, second.replayed) == (first.batch_id, 2, True)
    assert (store.writes, store.refused_writes) == (1, 1)
    other = record_diagnoses(parse_diagnoses_body(body({"diagnoses": items[:1]})), store=store, keys=keys, now=NOW)
    assert other.batch_id != first.batch_id and store.writes == 2


@pytest.mark.parametrize(
    ("item", "path", "fragment"),
    [
        (late_diagnosis(0, diagnosis={"code": "ORPHA:558", "status": "suspected"}), "diagnoses[0]", "only confirmed"),
        (late_diagnosis(0, prediction_id=None, record_id=None), "diagnoses[0]", "prediction_id or record_id"),
        (late_diagnosis(0, confirmed_at="2099-01-01"), "diagnoses[0]", "confirmed_at"),
        (late_diagnosis(0, prediction_id="Jane Roe"), "diagnoses[0].prediction_id", "pattern"),
        (late_diagnosis(0, name="Jane Roe"), "diagnoses[0]", "direct identifiers"),
        (late_diagnosis(0, diagnosis={"code": "ORPHA:JANEROE"}), "diagnoses[0].diagnosis.code", "not a valid ORPHA"),
    ],
)
def test_invalid_diagnoses_name_the_field(item: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_diagnoses_body(body({"diagnoses": [item]}))
    [error] = caught.value.fields
    assert error.path == path and fragment in error.message
    assert "JANEROE" not in error.message and "Jane Roe" not in error.message


def test_diagnoses_batches_are_bounded() -> None:
    with pytest.raises(InvalidRequest) as empty:
        parse_diagnoses_body(body({"diagnoses": []}))
    assert empty.value.fields[0].path == "diagnoses"
    with pytest.raises(InvalidRequest) as too_many:
        parse_diagnoses_body(body({"diagnoses": [late_diagnosis(0)] * 501}))
    assert too_many.value.fields[0].type == "too_long"
    with pytest.raises(MalformedPayload):
        parse_diagnoses_body(body([late_diagnosis(0)]))


# --- adapters -----------------------------------------------------------------------------------


def test_the_monitoring_store_writes_a_key_once() -> None:
    from moto import mock_aws

    from dxops.adapters.monitoring_store import S3MonitoringStore

    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="dxops-test-monitoring", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        store = S3MonitoringStore("dxops-test-monitoring", client=s3)
        assert store.put_object_once("diagnoses/a.ndjson", b"{}\n", "application/x-ndjson") is True
        assert store.put_object_once("diagnoses/a.ndjson", b"[]\n", "application/x-ndjson") is False
        store.put_object("predictions/b.ndjson", b"{}\n", "application/x-ndjson")
        assert s3.get_object(Bucket="dxops-test-monitoring", Key="diagnoses/a.ndjson")["Body"].read() == b"{}\n"


# --- adapter: InvokeEndpoint errors --------------------------------------------------------------


def stubbed_endpoint() -> tuple[SageMakerEndpoint, Stubber]:
    client = boto3.client(
        "sagemaker-runtime",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # a stubbed client: nothing is sent
        config=endpoint_config(20),
    )
    return SageMakerEndpoint("dxops-test-diagnosis", client=client), Stubber(client)


def model_error(status: int, message: str) -> dict[str, Any]:
    return {
        "service_error_code": "ModelError",
        "service_message": f'Received client error ({status}) from primary with message "{message}".',
        "http_status_code": 424,
        "modeled_fields": {"OriginalStatusCode": status, "OriginalMessage": message, "LogStreamArn": "arn:log"},
    }


ENDPOINT_FAILURES: list[tuple[str, dict[str, Any]]] = [
    ("model_error", model_error(500, "KeyError: 'age'\nTraceback ...")),
    (
        "not_deployed",
        {"service_error_code": "ValidationError", "service_message": "Endpoint x of account 1 not found."},
    ),
    ("not_ready", {"service_error_code": "ValidationError", "service_message": "Endpoint x is in status Creating."}),
    ("service_unavailable", {"service_error_code": "ServiceUnavailable", "http_status_code": 503}),
    ("throttled", {"service_error_code": "ThrottlingException", "http_status_code": 400}),
    ("service_unavailable", {"service_error_code": "InternalFailure", "http_status_code": 500}),
    ("other", {"service_error_code": "AccessDeniedException", "http_status_code": 403}),
]


@pytest.mark.parametrize(
    ("kind", "error"), ENDPOINT_FAILURES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(ENDPOINT_FAILURES)]
)
def test_service_errors_become_unavailable_endpoints(kind: str, error: dict[str, Any]) -> None:
    endpoint, stubber = stubbed_endpoint()
    stubber.add_client_error("invoke_endpoint", **error)
    with stubber, pytest.raises(EndpointUnavailable) as caught:
        endpoint.invoke(b"{}", "application/json")
    assert caught.value.kind == kind
    assert "KeyError" not in str(caught.value)  # the model's 5xx details stay in its own log


def test_a_model_refusal_keeps_the_models_first_line() -> None:
    endpoint, stubber = stubbed_endpoint()
    stubber.add_client_error("invoke_endpoint", **model_error(400, "records[0].labs[0].value: expected a number\nmore"))
    with stubber, pytest.raises(ModelRefused, match=r"^records\[0\]\.labs\[0\]\.value: expected a number$"):
        endpoint.invoke(b"{}", "application/json")


def test_a_successful_call_returns_the_models_body() -> None:
    endpoint, stubber = stubbed_endpoint()
    expected = {
        "EndpointName": "dxops-test-diagnosis",
        "Body": b"{}",
        "ContentType": "application/json",
        "Accept": "application/json",
    }
    stubber.add_response(
        "invoke_endpoint", {"Body": io.BytesIO(b'{"ok": 1}'), "ContentType": "application/json"}, expected
    )
    with stubber:
        assert endpoint.invoke(b"{}", "application/json") == b'{"ok": 1}'


class RaisingClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def invoke_endpoint(self, **_: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ReadTimeoutError(endpoint_url="https://runtime.sagemaker"), "timeout"),
        (EndpointConnectionError(endpoint_url="https://runtime.sagemaker"), "connection"),
    ],
)
def test_timeouts_and_connection_errors_become_unavailable_endpoints(error: Exception, kind: str) -> None:
    with pytest.raises(EndpointUnavailable) as caught:
        SageMakerEndpoint("x", client=RaisingClient(error)).invoke(b"{}", "application/json")
    assert caught.value.kind == kind


def test_the_client_fails_fast() -> None:
    config = endpoint_config(12)
    assert (config.connect_timeout, config.read_timeout) == (2, 12)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}  # the first call and one retry


# --- handler: functions/predict_api/app.py -------------------------------------------------------

HANDLER_ENV = {
    "ENDPOINT_NAME": "dxops-test-diagnosis",
    "MONITORING_BUCKET": "monitoring-bucket",
    "PSEUDONYM_SECRET_ID": "pseudonym-key",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "POWERTOOLS_SERVICE_NAME": "predict-api",
    "POWERTOOLS_METRICS_NAMESPACE": "dxops",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def load_handler(name: str = "predict_api_app") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def handler_module() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in HANDLER_ENV.items():
            patch.setenv(name, value)
        yield load_handler()


class Handler:
    """The handler module with fakes in place of AWS, and its log output."""

    def __init__(self, module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
        self.module = module
        self.endpoint = FakeDiagnosisEndpoint()
        self.store = InMemoryMonitoringStore()
        self.keys = StaticKeyProvider()
        monkeypatch.setattr(module, "endpoint", self.endpoint)
        monkeypatch.setattr(module, "store", self.store)
        monkeypatch.setattr(module, "keys", self.keys)
        monkeypatch.setattr(module.metrics, "namespace", "dxops")
        self.logs = io.StringIO()
        handler = module.logger.registered_handler
        monkeypatch.setattr(handler, "stream", self.logs)

    def __call__(self, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        response = self.module.lambda_handler(event, LambdaContextStub())
        headers = {**(response.get("headers") or {})}
        headers.update({name: values[0] for name, values in (response.get("multiValueHeaders") or {}).items()})
        return response["statusCode"], headers, json.loads(response["body"])


class LambdaContextStub:
    function_name = "dxops-test-predict-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:dxops-test-predict-api"
    aws_request_id = "lambda-request-0001"


@pytest.fixture
def handler(handler_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Handler:
    return Handler(handler_module, monkeypatch)


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def post(path: str, payload: object, signed: bool = True, request_id: str = REQUEST_ID) -> dict[str, Any]:
    event = copy.deepcopy(sample("post_predict.json" if path == "/predict" else "post_diagnoses.json"))
    event["body"] = payload if isinstance(payload, str) else json.dumps(payload)
    event["requestContext"]["requestId"] = request_id
    if not signed:
        for key in ("userArn", "caller", "user", "accessKey"):
            event["requestContext"]["identity"][key] = None
    return event


def test_sample_events_are_served(handler: Handler) -> None:
    code, _, single = handler(sample("post_predict.json"))
    assert code == 200 and single["predictions"][0]["prediction_id"] == "3b5e7a10-1f2c-4d3e-9a41-5c6d7e8f9a01:0"
    code, _, batch = handler(sample("post_predict_batch.json"))
    assert code == 200 and [p["record_id"] for p in batch["predictions"]] == ["rec-0001", "rec-0002"]
    assert all(len(p["diagnoses"]) == 5 and p["contributions"] == [] for p in batch["predictions"])
    code, _, accepted = handler(sample("post_diagnoses.json"))
    assert (code, accepted["received"], accepted["replayed"]) == (202, 2, False)
    assert len(handler.store.lines("predictions/")) == 3 and len(handler.store.lines("diagnoses/")) == 2


def test_predict_answers_the_documented_shape(handler: Handler, capsys: pytest.CaptureFixture[str]) -> None:
    code, headers, answer = handler(post("/predict", clinical_record(0)))
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert set(answer) == {"request_id", "model_version", "predictions"}
    assert answer["request_id"] == REQUEST_ID
    assert set(answer["predictions"][0]) == {
        "prediction_id",
        "record_id",
        "diagnoses",
        "rare_candidates",
        "contributions",
    }
    assert set(answer["predictions"][0]["diagnoses"][0]) == {"code", "name", "probability"}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for e in emf for d in e["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"PredictionsServed", "PredictionLatency", "RecordsPerRequest"} <= names


@pytest.mark.parametrize(("kind", "error"), ENDPOINT_FAILURES[:-1], ids=[k for k, _ in ENDPOINT_FAILURES[:-1]])
def test_endpoint_failures_are_503_with_retry_after(
    handler: Handler,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    error: dict[str, Any],
) -> None:
    endpoint, stubber = stubbed_endpoint()
    stubber.add_client_error("invoke_endpoint", **error)
    monkeypatch.setattr(handler.module, "endpoint", endpoint)
    with stubber:
        code, headers, answer = handler(post("/predict", clinical_record(0)))
    assert (code, headers["Retry-After"], answer["error"]) == (503, "30", "model_unavailable")
    assert answer["request_id"] == REQUEST_ID and "retry later" in answer["message"]
    assert handler.store.objects == {}  # nothing served, nothing stored
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"EndpointErrors"' in line]
    assert [(e["kind"], e["EndpointErrors"]) for e in emf] == [(kind, [1.0])]


@pytest.mark.parametrize(
    "error",
    [ReadTimeoutError(endpoint_url="https://runtime.sagemaker"), EndpointConnectionError(endpoint_url="https://x")],
)
def test_timeouts_are_503_never_500(handler: Handler, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    monkeypatch.setattr(handler.module, "endpoint", SageMakerEndpoint("x", client=RaisingClient(error)))
    code, headers, _ = handler(post("/predict", clinical_record(0)))
    assert (code, headers["Retry-After"]) == (503, "30")


def test_a_model_refusal_is_422_with_the_models_message(handler: Handler, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, stubber = stubbed_endpoint()
    stubber.add_client_error("invoke_endpoint", **model_error(400, "records[0].phenotypes[0]: expected an object"))
    monkeypatch.setattr(handler.module, "endpoint", endpoint)
    with stubber:
        code, _, answer = handler(post("/predict", clinical_record(0)))
    assert (code, answer["error"]) == (422, "model_refused")
    assert answer["message"] == "records[0].phenotypes[0]: expected an object"
    assert "expected an object" not in handler.logs.getvalue()


def test_an_unavailable_key_is_503(handler: Handler, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoKey:
        def current_key(self) -> Any:
            raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, "GetSecretValue")

    monkeypatch.setattr(handler.module, "keys", NoKey())
    code, headers, answer = handler(post("/predict", clinical_record(0)))
    assert (code, headers["Retry-After"], answer["error"]) == (503, "30", "service_unavailable")
    assert handler.endpoint.bodies == []  # nothing leaves unpseudonymised


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ("{broken", 400, "malformed_request"),
        ("[]", 400, "malformed_request"),
        ({"records": [clinical_record(i) for i in range(101)]}, 413, "payload_too_large"),
        (clinical_record(0, record_id="Jane Roe"), 422, "validation_failed"),
    ],
)
def test_bad_requests_get_clear_errors(handler: Handler, payload: object, status: int, error: str) -> None:
    code, _, answer = handler(post("/predict", payload))
    assert (code, answer["error"], answer["request_id"]) == (status, error, REQUEST_ID)
    assert handler.endpoint.bodies == [] and handler.store.objects == {}


def test_validation_errors_are_field_paths_without_values(handler: Handler) -> None:
    bad = with_change(clinical_record(0), "vitals.0.unit", "Jane Roe")
    code, _, answer = handler(post("/predict", {"records": [clinical_record(1), bad], "top_k": 51}))
    assert code == 422
    assert [f["path"] for f in answer["fields"]] == ["records[1].vitals[0].unit", "top_k"]
    assert "Jane Roe" not in json.dumps(answer)
    code, _, answer = handler(post("/diagnoses", {"diagnoses": [late_diagnosis(0, source="Jane Roe")]}))
    assert (code, [f["path"] for f in answer["fields"]]) == (422, ["diagnoses[0].source"])
    assert "Jane Roe" not in json.dumps(answer)


def test_unsigned_requests_are_401(handler: Handler) -> None:
    assert handler(post("/predict", clinical_record(0), signed=False))[0] == 401
    assert handler(post("/diagnoses", {"diagnoses": [late_diagnosis(0)]}, signed=False))[0] == 401


def test_a_storage_failure_still_answers_200_and_is_logged(
    handler: Handler, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(handler.store, "fail_with", ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"))
    code, _, answer = handler(post("/predict", clinical_record(0)))
    assert code == 200 and len(answer["predictions"]) == 1
    [warning] = [json.loads(line) for line in handler.logs.getvalue().splitlines() if '"WARNING"' in line]
    assert warning["message"] == "predictions served but not stored for monitoring"
    assert (warning["request_id"], warning["error_type"], warning["predictions"]) == (REQUEST_ID, "ClientError", 1)
    assert '"PredictionStoreFailures":[1.0]' in capsys.readouterr().out


def test_diagnoses_are_idempotent_on_the_body(handler: Handler) -> None:
    payload = {"diagnoses": [late_diagnosis(0), late_diagnosis(1)]}
    first = handler(post("/diagnoses", payload, request_id="req-00000001"))
    second = handler(post("/diagnoses", payload, request_id="req-00000002"))
    assert first[0] == second[0] == 202
    assert first[2]["batch_id"] == second[2]["batch_id"]
    assert (first[2]["replayed"], second[2]["replayed"]) == (False, True)
    assert handler.store.writes == 1 and len(handler.store.lines("diagnoses/")) == 2


def test_a_diagnoses_storage_failure_is_503(handler: Handler, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler.store, "fail_with", ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"))
    code, headers, _ = handler(post("/diagnoses", {"diagnoses": [late_diagnosis(0)]}))
    assert (code, headers["Retry-After"]) == (503, "30")


def test_openapi_documents_both_routes(handler_module: ModuleType) -> None:
    document = handler_module.openapi_document()
    predict_op, diagnoses_op = document["paths"]["/predict"]["post"], document["paths"]["/diagnoses"]["post"]
    assert predict_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictResponse"
    }
    body_schema = predict_op["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {
        "anyOf": [{"$ref": "#/components/schemas/ClinicalRecord"}, {"$ref": "#/components/schemas/PredictRequest"}]
    }
    assert diagnoses_op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DiagnosesRequest"
    }
    assert {"503", "422", "413"} <= set(predict_op["responses"])
    schemas = document["components"]["schemas"]
    assert {"PredictResponse", "Prediction", "PredictedDiagnosis", "LateDiagnosis", "DiagnosesAccepted"} <= set(schemas)
    assert "x-amazon-apigateway-authtype" in json.dumps(document["components"]["securitySchemes"])


# --- no PHI in logs --------------------------------------------------------------------------------

SECRETS = (*PATIENT_IDS, "Jane Roe", "1961-03-04", "complains of dizziness", "Elm Street 12")
SCENARIO = r"""
import importlib.util, json
from botocore.exceptions import ClientError
from dxops.domain.prediction import EndpointUnavailable
from tests.fakes import FakeDiagnosisEndpoint, InMemoryMonitoringStore, StaticKeyProvider
from tests.records import clinical_record, with_change
from tests.unit.test_prediction import LambdaContextStub, late_diagnosis, load_handler, post

app = load_handler()
app.keys = StaticKeyProvider()
app.store = InMemoryMonitoringStore()
RESPONSES = []
def call(event, endpoint=None):
    app.endpoint = endpoint or FakeDiagnosisEndpoint()
    RESPONSES.append(app.lambda_handler(event, LambdaContextStub()))
records = [clinical_record(i) for i in range(3)]
call(post("/predict", records[0], request_id="req-single"))
call(post("/predict", {"records": records, "top_k": 3}, request_id="req-batch"))
call(post("/predict", {"records": [
    clinical_record(0, notes="Jane Roe complains of dizziness"),
    clinical_record(1, date_of_birth="1961-03-04", address="Elm Street 12"),
    with_change(clinical_record(2), "sex", "Jane Roe"),
    clinical_record(0, **{"Jane Roe 1961-03-04": 1}),
]}))
call(post("/predict", "{broken " + records[0]["patient_id"]))
call(post("/predict", records[1], signed=False))
call(post("/predict", records[2]), FakeDiagnosisEndpoint(fail_with=EndpointUnavailable("timeout", "no answer")))
failing = InMemoryMonitoringStore(fail_with=ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"))
app.store, kept = failing, app.store
call(post("/predict", records[0], request_id="req-store-fails"))
app.store = kept
call(post("/diagnoses", {"diagnoses": [late_diagnosis(0), late_diagnosis(1)]}))
call(post("/diagnoses", {"diagnoses": [late_diagnosis(2, name="Jane Roe", patient_id="Jane Roe")]}))
stored = [body.decode() for body in app.store.objects.values()]
with open(OUT, "w") as fh:
    json.dump({"objects": stored, "responses": RESPONSES}, fh, default=str)
"""


def test_no_phi_in_logs_or_storage(tmp_path: Path) -> None:
    out = tmp_path / "stored.json"
    env = {
        **os.environ,
        **HANDLER_ENV,
        "LOG_LEVEL": "DEBUG",
        "PYTHONPATH": f"{REPO / 'layers/shared'}{os.pathsep}{REPO}",
    }
    completed = subprocess.run(
        [sys.executable, "-c", f"OUT = {str(out)!r}\n{SCENARIO}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    log_lines = [line for line in (completed.stdout + completed.stderr).splitlines() if line.strip()]
    assert sum('"message":"predictions served"' in line for line in log_lines) >= 3  # the logs were captured
    assert any('"level":"DEBUG"' in line for line in log_lines), "the scenario must log at DEBUG"
    assert any("predictions served but not stored" in line for line in log_lines)
    for secret in SECRETS:
        leaked = [line for line in log_lines if secret in line]
        assert not leaked, f"{secret!r} appears in {len(leaked)} log lines, e.g. {leaked[0][:300]}"
    result = json.loads(out.read_text())
    assert [r["statusCode"] for r in result["responses"]] == [200, 200, 422, 400, 401, 503, 200, 202, 422]
    assert len(result["objects"]) == 3  # two predictions stored (one failed), one diagnoses batch
    stored = out.read_text()
    for secret in SECRETS:
        assert secret not in stored, f"{secret!r} reached the monitoring store or a response"
