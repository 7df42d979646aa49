"""Redis keys, series and the search index from docs/architecture.md, created idempotently.

`ensure_schema` runs once per container before the first write: every statement here tolerates
"already exists", so concurrent containers and restarts are harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from redis.exceptions import ResponseError

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
VERDICTS = ("fraud", "suspicious", "legit")


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


def _already_exists(result: object) -> bool:
    # "key already exists", "Index already exists", and for a rule created concurrently by another
    # container "the destination key already has a src rule".
    message = str(result).lower()
    return isinstance(result, ResponseError) and ("already exists" in message or "already has" in message)


def _raise_unexpected(results: list[object]) -> None:
    for result in results:
        if isinstance(result, Exception) and not _already_exists(result):
            raise result


def _flat(labels: dict[str, str]) -> list[str]:
    return [item for pair in labels.items() for item in pair]


def ensure_schema(client: redis.Redis, *, retention_ms: int) -> None:
    """Create the index, every series with its explicit DUPLICATE_POLICY, and the compaction rules."""
    catalog = series_catalog()
    pipe = client.pipeline(transaction=False)
    schema: list[str] = []
    for name, kind in INDEX_FIELDS:
        schema += [f"$.{name}", "AS", name, *kind.split()]
    pipe.execute_command("FT.CREATE", INDEX, "ON", "JSON", "PREFIX", "1", TXN_PREFIX, "SCHEMA", *schema)
    for series in catalog:
        pipe.execute_command(
            "TS.CREATE",
            series.key,
            "RETENTION",
            retention_ms,
            "DUPLICATE_POLICY",
            series.duplicate_policy,
            "LABELS",
            *_flat(series.labels),
        )
        for aggregation, destination in series.compactions:
            pipe.execute_command(
                "TS.CREATE",
                destination,
                "RETENTION",
                COMPACTION_RETENTION_MS,
                "DUPLICATE_POLICY",
                "LAST",
                "LABELS",
                *_flat({**series.labels, "bucket": "1m", "aggregation": aggregation}),
            )
    _raise_unexpected(pipe.execute(raise_on_error=False))

    # TS.CREATERULE fails if the destination already has a rule, so ask first which rules exist.
    sources = [series for series in catalog if series.compactions]
    pipe = client.pipeline(transaction=False)
    for series in sources:
        pipe.execute_command("TS.INFO", series.key)
    infos = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for series, info in zip(sources, infos, strict=True):
        existing = _rule_destinations(_info_field(info, "rules"))
        for aggregation, destination in series.compactions:
            if destination not in existing:
                pipe.execute_command(
                    "TS.CREATERULE", series.key, destination, "AGGREGATION", aggregation, COMPACTION_BUCKET_MS
                )
    _raise_unexpected(pipe.execute(raise_on_error=False))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rule_destinations(rules: object) -> set[str]:
    # redis-py gives {destination: [bucket, aggregation, alignment]}; older versions a list of lists.
    if isinstance(rules, dict):
        return {_text(destination) for destination in rules}
    return {_text(rule[0]) for rule in rules or []}


def _info_field(info: object, name: str) -> object:
    # TS.INFO arrives as a dict (str or bytes keys), a TSInfo object, or a flat [name, value, ...] list.
    if isinstance(info, dict):
        return info.get(name, info.get(name.encode()))
    if hasattr(info, name):
        return getattr(info, name)
    items = list(info)
    for i in range(0, len(items) - 1, 2):
        if _text(items[i]) == name:
            return items[i + 1]
    return None
