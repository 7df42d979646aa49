"""Typed, validated CDK context for the SageMaker models (`cdk.json` context or `-c key=value`)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks.config import ConfigError
from stacks.models.images import XGBOOST_VERSIONS

# The public ULB credit-card dataset zip that AWS's own fraud-detection notebook reads (us-west-2).
DEFAULT_DATA_SOURCE = "s3://sagemaker-e2e-solutions/fraud-detection/creditcardfraud.zip"
DEFAULT_FRAUD_THRESHOLD = 0.5  # used only when training is skipped (docs/architecture.md)
DEFAULT_ANOMALY_THRESHOLD = 3.0

_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
# Instance families with local NVMe storage refuse an endpoint config KmsKeyId (SageMaker API rule).
_LOCAL_STORAGE_FAMILY = re.compile(r"^ml\.[a-z]+\d+[a-z]*d[a-z]*\.")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")
# SageMaker serverless inference limits.
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = 200

ContextGetter = Callable[[str, Any], Any]


def _as_getter(context: Any) -> ContextGetter:
    """Accept `get(key, default)` or the app's `stacks.config.ContextReader` (which has `raw(key)`)."""
    if hasattr(context, "raw"):
        return lambda key, default: context.raw(key)
    return context


@dataclass(frozen=True, kw_only=True)
class ModelsConfig:
    """Everything the models construct needs; build it with `from_context` (validates every key)."""

    data_source: str = DEFAULT_DATA_SOURCE
    synthetic_rows: int = 100_000  # the local twin's default too, so both see the same data
    xgboost_version: str = "1.7-1"
    training_instance_type: str = "ml.m5.xlarge"
    transform_instance_type: str = "ml.m5.large"
    fraud_instance_type: str = "ml.m5.large"
    anomaly_instance_type: str = "ml.m5.large"
    fraud_serverless: bool = False
    fraud_serverless_memory_mb: int = 2048
    fraud_serverless_max_concurrency: int = 5
    skip_training: bool = False
    fraud_model_data_url: str | None = None
    anomaly_model_data_url: str | None = None
    fraud_threshold: float = DEFAULT_FRAUD_THRESHOLD
    anomaly_threshold: float = DEFAULT_ANOMALY_THRESHOLD

    @property
    def source_kind(self) -> str:
        """`synthetic`, `s3`, `https` or `file` (a local file uploaded as a CDK asset)."""
        if self.data_source == "synthetic":
            return "synthetic"
        if self.data_source.startswith("s3://"):
            return "s3"
        if self.data_source.startswith("https://"):
            return "https"
        return "file"

    @classmethod
    def from_context(cls, context: ContextGetter) -> ModelsConfig:
        """Read and validate the context keys; raises ConfigError (a ValueError) naming the key."""
        get = _as_getter(context)
        d = cls()
        config = cls(
            data_source=_text(get, "trainingDataSource", d.data_source),
            synthetic_rows=_integer(
                get, "trainingSyntheticRows", d.synthetic_rows, minimum=1_000, maximum=2_000_000
            ),
            xgboost_version=_choice(get, "xgboostVersion", d.xgboost_version, XGBOOST_VERSIONS),
            training_instance_type=_instance(get, "trainingInstanceType", d.training_instance_type),
            transform_instance_type=_instance(get, "transformInstanceType", d.transform_instance_type),
            fraud_instance_type=_instance(
                get, "fraudEndpointInstanceType", d.fraud_instance_type, encrypted_endpoint=True
            ),
            anomaly_instance_type=_instance(
                get, "anomalyEndpointInstanceType", d.anomaly_instance_type, encrypted_endpoint=True
            ),
            fraud_serverless=_boolean(get, "fraudEndpointServerless", d.fraud_serverless),
            fraud_serverless_memory_mb=_choice(
                get, "fraudServerlessMemoryMb", d.fraud_serverless_memory_mb, SERVERLESS_MEMORY_SIZES, int
            ),
            fraud_serverless_max_concurrency=_integer(
                get,
                "fraudServerlessMaxConcurrency",
                d.fraud_serverless_max_concurrency,
                minimum=1,
                maximum=SERVERLESS_MAX_CONCURRENCY,
            ),
            skip_training=_boolean(get, "skipTraining", d.skip_training),
            fraud_model_data_url=_optional_s3(get, "fraudModelDataUrl"),
            anomaly_model_data_url=_optional_s3(get, "anomalyModelDataUrl"),
            fraud_threshold=_number(get, "fraudThreshold", d.fraud_threshold, minimum=0.0, maximum=1.0),
            # RCF scores are unbounded above; a cut-off below zero would flag every transaction.
            anomaly_threshold=_number(get, "anomalyThreshold", d.anomaly_threshold, minimum=0.0, maximum=1e6),
        )
        config._validate_source()
        config._validate_skip_training()
        return config

    def _validate_source(self) -> None:
        kind = self.source_kind
        if kind == "s3" and not _S3_URI.match(self.data_source):
            raise ConfigError("trainingDataSource", self.data_source, "an s3://bucket/key URI")
        if kind == "file" and not Path(self.data_source).is_file():
            raise ConfigError(
                "trainingDataSource",
                self.data_source,
                "'synthetic', an s3:// or https:// URI, or an existing local file "
                "(creditcard.csv or a .zip holding it)",
            )

    def _validate_skip_training(self) -> None:
        if self.skip_training:
            for key, value in (
                ("fraudModelDataUrl", self.fraud_model_data_url),
                ("anomalyModelDataUrl", self.anomaly_model_data_url),
            ):
                if value is None:
                    raise ConfigError(
                        key, value, "the s3:// URI of a model.tar.gz, required with skipTraining"
                    )
        elif self.fraud_model_data_url or self.anomaly_model_data_url:
            raise ConfigError(
                "skipTraining", False, "true when fraudModelDataUrl/anomalyModelDataUrl are given"
            )


def _raw(get: ContextGetter, key: str, default: Any) -> Any:
    value = get(key, default)
    # cdk.json lists every key; an empty string there means "use the default".
    return default if value is None or value == "" else value


def _text(get: ContextGetter, key: str, default: str) -> str:
    value = _raw(get, key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, "a non-empty string")
    return value.strip()


def _boolean(get: ContextGetter, key: str, default: bool) -> bool:
    value = _raw(get, key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(key, value, "true or false")


def _integer(get: ContextGetter, key: str, default: int, *, minimum: int, maximum: int) -> int:
    value = _raw(get, key, default)
    allowed = f"an integer from {minimum} to {maximum}"
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value.strip())
    # bool is an int subclass; `true` is never a count.
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(key, value, allowed)
    return value


def _number(get: ContextGetter, key: str, default: float, *, minimum: float, maximum: float) -> float:
    value = _raw(get, key, default)
    allowed = f"a number from {minimum} to {maximum}"
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, allowed) from None
    # The comparison is False for NaN, so NaN is refused with the out-of-range values.
    if not minimum <= number <= maximum:
        raise ConfigError(key, value, allowed)
    return number


def _choice(get: ContextGetter, key: str, default: Any, choices: tuple, cast: Callable = str) -> Any:
    value = _raw(get, key, default)
    with contextlib.suppress(TypeError, ValueError):
        value = cast(value)  # "-c key=2048" arrives as a string
    if value not in choices:
        raise ConfigError(key, value, "one of " + ", ".join(map(str, choices)))
    return value


def _instance(get: ContextGetter, key: str, default: str, *, encrypted_endpoint: bool = False) -> str:
    value = _text(get, key, default)
    if not _INSTANCE_TYPE.match(value):
        raise ConfigError(key, value, "a SageMaker instance type like ml.m5.large")
    if encrypted_endpoint and _LOCAL_STORAGE_FAMILY.match(value):
        raise ConfigError(
            key,
            value,
            "an instance family without local NVMe storage (no 'd', e.g. ml.m5.large): SageMaker refuses "
            "a KMS key on endpoint configs that use such instances",
        )
    return value


def _optional_s3(get: ContextGetter, key: str) -> str | None:
    value = _raw(get, key, None)
    if value is None:
        return None
    if not isinstance(value, str) or not _S3_URI.match(value):
        raise ConfigError(key, value, "an s3://bucket/key URI")
    return value
