"""Fraud reports as label events: each row's label goes out a report delay after its transaction.

In a real card system a fraud is known only when the cardholder or the bank reports it, days later;
the features allow for that (terminal risk windows end 7 days before the transaction, see
`contracts.features`). The producer replays that: the label of a transaction stamped t is sent as a
label event stamped t + delay, placed in the stream before the first transaction stamped at or after
that time. A delay under the features' 7 days means every label a feature needs has been sent before
the transaction that needs it. What is still pending when a run ends is sent then (stamped with the
run's last time, never later than its due time), so a finished run leaves no transaction unlabelled.
A report taken for sending stays pending (in flight) until Kinesis accepts its label event: one in a
call that fails, or left unsent when a run stops, is still in `pending()`, so the checkpoint keeps it.

Label events use the transaction's card as partition key: on the same shard as the transaction and
after it, so the scorer never sees a report before the transaction it is about.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable

from producer.events import SimRow, label_event

DAY_MS = 86_400_000
LABELS_ALL, LABELS_FRAUD, LABELS_NONE = "all", "fraud", "none"
LABEL_CHOICES = (LABELS_ALL, LABELS_FRAUD, LABELS_NONE)
# The scorer's rule: no report = legitimate. So only frauds need a report; `all` also sends the
# 0 labels (stored in the transaction documents, never applied to the state).
DEFAULT_LABELS = LABELS_FRAUD
DEFAULT_LABEL_DELAY_MS = DAY_MS
# The terminal features' delay (contracts.features: TERMINAL_ID_* windows end 7 days back): a label
# reported later than that would be missing when the first feature that needs it is computed.
MAX_LABEL_DELAY_MS = 7 * DAY_MS


# (due, order, transaction id, label, card id, the transaction's watermark ticket or None if restored)
_Report = tuple[int, int, str, int, str, int | None]


class LabelSchedule:
    """Pending reports, ordered by due time (then by the order their transactions were sent)."""

    def __init__(self, which: str = DEFAULT_LABELS, delay_ms: int = DEFAULT_LABEL_DELAY_MS) -> None:
        self.which = which
        self.delay_ms = delay_ms
        self._heap: list[_Report] = []
        # Reports taken by `due`/`drain` whose label event Kinesis has not accepted yet, by their
        # order number (the id `accepted` is called with).
        self._in_flight: dict[int, _Report] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap) + len(self._in_flight)

    def schedule(self, row: object, event: dict, stamped_ms: int, ticket: int | None = None) -> None:
        """Note the report of a transaction just stamped `stamped_ms` (simulator rows only: rows of
        creditcard.csv carry their label in the event itself); `ticket`: the transaction's, for
        `drain`."""
        if self.which == LABELS_NONE or not isinstance(row, SimRow) or row.label is None:
            return
        if self.which == LABELS_FRAUD and row.label != 1:
            return
        due = stamped_ms + self.delay_ms
        heapq.heappush(
            self._heap, (due, next(self._order), event["transaction_id"], row.label, event["card_id"], ticket)
        )

    def pending(self, sent: Callable[[int], bool]) -> list[tuple[int, str, int, str]]:
        """(due, transaction id, label, card id) of every report not yet accepted - still scheduled,
        or in flight - whose transaction was accepted (`sent` accepts its ticket; a restored report's
        was, in an earlier run), with its own due time: what a checkpoint keeps."""
        return [
            (due, transaction_id, label, card_id)
            for due, _, transaction_id, label, card_id, ticket in sorted(
                [*self._heap, *self._in_flight.values()]
            )
            if ticket is None or sent(ticket)
        ]

    def restore(self, reports: Iterable[tuple[int, str, int, str]]) -> None:
        """Reports an earlier run left due (its checkpoint's), sent like any other when due."""
        for due, transaction_id, label, card_id in reports:
            heapq.heappush(self._heap, (due, next(self._order), transaction_id, label, card_id, None))

    def due(self, now_ms: int) -> list[tuple[int, dict, str]]:
        """(report id, label event, partition key) of every report due at or before `now_ms`, stamped
        with its due time; each stays in flight until `accepted(report id)`."""
        out = []
        while self._heap and self._heap[0][0] <= now_ms:
            report = heapq.heappop(self._heap)
            due, order, transaction_id, label, card_id, _ = report
            self._in_flight[order] = report
            event = label_event(transaction_id=transaction_id, label=label, timestamp_ms=due)
            out.append((order, event, card_id))
        return out

    def drain(self, at_ms: int, sent: Callable[[int], bool] | None = None) -> list[tuple[int, dict, str]]:
        """Every scheduled report, stamped `at_ms` (or its due time if earlier): the end of a run; each
        stays in flight until `accepted(report id)`. With `sent`, only the reports of transactions whose
        ticket it accepts: a stopped run's last attempt can leave transactions unsent, and a report must
        never reach the stream before (or without) its transaction; a resumed run sends those
        transactions, and schedules their reports, again."""
        out = []
        while self._heap:
            report = heapq.heappop(self._heap)
            due, order, transaction_id, label, card_id, ticket = report
            if sent is not None and ticket is not None and not sent(ticket):
                continue
            self._in_flight[order] = report
            stamp = min(due, at_ms)
            event = label_event(transaction_id=transaction_id, label=label, timestamp_ms=stamp)
            out.append((order, event, card_id))
        return out

    def accepted(self, report_id: int) -> None:
        """Kinesis accepted the label event of `report_id` (from `due` or `drain`): it is done."""
        del self._in_flight[report_id]
