"""Redis key names, the time-series catalogue and the search index's fields (docs/architecture.md,
*Redis data model*): the scorer creates and writes them, the dashboards, the demo's tally and the
tests read them. Only names and shapes live here; the scorer's `schema.py` creates them in Redis.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import NamedTuple

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


def card_state_key(card_id: str) -> str:
    """STRING: the card's recent transactions, a sequence of state records (below)."""
    return f"{CARD_PREFIX}{{{card_id}}}:state"


def terminal_state_key(terminal_id: str) -> str:
    """STRING: the terminal's recent transactions and their reported frauds, as state records."""
    return f"{TERMINAL_PREFIX}{{{terminal_id}}}:state"


# Entity state: ONE STRING per card or terminal, a sequence of self-delimiting RECORDS, read for a
# whole batch with one MGET and written with APPEND (fraud_scorer/feature_store.py): a state write
# appends a record of its batch's new events, a label appends a record of one fraud mark, and now
# and then a writer replaces the whole value by one compacted record of each kind (a script that
# does so only if nobody compacted since its read, keeping what others appended meanwhile). Records
# are columnar and fixed-width where the features need speed, so a reader turns a whole window into
# arrays with a memory copy instead of parsing one value per event. Little-endian:
#
#   card events:     0x03 <3 zero bytes> <n: uint32> <b: uint32> <n times: int64> <n amounts: float64> <ids>
#   terminal events: 0x04 <3 zero bytes> <n> <b> <n times: int64> <ids>
#   fraud marks:     0x05 <3 zero bytes> <n> <b> <n times: int64> <n reported at: int64> <n labels: uint8>
#                    <ids>
#   header:          0x06 <7 zero bytes> <nonce: 8 bytes> <TTL set at, wall clock ms: int64>
#
# `ids` = n transaction ids (ASCII, `events.TRANSACTION_ID_PATTERN`: no newline) joined by b"\n", b
# bytes. Events are sorted by (event time, id) and unique by id within a record (not across records:
# readers merge and de-duplicate). The amount is the float64 itself: read back bit for bit. Marks
# apply in the value's order: label 1 marks the transaction (event time, report time), label 0
# clears its mark, the latest wins. A header starts every compacted value — its random nonce is how
# a compacting writer knows nobody compacted since its read — and is appended after every TTL
# refresh, so a writer knows when the key's TTL was last set.
CARD_EVENTS = 3
TERMINAL_EVENTS = 4
FRAUD_MARKS = 5
STATE_HEADER = 6
_RECORD = struct.Struct("<B3xII")  # kind, n, id bytes
_HEADER = struct.Struct("<B7x8sq")  # kind, nonce, TTL set at
HEADER_BYTES = _HEADER.size
# What a compacting writer compares: the value's first bytes (a header's nonce, or the first record
# of a value nobody ever compacted, which only grows).
STATE_PREFIX_BYTES = 16
_BIG_ENDIAN = sys.byteorder == "big"
if array("q").itemsize != 8 or array("d").itemsize != 8:  # pragma: no cover - int64/float64 everywhere
    raise RuntimeError("the state encoding needs 8-byte array('q') and array('d')")


class CorruptStateError(ValueError):
    """A state value that is not a sequence of well-formed records (never written by the scorer)."""


def encode_card_events(timestamps: list[int], amounts: list[float], ids: list[bytes]) -> bytes:
    """One card events record from columns already sorted by (time, id) and unique by id."""
    n = len(timestamps)
    joined = b"\n".join(ids)
    return struct.pack(f"<B3xII{n}q{n}d", CARD_EVENTS, n, len(joined), *timestamps, *amounts) + joined


def encode_terminal_events(timestamps: list[int], ids: list[bytes]) -> bytes:
    n = len(timestamps)
    joined = b"\n".join(ids)
    return struct.pack(f"<B3xII{n}q", TERMINAL_EVENTS, n, len(joined), *timestamps) + joined


def encode_marks(timestamps: list[int], reported_at: list[int], labels: list[int], ids: list[bytes]) -> bytes:
    """Fraud marks, applied in this order by readers: (transaction event time, report time, label)."""
    n = len(timestamps)
    joined = b"\n".join(ids)
    return (
        struct.pack(f"<B3xII{n}q{n}q{n}B", FRAUD_MARKS, n, len(joined), *timestamps, *reported_at, *labels)
        + joined
    )


def encode_header(nonce: bytes, ttl_set_at_ms: int) -> bytes:
    return _HEADER.pack(STATE_HEADER, nonce, ttl_set_at_ms)


class StateRecords(NamedTuple):
    """A state value decoded: its events records' columns concatenated in the value's order (times,
    amounts for a card, and each record's ids still joined by b"\n"), whether that order is already
    sorted and unique (`in_order`: every record starts after the previous one ends, the usual case),
    the marks in order as (event time, reported at, label, id), the wall clock time the key's TTL was
    last set (0: never recorded), and how many events and marks records there are (what a compaction
    would fold into one of each)."""

    ts: array
    amounts: array
    ids: list[bytes]
    in_order: bool
    marks: list[tuple[int, int, int, bytes]]
    ttl_set_at_ms: int
    records: int


def split_state(value: bytes, card: bool) -> StateRecords:
    """Decode a card's (`card`) or a terminal's state value, columns copied straight from the bytes
    (no Python object per number). Raises CorruptStateError on anything else (a record of the other
    entity's kind, a truncated record)."""
    ts, amounts, ids, marks = array("q"), array("d"), [], []
    in_order, ttl_set_at_ms, records = True, 0, 0
    events_kind = CARD_EVENTS if card else TERMINAL_EVENTS
    width = 16 if card else 8
    size = len(value)
    offset = 0
    unpack = _RECORD.unpack_from
    try:
        while offset < size:
            kind, n, id_bytes = unpack(value, offset)  # (a header's first 12 bytes: only its kind counts)
            start = offset + 12
            if kind == events_kind:
                ids_at = start + width * n
                offset = ids_at + id_bytes
                if offset > size:
                    raise CorruptStateError("truncated events record")
                records += 1
                if n:
                    first = len(ts)
                    ts.frombytes(value[start : start + 8 * n])
                    if card:
                        amounts.frombytes(value[start + 8 * n : ids_at])
                    ids.append(value[ids_at:offset])
                    if first and ts[first] <= ts[first - 1]:
                        in_order = False
            elif kind == STATE_HEADER:
                ttl_set_at_ms = max(ttl_set_at_ms, _HEADER.unpack_from(value, offset)[2])
                offset += HEADER_BYTES
            elif kind == FRAUD_MARKS and not card:
                ids_at = start + 17 * n
                offset = ids_at + id_bytes
                if offset > size:
                    raise CorruptStateError("truncated marks record")
                records += 1
                columns = struct.unpack_from(f"<{n}q{n}q{n}B", value, start)
                marked = value[ids_at:offset].split(b"\n") if n else []
                if len(marked) != n:
                    raise CorruptStateError("marks record with a wrong id count")
                marks.extend(zip(columns[:n], columns[n : 2 * n], columns[2 * n :], marked, strict=True))
            else:
                raise CorruptStateError(f"record kind {kind} in a {'card' if card else 'terminal'}'s state")
    except struct.error as error:
        raise CorruptStateError(f"truncated record: {error}") from None
    if _BIG_ENDIAN:  # pragma: no cover - the encoding is little-endian; readers then sort
        ts.byteswap()
        amounts.byteswap()
        in_order = False
    return StateRecords(ts, amounts, ids, in_order, marks, ttl_set_at_ms, records)


# Text forms of state entries, `:`-separated with the transaction id last (ids may contain `:`): the
# comparable content `feature_store.dump_entity_state` gives (tests compare two ways of loading the
# same history). The amount is Python's shortest round-trip repr: bit for bit.
def card_member(timestamp_ms: int, amount: float, transaction_id: str) -> str:
    return f"{timestamp_ms}:{amount!r}:{transaction_id}"


def terminal_member(timestamp_ms: int, transaction_id: str) -> str:
    return f"{timestamp_ms}:{transaction_id}"


def fraud_member(timestamp_ms: int, reported_at_ms: int, transaction_id: str) -> str:
    """A reported fraud: the transaction's event time, when the fraud was reported, its id."""
    return f"{timestamp_ms}:{reported_at_ms}:{transaction_id}"


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
