"""The feature specification: Handbook names and definitions, versioning, retention, stdlib only."""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
from pathlib import Path

import pytest

import contracts.features as spec
from contracts.features import DAY_MS, FEATURES, Feature

ROOT = Path(__file__).resolve().parents[2]

HANDBOOK_BASELINE = [
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
    "TERMINAL_ID_NB_TX_1DAY_WINDOW",
    "TERMINAL_ID_RISK_1DAY_WINDOW",
    "TERMINAL_ID_NB_TX_7DAY_WINDOW",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
    "TERMINAL_ID_NB_TX_30DAY_WINDOW",
    "TERMINAL_ID_RISK_30DAY_WINDOW",
]


def test_baseline_is_the_handbooks_15_in_its_order():
    assert list(spec.BASELINE_FEATURES) == HANDBOOK_BASELINE


def test_baseline_definitions():
    for days in (1, 7, 30):
        count, mean = (
            FEATURES[f"CUSTOMER_ID_NB_TX_{days}DAY_WINDOW"],
            FEATURES[f"CUSTOMER_ID_AVG_AMOUNT_{days}DAY_WINDOW"],
        )
        assert (count.entity, count.aggregation, count.window_ms, count.delay_ms) == (
            "card",
            "count",
            days * DAY_MS,
            0,
        )
        assert (mean.entity, mean.aggregation, mean.window_ms, mean.delay_ms) == (
            "card",
            "mean_amount",
            days * DAY_MS,
            0,
        )
        count, risk = (
            FEATURES[f"TERMINAL_ID_NB_TX_{days}DAY_WINDOW"],
            FEATURES[f"TERMINAL_ID_RISK_{days}DAY_WINDOW"],
        )
        assert (count.entity, count.aggregation, count.window_ms, count.delay_ms) == (
            "terminal",
            "count",
            days * DAY_MS,
            7 * DAY_MS,
        )
        assert (risk.entity, risk.aggregation, risk.window_ms, risk.delay_ms) == (
            "terminal",
            "fraud_share",
            days * DAY_MS,
            7 * DAY_MS,
        )
    assert [FEATURES[n].entity for n in HANDBOOK_BASELINE[:3]] == ["transaction"] * 3


def test_named_lists():
    assert spec.ALL_FEATURES == spec.BASELINE_FEATURES + spec.EXTRA_FEATURES
    assert set(spec.ALL_FEATURES) == set(FEATURES)
    assert spec.MODEL_FEATURES == spec.BASELINE_FEATURES + spec.MODEL_EXTRA_FEATURES
    assert set(spec.MODEL_EXTRA_FEATURES) <= set(spec.EXTRA_FEATURES)
    assert len(spec.EXTRA_FEATURES) >= 5
    assert spec.FEATURE_SETS == {
        "baseline": spec.BASELINE_FEATURES,
        "model": spec.MODEL_FEATURES,
        "all": spec.ALL_FEATURES,
    }
    assert spec.resolve("baseline") == spec.BASELINE_FEATURES
    assert spec.resolve(["TX_AMOUNT"]) == ("TX_AMOUNT",)
    with pytest.raises(KeyError, match="unknown feature set"):
        spec.resolve("best")
    with pytest.raises(KeyError, match="NOPE"):
        spec.resolve(["TX_AMOUNT", "NOPE"])


def test_retention_is_the_longest_window_plus_delay():
    assert spec.CARD_RETENTION_MS == 30 * DAY_MS
    assert spec.TERMINAL_RETENTION_MS == 37 * DAY_MS
    assert spec.RETENTION_MS == 37 * DAY_MS
    assert spec.entity_retention_ms("card", ["CUSTOMER_ID_NB_TX_1HOUR_WINDOW"]) == 3_600_000
    assert spec.entity_retention_ms("terminal", ["TX_AMOUNT"]) == 0


def test_spec_version_changes_with_any_definition():
    version = spec.SPEC_VERSION
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert spec.spec_version() == version
    first = spec.SPEC[3]
    for change in (
        {"window_ms": first.window_ms + 1},
        {"delay_ms": 1},
        {"aggregation": "sum_amount"},
        {"name": "X"},
    ):
        changed = (*spec.SPEC[:3], dataclasses.replace(first, **change), *spec.SPEC[4:])
        assert spec.spec_version(changed) != version, change
    assert spec.spec_version(model_features=(*spec.MODEL_FEATURES, spec.EXTRA_FEATURES[0])) != version
    assert spec.spec_version(spec.SPEC[::-1]) != version  # the order is the models' column order


@pytest.mark.parametrize(
    ("entity", "aggregation", "window", "delay"),
    [
        ("terminal", "fraud_share", DAY_MS, 0),  # a label is not known without a delay
        ("card", "fraud_share", DAY_MS, DAY_MS),  # a card's state holds amounts, not labels
        ("terminal", "mean_amount", DAY_MS, 0),  # a terminal's state holds labels, not amounts
        ("transaction", "amount", DAY_MS, 0),
        ("card", "count", 0, 0),
        ("card", "amount_to_mean", DAY_MS, DAY_MS),
        ("merchant", "count", DAY_MS, 0),
        ("card", "median", DAY_MS, 0),
        ("terminal", "fraud_count", DAY_MS, 0),  # the fraud-history views need known labels too
        ("terminal", "days_since_first_fraud", DAY_MS, 0),
        ("card", "days_since_last_fraud", DAY_MS, DAY_MS),
        ("card", "fraud_share_since_first_fraud", DAY_MS, DAY_MS),
    ],
)
def test_inconsistent_definitions_are_refused(entity, aggregation, window, delay):
    with pytest.raises(ValueError, match="bad feature"):
        Feature("F", entity, aggregation, window, delay)


@pytest.mark.parametrize(
    "path",
    [
        "contracts/features.py",
        "fraud_data/simulator.py",
        "fraud_data/features.py",
        "fraud_data/transactions.py",
    ],
)
def test_standard_library_only(path):
    """They run in a plain zip Lambda (simulator) and the scorer image (contracts): no numpy."""
    tree = ast.parse((ROOT / path).read_text())
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    allowed = set(sys.stdlib_module_names) | {"__future__", "contracts", "fraud_data"}
    assert modules <= allowed
    if path.startswith("contracts/"):
        assert "fraud_data" not in modules
