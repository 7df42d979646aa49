"""`make demo` itself (`python -m demo`, in-process, a smaller world), and the promises it prints:
one summary line with nothing lost, the data it used in `.demo/transactions.csv` with the times the
pipeline saw, a latency figure that agrees with the dashboard's panel, and a "send more" command
that sends new transactions every time it is run."""

from __future__ import annotations

import re
import shlex

import pytest
import redis

from contracts.features import MODEL_FEATURES
from contracts.redis_keys import TS_LATENCY_P99, txn_key
from demo import cli as demo
from demo.pipeline import LocalPipeline, PipelineSettings
from fraud_data.features import compute_features
from fraud_data.transactions import read_csv
from grafana.queries import connect, load_dashboard, run_dashboard

pytestmark = pytest.mark.e2e

SUMMARY = re.compile(
    r"^(\d+) transactions scored \(fraud (\d+), suspicious (\d+), legit (\d+)\), (\d+) rejected, (\d+) lost; "
    r"latency p50 (\d+) ms, p99 (\d+) ms \(slowest batch's p99 (\d+) ms\); "
    r"fraud verdicts vs (\d+) reported frauds: precision (n/a|[01]\.\d\d), recall (n/a|[01]\.\d\d)$"
)
SMALL = ["--customers", "500", "--count", "300", "--rate", "300"]


def test_demo_backfills_streams_and_prints_one_summary_line_with_nothing_lost(
    capsys, monkeypatch, tmp_path, local_models
):
    # GIVEN no REDIS_URL (the demo starts its own Redis Stack) and the session's trained models
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr("demo.pipeline.load_local_models", lambda _models_dir, _world: local_models)
    kept: dict = {}
    # Keep the pipeline's Redis alive past the run, to check what the summary says against it.
    monkeypatch.setattr(demo, "_keep_running", lambda pipeline: kept.update(url=pipeline.redis_url))
    monkeypatch.setattr(LocalPipeline, "stop", _stop_all_but_redis)

    # WHEN the demo runs on a small world (38 days backfilled, 300 live transactions)
    status = demo.main([*SMALL, "--work-dir", str(tmp_path), "--keep"])

    # THEN it succeeds and stdout is exactly one summary line whose counts add up
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert len(out) == 1, out
    match = SUMMARY.match(out[0])
    assert match, out[0]
    scored, fraud, suspicious, legit, rejected, lost = map(int, match.groups()[:6])
    assert scored == 300 == fraud + suspicious + legit
    assert (rejected, lost) == (0, 0)
    try:
        with redis.Redis.from_url(kept["url"], decode_responses=True) as client:
            _check_csv_is_what_the_pipeline_saw(client, tmp_path / "transactions.csv")
            _check_latency_panel_agrees_with_the_summary(kept["url"], int(match.group(9)))
    finally:
        _STOPPED_LATER.pop().stop()


_STOPPED_LATER: list = []


def _stop_all_but_redis(self: LocalPipeline) -> None:
    """LocalPipeline.stop, except that its Redis server is stopped by the test afterwards."""
    server, self.redis_server = self.redis_server, None
    _ORIGINAL_STOP(self)
    if server is not None:
        _STOPPED_LATER.append(server)


_ORIGINAL_STOP = LocalPipeline.stop


def _check_csv_is_what_the_pipeline_saw(client, path) -> None:
    # The CSV holds the backfilled history and the live transactions with the times they carried:
    # computing the features offline from it gives exactly the vectors the scorer stored online.
    transactions = read_csv(path)
    assert transactions.is_event_ordered()
    offline = compute_features(transactions, MODEL_FEATURES)
    live = [i for i, tid in enumerate(transactions.transaction_id) if client.exists(txn_key(tid))]
    assert len(live) == 300
    assert len(transactions) > 10 * len(live)  # the history is there too
    for i in live:
        stored = client.json().get(txn_key(transactions.transaction_id[i]))
        assert stored["timestamp"] == transactions.timestamp[i]
        for name in MODEL_FEATURES:
            assert stored["features"][name] == pytest.approx(offline[name][i], rel=1e-9, abs=0), name


def _check_latency_panel_agrees_with_the_summary(url: str, slowest_batch_p99_ms: int) -> None:
    # The panel shows the slowest batch's p99 each minute: its peak is the summary's figure.
    with connect(url) as client:
        panels = run_dashboard(client, load_dashboard("fraud-operations"), time_from="now-15m")
    (panel,) = [p for p in panels if "latency" in p.title.lower()]
    p99 = [s for r in panel.results for s in r.series if s.name == "p99"]
    assert max(v for s in p99 for v in s.values) == pytest.approx(slowest_batch_p99_ms, abs=1)
    with connect(url) as client:
        assert client.exists(TS_LATENCY_P99)


def test_the_printed_send_more_command_stores_new_transactions_each_time(
    monkeypatch, tmp_path, local_models, e2e_world
):
    from producer.cli import main as producer_main

    # GIVEN the demo's pipeline after its backfill and live part, as `--keep` leaves it
    settings = PipelineSettings(world=e2e_world, work_dir=tmp_path, shards=2)
    with LocalPipeline(settings, models=local_models) as pipeline:
        pipeline.backfill(38)
        pipeline.produce(count=200)
        assert pipeline.wait_until_caught_up(timeout_s=120)
        url_file = tmp_path / "redis.url"
        demo.write_private(url_file, pipeline.redis_url)
        text = demo.connection_text(pipeline, url_file)
        # the URL's password is never printed
        assert pipeline.redis_server.password not in text
        line = next(line for line in text.splitlines() if " -m producer " in line)
        argv = shlex.split(line)
        env = dict(arg.split("=", 1) for arg in argv[: argv.index("-m") - 1])
        command = argv[argv.index("producer") + 1 :]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        stored = [pipeline.tally().stored]

        # WHEN the printed command is run twice
        for _ in range(2):
            assert producer_main([*command, "--quiet"]) == 0
            assert pipeline.wait_until_caught_up(timeout_s=120)
            stored.append(pipeline.tally().stored)

    # THEN each run stored 1,000 new transactions
    assert stored == [200, 1200, 2200]
