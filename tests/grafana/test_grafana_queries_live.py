"""Every panel's Redis command, read from the dashboard JSON, run against a Redis Stack that the real
handler has just filled: each one must return data, and the data must be the batch's."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from contracts import redis_keys as schema
from grafana.queries import (
    NUMBER,
    STRING,
    connect,
    dashboard_paths,
    displayed_table,
    load_dashboard,
    panel_targets,
    run_dashboard,
)


@pytest.fixture
def client(scored_batch):
    with connect(scored_batch.redis_url) as connection:
        yield connection


def results_by_title(client, uid, now_ms):
    return {panel.title: panel for panel in run_dashboard(client, load_dashboard(uid), now_ms=now_ms)}


@pytest.mark.parametrize("path", dashboard_paths(), ids=lambda p: p.stem)
def test_every_panel_query_returns_data_after_a_scored_batch(client, scored_batch, path):
    # GIVEN a dashboard and a Redis the handler has written one batch into
    dashboard = load_dashboard(path)

    # WHEN every panel's targets run over the dashboard's default time range
    panels = run_dashboard(client, dashboard, now_ms=scored_batch.now_ms)

    # THEN every target of every panel answers with data
    assert len([r for p in panels for r in p.results]) == len(panel_targets(dashboard))
    failed = [(str(r.target), r.error) for panel in panels for r in panel.results if not r.has_data]
    assert failed == []


def test_operations_panels_show_the_batch(client, scored_batch):
    panels = results_by_title(client, "fraud-operations", scored_batch.now_ms)

    def total(title):
        return sum(v for r in panels[title].results for s in r.series for v in s.values)

    scored = len(scored_batch.fraud_ids + scored_batch.suspicious_ids + scored_batch.legit_ids)
    assert total("Transactions scored") == scored
    assert total("Fraud verdicts") == len(scored_batch.fraud_ids)
    assert total("Suspicious verdicts") == len(scored_batch.suspicious_ids)
    assert total("Rejected records held") == scored_batch.rejected

    verdicts = {s.name: sum(s.values) for s in panels["Verdicts per minute"].results[0].series}
    assert verdicts == {
        "fraud": len(scored_batch.fraud_ids),
        "suspicious": len(scored_batch.suspicious_ids),
        "legit": len(scored_batch.legit_ids),
    }
    latency = {s.name for s in panels["Slowest batch's latency p50 / p99, each minute"].results[0].series}
    assert latency == {"p50", "p99"}
    fraud_max = panels["Fraud probability"].results[1].series[0]
    assert max(fraud_max.values) == pytest.approx(0.93)

    flagged = panels["Latest flagged transactions"].results[0].table
    ids = {row[flagged.columns.index("$.transaction_id")] for row in flagged.rows}
    assert ids == set(scored_batch.fraud_ids + scored_batch.suspicious_ids)
    scored_at = [int(row[flagged.columns.index("scored_at")]) for row in flagged.rows]
    assert scored_at == sorted(scored_at, reverse=True)

    rejected = panels["Latest rejected records"].results[0].table
    assert len(rejected.rows) == scored_batch.rejected
    assert "reason" in rejected.columns


def test_original_demo_panels_split_fraud_from_the_rest(client, scored_batch):
    panels = results_by_title(client, "fraud-demo", scored_batch.now_ms)

    def points(title):
        return [v for r in panels[title].results for s in r.series for v in s.values]

    # one point per transaction: they are minutes apart, far more than a sample bucket
    assert len(points("Fraudulent transactions")) == len(scored_batch.fraud_ids)
    assert len(points("Non-fraudulent transactions")) == len(
        scored_batch.suspicious_ids + scored_batch.legit_ids
    )
    assert len(points("Fraud score, highest per 250 ms")) == len(
        scored_batch.fraud_ids + scored_batch.suspicious_ids + scored_batch.legit_ids
    )
    legacy_series = {s.name for s in panels["Fraud score series (type=fraud_score)"].results[0].series}
    assert legacy_series == {"fraud-ts", "fraudulent_ts", "non-fraudulent_ts"}


def test_why_flagged_shows_the_features_the_model_saw(flagged_behavioural_batch):
    # GIVEN a fraud verdict on a v2 transaction, its features computed online from Redis state
    batch = flagged_behavioural_batch
    with connect(batch.redis_url) as client:
        panels = run_dashboard(client, load_dashboard("fraud-operations"), now_ms=batch.now_ms)

    # WHEN the "why flagged" panel's query runs
    (panel,) = [p for p in panels if p.title.startswith("Why flagged")]
    table = panel.results[0].table

    # THEN its one row is that transaction, with exactly the spec's values for the features shown
    assert len(table.rows) == 1
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["$.transaction_id"] == batch.fraud_id
    shown = {
        c.removeprefix("$.features."): v
        for c, v in row.items()
        if c.removeprefix("$.features.") in batch.expected_features
    }
    assert len(shown) >= 6
    for name, value in shown.items():
        assert float(value) == pytest.approx(batch.expected_features[name], rel=1e-9), name
    assert float(row["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]) == 5  # the four earlier ones and itself


def shown_times(panel, column):
    """The panel's `column` as the renderer (and Grafana) shows it, with the stored epoch ms beside it."""
    from grafana.render import table_text

    columns, rows = table_text(panel)
    stored = [
        int(row[panel.results[0].table.columns.index("scored_at")]) for row in panel.results[0].table.rows
    ]
    return [row[columns.index(column)] for row in rows], stored


def as_shown(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_flagged_transactions_show_scored_at_as_a_date_not_nan(client, scored_batch):
    # GIVEN the flagged transactions the handler stored (FT.SEARCH: every column is text to the plugin)
    panels = results_by_title(client, "fraud-operations", scored_batch.now_ms)

    # WHEN the panel's transformations and units are applied as Grafana applies them
    shown, stored = shown_times(panels["Latest flagged transactions"], "scored_at")

    # THEN scored_at reads as the stored time, not as a text parsed as a date (NaN)
    assert len(shown) == len(scored_batch.fraud_ids + scored_batch.suspicious_ids)
    assert shown == [as_shown(ms) for ms in stored]


def test_why_flagged_shows_scored_at_as_a_date_not_nan(flagged_behavioural_batch):
    with connect(flagged_behavioural_batch.redis_url) as client:
        panels = results_by_title(client, "fraud-operations", flagged_behavioural_batch.now_ms)
    (title,) = [t for t in panels if t.startswith("Why flagged")]

    shown, stored = shown_times(panels[title], "scored_at")

    assert len(shown) == 1
    assert shown == [as_shown(ms) for ms in stored]


def test_rejected_records_show_the_kinesis_position_intact(client, scored_batch):
    # GIVEN the rejected record the handler wrote, as stored in the stream
    stored = [fields for _, fields in client.xrevrange(schema.REJECTED_STREAM)]
    assert len(stored) == scored_batch.rejected
    panels = results_by_title(client, "fraud-operations", scored_batch.now_ms)
    panel = panels["Latest rejected records"]

    # WHEN the panel's query runs and its transformations apply
    table = displayed_table(panel)

    # THEN its position is the shard and the full sequence number, as text, exactly as stored
    entry = stored[0]
    assert len(entry["sequence_number"]) >= 56
    assert table.type_of("position") == STRING
    assert [row[table.columns.index("position")] for row in table.rows] == [
        f"{entry['shard_id']}/{entry['sequence_number']}"
    ]
    # AND no column shows a digit string the data source sends as a (rounded) float64
    assert "sequence_number" not in table.columns
    assert "shard_id" not in table.columns
    for column in table.columns:
        values = [fields.get(column, "") for fields in stored]
        assert not any(v.isdigit() and len(v) > 15 for v in values), column
    # (the reason: through the data source the sequence number itself comes back rounded)
    raw = panel.results[0].table
    assert raw.type_of("sequence_number") == NUMBER
    rounded = raw.rows[0][raw.columns.index("sequence_number")]
    assert Decimal(rounded) != Decimal(entry["sequence_number"])
