"""Command line: `python -m producer --help`.

`main(argv)` returns the exit code instead of exiting, so the local demo can call it in-process:
0 done, 1 a problem to fix (unknown stream or stack, missing file, no credentials), 2 a bad option,
130 stopped by Ctrl-C (checkpoint saved).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

from fraud_data.simulator import SimulationConfig
from producer.aws import (
    DEFAULT_STACK,
    EXAMPLE_ENDPOINT,
    aws_errors,
    check_endpoint_url,
    check_stream,
    make_client,
    stream_from_stack,
)
from producer.checkpoint import CheckpointStore, default_path
from producer.errors import ProducerError
from producer.labels import DEFAULT_LABEL_DELAY_MS, DEFAULT_LABELS, LABEL_CHOICES, MAX_LABEL_DELAY_MS
from producer.progress import Mode, Progress
from producer.replay import Producer
from producer.source import SIMULATED, SYNTHETIC, open_source

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ProducerError):
    pass


class _Exit(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of calling sys.exit, so main() can return an exit code."""

    def error(self, message: str):
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _rate(text: str) -> float | None:
    # `max` (None: no limit) as the demo accepts it, so a command copied from one works in the other.
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of records per second or 'max'") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of records per second")
    return value


def _endpoint_url(text: str) -> str:
    try:
        return check_endpoint_url(text)
    except ProducerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_DURATION_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _duration_ms(text: str) -> int:
    """'1d', '6h', '30m', '2s', '500ms' or '0' as milliseconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or (match.group(2) is None and float(match.group(1)) != 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 1d, 6h, 30m, 2s or 0")
    value = round(float(match.group(1)) * _DURATION_MS[match.group(2) or "ms"])
    if value >= MAX_LABEL_DELAY_MS:
        raise argparse.ArgumentTypeError(
            f"{text} is not under 7d: a later report would miss the terminal features that need it"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m producer",
        description="Send simulated transactions and their fraud reports (label events), or creditcard.csv-"
        "shaped rows, into the Kinesis stream, "
        "one JSON event per row (docs/architecture.md), in PutRecords batches, partition key = card_id.",
        epilog="Exit codes: 0 done, 1 error, 2 bad option, 130 stopped by Ctrl-C (checkpoint saved).",
    )
    target = parser.add_argument_group("where to send")
    target.add_argument("--stream-name", metavar="NAME", help="the Kinesis stream; wins over --stack")
    target.add_argument(
        "--stack",
        metavar="NAME",
        default=DEFAULT_STACK,
        help="read the stream from this CloudFormation stack's StreamName output (default: %(default)s)",
    )
    target.add_argument(
        "--endpoint-url",
        metavar="URL",
        type=_endpoint_url,
        help=f"a local Kinesis/CloudFormation API, e.g. moto's {EXAMPLE_ENDPOINT}",
    )
    target.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or your AWS config)")
    what = parser.add_argument_group("what to send")
    what.add_argument(
        "--source",
        metavar="simulated|PATH|synthetic",
        default=SIMULATED,
        help="'simulated' (default): the transaction simulator (fraud_data.simulator, the options "
        "below); PATH: a simulator CSV (transaction_id, timestamp, card_id, terminal_id, amount, label) "
        "or a creditcard.csv-shaped file (Time, V1..V28, Amount, optional Class), the shape detected "
        "from the header, or a .zip holding one; malformed rows are skipped and counted. 'synthetic': "
        "the i.i.d. creditcard-shaped test generator (endless)",
    )
    simulation = parser.add_argument_group("--source simulated (as `python -m fraud_data simulate`)")
    simulation.add_argument(
        "--customers",
        type=_positive_int,
        default=SimulationConfig.customers,
        help="cards (default: %(default)s)",
    )
    simulation.add_argument(
        "--terminals", type=_positive_int, default=SimulationConfig.terminals, help="(default: %(default)s)"
    )
    simulation.add_argument(
        "--days",
        type=_positive_int,
        default=SimulationConfig.days,
        help="days (default: %(default)s)",
    )
    simulation.add_argument(
        "--start", default=SimulationConfig.start, metavar="YYYY-MM-DD", help="first simulated day (UTC)"
    )
    times = parser.add_argument_group("event time and fraud reports (simulator rows)")
    times.add_argument(
        "--shift-to-now",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stamp each transaction with the moment it is sent (its order kept) instead of its "
        "dataset time: a live replay, and what a deployed scorer accepts (default: on for "
        "'simulated', off for a file)",
    )
    times.add_argument(
        "--labels",
        choices=LABEL_CHOICES,
        default=DEFAULT_LABELS,
        help="which transactions get a label event: fraud (default: a fraud report per fraud; no report "
        "means legitimate, as the scorer reads it), all (0 labels too), none",
    )
    times.add_argument(
        "--label-delay",
        type=_duration_ms,
        default=DEFAULT_LABEL_DELAY_MS,
        metavar="DURATION",
        help="report delay after the transaction, in the stamped time: e.g. 1d (default), 6h, 30m, "
        "2s, 0; under 7d, the terminal features' delay, so every label a feature needs is in time",
    )
    what.add_argument(
        "--count",
        metavar="N",
        type=_positive_int,
        help="send N records (default: the whole file once; with --loop or synthetic, until Ctrl-C)",
    )
    what.add_argument(
        "--rate",
        metavar="R",
        type=_rate,
        help="at most R records per second, or max (default: max, as fast as the stream accepts)",
    )
    what.add_argument(
        "--loop", action="store_true", help="start the file over at its end (new transaction ids)"
    )
    what.add_argument(
        "--shuffle", action="store_true", help="send the file's rows in a random order (--seed)"
    )
    what.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the simulator, the synthetic generator and --shuffle (default: 42)",
    )
    run = parser.add_argument_group("how to run")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue where the last run on this source stopped (only records Kinesis accepted count)",
    )
    run.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="checkpoint file (default: .producer/checkpoint-<source>.json; written on every run)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the records as JSON lines, send nothing")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, only the final summary line")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.source != SYNTHETIC and Path(args.source).is_dir():
            raise ProducerError(
                f"--source {args.source}: is a directory; give the path of a creditcard.csv file"
            )
        return _run(args)
    except _Exit as done:
        return done.status
    except UsageError as exc:
        print(f"producer: error: {exc} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except ProducerError as exc:
        print(f"producer: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("producer: interrupted before sending anything", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `--dry-run | head`: the reader is gone. Point stdout at /dev/null so that Python's own
        # flush at exit does not fail again (the recipe of the `signal` module's documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    if args.shuffle and args.source == SYNTHETIC:
        raise UsageError("--shuffle needs a file --source: synthetic rows are already random draws")
    if args.shuffle and args.source == SIMULATED:
        raise UsageError("--shuffle would break the event order the features are computed in")
    simulation = None
    if args.source == SIMULATED:
        try:
            simulation = SimulationConfig(
                customers=args.customers,
                terminals=args.terminals,
                days=args.days,
                start=args.start,
                seed=args.seed,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    source = open_source(args.source, seed=args.seed, shuffle=args.shuffle, simulation=simulation)
    shift_to_now = args.shift_to_now if args.shift_to_now is not None else args.source == SIMULATED
    if args.dry_run:
        kinesis, stream_name = None, args.stream_name
    else:
        with aws_errors():
            kinesis = make_client("kinesis", endpoint_url=args.endpoint_url, region=args.region)
            stream_name = args.stream_name
            if not stream_name:
                cloudformation = make_client(
                    "cloudformation", endpoint_url=args.endpoint_url, region=args.region
                )
                stream_name = stream_from_stack(cloudformation, args.stack)
            check_stream(kinesis, stream_name)
    progress = Progress(mode=Mode.SUMMARY if args.quiet else None, total=args.count, dry_run=args.dry_run)
    producer = Producer(
        source=source,
        stream_name=stream_name,
        kinesis_client=kinesis,
        count=args.count,
        rate=args.rate,
        loop=args.loop,
        checkpoint=CheckpointStore(args.checkpoint or default_path(source.key, source.order)),
        resume=args.resume,
        dry_run=args.dry_run,
        output=sys.stdout,
        progress=progress,
        handle_sigint=True,
        shift_to_now=shift_to_now,
        labels=args.labels,
        label_delay_ms=args.label_delay,
    )
    with aws_errors():
        summary = producer.run()
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK
