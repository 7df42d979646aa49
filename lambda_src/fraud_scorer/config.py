"""The scorer's environment, parsed once per container into a typed object (docs/architecture.md)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from contracts import scorer_env as env_names
from contracts.scorer_env import (
    DEFAULT_ANOMALY_THRESHOLD,
    DEFAULT_FRAUD_THRESHOLD,
    DEFAULT_TS_RETENTION_MS,
    DEFAULT_TXN_RETENTION_MS,
)


class ConfigError(ValueError):
    """The function is misconfigured: a deployment bug, not something a retry fixes."""


@dataclass(frozen=True)
class Settings:
    fraud_endpoint_name: str
    anomaly_endpoint_name: str
    fraud_threshold: float = DEFAULT_FRAUD_THRESHOLD
    anomaly_threshold: float = DEFAULT_ANOMALY_THRESHOLD
    redis_url: str | None = None
    redis_secret_arn: str | None = None
    ts_retention_ms: int = DEFAULT_TS_RETENTION_MS
    txn_retention_ms: int = DEFAULT_TXN_RETENTION_MS
    # The spec version the models were trained with (None: not known, e.g. the creditcard profile).
    feature_spec_version: str | None = None
    rejected_keep_payload: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        redis_url = env.get(env_names.REDIS_URL) or None
        redis_secret_arn = env.get(env_names.REDIS_SECRET_ARN) or None
        if not redis_url and not redis_secret_arn:
            raise ConfigError(f"set {env_names.REDIS_URL} or {env_names.REDIS_SECRET_ARN}")
        return cls(
            fraud_endpoint_name=_required(env, env_names.FRAUD_ENDPOINT_NAME),
            anomaly_endpoint_name=_required(env, env_names.ANOMALY_ENDPOINT_NAME),
            fraud_threshold=_number(env, env_names.FRAUD_THRESHOLD, DEFAULT_FRAUD_THRESHOLD),
            anomaly_threshold=_number(env, env_names.ANOMALY_THRESHOLD, DEFAULT_ANOMALY_THRESHOLD),
            redis_url=redis_url,
            redis_secret_arn=redis_secret_arn,
            ts_retention_ms=int(_number(env, env_names.TS_RETENTION_MS, DEFAULT_TS_RETENTION_MS)),
            txn_retention_ms=_positive_int(env, env_names.TXN_RETENTION_MS, DEFAULT_TXN_RETENTION_MS),
            feature_spec_version=env.get(env_names.FEATURE_SPEC_VERSION, "").strip() or None,
            rejected_keep_payload=_boolean(env, env_names.REJECTED_KEEP_PAYLOAD),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default)
    if value < 1 or value != int(value):
        raise ConfigError(f"{name} must be a whole number >= 1, got {env.get(name)!r}")
    return int(value)


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


def _boolean(env: Mapping[str, str], name: str) -> bool:
    # An explicit option: anything but a clear yes/no is a misconfiguration, not a silent default.
    raw = env.get(name, "").strip().lower()
    if raw not in _TRUE | _FALSE:
        raise ConfigError(f"{name} must be true or false, got {env.get(name)!r}")
    return raw in _TRUE


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value
