"""Train, cache and serve the local twins of the models the deployment trains (`python -m training
--source ...`), on the same prepared data (`training.prepare`, shared with the training custom
resource). `make demo` scores with a twin of its own, trained on a re-stamped world
(`training.streamed_twin`).

    models = load_or_train(Path("artifacts/models"))          # simulated data, the spec's features
    models.fraud_probability(rows), models.anomaly_score(rows), models.fraud_threshold, …
    models.feature_names                                       # the columns `rows` must have, in order

Artifacts (under `artifacts_dir`): `prepared/` (the splits), `xgboost/xgboost-model` (the file name
the built-in XGBoost container loads) and `xgboost/model.tar.gz` holding it,
`isolation-forest/model.joblib`, `report.json`/`report.md`, and `models.json` — written last; it
records what was trained from, so a different source or spec retrains.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
import xgboost as xgb
from sklearn.ensemble import IsolationForest

from contracts import features as feature_spec
from fraud_data.transactions import replaced_on_success
from training import models, prepare, report
from training import spec as model_spec
from training.thresholds import anomaly_threshold, best_f1_threshold

DEFAULT_ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "models"
DEFAULT_SYNTHETIC_ROWS = 100_000
DEFAULT_SOURCE = prepare.SIMULATED
# The local twin's simulated data: the Handbook's density (2 terminals per card, 100x100 grid) at a size
# that trains in about a minute here; the deployment and the model report use the full size.
DEFAULT_SIMULATION = model_spec.SimulationSize(customers=1_000, terminals=2_000, days=120)
ANOMALY_MODEL_NAME = "IsolationForest (local stand-in for Random Cut Forest)"
METADATA = "models.json"
XGBOOST_MODEL = Path("xgboost") / "xgboost-model"
XGBOOST_TARBALL = Path("xgboost") / "model.tar.gz"
FOREST_MODEL = Path("isolation-forest") / "model.joblib"


@dataclass
class LocalModels:
    booster: xgb.Booster
    forest: IsolationForest
    fraud_threshold: float
    anomaly_threshold: float
    metadata: dict

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The columns every row must have, in this order (the spec's MODEL_FEATURES, or creditcard.csv's
        30 columns for that profile)."""
        return tuple(self.metadata["feature_names"])

    def fraud_probability(self, rows: list[list[float]]) -> list[float]:
        """XGBoost's P(fraud) per row of `feature_names`."""
        return self.booster.inplace_predict(self._matrix(rows)).tolist()

    def anomaly_score(self, rows: list[list[float]]) -> list[float]:
        """The stand-in anomaly model's score per row; higher = more anomalous, as with RCF."""
        return models.isolation_forest_scores(self.forest, self._matrix(rows)).tolist()

    def _matrix(self, rows: list[list[float]]) -> np.ndarray:
        matrix = np.asarray(rows, dtype=np.float64)
        width = len(self.feature_names)
        if matrix.ndim != 2 or matrix.shape[1] != width:
            raise ValueError(f"expected rows of {width} features, got an array of shape {matrix.shape}")
        return matrix


def load_or_train(
    artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR,
    *,
    source: str | Path = DEFAULT_SOURCE,
    rows: int = DEFAULT_SYNTHETIC_ROWS,
    simulation: model_spec.SimulationSize = DEFAULT_SIMULATION,
) -> LocalModels:
    """The cached models when they were trained from `source` (`rows`, `simulation`), else train now."""
    artifacts_dir = Path(artifacts_dir)
    wanted = cache_key(source, rows, simulation)
    metadata_path = artifacts_dir / METADATA
    if metadata_path.exists():
        metadata = json.loads(metadata_path.read_text())
        if metadata.get("cache_key") == wanted:
            return load(artifacts_dir)
    train(artifacts_dir, source=source, rows=rows, simulation=simulation)
    return load(artifacts_dir)


def load(artifacts_dir: Path) -> LocalModels:
    metadata = json.loads((artifacts_dir / METADATA).read_text())
    booster = xgb.Booster()
    # Loading from a buffer detects the format from the content (the file has no extension).
    booster.load_model(bytearray((artifacts_dir / XGBOOST_MODEL).read_bytes()))
    forest = joblib.load(artifacts_dir / FOREST_MODEL)
    return LocalModels(
        booster=booster,
        forest=forest,
        fraud_threshold=float(metadata["fraud_threshold"]),
        anomaly_threshold=float(metadata["anomaly_threshold"]),
        metadata=metadata,
    )


def train(
    artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR,
    *,
    source: str | Path = DEFAULT_SOURCE,
    rows: int = DEFAULT_SYNTHETIC_ROWS,
    simulation: model_spec.SimulationSize = DEFAULT_SIMULATION,
    command: str | None = None,
) -> dict:
    """Prepare the splits, fit both models, compute thresholds and the report; returns the report."""
    artifacts_dir = Path(artifacts_dir)
    (artifacts_dir / METADATA).unlink(missing_ok=True)  # the old cache is invalid from here on
    manifest = prepare.prepare_source(
        source, artifacts_dir / "prepared", synthetic_rows=rows, simulation=simulation
    )
    split = {
        name: models.load_xgboost_csv(artifacts_dir / "prepared" / prepare.XGBOOST_FILES[name])
        for name in prepare.SPLITS
    }
    behavioural = prepare.is_behavioural(manifest)
    booster = models.train_xgboost(split["train"], split["validation"], behavioural=behavioural)
    forest = models.train_isolation_forest(split["train"])

    validation_probability = booster.inplace_predict(split["validation"].features)
    fraud_choice = best_f1_threshold(split["validation"].labels.tolist(), validation_probability.tolist())
    train_anomaly = models.isolation_forest_scores(forest, split["train"].features)
    anomaly_cutoff = anomaly_threshold(train_anomaly.tolist())

    test = split["test"]
    test_probability = booster.inplace_predict(test.features)
    test_anomaly = models.isolation_forest_scores(forest, test.features)
    model_report = {
        "command": command or _default_command(source, rows),
        "anomaly_model": ANOMALY_MODEL_NAME,
        "data": {
            key: manifest[key]
            for key in ("source", "rows_valid", "rows_malformed", "splits", "split", "sha256")
            if key in manifest
        },
        "features": manifest["feature_names"],
        "feature_spec_version": manifest["feature_spec_version"],
        "xgboost": {
            "params": model_spec.BEHAVIOURAL_XGBOOST_PARAMS if behavioural else model_spec.XGBOOST_PARAMS,
            "trees": booster.num_boosted_rounds(),
            "validation_f1_at_threshold": round(fraud_choice.confusion.f1, 4),
        },
        "test": {
            "fraud": report.model_metrics(test.labels, test_probability, fraud_choice.threshold),
            "anomaly": report.model_metrics(test.labels, test_anomaly, anomaly_cutoff),
            "verdicts": report.verdict_counts(
                test.labels, test_probability, test_anomaly, fraud_choice.threshold, anomaly_cutoff
            ),
        },
    }

    _save_booster(booster, artifacts_dir)
    (artifacts_dir / FOREST_MODEL).parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(forest, artifacts_dir / FOREST_MODEL)
    report.write(model_report, artifacts_dir / "report")
    metadata = {
        "cache_key": cache_key(source, rows, simulation),
        "feature_names": manifest["feature_names"],
        "feature_spec_version": manifest["feature_spec_version"],
        "fraud_threshold": fraud_choice.threshold,
        "anomaly_threshold": anomaly_cutoff,
        "anomaly_model": ANOMALY_MODEL_NAME,
        "data_sha256": manifest["sha256"],
    }
    with replaced_on_success(artifacts_dir / METADATA) as out:
        out.write(json.dumps(metadata, indent=2) + "\n")
    return model_report


def cache_key(
    source: str | Path, rows: int, simulation: model_spec.SimulationSize = DEFAULT_SIMULATION
) -> dict:
    """What the cached models depend on: the data source, both specs and the libraries' versions."""
    if str(source) == prepare.SIMULATED:
        origin: dict = {"kind": "simulated", **simulation.as_dict()}
    elif str(source) == prepare.SYNTHETIC:
        origin = {"kind": "synthetic", "rows": rows}
    else:
        path = Path(source).resolve()
        stat = path.stat()
        origin = {"kind": "file", "path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    spec = {
        name: getattr(model_spec, name)
        for name in dir(model_spec)
        if name.isupper() and isinstance(getattr(model_spec, name), str | int | float | tuple | dict)
    }
    return {
        "source": origin,
        "feature_spec_version": feature_spec.SPEC_VERSION,
        "preparation_version": model_spec.PREPARATION_VERSION,
        "spec_sha256": hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest(),
        "xgboost": xgb.__version__,
        "sklearn": sklearn.__version__,
    }


def _save_booster(booster: xgb.Booster, artifacts_dir: Path) -> None:
    path = artifacts_dir / XGBOOST_MODEL
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON: the format every XGBoost since 1.0 (the built-in 1.7-1 container included) can load.
    path.write_bytes(bytes(booster.save_raw("json")))
    # model.tar.gz with `xgboost-model` at its root, as SageMaker's model_data_url expects.
    with tarfile.open(artifacts_dir / XGBOOST_TARBALL, "w:gz") as tar:
        tar.add(path, arcname=path.name)


def _default_command(source: str | Path, rows: int) -> str:
    if str(source) == prepare.SIMULATED:
        return "python -m training --source simulated"
    if str(source) == prepare.SYNTHETIC:
        return f"python -m training --source synthetic --rows {rows}"
    return f"python -m training --source {Path(source).name}"
