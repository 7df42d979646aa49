"""Fit the two local models on prepared splits (numpy arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from sklearn.ensemble import IsolationForest

from training import spec as model_spec


@dataclass(frozen=True)
class Split:
    features: np.ndarray  # shape (rows, 30)
    labels: np.ndarray  # shape (rows,), 0/1


def load_xgboost_csv(path) -> Split:
    """An XGBoost CSV (label first, no header) as arrays."""
    data = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    return Split(features=data[:, 1:], labels=data[:, 0].astype(np.int8))


def train_xgboost(train: Split, validation: Split, *, behavioural: bool) -> xgb.Booster:
    """The built-in container's training, locally: the profile's params (`behavioural`: the spec's
    features, else creditcard.csv's), `aucpr` early stopping on validation.

    The returned booster keeps only the trees up to the best validation iteration.
    """
    positives = int(train.labels.sum())
    params, num_round = model_spec.xgboost_setting(
        behavioural=behavioural, negatives=len(train.labels) - positives, positives=positives
    )
    params = {"tree_method": "hist", **params, "seed": model_spec.SEED}
    booster = xgb.train(
        params,
        xgb.DMatrix(train.features, label=train.labels),
        num_boost_round=num_round,
        evals=[(xgb.DMatrix(validation.features, label=validation.labels), "validation")],
        early_stopping_rounds=model_spec.XGBOOST_EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    return booster[: booster.best_iteration + 1]


def train_isolation_forest(train: Split) -> IsolationForest:
    """The stand-in for Random Cut Forest: same tree count and per-tree sample size, unsupervised."""
    forest = IsolationForest(
        n_estimators=model_spec.RCF_NUM_TREES,
        max_samples=min(model_spec.RCF_NUM_SAMPLES_PER_TREE, len(train.features)),
        random_state=model_spec.SEED,
    )
    return forest.fit(train.features)


def isolation_forest_scores(forest: IsolationForest, features: np.ndarray) -> np.ndarray:
    """Anomaly scores with RCF's orientation: higher = more anomalous (sklearn's are the opposite)."""
    return -forest.score_samples(features)
