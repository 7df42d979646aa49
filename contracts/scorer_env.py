"""The scorer's environment variables and their defaults (docs/architecture.md, *Scorer Lambda
environment*): the scorer parses them, the stack and the local pipeline set them."""

from __future__ import annotations

REDIS_URL = "REDIS_URL"
REDIS_SECRET_ARN = "REDIS_SECRET_ARN"  # noqa: S105 - the variable's name, not a secret
FRAUD_ENDPOINT_NAME = "FRAUD_ENDPOINT_NAME"
ANOMALY_ENDPOINT_NAME = "ANOMALY_ENDPOINT_NAME"
FRAUD_THRESHOLD = "FRAUD_THRESHOLD"
ANOMALY_THRESHOLD = "ANOMALY_THRESHOLD"
TS_RETENTION_MS = "TS_RETENTION_MS"
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"

# Used only when the models' thresholds are not known (training skipped without thresholds given).
DEFAULT_FRAUD_THRESHOLD = 0.5
DEFAULT_ANOMALY_THRESHOLD = 3.0
DEFAULT_TS_RETENTION_MS = 7 * 24 * 3600 * 1000

# Issue 12/14: the online feature store and hostile input.
# The feature-spec version the models were trained with; set and different from
# contracts.features.SPEC_VERSION = the scorer refuses to score (records retried, FeatureSpecMismatch).
FEATURE_SPEC_VERSION = "FEATURE_SPEC_VERSION"
TXN_RETENTION_MS = "TXN_RETENTION_MS"  # transaction documents expire this long after they are stored
REJECTED_KEEP_PAYLOAD = "REJECTED_KEEP_PAYLOAD"  # true = rejected entries keep up to 4 KiB of raw data
DEFAULT_TXN_RETENTION_MS = 30 * 24 * 3600 * 1000
DEFAULT_REJECTED_KEEP_PAYLOAD = False
