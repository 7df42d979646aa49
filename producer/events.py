"""Turn a source row into an event exactly as docs/architecture.md ("Event schema") defines it.

Everything except `timestamp` is a pure function of the source and the row, so sending the same row
again produces the same `transaction_id` (the downstream idempotency key) and the same card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

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
    base = f"{source_key}-{row_index:06d}"
    return base if loop == 0 else f"{base}-l{loop}"


def _digest(source_key: str, row_index: int) -> int:
    # hashlib, not hash(): Python's string hash changes per process.
    raw = hashlib.blake2b(f"{source_key}:{row_index}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big")


def build_event(row: Row, *, source_key: str, loop: int, timestamp_ms: int) -> dict:
    digest = _digest(source_key, row.index)
    event = {
        "transaction_id": transaction_id(source_key, row.index, loop),
        "timestamp": timestamp_ms,
        "card_id": f"card-{digest % CARD_POOL:05d}",
        "amount": row.features[AMOUNT_INDEX],
        "features": list(row.features),
        # Different slices of the digest, so channel and merchant do not simply follow the card.
        "channel": CHANNELS[(digest >> 20) % len(CHANNELS)],
        "merchant": f"m-{(digest >> 32) % MERCHANT_POOL:04d}",
    }
    if row.label is not None:
        event["label"] = row.label
    return event


def encode(event: dict) -> bytes:
    """Compact UTF-8 JSON; `allow_nan=False` because the contract forbids NaN/Infinity."""
    return json.dumps(event, separators=(",", ":"), allow_nan=False).encode()
