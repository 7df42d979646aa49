"""One Kinesis batch, end to end: decode all records, score the valid ones in one call per model,
store everything, and name the records that must be retried.

Why not Powertools' BatchProcessor: it calls a handler per record, which would mean one
InvokeEndpoint per record (the slowness we are replacing). We keep its contract instead: the exact
`{"batchItemFailures": [{"itemIdentifier": <sequence number>}]}` partial-batch response.

Failure rules (docs/architecture.md, *Partial failures*): invalid records are stored in `txn:rejected`
and acknowledged; a record is acknowledged only once what it produced is in Redis; whatever could not
be scored or stored for a transient reason is reported for retry.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from redis.exceptions import RedisError

from contracts import metrics as metric_names
from contracts import scorer_env
from contracts.verdicts import verdict_for
from fraud_scorer.config import Settings
from fraud_scorer.events import Rejection, Transaction, decode_record
from fraud_scorer.redis_connection import RedisConnector
from fraud_scorer.sagemaker import BatchScorer, ScoringUnavailable
from fraud_scorer.store import ScoredTransaction, TransactionStore

# Same service as the handler's logger, so records go through its handler and formatting.
logger = Logger(service=os.environ.get(scorer_env.POWERTOOLS_SERVICE_NAME, metric_names.SERVICE), child=True)


@dataclass
class BatchResult:
    records: int = 0
    failed_sequence_numbers: list[str] = field(default_factory=list)
    stored: int = 0
    already_stored: int = 0
    rejected: int = 0
    verdicts: Counter = field(default_factory=Counter)
    endpoint_latency_ms: dict[str, float] = field(default_factory=dict)

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in self.failed_sequence_numbers]}


@dataclass
class Scorer:
    """The per-container collaborators, built once and reused across invocations."""

    settings: Settings
    connector: RedisConnector
    store: TransactionStore
    batch_scorer: BatchScorer

    def process(self, event: dict[str, Any]) -> BatchResult:
        started = time.perf_counter()
        records = list(KinesisStreamEvent(event).records)
        decoded = [decode_record(record) for record in records]
        result = BatchResult(records=len(records))
        rejections = [item for item in decoded if isinstance(item, Rejection)]
        for rejection in rejections:
            logger.info(
                "record rejected",
                extra={"sequence_number": rejection.ref.sequence_number, "reason": rejection.reason.value},
            )

        # The first occurrence of an id is scored and written; later ones share its fate (the script
        # would find the document anyway, this just keeps them out of the endpoint call).
        first: dict[str, Transaction] = {}
        for item in decoded:
            if isinstance(item, Transaction):
                first.setdefault(item.transaction_id, item)
        unique = list(first.values())

        scored = self._score(unique, result)
        ok_ids, ok_rejections = self._write(scored, rejections, started, result)

        for item in decoded:
            if isinstance(item, Transaction):
                ok = item.transaction_id in ok_ids
            else:
                ok = item.ref.sequence_number in ok_rejections
            if not ok:
                result.failed_sequence_numbers.append(item.ref.sequence_number)
        logger.info(
            "batch processed",
            extra={
                "records": result.records,
                "stored": result.stored,
                "already_stored": result.already_stored,
                "rejected": len(rejections),
                "retry": len(result.failed_sequence_numbers),
            },
        )
        return result

    def _score(self, unique: list[Transaction], result: BatchResult) -> list[ScoredTransaction]:
        """Scores for every unique transaction, or none at all (then they all wait for a retry)."""
        if not unique:
            return []
        pending = self.batch_scorer.start([txn.features_text for txn in unique])
        for txn in unique:
            txn.features_text  # noqa: B018 - formatted (and cached) for the documents while the endpoints work
        try:
            scores = pending.result()
        except ScoringUnavailable as exc:
            logger.warning("scoring unavailable, batch to be retried", extra={"error": str(exc)})
            return []
        result.endpoint_latency_ms = {"fraud": scores.fraud_latency_ms, "anomaly": scores.anomaly_latency_ms}
        scored_at_ms = int(time.time() * 1000)
        settings = self.settings
        return [
            ScoredTransaction(
                transaction=txn,
                fraud_probability=fraud,
                anomaly_score=anomaly,
                verdict=verdict_for(
                    fraud,
                    anomaly,
                    fraud_threshold=settings.fraud_threshold,
                    anomaly_threshold=settings.anomaly_threshold,
                ).value,
                scored_at_ms=scored_at_ms,
            )
            for txn, fraud, anomaly in zip(
                unique, scores.fraud_probabilities, scores.anomaly_scores, strict=True
            )
        ]

    def _write(
        self,
        scored: list[ScoredTransaction],
        rejections: list[Rejection],
        started: float,
        result: BatchResult,
    ) -> tuple[set[str], set[str]]:
        """Ids of transactions and sequence numbers of rejections that are now safely in Redis."""
        if not scored and not rejections:
            return set(), set()
        processing_ms = (time.perf_counter() - started) * 1000
        rejected_at_ms = int(time.time() * 1000)
        try:
            outcome = self.connector.run(
                lambda client: self.store.write(
                    client, scored, rejections, processing_ms=processing_ms, rejected_at_ms=rejected_at_ms
                )
            )
        except RedisError as exc:
            logger.warning("redis unavailable, batch to be retried", extra={"error": type(exc).__name__})
            return set(), set()
        ok_ids: set[str] = set()
        for item, written in zip(scored, outcome.transactions, strict=True):
            if isinstance(written, Exception):
                logger.warning(
                    "transaction not stored",
                    extra={"transaction_id": item.transaction.transaction_id, "error": str(written)},
                )
                continue
            ok_ids.add(item.transaction.transaction_id)
            if written:
                result.stored += 1
                result.verdicts[item.verdict] += 1
            else:
                result.already_stored += 1
        ok_rejections = set()
        for rejection, written in zip(rejections, outcome.rejections, strict=True):
            if isinstance(written, Exception):
                continue
            ok_rejections.add(rejection.ref.sequence_number)
            result.rejected += int(written)
        if outcome.samples_dropped:
            logger.info(
                "time-series samples refused (e.g. older than retention)",
                extra={"count": outcome.samples_dropped},
            )
        return ok_ids, ok_rejections
