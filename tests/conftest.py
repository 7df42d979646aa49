"""Fixtures shared by the whole suite: real servers, started once per session."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import redis

from emulators.kinesis_server import LocalKinesisServer
from emulators.lambda_context import LocalLambdaContext
from emulators.redis_stack import LIBSSL_DIR, RedisStackServer, free_port, server_paths


@pytest.fixture(scope="session")
def redis_stack():
    """A real Redis Stack server (JSON, TimeSeries, Search) on a free port for the session."""
    with RedisStackServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_url():
    """moto's server on a free port for the session: every AWS API it mocks (Kinesis, S3, Secrets
    Manager, CloudFormation…). Its state is per process, so tests name their resources uniquely."""
    with LocalKinesisServer() as server:
        yield server.endpoint_url


@pytest.fixture
def redis_url(redis_stack) -> str:
    """The session server's URL, with the database flushed before each test."""
    client = redis.Redis.from_url(redis_stack.url)
    client.flushall()
    client.close()
    return redis_stack.url


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


# --- The scoring Lambda's collaborators (tests/lambda, and anyone who fills Redis via the handler) ---

FRAUD_ENDPOINT = "fraud-xgboost"
ANOMALY_ENDPOINT = "anomaly-rcf"


def predictable_fraud_probability(rows):
    """Toy XGBoost: the fraud probability is feature V1 (index 1), clipped to 0..1."""
    return [min(1.0, max(0.0, row[1])) for row in rows]


def predictable_anomaly_score(rows):
    """Toy RCF: the anomaly score is feature V2 (index 2)."""
    return [row[2] for row in rows]


@pytest.fixture
def sagemaker_runtime(monkeypatch):
    """A started local SageMaker runtime with the two endpoints the scorer calls, reached through
    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME (plus dummy credentials and region). The models are
    predictable: fraud probability = V1 clipped to 0..1, anomaly score = V2 (see `make_transaction`)."""
    from emulators.sagemaker_runtime import SageMakerRuntimeServer, rcf_endpoint, xgboost_endpoint

    endpoints = {
        FRAUD_ENDPOINT: xgboost_endpoint(predictable_fraud_probability),
        ANOMALY_ENDPOINT: rcf_endpoint(predictable_anomaly_score),
    }
    with SageMakerRuntimeServer(endpoints) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield server


@pytest.fixture
def scorer_env(monkeypatch, redis_url, sagemaker_runtime):
    """Environment for `handler.handler` against the test Redis and the local SageMaker runtime,
    with the handler's per-container caches reset before and after the test. Thresholds: fraud 0.5,
    anomaly 3.0. Yields the environment it set."""
    import handler

    env = {
        "REDIS_URL": redis_url,
        "FRAUD_ENDPOINT_NAME": FRAUD_ENDPOINT,
        "ANOMALY_ENDPOINT_NAME": ANOMALY_ENDPOINT,
        "FRAUD_THRESHOLD": "0.5",
        "ANOMALY_THRESHOLD": "3.0",
        "POWERTOOLS_SERVICE_NAME": "fraud-scorer",
        "POWERTOOLS_METRICS_NAMESPACE": "FraudDetection",
    }
    monkeypatch.delenv("REDIS_SECRET_ARN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler.reset_container_state()
    yield env
    handler.reset_container_state()


@pytest.fixture
def make_transaction():
    """Factory for valid v1 events whose scores the `sagemaker_runtime` models make predictable:
    make_transaction("t1", fraud=0.9, anomaly=1.0, amount=12.5, timestamp=..., **extra fields)."""
    import time

    def make(
        transaction_id: str,
        *,
        fraud: float = 0.1,
        anomaly: float = 1.0,
        amount: float = 10.0,
        timestamp: int | str | None = None,
        card_id: str = "card-00001",
        **extra,
    ) -> dict:
        from producer.events import transaction_event  # THE event builder (one for everyone)

        features = [0.0] * 30
        features[1], features[2], features[29] = fraud, anomaly, amount
        return transaction_event(
            transaction_id=transaction_id,
            timestamp_ms=int(time.time() * 1000) if timestamp is None else timestamp,
            card_id=card_id,
            amount=amount,
            features=features,
            **extra,
        )

    return make


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="fraud-scorer")


@pytest.fixture
def redis_without_modules(tmp_path):
    """The Redis Stack binary started without --loadmodule: a plain Redis 7.4 (no JSON/Search/TS)."""
    port = free_port()
    env = dict(os.environ)
    if LIBSSL_DIR.is_dir():
        env["LD_LIBRARY_PATH"] = str(LIBSSL_DIR)
    server, _ = server_paths()
    process = subprocess.Popen(
        [str(server), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)
