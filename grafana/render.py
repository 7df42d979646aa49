"""Draw the Grafana dashboards as PNG pictures from a Redis with data, without Grafana.

    python -m grafana.render --redis-url redis://localhost:6379/0 --out artifacts/grafana
    make render ARGS="--redis-url $REDIS_URL --out docs/images"

One PNG per dashboard: every panel is drawn where the dashboard JSON places it (its 24-column grid
position) from the results of the panel's own Redis commands (`grafana.queries`), so the picture
shows what Grafana shows for the same data and time range. Used by `make demo` and for the README.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

import cli_errors
from grafana.queries import (
    STRING,
    PanelResult,
    TimeRange,
    connect,
    dashboard_paths,
    displayed_table,
    is_date_unit,
    load_dashboard,
    run_dashboard,
)

GRID_COLUMNS = 24
COLUMN_INCHES = 0.75  # 24 columns -> an 18-inch wide picture
ROW_INCHES = 0.36  # one Grafana grid row (30 px) at this scale
DPI = 110
TABLE_ROWS = 8
# Grafana's dark theme, so the picture reads like the real dashboard.
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
PALETTE = ("#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff")
NAMED_COLOURS = {
    "fraud": "#f2495c",
    "suspicious": "#ff9830",
    "legit": "#73bf69",
    "p50": "#5794f2",
    "p99": "#ff780a",
}


def render_dashboard(
    redis_url: str,
    out_dir: Path,
    *,
    now_ms: int | None = None,
    time_from: str | None = None,
    window: TimeRange | None = None,
    bucket_ms: int | None = None,
) -> list[Path]:
    """Render every versioned dashboard from the Redis at `redis_url`; returns the PNG paths.

    `time_from` ("now-15m") replaces the dashboards' default range, as picking a range in Grafana does;
    `window` (absolute) and `bucket_ms` zoom in, as the demo does on its live period. An `out_dir`
    that cannot be created or written raises `OutputError`.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out_dir, "cannot create the folder", exc) from exc
    written = []
    with connect(redis_url) as client:
        for path in dashboard_paths():
            dashboard = load_dashboard(path)
            shown = window or TimeRange.from_dashboard(dashboard, now_ms, time_from=time_from)
            panels = run_dashboard(client, dashboard, window=shown, bucket_ms=bucket_ms)
            if bucket_ms is not None:
                panels = [renamed_for_bucket(panel, bucket_ms) for panel in panels]
            target = out_dir / f"{dashboard['uid']}.png"
            figure = draw_dashboard(dashboard, panels, shown)
            try:
                figure.savefig(target, dpi=DPI, facecolor=BACKGROUND)
            except OSError as exc:
                raise OutputError(target, "cannot write the picture", exc) from exc
            written.append(target)
    return written


class OutputError(Exception):
    """The pictures cannot be written where asked (a file in the folder's place, no permission, a
    read-only or missing file system): the path and the operating system's reason, in one line."""

    def __init__(self, path: Path, what: str, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        if isinstance(cause, FileExistsError) and not path.is_dir():
            reason += ", and it is not a folder"
        super().__init__(f"{what} {path}: {reason}")
        self.path = path


_PER_MINUTE = re.compile(r"(per|each) minute|/ min\b")


def bucket_label(bucket_ms: int) -> str:
    if bucket_ms % 60_000 == 0:
        minutes = bucket_ms // 60_000
        return "minute" if minutes == 1 else f"{minutes} min"
    return f"{bucket_ms / 1000:g} s"


def renamed_for_bucket(panel: PanelResult, bucket_ms: int) -> PanelResult:
    """A panel drawn with another bucket than its JSON's 1 minute says so: "per minute", "each
    minute" and "/ min" in its title and legends become the bucket actually used (a count per
    500 ms must not be labelled per minute)."""
    label = bucket_label(bucket_ms)

    def rename(text: str) -> str:
        return _PER_MINUTE.sub(
            lambda m: f"/ {label}" if m.group(0).startswith("/") else f"{m.group(1)} {label}", text
        )

    results = tuple(
        replace(result, series=tuple(replace(s, name=rename(s.name)) for s in result.series))
        for result in panel.results
    )
    return PanelResult(
        panel={**panel.panel, "title": rename(str(panel.panel.get("title", "")))}, results=results
    )


def draw_dashboard(dashboard: Mapping[str, Any], panels: Sequence[PanelResult], window: TimeRange) -> Figure:
    rows = max(p.panel["gridPos"]["y"] + p.panel["gridPos"]["h"] for p in panels)
    title_rows = 1.5
    height = (rows + title_rows) * ROW_INCHES
    figure = Figure(figsize=(GRID_COLUMNS * COLUMN_INCHES, height), facecolor=BACKGROUND)
    start = datetime.fromtimestamp(window.start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    end = datetime.fromtimestamp(window.end_ms / 1000, UTC).strftime("%H:%M UTC")
    figure.text(
        0.01,
        1 - 0.5 * ROW_INCHES / height,
        f"{dashboard['title']}    {start} – {end}",
        color=TEXT,
        fontsize=13,
        va="center",
    )
    for panel in panels:
        axes = figure.add_axes(_panel_rect(panel.panel["gridPos"], rows, title_rows))
        _style(axes)
        axes.set_title(panel.title, color=TEXT, fontsize=9, loc="left")
        draw = {"timeseries": _draw_timeseries, "stat": _draw_stat, "table": _draw_table}.get(
            panel.panel.get("type", ""), _draw_unsupported
        )
        if not any(result.has_data for result in panel.results):
            _draw_no_data(axes, [result.error for result in panel.results if result.error])
        else:
            draw(axes, panel, window)
    return figure


def _panel_rect(grid: Mapping[str, int], rows: int, title_rows: float) -> list[float]:
    """Axes rectangle (figure fractions) for a grid position, inset for titles and tick labels."""
    total = rows + title_rows
    left, width = grid["x"] / GRID_COLUMNS, grid["w"] / GRID_COLUMNS
    bottom = 1 - (title_rows + grid["y"] + grid["h"]) / total
    height = grid["h"] / total
    inset_x, inset_top, inset_bottom = 0.03, 0.9 / total, 1.1 / total
    return [left + inset_x, bottom + inset_bottom, width - inset_x - 0.008, height - inset_top - inset_bottom]


def _style(axes: Axes) -> None:
    axes.set_facecolor(PANEL)
    axes.tick_params(colors=TEXT, labelsize=7)
    for spine in axes.spines.values():
        spine.set_color(GRID)
    axes.grid(color=GRID, linewidth=0.5)


def _colour(name: str, index: int) -> str:
    return NAMED_COLOURS.get(name, PALETTE[index % len(PALETTE)])


def _draw_timeseries(axes: Axes, panel: PanelResult, window: TimeRange) -> None:
    custom = panel.panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    style = custom.get("drawStyle", "line")
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    series = [s for result in panel.results for s in result.series if s.values]
    bottoms: dict[int, float] = {}
    bucket_ms = min(
        (int(r.target.target.get("bucket", 0)) for r in panel.results if r.target.target.get("bucket")),
        default=60_000,
    )
    for index, one in enumerate(series):
        times = [datetime.fromtimestamp(ts / 1000, UTC) for ts in one.timestamps_ms]
        colour = _colour(one.name, index)
        if style == "bars":
            base = [bottoms.get(ts, 0.0) if stacked else 0.0 for ts in one.timestamps_ms]
            # A bucket's timestamp is its start: each bar spans its minute (widths are in days on a
            # date axis), with a small gap between buckets.
            axes.bar(
                times,
                one.values,
                width=bucket_ms / 86_400_000 * 0.85,
                align="edge",
                bottom=base,
                color=colour,
                label=one.name,
            )
            if stacked:
                for ts, value, below in zip(one.timestamps_ms, one.values, base, strict=True):
                    bottoms[ts] = below + value
        elif style == "points":
            axes.scatter(times, one.values, s=6, color=colour, label=one.name)
        else:
            # A lone sample would be invisible as a line: mark short series' points.
            marker = "o" if len(one.values) < 3 else None
            axes.plot(
                times, one.values, color=colour, linewidth=1.2, marker=marker, markersize=3, label=one.name
            )
    axes.set_xlim(
        datetime.fromtimestamp(window.start_ms / 1000, UTC), datetime.fromtimestamp(window.end_ms / 1000, UTC)
    )
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    defaults = panel.panel.get("fieldConfig", {}).get("defaults", {})
    if defaults.get("unit") == "percentunit":
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif defaults.get("unit") == "ms":
        axes.set_ylabel("ms", color=TEXT, fontsize=7)
    if "min" in defaults or "max" in defaults:
        axes.set_ylim(defaults.get("min"), defaults.get("max"))
    legend = axes.legend(fontsize=7, loc="upper left", facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT)
    legend.get_frame().set_alpha(0.8)


def _draw_stat(axes: Axes, panel: PanelResult, window: TimeRange) -> None:
    calc = panel.panel.get("options", {}).get("reduceOptions", {}).get("calcs", ["lastNotNull"])[0]
    values = [v for result in panel.results for s in result.series for v in s.values]
    value = sum(values) if calc == "sum" else values[-1]
    colour = panel.panel.get("fieldConfig", {}).get("defaults", {}).get("color", {}).get("fixedColor", TEXT)
    text = f"{value:,.0f}" if math.isclose(value, round(value)) else f"{value:,.2f}"
    axes.text(
        0.5, 0.45, text, ha="center", va="center", fontsize=26, color=_css_colour(colour), weight="bold"
    )
    axes.set_axis_off()


def _css_colour(name: str) -> str:
    return {"red": "#f2495c", "orange": "#ff9830", "blue": "#5794f2", "purple": "#b877d9"}.get(name, name)


def table_text(panel: PanelResult) -> tuple[list[str], list[list[str]]]:
    """A table panel's column names and cells as Grafana shows them: the panel's transformations
    (`grafana.queries.displayed_table`), then each column's unit applied to its typed values."""
    table = displayed_table(panel)
    if table is None:
        return [], []
    units = _column_units(panel, table.columns)
    types = [table.type_of(column) for column in table.columns]
    rows = [
        [format_cell(cell, unit, kind) for cell, unit, kind in zip(row, units, types, strict=True)]
        for row in table.rows
    ]
    return list(table.columns), rows


def _draw_table(axes: Axes, panel: PanelResult, window: TimeRange) -> None:
    columns, all_rows = table_text(panel)
    axes.set_axis_off()
    rows = all_rows[:TABLE_ROWS]
    drawn = axes.table(cellText=rows, colLabels=columns, loc="upper center", cellLoc="left")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(7)
    for cell in drawn.get_celld().values():
        cell.set_facecolor(PANEL)
        cell.set_edgecolor(GRID)
        cell.get_text().set_color(TEXT)
    if len(all_rows) > TABLE_ROWS:
        axes.text(1.0, 0.0, f"{len(all_rows) - TABLE_ROWS} more rows", ha="right", color=TEXT, fontsize=7)


def _column_units(panel: PanelResult, columns: Sequence[str]) -> list[str | None]:
    """Per-column unit: the panel's `byName` field overrides (they see the names after the
    transformations), else its default unit."""
    default = panel.panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    units: dict[str, str] = {}
    for override in panel.panel.get("fieldConfig", {}).get("overrides", []):
        if override.get("matcher", {}).get("id") == "byName":
            for prop in override.get("properties", []):
                if prop.get("id") == "unit":
                    units[override["matcher"]["options"]] = prop["value"]
    return [units.get(column, default) for column in columns]


def format_cell(cell: Any, unit: str | None, kind: str = STRING) -> str:
    """One table cell as Grafana's display processor shows it: `kind` is the field's type after the
    transformations (`grafana.queries.Table.type_of`), None a null (empty) cell."""
    if cell is None:
        return ""
    if is_date_unit(unit) and kind == STRING:
        # Grafana parses a string as a date text (moment.utc): epoch milliseconds in a string are NaN.
        try:
            number = datetime.fromisoformat(str(cell).replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            return "NaN"
    else:
        try:
            number = float(cell)
        except ValueError:
            return cell if len(cell) <= 28 else cell[:27] + "…"
    if is_date_unit(unit):
        return datetime.fromtimestamp(number / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if unit == "percentunit":
        return f"{number:.1%}"
    if unit == "ms":
        return f"{number:.0f} ms"
    if isinstance(cell, str):
        return cell if number.is_integer() else f"{number:.3f}"
    # A number field: a float64, as the data source sent it (digits beyond ~16 are already lost).
    if number.is_integer():
        return f"{number:.0f}" if abs(number) < 1e16 else f"{number:.6g}"
    return f"{number:.3f}"


def _draw_no_data(axes: Axes, errors: Sequence[str]) -> None:
    message = "No data" + (f"\n({errors[0]})" if errors else "")
    axes.text(0.5, 0.5, message, ha="center", va="center", color=TEXT, fontsize=9, transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def _draw_unsupported(axes: Axes, panel: PanelResult, window: TimeRange) -> None:
    axes.text(0.5, 0.5, f"({panel.panel.get('type')} panel)", ha="center", va="center", color=TEXT)
    axes.set_axis_off()


def _relative_time(value: str) -> str:
    if not re.fullmatch(r"now-\d+[smhdw]", value):
        raise argparse.ArgumentTypeError(f"{value!r}: use now-<n><s|m|h|d|w>, e.g. now-15m")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.render", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="Redis with the scorer's data (default: $REDIS_URL)",
    )
    parser.add_argument("--out", type=Path, default=Path("artifacts/grafana"), help="output folder")
    parser.add_argument(
        "--from",
        dest="time_from",
        type=_relative_time,
        metavar="now-<n><s|m|h|d|w>",
        help="start of the time range (default: each dashboard's own, e.g. now-1h)",
    )
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("give --redis-url or set REDIS_URL")
    # One line for a Redis URL the user got wrong; anything else is our bug and keeps its traceback.
    return cli_errors.run("grafana.render", lambda: _render(args))


def _render(args: argparse.Namespace) -> int:
    hint = "give the Redis the scorer writes to as --redis-url redis://[user:password@]host:port/db"
    try:
        redis.connection.parse_url(args.redis_url)
    except ValueError:  # redis-py's URL parser
        raise cli_errors.invalid_redis_url("--redis-url") from None  # its hint says how to write one
    try:
        _require_modules(args.redis_url)
        paths = render_dashboard(args.redis_url, args.out, time_from=args.time_from)
    except (redis.ConnectionError, redis.AuthenticationError) as exc:
        # The message names host and port, never the URL (which may carry a password).
        raise cli_errors.UserError(f"cannot use Redis: {exc}", hint=hint) from exc
    except OutputError as exc:
        raise cli_errors.UserError(f"--out: {exc}", hint="give --out a folder you can write to") from exc
    for path in paths:
        print(path)
    return 0


def _require_modules(redis_url: str) -> None:
    """A Redis without JSON/Search/TimeSeries would give charts full of "unknown command": say so instead."""
    with connect(redis_url) as client:
        try:
            names = {str(module.get("name", "")).lower() for module in client.module_list()}
            major = int(str(client.info("server").get("redis_version", "0")).split(".")[0])
        except redis.exceptions.NoPermissionError:
            # A deployment's least-privilege users (e.g. `grafana`) may not list modules: skip the
            # check; a panel whose command is missing says so in its own chart.
            return
    if major >= 8:  # JSON, Search and TimeSeries are built in
        return
    wanted = {"ReJSON": {"rejson"}, "Search": {"search", "ft"}, "TimeSeries": {"timeseries"}}
    absent = [name for name, aliases in wanted.items() if not aliases & names]
    if absent:
        raise cli_errors.UserError(
            f"the Redis lacks {', '.join(absent)}, so it holds no scorer data",
            hint="point --redis-url at the Redis the scorer writes to (Redis Stack or Redis 8)",
        )


if __name__ == "__main__":
    sys.exit(main())
