"""One Kinesis batch, end to end: decode all records; read the stored documents and the cards' and
terminals' state; compute each new transaction's features in stream order; score them in one call
per model; store documents, entity state, label effects and samples; name the records to retry.

Why not Powertools' BatchProcessor: it calls a handler per record, which would mean one
InvokeEndpoint per record (the slowness we are replacing). We keep its contract instead: the exact
`{"batchItemFailures": [{"itemIdentifier": <sequence number>}]}` partial-batch response.

Failure rules (docs/architecture.md, *Partial failures*): invalid records, conflicting ids and labels
for unknown transactions are kept in the rejected stream and acknowledged; a record is acknowledged
only once what it produced (document, entity state, label effect) is in Redis; whatever could not be
scored or stored for a transient reason is reported for retry, and every write is idempotent, so the
retry completes what the first attempt left half done.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from redis.exceptions import RedisError

from contracts import metrics as metric_names
from contracts import scorer_env
from contracts.events import MAX_CLOCK_SKEW_MS, RejectReason
from contracts.features import SPEC_VERSION
from contracts.sagemaker_formats import CREDITCARD_FEATURE_SPEC_VERSION
from contracts.verdicts import verdict_for
from fraud_scorer import feature_store
from fraud_scorer.config import Settings
from fraud_scorer.events import LabelEvent, Rejection, TimeBounds, Transaction, decode_record
from fraud_scorer.redis_connection import RedisConnector
from fraud_scorer.sagemaker import BatchScorer, ScoringUnavailable
from fraud_scorer.store import (
    ALREADY_STORED,
    STORED,
    LabelTarget,
    ReadResult,
    ScoredTransaction,
    TransactionStore,
)

# Same service as the handler's logger, so records go through its handler and formatting.
logger = Logger(service=os.environ.get(scorer_env.POWERTOOLS_SERVICE_NAME, metric_names.SERVICE), child=True)


@dataclass
class BatchResult:
    records: int = 0
    failed_sequence_numbers: list[str] = field(default_factory=list)
    stored: int = 0
    already_stored: int = 0
    rejected: int = 0
    conflicts: int = 0
    labels_applied: int = 0
    spec_mismatch: int = 0
    # Redis round-trip times of the feature store's read (documents' hashes + entity windows) and of
    # the effects write (entity state, labels, samples): the feature store's cost per batch.
    read_ms: float = 0.0
    effects_ms: float = 0.0
    verdicts: Counter = field(default_factory=Counter)
    endpoint_latency_ms: dict[str, float] = field(default_factory=dict)
    redis_failed: bool = False  # a round trip failed: Redis is down, slow or refusing

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in self.failed_sequence_numbers]}


def state_event(txn: Transaction) -> feature_store.StateEvent:
    return feature_store.StateEvent(
        txn.transaction_id, txn.timestamp_ms, txn.card_id, txn.terminal_id or "", txn.amount
    )


@dataclass
class _Plan:
    """What one batch does, decided in stream order before anything is written."""

    firsts: dict[str, Transaction] = field(default_factory=dict)  # id -> first occurrence, not conflicting
    follows: dict[str, str] = field(default_factory=dict)  # sequence number -> id whose fate it shares
    conflicts: list[Rejection] = field(default_factory=list)  # an id reused with other content
    to_score: list[Transaction] = field(default_factory=list)  # new: score and store
    vectors: dict[str, tuple] = field(default_factory=dict)  # id -> behavioural vector
    replayed: set[str] = field(default_factory=set)  # stored before with the same content
    labels: list[tuple[LabelEvent, LabelTarget]] = field(default_factory=list)  # to write
    unknown_labels: list[Rejection] = field(default_factory=list)
    # id -> the latest report (reported at, label): its document's, then this batch's as they apply
    reports: dict[str, tuple[int, int]] = field(default_factory=dict)
    new_reports: set[str] = field(default_factory=set)  # sequence numbers of labels that change a report
    superseded: list[LabelEvent] = field(default_factory=list)  # older than a report already applied
    held: frozenset[str] = frozenset()  # transaction ids refused by the skew guard: their labels wait


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
        now_ms = int(time.time() * 1000)
        bounds = TimeBounds(now_ms - self.settings.ts_retention_ms, now_ms + MAX_CLOCK_SKEW_MS)
        decoded = [decode_record(record, bounds) for record in records]
        result = BatchResult(records=len(records))
        rejections = [item for item in decoded if isinstance(item, Rejection)]
        for rejection in rejections:
            logger.info(
                "record rejected",
                extra={"sequence_number": rejection.ref.sequence_number, "reason": rejection.reason.value},
            )
        refused = self._spec_mismatch(decoded, result)
        if refused:
            decoded_ok = [item for item in decoded if item.ref.sequence_number not in refused]
            held = frozenset(
                item.transaction_id
                for item in decoded
                if isinstance(item, Transaction) and item.ref.sequence_number in refused
            )
            ok = self._process(decoded_ok, rejections, started, result, held)
        else:
            ok = self._process(decoded, rejections, started, result)
        result.failed_sequence_numbers = [
            item.ref.sequence_number for item in decoded if item.ref.sequence_number not in ok
        ]
        logger.info(
            "batch processed",
            extra={
                "records": result.records,
                "stored": result.stored,
                "already_stored": result.already_stored,
                "rejected": len(rejections),
                "conflicts": result.conflicts,
                "labels_applied": result.labels_applied,
                "retry": len(result.failed_sequence_numbers),
                "redis_read_ms": round(result.read_ms, 3),
                "redis_effects_ms": round(result.effects_ms, 3),
            },
        )
        return result

    def _spec_mismatch(self, decoded: list, result: BatchResult) -> set[str]:
        """The skew guard: the sequence numbers of records the deployed models cannot score correctly.

        FEATURE_SPEC_VERSION names what the models were trained on: this scorer's feature spec
        (`SPEC_VERSION`, behavioural transactions), or the creditcard profile's 30 columns. A transaction
        of the other kind — or every record, for a version this scorer does not know — is refused:
        returned for retry, counted (FeatureSpecMismatch, for an alarm), logged as an error. Never
        scored with the wrong inputs.
        """
        expected = self.settings.feature_spec_version
        if expected is None:
            return set()
        known = expected in (SPEC_VERSION, CREDITCARD_FEATURE_SPEC_VERSION)
        refused = set()
        for item in decoded:
            if isinstance(item, Rejection):
                continue
            if isinstance(item, Transaction):
                wanted = SPEC_VERSION if item.behavioural else CREDITCARD_FEATURE_SPEC_VERSION
                if expected != wanted:
                    refused.add(item.ref.sequence_number)
            elif not known:
                refused.add(item.ref.sequence_number)
        if refused:
            result.spec_mismatch = len(refused)
            logger.error(
                "feature spec mismatch: the models were trained on other inputs than these records "
                "carry; they are not scored and are retried until the scorer and the models agree",
                extra={
                    "models_spec_version": expected,
                    "scorer_spec_version": SPEC_VERSION,
                    "records_refused": len(refused),
                },
            )
        return refused

    def _process(
        self,
        decoded: list,
        rejections: list[Rejection],
        started: float,
        result: BatchResult,
        held: frozenset[str] = frozenset(),
    ) -> set[str]:
        transactions: dict[str, Transaction] = {}
        for item in decoded:
            if isinstance(item, Transaction):
                transactions.setdefault(item.transaction_id, item)
        label_ids = sorted({item.transaction_id for item in decoded if isinstance(item, LabelEvent)})
        # One StateEvent per transaction id (its first occurrence), shared by the read, the plan and
        # the write: building it three times was a visible part of the per-record cost.
        events = {txn_id: state_event(t) for txn_id, t in transactions.items() if t.behavioural}

        # Round trip 1: stored documents' content hashes, labelled documents, the entities' windows.
        clock = time.perf_counter()
        try:
            read = self.connector.run(
                lambda client: self.store.read(client, list(transactions), label_ids, list(events.values()))
            )
        except RedisError as exc:
            logger.warning("redis unavailable, batch to be retried", extra={"error": type(exc).__name__})
            result.redis_failed = True
            return set()
        result.read_ms = (time.perf_counter() - clock) * 1000
        if read.unreadable:
            logger.warning(
                "documents Redis refused to read (e.g. a key of another type in the way): their "
                "records are retried, the rest of the batch goes on",
                extra={"transaction_ids": sorted(read.unreadable)[:10], "count": len(read.unreadable)},
            )
        plan = self._plan(decoded, read, events, held)
        scored = self._score(plan, result)
        # The state write depends only on which transactions get stored: all of them unless a
        # document write fails. Build it for that case while Redis stores the documents (the
        # client would only wait); round trip 3 sends it if it still applies.
        expected_state = [events[txn_id] for txn_id, t in plan.firsts.items() if t.behavioural]
        prepared: dict[str, feature_store.PreparedStateWrite] = {}

        def prepare_state_write() -> None:
            prepared["write"] = feature_store.prepare_state_writes(expected_state)

        # Round trip 2: documents (the NX gate) and everything kept aside.
        kept_aside = rejections + plan.conflicts + plan.unknown_labels
        try:
            outcome = self.connector.run(
                lambda client: self.store.write_documents(
                    client,
                    scored,
                    kept_aside,
                    processing_ms=(time.perf_counter() - started) * 1000,
                    rejected_at_ms=int(time.time() * 1000),
                    while_waiting=prepare_state_write if expected_state else None,
                )
            )
        except RedisError as exc:
            logger.warning("redis unavailable, batch to be retried", extra={"error": type(exc).__name__})
            result.redis_failed = True
            return set()
        ok = self._count_kept_aside(kept_aside, outcome.rejections, result)

        present: set[str] = set(plan.replayed)  # in Redis now with this content
        stored: list[ScoredTransaction] = []
        for item, written in zip(scored, outcome.transactions, strict=True):
            txn_id = item.transaction.transaction_id
            if isinstance(written, Exception):
                logger.warning(
                    "transaction not stored", extra={"transaction_id": txn_id, "error": str(written)}
                )
            elif written == STORED:
                present.add(txn_id)
                stored.append(item)
            elif written == ALREADY_STORED:
                present.add(txn_id)
            else:  # stored meanwhile (another shard) with other content: the retry keeps it aside
                logger.warning("transaction id reused with other content", extra={"transaction_id": txn_id})
        state_events = [
            events[t.transaction_id]
            for t in plan.firsts.values()
            if t.behavioural and t.transaction_id in present
        ]
        # A label whose transaction is in this batch waits for it to be stored.
        labels = [
            (label, target)
            for label, target in plan.labels
            if label.transaction_id not in plan.firsts or label.transaction_id in present
        ]

        # Round trip 3: entity state, label effects, latency samples — only for what is stored.
        clock = time.perf_counter()
        try:
            self.connector.run(
                lambda client: self.store.write_effects(
                    client,
                    state_events,
                    [
                        (label.transaction_id, label.label, target, label.reported_at_ms)
                        for label, target in labels
                    ],
                    stored,
                    sorted(present - {item.transaction.transaction_id for item in stored}),
                    prepared.get("write"),
                )
            )
        except RedisError as exc:
            # Documents are stored; the retry finds them (same content) and re-applies the state.
            logger.warning("state not updated, records to be retried", extra={"error": type(exc).__name__})
            result.redis_failed = True
            return ok
        result.effects_ms = (time.perf_counter() - clock) * 1000
        dropped = outcome.samples_refused
        if dropped:
            logger.info("time-series samples refused (e.g. older than retention)", extra={"count": dropped})
        result.stored += len(stored)
        for item in stored:
            result.verdicts[item.verdict] += 1
        result.already_stored += len(present) - len(stored)
        result.labels_applied += sum(label.ref.sequence_number in plan.new_reports for label, _ in labels)
        ok.update(seq for seq, txn_id in plan.follows.items() if txn_id in present)
        ok.update(label.ref.sequence_number for label, _ in labels)
        # A report older than one already applied (a replay, a re-send) has nothing to store.
        ok.update(label.ref.sequence_number for label in plan.superseded)
        return ok

    def _plan(
        self,
        decoded: list,
        read: ReadResult,
        events: dict[str, feature_store.StateEvent] | None = None,
        held: frozenset[str] = frozenset(),
    ) -> _Plan:
        """Walk the batch in stream order: conflicts, replays, new transactions (each vector from the
        state as it stood just before the transaction), and the labels' targets. `events`: the
        StateEvent of each id's first occurrence, when the caller built them already. `held`: ids of
        transactions the skew guard refused (retried: their labels wait with them)."""
        plan = _Plan(held=held)
        events = events or {}
        state = read.state
        conflicting: set[str] = set()  # ids whose first occurrence here conflicts with the stored one
        for item in decoded:
            if isinstance(item, LabelEvent):
                self._plan_label(item, read, plan)
                continue
            if not isinstance(item, Transaction):
                continue
            txn_id, seq = item.transaction_id, item.ref.sequence_number
            first = plan.firsts.get(txn_id)
            if first is not None or txn_id in conflicting:
                # A duplicate in this batch: same content shares the first one's fate.
                if first is not None and first.content_hash == item.content_hash:
                    plan.follows[seq] = txn_id
                else:
                    plan.conflicts.append(_conflict(item))
                continue
            stored_hash = read.existing.get(txn_id)
            if stored_hash not in (None, "", item.content_hash):
                conflicting.add(txn_id)
                plan.conflicts.append(_conflict(item))
                continue
            plan.firsts[txn_id] = item
            plan.follows[seq] = txn_id
            if stored_hash is None:
                plan.to_score.append(item)
            else:
                plan.replayed.add(txn_id)
            if item.behavioural:
                event = events.get(txn_id) or state_event(item)  # item is the id's first occurrence
                if stored_hash is None:
                    plan.vectors[txn_id] = tuple(state.vector(event))
                state.add(event)
        return plan

    @staticmethod
    def _plan_label(label: LabelEvent, read: ReadResult, plan: _Plan) -> None:
        txn_id = label.transaction_id
        txn = plan.firsts.get(txn_id)
        if txn is None and (txn_id in read.unreadable or txn_id in plan.held):
            # Its document could not be read, or its transaction was refused by the skew guard:
            # neither applied nor kept aside, retried.
            return
        stored = read.label_targets.get(txn_id)
        target = LabelTarget(txn.terminal_id, txn.timestamp_ms) if txn else stored
        if target is None:
            plan.unknown_labels.append(
                Rejection(
                    ref=label.ref,
                    reason=RejectReason.UNKNOWN_TRANSACTION,
                    detail="label for a transaction Redis does not hold (never stored, or expired)",
                    raw=label.raw,
                )
            )
            return
        # The report with the latest time wins (ties: the later in stream order), whatever order
        # reports arrive in: a replayed or re-sent older one must not undo a correction.
        known = plan.reports.get(txn_id)
        if known is None and stored is not None and stored.reported_at_ms is not None:
            known = (stored.reported_at_ms, stored.label if stored.label is not None else -1)
        report = (label.reported_at_ms, label.label)
        if known is not None and report[0] < known[0]:
            plan.superseded.append(label)
            return
        if report != known:
            plan.new_reports.add(label.ref.sequence_number)
        plan.reports[txn_id] = report
        # Written even when it repeats the document's report: a retry after a partly failed write
        # must still reach the terminal's marks (writing a report twice changes nothing).
        plan.labels.append((label, target))
        terminal = read.state.terminals.get(target.terminal_id or "")
        if terminal is not None:
            # Later transactions of this batch at that terminal see the report, as a retry would.
            terminal.apply_label(label.transaction_id, label.label, label.reported_at_ms, target.timestamp_ms)

    def _score(self, plan: _Plan, result: BatchResult) -> list[ScoredTransaction]:
        """Scores for every new transaction, or none at all (then they all wait for a retry). One call
        per endpoint for the batch's profile (a batch mixing both profiles makes one per profile)."""
        if not plan.to_score:
            return []
        groups = [
            [txn for txn in plan.to_score if txn.behavioural],
            [txn for txn in plan.to_score if not txn.behavioural],
        ]
        pending = []
        for group in groups:
            if group:
                if group[0].behavioural:
                    lines = [_csv_line(plan.vectors[txn.transaction_id]) for txn in group]
                else:
                    lines = [txn.features_text for txn in group]
                pending.append((group, self.batch_scorer.start(lines)))
        try:
            answers = [(group, waiting.result()) for group, waiting in pending]
        except ScoringUnavailable as exc:
            logger.warning("scoring unavailable, batch to be retried", extra={"error": str(exc)})
            return []
        scored_at_ms = int(time.time() * 1000)
        settings = self.settings
        out: list[ScoredTransaction] = []
        for group, scores in answers:
            result.endpoint_latency_ms = {
                "fraud": scores.fraud_latency_ms,
                "anomaly": scores.anomaly_latency_ms,
            }
            for txn, fraud, anomaly in zip(
                group, scores.fraud_probabilities, scores.anomaly_scores, strict=True
            ):
                verdict = verdict_for(
                    fraud,
                    anomaly,
                    fraud_threshold=settings.fraud_threshold,
                    anomaly_threshold=settings.anomaly_threshold,
                )
                out.append(
                    ScoredTransaction(
                        transaction=txn,
                        fraud_probability=fraud,
                        anomaly_score=anomaly,
                        verdict=verdict.value,
                        scored_at_ms=scored_at_ms,
                        vector=plan.vectors.get(txn.transaction_id),
                    )
                )
        return out

    @staticmethod
    def _count_kept_aside(kept_aside: list[Rejection], written: list, result: BatchResult) -> set[str]:
        ok = set()
        for rejection, outcome in zip(kept_aside, written, strict=True):
            if isinstance(outcome, Exception):
                continue
            ok.add(rejection.ref.sequence_number)
            if rejection.reason == RejectReason.DUPLICATE_ID_CONFLICT:
                result.conflicts += int(outcome)
            else:
                result.rejected += int(outcome)
        return ok


def _csv_line(vector: tuple) -> str:
    """One `text/csv` row: shortest round-trip numbers, ints as ints (formatted by orjson)."""
    return orjson.dumps(vector)[1:-1].decode()


def _conflict(txn: Transaction) -> Rejection:
    return Rejection(
        ref=txn.ref,
        reason=RejectReason.DUPLICATE_ID_CONFLICT,
        detail="transaction id already used by a transaction with other content; the first one stays",
        raw=txn.raw,
    )
