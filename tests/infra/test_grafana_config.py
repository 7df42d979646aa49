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
    assert (config.architecture, config.cpu, config.memory_mb) == ("x86_64", 256, 1024)


def test_a_single_address_may_use_plain_http_and_an_open_range_needs_a_certificate():
    single = read(grafanaAllowedCidr=" 203.0.113.7/32 ")
    assert (single.allowed_cidr, single.single_address, single.https) == ("203.0.113.7/32", True, False)
    opened = read(grafanaAllowedCidr="0.0.0.0/0", grafanaCertificateArn=CERTIFICATE_ARN)
    assert opened.open_to_internet is True
    assert read(grafanaAllowedCidr="198.51.100.0/24", grafanaCertificateArn=CERTIFICATE_ARN).https


@pytest.mark.parametrize(
    ("cidr", "says"),
    [
        # host bits set: strict=False would silently open 128.0.0.0/1, half the internet
        ("203.0.113.7/1", "128.0.0.0/1"),
        ("203.0.113.7/24", "203.0.113.7/32"),
        ("203.0.113.7", "without host bits"),
        # the load balancer is IPv4-only
        ("2001:db8::/32", "IPv4"),
        ("2001:db8::1/128", "IPv4"),
    ],
)
def test_allowed_cidr_is_parsed_strictly(cidr, says):
    with pytest.raises(ConfigError) as error:
        read(grafanaAllowedCidr=cidr, grafanaCertificateArn=CERTIFICATE_ARN)

    assert error.value.key == "grafanaAllowedCidr"
    assert says in str(error.value)


@pytest.mark.parametrize("cidr", ["203.0.113.0/24", "203.0.113.6/31", "0.0.0.0/0"])
def test_a_wider_range_without_a_certificate_is_refused(cidr):
    with pytest.raises(ConfigError) as error:
        read(grafanaAllowedCidr=cidr)

    assert error.value.key == "grafanaAllowedCidr"
    assert "grafanaCertificateArn" in str(error.value)


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
