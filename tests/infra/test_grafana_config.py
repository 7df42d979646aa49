"""Grafana's context keys: defaults, coercion of `-c key=value` strings, and clear refusals."""

from __future__ import annotations

import pytest

from stacks.config import AppConfig, ConfigError, ContextReader, GrafanaConfig
from tests.infra.synth import cdk_json_context

CERTIFICATE_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0f3a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"


def read(**overrides) -> GrafanaConfig:
    context = {**cdk_json_context(), **overrides}
    return AppConfig.from_context(ContextReader(context.get)).grafana


def test_cdk_json_defaults_are_closed_plain_http_x86():
    config = read()

    assert config.allowed_cidr is None
    assert config.https is False
    assert config.open_to_internet is False
    assert (config.architecture, config.cpu, config.memory_mb) == ("x86_64", 512, 1024)


def test_cidr_is_normalised_and_an_open_one_is_recognised():
    assert read(grafanaAllowedCidr=" 203.0.113.7/24 ").allowed_cidr == "203.0.113.0/24"
    assert read(grafanaAllowedCidr="2001:db8::/32").allowed_cidr == "2001:db8::/32"
    assert read(grafanaAllowedCidr="0.0.0.0/0").open_to_internet is True


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"grafanaAllowedCidr": "my laptop"}, "grafanaAllowedCidr"),
        ({"grafanaCpu": "384"}, "grafanaCpu"),
        ({"grafanaCpu": "256", "grafanaMemoryMb": "4096"}, "grafanaMemoryMb"),
        (
            {"grafanaCertificateArn": "arn:aws:iam::123456789012:server-certificate/x"},
            "grafanaCertificateArn",
        ),
        ({"grafanaDomainName": "grafana.example.com"}, "grafanaDomainName"),
        ({"grafanaArchitecture": "riscv"}, "grafanaArchitecture"),
        ({"logRetentionDays": "10"}, "logRetentionDays"),
    ],
)
def test_bad_values_fail_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        read(**overrides)

    assert error.value.key == key


def test_https_with_a_domain():
    config = read(grafanaCertificateArn=CERTIFICATE_ARN, grafanaDomainName="grafana.example.com")

    assert config.https is True
    assert config.domain_name == "grafana.example.com"
