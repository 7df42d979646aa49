"""Typed, validated CDK context for the SageMaker models (`cdk.json` context or `-c key=value`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from contracts.scorer_env import DEFAULT_ANOMALY_THRESHOLD, DEFAULT_FRAUD_THRESHOLD
from stacks.context import ConfigError, ContextReader
from stacks.models.images import XGBOOST_VERSIONS

# The public ULB credit-card dataset zip that AWS's own fraud-detection notebook reads (us-west-2).
DEFAULT_DATA_SOURCE = "s3://sagemaker-e2e-solutions/fraud-detection/creditcardfraud.zip"

_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
# Instance families with local NVMe storage refuse an endpoint config KmsKeyId (SageMaker API rule).
_LOCAL_STORAGE_FAMILY = re.compile(r"^ml\.[a-z]+\d+[a-z]*d[a-z]*\.")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")
# SageMaker serverless inference limits.
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = 200


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
    def from_context(cls, ctx: ContextReader) -> ModelsConfig:
        """Read and validate the context keys; raises ConfigError (a ValueError) naming the key."""
        d = cls()
        config = cls(
            data_source=ctx.string(
                "trainingDataSource", d.data_source, pattern=r"\S+", allowed="a non-empty string"
            ),
            synthetic_rows=ctx.integer(
                "trainingSyntheticRows", d.synthetic_rows, minimum=1_000, maximum=2_000_000
            ),
            xgboost_version=ctx.choice("xgboostVersion", d.xgboost_version, XGBOOST_VERSIONS),
            training_instance_type=_instance(ctx, "trainingInstanceType", d.training_instance_type),
            transform_instance_type=_instance(ctx, "transformInstanceType", d.transform_instance_type),
            fraud_instance_type=_instance(
                ctx, "fraudEndpointInstanceType", d.fraud_instance_type, encrypted_endpoint=True
            ),
            anomaly_instance_type=_instance(
                ctx, "anomalyEndpointInstanceType", d.anomaly_instance_type, encrypted_endpoint=True
            ),
            fraud_serverless=ctx.boolean("fraudEndpointServerless", d.fraud_serverless),
            fraud_serverless_memory_mb=ctx.choice(
                "fraudServerlessMemoryMb", d.fraud_serverless_memory_mb, SERVERLESS_MEMORY_SIZES
            ),
            fraud_serverless_max_concurrency=ctx.integer(
                "fraudServerlessMaxConcurrency",
                d.fraud_serverless_max_concurrency,
                minimum=1,
                maximum=SERVERLESS_MAX_CONCURRENCY,
            ),
            skip_training=ctx.boolean("skipTraining", d.skip_training),
            fraud_model_data_url=_optional_s3(ctx, "fraudModelDataUrl"),
            anomaly_model_data_url=_optional_s3(ctx, "anomalyModelDataUrl"),
            fraud_threshold=ctx.number("fraudThreshold", d.fraud_threshold, minimum=0.0, maximum=1.0),
            # RCF scores are unbounded above; a cut-off below zero would flag every transaction.
            anomaly_threshold=ctx.number("anomalyThreshold", d.anomaly_threshold, minimum=0.0, maximum=1e6),
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


def _instance(ctx: ContextReader, key: str, default: str, *, encrypted_endpoint: bool = False) -> str:
    value = ctx.string(key, default)
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


def _optional_s3(ctx: ContextReader, key: str) -> str | None:
    return ctx.optional_string(key, pattern=_S3_URI.pattern, allowed="an s3://bucket/key URI")
