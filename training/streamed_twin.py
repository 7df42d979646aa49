"""The models `make demo` scores its live stream with: the local twin (XGBoost and an IsolationForest,
the local stand-in for Random Cut Forest) on `contracts.features.MODEL_FEATURES`, trained with the
same fitting code as `training.local_models`, on a world re-stamped the way the demo streams.

Why a twin of its own: the demo compresses time. Its live part is stamped with send times (150
transactions a second), so the short windows (a card's transactions in the last 10 minutes or hour)
see far more than the simulated days would; a model trained only on simulated time calls many live
transactions suspicious. The training world (same generator and size as the demo's, another seed, so
the demo scores transactions the models have never seen) therefore has its last 3 days re-stamped
the same way (see `train`). Rows from day 37 on only (the longest window + delay: earlier rows have
partial windows); every 5th of them held out for the fraud threshold (best F1) and the figures in
`metadata`. Cached under `<models_dir>/simulated-<key>/`, keyed by everything the models depend on
(simulation, feature spec version, hyperparameters, library versions).

The deployment, its local twin (`training.prepare`, `training.local_models`) and the model report
(`make train`) train on simulated time, unchanged: this re-stamping is the demo's, not the product's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
import xgboost as xgb

from contracts.features import MODEL_FEATURES, RETENTION_MS, SPEC_VERSION
from fraud_data.features import compute_features
from fraud_data.simulator import SimulationConfig, simulate
from fraud_data.transactions import Transactions, replaced_on_success
from training import models as model_fit
from training import spec as model_spec
from training.thresholds import anomaly_threshold, best_f1_threshold

DAY_MS = 86_400_000
# The demo streams its live part at --rate 150 (default), stamped with send times: the training
# world's last STREAMED_DAYS are re-stamped the same way (see train()).
STREAMED_DAYS = 3
STREAMED_RATE = 150.0
TRAINING_SEED = 2018  # the training world's seed: never the demo's default (42)
METADATA = "models.json"


def training_world(customers: int, terminals: int, days: int = 50) -> SimulationConfig:
    return SimulationConfig(customers=customers, terminals=terminals, days=days, seed=TRAINING_SEED)


@dataclass
class SimulatedModels:
    booster: xgb.Booster
    forest: object
    fraud_threshold: float
    anomaly_threshold: float
    metadata: dict
    feature_names: tuple[str, ...] = MODEL_FEATURES

    def fraud_probability(self, rows: list[list[float]]) -> list[float]:
        return self.booster.inplace_predict(self._matrix(rows)).tolist()

    def anomaly_score(self, rows: list[list[float]]) -> list[float]:
        return model_fit.isolation_forest_scores(self.forest, self._matrix(rows)).tolist()

    def _matrix(self, rows: list[list[float]]) -> np.ndarray:
        matrix = np.asarray(rows, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected rows of the {len(self.feature_names)} model features, got shape {matrix.shape}"
            )
        return matrix


def cache_key(world: SimulationConfig) -> str:
    spec = {n: getattr(model_spec, n) for n in dir(model_spec) if n.isupper()}
    parts = {
        "world": asdict(world),
        "features": list(MODEL_FEATURES),
        "spec_version": SPEC_VERSION,
        "hyperparameters": json.dumps(spec, sort_keys=True, default=str),
        "xgboost": xgb.__version__,
        "sklearn": sklearn.__version__,
        "streamed": [STREAMED_DAYS, STREAMED_RATE],
        "held_out": "every 5th row",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def load_or_train(models_dir: Path, world: SimulationConfig) -> SimulatedModels:
    directory = Path(models_dir) / f"simulated-{cache_key(world)}"
    if not (directory / METADATA).exists():
        train(directory, world)
    metadata = json.loads((directory / METADATA).read_text())
    booster = xgb.Booster()
    booster.load_model(bytearray((directory / "xgboost-model").read_bytes()))
    return SimulatedModels(
        booster=booster,
        forest=joblib.load(directory / "isolation-forest.joblib"),
        fraud_threshold=float(metadata["fraud_threshold"]),
        anomaly_threshold=float(metadata["anomaly_threshold"]),
        metadata=metadata,
    )


def as_streamed(transactions: Transactions, days: int, rate: float) -> Transactions:
    """The table with its last `days` days re-stamped as the demo streams its live part: one
    transaction every 1/`rate` s right after the history (order and everything else unchanged)."""
    t = transactions
    cut_at = t.timestamp[-1] // DAY_MS * DAY_MS - (days - 1) * DAY_MS
    cut = next(i for i, ts in enumerate(t.timestamp) if ts >= cut_at)
    base = t.timestamp[cut - 1]
    step_ms = 1000 / rate
    stamps = t.timestamp[:cut] + [base + round((i + 1) * step_ms) for i in range(len(t) - cut)]
    return Transactions(
        transaction_id=t.transaction_id,
        timestamp=stamps,
        card_id=t.card_id,
        terminal_id=t.terminal_id,
        amount=t.amount,
        label=t.label,
        scenario=t.scenario,
    )


def train(directory: Path, world: SimulationConfig) -> dict:
    simulated = simulate(world).transactions
    # Train on what serving sees: the demo stamps its live transactions with their send times, hours
    # of simulated activity in seconds, so its short windows (10 minutes, 1 hour) hold more than in
    # the simulator's own time. The world's last days are re-stamped that way (and its earlier days
    # kept): the models learn both, and the anomaly model does not take the compression for fraud.
    transactions = as_streamed(simulated, STREAMED_DAYS, STREAMED_RATE)
    columns = compute_features(transactions, MODEL_FEATURES)
    matrix = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in MODEL_FEATURES])
    labels = np.asarray(transactions.label, dtype=np.int8)
    stamps = np.asarray(simulated.timestamp, dtype=np.int64)  # the simulator's own time
    full_windows = stamps >= stamps.min() + RETENTION_MS
    # Every 5th row held out (both kinds of rows on both sides): the threshold's F1 and the figures.
    held_out = np.arange(len(stamps)) % 5 == 0
    train_rows, validation_rows = full_windows & ~held_out, full_windows & held_out
    if not labels[train_rows].any() or not labels[validation_rows].any():
        raise ValueError(f"the training world {world} has no fraud in its training or held-out rows")
    train_split = model_fit.Split(matrix[train_rows], labels[train_rows])
    validation = model_fit.Split(matrix[validation_rows], labels[validation_rows])
    booster = model_fit.train_xgboost(train_split, validation, behavioural=True)
    forest = model_fit.train_isolation_forest(train_split)
    probability = booster.inplace_predict(validation.features)
    choice = best_f1_threshold(validation.labels.tolist(), probability.tolist())
    train_scores = model_fit.isolation_forest_scores(forest, train_split.features)
    anomaly_cutoff = anomaly_threshold(train_scores.tolist())
    metadata = {
        "world": asdict(world),
        "features": list(MODEL_FEATURES),
        "feature_spec_version": SPEC_VERSION,
        "fraud_threshold": choice.threshold,
        "anomaly_threshold": anomaly_cutoff,
        "rows": {"train": int(train_rows.sum()), "validation": int(validation_rows.sum())},
        "validation": {
            "precision": round(choice.confusion.precision, 4),
            "recall": round(choice.confusion.recall, 4),
            "f1": round(choice.confusion.f1, 4),
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "xgboost-model").write_bytes(bytes(booster.save_raw("json")))
    joblib.dump(forest, directory / "isolation-forest.joblib")
    # Written last, whole or not at all: its presence means the cache is whole.
    with replaced_on_success(directory / METADATA) as out:
        out.write(json.dumps(metadata, indent=2) + "\n")
    return metadata
