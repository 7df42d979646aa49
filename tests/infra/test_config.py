"""Context validation: bad values fail synthesis early with a message naming key, value and rule."""

from __future__ import annotations

import re

import pytest

from stacks.config import AppConfig, ConfigError, ContextReader
from tests.infra.synth import cdk_json_context, new_app


def read(overrides: dict) -> AppConfig:
    context = {**cdk_json_context(), **overrides}
    return AppConfig.from_context(ContextReader(context.get))


def test_cdk_json_defaults_are_the_documented_defaults():
    # WHEN
    config = read({})
    # THEN
    assert config.stack_name == "FraudDetection"
    assert config.redis.mode == "self-hosted"
    assert config.stream.mode == "on-demand"
    assert config.scorer.architecture == "x86_64"
    assert config.trigger.batch_size == 500
    assert config.scorer.reserved_concurrency is None
    assert config.alarms.email is None


def test_cli_strings_are_coerced():
    # GIVEN values as `cdk synth -c key=value` passes them
    config = read({"batchSize": "250", "redisTls": "false", "scorerReservedConcurrency": "7"})
    # THEN
    assert config.trigger.batch_size == 250
    assert config.redis.tls is False
    assert config.scorer.reserved_concurrency == 7


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        ({"redisMode": "cluster"}, "redisMode", "one of self-hosted, external"),
        ({"streamMode": "ondemand"}, "streamMode", "one of on-demand, provisioned"),
        ({"streamMode": "provisioned", "streamShardCount": "0"}, "streamShardCount", "from 1 to 500"),
        ({"lambdaArchitecture": "aarch64"}, "lambdaArchitecture", "one of x86_64, arm64"),
        ({"batchSize": "ten"}, "batchSize", "an integer from 1 to 10000"),
        ({"batchSize": True}, "batchSize", "an integer from 1 to 10000"),
        ({"batchingWindowSeconds": "301"}, "batchingWindowSeconds", "from 0 to 300"),
        ({"parallelizationFactor": "11"}, "parallelizationFactor", "from 1 to 10"),
        ({"scorerMemoryMb": "128"}, "scorerMemoryMb", "from 256 to 10240"),
        ({"logRetentionDays": "31"}, "logRetentionDays", "one of 1, 3, 5, 7, 14, 30"),
        ({"redisTls": "maybe"}, "redisTls", "true or false"),
        ({"redisMode": "external"}, "redisHost", "required when redisMode is 'external'"),
        (
            {"redisMode": "external", "redisHost": "redis://host:6379"},
            "redisHost",
            "a DNS name or IPv4 address",
        ),
        ({"redisPort": "70000"}, "redisPort", "from 1 to 65535"),
        (
            {"redisSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis"},
            "redisSecretArn",
            "complete ARN",
        ),
        ({"alarmEmail": "not-an-address"}, "alarmEmail", "an e-mail address"),
        ({"stackName": "1-bad_name"}, "stackName", "a CloudFormation stack name"),
        ({"vpcMaxAzs": "3"}, "vpcMaxAzs", "environment-agnostic"),
        ({"vpcEndpointAzs": "3"}, "vpcEndpointAzs", "an integer from 1 to 2"),
    ],
)
def test_bad_value_names_key_value_and_what_is_allowed(overrides, key, allowed):
    # WHEN / THEN
    with pytest.raises(ConfigError) as error:
        read(overrides)
    message = str(error.value)
    assert error.value.key == key
    assert f"cdk context '{key}'" in message
    assert allowed in message
    if key in overrides:
        assert str(overrides[key]) in message


def test_password_in_context_is_refused_without_echoing_it():
    # GIVEN a password passed on the command line
    password = "s3cr3t-Pa55word-from-cli"
    # WHEN / THEN
    with pytest.raises(ConfigError) as error:
        read({"redisMode": "external", "redisHost": "redis.example.com", "redisPassword": password})
    assert error.value.key == "redisPassword"
    assert password not in str(error.value)
    assert "Secrets Manager" in str(error.value)


def test_bad_context_fails_building_the_app_before_any_resource():
    # GIVEN the app as `cdk synth -c batchSize=0` would build it
    from app import build_app

    app = new_app({"batchSize": "0"})
    # WHEN / THEN
    with pytest.raises(ConfigError, match=re.escape("cdk context 'batchSize' = '0' is not valid")):
        build_app(app)
    assert app.node.children == []


@pytest.mark.parametrize(
    "azs", ["3", "6", "9", 3, "1", "two"], ids=["cli-3", "cli-6", "cli-9", "json-3", "one", "text"]
)
def test_any_az_count_but_two_is_refused_because_the_stack_is_environment_agnostic(azs):
    # GIVEN `-c vpcMaxAzs=3` or more: the CDK would still build the environment-agnostic VPC in 2 AZs
    # (VpcProps.maxAzs), so the value would be ignored without a word; less, or not a number: one
    # message for all, naming the one value there is
    from app import build_app

    app = new_app({"vpcMaxAzs": azs})
    # WHEN / THEN synthesis stops before any resource, naming the key, the value, 2 and why
    with pytest.raises(ConfigError) as error:
        build_app(app)
    message = str(error.value)
    assert error.value.key == "vpcMaxAzs"
    assert f"cdk context 'vpcMaxAzs' = {azs!r} is not valid: only 2 here" in message
    assert "environment-agnostic" in message
    assert app.node.children == []


def test_two_azs_the_default_are_accepted():
    assert read({}).vpc_max_azs == 2
    assert read({"vpcMaxAzs": "2"}).vpc_max_azs == 2
    assert read({"vpcEndpointAzs": "2"}).vpc_endpoint_azs == 2
