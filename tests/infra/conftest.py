"""The configurations the infrastructure tests synthesize (each once per session)."""

from __future__ import annotations

import pytest

from tests.infra.synth import Synth, synth

EXTERNAL_HOST = "redis-12345.c1.us-east-1-2.ec2.cloud.redislabs.com"
EXISTING_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-cloud-AbCdEf"

# Every non-default option at once, in one synthesis (synthesis is the slow part of these tests).
# Values are strings, as `cdk synth -c key=value` passes them.
OPTIONS_CONTEXT = {
    "stackName": "FraudDemo",
    "lambdaArchitecture": "arm64",
    "streamMode": "provisioned",
    "streamShardCount": "4",
    "scorerMemoryMb": "2048",
    "scorerReservedConcurrency": "20",
    "scorerLogLevel": "DEBUG",
    "txnRetentionMs": "86400000",
    "logRetentionDays": "90",
    "batchSize": "200",
    "batchingWindowSeconds": "5",
    "parallelizationFactor": "3",
    "retryAttempts": "2",
    "maxRecordAgeSeconds": "600",
    "redisMode": "external",
    "redisHost": EXTERNAL_HOST,
    "redisPort": "16379",
    "redisSecretArn": EXISTING_SECRET_ARN,
    "alarmEmail": "oncall@example.com",
}
EXTERNAL_CONTEXT = {"redisMode": "external", "redisHost": EXTERNAL_HOST, "redisPort": "12345"}


@pytest.fixture(scope="session")
def default_synth() -> Synth:
    """cdk.json as it is: self-hosted Redis, on-demand stream, x86_64."""
    return synth()


@pytest.fixture(scope="session")
def external_synth() -> Synth:
    """External Redis with a secret the stack creates."""
    return synth(EXTERNAL_CONTEXT)


@pytest.fixture(scope="session")
def options_synth() -> Synth:
    return synth(OPTIONS_CONTEXT)
