"""Grafana on ECS Fargate behind an ALB, as synthesized into the stack (cdk-nag runs in every synth)."""

from __future__ import annotations

import json

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
    """The ECS service running the grafana container (with or without a load balancer)."""
    task_ids = [
        i
        for i, task in resources(s, "AWS::ECS::TaskDefinition").items()
        if any(c["Name"] == "grafana" for c in task["Properties"]["ContainerDefinitions"])
    ]
    (service,) = [
        r["Properties"]
        for r in resources(s, "AWS::ECS::Service").values()
        if r["Properties"]["TaskDefinition"] in [{"Ref": i} for i in task_ids]
    ]
    return service


def assert_redis_admits_grafana(s: Synth) -> None:
    """The self-hosted Redis's security group admits Grafana's tasks on Redis's port."""
    (group,) = grafana_service(s)["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    s.template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress", {"FromPort": 6379, "ToPort": 6379, "SourceSecurityGroupId": group}
    )


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


def grafana_redis_secret(s: Synth) -> dict:
    """The Redis construct's secret for the `grafana` ACL user (contracts/redis_acl.py)."""
    (secret_id,) = [
        i
        for i, r in resources(s, "AWS::SecretsManager::Secret").items()
        if json.loads(r["Properties"]["GenerateSecretString"].get("SecretStringTemplate", "{}")).get(
            "username"
        )
        == "grafana"
    ]
    return {"Ref": secret_id}


def test_passwords_reach_grafana_only_as_ecs_secrets(default_synth):
    # GIVEN the Grafana container and the two secrets it needs
    container = grafana_container(default_synth)
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    admin_output = default_synth.template.find_outputs("GrafanaAdminSecretArn")["GrafanaAdminSecretArn"]
    redis_output = default_synth.template.find_outputs("RedisSecretArn")["RedisSecretArn"]

    # THEN the admin password is the generated secret the output names; the Redis login is Grafana's
    # own read-only ACL user (username and password from its secret), never the scorer's
    assert secrets["GF_SECURITY_ADMIN_PASSWORD"] == admin_output["Value"]
    grafana_secret = grafana_redis_secret(default_synth)
    assert grafana_secret != redis_output["Value"]
    assert secrets["REDIS_PASSWORD"] == {"Fn::Join": ["", [grafana_secret, ":password::"]]}
    assert secrets["REDIS_USERNAME"] == {"Fn::Join": ["", [grafana_secret, ":username::"]]}
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
    assert "REDIS_USERNAME" not in env  # from the grafana user's secret
    assert env["GF_PATHS_PROVISIONING"] == IMAGE_PROVISIONING_PATH

    network = grafana_service(default_synth)["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert sorted(network["Subnets"], key=str) == sorted(
        [s for s in subnet_ids(default_synth, public=False)], key=str
    )


def test_redis_security_group_admits_grafana(default_synth):
    assert_redis_admits_grafana(default_synth)


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
    # WHEN the operator asks for 0.0.0.0/0 (synthesis runs cdk-nag: EC23 must be acknowledged, not hit);
    # a range wider than one address needs a certificate (GrafanaConfig refuses it otherwise)
    opened = synth({"grafanaAllowedCidr": "0.0.0.0/0", "grafanaCertificateArn": CERTIFICATE_ARN})

    # THEN exactly that is opened: HTTPS, and HTTP only to redirect to it
    ingress = load_balancer_group(opened)["SecurityGroupIngress"]
    assert sorted((rule["CidrIp"], rule["FromPort"]) for rule in ingress) == [
        ("0.0.0.0/0", 80),
        ("0.0.0.0/0", 443),
    ]


# --- issue 14: HTTPS, secret key, cookies, HSTS --------------------------------------------------------

KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0f3a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
EXISTING_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-cloud-AbCdEf"
EXISTING_GRAFANA_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-grafana-GhIjKl"
# External Redis whose existing secret is encrypted with a customer key; Grafana over plain HTTP
# to one address (the only plain-HTTP case GrafanaConfig accepts).
KMS_CONTEXT = {
    "redisMode": "external",
    "redisHost": "redis-12345.c1.us-east-1-2.ec2.cloud.redislabs.com",
    "redisSecretArn": EXISTING_SECRET_ARN,
    "redisGrafanaSecretArn": EXISTING_GRAFANA_SECRET_ARN,
    "redisSecretKmsKeyArn": KMS_KEY_ARN,
    "grafanaAllowedCidr": ALLOWED_CIDR,
}


@pytest.fixture(scope="session")
def kms_synth() -> Synth:
    return synth(KMS_CONTEXT)


def test_grafana_secret_key_comes_from_its_own_generated_secret(default_synth):
    secrets = {s["Name"]: s["ValueFrom"] for s in grafana_container(default_synth)["Secrets"]}
    key_ref = secrets["GF_SECURITY_SECRET_KEY"]
    assert key_ref != secrets["GF_SECURITY_ADMIN_PASSWORD"]
    secret = default_synth.template_json["Resources"][key_ref["Ref"]]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert secret["DeletionPolicy"] == "Delete"
    assert "GF_SECURITY_SECRET_KEY" not in environment(default_synth)


def test_https_sets_secure_cookies_and_hsts(grafana_synth, default_synth):
    env = environment(grafana_synth)
    assert env["GF_SECURITY_COOKIE_SECURE"] == "true"
    assert env["GF_SECURITY_STRICT_TRANSPORT_SECURITY"] == "true"
    assert int(env["GF_SECURITY_STRICT_TRANSPORT_SECURITY_MAX_AGE_SECONDS"]) >= 31_536_000
    # Over plain HTTP a secure cookie would never be sent back, and HSTS would lock the browser out.
    plain = environment(default_synth)
    assert "GF_SECURITY_COOKIE_SECURE" not in plain
    assert "GF_SECURITY_STRICT_TRANSPORT_SECURITY" not in plain


def test_load_balancer_serves_ipv4_only(default_synth):
    _, balancer = load_balancer(default_synth)
    assert balancer["Properties"]["IpAddressType"] == "ipv4"


def warnings(s: Synth) -> list[str]:
    (stack,) = s.assembly.stacks
    return [str(m.entry.data) for m in stack.messages if m.entry.type == "aws:cdk:warning"]


def test_plain_http_to_one_address_is_said_at_synth(kms_synth, grafana_synth):
    assert [w for w in warnings(kms_synth) if "plain HTTP" in w and ALLOWED_CIDR in w]
    (listener,) = resources(kms_synth, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["Protocol"] == "HTTP"
    assert not [w for w in warnings(grafana_synth) if "plain HTTP" in w]


# --- issue 13.5: a new external Redis password reaches Grafana ----------------------------------------


def matches(pattern, event) -> bool:
    """EventBridge pattern matching for what these patterns use: value lists, nesting and $or."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in expected):
                return False
        elif isinstance(expected, dict):
            if not isinstance(event.get(key), dict) or not matches(expected, event[key]):
                return False
        elif event.get(key) not in expected:
            return False
    return True


def cloudtrail_event(name: str, secret_id: str) -> dict:
    return {
        "source": "aws.secretsmanager",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": name,
            "requestParameters": {"secretId": secret_id},
            "responseElements": {"arn": secret_id} if secret_id.startswith("arn:") else None,
        },
    }


def restart_rule(s: Synth) -> dict:
    (rule,) = resources(s, "AWS::Events::Rule").values()
    return rule["Properties"]


def test_put_secret_value_restarts_grafana(kms_synth):
    # GIVEN the rule watching the Redis secret Grafana reads (its own user's)
    rule = restart_rule(kms_synth)
    pattern = rule["EventPattern"]
    # THEN the documented put-secret-value (and a rotation) match; reads and other secrets do not
    assert matches(pattern, cloudtrail_event("PutSecretValue", EXISTING_GRAFANA_SECRET_ARN))
    assert matches(pattern, cloudtrail_event("RotateSecret", EXISTING_GRAFANA_SECRET_ARN))
    assert not matches(pattern, cloudtrail_event("GetSecretValue", EXISTING_GRAFANA_SECRET_ARN))
    assert not matches(pattern, cloudtrail_event("PutSecretValue", EXISTING_SECRET_ARN))  # the scorer's
    # AND the target asks ECS for a new deployment of exactly the Grafana service
    (target,) = rule["Targets"]
    call = target["Input"]["Fn::Join"][1]
    rendered = "".join(part if isinstance(part, str) else "<ref>" for part in call)
    assert '"action":"updateService"' in rendered
    assert '"forceNewDeployment":true' in rendered
    service_id = next(i for i, r in resources(kms_synth, "AWS::ECS::Service").items())
    assert {"Fn::GetAtt": [service_id, "Name"]} in call


def test_the_restart_helper_may_only_update_the_grafana_service(kms_synth):
    rule = restart_rule(kms_synth)
    (target,) = rule["Targets"]
    function_id = target["Arn"]["Fn::GetAtt"][0]
    function = kms_synth.template_json["Resources"][function_id]
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in resources(kms_synth, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (service_id,) = resources(kms_synth, "AWS::ECS::Service")
    assert statements == [{"Action": "ecs:UpdateService", "Effect": "Allow", "Resource": {"Ref": service_id}}]


def test_self_hosted_redis_has_no_restart_rule(default_synth):
    # Its secrets are generated at deploy and read by Redis too: nothing to watch for Grafana alone.
    assert not resources(default_synth, "AWS::Events::Rule")


def test_customer_key_of_the_external_secret_can_be_used_through_secrets_manager(kms_synth):
    decrypts = [
        (statement, policy["Properties"]["Roles"])
        for policy in resources(kms_synth, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "kms:Decrypt" and statement["Resource"] == KMS_KEY_ARN
    ]
    # the Grafana task's execution role (ECS injects the secret) and the scorer (reads it at run time)
    assert len(decrypts) == 2
    for statement, _roles in decrypts:
        via = statement["Condition"]["StringEquals"]["kms:ViaService"]
        assert via == {"Fn::Join": ["", ["secretsmanager.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
