"""The models' specification, shared by the SageMaker training custom resource and the local twin.

One place for the seed, the split and the hyperparameters, so a model trained on a laptop
(`python -m training`) and one trained during `cdk deploy` see the same data and settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SEED = 42
# train / validation / test fractions of each class (stratified: the i.i.d. synthetic test fixture).
SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
# creditcard.csv, in time order: the first 80% train (its last eighth validates), the last 20% test.
CREDITCARD_SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.10, 0.20)
# The simulated data after its 37-day warm-up, in time order (about 102 / 22 / 22 days at full size).
SIMULATED_SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
# Bump when the preparation's output format changes, so prepared data and job names change with it.
PREPARATION_VERSION = "2"


@dataclass(frozen=True)
class SimulationSize:
    """The simulated training data of a deployment (fraud_data.simulator): the Handbook's full size
    by default - 5,000 cards, 10,000 terminals, 183 days from 2018-04-01 - seeded."""

    customers: int = 5_000
    terminals: int = 10_000
    days: int = 183
    start: str = "2018-04-01"
    seed: int = SEED

    def config(self):
        from fraud_data.simulator import SimulationConfig

        return SimulationConfig(
            customers=self.customers,
            terminals=self.terminals,
            days=self.days,
            start=self.start,
            seed=self.seed,
        )

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.customers} cards, {self.terminals} terminals, {self.days} days from {self.start}, "
            f"seed {self.seed}"
        )


# Built-in XGBoost (and xgboost-cpu locally). `scale_pos_weight` is added from the training split's
# class ratio; `num_round` / `early_stopping_rounds` are training-loop settings, not booster params.
XGBOOST_PARAMS: dict[str, str | int | float] = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "max_depth": 5,
    "eta": 0.2,
    "min_child_weight": 1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
}
XGBOOST_NUM_ROUND = 200
XGBOOST_EARLY_STOPPING_ROUNDS = 20

# Built-in Random Cut Forest. The local stand-in (IsolationForest) uses the same tree count and
# per-tree sample size; it is a different algorithm and is named as such everywhere.
RCF_NUM_TREES = 100
RCF_NUM_SAMPLES_PER_TREE = 512

# Thresholds (docs/architecture.md): best F1 on validation; mean + k·std of training anomaly scores.
ANOMALY_STD_MULTIPLIER = 3.0


def scale_pos_weight(negatives: int, positives: int) -> float:
    """XGBoost's recommended weight for the positive class: count(negative) / count(positive)."""
    if negatives < 0 or positives < 0:
        raise ValueError("class counts must be >= 0")
    return round(negatives / positives, 4) if positives else 1.0


def xgboost_hyperparameters(*, negatives: int, positives: int) -> dict[str, str]:
    """The built-in container's hyperparameters: every value a string, as the SageMaker API wants."""
    params = {
        **XGBOOST_PARAMS,
        "scale_pos_weight": scale_pos_weight(negatives, positives),
        "num_round": XGBOOST_NUM_ROUND,
        "early_stopping_rounds": XGBOOST_EARLY_STOPPING_ROUNDS,
    }
    return {key: str(value) for key, value in params.items()}


def rcf_hyperparameters(*, feature_dim: int) -> dict[str, str]:
    return {
        "feature_dim": str(feature_dim),
        "num_trees": str(RCF_NUM_TREES),
        "num_samples_per_tree": str(RCF_NUM_SAMPLES_PER_TREE),
    }
