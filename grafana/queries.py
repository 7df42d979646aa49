"""Run the dashboards' Redis queries with redis-py, built exactly as the Grafana Redis data source
(plugin `redis-datasource` 2.2.0) builds them from a panel target.

The PNG renderer and the tests read the targets out of the versioned dashboard JSON and execute them
here, so a panel that renders (or passes its test) is a panel whose command Redis really answers:

    with connect(url) as client:
        for panel in run_dashboard(client, load_dashboard("fraud-operations")):
            print(panel.title, [result.has_data for result in panel.results])

Only the commands the dashboards use are supported; any other target raises `UnsupportedQuery`
(a new panel needs its command here before the tests can pass).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from grafana import DASHBOARDS_DIR

_RELATIVE_TIME = re.compile(r"now(?:-(\d+)([smhdw]))?")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class UnsupportedQuery(ValueError):
    """A panel target this module cannot run as the data source would."""


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range in epoch milliseconds, as Grafana hands it to the data source."""

    start_ms: int
    end_ms: int

    @classmethod
    def from_dashboard(
        cls, dashboard: Mapping[str, Any], now_ms: int | None = None, *, time_from: str | None = None
    ) -> TimeRange:
        """The dashboard's default range, or `time_from` (e.g. "now-15m") to "now" as a user would pick."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        window = dashboard.get("time", {"from": "now-1h", "to": "now"})
        if time_from is not None:
            window = {"from": time_from, "to": "now"}
        return cls(_resolve_relative(window["from"], now), _resolve_relative(window["to"], now))


def _resolve_relative(expression: str, now_ms: int) -> int:
    match = _RELATIVE_TIME.fullmatch(expression)
    if match is None:
        raise UnsupportedQuery(f"time {expression!r}: only 'now' and 'now-<n><s|m|h|d|w>' are supported")
    amount, unit = match.groups()
    return now_ms - (int(amount) * _UNIT_MS[unit] if amount else 0)


@dataclass(frozen=True)
class PanelTarget:
    """One query of one panel."""

    dashboard_uid: str
    panel_id: int
    panel_title: str
    target: Mapping[str, Any]

    @property
    def ref_id(self) -> str:
        return str(self.target.get("refId", "A"))

    @property
    def command(self) -> str:
        return str(self.target.get("command", "")).lower()

    def __str__(self) -> str:
        return f"{self.dashboard_uid}/{self.panel_id} {self.panel_title!r} {self.ref_id}: {self.command}"

    def redis_command(self, window: TimeRange) -> list[str | int]:
        """The argument vector the data source sends for this target over `window`."""
        target = self.target
        if target.get("query"):
            raise UnsupportedQuery(f"{self}: raw CLI queries are not used by these dashboards")
        builder = _BUILDERS.get(self.command)
        if builder is None:
            raise UnsupportedQuery(f"{self}: command {self.command!r} is not supported")
        return builder(target, window)


def _aggregation(target: Mapping[str, Any]) -> list[str | int]:
    aggregation = target.get("aggregation")
    if not aggregation:
        return []
    return ["AGGREGATION", aggregation, int(target["bucket"])]


def _ts_range(target: Mapping[str, Any], window: TimeRange) -> list[str | int]:
    return ["TS.RANGE", target["keyName"], window.start_ms, window.end_ms, *_aggregation(target)]


def _ts_mrange(target: Mapping[str, Any], window: TimeRange) -> list[str | int]:
    # The data source splits the filter on whitespace and always asks for the labels.
    return [
        "TS.MRANGE",
        window.start_ms,
        window.end_ms,
        *_aggregation(target),
        "WITHLABELS",
        "FILTER",
        *str(target["filter"]).split(),
    ]


def _xlen(target: Mapping[str, Any], window: TimeRange) -> list[str | int]:
    return ["XLEN", target["keyName"]]


def _xrevrange(target: Mapping[str, Any], window: TimeRange) -> list[str | int]:
    # Without explicit bounds the data source uses the time range: stream ids are epoch milliseconds.
    end = target.get("end") or window.end_ms
    start = target.get("start") or window.start_ms
    command: list[str | int] = ["XREVRANGE", target["keyName"], end, start]
    if target.get("count"):
        command += ["COUNT", int(target["count"])]
    return command


def _ft_search(target: Mapping[str, Any], window: TimeRange) -> list[str | int]:
    command: list[str | int] = ["FT.SEARCH", target["keyName"], target.get("searchQuery") or "*"]
    fields = list(target.get("returnFields") or [])
    if fields:
        command += ["RETURN", len(fields), *fields]
    count, offset = int(target.get("count") or 0), int(target.get("offset") or 0)
    if count or offset:
        command += ["LIMIT", offset, count or 10]
    if target.get("sortBy"):
        command += ["SORTBY", target["sortBy"], target.get("sortDirection") or "ASC"]
    return command


_BUILDERS = {
    "ts.range": _ts_range,
    "ts.mrange": _ts_mrange,
    "xlen": _xlen,
    "xrevrange": _xrevrange,
    "ft.search": _ft_search,
}


@dataclass(frozen=True)
class Series:
    """A named time series (one data frame of a time-series query)."""

    name: str
    timestamps_ms: tuple[int, ...]
    values: tuple[float, ...]


# A data frame field's type as Grafana sees it: the data source decides it, `convertFieldType` changes it.
STRING, NUMBER, TIME = "string", "number", "time"


@dataclass(frozen=True)
class Table:
    """Rows of a tabular query (FT.SEARCH documents, stream entries), typed as the data source types them:
    a `number` column holds floats (float64 in the plugin, so a long digit string comes back rounded),
    a `string` column the text Redis returned; None is a null cell."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    types: tuple[str, ...] = ()

    def type_of(self, column: str) -> str:
        types = self.types or (STRING,) * len(self.columns)
        return types[self.columns.index(column)]


@dataclass(frozen=True)
class TargetResult:
    target: PanelTarget
    command: tuple[str | int, ...]
    series: tuple[Series, ...] = ()
    table: Table | None = None
    # Redis's error for this target (e.g. a series not created yet), shown on the panel as Grafana does.
    error: str | None = None

    @property
    def has_data(self) -> bool:
        return any(s.values for s in self.series) or (self.table is not None and bool(self.table.rows))


@dataclass(frozen=True)
class PanelResult:
    panel: Mapping[str, Any]
    results: tuple[TargetResult, ...]

    @property
    def title(self) -> str:
        return str(self.panel.get("title", ""))


def dashboard_paths() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(uid_or_path: str | Path) -> dict[str, Any]:
    """A versioned dashboard by uid (its file is `<uid>.json`) or by path."""
    path = Path(uid_or_path)
    if not path.suffix:
        path = DASHBOARDS_DIR / f"{uid_or_path}.json"
    return json.loads(path.read_text())


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_targets(dashboard: Mapping[str, Any]) -> list[PanelTarget]:
    return [
        PanelTarget(
            dashboard_uid=str(dashboard.get("uid")),
            panel_id=int(panel["id"]),
            panel_title=str(panel.get("title", "")),
            target=target,
        )
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def connect(redis_url: str) -> redis.Redis:
    """A client that sees replies as the data source does: RESP2 (its Redis client, radix v3, speaks
    nothing else; RESP3 would turn TS.MRANGE and FT.SEARCH replies into maps), decoded to text."""
    return redis.Redis.from_url(redis_url, protocol=2, decode_responses=True)


def run_target(client: redis.Redis, target: PanelTarget, window: TimeRange) -> TargetResult:
    """Execute one target with a client from `connect`."""
    command = target.redis_command(window)
    try:
        reply = client.execute_command(*command)
    except redis.ResponseError as exc:
        return TargetResult(target=target, command=tuple(command), error=str(exc))
    parsed = _PARSERS[target.command](target.target, reply, window)
    if isinstance(parsed, Table):
        return TargetResult(target=target, command=tuple(command), table=parsed)
    return TargetResult(target=target, command=tuple(command), series=tuple(parsed))


def run_dashboard(
    client: redis.Redis,
    dashboard: Mapping[str, Any],
    now_ms: int | None = None,
    *,
    time_from: str | None = None,
    window: TimeRange | None = None,
    bucket_ms: int | None = None,
) -> list[PanelResult]:
    """Every panel's targets over the dashboard's time range (see `TimeRange`), in panel order.

    `window` replaces the range (absolute, as a zoom in Grafana does); `bucket_ms` replaces every
    aggregating target's bucket, as a finer interval would (a run of seconds in 1-minute buckets is
    one bar)."""
    window = window or TimeRange.from_dashboard(dashboard, now_ms, time_from=time_from)
    results: dict[int, list[TargetResult]] = {}
    for target in panel_targets(dashboard):
        if bucket_ms is not None and target.target.get("bucket"):
            target = replace(target, target={**target.target, "bucket": bucket_ms})
        results.setdefault(target.panel_id, []).append(run_target(client, target, window))
    return [
        PanelResult(panel=panel, results=tuple(results.get(int(panel["id"]), ())))
        for panel in iter_panels(dashboard)
    ]


def _samples(rows: Sequence[Sequence[Any]]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    return tuple(int(ts) for ts, _ in rows), tuple(float(value) for _, value in rows)


def _parse_ts_range(target: Mapping[str, Any], reply: Any, window: TimeRange) -> list[Series]:
    timestamps, values = _samples(reply)
    return [Series(name=target.get("legend") or target["keyName"], timestamps_ms=timestamps, values=values)]


def _parse_ts_mrange(target: Mapping[str, Any], reply: Any, window: TimeRange) -> list[Series]:
    series = []
    for key, labels, rows in reply:
        label_map = {name: value for name, value in labels}
        legend = target.get("legend")
        timestamps, values = _samples(rows)
        series.append(
            Series(
                name=label_map.get(legend, key) if legend else key, timestamps_ms=timestamps, values=values
            )
        )
    return series


def _parse_xlen(target: Mapping[str, Any], reply: Any, window: TimeRange) -> list[Series]:
    return [Series(name=target["keyName"], timestamps_ms=(window.end_ms,), values=(float(reply),))]


def _parse_xrevrange(target: Mapping[str, Any], reply: Any, window: TimeRange) -> Table:
    """As the plugin (pkg/redis-stream.go, createFrameFromRangeResponse) builds the frame: a field is a
    float64 column if its value in the first entry that has it parses as a float (strconv.ParseFloat),
    else a string column; later values that do not parse become 0, a missing value 0 or ""."""
    entries = [(entry_id, dict(_pairs(fields))) for entry_id, fields in reply]
    types = {"$streamId": STRING}
    for _, fields in entries:
        for name, value in fields.items():
            types.setdefault(name, NUMBER if go_parse_float(value) is not None else STRING)
    table = _table("$streamId", entries)

    def cell(name: str, value: str, present: bool) -> Any:
        if types[name] == STRING:
            return value
        number = go_parse_float(value) if present else None
        return 0.0 if number is None else number

    rows = tuple(
        (
            key,
            *(
                cell(name, value, name in fields)
                for name, value in zip(table.columns[1:], row[1:], strict=True)
            ),
        )
        for (key, fields), row in zip(entries, table.rows, strict=True)
    )
    return Table(columns=table.columns, rows=rows, types=tuple(types[name] for name in table.columns))


def _parse_ft_search(target: Mapping[str, Any], reply: Any, window: TimeRange) -> Table:
    # RESP2 FT.SEARCH: [total, key1, [field, value, ...], key2, [...], ...]. The plugin
    # (pkg/redis-search.go) makes every column a string field, numbers included.
    documents = [(reply[i], dict(_pairs(reply[i + 1]))) for i in range(1, len(reply), 2)]
    return _table("keyName", documents)


_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)


def go_parse_float(text: str) -> float | None:
    """The value Go's strconv.ParseFloat(text, 64) returns without error, or None (decimal forms and
    inf/nan; out of range, such as 1e400, is an error there; hex floats are not used here)."""
    if not _GO_FLOAT.fullmatch(text):
        return None
    value = float(text)
    if math.isinf(value) and "inf" not in text.lower():
        return None
    return value


def _pairs(fields: Sequence[Any] | Mapping[str, Any]) -> list[tuple[str, str]]:
    # A flat [field, value, ...] reply; redis-py already pairs stream entries into a dict.
    if isinstance(fields, Mapping):
        return [(str(name), str(value)) for name, value in fields.items()]
    return [(str(fields[i]), str(fields[i + 1])) for i in range(0, len(fields), 2)]


def _table(key_column: str, records: list[tuple[str, dict[str, str]]]) -> Table:
    columns: list[str] = [key_column]
    for _, fields in records:
        columns += [name for name in fields if name not in columns]
    rows = tuple(tuple([key, *(fields.get(name, "") for name in columns[1:])]) for key, fields in records)
    return Table(columns=tuple(columns), rows=rows, types=(STRING,) * len(columns))


# Units Grafana's display processor treats as dates (packages/grafana-data/src/field/displayProcessor.ts,
# `timeFormats`, plus any `time:<format>`): it parses a *string* value of such a field as a date text,
# so an epoch-milliseconds string ("1796164056443") shows as NaN; a number field shows the date.
DATE_UNITS = frozenset(
    {
        "dateTimeAsIso",
        "dateTimeAsIsoNoDateIfToday",
        "dateTimeAsUS",
        "dateTimeAsUSNoDateIfToday",
        "dateTimeAsLocal",
        "dateTimeAsLocalNoDateIfToday",
        "dateTimeAsSystem",
        "dateTimeFromNow",
    }
)


def is_date_unit(unit: str | None) -> bool:
    return bool(unit) and (unit in DATE_UNITS or str(unit).startswith("time:"))


def displayed_table(panel: PanelResult) -> Table | None:
    """The table a table panel shows: its targets' tables through the panel's transformations, in
    order, as Grafana applies them (`merge`: one table per target, rows appended; `convertFieldType`;
    `organize`: order, exclude and rename). None if no target returned a table."""
    tables = [result.table for result in panel.results if result.table is not None]
    if not tables:
        return None
    columns = list(tables[0].columns)
    types = [tables[0].type_of(name) for name in columns]
    rows = [list(row) for table in tables for row in table.rows]
    for transformation in panel.panel.get("transformations", []):
        options = transformation.get("options", {})
        if transformation.get("id") == "convertFieldType":
            for conversion in options.get("conversions", []):
                if conversion.get("targetField") not in columns:
                    continue
                i = columns.index(conversion["targetField"])
                types[i], values = convert_field_type([row[i] for row in rows], types[i], conversion)
                for row, value in zip(rows, values, strict=True):
                    row[i] = value
        elif transformation.get("id") == "organize":
            # Order first (a field missing from indexByName goes last, in its own order: a stable sort,
            # as Grafana's orderFieldsTransformer), then exclude and rename.
            index_by_name = options.get("indexByName", {})
            order = sorted(range(len(columns)), key=lambda i: index_by_name.get(columns[i], float("inf")))
            excluded = options.get("excludeByName", {})
            keep = [i for i in order if not excluded.get(columns[i])]
            rename = options.get("renameByName", {})
            columns = [rename.get(columns[i], columns[i]) for i in keep]
            types = [types[i] for i in keep]
            rows = [[row[i] for i in keep] for row in rows]
    return Table(columns=tuple(columns), rows=tuple(tuple(row) for row in rows), types=tuple(types))


_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3,})?(?:Z|[-+]\d{2}:?\d{2})")


def convert_field_type(
    values: Sequence[Any], field_type: str, conversion: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    """Grafana's `convertFieldType` for one field (packages/grafana-data/src/transformations/
    transformers/convertFieldType.ts): the new type and values. To `number`: `+value` with commas
    stripped, null if not finite. To `time`: numbers are kept; strings are parsed as ISO 8601, with
    `dateFormat` "x"/"X" as epoch milliseconds/seconds, and otherwise with the date format
    YYYY-MM-DD HH:mm:ss, which an epoch-milliseconds text does not match: it becomes null."""
    destination = conversion.get("destinationType")
    if destination == NUMBER:
        return NUMBER, [_to_number(value) for value in values]
    if destination == TIME:
        return TIME, [_to_time(value, conversion.get("dateFormat")) for value in values]
    if destination == STRING:
        return STRING, [None if value is None else str(value) for value in values]
    return field_type, list(values)


def _to_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.replace(",", "").strip()
        if not re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", value):
            return None  # JavaScript's +"abc" is NaN (hex and "Infinity" are not used here)
    number = float(value)
    return number if math.isfinite(number) else None


def _to_time(value: Any, date_format: str | None) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    if _ISO_8601.fullmatch(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
    if date_format in {"x", "X"} and _to_number(text) is not None:
        return _to_number(text) * (1000 if date_format == "X" else 1)
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000
    except ValueError:
        return None


_PARSERS = {
    "ts.range": _parse_ts_range,
    "ts.mrange": _parse_ts_mrange,
    "xlen": _parse_xlen,
    "xrevrange": _parse_xrevrange,
    "ft.search": _parse_ft_search,
}
