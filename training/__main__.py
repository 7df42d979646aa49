"""`python -m training` (`make train`): the model report on the Handbook's protocol, or the local twin.

    python -m training [--seed S] [--also-seeds S ...] [--report PREFIX]   # the Handbook's protocol
    python -m training --source simulated|synthetic|creditcard.csv [--out DIR] [--report PREFIX]

Without `--source`: simulate the Handbook-size dataset with seed S (or read `--csv`), compute the
spec's features offline, and train and evaluate every row of the report (our baseline, our production
model, the anomaly model) on the Handbook's train / delay / test weeks, beside its published rows.
With `--source`: train the local twin of the deploy-time training on that source, time-ordered
split, and report its test split (`make demo` trains its own twin: `training.streamed_twin`)."""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
import traceback
import zipfile
from pathlib import Path

import cli_errors
from training import prepare
from training.local_models import DEFAULT_ARTIFACTS_DIR, DEFAULT_SYNTHETIC_ROWS, train
from training.report import write

DATASET_HINT = (
    "use creditcard.csv (Time, V1..V28, Amount, Class: Kaggle mlg-ulb/creditcardfraud, README 'Send "
    "transactions') or --source synthetic"
)


def _user_error(exc: BaseException, source: str, out: Path, since: float) -> cli_errors.UserError | None:
    """The user's data, or None when `exc` is our bug (then it keeps its traceback)."""
    manifest_path = out / "prepared" / prepare.MANIFEST
    if manifest_path.is_file() and manifest_path.stat().st_mtime >= since:
        manifest = json.loads(manifest_path.read_text())
        splits = manifest["splits"]
        fraud = sum(split["positives"] for split in splits.values())
        if splits["validation"]["positives"] == 0 or splits["train"]["positives"] == 0:
            # The split is stratified: each split gets its share of the fraud rows, but with fewer than 3
            # there is none for validation, where the fraud threshold (best F1) is chosen.
            return cli_errors.UserError(
                f"--source {source}: {fraud} fraud row(s) (Class=1) in {manifest['rows_valid']} valid rows "
                f"leave the validation split with {splits['validation']['positives']} and training with "
                f"{splits['train']['positives']}, so no model or threshold can be fitted",
                hint="use more --rows"
                if source == "synthetic"
                else "use a file with more fraud rows (at least 3, better hundreds: creditcard.csv has 492) "
                "or --source synthetic",
            )
    data_errors = (ValueError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile, EOFError, OSError)
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, data_errors) and any(Path(f.filename) == Path(prepare.__file__) for f in frames):
        named = str(exc).startswith(Path(source).name)  # prepare's messages mostly start with the file
        return cli_errors.UserError(str(exc) if named else f"--source {source}: {exc}", hint=DATASET_HINT)
    return None


def main(argv: list[str] | None = None) -> int:
    # One line for the user's mistakes (bad --source, data that cannot train), a traceback for ours.
    return cli_errors.run("training", lambda: _main(argv))


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument(
        "--source",
        help="train the local twin instead: 'simulated', 'synthetic' (an i.i.d. test fixture), "
        "creditcard.csv or a .zip holding it",
    )
    protocol = parser.add_argument_group("the Handbook's protocol (without --source)")
    protocol.add_argument("--seed", type=int, default=42, help="the simulated dataset's seed (%(default)s)")
    protocol.add_argument("--also-seeds", type=int, nargs="*", default=[], help="more datasets to report")
    protocol.add_argument("--csv", type=Path, help="a simulator CSV instead of simulating")
    protocol.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (%(default)s)")
    parser.add_argument(
        "--rows", type=int, default=DEFAULT_SYNTHETIC_ROWS, help="synthetic rows (default %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_ARTIFACTS_DIR, help="artifacts directory")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PREFIX",
        help="also write the report to PREFIX.json and PREFIX.md (e.g. docs/model-report)",
    )
    args = parser.parse_args(argv)
    if args.source is None:
        _protocol(args, argv)
        return
    named_source = args.source in ("synthetic", "simulated")  # generated, not files
    if not named_source and Path(args.source).is_dir():
        parser.error(f"--source {args.source!r} is a directory: give the path of creditcard.csv or its .zip")
    if not named_source and not Path(args.source).is_file():
        parser.error(f"--source {args.source!r}: no such file (or use 'synthetic')")
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    command = "python -m training " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    started_at = time.time() - 1  # file times: a manifest written by this run is newer
    try:
        report = train(args.out, source=args.source, rows=args.rows, command=command.strip())
    except Exception as exc:
        error = _user_error(exc, args.source, args.out, since=started_at)
        if error is None:
            raise
        raise error from exc
    elapsed = time.perf_counter() - started
    fraud, anomaly = report["test"]["fraud"], report["test"]["anomaly"]
    print(f"trained on {report['data']['source']} in {elapsed:.1f} s -> {args.out}")
    print(
        f"XGBoost: PR-AUC {fraud['pr_auc']:.4f}, ROC-AUC {fraud['roc_auc']:.4f}, "
        f"threshold {fraud['threshold']:.4g} "
        f"(precision {fraud['precision']:.3f}, recall {fraud['recall']:.3f})"
    )
    print(f"{report['anomaly_model']}: PR-AUC {anomaly['pr_auc']:.4f}, threshold {anomaly['threshold']:.4g}")
    if args.report:
        for path in write(report, args.report):
            print(f"wrote {path}")


def _protocol(args: argparse.Namespace, argv: list[str] | None) -> None:
    # Imported here: pandas and the protocol are not needed to train the twin.
    from training import handbook_report

    if args.csv is not None and not args.csv.is_file():
        raise cli_errors.UserError(
            f"--csv {args.csv}: no such file", hint="write one with python -m fraud_data simulate"
        )
    command = "python -m training " + shlex.join(argv if argv is not None else sys.argv[1:])
    reports = []
    for seed in [args.seed, *args.also_seeds]:
        report = handbook_report.run_protocol(
            args.csv if seed == args.seed else None,
            seed=seed,
            bootstrap_resamples=args.bootstrap,
            command=command if seed == args.seed else f"python -m training --seed {seed}",
        )
        for row in report["handbook_protocol"]:
            if not row["published"]:
                print(
                    f"seed {seed}: {row['name']}: AUC {row['auc_roc']:.3f}, "
                    f"AP {row['average_precision']:.3f}, CP@100 {row['card_precision_at_100']:.3f}"
                )
        reports.append(report)
    prefix = args.report or DEFAULT_ARTIFACTS_DIR.parent / "model-report"
    for path in handbook_report.write_report(
        handbook_report.with_other_seeds(reports[0], reports[1:]), prefix
    ):
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
