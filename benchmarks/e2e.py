"""End-to-end: producer -> Kinesis (moto) -> local trigger -> scoring Lambda -> local models -> Redis.

At fixed producer rates (200, 1000 records/s and as fast as possible) we send simulated transactions
through the whole local pipeline and read everything back from Redis: how many were stored, the
throughput (stored / time from the first event to the last score) and the p50/p99 of `latency_ms`
(event time -> scored, per transaction, FT.AGGREGATE QUANTILE). The reference point is the offered
load itself: a pipeline that keeps up stores at the offered rate with flat latency.

Everything shares the machine's cores (producer, moto, trigger, handler and models in one Python
process, Redis in another), so "max" is the whole pipeline's ceiling on this machine, not Lambda's.
"""

from __future__ import annotations

import time

from demo.pipeline import LocalPipeline, PipelineSettings, now_ms
from demo.tally import lost

RATES: tuple[float | None, ...] = (200.0, 1000.0, None)  # None: as fast as the stream accepts
SECONDS_PER_RATE = 10
QUICK_SECONDS_PER_RATE = 3
MAX_RATE_COUNT = 10_000


def _window_ms(pipeline: LocalPipeline, since_ms: int) -> float:
    """Milliseconds from the first event time to the last score among transactions since `since_ms`."""
    with pipeline.redis_client() as client:
        reply = client.execute_command(
            "FT.AGGREGATE",
            "idx:txn",
            f"@scored_at:[{since_ms} +inf]",
            "GROUPBY",
            "0",
            "REDUCE",
            "MIN",
            "1",
            "@timestamp",
            "AS",
            "first",
            "REDUCE",
            "MAX",
            "1",
            "@scored_at",
            "AS",
            "last",
            "DIALECT",
            "2",
        )
    fields = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
    return float(fields["last"]) - float(fields["first"])


def _measure(pipeline: LocalPipeline, rate: float | None, count: int, seed: int) -> dict:
    since = now_ms()
    summary = pipeline.produce(count=count, rate=rate, seed=seed)
    pipeline.wait_until_caught_up(timeout_s=600)
    tally = pipeline.tally(since_ms=since)
    window_ms = _window_ms(pipeline, since)
    return {
        "offered": "max" if rate is None else f"{rate:,.0f}",
        "sent": summary.sent,
        "producer_rate": summary.rate,
        "stored": tally.stored,
        "rejected": tally.rejected,
        "lost": lost(summary.sent, tally),
        "throughput": tally.stored / (window_ms / 1000) if window_ms > 0 else float("nan"),
        "p50": tally.latency_p50_ms,
        "p99": tally.latency_p99_ms,
    }


def run(quick: bool) -> str:
    seconds = QUICK_SECONDS_PER_RATE if quick else SECONDS_PER_RATE
    rows = []
    started = time.perf_counter()
    with LocalPipeline(PipelineSettings(shards=4)) as pipeline:
        pipeline.produce(count=200, seed=999)  # warm-up: index, series and clients created
        pipeline.wait_until_caught_up(timeout_s=120)
        for seed, rate in enumerate(RATES, start=1):
            count = int(rate * seconds) if rate else (MAX_RATE_COUNT // (3 if quick else 1))
            rows.append(_measure(pipeline, rate, count, seed))
        batch_size = pipeline.settings.trigger.batch_size
    elapsed = time.perf_counter() - started
    lines = [
        "## End to end (local pipeline)",
        "",
        "Simulated transactions (v2: card, terminal, amount; features computed online, no backfill) "
        "and their fraud reports from the real producer into a 4-shard moto Kinesis stream, the local "
        f"event source mapping (batches of up to {batch_size}, no batching window) invoking the real "
        "scoring Lambda, the locally trained models behind the SageMaker-runtime stand-in, and a real "
        "Redis Stack. Figures counted from Redis: stored documents, throughput = stored / (last "
        "`scored_at` - first event `timestamp`), latency = per-transaction `latency_ms` (event time -> "
        "scored) quantiles via FT.AGGREGATE.",
        "",
        "| offered (rec/s) | sent | producer rate (rec/s) | stored | rejected | lost | "
        "end-to-end throughput (rec/s) | latency p50 (ms) | latency p99 (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cells = [
            row["offered"],
            f"{row['sent']:,}",
            f"{row['producer_rate']:,.0f}",
            f"{row['stored']:,}",
            str(row["rejected"]),
            str(row["lost"]),
            f"{row['throughput']:,.0f}",
            _ms(row["p50"]),
            _ms(row["p99"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "At rates the pipeline keeps up with, throughput equals the offered load and latency is the "
        "polling and batching delay; at `max` the producer outruns the scorer, records queue in the "
        "stream, and latency measures the queue. All parts share the machine's cores (one Python "
        "process for producer, moto, trigger, handler and models), so `max` is this machine's "
        f"ceiling for the whole pipeline, not Lambda's. Benchmark wall time {elapsed:.0f} s.",
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"
