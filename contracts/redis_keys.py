"""Redis key names, the time-series catalogue and the search index's fields (docs/architecture.md,
*Redis data model*): the scorer creates and writes them, the dashboards, the demo's tally and the
tests read them. Only names and shapes live here; the scorer's `schema.py` creates them in Redis.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from dataclasses import dataclass, field

from contracts.verdicts import VERDICTS

# Key namespaces. Only transaction documents live under `txn:` (so no transaction id can name an
# internal key); card and terminal state keys are hash-tagged by their entity id, which the event
# schema restricts to `[A-Za-z0-9._:-]` (no braces), so `{<id>}` is always the whole hash tag.
TXN_PREFIX = "txn:"
CARD_PREFIX = "card:"
TERMINAL_PREFIX = "terminal:"
INDEX = "idx:txn"
REJECTED_STREAM = "rejected:records"
REJECTED_SEEN_PREFIX = "rejected:seen:"
REJECTED_STREAM_MAXLEN = 100_000
REJECTED_SEEN_TTL_S = 7 * 24 * 3600
# Raw payload bytes kept per rejected record, only when REJECTED_KEEP_PAYLOAD=true.
REJECTED_DATA_LIMIT = 4096
# Entity state keys expire this long after the longest window + delay (contracts.features) past their
# last update: a margin for clock skew and retried batches.
ENTITY_TTL_MARGIN_MS = 24 * 3600 * 1000
COMPACTION_BUCKET_MS = 60_000
COMPACTION_RETENTION_MS = 30 * 24 * 3600 * 1000
# The per-transaction series (scores, verdict counts, `ts:scored`, the legacy three) hold one sample
# per series per SAMPLE_RESOLUTION_MS bucket, stamped at the bucket's start: MAX of the scores, SUM of
# the counts — the series' own DUPLICATE_POLICY, so samples of one bucket written by different batches
# merge exactly. One sample per transaction was most of the Redis time a transaction cost. 250 ms
# divides every chart bucket the dashboards and the demo draw (demo: 250 ms and up, dashboards: 1 min).
SAMPLE_RESOLUTION_MS = 250
APP_LABEL = {"app": "fraud-detection"}

TS_FRAUD = "ts:fraud_probability"
TS_ANOMALY = "ts:anomaly_score"
TS_SCORED = "ts:scored"
TS_REJECTED = "ts:rejected"
TS_LATENCY_P50 = "ts:latency:p50"
TS_LATENCY_P99 = "ts:latency:p99"
LEGACY_ALL = "fraud-ts"
LEGACY_FRAUD = "fraudulent_ts"
LEGACY_NOT_FRAUD = "non-fraudulent_ts"


def verdict_series(verdict: str) -> str:
    return f"ts:verdict:{verdict}"


def txn_key(transaction_id: str) -> str:
    return f"{TXN_PREFIX}{transaction_id}"


def rejected_seen_key(shard_id: str, sequence_number: str) -> str:
    return f"{REJECTED_SEEN_PREFIX}{shard_id}:{sequence_number}"


def card_events_key(card_id: str) -> str:
    """ZSET of the card's transactions, a few members each holding many (`encode_card_block`)."""
    return f"{CARD_PREFIX}{{{card_id}}}:events"


def terminal_events_key(terminal_id: str) -> str:
    """ZSET of the terminal's transactions, a few members each holding many (`encode_terminal_block`)."""
    return f"{TERMINAL_PREFIX}{{{terminal_id}}}:events"


def terminal_frauds_key(terminal_id: str) -> str:
    """ZSET of the terminal's reported frauds: score = the transaction's event time, member
    `fraud_member(...)`. Same hash tag as its events key (one slot per terminal)."""
    return f"{TERMINAL_PREFIX}{{{terminal_id}}}:frauds"


# Entity events: BLOCKS. A card's or terminal's sorted set holds a few members (one to three), each a
# block of many events: a state write adds a block of its batch's new events, and now and then merges
# the entity's blocks into one (fraud_scorer/feature_store.py, `_entity_commands`). A block is
# columnar and fixed-width where the features need speed, so a reader turns a whole window into
# arrays with a memory copy instead of parsing one member per event (what made the read cost ~90 ms
# of client CPU per 500-record batch):
#
#   card block:     b"\x01" b"\0\0\0" <n: uint32> <n event times: int64> <n amounts: float64> <ids>
#   terminal block: b"\x02" b"\0\0\0" <n: uint32> <n event times: int64>                    <ids>
#
# little-endian; `ids` = the n transaction ids (ASCII, `events.TRANSACTION_ID_PATTERN`: no newline)
# joined by b"\n". Events are sorted by (event time, id) and unique by id within a block. The amount
# is the float64 itself: read back bit for bit. The member's score is a 52-bit hash of the block
# (`block_score`): it names the block, so a writer removes exactly the blocks it read
# (`ZREMRANGEBYSCORE key s s`) without sending them back, and writing the same block again is a no-op.
# Members written by an older scorer (one text member per event, `card_member` / `terminal_member`)
# are still decoded, and merged into a block by the next write.
CARD_BLOCK = 1
TERMINAL_BLOCK = 2
BLOCK_HEADER_BYTES = 8
_BLOCK_PAD = b"\0\0\0"
_BIG_ENDIAN = sys.byteorder == "big"
if array("q").itemsize != 8 or array("d").itemsize != 8:  # pragma: no cover - int64/float64 everywhere
    raise RuntimeError("the block encoding needs 8-byte array('q') and array('d')")


def block_score(block: bytes) -> int:
    """The block's score: 52 bits of its BLAKE2b hash (exact in a float64 score)."""
    return int.from_bytes(hashlib.blake2b(block, digest_size=7).digest(), "little") >> 4


def encode_card_block(timestamps: list[int], amounts: list[float], ids: list[bytes]) -> bytes:
    """One card block from columns already sorted by (time, id) and unique by id."""
    n = len(timestamps)
    return b"".join(
        (
            bytes((CARD_BLOCK,)),
            _BLOCK_PAD,
            struct.pack(f"<I{n}q{n}d", n, *timestamps, *amounts),
            b"\n".join(ids),
        )
    )


def encode_terminal_block(timestamps: list[int], ids: list[bytes]) -> bytes:
    n = len(timestamps)
    return b"".join(
        (bytes((TERMINAL_BLOCK,)), _BLOCK_PAD, struct.pack(f"<I{n}q", n, *timestamps), b"\n".join(ids))
    )


def extend_block(
    block: bytes, drop: int, timestamps: list[int], amounts: list[float], ids: list[bytes], dropped_ids: int
) -> bytes:
    """`block` (card or terminal) without its first `drop` events and with these appended (they must
    sort after its last one; `amounts` empty for a terminal): the bytes `encode_*_block` would give
    for the result, spliced from the old block's columns instead of re-encoding every event.
    `dropped_ids`: the bytes the dropped ids take in the id list (their lengths + 1 each)."""
    (n,) = struct.unpack_from("<I", block, 4)
    k = len(timestamps)
    h = BLOCK_HEADER_BYTES
    width = 16 if block[0] == CARD_BLOCK else 8
    kept_ids = block[h + width * n + dropped_ids :] if drop < n else b""
    new_ids = b"\n".join(ids)
    parts = [
        block[:4],
        struct.pack("<I", n - drop + k),
        block[h + 8 * drop : h + 8 * n],
        struct.pack(f"<{k}q", *timestamps),
    ]
    if width == 16:
        parts += (block[h + 8 * n + 8 * drop : h + 16 * n], struct.pack(f"<{k}d", *amounts))
    parts += (kept_ids, b"\n" if kept_ids else b"", new_ids)
    return b"".join(parts)


def _column(typecode: str, view: memoryview, start: int, n: int) -> array:
    """n little-endian numbers from a block as an array: one copy, no Python object per number."""
    column = array(typecode)
    column.frombytes(view[start : start + 8 * n])
    if _BIG_ENDIAN:
        column.byteswap()
    return column


def card_block_columns(block: bytes) -> tuple[array, array, bytes]:
    """(event times: array('q'), amounts: array('d'), the ids joined by b"\\n") of a card block or
    of one legacy text member: the ids stay one bytes object until someone needs them split."""
    if block[0] != CARD_BLOCK:
        ts, amount, transaction_id = parse_card_member(block.decode())
        return array("q", (ts,)), array("d", (amount,)), transaction_id.encode()
    n = int.from_bytes(block[4:8], "little")
    view = memoryview(block)
    h = BLOCK_HEADER_BYTES
    return _column("q", view, h, n), _column("d", view, h + 8 * n, n), block[h + 16 * n :]


def terminal_block_columns(block: bytes) -> tuple[array, bytes]:
    """(event times: array('q'), the ids joined by b"\\n") of a terminal block or legacy member."""
    if block[0] != TERMINAL_BLOCK:
        ts, transaction_id = parse_terminal_member(block.decode())
        return array("q", (ts,)), transaction_id.encode()
    n = int.from_bytes(block[4:8], "little")
    return _column("q", memoryview(block), BLOCK_HEADER_BYTES, n), block[BLOCK_HEADER_BYTES + 8 * n :]


def decode_card_block(block: bytes) -> tuple[array, array, list[bytes]]:
    """(event times: array('q'), amounts: array('d'), ids) of a card block or of one legacy text member."""
    ts, amounts, ids = card_block_columns(block)
    return ts, amounts, ids.split(b"\n") if ts else []


def decode_terminal_block(block: bytes) -> tuple[array, list[bytes]]:
    """(event times: array('q'), ids) of a terminal block or of one legacy text member."""
    ts, ids = terminal_block_columns(block)
    return ts, ids.split(b"\n") if ts else []


# Legacy per-event text members (`:`-separated, the transaction id last because ids may contain `:`),
# written by scorers before the blocks; decoded above for an upgrade in place. The amount is Python's
# shortest round-trip repr, so the float read back is bit-for-bit the float written.
def card_member(timestamp_ms: int, amount: float, transaction_id: str) -> str:
    return f"{timestamp_ms}:{amount!r}:{transaction_id}"


def parse_card_member(member: str) -> tuple[int, float, str]:
    ts, amount, transaction_id = member.split(":", 2)
    return int(ts), float(amount), transaction_id


def terminal_member(timestamp_ms: int, transaction_id: str) -> str:
    return f"{timestamp_ms}:{transaction_id}"


def parse_terminal_member(member: str) -> tuple[int, str]:
    ts, transaction_id = member.split(":", 1)
    return int(ts), transaction_id


def fraud_member(timestamp_ms: int, reported_at_ms: int, transaction_id: str) -> str:
    """A reported fraud: the transaction's event time, when the fraud was reported, its id."""
    return f"{timestamp_ms}:{reported_at_ms}:{transaction_id}"


def parse_fraud_member(member: str) -> tuple[int, int, str]:
    ts, reported_at, transaction_id = member.split(":", 2)
    return int(ts), int(reported_at), transaction_id


@dataclass(frozen=True)
class Series:
    key: str
    duplicate_policy: str
    labels: dict[str, str]
    # (aggregation, destination key) compactions into 1-minute buckets
    compactions: tuple[tuple[str, str], ...] = field(default=())


def series_catalog() -> tuple[Series, ...]:
    def labelled(**labels: str) -> dict[str, str]:
        return {**APP_LABEL, **labels}

    def avg(key: str) -> tuple[tuple[str, str], ...]:
        return (("avg", f"{key}:1m"),)

    def total(key: str) -> tuple[tuple[str, str], ...]:
        return (("sum", f"{key}:1m"),)

    legacy = {"type": "fraud_score"}
    return (
        Series(
            TS_FRAUD,
            "MAX",
            labelled(metric="fraud_probability"),
            (*avg(TS_FRAUD), ("max", f"{TS_FRAUD}:max:1m")),
        ),
        Series(TS_ANOMALY, "MAX", labelled(metric="anomaly_score"), avg(TS_ANOMALY)),
        *(
            Series(verdict_series(v), "SUM", labelled(metric="verdict", verdict=v), total(verdict_series(v)))
            for v in VERDICTS
        ),
        Series(TS_SCORED, "SUM", labelled(metric="scored"), total(TS_SCORED)),
        Series(TS_REJECTED, "SUM", labelled(metric="rejected"), total(TS_REJECTED)),
        Series(TS_LATENCY_P50, "MAX", labelled(metric="latency", quantile="p50"), avg(TS_LATENCY_P50)),
        Series(TS_LATENCY_P99, "MAX", labelled(metric="latency", quantile="p99"), avg(TS_LATENCY_P99)),
        Series(LEGACY_ALL, "MAX", legacy),
        Series(LEGACY_FRAUD, "MAX", legacy),
        Series(LEGACY_NOT_FRAUD, "MAX", legacy),
    )


# Indexing is most of what storing a transaction costs Redis: ~12 µs per document for having an index
# at all, then ~2-3 µs per NUMERIC and ~4 µs per TAG field (JSON.SET into `txn:`, measured on this
# machine). So the index holds what a query, a panel or the demo's tally filters, groups or sorts by:
# verdict (panels, tally), scored_at (newest first, tally's period), latency_ms (tally's quantiles),
# label (verdicts vs reported frauds), timestamp (the end-to-end benchmark's first event), amount.
# Everything else (card_id, terminal_id, scores, channel, merchant) a panel returns by JSONPath
# (`RETURN $.card_id`), read from the document of each hit.
INDEX_FIELDS = (
    ("verdict", "TAG"),
    ("amount", "NUMERIC"),
    ("timestamp", "NUMERIC"),
    ("scored_at", "NUMERIC SORTABLE"),
    ("latency_ms", "NUMERIC"),
    ("label", "NUMERIC"),  # set by label events: verdicts vs reported frauds (FT.AGGREGATE)
)
# The key online features, indexed for search ("why flagged" queries; `$.features.<NAME>` AS `<NAME>`
# NUMERIC): the card's velocity and the terminal's fraud risk. The whole vector is in the document
# anyway (FT.SEARCH returns `$.features.X`).
INDEX_FEATURE_FIELDS: tuple[str, ...] = (
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
)
