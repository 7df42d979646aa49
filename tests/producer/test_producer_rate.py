"""The rate limit holds the requested rate, measured on an injected clock (no wall-time asserts)."""

from __future__ import annotations

import io
import json

import pytest

from fraud_data.simulator import SimulationConfig
from producer.rate import BURST_SECONDS, RateLimiter
from producer.replay import LINGER_SECONDS, Producer
from producer.source import SimulatedSource, SyntheticSource

EPOCH = 1_764_032_400.0


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def wall(self) -> float:
        return EPOCH + self.now


def max_in_any_window(times_s: list[float], window: float = 1.0) -> int:
    best, start = 0, 0
    for end, t in enumerate(times_s):
        while t - times_s[start] >= window - 1e-9:  # float sums of 1/rate land a hair short
            start += 1
        best = max(best, end - start + 1)
    return best


def test_limiter_spaces_records_at_the_rate():
    # GIVEN a limiter at 50 records/s on a clock that only moves when we sleep
    clock = FakeClock()
    limiter = RateLimiter(rate=50, clock=clock)
    sent_at = []
    # WHEN 500 records each wait their turn
    for _ in range(500):
        clock.sleep(limiter.wait_time())
        limiter.take()
        sent_at.append(clock.now)
    # THEN 500 records take 499/50 s (the first goes at once) and no second holds more than 50
    assert sent_at[-1] == pytest.approx(499 / 50)
    assert max_in_any_window(sent_at) <= 50


def test_unused_rate_is_saved_only_up_to_a_small_burst():
    clock = FakeClock()
    limiter = RateLimiter(rate=100, clock=clock)
    clock.sleep(60)  # a long pause (e.g. throttling) must not turn into a 6,000-record burst
    immediate = 0
    while limiter.wait_time() == 0:
        limiter.take()
        immediate += 1
    assert immediate == int(100 * BURST_SECONDS)


def test_no_rate_means_no_wait():
    limiter = RateLimiter(rate=None, clock=FakeClock())
    assert all(limiter.wait_time() == 0 for _ in range(1000))


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_must_be_positive(rate):
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=rate)


def test_producer_holds_the_rate_into_a_stream_and_batches_by_linger(kinesis, stream, read_stream):
    # GIVEN a producer at 200 records/s on a fake clock, and a record of every PutRecords call
    clock = FakeClock()
    calls: list[int] = []
    kinesis.meta.events.register(
        "provide-client-params.kinesis.PutRecords", lambda params, **_: calls.append(len(params["Records"]))
    )
    producer = Producer(
        source=SyntheticSource(seed=1),
        stream_name=stream,
        kinesis_client=kinesis,
        count=1000,
        rate=200,
        clock=clock,
        wall_clock=clock.wall,
        sleep=clock.sleep,
    )
    # WHEN it runs
    summary = producer.run()
    # THEN all records arrive, spread over 999/200 s of event time, never more than 200+burst a second
    times = sorted(r["event"]["timestamp"] / 1000 - EPOCH for r in read_stream(stream))
    assert summary.sent == len(times) == 1000
    assert times[-1] - times[0] >= 999 / 200 - 0.002
    assert max_in_any_window(times) <= 200 + 1  # +1: the record that goes at once
    assert summary.elapsed_seconds == pytest.approx(1000 / 200, rel=0.02)
    # AND batches hold about a linger's worth of records instead of one call per record
    assert max(calls) <= 200 * LINGER_SECONDS + 1
    assert len(calls) <= 1000 / (200 * LINGER_SECONDS) + 2


def test_dry_run_honours_the_rate_too():
    clock = FakeClock()
    out = io.StringIO()
    summary = Producer(
        source=SyntheticSource(seed=2),
        count=100,
        rate=10,
        dry_run=True,
        output=out,
        clock=clock,
        wall_clock=clock.wall,
        sleep=clock.sleep,
    ).run()
    times = [json.loads(line)["timestamp"] / 1000 - EPOCH for line in out.getvalue().splitlines()]
    assert summary.sent == len(times) == 100
    assert times[-1] == pytest.approx(99 / 10, abs=0.002)


def test_the_summary_times_the_sending_not_the_simulation_before_it():
    # GIVEN a simulated source whose world takes a minute to simulate (on its first read)
    clock = FakeClock()

    class SlowToSimulate(SimulatedSource):
        def load(self):
            if not self._simulated:
                clock.sleep(60)
            return super().load()

    source = SlowToSimulate(SimulationConfig(customers=100, terminals=200, days=2, seed=3))
    # WHEN 100 transactions go out at 10/s
    summary = Producer(
        source=source,
        count=100,
        rate=10,
        dry_run=True,
        output=io.StringIO(),
        labels="none",
        clock=clock,
        wall_clock=clock.wall,
        sleep=clock.sleep,
    ).run()
    # THEN the summary's elapsed time and rate are the sending's: ~10 s at 10/s, not 70 s at 1.4/s
    assert summary.sent == 100
    assert clock.now > 60
    assert 9 < summary.elapsed_seconds < 11
    assert summary.rate == pytest.approx(10, rel=0.1)
