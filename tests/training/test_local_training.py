"""The local twin: trains on synthetic data, beats the base rate, caches, serves the demo's API."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import xgboost as xgb

from contracts import features as feature_spec
from fraud_data.synthetic import generate_rows
from training import models as model_fitting
from training import prepare
from training import spec as model_spec
from training.__main__ import main
from training.local_models import load, load_or_train
from training.thresholds import anomaly_threshold, best_f1_threshold

ROWS = 30_000  # small enough for CI, large enough for a few dozen frauds


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    main(
        [
            "--source",
            "synthetic",
            "--rows",
            str(ROWS),
            "--out",
            str(out),
            "--report",
            str(out / "model-report"),
        ]
    )
    return out


def test_xgboost_beats_the_positive_class_rate_by_a_clear_margin(trained):
    report = json.loads((trained / "model-report.json").read_text())
    base_rate = report["data"]["splits"]["test"]["positive_rate"]
    fraud = report["test"]["fraud"]
    # A random scorer's PR-AUC is the positive rate (~0.17%); demand far more.
    assert fraud["pr_auc"] > max(0.5, 50 * base_rate)
    assert fraud["roc_auc"] > 0.9
    assert fraud["recall"] > 0.5
    assert report["test"]["anomaly"]["pr_auc"] > 10 * base_rate


def test_report_names_the_source_the_stand_in_and_the_command(trained):
    report = json.loads((trained / "model-report.json").read_text())
    markdown = (trained / "model-report.md").read_text()
    assert report["data"]["source"] == f"synthetic ({ROWS} rows)"
    assert f"--rows {ROWS}" in report["command"]
    assert "IsolationForest" in report["anomaly_model"]
    assert "Random Cut Forest" in report["anomaly_model"]
    for text in ("PR-AUC", "ROC-AUC", "precision", "recall", "F1", "actual fraud", "synthetic"):
        assert text in markdown
    matrix = report["test"]["fraud"]["confusion_matrix"]
    assert sum(matrix.values()) == report["data"]["splits"]["test"]["rows"]


def test_thresholds_follow_the_documented_rules(trained):
    models = load(trained)
    validation = model_fitting.load_xgboost_csv(trained / "prepared" / prepare.XGBOOST_FILES["validation"])
    train = model_fitting.load_xgboost_csv(trained / "prepared" / prepare.XGBOOST_FILES["train"])
    expected_fraud = best_f1_threshold(
        validation.labels.tolist(), models.fraud_probability(validation.features.tolist())
    ).threshold
    expected_anomaly = anomaly_threshold(models.anomaly_score(train.features.tolist()))
    assert models.fraud_threshold == pytest.approx(expected_fraud)
    assert models.anomaly_threshold == pytest.approx(expected_anomaly)


def test_xgboost_artifact_is_what_the_built_in_container_loads(trained):
    # model.tar.gz holds `xgboost-model` at its root; it loads and predicts like the served model.
    with tarfile.open(trained / "xgboost" / "model.tar.gz") as tar:
        assert tar.getnames() == ["xgboost-model"]
        raw = tar.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    rows = [r[:-1] for r in generate_rows(50, seed=9, fraud_rate=0.2)]
    served = load(trained).fraud_probability(rows)
    assert booster.inplace_predict(np.asarray(rows)).tolist() == pytest.approx(served)


def test_scoring_api_used_by_the_local_endpoint(trained):
    models = load(trained)
    rows = list(generate_rows(2_000, seed=11, fraud_rate=0.05))
    features, labels = [r[:-1] for r in rows], np.array([r[-1] for r in rows])
    probability = np.array(models.fraud_probability(features))
    anomaly = np.array(models.anomaly_score(features))
    assert probability.shape == anomaly.shape == (2_000,)
    assert ((probability >= 0) & (probability <= 1)).all()
    # Frauds look more fraudulent and more anomalous (higher = more anomalous, as with RCF).
    assert probability[labels == 1].mean() > probability[labels == 0].mean() + 0.5
    assert anomaly[labels == 1].mean() > anomaly[labels == 0].mean()
    with pytest.raises(ValueError, match="rows of 30 features"):
        models.fraud_probability([[1.0, 2.0]])


def test_load_or_train_trains_once_then_serves_from_the_cache(tmp_path):
    # GIVEN no artifacts: the first call trains
    first = load_or_train(tmp_path, source="synthetic", rows=5_000)
    metadata = tmp_path / "models.json"
    stamp = metadata.stat().st_mtime_ns

    # WHEN asked again for the same source
    second = load_or_train(tmp_path, source="synthetic", rows=5_000)

    # THEN the cached models come back, untouched
    assert metadata.stat().st_mtime_ns == stamp
    assert second.fraud_threshold == first.fraud_threshold
    assert second.metadata == first.metadata

    # AND a different source retrains
    third = load_or_train(tmp_path, source="synthetic", rows=6_000)
    assert third.metadata["data_sha256"] != first.metadata["data_sha256"]
    assert json.loads(metadata.read_text())["cache_key"]["source"] == {"kind": "synthetic", "rows": 6_000}


def test_cli_rejects_a_missing_source_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--source", str(tmp_path / "nope.csv"), "--out", str(tmp_path)])
    assert "no such file" in capsys.readouterr().err


SMALL_SIMULATION = model_spec.SimulationSize(customers=300, terminals=600, days=75)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("simulated-models")
    return out, load_or_train(out, simulation=SMALL_SIMULATION)


def test_the_default_twin_trains_on_the_spec_features_of_simulated_data(simulated):
    # GIVEN the twin trained on its default source (simulated data, the spec's features)
    out, trained = simulated
    report = json.loads((out / "report.json").read_text())

    # THEN it scores rows of exactly MODEL_FEATURES, and refuses rows of another width
    assert trained.feature_names == feature_spec.MODEL_FEATURES
    assert trained.metadata["feature_spec_version"] == feature_spec.SPEC_VERSION
    with pytest.raises(ValueError, match=f"expected rows of {len(feature_spec.MODEL_FEATURES)} features"):
        trained.fraud_probability([[0.0] * 30])
    # AND on the held-out last weeks (time-ordered split) it ranks frauds far above the base rate
    test = report["data"]["splits"]["test"]
    assert report["data"]["split"] == "time-ordered"
    assert test["positives"] > 0
    assert report["test"]["fraud"]["pr_auc"] > 3 * test["positive_rate"]
    assert report["test"]["fraud"]["roc_auc"] > 0.75


def test_a_different_simulation_or_spec_retrains_and_the_same_one_is_cached(simulated, monkeypatch):
    out, trained = simulated
    calls = []
    monkeypatch.setattr("training.local_models.train", lambda *a, **k: calls.append(k))
    monkeypatch.setattr("training.local_models.load", lambda directory: directory)

    load_or_train(out, simulation=SMALL_SIMULATION)
    load_or_train(out, simulation=model_spec.SimulationSize(customers=300, terminals=600, days=75, seed=7))

    assert [call["simulation"].seed for call in calls] == [7]
