"""CloudWatch metrics (EMF via Powertools) for one processed batch, and Redis's used-memory share;
names per docs/architecture.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from contracts import metrics as names
from contracts.verdicts import Verdict

if TYPE_CHECKING:
    from fraud_scorer.batch import BatchResult


def publish(metrics: Metrics, result: BatchResult) -> None:
    """Add the batch's counts to `metrics` (flushed by `log_metrics`) and emit endpoint latencies."""
    metrics.add_metric(name=names.RECORDS_SCORED, unit=MetricUnit.Count, value=result.stored)
    metrics.add_metric(name=names.RECORDS_REJECTED, unit=MetricUnit.Count, value=result.rejected)
    metrics.add_metric(
        name=names.RECORDS_RETRIED, unit=MetricUnit.Count, value=len(result.failed_sequence_numbers)
    )
    metrics.add_metric(name=names.LABELS_APPLIED, unit=MetricUnit.Count, value=result.labels_applied)
    metrics.add_metric(name=names.DUPLICATE_ID_CONFLICTS, unit=MetricUnit.Count, value=result.conflicts)
    # Always published (0 when fine), so an alarm on it has data and sees the first mismatch.
    metrics.add_metric(name=names.FEATURE_SPEC_MISMATCH, unit=MetricUnit.Count, value=result.spec_mismatch)
    for verdict in Verdict:
        metrics.add_metric(
            name=names.verdict_metric(verdict),
            unit=MetricUnit.Count,
            value=result.verdicts[verdict.value],
        )
    # EndpointLatency carries its own `endpoint` dimension, so it cannot share the batch's metric set.
    for endpoint, latency_ms in result.endpoint_latency_ms.items():
        with single_metric(
            name=names.ENDPOINT_LATENCY,
            unit=MetricUnit.Milliseconds,
            value=latency_ms,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name=names.SERVICE_DIMENSION, value=metrics.service)
            metric.add_dimension(name=names.ENDPOINT_DIMENSION, value=endpoint)


def publish_redis_memory(metrics: Metrics, used_percent: float) -> None:
    """Redis's used-memory share (fraud_scorer/redis_memory.py) in the batch's metric set: same
    namespace and `service` dimension as the counts, which is what the memory alarm watches."""
    metrics.add_metric(name=names.REDIS_MEMORY_USED_PERCENT, unit=MetricUnit.Percent, value=used_percent)
