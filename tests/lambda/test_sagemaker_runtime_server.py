"""emulators.sagemaker_runtime answers boto3's sagemaker-runtime client as the real service would."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from emulators.sagemaker_runtime import SageMakerRuntimeServer, rcf_endpoint, xgboost_endpoint

ROWS = b"0.25,1.0\n0.75,2.0\n"


def first_column(rows):
    return [row[0] for row in rows]


def second_column(rows):
    return [row[1] for row in rows]


@pytest.fixture
def server(monkeypatch):
    endpoints = {
        "xgb-newline": xgboost_endpoint(first_column),
        "xgb-comma": xgboost_endpoint(first_column, csv_join=","),
        "rcf": rcf_endpoint(second_column),
    }
    with SageMakerRuntimeServer(endpoints) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", running.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield running


def client(max_attempts: int = 3, read_timeout: float = 10):
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        read_timeout=read_timeout,
        connect_timeout=2,
    )
    return boto3.client("sagemaker-runtime", config=config)


def invoke(name: str, accept: str = "text/csv", **kwargs):
    response = client(**kwargs).invoke_endpoint(
        EndpointName=name, Body=ROWS, ContentType="text/csv", Accept=accept
    )
    return response["Body"].read(), response["ContentType"], response["ResponseMetadata"]["RetryAttempts"]


@pytest.mark.parametrize(("name", "expected"), [("xgb-newline", b"0.25\n0.75"), ("xgb-comma", b"0.25,0.75")])
def test_xgboost_csv_in_both_joinings(server, name, expected):
    body, content_type, _ = invoke(name)
    assert body == expected
    assert content_type.startswith("text/csv")


def test_xgboost_json_when_accepted(server):
    body, content_type, _ = invoke("xgb-newline", accept="application/json")
    assert json.loads(body) == {"predictions": [{"score": 0.25}, {"score": 0.75}]}
    assert content_type == "application/json"


def test_rcf_scores(server):
    body, _, _ = invoke("rcf", accept="application/json")
    assert json.loads(body) == {"scores": [{"score": 1.0}, {"score": 2.0}]}


def test_unknown_endpoint_is_a_validation_error_not_retried(server):
    with pytest.raises(ClientError) as caught:
        invoke("nope")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert server.calls == 1


def test_bad_csv_is_a_model_error(server):
    with pytest.raises(ClientError) as caught:
        client().invoke_endpoint(EndpointName="rcf", Body=b"1,a\n", ContentType="text/csv")
    assert caught.value.response["Error"]["Code"] == "ModelError"
    # the status botocore's service model gives ModelError (not retried: neither 4xx is)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert server.calls == 1


def test_injected_5xx_are_retried_by_botocore(server):
    # GIVEN two failures queued
    server.fail_next(2)

    # WHEN
    body, _, retries = invoke("xgb-comma")

    # THEN the third attempt succeeded
    assert body == b"0.25,0.75"
    assert retries == 2
    assert server.calls == 3


@pytest.mark.parametrize(("status", "code"), [(503, "ServiceUnavailable"), (429, "ThrottlingException")])
def test_persistent_errors_surface_after_bounded_retries(server, status, code):
    server.fail_next(10, status=status)
    with pytest.raises(ClientError) as caught:
        invoke("rcf", max_attempts=2)
    assert caught.value.response["Error"]["Code"] == code
    assert server.calls == 2


def test_hanging_calls_hit_the_client_read_timeout(server):
    server.set_faults(timeout_rate=1.0, hang_s=5)
    with pytest.raises(ReadTimeoutError):
        invoke("rcf", max_attempts=1, read_timeout=0.2)


def test_seeded_random_errors_are_reproducible(server):
    def outcomes():
        server.set_faults(error_rate=0.5, seed=7)
        results = []
        for _ in range(12):
            try:
                invoke("rcf", max_attempts=1)
                results.append("ok")
            except ClientError:
                results.append("error")
        return results

    first = outcomes()
    assert first == outcomes()
    assert {"ok", "error"} == set(first)


@pytest.fixture
def multi_server(monkeypatch):
    from emulators.sagemaker_runtime import multi_container_endpoint

    endpoints = {
        "models": multi_container_endpoint(
            {"fraud": xgboost_endpoint(first_column), "anomaly": rcf_endpoint(second_column)}
        ),
        "single": rcf_endpoint(second_column),
    }
    with SageMakerRuntimeServer(endpoints) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", running.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield running


def test_direct_invocation_routes_by_target_container_hostname(multi_server):
    fraud = client().invoke_endpoint(
        EndpointName="models", Body=ROWS, ContentType="text/csv", TargetContainerHostname="fraud"
    )
    anomaly = client().invoke_endpoint(
        EndpointName="models", Body=ROWS, ContentType="text/csv", TargetContainerHostname="anomaly"
    )
    assert fraud["Body"].read() == b"0.25\n0.75"
    assert json.loads(anomaly["Body"].read()) == {"scores": [{"score": 1.0}, {"score": 2.0}]}
    assert multi_server.payload_sizes == {"models/fraud": [len(ROWS)], "models/anomaly": [len(ROWS)]}


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [("models", None), ("models", "nope"), ("single", "fraud")],
    ids=["multi-without-target", "multi-unknown-target", "single-with-target"],
)
def test_a_target_that_does_not_fit_the_endpoint_is_a_validation_error(multi_server, endpoint, target):
    # The service's rules for direct invocation: a target is required on, and only on, such endpoints.
    extra = {"TargetContainerHostname": target} if target else {}
    with pytest.raises(ClientError) as caught:
        client().invoke_endpoint(EndpointName=endpoint, Body=ROWS, ContentType="text/csv", **extra)
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert multi_server.calls == 1  # not retried


def test_a_body_over_the_payload_limit_is_refused(multi_server):
    multi_server.max_payload_bytes = len(ROWS) - 1
    with pytest.raises(ClientError) as caught:
        client().invoke_endpoint(EndpointName="single", Body=ROWS, ContentType="text/csv")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert multi_server.payload_sizes == {}
