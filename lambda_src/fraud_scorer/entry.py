"""The scoring Lambda function (the container's CMD `handler.handler` re-exports it).

Kinesis batch in; each record scored by both SageMaker endpoints (one call per endpoint per batch)
and stored in Redis; returns the partial-batch response. The logic lives in `fraud_scorer/`.
Clients are created on the first invocation and reused, so importing this module stays cheap.
"""

from __future__ import annotations

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
    return _scorer


def reset_container_state() -> None:
    """Forget the per-container clients and cached secret (tests: each sees its own environment)."""
    global _scorer, _entry
    if _scorer is not None:
        _scorer.connector.close()
    _scorer = None
    _entry = None
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()


def _score_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from fraud_scorer import metrics as batch_metrics

    result = _container_scorer().process(event)
    batch_metrics.publish(metrics, result)
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
