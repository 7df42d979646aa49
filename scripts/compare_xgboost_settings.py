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

from sklearn.metrics import average_precision_score, roc_auc_score

from contracts.features import SPEC_VERSION
from training import models, prepare
from training import spec as model_spec

WORK = Path(__file__).resolve().parent.parent / "artifacts" / "xgb-settings"  # gitignored, reused


def compare(seed: int, work: Path) -> list[str]:
    # Keyed by the feature spec too: prepared data of another spec would silently compare stale columns.
    prepared = work / f"seed-{seed}-{SPEC_VERSION}"
    if not (prepared / prepare.MANIFEST).is_file():
        prepare.prepare_source(prepare.SIMULATED, prepared, simulation=model_spec.SimulationSize(seed=seed))
    train, validation, test = (
        models.load_xgboost_csv(prepared / prepare.XGBOOST_FILES[name]) for name in prepare.SPLITS
    )
    lines = []
    for name, behavioural in (("behavioural setting", True), ("creditcard setting", False)):
        # The local twin's training: the profile's setting, early stopping on validation, the best trees.
        booster = models.train_xgboost(train, validation, behavioural=behavioural)
        val_p = booster.inplace_predict(validation.features)
        test_p = booster.inplace_predict(test.features)
        lines.append(
            f"seed {seed}, {name}: validation AP {average_precision_score(validation.labels, val_p):.3f}; "
            f"test AP {average_precision_score(test.labels, test_p):.3f}, "
            f"AUC {roc_auc_score(test.labels, test_p):.3f}; {booster.num_boosted_rounds()} trees"
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
