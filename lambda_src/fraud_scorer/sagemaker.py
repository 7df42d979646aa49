"""Score a whole batch: per model, as few InvokeEndpoint calls as the payload limit allows, all concurrent.

Rows go out as multi-row `text/csv` bodies, cut into consecutive chunks that each stay under
`MAX_REQUEST_BYTES` (the serverless 4 MB limit, below the real-time 6 MiB one), so every batch size
the event source mapping allows (up to 10,000 records) can be scored; chunks of both models run at
once and their scores are joined back in row order, in either built-in format (XGBoost CSV joined by
newlines or commas, or JSON `predictions`; RCF JSON `scores`). Any failure of any chunk — the service
after botocore's retries, a timeout, an unreadable answer or a wrong number of scores — is a
`ScoringUnavailable` for the whole batch: the caller retries the batch rather than guess an alignment.

When both models are served by the same endpoint name, that endpoint is a multi-container endpoint
with direct invocation (the default deployment: both models on one instance) and every call names its
container with TargetContainerHostname (`contracts.sagemaker_formats.*_CONTAINER_HOSTNAME`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from contracts import sagemaker_formats as formats
from contracts.sagemaker_formats import (
    ANOMALY_CONTAINER_HOSTNAME,
    CSV,
    FRAUD_CONTAINER_HOSTNAME,
    JSON,
    MAX_REQUEST_BYTES,
)

# Calls in flight at once: both models' chunks. A 10,000-row batch of 30 creditcard numbers is ~6 MB,
# two chunks per model; 8 leaves room for wider rows without queueing.
MAX_CONCURRENT_CALLS = 8
_POOL = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_CALLS, thread_name_prefix="invoke-endpoint")


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
        max_pool_connections=MAX_CONCURRENT_CALLS,
        tcp_keepalive=True,
    )
    return boto3.client("sagemaker-runtime", config=config)


def csv_body(lines: Sequence[str]) -> bytes:
    """One multi-row `text/csv` payload (features only, no header), as the built-in algorithms read."""
    return "\n".join(lines).encode()


def csv_chunks(lines: Sequence[str], max_bytes: int = MAX_REQUEST_BYTES) -> list[tuple[int, bytes]]:
    """Consecutive `text/csv` bodies of at most `max_bytes`, each with the row count it holds.

    Greedy in row order, so joining the chunks' scores in chunk order gives the rows' order. A single
    row longer than the limit can never be sent: ValueError (a feature vector is a few hundred bytes).
    """
    chunks: list[tuple[int, bytes]] = []
    start, size = 0, 0
    for index, line in enumerate(lines):
        length = len(line.encode())
        if length > max_bytes:
            raise ValueError(f"row {index} is {length} bytes, more than an InvokeEndpoint body may hold")
        separator = 1 if index > start else 0
        if size + separator + length > max_bytes:
            chunks.append((index - start, csv_body(lines[start:index])))
            start, size, separator = index, 0, 0
        size += separator + length
    if start < len(lines):
        chunks.append((len(lines) - start, csv_body(lines[start:])))
    return chunks


def parse_xgboost(body: bytes, content_type: str) -> list[float]:
    return formats.parse_xgboost(body.decode("utf-8"), content_type)


def parse_rcf(body: bytes, content_type: str) -> list[float]:
    return formats.parse_rcf(body.decode("utf-8"))


@dataclass(frozen=True)
class PendingScores:
    fraud: list[Future]  # one per chunk, in row order
    anomaly: list[Future]

    def result(self) -> BatchScores:
        """Both models' scores in row order, or ScoringUnavailable. Waits for every call before raising
        any error: no call may outlive the invocation that made it. A model's latency is its slowest
        chunk (they run concurrently)."""
        wait((*self.fraud, *self.anomaly))
        fraud_scores, fraud_ms = _joined(self.fraud)
        anomaly_scores, anomaly_ms = _joined(self.anomaly)
        return BatchScores(fraud_scores, anomaly_scores, fraud_ms, anomaly_ms)


def _joined(futures: list[Future]) -> tuple[list[float], float]:
    scores: list[float] = []
    slowest = 0.0
    for future in futures:
        chunk_scores, elapsed_ms = future.result()
        scores.extend(chunk_scores)
        slowest = max(slowest, elapsed_ms)
    return scores, slowest


class BatchScorer:
    def __init__(
        self,
        *,
        client: Any,
        fraud_endpoint: str,
        anomaly_endpoint: str,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self._client = client
        self._fraud_endpoint = fraud_endpoint
        self._anomaly_endpoint = anomaly_endpoint
        self._max_request_bytes = max_request_bytes
        # One endpoint name for both models = the multi-container endpoint (direct invocation).
        shared = fraud_endpoint == anomaly_endpoint
        self._fraud_container = FRAUD_CONTAINER_HOSTNAME if shared else None
        self._anomaly_container = ANOMALY_CONTAINER_HOSTNAME if shared else None

    def start(self, lines: Sequence[str]) -> PendingScores:
        """Send the batch (one CSV line per row) to both models at once; collect with `.result()`."""
        chunks = csv_chunks(lines, self._max_request_bytes)
        fraud = [
            _POOL.submit(
                self._invoke, self._fraud_endpoint, self._fraud_container, body, CSV, parse_xgboost, rows
            )
            for rows, body in chunks
        ]
        anomaly = [
            _POOL.submit(
                self._invoke, self._anomaly_endpoint, self._anomaly_container, body, JSON, parse_rcf, rows
            )
            for rows, body in chunks
        ]
        return PendingScores(fraud, anomaly)

    def _invoke(
        self, endpoint: str, container: str | None, body: bytes, accept: str, parse, expected: int
    ) -> tuple[list[float], float]:
        from botocore.exceptions import BotoCoreError, ClientError

        target = {"TargetContainerHostname": container} if container else {}
        started = time.perf_counter()
        try:
            response = self._client.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType=CSV, Accept=accept, **target
            )
            payload = response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise ScoringUnavailable(f"endpoint {_name(endpoint, container)}: {_describe(exc)}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        endpoint = _name(endpoint, container)  # the messages below name the container too
        try:
            scores = parse(payload, response.get("ContentType", ""))
        except (ValueError, KeyError, TypeError, ArithmeticError, RecursionError) as exc:
            # e.g. an integer score too large for a float, a body nested too deeply to parse
            raise ScoringUnavailable(
                f"endpoint {endpoint}: unreadable response ({type(exc).__name__})"
            ) from exc
        if len(scores) != expected:
            raise ScoringUnavailable(f"endpoint {endpoint}: {len(scores)} scores for {expected} rows")
        if not all(map(math.isfinite, scores)):
            raise ScoringUnavailable(f"endpoint {endpoint}: non-finite score")
        return scores, elapsed_ms


def _name(endpoint: str, container: str | None) -> str:
    return f"{endpoint} ({container})" if container else endpoint


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "error")
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        return f"{code} after {retries} retries"
    return type(exc).__name__
