"""The Redis schema (fraud_scorer.schema) matches docs/architecture.md and is created idempotently."""

from __future__ import annotations

import pytest
import redis

from contracts.redis_keys import INDEX, series_catalog
from fraud_scorer.schema import ensure_schema

RETENTION_MS = 604_800_000
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


@pytest.fixture
def schema_client(redis_client) -> redis.Redis:
    ensure_schema(redis_client, retention_ms=RETENTION_MS)
    return redis_client


@pytest.mark.parametrize(
    ("key", "policy", "labels", "rules"),
    [
        (
            "ts:fraud_probability",
            "max",
            {"app": "fraud-detection", "metric": "fraud_probability"},
            {"ts:fraud_probability:1m": "avg", "ts:fraud_probability:max:1m": "max"},
        ),
        (
            "ts:anomaly_score",
            "max",
            {"app": "fraud-detection", "metric": "anomaly_score"},
            {"ts:anomaly_score:1m": "avg"},
        ),
        (
            "ts:verdict:suspicious",
            "sum",
            {"app": "fraud-detection", "metric": "verdict", "verdict": "suspicious"},
            {"ts:verdict:suspicious:1m": "sum"},
        ),
        ("ts:scored", "sum", {"app": "fraud-detection", "metric": "scored"}, {"ts:scored:1m": "sum"}),
        ("ts:rejected", "sum", {"app": "fraud-detection", "metric": "rejected"}, {"ts:rejected:1m": "sum"}),
        (
            "ts:latency:p99",
            "max",
            {"app": "fraud-detection", "metric": "latency", "quantile": "p99"},
            {"ts:latency:p99:1m": "avg"},
        ),
        ("fraud-ts", "max", {"type": "fraud_score"}, {}),
        ("fraudulent_ts", "max", {"type": "fraud_score"}, {}),
        ("non-fraudulent_ts", "max", {"type": "fraud_score"}, {}),
    ],
)
def test_series_have_the_contract_policy_labels_retention_and_compactions(
    schema_client, key, policy, labels, rules
):
    info = schema_client.ts().info(key)
    assert info.duplicate_policy == policy
    assert info.labels == labels
    assert info.retention_msecs == RETENTION_MS
    # redis-py: {destination: [bucket ms, aggregation, alignment]}
    assert {dest: rule[1].lower() for dest, rule in info.rules.items()} == rules
    assert all(rule[0] == 60_000 for rule in info.rules.values())
    for destination, aggregation in rules.items():
        compacted = schema_client.ts().info(destination)
        assert compacted.retention_msecs == THIRTY_DAYS_MS
        assert compacted.labels == {**labels, "bucket": "1m", "aggregation": aggregation}


def test_every_catalogued_series_exists(schema_client):
    keys = set(schema_client.keys("*"))
    for series in series_catalog():
        assert series.key in keys
        assert {dest for _, dest in series.compactions} <= keys


def test_ensure_schema_is_idempotent(schema_client):
    # GIVEN the schema exists; WHEN it is ensured again (a second container)
    before = {k: schema_client.ts().info(k).rules for k in schema_client.keys("ts:*")}
    ensure_schema(schema_client, retention_ms=RETENTION_MS)

    # THEN nothing failed and no rule was doubled
    assert {k: schema_client.ts().info(k).rules for k in schema_client.keys("ts:*")} == before


def test_index_covers_the_contract_fields(schema_client):
    info = schema_client.ft(INDEX).info()
    assert info["index_definition"]["key_type"] == "JSON"
    assert info["index_definition"]["prefixes"] == ["txn:"]
    fields = {attr[attr.index("attribute") + 1]: attr[attr.index("type") + 1] for attr in info["attributes"]}
    # What the panels, the demo's tally and the benchmarks filter, group or sort by, and nothing else:
    # each indexed field costs Redis CPU on every stored transaction (contracts/redis_keys.py).
    assert fields == {
        "verdict": "TAG",
        "amount": "NUMERIC",
        "timestamp": "NUMERIC",
        "scored_at": "NUMERIC",
        "latency_ms": "NUMERIC",
        "label": "NUMERIC",
        # key online features, from the document's `features` object
        "CUSTOMER_ID_NB_TX_1DAY_WINDOW": "NUMERIC",
        "TERMINAL_ID_RISK_7DAY_WINDOW": "NUMERIC",
    }
    sortable = {attr[attr.index("attribute") + 1] for attr in info["attributes"] if "SORTABLE" in attr}
    assert sortable == {"scored_at"}
