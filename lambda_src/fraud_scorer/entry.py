"""The scoring Lambda function (the container's CMD `handler.handler` re-exports it).

Kinesis batch in; each record scored by both SageMaker endpoints (one call per endpoint per batch)
and stored in Redis; returns the partial-batch response. The logic lives in `fraud_scorer/`.
At most once a minute per container it also publishes Redis's used-memory share (redis_memory.py).
Clients are created on the first invocation and reused, so importing this module stays cheap.
"""

from __future__ import annotations

import gc
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts import metrics as metric_names
from contracts import scorer_env

SERVICE = os.environ.get(scorer_env.POWERTOOLS_SERVICE_NAME, metric_names.SERVICE)
logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get(scorer_env.POWERTOOLS_METRICS_NAMESPACE, metric_names.NAMESPACE), service=SERVICE
)


def _tracing_enabled() -> bool:
    """Powertools' own rule: trace inside Lambda unless POWERTOOLS_TRACE_DISABLED is set."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes", "on")
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not disabled


# Built on the first invocation (see _container_scorer); its modules import redis-py, so they are
# imported there too, keeping the module import itself light.
_scorer = None


def _container_scorer():
    """Environment parsed and clients built once per container."""
    global _scorer
    if _scorer is None:
        from fraud_scorer.batch import Scorer
        from fraud_scorer.config import Settings
        from fraud_scorer.redis_connection import RedisConnector
        from fraud_scorer.sagemaker import BatchScorer, make_runtime_client
        from fraud_scorer.store import TransactionStore

        settings = Settings.from_env()
        _scorer = Scorer(
            settings=settings,
            connector=RedisConnector(url=settings.redis_url, secret_arn=settings.redis_secret_arn),
            store=TransactionStore(
                retention_ms=settings.ts_retention_ms,
                txn_retention_ms=settings.txn_retention_ms,
                keep_payload=settings.rejected_keep_payload,
            ),
            batch_scorer=BatchScorer(
                client=make_runtime_client(),
                fraud_endpoint=settings.fraud_endpoint_name,
                anomaly_endpoint=settings.anomaly_endpoint_name,
            ),
        )
        # Everything built so far (botocore's service models, clients, modules) lives as long as the
        # container: out of the collector's sight, full collections stop walking it on every batch.
        gc.freeze()
    return _scorer


# Redis's used-memory share (fraud_scorer/redis_memory.py): one gauge per container, so its
# once-a-minute rate limit spans invocations.
_memory_gauge = None


def _container_memory_gauge():
    global _memory_gauge
    if _memory_gauge is None:
        from fraud_scorer.redis_memory import RedisMemoryGauge

        _memory_gauge = RedisMemoryGauge()
    return _memory_gauge


def reset_container_state() -> None:
    """Forget the per-container clients and cached secret (tests: each sees its own environment)."""
    global _scorer, _entry, _memory_gauge
    if _scorer is not None:
        _scorer.connector.close()
    _scorer = None
    _entry = None
    _memory_gauge = None
    from aws_lambda_powertools.utilities import parameters

    from fraud_scorer.redis_connection import reset_secrets_provider

    parameters.clear_caches()
    reset_secrets_provider()


def _score_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from fraud_scorer import metrics as batch_metrics

    scorer = _container_scorer()
    result = scorer.process(event)
    batch_metrics.publish(metrics, result)
    # After the batch (its writes count) and outside it: at most once a minute, and it never raises,
    # so it can neither fail nor retry the batch. Here rather than in batch.py: it is about Redis's
    # health, not about the records. Not after a batch Redis failed: INFO would only wait out the
    # same timeouts again, while the invocation's answer waits.
    if not result.redis_failed:
        _container_memory_gauge().publish_if_due(scorer.connector, metrics)
    return result.response()


_entry = None


def _traced_entry():
    """`_score_batch`, wrapped by the Powertools Tracer where tracing is on.

    Even a disabled Tracer imports the X-Ray SDK, which builds a botocore client (~0.3 s), so the
    Tracer is created on the first invocation rather than at import: before any client exists
    (so it patches them), and only where it traces.
    """
    global _entry
    if _entry is None:
        if _tracing_enabled():
            tracer = Tracer(service=SERVICE)
            _entry = tracer.capture_lambda_handler(_score_batch, capture_response=False)
        else:
            _entry = _score_batch
    return _entry


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_entry()(event, context)
