"""The deployed stack's name and outputs (docs/architecture.md, *Stack outputs*): the stack writes
them, the producer (`--stack`) and the docs read them."""

from __future__ import annotations

DEFAULT_STACK_NAME = "FraudDetection"

STREAM_NAME = "StreamName"
STREAM_ARN = "StreamArn"
REDIS_SECRET_ARN = "RedisSecretArn"  # noqa: S105 - an output's name
REDIS_ENDPOINT = "RedisEndpoint"
FRAUD_ENDPOINT_NAME = "FraudEndpointName"
ANOMALY_ENDPOINT_NAME = "AnomalyEndpointName"
FRAUD_THRESHOLD = "FraudThreshold"
ANOMALY_THRESHOLD = "AnomalyThreshold"
ALARM_TOPIC_ARN = "AlarmTopicArn"
ON_FAILURE_QUEUE_URL = "OnFailureQueueUrl"
GRAFANA_URL = "GrafanaUrl"
GRAFANA_ADMIN_SECRET_ARN = "GrafanaAdminSecretArn"  # noqa: S105 - an output's name
FEATURE_SPEC_VERSION = "FeatureSpecVersion"  # the feature specification the models were trained with
REDIS_GRAFANA_SECRET_ARN = "RedisGrafanaSecretArn"  # noqa: S105 - an output's name: the read-only user's login
