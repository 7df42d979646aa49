"""Grafana on ECS Fargate behind an ALB, as synthesized into the stack (cdk-nag runs in every synth)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from grafana import IMAGE_PROVISIONING_PATH, IMAGE_PROVISIONING_TLS_PATH
from stacks.grafana import ACCESS_LOG_PREFIX, GRAFANA_PORT
from stacks.redis.self_hosted import NAMESPACE
from tests.grafana.provisioning_env import referenced_variables
from tests.infra.synth import Synth, synth

ALLOWED_CIDR = "203.0.113.7/32"
CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0f3a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
DOMAIN = "grafana.example.com"
# Every Grafana option at once (one synthesis): a user CIDR, HTTPS with a certificate and a domain.
GRAFANA_CONTEXT = {
    "grafanaAllowedCidr": ALLOWED_CIDR,
    "grafanaCertificateArn": CERTIFICATE_ARN,
    "grafanaDomainName": DOMAIN,
}


@pytest.fixture(scope="session")
def grafana_synth() -> Synth:
    return synth(GRAFANA_CONTEXT)


def resources(s: Synth, resource_type: str) -> dict[str, dict]:
    return s.template.find_resources(resource_type)


def grafana_container(s: Synth) -> dict:
    (container,) = [
        c
        for task in resources(s, "AWS::ECS::TaskDefinition").values()
        for c in task["Properties"]["ContainerDefinitions"]
        if c["Name"] == "grafana"
    ]
    return container


def environment(s: Synth) -> dict[str, object]:
    return {e["Name"]: e["Value"] for e in grafana_container(s)["Environment"]}


def grafana_service(s: Synth) -> dict:
    (service,) = [
        r["Properties"]
        for r in resources(s, "AWS::ECS::Service").values()
        if any(lb["ContainerName"] == "grafana" for lb in r["Properties"].get("LoadBalancers", []))
    ]
    return service


def load_balancer(s: Synth) -> tuple[str, dict]:
    (item,) = resources(s, "AWS::ElasticLoadBalancingV2::LoadBalancer").items()
    return item


def load_balancer_group(s: Synth) -> dict:
    _, balancer = load_balancer(s)
    ((group_id, _),) = [ref["Fn::GetAtt"] for ref in balancer["Properties"]["SecurityGroups"]]
    return s.template_json["Resources"][group_id]["Properties"]


def subnet_ids(s: Synth, *, public: bool) -> list[dict]:
    return [
        {"Ref": i}
        for i, subnet in resources(s, "AWS::EC2::Subnet").items()
        if subnet["Properties"].get("MapPublicIpOnLaunch", False) is public
    ]


def test_passwords_reach_grafana_only_as_ecs_secrets(default_synth):
    # GIVEN the Grafana container and the two secrets it needs
    container = grafana_container(default_synth)
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    admin_output = default_synth.template.find_outputs("GrafanaAdminSecretArn")["GrafanaAdminSecretArn"]
    redis_output = default_synth.template.find_outputs("RedisSecretArn")["RedisSecretArn"]

    # THEN the admin password is the generated secret the output names, the Redis one the connection's
    assert secrets["GF_SECURITY_ADMIN_PASSWORD"] == admin_output["Value"]
    assert secrets["REDIS_PASSWORD"] == {"Fn::Join": ["", [redis_output["Value"], ":password::"]]}
    admin = default_synth.template_json["Resources"][admin_output["Value"]["Ref"]]
    assert admin["Type"] == "AWS::SecretsManager::Secret"
    assert admin["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    # AND nothing password-like travels in the plain environment
    assert not [name for name in environment(default_synth) if "PASSWORD" in name or "SECRET" in name]


@pytest.mark.parametrize("fixture", ["default_synth", "external_synth", "grafana_synth"])
def test_task_sets_every_variable_the_provisioning_expands(fixture, request):
    s = request.getfixturevalue(fixture)
    container = grafana_container(s)
    provided = set(environment(s)) | {secret["Name"] for secret in container["Secrets"]}

    assert referenced_variables() <= provided


def test_self_hosted_redis_is_reached_inside_the_vpc_without_tls(default_synth):
    env = environment(default_synth)
    assert env["REDIS_HOST"] == f"redis.{NAMESPACE}"
    assert env["REDIS_PORT"] == "6379"
    assert env["REDIS_USERNAME"] == "default"
    assert env["GF_PATHS_PROVISIONING"] == IMAGE_PROVISIONING_PATH

    network = grafana_service(default_synth)["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert sorted(network["Subnets"], key=str) == sorted(
        [s for s in subnet_ids(default_synth, public=False)], key=str
    )


def test_redis_security_group_admits_grafana(default_synth):
    (grafana_group,) = grafana_service(default_synth)["NetworkConfiguration"]["AwsvpcConfiguration"][
        "SecurityGroups"
    ]
    default_synth.template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"FromPort": 6379, "ToPort": 6379, "SourceSecurityGroupId": grafana_group},
    )


def test_external_redis_is_reached_over_tls_from_public_subnets(external_synth):
    env = environment(external_synth)
    assert env["GF_PATHS_PROVISIONING"] == IMAGE_PROVISIONING_TLS_PATH
    assert env["REDIS_PORT"] == "12345"

    network = grafana_service(external_synth)["NetworkConfiguration"]["AwsvpcConfiguration"]
    # No NAT gateway in this VPC: a public IP is the way out to the Redis provider and AWS APIs.
    assert network["AssignPublicIp"] == "ENABLED"
    assert sorted(network["Subnets"], key=str) == sorted(subnet_ids(external_synth, public=True), key=str)


def test_tasks_admit_only_the_load_balancer(default_synth):
    (group,) = grafana_service(default_synth)["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    rules = [
        r["Properties"]
        for r in resources(default_synth, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == group
    ]
    balancer_group = load_balancer(default_synth)[1]["Properties"]["SecurityGroups"][0]

    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in rules] == [(GRAFANA_PORT, balancer_group)]


def test_load_balancer_is_closed_by_default_and_serves_http(default_synth):
    assert "SecurityGroupIngress" not in load_balancer_group(default_synth)
    (listener,) = resources(default_synth, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["Port"] == 80
    assert listener["Properties"]["Protocol"] == "HTTP"
    url = default_synth.template.find_outputs("GrafanaUrl")["GrafanaUrl"]["Value"]
    balancer_id, _ = load_balancer(default_synth)
    assert url == {"Fn::Join": ["", ["http://", {"Fn::GetAtt": [balancer_id, "DNSName"]}]]}


def test_ingress_is_limited_to_the_configured_cidr(grafana_synth):
    ingress = load_balancer_group(grafana_synth)["SecurityGroupIngress"]

    assert sorted((rule["CidrIp"], rule["FromPort"], rule["ToPort"]) for rule in ingress) == [
        (ALLOWED_CIDR, 80, 80),
        (ALLOWED_CIDR, 443, 443),
    ]


def test_https_with_a_certificate_and_http_redirected(grafana_synth):
    template = grafana_synth.template
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": CERTIFICATE_ARN}],
            "SslPolicy": Match.string_like_regexp(r"^ELBSecurityPolicy-TLS13"),
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "DefaultActions": [
                {
                    "Type": "redirect",
                    "RedirectConfig": Match.object_like({"Protocol": "HTTPS", "Port": "443"}),
                }
            ],
        },
    )
    assert template.find_outputs("GrafanaUrl")["GrafanaUrl"]["Value"] == f"https://{DOMAIN}"
    env = environment(grafana_synth)
    assert env["GF_SECURITY_COOKIE_SECURE"] == "true"
    assert env["GF_SERVER_ROOT_URL"] == f"https://{DOMAIN}/"


def test_access_logs_go_to_an_encrypted_tls_only_bucket(default_synth):
    # GIVEN the bucket the load balancer logs to
    balancer_id, balancer = load_balancer(default_synth)
    attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.prefix"] == ACCESS_LOG_PREFIX
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    bucket_id = attributes["access_logs.s3.bucket"]["Ref"]
    bucket = default_synth.template_json["Resources"][bucket_id]

    # THEN it is encrypted, private, expires its logs and goes away with the stack
    encryption = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert bucket["DeletionPolicy"] == "Delete"
    # AND its policy refuses plain HTTP and admits the ELB log writers
    default_synth.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        ),
                        Match.object_like(
                            {
                                "Action": "s3:PutObject",
                                "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                            }
                        ),
                    ]
                )
            },
        },
    )
    # The load balancer is created after the policy that lets it write.
    policy_ids = [
        i
        for i, p in resources(default_synth, "AWS::S3::BucketPolicy").items()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert set(policy_ids) <= set(default_synth.template_json["Resources"][balancer_id].get("DependsOn", []))


def test_cluster_insights_logs_retention_and_health_check(default_synth):
    service = grafana_service(default_synth)
    cluster = default_synth.template_json["Resources"][service["Cluster"]["Ref"]]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"]["ClusterSettings"]

    log_group_id = grafana_container(default_synth)["LogConfiguration"]["Options"]["awslogs-group"]["Ref"]
    log_group = default_synth.template_json["Resources"][log_group_id]
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert log_group["DeletionPolicy"] == "Delete"

    default_synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"HealthCheckPath": "/api/health", "Matcher": {"HttpCode": "200"}, "TargetType": "ip"},
    )
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    assert service["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100


def test_image_is_built_for_the_task_architecture(default_synth):
    container = grafana_container(default_synth)
    image_hash = container["Image"]["Fn::Sub"].rsplit(":", 1)[1]
    task = next(
        t["Properties"]
        for t in resources(default_synth, "AWS::ECS::TaskDefinition").values()
        if container in t["Properties"]["ContainerDefinitions"]
    )

    assert task["RuntimePlatform"] == {"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"}
    asset = default_synth.asset_manifest()["dockerImages"][image_hash]
    assert asset["source"]["platform"] == "linux/amd64"
    # Stateless: no volumes, so nothing like EFS to keep in step.
    assert not task.get("Volumes")


def test_opening_grafana_to_everyone_is_an_explicit_acknowledged_choice():
    # WHEN the operator asks for 0.0.0.0/0 (synthesis runs cdk-nag: EC23 must be acknowledged, not hit)
    opened = synth({"grafanaAllowedCidr": "0.0.0.0/0"})

    # THEN exactly that is opened, on the HTTP port only (no certificate given)
    ingress = load_balancer_group(opened)["SecurityGroupIngress"]
    assert [(rule["CidrIp"], rule["FromPort"]) for rule in ingress] == [("0.0.0.0/0", 80)]
