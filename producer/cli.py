"""Command line: `python -m producer --help`.

`main(argv)` returns the exit code instead of exiting, so the local demo can call it in-process:
0 done, 1 a problem to fix (unknown stream or stack, missing file, no credentials), 2 a bad option,
130 stopped by Ctrl-C (checkpoint saved).
"""

from __future__ import annotations

import argparse
import math
import sys

from producer.aws import DEFAULT_STACK, aws_errors, check_stream, make_client, stream_from_stack
from producer.checkpoint import CheckpointStore, default_path
from producer.errors import ProducerError
from producer.progress import Mode, Progress
from producer.replay import Producer
from producer.source import SYNTHETIC, open_source

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


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of records per second")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m producer",
        description="Replay creditcard.csv-shaped transactions (or synthetic ones) into the Kinesis stream, "
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
    target.add_argument("--endpoint-url", metavar="URL", help="a local Kinesis/CloudFormation API, e.g. moto")
    target.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or your AWS config)")
    what = parser.add_argument_group("what to send")
    what.add_argument(
        "--source",
        metavar="PATH|synthetic",
        default=SYNTHETIC,
        help="a creditcard.csv-shaped file (Time, V1..V28, Amount, optional Class; malformed rows are "
        "skipped and counted) or 'synthetic', the built-in seeded generator (endless; default)",
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
        help="at most R records per second (default: as fast as the stream accepts)",
    )
    what.add_argument(
        "--loop", action="store_true", help="start the file over at its end (new transaction ids)"
    )
    what.add_argument(
        "--shuffle", action="store_true", help="send the file's rows in a random order (--seed)"
    )
    what.add_argument(
        "--seed", type=int, default=42, help="seed of the synthetic generator and of --shuffle (default: 42)"
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


def _run(args: argparse.Namespace) -> int:
    if args.shuffle and args.source == SYNTHETIC:
        raise UsageError("--shuffle needs a file --source: synthetic rows are already random draws")
    source = open_source(args.source, seed=args.seed, shuffle=args.shuffle)
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
    progress = Progress(mode=Mode.SUMMARY if args.quiet else None, total=args.count)
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
    )
    with aws_errors():
        summary = producer.run()
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK
