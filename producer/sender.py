"""PutRecords batches, and the retry loop for entries Kinesis turns away.

botocore retries a *call* that fails (connection errors, 5xx, a throttled call) with its own capped
backoff (standard retry mode, see `producer.aws`). It cannot retry the entries of a call that
succeeded with `FailedRecordCount > 0`; that is this module's job. Throttling is never fatal here:
a record is retried until Kinesis accepts it, with capped exponential backoff and jitter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from producer.errors import ProducerError

# PutRecords limits: 500 records and 5 MiB per call, counting data and partition keys.
MAX_RECORDS = 500
MAX_BYTES = 5 * 1024 * 1024

# Whole-call errors that mean "slow down": retried for as long as it takes.
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException"}
    | {"KMSThrottlingException", "RequestLimitExceeded"}
)
# Whole-call errors that may pass: retried, but a run gives up after `give_up_after` in a row.
TRANSIENT_CODES = frozenset({"InternalFailure", "InternalServerError", "ServiceUnavailable"})


@dataclass(frozen=True)
class Entry:
    ticket: int  # the read position's ticket (producer.checkpoint.Watermark)
    partition_key: str
    data: bytes
    report: int | None = None  # a label event's report id (producer.labels.LabelSchedule)

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


@dataclass
class Batch:
    """One PutRecords call's entries.

    `one_per_key`: at most one entry per partition key. Kinesis keeps a key's records in the order
    it *accepts* them, and a call can accept a card's later entry while refusing its earlier one
    (throttling): the retry would then land after it. With one entry per key per call, and each call
    retried until all of it is accepted before the next is sent, every card's events reach the
    stream in the order they were read - which the online features depend on (a card's transactions
    in event order, a fraud report after its transaction)."""

    entries: list[Entry] = field(default_factory=list)
    size: int = 0
    one_per_key: bool = False
    keys: set[str] = field(default_factory=set)

    def fits(self, entry: Entry) -> bool:
        if self.one_per_key and entry.partition_key in self.keys:
            return False
        return len(self.entries) < MAX_RECORDS and self.size + entry.size <= MAX_BYTES

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.size += entry.size
        if self.one_per_key:
            self.keys.add(entry.partition_key)

    @property
    def full(self) -> bool:
        return len(self.entries) >= MAX_RECORDS

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with "equal jitter": half the delay is fixed so the wait grows
    with each attempt, half is random so many producers do not retry in lockstep."""

    base_seconds: float = 0.1
    cap_seconds: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** min(attempt, 30))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class SendResult:
    calls: int
    retried: int  # entries sent again after a failure
    complete: bool  # False when a stop request ended the retries with entries still unsent


class KinesisSender:
    def __init__(
        self,
        *,
        client,
        stream_name: str,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen dataclass, safe as a default
        sleep: Callable[[float], None] = time.sleep,
        should_stop: Callable[[], bool] = lambda: False,
        give_up_after: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.backoff = backoff
        self._sleep = sleep
        self._should_stop = should_stop
        self._give_up_after = give_up_after
        self._rng = rng or random.Random()

    def send(self, entries: list[Entry], on_accepted: Callable[[Entry], None]) -> SendResult:
        """Send until every entry is accepted, calling `on_accepted` once per entry as Kinesis
        accepts it; only a stop request (Ctrl-C) ends it earlier."""
        remaining = entries
        calls = retried = attempt = failures_in_a_row = 0
        while remaining:
            calls += 1
            try:
                response = self.client.put_records(
                    StreamName=self.stream_name,
                    Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in remaining],
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in TRANSIENT_CODES:
                    failures_in_a_row = self._count_failure(failures_in_a_row, code)
                elif code not in THROTTLING_CODES:
                    raise ProducerError(_describe(code, exc, self.stream_name)) from None
                failed = remaining
            except (BotocoreConnectionError, HTTPClientError) as exc:
                # botocore already retried these; keep going a little longer, then give up clearly.
                failures_in_a_row = self._count_failure(failures_in_a_row, str(exc))
                failed = remaining
            else:
                failures_in_a_row = 0
                failed = []
                for entry, result in zip(remaining, response["Records"], strict=True):
                    if result.get("ErrorCode"):
                        failed.append(entry)
                    else:
                        on_accepted(entry)
            if not failed:
                break
            if self._should_stop():
                return SendResult(calls, retried, complete=False)
            self._sleep(self.backoff.delay(attempt, self._rng))
            attempt += 1
            retried += len(failed)
            remaining = failed
        return SendResult(calls, retried, complete=True)

    def _count_failure(self, failures_in_a_row: int, what: str) -> int:
        failures_in_a_row += 1
        if failures_in_a_row >= self._give_up_after:
            raise ProducerError(
                f"giving up on stream {self.stream_name}: {what} ({failures_in_a_row} in a row)"
            )
        return failures_in_a_row


def _describe(code: str, exc: ClientError, stream_name: str) -> str:
    if code == "ResourceNotFoundException":
        return f"stream {stream_name} not found"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"PutRecords to {stream_name} failed: {code}: {message}".rstrip(": ")
