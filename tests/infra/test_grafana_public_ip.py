"""Grafana without a load balancer (`grafanaAccess=public-ip`, the lean preset's default): one task
with its own public IP, reachable on Grafana's port from `grafanaAllowedCidr` (one address) only."""

from __future__ import annotations

import json

import pytest

from grafana import IMAGE_PROVISIONING_PATH
from stacks.grafana import GRAFANA_PORT
from tests.grafana.provisioning_env import referenced_variables
from tests.infra import test_security_and_teardown as security
from tests.infra.synth import Synth, synth
from tests.infra.test_grafana_service import (
    assert_redis_admits_grafana,
    environment,
    grafana_container,
    grafana_service,
    resources,
    subnet_ids,
    warnings,
)

ALLOWED_CIDR = "203.0.113.7/32"


@pytest.fixture(scope="session")
def public_ip_synth() -> Synth:
    return synth({"costPreset": "lean", "grafanaAllowedCidr": ALLOWED_CIDR})


def test_one_task_with_a_public_ip_in_a_public_subnet_and_no_load_balancer(public_ip_synth):
    assert resources(public_ip_synth, "AWS::ElasticLoadBalancingV2::LoadBalancer") == {}
    assert resources(public_ip_synth, "AWS::ElasticLoadBalancingV2::Listener") == {}
    service = grafana_service(public_ip_synth)
    assert not service.get("LoadBalancers")  # none, or an empty list
    assert service["DesiredCount"] == 1
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "ENABLED"
    assert sorted(network["Subnets"], key=str) == sorted(subnet_ids(public_ip_synth, public=True), key=str)
    # Replaced without a gap, rolled back when a new task never starts.
    deployment = service["DeploymentConfiguration"]
    assert deployment["MinimumHealthyPercent"] == 100
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


def test_only_the_allowed_address_reaches_grafanas_port(public_ip_synth):
    (group,) = grafana_service(public_ip_synth)["NetworkConfiguration"]["AwsvpcConfiguration"][
        "SecurityGroups"
    ]
    properties = public_ip_synth.template_json["Resources"][group["Fn::GetAtt"][0]]["Properties"]
    separate = [
        r["Properties"]
        for r in resources(public_ip_synth, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == group
    ]
    assert separate == []
    assert [
        (r["CidrIp"], r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in properties["SecurityGroupIngress"]
    ] == [(ALLOWED_CIDR, "tcp", GRAFANA_PORT, GRAFANA_PORT)]


def test_plain_http_settings_and_redis_inside_the_vpc(public_ip_synth):
    env = environment(public_ip_synth)
    # No certificate is possible here, so no Secure-cookie/HSTS settings that would break the login.
    assert "GF_SECURITY_COOKIE_SECURE" not in env
    assert "GF_SERVER_ROOT_URL" not in env
    assert env["GF_PATHS_PROVISIONING"] == IMAGE_PROVISIONING_PATH
    container = grafana_container(public_ip_synth)
    assert referenced_variables() <= set(env) | {s["Name"] for s in container["Secrets"]}
    assert not [name for name in env if "PASSWORD" in name or "SECRET" in name]
    assert container["PortMappings"] == [{"ContainerPort": GRAFANA_PORT, "Protocol": "tcp"}]
    # The self-hosted Redis admits Grafana's tasks (they reach it over the VPC, not the internet).
    assert_redis_admits_grafana(public_ip_synth)


def test_plain_http_is_said_at_synth_with_the_way_to_https(public_ip_synth):
    (warning,) = [w for w in warnings(public_ip_synth) if "plain HTTP" in w]
    assert ALLOWED_CIDR in warning
    assert "grafanaAccess=load-balancer" in warning


def test_the_url_output_says_where_the_address_is(public_ip_synth):
    url = json.dumps(public_ip_synth.template.find_outputs("GrafanaUrl")["GrafanaUrl"]["Value"])
    assert f":{GRAFANA_PORT}" in url
    assert "public IP" in url
    assert "list-tasks" in url


@pytest.mark.parametrize(
    "check",
    [
        security.test_exactly_one_environment_agnostic_stack,
        security.test_outputs_are_the_documented_ones,
        security.test_cdk_nag_reports_nothing_unacknowledged,
        security.test_no_secret_value_in_any_template,
        security.test_cdk_destroy_leaves_nothing_behind,
        security.test_every_ecs_cluster_owns_its_container_insights_log_group,
        security.test_every_log_group_is_deleted_with_the_stack_and_has_a_retention,
        security.test_every_lambda_logs_to_a_log_group_of_the_stack,
    ],
    ids=lambda check: check.__name__.removeprefix("test_"),
)
def test_the_lean_template_passes_the_stack_wide_checks(check, public_ip_synth):
    # The same checks every other configuration gets (tests/infra/test_security_and_teardown.py), run
    # on the lean preset's template (cfn-lint: tests/infra/test_cost.py).
    check(public_ip_synth)


def test_with_an_external_redis_the_public_ip_service_is_restarted_on_a_secret_change():
    # External Redis: the user sets the password after the deploy; ECS reads secrets at task start, so
    # the restart rule must point at this mode's service too (cdk-nag runs in this synthesis).
    s = synth({"costPreset": "lean", "redisMode": "external", "redisHost": "redis.example.com"})
    service_id = next(
        i
        for i, r in resources(s, "AWS::ECS::Service").items()
        if r["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "ENABLED"
    )
    (rule,) = resources(s, "AWS::Events::Rule").values()
    call = json.dumps(rule["Properties"]["Targets"][0]["Input"])
    assert "updateService" in call
    assert json.dumps({"Fn::GetAtt": [service_id, "Name"]}) in call
    assert resources(s, "AWS::ElasticLoadBalancingV2::LoadBalancer") == {}
