"""`make demo`: the whole pipeline on this machine, then one summary line counted from Redis.

    python -m demo                      # 38 days of history backfilled, 3000 live transactions at 150/s
    python -m demo --count 5000 --rate 500 --keep

Starts Redis Stack (or uses $REDIS_URL), a local Kinesis API with a few shards, the local models
behind a SageMaker-runtime stand-in, and the event source mapping running the real scoring Lambda;
simulates a world of cards and terminals (fraud_data.simulator), backfills its first weeks into
Redis's feature state (warm start), then the real producer streams the transactions that follow,
stamped with their send times, each fraud's report (label event) a moment later. Progress and steps
go to stderr; stdout gets the summary line (and, with --keep, how to connect). Exit status 1 if
anything is lost or it times out.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import cli_errors
from contracts.events import LABEL_EVENT_TYPE, TYPE_FIELD
from demo.backfill import describe
from demo.pipeline import (
    DEFAULT_LIVE_LABEL_DELAY_MS,
    DEFAULT_MODELS_DIR,
    DEFAULT_WORLD,
    DEMO_DIR,
    LocalPipeline,
    PipelineSettings,
    now_ms,
)
from demo.tally import Tally, lost
from emulators.redis_stack import LIBSSL_DIR, redacted_url, server_paths
from fraud_data.simulator import SimulationConfig
from fraud_data.transactions import Transactions, write_csv
from grafana.queries import TimeRange

PROGRESS_EVERY_S = 0.5


def _positive_int(text: str) -> int:
    # Errors in words: argparse would name this function ("invalid _positive_int value").
    return cli_errors.positive_whole_number(text)


def _rate(text: str) -> float | None:
    return cli_errors.rate_or_max(text)


DEFAULT_RATE = 150.0
DEFAULT_COUNT = 3000
DEFAULT_HISTORY_DAYS = 38  # the longest window + delay (37 days), and one more
LABEL_DELAY_MS = DEFAULT_LIVE_LABEL_DELAY_MS
# Simulated days beyond the live part, so the printed "send more" command has transactions to send.
SPARE_DAYS = 7


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count",
        type=_positive_int,
        default=DEFAULT_COUNT,
        help=f"live transactions to stream after the backfill (default {DEFAULT_COUNT})",
    )
    # 150/s by default: well below what the local pipeline sustains on 2 cores (the summary's
    # latency shows the pipeline's own delay, not a queue), and 20 s of live data for the charts.
    parser.add_argument(
        "--rate",
        type=_rate,
        default=DEFAULT_RATE,
        metavar="R|max",
        help=f"records per second, or max (default {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--shards", type=_positive_int, default=4, help="shards of the local stream (default 4)"
    )
    parser.add_argument(
        "--history-days",
        type=_positive_int,
        default=DEFAULT_HISTORY_DAYS,
        help=f"days of simulated history backfilled before the live part (default {DEFAULT_HISTORY_DAYS})",
    )
    parser.add_argument(
        "--customers",
        type=_positive_int,
        default=DEFAULT_WORLD.customers,
        help=f"cards in the simulated world (default {DEFAULT_WORLD.customers:,}; terminals: twice that)",
    )
    parser.add_argument(
        "--seed",
        type=cli_errors.non_negative_whole_number,  # the simulator's seeds are >= 0
        default=None,
        help="simulation seed (default 42; with $REDIS_URL a fresh one, so ids are new)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEMO_DIR,
        help="trigger checkpoints, on-failure records, the function's log, charts (default .demo/)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help="the local models, trained here on first run (default artifacts/models)",
    )
    parser.add_argument(
        "--charts-dir", type=Path, default=None, help="where the PNGs go (default <work-dir>/charts)"
    )
    parser.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")
    return parser


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


class _SentCounter:
    """Receives the producer's progress snapshots (its library API's Progress hook)."""

    def __init__(self) -> None:
        self.sent = 0

    def update(self, snapshot) -> None:
        self.sent = snapshot.sent

    def note(self, message: str) -> None:
        _say(message)

    def finish(self, summary_line: str) -> None:
        _say(f"producer: {summary_line}")


def _progress_line(sent: int, total: int, tally: Tally) -> str:
    return f"sent {sent}/{total}, stored {tally.stored}, rejected {tally.rejected}"


def run(args: argparse.Namespace) -> int:
    user_redis = os.environ.get("REDIS_URL") or None
    seed = args.seed if args.seed is not None else (int(time.time()) if user_redis else 42)
    settings = PipelineSettings(
        redis_url=user_redis,
        shards=args.shards,
        models_dir=args.models_dir,
        work_dir=args.work_dir / "run",
        world=world_for(args, seed),
    )
    # A new stream and a new backfill: old positions mean nothing.
    for stale in ("checkpoints.json", "on-failure.jsonl", "producer-checkpoint.json"):
        (settings.work_dir / stale).unlink(missing_ok=True)
    deadline = time.monotonic() + args.timeout
    pipeline = LocalPipeline(settings)
    try:
        pipeline.start(on_step=_say)
        return _drive(pipeline, args, deadline)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        pipeline.stop()


def world_for(args: argparse.Namespace, seed: int) -> SimulationConfig:
    """The demo's world: long enough for the history, the live part and the "send more" command."""
    per_day = 2 * args.customers  # the simulator's mean: U(0, 4) transactions a day per card
    live_days = math.ceil(1.5 * args.count / per_day) + 1
    return SimulationConfig(
        customers=args.customers,
        terminals=2 * args.customers,
        days=args.history_days + live_days + SPARE_DAYS,
        seed=seed,
    )


def _drive(pipeline: LocalPipeline, args: argparse.Namespace, deadline: float) -> int:
    world = pipeline.settings.world
    _say(
        f"simulating {world.customers:,} cards and {world.terminals:,} terminals over {world.days} days "
        f"(seed {world.seed})"
    )
    pipeline.world()
    _say(f"backfilling the first {args.history_days} days into Redis (warm start)")
    stats, history = pipeline.backfill(args.history_days)
    _say(describe(stats))
    since_ms = now_ms()
    counter = _SentCounter()
    outcome: dict = {}

    def produce() -> None:
        try:
            outcome["summary"] = pipeline.produce(count=args.count, rate=args.rate, progress=counter)
        except Exception as exc:  # reported below; the demo must still stop its services
            outcome["error"] = exc

    rate = "max" if args.rate is None else f"{args.rate:g}/s"
    _say(
        f"streaming the next {args.count} transactions at {rate}, stamped with their send times; "
        f"fraud reports {LABEL_DELAY_MS / 1000:g} s after their transaction"
    )
    producer = threading.Thread(target=produce, name="producer", daemon=True)
    producer.start()
    tty = sys.stderr.isatty()
    while producer.is_alive() and time.monotonic() < deadline:
        _show(_progress_line(counter.sent, args.count, pipeline.tally(since_ms=since_ms)), tty)
        producer.join(PROGRESS_EVERY_S)
    if producer.is_alive():
        _say("timed out while sending")
        return 1
    if "error" in outcome:
        _say(f"the producer failed: {outcome['error']}")
        return 1
    # What Kinesis accepted, read back from the stream: the transactions, with the times they carry.
    live = streamed_transactions(pipeline.sent_records())
    sent = len(live)
    if sent != outcome["summary"].sent:
        _say(f"the producer counted {outcome['summary'].sent} accepted records, the stream holds {sent}")
    caught_up = False
    while time.monotonic() < deadline and not caught_up:
        caught_up = pipeline.wait_until_caught_up(
            timeout_s=min(PROGRESS_EVERY_S, deadline - time.monotonic())
        )
        _show(_progress_line(sent, args.count, pipeline.tally(since_ms=since_ms)), tty)
    if tty:
        print(file=sys.stderr)
    until_ms = now_ms()  # the live period ends here (the charts show it, not the time spent after)
    csv_path = args.work_dir / "transactions.csv"
    write_csv(demo_transactions(history, pipeline.world(), live), csv_path)
    _say(f"the data it used (history as backfilled, live part as streamed) in {csv_path}")
    _render_charts(pipeline, args.charts_dir or args.work_dir / "charts", since_ms, until_ms)
    trigger = pipeline.trigger
    _say(f"{trigger.invocations} invocations of the scorer, {trigger.failed_invocations} of them retried")
    failures = pipeline.on_failure.records if pipeline.on_failure else []
    if failures:
        _say(f"{len(failures)} batches went to the on-failure record {pipeline.on_failure.path}")
    if not caught_up:
        _say(f"timed out after {args.timeout:g} s before the pipeline caught up")
    tally = pipeline.tally(since_ms=since_ms)
    sys.stderr.flush()
    print(tally.summary_line(sent), flush=True)  # the last line: counted from Redis, after everything
    if args.keep:
        _keep_running(pipeline)
    return 0 if caught_up and lost(sent, tally) == 0 and not failures else 1


def _show(line: str, tty: bool) -> None:
    if tty:
        sys.stderr.write("\r" + line + "\x1b[K")
        sys.stderr.flush()
    else:
        _say(line)


def streamed_transactions(records: list[dict]) -> dict[str, int]:
    """transaction id -> the timestamp it was sent with, for every transaction event in the stream
    (label events and anything unreadable left out)."""
    stamps = {}
    for record in records:
        try:
            event = json.loads(record["Data"])
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get(TYPE_FIELD) == LABEL_EVENT_TYPE:
            continue
        if "transaction_id" in event and "timestamp" in event:
            stamps[event["transaction_id"]] = event["timestamp"]
    return stamps


def demo_transactions(history: Transactions, world: Transactions, live: dict[str, int]) -> Transactions:
    """The data the pipeline saw, in simulator columns and event order: the history as backfilled
    (shifted times), then the streamed transactions with the times they were sent with."""
    rows = [
        (live[tid], tid, card, terminal, amount, label, scenario)
        for tid, card, terminal, amount, label, scenario in zip(
            world.transaction_id,
            world.card_id,
            world.terminal_id,
            world.amount,
            world.label,
            world.scenario,
            strict=True,
        )
        if tid in live
    ]
    rows.sort()
    out = history.slice(0, len(history))  # a copy: the live part is appended to it
    for ts, tid, card, terminal, amount, label, scenario in rows:
        out.transaction_id.append(tid)
        out.timestamp.append(ts)
        out.card_id.append(card)
        out.terminal_id.append(terminal)
        out.amount.append(amount)
        out.label.append(label)
        out.scenario.append(scenario)
    return out


def chart_window(since_ms: int, until_ms: int) -> tuple[TimeRange, int]:
    """The live period with a little margin, and a bucket that gives it ~40 points: a demo lasts
    seconds, and 1-minute buckets would draw it as one bar."""
    span = max(until_ms - since_ms, 1_000)
    bucket = next((b for b in CHART_BUCKETS_MS if span / b <= 60), CHART_BUCKETS_MS[-1])
    margin = 2 * bucket
    return TimeRange(since_ms - margin, until_ms + margin), bucket


CHART_BUCKETS_MS = (250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000)


def _render_charts(pipeline: LocalPipeline, out_dir: Path, since_ms: int, until_ms: int) -> None:
    from grafana.render import render_dashboard  # matplotlib: imported only when charts are drawn

    try:
        window, bucket_ms = chart_window(since_ms, until_ms)
        paths = render_dashboard(pipeline.redis_url, out_dir, window=window, bucket_ms=bucket_ms)
    except Exception as exc:  # the charts are a view of the data: a failure here loses nothing
        _say(f"charts failed: {type(exc).__name__}: {exc}")
        return
    _say(f"{len(paths)} charts in {out_dir}")


def send_more_command(pipeline: LocalPipeline, *, count: int = 1000, rate: int = 200) -> list[str]:
    """The producer command that streams the world's next transactions into the running pipeline.

    It resumes from the checkpoint the demo's own live part left (`--resume --checkpoint`), so each
    run sends transactions not sent before - run it twice, twice as many are stored - continuing the
    same cards and terminals whose state the backfill loaded."""
    world = pipeline.settings.world
    return [
        sys.executable, "-m", "producer",
        "--endpoint-url", pipeline.kinesis.endpoint_url,
        "--stream-name", pipeline.settings.stream_name,
        "--source", "simulated",
        "--customers", str(world.customers), "--terminals", str(world.terminals),
        "--days", str(world.days), "--start", world.start, "--seed", str(world.seed),
        "--resume", "--checkpoint", str(pipeline.checkpoint_path),
        "--label-delay", f"{LABEL_DELAY_MS}ms",
        "--count", str(count), "--rate", str(rate),
    ]  # fmt: skip


def connection_text(pipeline: LocalPipeline, url_file: Path) -> str:
    """What --keep prints: how to reach the parts. The Redis URL carries the run's password: it is
    printed redacted, and the commands read the full URL from `url_file` (mode 0600)."""
    env = " ".join(
        f"{name}={shlex.quote(pipeline.scorer_env()[name])}"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    )
    redis_cli = str(server_paths()[0].with_name("redis-cli"))
    if LIBSSL_DIR.is_dir():
        redis_cli = f"LD_LIBRARY_PATH={shlex.quote(str(LIBSSL_DIR))} {shlex.quote(redis_cli)}"
    from_file = f'"$(cat {shlex.quote(str(url_file))})"'
    return (
        "Everything is still running (Ctrl-C stops it):\n"
        f"  Redis:    {redacted_url(pipeline.redis_url)} (full URL with its password in {url_file})\n"
        f"            {redis_cli} -u {from_file}\n"
        f"  Kinesis:  {pipeline.kinesis.endpoint_url} stream {pipeline.settings.stream_name}\n"
        f"  Send more (scored live; each run sends the next transactions of the same world):\n"
        f"    {env} {shlex.join(send_more_command(pipeline))}\n"
        f"  Charts:   REDIS_URL={from_file} {sys.executable} -m grafana.render --from now-15m"
    )


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600 from the start, not chmod after writing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")


def _keep_running(pipeline: LocalPipeline) -> None:
    url_file = pipeline.checkpoint_path.with_name("redis.url")
    write_private(url_file, pipeline.redis_url)
    print(connection_text(pipeline, url_file), flush=True)
    try:
        threading.Event().wait()  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt as stop:
        # Either is how --keep is meant to end: the run's own status, not 130 (make's "Error 130").
        _say("stopping (SIGTERM)" if isinstance(stop, Terminated) else "stopping (Ctrl-C)")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is."""


def _stop_on_sigterm() -> None:
    """`kill`, `timeout` and process managers send SIGTERM, whose default ends Python without its
    `finally` blocks: the Redis, local Kinesis and trigger the demo started would outlive it."""

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


_OWN_REDIS_HINT = "or unset REDIS_URL and the demo starts its own Redis Stack"


def _check_user_redis() -> None:
    """A REDIS_URL is the user's input: check it before anything starts, so whatever is wrong with it
    (malformed, unreachable, refused, no modules) is one line, not a traceback from the pipeline."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return
    from demo.pipeline import check_redis

    try:
        check_redis(url)
    except ValueError:  # redis-py's URL parser
        raise cli_errors.invalid_redis_url("REDIS_URL", _OWN_REDIS_HINT) from None
    except Exception as exc:  # the check's only job is this URL: any failure of it is about that Redis
        message = str(exc) if "REDIS_URL" in str(exc) else f"cannot use the Redis at REDIS_URL: {exc}"
        raise cli_errors.UserError(
            message,
            hint="start that Redis (with JSON, Search and TimeSeries, e.g. redis:8) or fix REDIS_URL, "
            + _OWN_REDIS_HINT,
        ) from exc


def _run_checked(args: argparse.Namespace) -> int:
    _check_user_redis()
    return run(args)


def main(argv: list[str] | None = None) -> int:
    # The trigger's warnings (a handler error, a batch given up) in the demo's own voice, on stderr.
    logging.basicConfig(level=logging.WARNING, format="demo: %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    _stop_on_sigterm()
    # User errors (the REDIS_URL above, Ctrl-C) are one line; anything else is our bug: traceback.
    return cli_errors.run("demo", lambda: _run_checked(args))


if __name__ == "__main__":
    raise SystemExit(main())
