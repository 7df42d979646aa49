"""The PNG renderer draws the dashboards from real data (the handler's), through the panels' own queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from matplotlib import image

from grafana.queries import dashboard_paths
from grafana.render import main, render_dashboard


def pixels(path):
    return image.imread(path)


def test_render_draws_every_dashboard_from_the_scored_batch(scored_batch, tmp_path):
    # WHEN the dashboards are rendered from the Redis the handler filled
    paths = render_dashboard(scored_batch.redis_url, tmp_path / "scored", now_ms=scored_batch.now_ms)

    # THEN there is one non-empty, non-blank PNG per dashboard
    assert sorted(p.stem for p in paths) == sorted(p.stem for p in dashboard_paths())
    for path in paths:
        picture = pixels(path)
        assert picture.shape[0] > 400
        assert picture.shape[1] > 1000
        assert picture[..., :3].std() > 0.02, f"{path.name} is a blank picture"

    # AND the data is what draws the panels: the same dashboards over an empty Redis look different
    with redis.Redis.from_url(scored_batch.redis_url) as client:
        client.flushall()
    empty = render_dashboard(scored_batch.redis_url, tmp_path / "empty", now_ms=scored_batch.now_ms)
    for drawn, blank in zip(sorted(paths), sorted(empty), strict=True):
        assert not np.array_equal(pixels(drawn), pixels(blank)), drawn.name


def test_command_line_writes_the_pictures(scored_batch, tmp_path, capsys):
    assert main(["--redis-url", scored_batch.redis_url, "--out", str(tmp_path), "--from", "now-15m"]) == 0

    written = capsys.readouterr().out.split()
    assert sorted(written) == sorted(str(tmp_path / f"{p.stem}.png") for p in dashboard_paths())


def test_command_line_refuses_an_absolute_time(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--redis-url", "redis://localhost:1/0", "--out", str(tmp_path), "--from", "2026-01-01"])

    assert "use now-<n><s|m|h|d|w>" in capsys.readouterr().err


def test_command_line_explains_an_unreachable_redis_without_echoing_the_url(tmp_path, capsys):
    from emulators.redis_stack import free_port

    url = f"redis://default:s3cret-pass@127.0.0.1:{free_port()}/0"
    code = main(["--redis-url", url, "--out", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 1  # a user error: one line (cli_errors), no traceback
    assert len(err.strip().splitlines()) == 1
    assert "cannot use Redis" in err
    assert "s3cret-pass" not in err


def test_a_finer_bucket_is_what_the_titles_and_legends_say(scored_batch):
    from grafana.queries import connect, load_dashboard, run_dashboard
    from grafana.render import renamed_for_bucket

    # GIVEN the operations dashboard run with 30-second buckets instead of its 1-minute ones
    with connect(scored_batch.redis_url) as client:
        panels = run_dashboard(
            client, load_dashboard("fraud-operations"), now_ms=scored_batch.now_ms, bucket_ms=30_000
        )

    # WHEN the renderer names them
    renamed = {p.title: p for p in (renamed_for_bucket(panel, 30_000) for panel in panels)}

    # THEN no bucketed panel or legend still claims "minute", and the samples are 30 s buckets
    bucketed = [p for p in renamed.values() if any(r.target.target.get("bucket") for r in p.results)]
    assert bucketed
    for panel in bucketed:
        names = [panel.title, *(s.name for r in panel.results for s in r.series)]
        assert not any("minute" in n or "/ min" in n for n in names), names
        for result in panel.results:
            assert result.target.target["bucket"] == 30_000
            for series in result.series:
                assert all(ts % 30_000 == 0 for ts in series.timestamps_ms)
    assert "Verdicts per 30 s" in renamed
    assert {s.name for s in renamed["Throughput"].results[0].series} == {"transactions / 30 s"}


def out_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("")
    return tmp_path / "afile", "cannot create the folder", "File exists, and it is not a folder"


def out_under_proc(tmp_path):
    return Path("/proc/nope"), "cannot create the folder", "No such file or directory"


def picture_path_is_a_folder(tmp_path):
    (tmp_path / "charts" / "fraud-demo.png").mkdir(parents=True)
    return tmp_path / "charts", "cannot write the picture", "Is a directory"


@pytest.mark.parametrize(
    "case", [out_is_a_file, out_under_proc, picture_path_is_a_folder], ids=lambda c: c.__name__
)
def test_command_line_names_an_out_path_it_cannot_write_in_one_line(redis_url, tmp_path, capsys, case):
    # GIVEN a Redis Stack (empty: the pictures would be drawn) and an --out that cannot be written
    out, what, reason = case(tmp_path)
    if not Path("/proc").is_dir() and out == Path("/proc/nope"):
        pytest.skip("no /proc here")

    # WHEN the renderer is run
    code = main(["--redis-url", redis_url, "--out", str(out)])

    # THEN one line names the path and the operating system's reason, and no traceback
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("grafana.render: error: --out: ")
    assert what in err
    assert str(out) in err
    assert reason in err


def test_a_date_unit_on_text_is_drawn_as_grafana_shows_it():
    from grafana.queries import NUMBER, STRING, convert_field_type
    from grafana.render import format_cell

    # Grafana parses a string under a date unit as a date text: epoch milliseconds there are NaN
    assert format_cell("1796164056443", "dateTimeAsIso", STRING) == "NaN"
    # converted to a number first, it is the date
    kind, (value,) = convert_field_type(["1796164056443"], STRING, {"destinationType": "number"})
    assert kind == NUMBER
    assert format_cell(value, "dateTimeAsIso", kind) == "2026-12-01 22:27:36"
    # to time without a date format, the text does not parse (Grafana: null); with "x" it does
    assert convert_field_type(["1796164056443"], STRING, {"destinationType": "time"})[1] == [None]
    time_x = {"destinationType": "time", "dateFormat": "x"}
    assert convert_field_type(["1796164056443"], STRING, time_x)[1] == [1796164056443.0]
