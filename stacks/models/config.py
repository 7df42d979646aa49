"""Typed, validated CDK context for the SageMaker models (`cdk.json` context or `-c key=value`)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from contracts.scorer_env import DEFAULT_ANOMALY_THRESHOLD, DEFAULT_FRAUD_THRESHOLD
from stacks.context import ConfigError, ContextReader
from stacks.models.images import XGBOOST_VERSIONS
from training.spec import SimulationSize

# The deployment trains on data simulated inside the training Lambda (training/prepare.py).
DEFAULT_DATA_SOURCE = "simulated"
# The simulated training data's size is bounded by customers x days (the rows grow with both): twice
# the default size peaked at 3.2 GB and 255 s of CPU in the preparation (docs/training.md), inside the
# Lambda's PREPARE_MEMORY_MB and its 840 s (budget.PREPARE_TIMEOUT_S); the largest sizes the single keys
# allow took 6.3 GB.
MAX_SIMULATION_CUSTOMER_DAYS = 2 * SimulationSize().customers * SimulationSize().days
# The creditcard.csv profile's usual source: the public ULB credit-card dataset zip that AWS's own
# fraud-detection notebook reads (us-west-2). No SHA-256 of it is published, so using it (or any other
# remote file) requires pinning one: -c trainingDataSha256=<sha256 of the file you checked>.
CREDITCARD_DATA_SOURCE = "s3://sagemaker-e2e-solutions/fraud-detection/creditcardfraud.zip"
ENDPOINT_LAYOUTS = ("shared", "separate")
_SHA256 = r"[0-9a-fA-F]{64}"

_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
# Instance families with local NVMe storage refuse an endpoint config KmsKeyId (SageMaker API rule,
# CreateEndpointConfig KmsKeyId): the `d` families, and ml.g5, which SageMaker's ResourceConfig
# reference names among the NVMe families ("ml.p4d, ml.g4dn, and ml.g5") without a `d` in its name.
# T2 (the shared endpoint's default) is EBS-only and takes the key.
_LOCAL_STORAGE_FAMILY = re.compile(r"^ml\.([a-z]+\d+[a-z]*d[a-z]*|g5)\.")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")
# SageMaker serverless inference limits.
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = 200


@dataclass(frozen=True, kw_only=True)
class ModelsConfig:
    """Everything the models construct needs; build it with `from_context` (validates every key)."""

    data_source: str = DEFAULT_DATA_SOURCE
    # Pinned SHA-256 of a remote source (required for s3:// and https://), or of a local file
    # (computed at synth). The training Lambda refuses a file with another hash.
    data_sha256: str | None = None
    simulation: SimulationSize = field(default_factory=SimulationSize)
    synthetic_rows: int = 100_000  # the i.i.d. test fixture's size (local twin's default too)
    xgboost_version: str = "1.7-1"
    training_instance_type: str = "ml.m5.xlarge"
    transform_instance_type: str = "ml.m5.large"
    # "shared": both models on one instance (a multi-container endpoint, direct invocation);
    # "separate": an endpoint per model (needed for a serverless XGBoost endpoint).
    endpoint_layout: str = "shared"
    # The shared endpoint's instance. ml.t2.medium (2 vCPU, 4 GiB, $0.056/h) rather than ml.m5.large
    # (8 GiB, $0.115/h): it is a valid real-time ProductionVariant type, both built-in algorithms are
    # CPU algorithms with no documented instance restriction, and T2 has EBS storage only, so the
    # endpoint config's KMS key is accepted. Residual risks (docs/deploy.md, "Endpoint instance"): two
    # containers in 4 GiB (SageMaker warns that multi-container endpoints need memory for all models
    # or fail the ping health check), burst credits under sustained load. `-c
    # endpointInstanceType=ml.m5.large` switches back.
    endpoint_instance_type: str = "ml.t2.medium"
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
    # With skipTraining: the feature-spec version the given models were trained with (the scorer's
    # FEATURE_SPEC_VERSION). Trained at deploy time, the training custom resource reports it.
    model_feature_spec_version: str | None = None

    @property
    def shared_endpoint(self) -> bool:
        return self.endpoint_layout == "shared"

    @property
    def source_kind(self) -> str:
        """`simulated`, `synthetic`, `s3`, `https` or `file` (a local file uploaded as a CDK asset)."""
        if self.data_source in ("simulated", "synthetic"):
            return self.data_source
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
            data_sha256=_optional_sha256(ctx),
            simulation=SimulationSize(
                # Bounded so that the simulation and its features fit the training Lambda's 15 minutes
                # (docs/training.md: the full default size takes ~6 CPU-minutes locally).
                customers=ctx.integer(
                    "trainingSimulationCustomers", d.simulation.customers, minimum=100, maximum=10_000
                ),
                terminals=ctx.integer(
                    "trainingSimulationTerminals", d.simulation.terminals, minimum=100, maximum=20_000
                ),
                # At least the 37-day feature warm-up plus time for the three time-ordered splits.
                days=ctx.integer("trainingSimulationDays", d.simulation.days, minimum=60, maximum=366),
                seed=ctx.integer("trainingSimulationSeed", d.simulation.seed, minimum=0, maximum=2**31 - 1),
            ),
            synthetic_rows=ctx.integer(
                "trainingSyntheticRows", d.synthetic_rows, minimum=1_000, maximum=2_000_000
            ),
            xgboost_version=ctx.choice("xgboostVersion", d.xgboost_version, XGBOOST_VERSIONS),
            training_instance_type=_instance(ctx, "trainingInstanceType", d.training_instance_type),
            transform_instance_type=_instance(ctx, "transformInstanceType", d.transform_instance_type),
            endpoint_layout=ctx.choice("endpointLayout", d.endpoint_layout, ENDPOINT_LAYOUTS),
            endpoint_instance_type=_instance(
                ctx, "endpointInstanceType", d.endpoint_instance_type, encrypted_endpoint=True
            ),
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
            model_feature_spec_version=ctx.optional_string(
                "modelFeatureSpecVersion",
                pattern=r"[A-Za-z0-9._-]{1,64}",
                allowed="the feature-spec version the models were trained with (e.g. 12 hex digits)",
            ),
        )
        config._validate_source()
        config._validate_skip_training()
        config._validate_layout()
        config._validate_simulation_size()
        if config.source_kind == "file":
            # A local file's hash is known now: the Lambda verifies the uploaded copy against it.
            config = _with_file_sha256(config)
        return config

    def _validate_source(self) -> None:
        kind = self.source_kind
        if kind == "s3" and not _S3_URI.match(self.data_source):
            raise ConfigError("trainingDataSource", self.data_source, "an s3://bucket/key URI")
        if kind == "file" and not Path(self.data_source).is_file():
            raise ConfigError(
                "trainingDataSource",
                self.data_source,
                "'simulated', 'synthetic', an s3:// or https:// URI, or an existing local file "
                "(creditcard.csv or a .zip holding it)",
            )
        if kind in ("s3", "https") and self.data_sha256 is None and not self.skip_training:
            raise ConfigError(
                "trainingDataSha256",
                None,
                f"the SHA-256 of {self.data_source} (64 hex digits), required with a remote training "
                "source: download it once, check it, and pin `sha256sum <file>`; the deployment refuses "
                "any other file",
            )

    def _validate_simulation_size(self) -> None:
        size = self.simulation
        if size.customers * size.days > MAX_SIMULATION_CUSTOMER_DAYS:
            raise ConfigError(
                "trainingSimulationCustomers",
                size.customers,
                f"at most {MAX_SIMULATION_CUSTOMER_DAYS:,} customers x trainingSimulationDays (twice the "
                "default size: what the preparation Lambda's memory and time limit were measured to hold, "
                "docs/training.md)",
            )

    def _validate_layout(self) -> None:
        if self.fraud_serverless and self.shared_endpoint:
            raise ConfigError(
                "endpointLayout",
                self.endpoint_layout,
                "'separate' with fraudEndpointServerless=true (a serverless endpoint hosts one model)",
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
            if self.model_feature_spec_version is None:
                raise ConfigError(
                    "modelFeatureSpecVersion",
                    None,
                    "the feature-spec version the given models were trained with, required with "
                    "skipTraining (contracts.features.SPEC_VERSION of the code that prepared their data, "
                    "or 'creditcard-30' for the creditcard.csv profile); the scorer refuses to score "
                    "with a different one",
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
            "an instance family without local NVMe storage (no 'd' family, not ml.g5; e.g. ml.t2.medium or "
            "ml.m5.large): SageMaker refuses "
            "a KMS key on endpoint configs that use such instances",
        )
    return value


def _optional_sha256(ctx: ContextReader) -> str | None:
    value = ctx.optional_string("trainingDataSha256", pattern=_SHA256, allowed="64 hexadecimal digits")
    return value.lower() if value else None


def _with_file_sha256(config: ModelsConfig) -> ModelsConfig:
    digest = hashlib.sha256()
    with Path(config.data_source).open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if config.data_sha256 is not None and config.data_sha256 != actual:
        raise ConfigError(
            "trainingDataSha256",
            config.data_sha256,
            f"the SHA-256 of {config.data_source}, which is {actual}",
        )
    return dataclasses.replace(config, data_sha256=actual)


def _optional_s3(ctx: ContextReader, key: str) -> str | None:
    return ctx.optional_string(key, pattern=_S3_URI.pattern, allowed="an s3://bucket/key URI")
