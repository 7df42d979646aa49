"""`make demo`: the whole pipeline on this machine, then one summary line counted from Redis.

    python -m demo                      # 2000 transactions at 500/s
    python -m demo --count 5000 --rate 500 --keep

Starts Redis Stack (or uses $REDIS_URL), a local Kinesis API with a few shards, the local models
behind a SageMaker-runtime stand-in, and the event source mapping running the real scoring Lambda;
then the real producer sends the transactions. Progress and steps go to stderr; stdout gets the
summary line (and, with --keep, how to connect). Exit status 1 if anything is lost or it times out.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import threading
import time
from pathlib import Path

from demo.pipeline import DEFAULT_MODELS_DIR, DEMO_DIR, LocalPipeline, PipelineSettings, now_ms
from demo.tally import Tally, lost
from emulators.redis_stack import LIBSSL_DIR, _server_paths

PROGRESS_EVERY_S = 0.5


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _rate(text: str) -> float | None:
    if text == "max":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of records per second, or 'max'")
    return value


DEFAULT_RATE = 500.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count", type=_positive_int, default=2000, help="transactions to send (default 2000)"
    )
    # 500/s by default, below what the local pipeline sustains on 2 cores (~800/s): the summary's
    # latency then shows the pipeline's own delay, not a queue of records waiting in the stream.
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
        "--seed",
        type=int,
        default=None,
        help="synthetic data seed (default 42; with $REDIS_URL a fresh one, so ids are new)",
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
        help="the local models, trained here on first run (default artifacts/models, as `make train`)",
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
    )
    for stale in ("checkpoints.json", "on-failure.jsonl"):  # a new stream: old positions mean nothing
        (settings.work_dir / stale).unlink(missing_ok=True)
    deadline = time.monotonic() + args.timeout
    pipeline = LocalPipeline(settings)
    try:
        pipeline.start(on_step=_say)
        return _drive(pipeline, args, seed, deadline)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        pipeline.stop()


def _drive(pipeline: LocalPipeline, args: argparse.Namespace, seed: int, deadline: float) -> int:
    since_ms = now_ms() if pipeline.settings.redis_url else 0
    counter = _SentCounter()
    outcome: dict = {}

    def produce() -> None:
        try:
            outcome["summary"] = pipeline.produce(
                count=args.count, rate=args.rate, seed=seed, progress=counter
            )
        except Exception as exc:  # reported below; the demo must still stop its services
            outcome["error"] = exc

    rate = "max" if args.rate is None else f"{args.rate:g}/s"
    _say(f"sending {args.count} transactions at {rate} (seed {seed})")
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
    sent = len(pipeline.sent_records())  # what Kinesis accepted, read back from the stream
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
    _render_charts(pipeline, args.charts_dir or args.work_dir / "charts")
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


def _render_charts(pipeline: LocalPipeline, out_dir: Path) -> None:
    from grafana.render import render_dashboard  # matplotlib: imported only when charts are drawn

    try:
        # A demo lasts seconds: a 10-minute range keeps its 1-minute buckets visible in the charts.
        paths = render_dashboard(pipeline.redis_url, out_dir, time_from="now-10m")
    except Exception as exc:  # the charts are a view of the data: a failure here loses nothing
        _say(f"charts failed: {type(exc).__name__}: {exc}")
        return
    _say(f"{len(paths)} charts in {out_dir}")


def _keep_running(pipeline: LocalPipeline) -> None:
    env = " ".join(
        f"{name}={shlex.quote(pipeline.scorer_env()[name])}"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    )
    redis_cli = str(_server_paths()[0].with_name("redis-cli"))
    if LIBSSL_DIR.is_dir():
        redis_cli = f"LD_LIBRARY_PATH={shlex.quote(str(LIBSSL_DIR))} {shlex.quote(redis_cli)}"
    print(
        "Everything is still running (Ctrl-C stops it):\n"
        f"  Redis:    {redis_cli} -u {pipeline.redis_url}\n"
        f"  Kinesis:  {pipeline.kinesis.endpoint_url} stream {pipeline.settings.stream_name}\n"
        f"  Send more (scored live):\n"
        f"    {env} {sys.executable} -m producer --endpoint-url {pipeline.kinesis.endpoint_url} "
        f"--stream-name {pipeline.settings.stream_name} --count 1000 --rate 200 --seed 7\n"
        f"  Charts:   REDIS_URL={pipeline.redis_url} {sys.executable} -m grafana.render",
        flush=True,
    )
    threading.Event().wait()  # until Ctrl-C


def main(argv: list[str] | None = None) -> int:
    # The trigger's warnings (a handler error, a batch given up) in the demo's own voice, on stderr.
    logging.basicConfig(level=logging.WARNING, format="demo: %(name)s: %(message)s")
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
