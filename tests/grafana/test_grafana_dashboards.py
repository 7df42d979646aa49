"""The versioned dashboard JSON: valid, unique ids, one data source, and only keys the handler writes."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from contracts import redis_keys as schema
from contracts.features import FEATURES
from grafana import DATASOURCE_TYPE, DATASOURCE_UID
from grafana.queries import (
    PanelTarget,
    TimeRange,
    UnsupportedQuery,
    dashboard_paths,
    iter_panels,
    load_dashboard,
    panel_targets,
)

DASHBOARDS = [load_dashboard(path) for path in dashboard_paths()]
TARGETS = [target for dashboard in DASHBOARDS for target in panel_targets(dashboard)]
SERIES = {series.key: series.labels for series in schema.series_catalog()}
# Compactions: the source's labels plus bucket=1m and the aggregation.
COMPACTIONS = {
    destination: {**series.labels, "bucket": "1m", "aggregation": aggregation}
    for series in schema.series_catalog()
    for aggregation, destination in series.compactions
}
INDEXED = {name for name, _ in schema.INDEX_FIELDS} | set(schema.INDEX_FEATURE_FIELDS)
# Fields of the transaction document that are not indexed but can be returned by JSONPath.
DOCUMENT_FIELDS = {"transaction_id", "features", "label", "processing_ms", "format", "kinesis"}
DOCUMENT_FIELDS |= {"card_id", "terminal_id", "channel", "merchant", "fraud_probability", "anomaly_score"}
# ... and the feature values the model saw, `$.features.<NAME>` for every name of the spec.
DOCUMENT_FIELDS |= {f"features.{name}" for name in FEATURES}
WINDOW = TimeRange(start_ms=0, end_ms=3_600_000)


def matches(labels: dict[str, str], matcher: str) -> bool:
    """One TS.MRANGE filter expression: label=value, label= (absent), label!=value."""
    name, operator, value = re.fullmatch(r"([^!=]+)(!?=)(.*)", matcher).groups()
    if operator == "=":
        return labels.get(name) == value if value else name not in labels
    return labels.get(name) != value


def test_every_dashboard_file_is_valid_json_with_its_file_name_as_uid():
    for path in dashboard_paths():
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] == path.stem
        assert dashboard["title"]


def test_dashboard_uids_and_titles_are_unique():
    assert len({d["uid"] for d in DASHBOARDS}) == len(DASHBOARDS)
    assert len({d["title"] for d in DASHBOARDS}) == len(DASHBOARDS)


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d["uid"])
def test_panel_ids_and_target_ref_ids_are_unique(dashboard):
    panels = list(iter_panels(dashboard))
    assert [n for n, c in Counter(p["id"] for p in panels).items() if c > 1] == []
    for panel in panels:
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d["uid"])
def test_panels_sit_inside_the_24_column_grid_without_overlapping(dashboard):
    cells: dict[tuple[int, int], str] = {}
    for panel in iter_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_panel_and_target_uses_the_provisioned_data_source():
    expected = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
    for dashboard in DASHBOARDS:
        for panel in iter_panels(dashboard):
            assert panel["datasource"] == expected, panel["title"]
            assert panel["targets"], f"{panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"] == expected, panel["title"]


# Every target's command runs against a Redis the handler filled: test_grafana_queries_live.py.


def test_an_unknown_command_is_refused_with_the_panel_named():
    target = PanelTarget("d", 1, "Keys", {"refId": "A", "command": "keys", "keyName": "*"})

    with pytest.raises(UnsupportedQuery, match=r"d/1 'Keys' A: keys"):
        target.redis_command(WINDOW)


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_every_target_reads_keys_the_handler_writes(target: PanelTarget):
    query = target.target
    if target.command == "ts.range":
        assert query["keyName"] in SERIES
    elif target.command == "ts.mrange":
        matchers = query["filter"].split()
        hits = [
            key
            for key, labels in {**SERIES, **COMPACTIONS}.items()
            if all(matches(labels, m) for m in matchers)
        ]
        assert hits, f"filter {query['filter']!r} matches no series the handler creates"
        assert not set(hits) & set(COMPACTIONS), "raw series and their compactions would be charted twice"
    elif target.command in {"xlen", "xrevrange"}:
        assert query["keyName"] == schema.REJECTED_STREAM
    elif target.command == "ft.search":
        assert query["keyName"] == schema.INDEX
        for field in query["returnFields"]:
            assert field in INDEXED or field.removeprefix("$.") in DOCUMENT_FIELDS, field
        assert query["sortBy"] in {name for name, kind in schema.INDEX_FIELDS if "SORTABLE" in kind}
        for tag in re.findall(r"@verdict:\{([^}]*)\}", query["searchQuery"]):
            assert set(tag.split("|")) <= set(schema.VERDICTS)
    else:
        pytest.fail(f"no key check for {target.command}")


def test_every_chart_bucket_is_a_whole_number_of_sample_buckets():
    # The scorer writes one sample per series per SAMPLE_RESOLUTION_MS: a chart bucket that is not a
    # multiple of it would put that sample's transactions in one bucket and none in the next.
    from demo.cli import CHART_BUCKETS_MS

    panel_buckets = {int(t.target["bucket"]) for t in TARGETS if t.target.get("bucket")}
    assert panel_buckets
    for bucket in panel_buckets | set(CHART_BUCKETS_MS):
        assert bucket % schema.SAMPLE_RESOLUTION_MS == 0, bucket


def test_the_original_demo_series_all_have_a_panel():
    charted = {t.target.get("keyName") for t in TARGETS}
    assert {schema.LEGACY_ALL, schema.LEGACY_FRAUD, schema.LEGACY_NOT_FRAUD} <= charted
    assert any(t.target.get("filter") == "type=fraud_score" for t in TARGETS)


def panels_where(predicate):
    return [
        panel
        for dashboard in DASHBOARDS
        for panel in iter_panels(dashboard)
        if any(predicate(target) for target in panel["targets"])
    ]


def test_no_panel_shows_raw_rejected_payloads():
    # The rejected stream may keep raw payload bytes (`data`, only with REJECTED_KEEP_PAYLOAD=true):
    # every panel reading its entries hides that column.
    panels = panels_where(lambda t: t.get("keyName") == schema.REJECTED_STREAM and "range" in t["command"])
    assert panels, "no panel lists rejected records"
    for panel in panels:
        hidden = {
            name
            for transformation in panel.get("transformations", [])
            if transformation["id"] == "organize"
            for name, excluded in transformation["options"].get("excludeByName", {}).items()
            if excluded
        }
        assert "data" in hidden, panel["title"]


def test_the_per_batch_latency_panel_is_named_for_what_it_shows():
    # ts:latency:p50/p99 hold one sample per batch (that batch's quantile): a per-minute maximum of
    # them is the slowest batch's quantile, not a quantile over the minute's transactions.
    panels = panels_where(lambda t: "metric=latency" in str(t.get("filter", "")))
    assert panels
    for panel in panels:
        aggregations = {t.get("aggregation") for t in panel["targets"]}
        assert aggregations == {"max"}, panel["title"]
        assert "slowest batch" in panel["title"].lower()
        assert "not a quantile over all transactions" in panel["description"]


def test_a_why_flagged_panel_shows_the_feature_values_of_fraud_verdicts():
    panels = panels_where(
        lambda t: t["command"] == "ft.search" and t.get("searchQuery") == "@verdict:{fraud}"
    )
    assert len(panels) == 1
    (target,) = panels[0]["targets"]
    fields = [f.removeprefix("$.features.") for f in target["returnFields"]]
    features = [f for f in fields if f in FEATURES]
    assert len(features) >= 6
    # every indexed feature is shown, and both entities' features are there
    assert set(schema.INDEX_FEATURE_FIELDS) <= set(features)
    assert {FEATURES[f].entity for f in features} >= {"card", "terminal"}
    assert target["sortBy"] == "scored_at"
    assert target["sortDirection"] == "DESC"
