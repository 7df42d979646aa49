"""Simulated transactions and their offline features.

    python -m fraud_data simulate --out PATH [--customers N] [--terminals M] [--days D]
                                  [--start YYYY-MM-DD] [--seed S]
        The Handbook's simulator (fraud_data.simulator); defaults are its size: 5,000 customers,
        10,000 terminals, 183 days from 2018-04-01, seed 42. Writes the CSV
        transaction_id,timestamp,card_id,terminal_id,amount,label,scenario (timestamp = epoch ms, UTC)
        in event order, and prints one summary line (counts per scenario) on stdout.

    python -m fraud_data features --in PATH --out PATH [--features baseline|model|all]
        Point-in-time-correct features (fraud_data.features, spec in contracts.features) of a
        simulator CSV: transaction_id plus one column per feature, in the input's row order.
        `baseline` = the Handbook's 15, `model` (default) = what the production model uses,
        `all` = baseline + every real-time candidate.

User errors (bad arguments, unreadable or malformed input) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
import time

from contracts.features import FEATURE_SETS, SPEC_VERSION, resolve
from fraud_data.features import compute_features, write_features_csv
from fraud_data.simulator import SimulationConfig, simulate
from fraud_data.transactions import read_csv, write_csv


class UsageError(Exception):
    """A mistake of the caller's: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default prints the whole usage block
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m fraud_data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sim = commands.add_parser("simulate", help="simulate transactions (Handbook design)")
    defaults = SimulationConfig()
    sim.add_argument("--out", required=True)
    sim.add_argument("--customers", type=int, default=defaults.customers)
    sim.add_argument("--terminals", type=int, default=defaults.terminals)
    sim.add_argument("--days", type=int, default=defaults.days)
    sim.add_argument("--start", default=defaults.start)
    sim.add_argument("--seed", type=int, default=defaults.seed)
    feat = commands.add_parser("features", help="offline features of a simulator CSV")
    feat.add_argument("--in", dest="source", required=True)
    feat.add_argument("--out", required=True)
    feat.add_argument("--features", choices=sorted(FEATURE_SETS), default="model")
    return parser


def _simulate(args: argparse.Namespace) -> str:
    try:
        config = SimulationConfig(args.customers, args.terminals, args.days, args.start, args.seed)
    except ValueError as err:
        raise UsageError(str(err)) from None
    started = time.perf_counter()
    sim = simulate(config)
    try:
        write_csv(sim.transactions, args.out)
    except OSError as err:
        raise UsageError(f"cannot write {args.out}: {err.strerror}") from None
    s = sim.stats
    return (
        f"{s.transactions} transactions, {s.frauds} frauds (added by S1 {s.s1_added}, S2 {s.s2_added}, "
        f"S3 {s.s3_added}; scenario column 1/2/3: {s.by_scenario[1]}/{s.by_scenario[2]}/{s.by_scenario[3]}) "
        f"-> {args.out} in {time.perf_counter() - started:.1f} s"
    )


def _features(args: argparse.Namespace) -> str:
    names = resolve(args.features)
    started = time.perf_counter()
    try:
        transactions = read_csv(args.source)
    except OSError as err:
        raise UsageError(f"cannot read {args.source}: {err.strerror}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(str(err).splitlines()[0]) from None
    try:
        columns = compute_features(transactions, names)
    except ValueError as err:
        raise UsageError(f"{args.source}: {err}") from None
    try:
        write_features_csv(args.out, transactions.transaction_id, columns)
    except OSError as err:
        raise UsageError(f"cannot write {args.out}: {err.strerror}") from None
    return (
        f"{len(transactions)} transactions x {len(names)} features ({args.features}, spec {SPEC_VERSION}) "
        f"-> {args.out} in {time.perf_counter() - started:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        summary = _simulate(args) if args.command == "simulate" else _features(args)
    except UsageError as err:
        print(f"python -m fraud_data: error: {err}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
