"""Warm start: load a history of transactions into Redis's feature state in bulk.

    python -m demo.backfill --redis-url redis://... --days 38                 # a simulated world
    python -m demo.backfill --redis-url redis://... --source data/sim.csv --days 38
    make demo                                                                  # does it for you

A fresh deployment (or the demo) would otherwise score its first transactions with empty windows:
every card new, every terminal without history. This loads the first `--days` days of a simulator
dataset through `fraud_scorer.feature_store.backfill` - the same member encoding, Lua script and
trimming as the streaming scorer, pipelined - so that the next live transaction sees full 1/7/30-day
windows. It writes entity state only (no transaction documents, no time series). The history's
fraud reports are loaded with it (its labels: the history is the past, its reports are in).

By default the history is shifted in time so that its last transaction lands just before now: the
scorer only accepts live events stamped within the last 7 days, and the live stream that follows is
stamped with send times. `--keep-times` loads the dataset's own times (e.g. to replay the rest of the
file afterwards with `python -m producer --source FILE --no-shift-to-now`, against a scorer whose
time bounds allow it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cli_errors
from fraud_data.simulator import SimulationConfig
from fraud_data.transactions import Transactions, read_csv, write_csv

DAY_MS = 86_400_000
# The shifted history ends this long before "now": the first live transaction comes after it.
END_GAP_MS = 1_000


def history(transactions: Transactions, days: int | None) -> Transactions:
    """The rows of the first `days` days (from the first transaction's UTC midnight), in event order;
    all rows when `days` is None. The table must be in event order (simulator output is)."""
    if days is None or not len(transactions):
        return transactions
    first_midnight = transactions.timestamp[0] // DAY_MS * DAY_MS
    cut = first_midnight + days * DAY_MS
    end = next((i for i, ts in enumerate(transactions.timestamp) if ts >= cut), len(transactions))
    return transactions.slice(0, end)


def shift_to_end_at(transactions: Transactions, end_ms: int) -> Transactions:
    """A copy whose timestamps are moved by one offset so the last one is END_GAP_MS before `end_ms`
    (order, gaps and so every window are unchanged)."""
    if not len(transactions):
        return transactions
    offset = end_ms - END_GAP_MS - max(transactions.timestamp)
    return transactions.slice(0, len(transactions), offset)


def load_history(client, transactions: Transactions, *, labels: bool = True):
    """Bulk-load `transactions` (and, with `labels`, their fraud reports) into the feature state;
    returns `fraud_scorer.feature_store.BackfillStats`."""
    from fraud_scorer.feature_store import backfill

    return backfill(client, transactions, labels=labels)


def describe(stats) -> str:
    rate = stats.transactions / stats.seconds if stats.seconds > 0 else float("inf")
    return (
        f"backfilled {stats.transactions:,} transactions ({stats.labels:,} fraud reports) of "
        f"{stats.cards:,} cards and {stats.terminals:,} terminals in {stats.seconds:.1f} s "
        f"({rate:,.0f} transactions/s)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL"), help="the scorer's Redis (default: $REDIS_URL)"
    )
    parser.add_argument(
        "--source",
        default="simulated",
        metavar="simulated|PATH",
        help="'simulated' (default: the simulator, options below) or a simulator CSV",
    )
    parser.add_argument(
        "--days",
        type=cli_errors.positive_whole_number,
        default=38,
        help="load the first N days (default 38: the longest window + delay, 37 days, and one more)",
    )
    parser.add_argument("--customers", type=cli_errors.positive_whole_number, default=2_000)
    parser.add_argument("--terminals", type=cli_errors.positive_whole_number, default=4_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", default=SimulationConfig.start, metavar="YYYY-MM-DD")
    parser.add_argument(
        "--keep-times",
        action="store_true",
        help="load the dataset's own times (default: end just before now)",
    )
    parser.add_argument("--no-labels", action="store_true", help="leave the history's fraud reports out")
    parser.add_argument("--out", type=Path, help="also write the history as loaded (its times) to this CSV")
    parser.add_argument(
        "--world-days",
        type=cli_errors.positive_whole_number,
        help="'simulated': simulate this many days (default: --days) and load the first --days; give the "
        "producer the same --days to stream the rest (the simulator's output depends on its length)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="write a producer checkpoint placed after the history: `python -m producer` with the same "
        "source and `--resume --checkpoint PATH` then streams the transactions that follow",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    import redis

    if not args.redis_url:
        raise cli_errors.UserError("no Redis to load into", hint="pass --redis-url or set REDIS_URL")
    from producer.source import SimulatedSource, SimulatorCsvSource

    if args.source == "simulated":
        world_days = args.world_days or args.days
        if world_days < args.days:
            raise cli_errors.UserError("--world-days must be at least --days", status=cli_errors.EXIT_USAGE)
        try:
            config = SimulationConfig(
                customers=args.customers,
                terminals=args.terminals,
                days=world_days,
                start=args.start,
                seed=args.seed,
            )
        except ValueError as exc:
            raise cli_errors.UserError(str(exc), status=cli_errors.EXIT_USAGE) from None
        print(
            f"simulating {config.customers:,} cards x {config.days} days (seed {config.seed})",
            file=sys.stderr,
        )
        source = SimulatedSource(config)
        transactions = source.load()
    else:
        path = Path(args.source)
        if not path.is_file():
            raise cli_errors.UserError(f"{path}: no such file", hint="give a simulator CSV or 'simulated'")
        hint = "write one with `python -m fraud_data simulate --out PATH`"
        try:
            transactions = read_csv(path)
        except ValueError as exc:  # read_csv names the file and line (binary files and csv errors too)
            raise cli_errors.UserError(str(exc), hint=hint) from None
        source = SimulatorCsvSource(path)
    rows = history(transactions, args.days)
    history_end = len(rows)  # where the producer's checkpoint goes, once the history is in Redis
    if not args.keep_times:
        rows = shift_to_end_at(rows, int(time.time() * 1000))
    try:
        client = redis.Redis.from_url(args.redis_url, socket_timeout=30, socket_connect_timeout=5)
    except ValueError:  # redis-py's URL parser
        raise cli_errors.invalid_redis_url("--redis-url") from None
    try:
        with client:
            stats = load_history(client, rows, labels=not args.no_labels)
    except redis.RedisError as exc:  # the message names host and port, never the password
        raise cli_errors.UserError(
            f"cannot use the Redis: {exc}", hint="check --redis-url / REDIS_URL"
        ) from None
    if args.checkpoint:
        # Only now that the history is in Redis: a checkpoint placed after a history that never got
        # there would have `--resume` skip it.
        _save_checkpoint(args.checkpoint, source, history_end)
    if args.out:
        write_csv(rows, args.out)
    print(describe(stats))
    return 0


def _save_checkpoint(path: Path, source, history_end: int) -> None:
    """The producer's checkpoint for the same source, placed after the history: `python -m producer
    --source <same> --resume --checkpoint <path>` streams what follows it."""
    from producer.checkpoint import Checkpoint, CheckpointStore
    from producer.errors import ProducerError
    from producer.source import Position

    try:
        CheckpointStore(path).save(Checkpoint(source.key, source.order, Position(0, history_end)))
    except ProducerError as exc:
        raise cli_errors.UserError(str(exc), hint="pass another --checkpoint") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli_errors.run("demo.backfill", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
