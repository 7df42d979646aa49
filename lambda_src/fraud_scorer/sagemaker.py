"""Score a whole batch with one InvokeEndpoint call per model, both models concurrently.

Rows go out as one multi-row `text/csv` body; scores come back in row order, in either built-in
format (XGBoost CSV joined by newlines or commas, or JSON `predictions`; RCF JSON `scores`). Any
failure — the service after botocore's retries, a timeout, an unreadable answer or a wrong number of
scores — is a `ScoringUnavailable`: the caller retries the batch rather than guess an alignment.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from contracts import sagemaker_formats as formats
from contracts.sagemaker_formats import CSV, JSON

# Both endpoints are called at once for every batch; two workers are all a container ever needs.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="invoke-endpoint")


class ScoringUnavailable(Exception):
    """The batch could not be scored now; a later retry may succeed."""


@dataclass(frozen=True)
class BatchScores:
    fraud_probabilities: list[float]
    anomaly_scores: list[float]
    fraud_latency_ms: float
    anomaly_latency_ms: float


def make_runtime_client() -> Any:
    """boto3's sagemaker-runtime client with bounded, backed-off retries and timeouts.

    No endpoint_url: boto3 resolves it, so AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME keeps working.
    """
    import boto3  # heavy: imported on first use, not on cold start
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 3},  # the first call and two retries
        connect_timeout=2,
        read_timeout=10,
        max_pool_connections=4,
        tcp_keepalive=True,
    )
    return boto3.client("sagemaker-runtime", config=config)


def csv_body(lines: Sequence[str]) -> bytes:
    """One multi-row `text/csv` payload (features only, no header), as the built-in algorithms read."""
    return "\n".join(lines).encode()


def parse_xgboost(body: bytes, content_type: str) -> list[float]:
    return formats.parse_xgboost(body.decode("utf-8"), content_type)


def parse_rcf(body: bytes, content_type: str) -> list[float]:
    return formats.parse_rcf(body.decode("utf-8"))


@dataclass(frozen=True)
class PendingScores:
    fraud: Future
    anomaly: Future

    def result(self) -> BatchScores:
        """Both endpoints' scores, or ScoringUnavailable. Waits for both calls before raising either
        error: no call may outlive the invocation that made it."""
        wait((self.fraud, self.anomaly))
        fraud_scores, fraud_ms = self.fraud.result()
        anomaly_scores, anomaly_ms = self.anomaly.result()
        return BatchScores(fraud_scores, anomaly_scores, fraud_ms, anomaly_ms)


class BatchScorer:
    def __init__(self, *, client: Any, fraud_endpoint: str, anomaly_endpoint: str) -> None:
        self._client = client
        self._fraud_endpoint = fraud_endpoint
        self._anomaly_endpoint = anomaly_endpoint

    def start(self, lines: Sequence[str]) -> PendingScores:
        """Send the batch (one CSV line per row) to both endpoints at once; collect with `.result()`."""
        body = csv_body(lines)
        fraud = _POOL.submit(self._invoke, self._fraud_endpoint, body, CSV, parse_xgboost, len(lines))
        anomaly = _POOL.submit(self._invoke, self._anomaly_endpoint, body, JSON, parse_rcf, len(lines))
        return PendingScores(fraud, anomaly)

    def _invoke(
        self, endpoint: str, body: bytes, accept: str, parse, expected: int
    ) -> tuple[list[float], float]:
        from botocore.exceptions import BotoCoreError, ClientError

        started = time.perf_counter()
        try:
            response = self._client.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType=CSV, Accept=accept
            )
            payload = response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise ScoringUnavailable(f"endpoint {endpoint}: {_describe(exc)}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            scores = parse(payload, response.get("ContentType", ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise ScoringUnavailable(
                f"endpoint {endpoint}: unreadable response ({type(exc).__name__})"
            ) from exc
        if len(scores) != expected:
            raise ScoringUnavailable(f"endpoint {endpoint}: {len(scores)} scores for {expected} rows")
        if not all(map(math.isfinite, scores)):
            raise ScoringUnavailable(f"endpoint {endpoint}: non-finite score")
        return scores, elapsed_ms


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "error")
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        return f"{code} after {retries} retries"
    return type(exc).__name__
