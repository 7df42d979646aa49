"""The PNG renderer draws the dashboards from real data (the handler's), through the panels' own queries."""

from __future__ import annotations

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
