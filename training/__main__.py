"""`python -m training` (`make train`): train the local twins and write the model report."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from training.local_models import DEFAULT_ARTIFACTS_DIR, DEFAULT_SYNTHETIC_ROWS, train
from training.report import write


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument(
        "--source",
        default="synthetic",
        help="creditcard.csv, a .zip holding it, or 'synthetic' (default)",
    )
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
    if args.source != "synthetic" and not Path(args.source).is_file():
        parser.error(f"--source {args.source!r}: no such file (or use 'synthetic')")
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    command = "python -m training " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    report = train(args.out, source=args.source, rows=args.rows, command=command.strip())
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


if __name__ == "__main__":
    main()
