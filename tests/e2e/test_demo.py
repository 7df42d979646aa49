"""`make demo` itself: `python -m demo`, in-process, on its embedded defaults."""

from __future__ import annotations

import re

import pytest

from demo import cli as demo

pytestmark = pytest.mark.e2e

SUMMARY = re.compile(
    r"^(\d+) transactions scored \(fraud (\d+), suspicious (\d+), legit (\d+)\), (\d+) rejected, (\d+) lost; "
    r"latency p50 (\d+) ms, p99 (\d+) ms$"
)


def test_demo_prints_exactly_one_summary_line_with_nothing_lost(capsys, monkeypatch, tmp_path, local_models):
    # GIVEN no REDIS_URL (the demo starts its own Redis Stack) and the session's trained models
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr("demo.pipeline.load_local_models", lambda _models_dir: local_models)

    # WHEN the demo runs with a small count
    status = demo.main(
        ["--count", "300", "--charts-dir", str(tmp_path / "charts"), "--work-dir", str(tmp_path)]
    )

    # THEN it succeeds and stdout is exactly one summary line whose counts add up
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert len(out) == 1, out
    match = SUMMARY.match(out[0])
    assert match, out[0]
    scored, fraud, suspicious, legit, rejected, lost = map(int, match.groups()[:6])
    assert scored == 300 == fraud + suspicious + legit
    assert (rejected, lost) == (0, 0)
