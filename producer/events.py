"""THE event builder: every event on the stream is made here (docs/architecture.md, "Event schema").

The producer, the test suite's fixtures and the benchmarks all build events with these functions, so
there is one place where the wire format is written:

* `transaction_event(...)`: a v2 transaction (card_id, terminal_id, amount, timestamp), or a v1 one
  when it carries the 30 creditcard.csv `features`;
* `label_event(...)`: a fraud report for an earlier transaction;
* `build_event(row, ...)`: a source row (creditcard.csv-shaped `Row` or simulator `SimRow`) as an event.

Everything except `timestamp` is a pure function of the source and the row, so sending the same row
again produces the same `transaction_id` (the downstream idempotency key) and the same card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from contracts.events import LABEL_EVENT_TYPE, TYPE_FIELD
from fraud_data.schema import AMOUNT_INDEX, FEATURE_COUNT

# The dataset has no card numbers: rows are spread over a small pool so cards repeat (per-card views
# and ordering mean something) while the load still spreads over every shard.
CARD_POOL = 1000
MERCHANT_POOL = 500
CHANNELS = ("online", "pos", "atm")


@dataclass(frozen=True)
class Row:
    """One valid source row: its index in the source, its 30 features and, when known, its label."""

    index: int
    features: tuple[float, ...]
    label: int | None = None

    def __post_init__(self) -> None:
        if len(self.features) != FEATURE_COUNT:
            raise ValueError(f"a row has {FEATURE_COUNT} features, not {len(self.features)}")


def transaction_id(source_key: str, row_index: int, loop: int = 0) -> str:
    """`<source key>-<row index>`, plus `-l<loop>` from the second pass of `--loop` on.

    Loop 0 has no suffix, so a row sent by a plain run and by the first pass of a `--loop` run is
    the same transaction.
    """
    return looped_id(f"{source_key}-{row_index:06d}", loop)


def _digest(source_key: str, row_index: int) -> int:
    # hashlib, not hash(): Python's string hash changes per process.
    raw = hashlib.blake2b(f"{source_key}:{row_index}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big")


@dataclass(frozen=True)
class SimRow:
    """One valid row of a simulator CSV (fraud_data.transactions.COLUMNS): a transaction with its
    own id, event time, card and terminal, and its label (sent later, as a label event)."""

    index: int
    transaction_id: str
    timestamp_ms: int
    card_id: str
    terminal_id: str
    amount: float
    label: int | None = None


def transaction_event(
    *,
    transaction_id: str,
    timestamp_ms: int,
    card_id: str,
    amount: float,
    terminal_id: str | None = None,
    features: list[float] | tuple[float, ...] | None = None,
    label: int | None = None,
    **extra,
) -> dict:
    """A transaction event: v2 (`terminal_id`, no `features`) or, with the 30 creditcard.csv
    `features`, the creditcard profile (v1). Optional fields are left out when None."""
    # No `type` field: an event without one is a transaction (every older producer's events too).
    event = {
        "transaction_id": transaction_id,
        "timestamp": timestamp_ms,
        "card_id": card_id,
        "amount": amount,
    }
    if terminal_id is not None:
        event["terminal_id"] = terminal_id
    if features is not None:
        event["features"] = list(features)
    if label is not None:
        event["label"] = label
    event.update({name: value for name, value in extra.items() if value is not None})
    return event


def label_event(*, transaction_id: str, label: int, timestamp_ms: int) -> dict:
    """A fraud report: transaction `transaction_id` was (label 1) or was not (0) fraud, as reported at
    `timestamp_ms`. The scorer applies it at the transaction's own event time."""
    return {
        TYPE_FIELD: LABEL_EVENT_TYPE,
        "transaction_id": transaction_id,
        "label": label,
        "timestamp": timestamp_ms,
    }


def looped_id(base: str, loop: int) -> str:
    """A row's id on pass `loop` of a `--loop` run: unchanged on the first pass."""
    return base if loop == 0 else f"{base}-l{loop}"


def build_event(row: Row | SimRow, *, source_key: str, loop: int, timestamp_ms: int) -> dict:
    """The event for a source row, stamped with `timestamp_ms` (the caller decides: the row's own
    event time, or the moment it is sent)."""
    if isinstance(row, SimRow):
        return transaction_event(
            transaction_id=looped_id(row.transaction_id, loop),
            timestamp_ms=timestamp_ms,
            card_id=row.card_id,
            terminal_id=row.terminal_id,
            amount=row.amount,
        )
    digest = _digest(source_key, row.index)
    return transaction_event(
        transaction_id=transaction_id(source_key, row.index, loop),
        timestamp_ms=timestamp_ms,
        card_id=f"card-{digest % CARD_POOL:05d}",
        amount=row.features[AMOUNT_INDEX],
        features=row.features,
        label=row.label,
        # Different slices of the digest, so channel and merchant do not simply follow the card.
        channel=CHANNELS[(digest >> 20) % len(CHANNELS)],
        merchant=f"m-{(digest >> 32) % MERCHANT_POOL:04d}",
    )


def encode(event: dict) -> bytes:
    """Compact UTF-8 JSON; `allow_nan=False` because the contract forbids NaN/Infinity."""
    return json.dumps(event, separators=(",", ":"), allow_nan=False).encode()
