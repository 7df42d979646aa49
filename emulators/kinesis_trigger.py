"""A local Kinesis event source mapping: what Lambda's Kinesis trigger does, on one machine.

It polls every shard of a stream with real GetShardIterator/GetRecords calls and invokes a handler
callable (`handler(event, context)`, e.g. `lambda_src/handler.handler`) with events built by
`emulators.kinesis_events.kinesis_event`, with the trigger's semantics:

- one worker per shard, one batch in flight per shard, records in sequence order;
- a batch is up to `batch_size` records (and at most Lambda's 6 MiB payload), sent when full or
  when the batching window since its first record has passed;
- `batchItemFailures`: the checkpoint advances only past the records before the lowest failed
  sequence number, and the retry starts from that record;
- an exception from the handler is a function error: with `bisect_on_error` the batch is split in
  two and each half retried (splitting does not count as a retry, as in Lambda); a single record, or
  bisect off, is retried as is;
- at most `maximum_retry_attempts` retries of a batch (with capped exponential backoff), and none
  once its oldest record is older than `maximum_record_age_s` (by its arrival time): then its
  metadata goes to the on-failure destination (like Lambda's SQS on-failure record) and the shard
  moves on;
- a per-shard checkpoint (last sequence number done), kept in memory and optionally in a JSON file
  written atomically, so a restarted trigger resumes after it;
- `stop()` finishes the invocation in flight and stops; anything not checkpointed is read again by
  the next run (at-least-once delivery, which is why the handler is idempotent).

Not modelled: resharding (shards are listed once at start), ParallelizationFactor, tumbling windows
and function timeouts. MaximumRecordAge is checked when a batch fails (Lambda also skips expired
records before invoking).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from emulators.kinesis_events import KinesisRecord, kinesis_event
from emulators.lambda_context import LocalLambdaContext

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
_EVENT_BYTES_PER_RECORD = 600  # the JSON around each record's base64 data, rounded up


@dataclass(frozen=True, kw_only=True)
class TriggerSettings:
    """The event source mapping's knobs, named after their Lambda counterparts."""

    batch_size: int = 100  # BatchSize
    batching_window_s: float = 0.0  # MaximumBatchingWindowInSeconds
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"  # StartingPosition
    bisect_on_error: bool = True  # BisectBatchOnFunctionError
    maximum_retry_attempts: int = 10  # MaximumRetryAttempts (bounded: -1 is not offered)
    maximum_record_age_s: float | None = None  # MaximumRecordAgeInSeconds (None: -1, no limit)
    report_batch_item_failures: bool = True  # FunctionResponseTypes=[ReportBatchItemFailures]
    poll_interval_s: float = 0.2  # wait after an empty GetRecords
    retry_base_s: float = 0.1  # backoff before retry n: base * 2**(n-1), capped, with jitter
    retry_max_s: float = 3.0
    get_records_limit: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be between 1 and 10000")
        if not 0 <= self.batching_window_s <= 300:
            raise ValueError("batching_window_s must be between 0 and 300")
        if not 0 <= self.maximum_retry_attempts <= 10_000:
            raise ValueError("maximum_retry_attempts must be between 0 and 10000")
        if self.starting_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError("starting_position must be TRIM_HORIZON or LATEST")


class ShardCheckpoints:
    """Last sequence number done per shard; in memory, and in a JSON file when `path` is given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._positions: dict[str, str] = {}
        if self.path and self.path.exists():
            self._positions = dict(json.loads(self.path.read_text()))

    def get(self, shard_id: str) -> str | None:
        with self._lock:
            return self._positions.get(shard_id)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._positions)

    def advance(self, shard_id: str, sequence_number: str) -> None:
        with self._lock:
            current = self._positions.get(shard_id)
            if current is not None and int(sequence_number) <= int(current):
                return
            self._positions[shard_id] = sequence_number
            if self.path:
                # Write-then-rename: a crash leaves the old checkpoint or the new one, never half.
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text(json.dumps(self._positions, indent=1, sort_keys=True))
                os.replace(tmp, self.path)


class OnFailureDestination:
    """Where batches go when retries are exhausted: a list, and a JSONL file when `path` is given.

    Each entry has the shape Lambda sends to an SQS/SNS on-failure destination for Kinesis: metadata
    (shard, first/last sequence number, arrival times, size), not the records themselves.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def send(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.records.append(entry)
            if self.path:
                with self.path.open("a") as out:
                    out.write(json.dumps(entry) + "\n")


@dataclass
class _Batch:
    records: list[KinesisRecord]
    retries: int = 0


class _ShardState:
    def __init__(self, shard_id: str) -> None:
        self.shard_id = shard_id
        self.iterator: str | None = None
        self.closed = False
        self.last_fetched: str | None = None
        self.buffer: deque[KinesisRecord] = deque()
        self.idle_polls = 0  # empty GetRecords with nothing buffered or pending: caught up


class _Outcome:
    """What one invocation said: success, a function error, or the lowest failed record's index."""

    def __init__(self, *, error: str | None = None, failed_from: int | None = None) -> None:
        self.error = error
        self.failed_from = failed_from

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed_from is None


class KinesisTrigger:
    """Polls every shard of `stream_name` and feeds `handler`; see the module docstring."""

    def __init__(
        self,
        *,
        kinesis_client,
        stream_name: str,
        handler: Handler,
        settings: TriggerSettings | None = None,
        checkpoints: ShardCheckpoints | None = None,
        on_failure: OnFailureDestination | None = None,
    ) -> None:
        self.client = kinesis_client
        self.stream_name = stream_name
        self.handler = handler
        self.settings = settings or TriggerSettings()
        self.checkpoints = checkpoints or ShardCheckpoints()
        self.on_failure = on_failure or OnFailureDestination()
        self.stream_arn = ""
        self.invocations = 0
        self.function_errors = 0
        self.failed_invocations = 0  # function errors plus partial failures: each one meant a retry
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._shards: dict[str, _ShardState] = {}
        self._progress = threading.Condition()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> KinesisTrigger:
        summary = self.client.describe_stream_summary(StreamName=self.stream_name)
        self.stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        shard_ids = [shard["ShardId"] for shard in self._list_shards()]
        for shard_id in shard_ids:
            state = _ShardState(shard_id)
            self._shards[shard_id] = state
            thread = threading.Thread(target=self._run_shard, args=(state,), name=f"trigger-{shard_id}")
            thread.daemon = True
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        with self._progress:
            self._progress.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def __enter__(self) -> KinesisTrigger:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def shard_ids(self) -> list[str]:
        return list(self._shards)

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait until every shard has polled empty after this call began: all earlier records done."""
        with self._progress:
            marks = {shard_id: state.idle_polls for shard_id, state in self._shards.items()}
            return self._progress.wait_for(
                lambda: (
                    all(
                        state.idle_polls > marks[shard_id] or state.closed
                        for shard_id, state in self._shards.items()
                    )
                    or self._stop.is_set()
                ),
                timeout=timeout_s,
            )

    # -- one shard -------------------------------------------------------------------------------
    def _list_shards(self) -> list[dict[str, Any]]:
        shards, token = [], None
        while True:
            page = (
                self.client.list_shards(NextToken=token)
                if token
                else self.client.list_shards(StreamName=self.stream_name)
            )
            shards += page["Shards"]
            token = page.get("NextToken")
            if not token:
                return shards

    def _run_shard(self, state: _ShardState) -> None:
        try:
            while not self._stop.is_set():
                records = self._next_batch(state)
                if records is None:
                    break
                if records:
                    self._process(state, records)
        except Exception:  # a bug here must not die silently in a daemon thread
            log.exception("trigger worker for %s stopped", state.shard_id)
            raise

    def _next_batch(self, state: _ShardState) -> list[KinesisRecord] | None:
        """Records for the next invocation; [] when stopping, None when the shard is closed and done."""
        settings = self.settings
        window_ends: float | None = None
        while not self._stop.is_set():
            if len(state.buffer) >= settings.batch_size:
                break
            if state.buffer:
                window_ends = window_ends or time.monotonic() + settings.batching_window_s
                if time.monotonic() >= window_ends:
                    break
            if state.closed:
                if state.buffer:
                    break
                return None
            fetched = self._fetch(state)
            if fetched == 0:
                if not state.buffer:
                    with self._progress:
                        state.idle_polls += 1
                        self._progress.notify_all()
                wait = settings.poll_interval_s
                if window_ends is not None:
                    wait = min(wait, max(0.0, window_ends - time.monotonic()))
                self._stop.wait(wait)
        return self._take(state)

    def _take(self, state: _ShardState) -> list[KinesisRecord]:
        batch, size = [], 0
        while state.buffer and len(batch) < self.settings.batch_size:
            record_size = len(state.buffer[0].data) * 4 // 3 + _EVENT_BYTES_PER_RECORD
            if batch and size + record_size > MAX_PAYLOAD_BYTES:
                break
            batch.append(state.buffer.popleft())
            size += record_size
        return batch

    def _fetch(self, state: _ShardState) -> int:
        """One GetRecords call into the shard's buffer; returns how many records came back."""
        try:
            if state.iterator is None:
                state.iterator = self._shard_iterator(state)
            response = self.client.get_records(
                ShardIterator=state.iterator, Limit=self.settings.get_records_limit
            )
        except (ClientError, BotoCoreError) as exc:
            # Expired iterator, or the API unreachable after botocore's own retries: start again
            # from the last record we hold, after a pause.
            log.warning("GetRecords on %s failed (%s); retrying", state.shard_id, exc)
            state.iterator = None
            self._stop.wait(self.settings.poll_interval_s)
            return 0
        records = [KinesisRecord.from_get_records(record) for record in response["Records"]]
        state.buffer.extend(records)
        if records:
            state.last_fetched = records[-1].sequence_number
        state.iterator = response.get("NextShardIterator")
        if state.iterator is None:
            state.closed = True
        return len(records)

    def _shard_iterator(self, state: _ShardState) -> str:
        after = state.last_fetched or self.checkpoints.get(state.shard_id)
        if after is not None:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        else:
            kwargs = {"ShardIteratorType": self.settings.starting_position}
        response = self.client.get_shard_iterator(
            StreamName=self.stream_name, ShardId=state.shard_id, **kwargs
        )
        return response["ShardIterator"]

    # -- invoking --------------------------------------------------------------------------------
    def _process(self, state: _ShardState, records: list[KinesisRecord]) -> None:
        """Deliver one batch: retry, bisect and give up exactly as the module docstring says."""
        work: deque[_Batch] = deque([_Batch(records)])
        while work and not self._stop.is_set():
            batch = work[0]
            outcome = self._invoke(state.shard_id, batch.records)
            if outcome.ok:
                work.popleft()
                self.checkpoints.advance(state.shard_id, batch.records[-1].sequence_number)
                continue
            self.failed_invocations += 1
            if outcome.failed_from is not None:
                done, batch.records = (
                    batch.records[: outcome.failed_from],
                    batch.records[outcome.failed_from :],
                )
                if done:
                    self.checkpoints.advance(state.shard_id, done[-1].sequence_number)
            elif self.settings.bisect_on_error and len(batch.records) > 1:
                half = len(batch.records) // 2
                work.popleft()
                work.appendleft(_Batch(batch.records[half:], batch.retries))
                work.appendleft(_Batch(batch.records[:half], batch.retries))
                continue
            batch.retries += 1
            if batch.retries > self.settings.maximum_retry_attempts or self._expired(batch):
                work.popleft()
                self._give_up(state.shard_id, batch, outcome)
                continue
            self._stop.wait(self._backoff(batch.retries))

    def _expired(self, batch: _Batch) -> bool:
        limit = self.settings.maximum_record_age_s
        return limit is not None and time.time() - batch.records[0].arrival_s > limit

    def _invoke(self, shard_id: str, records: list[KinesisRecord]) -> _Outcome:
        event = kinesis_event(records, stream_arn=self.stream_arn, shard_id=shard_id)
        self.invocations += 1
        try:
            response = self.handler(event, LocalLambdaContext())
        except Exception as exc:
            self.function_errors += 1
            log.warning("handler raised on %s (%d records): %r", shard_id, len(records), exc)
            return _Outcome(error=f"{type(exc).__name__}: {exc}")
        if not self.settings.report_batch_item_failures:
            return _Outcome()
        return _partial_outcome(response, records)

    def _give_up(self, shard_id: str, batch: _Batch, outcome: _Outcome) -> None:
        first, last = batch.records[0], batch.records[-1]
        self.on_failure.send(
            {
                "version": "1.0",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "functionArn": LocalLambdaContext().invoked_function_arn,
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": batch.retries,
                },
                "responseContext": {"functionError": outcome.error or "PartialBatchFailure"},
                "KinesisBatchInfo": {
                    "shardId": shard_id,
                    "startSequenceNumber": first.sequence_number,
                    "endSequenceNumber": last.sequence_number,
                    "approximateArrivalOfFirstRecord": first.arrival_s,
                    "approximateArrivalOfLastRecord": last.arrival_s,
                    "batchSize": len(batch.records),
                    "streamArn": self.stream_arn,
                },
            }
        )
        log.error(
            "gave up on %d records of %s (%s..%s) after %d retries",
            len(batch.records),
            shard_id,
            first.sequence_number,
            last.sequence_number,
            batch.retries - 1,
        )
        self.checkpoints.advance(shard_id, last.sequence_number)

    def _backoff(self, retry: int) -> float:
        capped = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** (retry - 1))
        return random.uniform(capped / 2, capped)


def _partial_outcome(response: Any, records: list[KinesisRecord]) -> _Outcome:
    """Read a ReportBatchItemFailures response as Lambda does.

    No response, or an empty list: success. Failures: retry from the lowest failed sequence number.
    A malformed response, or an identifier that is not in the batch, fails the whole batch.
    """
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return _Outcome()
    failures = response["batchItemFailures"]
    index_of = {record.sequence_number: i for i, record in enumerate(records)}
    indexes = []
    for failure in failures if isinstance(failures, list) else [None]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in index_of:
            return _Outcome(error=f"invalid batchItemFailures entry {failure!r}")
        indexes.append(index_of[identifier])
    return _Outcome(failed_from=min(indexes))
