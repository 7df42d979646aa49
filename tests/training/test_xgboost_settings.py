"""Which XGBoost setting each profile trains with, in the deployment (the built-in container's
hyperparameters) and locally (the twins), and where the behavioural one comes from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts import features as feature_spec
from contracts.sagemaker_formats import CREDITCARD_FEATURE_SPEC_VERSION
from training import models as model_fitting
from training import spec as model_spec
from training.custom_resource import requests

REPORT = Path(__file__).resolve().parents[2] / "docs" / "model-report.json"
TRAIN = {"rows": 1_000, "negatives": 990, "positives": 10}


def manifest(feature_spec_version: str) -> dict:
    return {"feature_spec_version": feature_spec_version, "splits": {"train": TRAIN}}


def test_the_behavioural_setting_is_the_one_the_model_reports_validation_chose():
    # GIVEN the production row of the committed model report (tuned on the Handbook's validation weeks)
    rows = json.loads(REPORT.read_text())["handbook_protocol"]
    [production] = [row for row in rows if row["name"].startswith("XGBoost, production")]
    tuned = {k: v for k, v in production["params"].items() if k != "train_days"}  # the window: the protocol's

    # WHEN / THEN the deployment's behavioural profile trains with that setting, boosting rounds included
    params, num_round = model_spec.xgboost_setting(behavioural=True, negatives=990, positives=10)
    assert {**params, "num_round": num_round} == {**tuned, "eval_metric": "aucpr"}
    assert "scale_pos_weight" not in params


def test_the_deployed_hyperparameters_follow_the_prepared_datas_profile():
    behavioural = requests.xgboost_hyperparameters(manifest(feature_spec.SPEC_VERSION))
    creditcard = requests.xgboost_hyperparameters(manifest(CREDITCARD_FEATURE_SPEC_VERSION))

    # the spec's features: the report's setting, strings as the SageMaker API wants
    assert behavioural["max_depth"] == "4"
    assert behavioural["eta"] == "0.05"
    assert behavioural["num_round"] == "300"
    assert behavioural["tree_method"] == "hist"
    assert behavioural["max_bin"] == "1024"
    assert "scale_pos_weight" not in behavioural
    # creditcard.csv's 30 columns: the earlier, class-weighted setting (not tuned on that data)
    assert creditcard["max_depth"] == "5"
    assert creditcard["num_round"] == "200"
    assert float(creditcard["scale_pos_weight"]) == pytest.approx(99.0)
    for sent in (behavioural, creditcard):
        assert sent["early_stopping_rounds"] == str(model_spec.XGBOOST_EARLY_STOPPING_ROUNDS)
        assert all(isinstance(value, str) for value in sent.values())


@pytest.mark.parametrize("behavioural", [True, False], ids=["behavioural", "creditcard"])
def test_the_local_twin_trains_with_its_profiles_setting(behavioural):
    # GIVEN a small learnable problem
    rng = np.random.default_rng(7)
    features = rng.normal(size=(3_000, 5))
    labels = (features[:, 0] + 0.3 * rng.normal(size=3_000) > 1.8).astype(np.int8)
    train = model_fitting.Split(features[:2_000], labels[:2_000])
    validation = model_fitting.Split(features[2_000:], labels[2_000:])

    # WHEN
    booster = model_fitting.train_xgboost(train, validation, behavioural=behavioural)

    # THEN the booster carries the profile's depth and learning rate
    config = json.loads(booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]
    assert int(config["max_depth"]) == (4 if behavioural else 5)
    assert float(config["eta"]) == pytest.approx(0.05 if behavioural else 0.2)
    assert booster.num_boosted_rounds() <= (300 if behavioural else 200)
