"""Redis key names, the time-series catalogue and the search index's fields (docs/architecture.md,
*Redis data model*): the scorer creates and writes them, the dashboards, the demo's tally and the
tests read them. Only names and shapes live here; the scorer's `schema.py` creates them in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.verdicts import VERDICTS

TXN_PREFIX = "txn:"
INDEX = "idx:txn"
REJECTED_STREAM = "txn:rejected"
REJECTED_SEEN_PREFIX = "txn:rejected:seen:"
REJECTED_STREAM_MAXLEN = 100_000
REJECTED_SEEN_TTL_S = 7 * 24 * 3600
REJECTED_DATA_LIMIT = 4096
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
)
