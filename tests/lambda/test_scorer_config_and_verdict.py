"""Environment parsing (fraud_scorer.config) and the verdict rule (fraud_scorer.verdict)."""

from __future__ import annotations

import pytest

from contracts.verdicts import Verdict, verdict_for
from fraud_scorer.config import ConfigError, Settings

BASE = {"REDIS_URL": "redis://localhost:6379/0", "FRAUD_ENDPOINT_NAME": "f", "ANOMALY_ENDPOINT_NAME": "a"}


def test_defaults_from_the_contract():
    settings = Settings.from_env(BASE)
    assert (settings.fraud_threshold, settings.anomaly_threshold) == (0.5, 3.0)
    assert settings.ts_retention_ms == 604_800_000
    assert settings.redis_secret_arn is None


def test_values_from_the_environment():
    env = {**BASE, "FRAUD_THRESHOLD": "0.42", "ANOMALY_THRESHOLD": "2.5", "TS_RETENTION_MS": "3600000"}
    settings = Settings.from_env(env)
    assert (settings.fraud_threshold, settings.anomaly_threshold, settings.ts_retention_ms) == (
        0.42,
        2.5,
        3600000,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"REDIS_URL": ""}, "REDIS_URL or REDIS_SECRET_ARN"),
        ({"FRAUD_ENDPOINT_NAME": " "}, "FRAUD_ENDPOINT_NAME is required"),
        ({"ANOMALY_THRESHOLD": "high"}, "ANOMALY_THRESHOLD must be a number"),
        ({"FRAUD_THRESHOLD": "nan"}, "FRAUD_THRESHOLD must be a finite number"),
        ({"FRAUD_THRESHOLD": "-1"}, "FRAUD_THRESHOLD must be a finite number"),
    ],
)
def test_misconfiguration_is_a_clear_error(change, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **change})


def test_secret_arn_alone_is_enough():
    env = {**BASE, "REDIS_URL": "", "REDIS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:r"}
    assert Settings.from_env(env).redis_url is None


@pytest.mark.parametrize(
    ("fraud", "anomaly", "expected"),
    [
        (0.5, 0.0, Verdict.FRAUD),  # at the threshold counts
        (0.9, 9.0, Verdict.FRAUD),  # fraud wins over anomaly
        (0.49, 3.0, Verdict.SUSPICIOUS),
        (0.49, 2.99, Verdict.LEGIT),
    ],
)
def test_verdict_rule(fraud, anomaly, expected):
    assert verdict_for(fraud, anomaly, fraud_threshold=0.5, anomaly_threshold=3.0) is expected


def test_feature_store_settings_and_their_defaults():
    # GIVEN nothing set: documents kept 30 days, no payload kept, no spec check
    defaults = Settings.from_env(BASE)
    assert (defaults.txn_retention_ms, defaults.rejected_keep_payload, defaults.feature_spec_version) == (
        30 * 24 * 3600 * 1000,
        False,
        None,
    )
    # WHEN set
    custom = Settings.from_env(
        {
            **BASE,
            "TXN_RETENTION_MS": "3600000",
            "REJECTED_KEEP_PAYLOAD": "yes",
            "FEATURE_SPEC_VERSION": " ab12 ",
        }
    )
    assert (custom.txn_retention_ms, custom.rejected_keep_payload, custom.feature_spec_version) == (
        3_600_000,
        True,
        "ab12",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TXN_RETENTION_MS": "0"}, "TXN_RETENTION_MS must be a whole number >= 1"),
        ({"TXN_RETENTION_MS": "1.5"}, "TXN_RETENTION_MS must be a whole number >= 1"),
        ({"REJECTED_KEEP_PAYLOAD": "maybe"}, "REJECTED_KEEP_PAYLOAD must be true or false"),
    ],
)
def test_feature_store_misconfiguration_is_a_clear_error(change, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **change})
