"""Redis in both modes (self-hosted on Fargate, external) and the VPC it lives in."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match

from stacks.redis.self_hosted import NAMESPACE
from tests.infra.conftest import EXISTING_SECRET_ARN, EXTERNAL_CONTEXT, EXTERNAL_HOST, OPTIONS_CONTEXT
from tests.infra.synth import Synth, synth
from tests.infra.test_grafana_service import ALLOWED_CIDR, CERTIFICATE_ARN, GRAFANA_CONTEXT, KMS_CONTEXT

CONNECTION_KEYS = {"host", "port", "password", "username", "tls"}


def resources(synth: Synth, resource_type: str) -> dict[str, dict]:
    return synth.template.find_resources(resource_type)


def scorer_id(synth: Synth) -> str:
    (function_id,) = synth.template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"PackageType": "Image"}}
    )
    return function_id


def secret_template(synth: Synth) -> tuple[str, dict, dict]:
    """The Redis connection secret (the one the RedisSecretArn output names)."""
    secret_id = synth.template.find_outputs("RedisSecretArn")["RedisSecretArn"]["Value"]["Ref"]
    secret = synth.template_json["Resources"][secret_id]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generate = secret["Properties"]["GenerateSecretString"]
    return secret_id, generate, json.loads(generate["SecretStringTemplate"])


# --- network ---------------------------------------------------------------------------------------


def test_vpc_has_public_and_isolated_subnets_no_nat_and_flow_logs(default_synth):
    template = default_synth.template
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::Subnet", 4)  # 2 AZs x (public, isolated)
    template.has_resource_properties("AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "REJECT"})


def test_isolated_subnets_get_the_endpoints_redis_and_the_scorer_need(default_synth):
    # GIVEN the service names of all VPC endpoints
    names = []
    for endpoint in resources(default_synth, "AWS::EC2::VPCEndpoint").values():
        name = endpoint["Properties"]["ServiceName"]
        names.append(name if isinstance(name, str) else json.dumps(name))
    # THEN each required service is there once
    for service in ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "sagemaker.runtime", "xray", ".s3"):
        assert len([n for n in names if service in n]) == 1, (service, names)
    default_synth.template.has_resource_properties(
        "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Interface", "PrivateDnsEnabled": True}
    )


def _depends_on(synth: Synth, resource_id: str) -> set[str]:
    return set(synth.template_json["Resources"][resource_id].get("DependsOn", []))


def _service_ids(synth: Synth) -> dict[str, str]:
    """ "redis" / "grafana" -> the logical id of that ECS service."""
    services = resources(synth, "AWS::ECS::Service")
    return {
        name: next(i for i in services if i.startswith(name.capitalize())) for name in ("redis", "grafana")
    }


def test_ecs_services_start_only_once_their_tasks_can_pull_mount_and_log(default_synth):
    # GIVEN the private subnets' endpoints and the AOF volume's mount targets
    endpoints = set(resources(default_synth, "AWS::EC2::VPCEndpoint"))
    mount_targets = set(resources(default_synth, "AWS::EFS::MountTarget"))
    assert len(endpoints) == 7
    assert len(mount_targets) == 2
    services = _service_ids(default_synth)

    # THEN the tasks' services wait for all of them (CloudFormation would otherwise start the tasks
    # in parallel, and three failed starts trip the deployment circuit breaker)
    assert endpoints | mount_targets <= _depends_on(default_synth, services["redis"])
    assert endpoints <= _depends_on(default_synth, services["grafana"])


def test_lean_services_wait_for_the_nat_instance_routes():
    lean = synth({"costPreset": "lean"})
    routes = {
        i
        for i, r in resources(lean, "AWS::EC2::Route").items()
        if "InstanceId" in r["Properties"] or "NatGatewayId" in r["Properties"]
    }
    assert routes
    for service in _service_ids(lean).values():
        assert routes <= _depends_on(lean, service), service


def test_external_mode_needs_no_interface_endpoints(external_synth):
    external_synth.template.resource_count_is("AWS::EC2::VPCEndpoint", 0)
    external_synth.template.resource_count_is("AWS::ServiceDiscovery::PrivateDnsNamespace", 0)


# Every configuration of the whole stack the infrastructure tests synthesize, each with the exact
# context its own test uses (the synthesis cache then makes them free in a full run). They differ in
# their security groups: endpoints or a NAT instance, Redis self-hosted or not, Grafana behind a load
# balancer or on a public IP. (tests/infra/test_models_template.py builds no VPC.)
STACK_VARIANTS = {
    "default": {},
    "external-redis": EXTERNAL_CONTEXT,
    "every-option": OPTIONS_CONTEXT,
    "lean": {"costPreset": "lean"},
    "lean-public-ip": {"costPreset": "lean", "grafanaAllowedCidr": ALLOWED_CIDR},
    "lean-external-redis": {"costPreset": "lean", "redisMode": "external", "redisHost": "redis.example.com"},
    "grafana-https": GRAFANA_CONTEXT,
    "grafana-open": {"grafanaAllowedCidr": "0.0.0.0/0", "grafanaCertificateArn": CERTIFICATE_ARN},
    "external-redis-kms": KMS_CONTEXT,
    "big-redis": {"redisCpu": "1024", "redisMemoryMb": "4096", "redisAppendFsync": "everysec"},
}
# EC2's rule for a security group's description and each rule's description: "Constraints: Up to 255
# characters in length. Valid characters: a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"
# (API_CreateSecurityGroup, API_IpRange). Anything else fails the deploy (InvalidParameterValue);
# synthesis, cdk-nag and cfn-lint all accept it.
EC2_DESCRIPTION = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")
# The one value a description takes from the template (the interface endpoints' "from <VPC CIDR>:443"
# the CDK writes): an IPv4 CIDR, digits, dots and a slash; this is its longest form.
LONGEST_CIDR = "255.255.255.255/32"


def _description_text(value: Any) -> str:
    """A description as EC2 will receive it, with the longest value a CIDR token can take."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and list(value) == ["Fn::Join"]:
        separator, parts = value["Fn::Join"]
        return separator.join(_description_text(part) for part in parts)
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"] and value["Fn::GetAtt"][1] == "CidrBlock":
        return LONGEST_CIDR
    raise AssertionError(f"a description built from {value!r}: check what it resolves to by hand")


def security_group_descriptions(s: Synth) -> list[tuple[str, str]]:
    """(where, description) of every security group and every rule of the template."""
    found = []
    for group_id, group in resources(s, "AWS::EC2::SecurityGroup").items():
        properties = group["Properties"]
        found.append((f"{group_id}.GroupDescription", properties["GroupDescription"]))
        for direction in ("SecurityGroupIngress", "SecurityGroupEgress"):
            for index, rule in enumerate(properties.get(direction, [])):
                if "Description" in rule:
                    found.append((f"{group_id}.{direction}[{index}]", rule["Description"]))
    for resource_type in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
        for rule_id, rule in resources(s, resource_type).items():
            if "Description" in rule["Properties"]:
                found.append((rule_id, rule["Properties"]["Description"]))
    return found


@pytest.mark.parametrize("context", STACK_VARIANTS.values(), ids=list(STACK_VARIANTS))
def test_every_security_group_description_is_one_ec2_accepts(context):
    # GIVEN the stack as this configuration synthesizes it
    s = synth(context)
    descriptions = security_group_descriptions(s)
    assert descriptions
    # THEN EC2 would take each one (the lean preset's NAT rule once said "This VPC's ...")
    refused = [
        (where, text)
        for where, value in descriptions
        if not EC2_DESCRIPTION.fullmatch(text := _description_text(value))
    ]
    assert refused == []


def test_the_description_check_refuses_what_ec2_refuses():
    assert not EC2_DESCRIPTION.fullmatch("This VPC's private subnets")
    assert not EC2_DESCRIPTION.fullmatch("x" * 256)
    assert not EC2_DESCRIPTION.fullmatch("caf\u00e9")
    assert EC2_DESCRIPTION.fullmatch("from " + LONGEST_CIDR + ":443")
    assert EC2_DESCRIPTION.fullmatch("a-z A-Z 0-9 ._-:/()#,@[]+=&;{}!$*")


# --- self-hosted Redis -------------------------------------------------------------------------------


def test_self_hosted_secret_is_generated_with_the_connection_keys(default_synth):
    # The output's secret (the scorer's) logs in as the scorer's ACL user, never as `default`.
    secret_id, generate, template = secret_template(default_synth)
    assert generate["GenerateStringKey"] == "password"
    assert generate["ExcludePunctuation"] is True
    assert template == {"host": f"redis.{NAMESPACE}", "port": 6379, "tls": False, "username": "scorer"}
    assert set(template) | {"password"} == CONNECTION_KEYS
    secret = default_synth.template_json["Resources"][secret_id]
    assert "SecretString" not in secret["Properties"]
    assert secret["DeletionPolicy"] == "Delete"


def redis_task(synth: Synth) -> dict:
    """The task definition whose container is named `redis` (Grafana has its own)."""
    found = [
        task["Properties"]
        for task in resources(synth, "AWS::ECS::TaskDefinition").values()
        if [c["Name"] for c in task["Properties"]["ContainerDefinitions"]] == ["redis"]
    ]
    assert len(found) == 1
    return found[0]


def test_redis_task_gets_the_password_as_an_ecs_secret_never_in_clear(default_synth):
    secret_id, _, _ = secret_template(default_synth)
    task = redis_task(default_synth)
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["RuntimePlatform"] == {"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"}
    assert (task["Cpu"], task["Memory"]) == ("512", "1024")
    (definition,) = task["ContainerDefinitions"]
    # one password per ACL user, each from its own secret's "password" field (the scorer's first)
    assert definition["Secrets"][0] == {
        "Name": "REDIS_PASSWORD_SCORER",
        "ValueFrom": {"Fn::Join": ["", [{"Ref": secret_id}, ":password::"]]},
    }
    assert [s["Name"] for s in definition["Secrets"]] == ["REDIS_PASSWORD_SCORER", "REDIS_PASSWORD_GRAFANA"]
    # the plain environment holds the users' rules only, never a password
    assert not [e for e in definition["Environment"] if "PASSWORD" in e["Name"]]
    # 0.6 x (1024 MiB - 200 MiB) = 494 MiB (stacks/redis/self_hosted.py, docs/redis.md)
    assert definition["Command"] == ["--maxmemory", "494mb", "--appendfsync", "always"]
    assert definition["PortMappings"] == [{"ContainerPort": 6379, "Protocol": "tcp"}]
    assert definition["LogConfiguration"]["LogDriver"] == "awslogs"
    # the image is the asset built from stacks/redis/image, pushed to the CDK asset repository
    assert "cdk-hnb659fds-container-assets" in json.dumps(definition["Image"])
    images = default_synth.asset_manifest()["dockerImages"].values()
    assert [i["source"]["platform"] for i in images if "Redis/Image" in i["displayName"]] == ["linux/amd64"]


def test_redis_service_is_single_private_and_discoverable(default_synth):
    template = default_synth.template
    template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "LaunchType": "FARGATE",
            "ServiceName": Match.absent(),
            "DesiredCount": 1,
            "DeploymentConfiguration": Match.object_like(
                {
                    "MinimumHealthyPercent": 0,
                    "MaximumPercent": 100,
                    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                }
            ),
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "DISABLED"})
            },
            "ServiceRegistries": Match.any_value(),
        },
    )
    template.has_resource_properties("AWS::ServiceDiscovery::PrivateDnsNamespace", {"Name": NAMESPACE})
    template.has_resource_properties(
        "AWS::ServiceDiscovery::Service",
        {"Name": "redis", "DnsConfig": Match.object_like({"DnsRecords": [{"Type": "A", "TTL": 10}]})},
    )
    # (the shared cluster and its Container Insights log group: tests/infra/test_security_and_teardown.py)


def test_redis_port_is_open_to_its_clients_security_groups_only(default_synth):
    # GIVEN the scorer's security group and the Redis service's
    scorer_groups = Capture()
    default_synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {"PackageType": "Image", "VpcConfig": {"SecurityGroupIds": scorer_groups}},
    )
    (scorer_group,) = scorer_groups.as_array()
    redis_groups = Capture()
    default_synth.template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "ServiceRegistries": Match.any_value(),
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like({"SecurityGroups": redis_groups})
            },
        },
    )
    (redis_group,) = redis_groups.as_array()
    # THEN the Redis port admits security groups (the scorer's among them), never a CIDR range
    ingress = [
        rule["Properties"]
        for rule in resources(default_synth, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == redis_group
    ]
    assert ingress
    assert all((r["FromPort"], r["ToPort"]) == (6379, 6379) for r in ingress)
    assert all("CidrIp" not in r and "CidrIpv6" not in r for r in ingress)
    assert scorer_group in [r["SourceSecurityGroupId"] for r in ingress]
    (redis_group_resource,) = [
        g
        for i, g in resources(default_synth, "AWS::EC2::SecurityGroup").items()
        if redis_group == {"Fn::GetAtt": [i, "GroupId"]}
    ]
    assert "SecurityGroupIngress" not in redis_group_resource["Properties"]


def test_redis_outputs_and_lambda_secret(default_synth):
    secret_id, _, _ = secret_template(default_synth)
    outputs = default_synth.template.find_outputs("*")
    assert outputs["RedisSecretArn"]["Value"] == {"Ref": secret_id}
    assert outputs["RedisEndpoint"]["Value"] == f"redis.{NAMESPACE}:6379"
    default_synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"REDIS_SECRET_ARN": {"Ref": secret_id}})}},
    )


# --- external Redis ---------------------------------------------------------------------------------


def test_external_mode_creates_a_secret_with_a_placeholder_password(external_synth):
    secret_id, generate, template = secret_template(external_synth)
    assert generate["GenerateStringKey"] == "password"
    # the scorer's ACL user of docs/deploy.md (redisUsername overrides it)
    assert template == {"host": EXTERNAL_HOST, "port": 12345, "tls": True, "username": "scorer"}
    assert "SecretString" not in external_synth.template_json["Resources"][secret_id]["Properties"]
    outputs = external_synth.template.find_outputs("*")
    assert outputs["RedisEndpoint"]["Value"] == f"{EXTERNAL_HOST}:12345"
    assert outputs["RedisSecretArn"]["Value"] == {"Ref": secret_id}
    assert not [
        t
        for t in resources(external_synth, "AWS::ECS::TaskDefinition").values()
        if "redis" in [c["Name"] for c in t["Properties"]["ContainerDefinitions"]]
    ]


def test_external_mode_can_use_an_existing_secret(options_synth):
    # THEN no scorer secret is created (only Grafana's read-only one: no redisGrafanaSecretArn given),
    # and the scorer reads (only) the given one
    templates = [
        json.loads(secret["Properties"]["GenerateSecretString"]["SecretStringTemplate"])
        for secret in resources(options_synth, "AWS::SecretsManager::Secret").values()
        if "host" in secret["Properties"]["GenerateSecretString"].get("SecretStringTemplate", "")
    ]
    assert [t["username"] for t in templates] == ["grafana"]
    options_synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"REDIS_SECRET_ARN": EXISTING_SECRET_ARN})}},
    )
    options_synth.template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                            "Effect": "Allow",
                            "Resource": EXISTING_SECRET_ARN,
                        }
                    ]
                )
            }
        },
    )
    assert options_synth.template.find_outputs("*")["RedisSecretArn"]["Value"] == EXISTING_SECRET_ARN
