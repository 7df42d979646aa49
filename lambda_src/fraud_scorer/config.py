"""The scorer's environment, parsed once per container into a typed object (docs/architecture.md)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_FRAUD_THRESHOLD = 0.5
DEFAULT_ANOMALY_THRESHOLD = 3.0
DEFAULT_TS_RETENTION_MS = 7 * 24 * 3600 * 1000


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        redis_url = env.get("REDIS_URL") or None
        redis_secret_arn = env.get("REDIS_SECRET_ARN") or None
        if not redis_url and not redis_secret_arn:
            raise ConfigError("set REDIS_URL or REDIS_SECRET_ARN")
        return cls(
            fraud_endpoint_name=_required(env, "FRAUD_ENDPOINT_NAME"),
            anomaly_endpoint_name=_required(env, "ANOMALY_ENDPOINT_NAME"),
            fraud_threshold=_number(env, "FRAUD_THRESHOLD", DEFAULT_FRAUD_THRESHOLD),
            anomaly_threshold=_number(env, "ANOMALY_THRESHOLD", DEFAULT_ANOMALY_THRESHOLD),
            redis_url=redis_url,
            redis_secret_arn=redis_secret_arn,
            ts_retention_ms=int(_number(env, "TS_RETENTION_MS", DEFAULT_TS_RETENTION_MS)),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required")
    return value


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
