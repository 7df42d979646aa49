"""Compare XGBoost settings on the deployment's own data and split (docs/training.md, *Hyperparameters*).

Prepares the default simulated training data exactly as the training custom resource does
(`training.prepare`, seeded; the seed is the dataset's identity), then trains each setting on its
training split, early stopping on the validation split as the built-in container does, and prints
Average Precision on validation (where a choice is made) and on test (reported only):

    .venv/bin/python scripts/compare_xgboost_settings.py --seed 42 --seed 7

About 3 minutes and 2 GB of memory per seed on 2 cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

from contracts.features import SPEC_VERSION
from training import prepare
from training import spec as model_spec

WORK = Path(__file__).resolve().parent.parent / "artifacts" / "xgb-settings"  # gitignored, reused


def _split(prepared: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(prepared / prepare.XGBOOST_FILES[name], delimiter=",", dtype=np.float32, ndmin=2)
    return data[:, 1:], data[:, 0]


def compare(seed: int, work: Path) -> list[str]:
    # Keyed by the feature spec too: prepared data of another spec would silently compare stale columns.
    prepared = work / f"seed-{seed}-{SPEC_VERSION}"
    if not (prepared / prepare.MANIFEST).is_file():
        prepare.prepare_source(prepare.SIMULATED, prepared, simulation=model_spec.SimulationSize(seed=seed))
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (_split(prepared, n) for n in prepare.SPLITS)
    train = xgb.DMatrix(train_x, label=train_y)
    validation = xgb.DMatrix(val_x, label=val_y)
    test = xgb.DMatrix(test_x, label=test_y)
    positives = int(train_y.sum())
    lines = []
    for name, behavioural in (("behavioural setting", True), ("creditcard setting", False)):
        params, num_round = model_spec.xgboost_setting(
            behavioural=behavioural, negatives=len(train_y) - positives, positives=positives
        )
        booster = xgb.train(
            {"tree_method": "hist", **params, "seed": model_spec.SEED},
            train,
            num_round,
            evals=[(validation, "validation")],
            early_stopping_rounds=model_spec.XGBOOST_EARLY_STOPPING_ROUNDS,
            verbose_eval=False,
        )
        trees = (0, booster.best_iteration + 1)
        val_p = booster.predict(validation, iteration_range=trees)
        test_p = booster.predict(test, iteration_range=trees)
        lines.append(
            f"seed {seed}, {name}: validation AP {average_precision_score(val_y, val_p):.3f}; "
            f"test AP {average_precision_score(test_y, test_p):.3f}, "
            f"AUC {roc_auc_score(test_y, test_p):.3f}; {trees[1]} trees"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, action="append", help="dataset seed (repeatable; default 42)")
    parser.add_argument("--work", type=Path, default=WORK, help="where the prepared data goes (%(default)s)")
    args = parser.parse_args()
    for seed in args.seed or [model_spec.SEED]:
        for line in compare(seed, args.work):
            print(line, flush=True)


if __name__ == "__main__":
    main()
