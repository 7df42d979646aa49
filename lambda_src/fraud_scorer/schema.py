"""Create the Redis keys, series and search index of `contracts.redis_keys` idempotently.

`ensure_schema` runs once per container before the first write: every statement here tolerates
"already exists", so concurrent containers and restarts are harmless.
"""

from __future__ import annotations

import redis
from redis.exceptions import ResponseError

from contracts.redis_keys import (
    COMPACTION_BUCKET_MS,
    COMPACTION_RETENTION_MS,
    INDEX,
    INDEX_FEATURE_FIELDS,
    INDEX_FIELDS,
    TXN_PREFIX,
    series_catalog,
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
    for name in INDEX_FEATURE_FIELDS:
        schema += [f"$.features.{name}", "AS", name, "NUMERIC"]
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
