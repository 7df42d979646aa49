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
    PanelResult,
    PanelTarget,
    Table,
    TargetResult,
    TimeRange,
    UnsupportedQuery,
    dashboard_paths,
    displayed_table,
    is_date_unit,
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


def hidden_fields(panel) -> set[str]:
    """The fields the panel's `organize` hides."""
    return {
        name
        for transformation in panel.get("transformations", [])
        if transformation["id"] == "organize"
        for name, excluded in transformation["options"].get("excludeByName", {}).items()
        if excluded
    }


def test_no_panel_shows_raw_rejected_payloads():
    # The rejected stream may keep raw payload bytes (`data`, only with REJECTED_KEEP_PAYLOAD=true):
    # every panel reading its entries hides that column.
    panels = panels_where(lambda t: t.get("keyName") == schema.REJECTED_STREAM and "range" in t["command"])
    assert panels, "no panel lists rejected records"
    for panel in panels:
        hidden = hidden_fields(panel)
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


# --- Field types: what the Redis data source sends, and the date units shown on it ---------------------
#
# The plugin (redis-datasource 2.2.0) sends every FT.SEARCH column as a string (pkg/redis-search.go)
# and types each stream field after its value in the first entry (pkg/redis-stream.go): text unless it
# reads as a float. Grafana's display processor parses a *string* under a date unit as a date text, so
# epoch milliseconds in a string ("1796164056443") show as NaN: a field the plugin may send as text
# must be converted (`convertFieldType`) before a date unit is put on it.


def text_fields(panel) -> set[str] | None:
    """The source names of the fields the panel's targets may return as text; None: every field (a
    stream's fields are not known from the JSON, only `$time` is always a time field)."""
    fields: set[str] = set()
    for target in panel["targets"]:
        if target["command"] == "ft.search":
            fields |= {"keyName", *target.get("returnFields", [])}
        elif target["command"] in {"xrange", "xrevrange"}:
            return None
    return fields


def source_name(panel, shown: str) -> str:
    """The name a field had before the panel's `organize` renamed it (overrides see the new name)."""
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "organize":
            for old, new in transformation["options"].get("renameByName", {}).items():
                if new == shown:
                    return old
    return shown


def date_unit_fields(panel) -> set[str]:
    """Source names of the fields the panel shows with a date unit (field overrides by name)."""
    config = panel.get("fieldConfig", {})
    if is_date_unit(config.get("defaults", {}).get("unit")):
        every = text_fields(panel)
        assert every is not None, f"{panel['title']}: a default date unit over a stream's fields"
        return every
    fields = set()
    for override in config.get("overrides", []):
        if not any(p["id"] == "unit" and is_date_unit(p["value"]) for p in override["properties"]):
            continue
        assert override["matcher"]["id"] == "byName", f"{panel['title']}: only byName is checked here"
        fields.add(source_name(panel, override["matcher"]["options"]))
    return fields


def conversion_before_display(panel, field: str) -> dict | None:
    """The `convertFieldType` conversion of `field` that runs before `organize` renames it."""
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "organize":
            return None
        if transformation["id"] == "convertFieldType":
            for conversion in transformation["options"]["conversions"]:
                if conversion.get("targetField") == field:
                    return conversion
    return None


TABLE_PANELS = [
    panel for dashboard in DASHBOARDS for panel in iter_panels(dashboard) if panel.get("type") == "table"
]


@pytest.mark.parametrize("panel", TABLE_PANELS, ids=lambda p: p["title"])
def test_a_date_unit_is_put_only_on_a_field_converted_from_text(panel):
    # GIVEN the fields a table panel shows with a date unit (dateTimeAsIso, dateTimeFromNow, ...)
    maybe_text = text_fields(panel)
    for field in date_unit_fields(panel):
        if field == "$time" or (maybe_text is not None and field not in maybe_text):
            continue  # the plugin sends it as a time or number field

        # WHEN the data source may send it as text, THEN a conversion to a number runs first
        conversion = conversion_before_display(panel, field)
        assert conversion is not None, f"{panel['title']}: {field} is text from the data source: NaN"
        # (to `time`, an epoch-milliseconds text parses only with dateFormat "x": otherwise it is null)
        assert conversion["destinationType"] == "number" or (
            conversion["destinationType"] == "time" and conversion.get("dateFormat") in {"x", "X"}
        ), f"{panel['title']}: {conversion}"


def test_the_date_unit_check_catches_a_text_field_shown_as_a_date():
    panel = {
        "title": "t",
        "targets": [{"command": "ft.search", "returnFields": ["scored_at"]}],
        "fieldConfig": {
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": "when"},
                    "properties": [{"id": "unit", "value": "dateTimeAsIso"}],
                }
            ]
        },
        "transformations": [{"id": "organize", "options": {"renameByName": {"scored_at": "when"}}}],
    }

    with pytest.raises(AssertionError, match="scored_at is text from the data source"):
        test_a_date_unit_is_put_only_on_a_field_converted_from_text(panel)

    convert = {"targetField": "scored_at", "destinationType": "time"}
    panel["transformations"].insert(0, {"id": "convertFieldType", "options": {"conversions": [convert]}})
    with pytest.raises(AssertionError, match="destinationType"):
        test_a_date_unit_is_put_only_on_a_field_converted_from_text(panel)

    convert["destinationType"] = "number"
    test_a_date_unit_is_put_only_on_a_field_converted_from_text(panel)


def test_the_rejected_records_panel_hides_the_digit_strings_the_data_source_would_round():
    # Sequence numbers are 56-59 digits: the plugin sends a stream field that reads as a number as a
    # float64. `position` ("<shard id>/<sequence number>") never reads as a number.
    panels = panels_where(lambda t: t.get("keyName") == schema.REJECTED_STREAM and "range" in t["command"])
    for panel in panels:
        hidden = hidden_fields(panel)
        assert {"sequence_number", "shard_id"} <= hidden, panel["title"]
        assert "position" not in hidden, panel["title"]


@pytest.mark.parametrize("panel", TABLE_PANELS, ids=lambda p: p["title"])
def test_a_table_fixes_its_column_order(panel):
    # The plugin builds an FT.SEARCH frame from a Go map (pkg/redis-search.go: `for fieldName, slice :=
    # range fieldValuesMap`), whose iteration order is random: without `indexByName` the columns would
    # change places from one refresh to the next.
    [organize] = [t["options"] for t in panel.get("transformations", []) if t["id"] == "organize"]
    fields = text_fields(panel)
    if fields is None:  # a stream: its fields come in the order the scorer wrote them; ordered anyway
        fields = {"reason", "detail", "position", "rejected_at"}
    missing = fields - set(organize.get("indexByName", {}))
    assert not missing, f"{panel['title']}: no place for {sorted(missing)}"
    places = list(organize["indexByName"].values())
    assert len(set(places)) == len(places), f"{panel['title']}: two fields share a place"


def test_the_renderer_orders_columns_as_grafana_does_whatever_order_they_come_in():
    # GIVEN the flagged-transactions panel, and its FT.SEARCH columns in a scrambled order
    [panel] = [p for p in TABLE_PANELS if p["title"] == "Latest flagged transactions"]
    [target] = [t for t in TARGETS if t.panel_id == panel["id"] and t.panel_title == panel["title"]]
    fields = ["keyName", *panel["targets"][0]["returnFields"]]
    scrambled = fields[::-1]
    table = Table(columns=tuple(scrambled), rows=(tuple(f"v-{name}" for name in scrambled),))
    result = PanelResult(panel, (TargetResult(target, ("FT.SEARCH",), table=table),))

    # WHEN
    shown = displayed_table(result)

    # THEN the columns are in the panel's order (keyName excluded, names as renamed)
    organize = next(t["options"] for t in panel["transformations"] if t["id"] == "organize")
    rename = organize["renameByName"]
    assert shown.columns == tuple(rename.get(name, name) for name in fields[1:])
    # and each value stays with its column (scored_at aside: converted to a number, null for this text)
    row = dict(zip(shown.columns, shown.rows[0], strict=True))
    assert {name: row[rename.get(name, name)] for name in fields[1:] if name != "scored_at"} == {
        name: f"v-{name}" for name in fields[1:] if name != "scored_at"
    }
