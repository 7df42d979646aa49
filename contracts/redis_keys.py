"""Redis key names, the time-series catalogue and the search index's fields (docs/architecture.md,
*Redis data model*): the scorer creates and writes them, the dashboards, the demo's tally and the
tests read them. Only names and shapes live here; the scorer's `schema.py` creates them in Redis.
"""

from __future__ import annotations

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
    """ZSET of the card's transactions: score = event time (ms), member `card_member(...)`."""
    return f"{CARD_PREFIX}{{{card_id}}}:events"


def terminal_events_key(terminal_id: str) -> str:
    """ZSET of the terminal's transactions: score = event time (ms), member `terminal_member(...)`."""
    return f"{TERMINAL_PREFIX}{{{terminal_id}}}:events"


def terminal_frauds_key(terminal_id: str) -> str:
    """ZSET of the terminal's reported frauds: score = the transaction's event time, member
    `fraud_member(...)`. Same hash tag as its events key (one slot per terminal)."""
    return f"{TERMINAL_PREFIX}{{{terminal_id}}}:frauds"


# Member encodings (`:`-separated, the transaction id last because ids may contain `:`). The event
# time leads so members sort by time within a score; the amount is Python's shortest round-trip repr,
# so the float read back is bit-for-bit the float written.
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


INDEX_FIELDS = (
    ("verdict", "TAG"),
    ("channel", "TAG"),
    ("card_id", "TAG"),
    ("merchant", "TAG"),
    ("amount", "NUMERIC"),
    ("fraud_probability", "NUMERIC"),
    ("anomaly_score", "NUMERIC"),
    ("timestamp", "NUMERIC SORTABLE"),
    ("scored_at", "NUMERIC SORTABLE"),
    ("latency_ms", "NUMERIC"),
    ("terminal_id", "TAG"),
    ("label", "NUMERIC"),  # set by label events: verdicts vs reported frauds (FT.AGGREGATE)
)
# Online features indexed for search ("why flagged" queries): `$.features.<NAME>` AS `<NAME>` NUMERIC.
# A few key ones only: each indexed NUMERIC field costs ~5 µs of Redis CPU per stored transaction
# (measured), and the whole vector is in the document anyway (FT.SEARCH can return `$.features.X`).
INDEX_FEATURE_FIELDS: tuple[str, ...] = (
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
    "TERMINAL_ID_RISK_30DAY_WINDOW",
)
