"""Grafana on ECS Fargate behind an Application Load Balancer, provisioned from this folder.

Stateless: the image carries the plugin, the data source and the dashboards (grafana/Dockerfile), so a
replaced task comes back identical and nothing needs EFS. Secrets reach the container only as ECS
secrets (the admin password generated here, the Redis password from the Redis connection secret).

Where the tasks run depends on where Redis is:
- Redis inside the VPC (self-hosted): the isolated subnets, next to Redis; the VPC endpoints the
  network creates for that mode (ECR, S3, Logs, Secrets Manager) serve the image pull, logs and
  secrets, and Redis's security group admits this service.
- Redis outside AWS (external): the VPC has no NAT gateway, so the tasks run in the public subnets
  with a public IP to reach Redis and the AWS APIs; their security group admits only the load balancer.
"""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    Annotations,
    CfnCondition,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.region_info import FactName
from constructs import Construct

from grafana import GRAFANA_DIR, IMAGE_PROVISIONING_PATH, IMAGE_PROVISIONING_TLS_PATH
from stacks.cluster import ServiceCluster
from stacks.config import GrafanaConfig
from stacks.log_retention import retention_days
from stacks.platforms import ECS_CPU_ARCHITECTURE, IMAGE_PLATFORM
from stacks.redis.connection import RedisConnection

GRAFANA_PORT = 3000
ADMIN_USER = "admin"
ACCESS_LOG_DAYS = 90
ACCESS_LOG_PREFIX = "grafana"


class GrafanaService(Construct):
    """`url` is the dashboard's address, `admin_secret` holds the generated admin password."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        cluster: ServiceCluster,
        redis: RedisConnection,
        config: GrafanaConfig,
        redis_username: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        redis_in_vpc = redis.connections is not None

        self.admin_secret = secretsmanager.Secret(
            self,
            "AdminPassword",
            description=f"Password of the Grafana '{ADMIN_USER}' user",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=32
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        Validations.of(self.admin_secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="Grafana reads the admin password from its environment when a task starts; a "
                "rotation takes effect by redeploying the stateless service, not by a rotation Lambda.",
            )
        )

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention_days(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.access_logs = self._access_log_bucket()
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
        )
        self._log_access(self.access_logs)

        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn)
            if config.certificate_arn
            else None
        )
        image = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(GRAFANA_DIR), platform=IMAGE_PLATFORM[config.architecture]
        )
        self.fargate = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Service",
            cluster=cluster.cluster,
            load_balancer=self.load_balancer,
            # Ingress is opened below for the configured CIDR only, never 0.0.0.0/0 by default.
            open_listener=False,
            protocol=elbv2.ApplicationProtocol.HTTPS if certificate else elbv2.ApplicationProtocol.HTTP,
            certificate=certificate,
            redirect_http=certificate is not None,
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if certificate else None,
            cpu=config.cpu,
            memory_limit_mib=config.memory_mb,
            desired_count=1,
            # Stateless: start the replacement before stopping the old task, so a deploy never blanks it.
            min_healthy_percent=100,
            max_healthy_percent=200,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ECS_CPU_ARCHITECTURE[config.architecture],
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            task_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PRIVATE_ISOLATED if redis_in_vpc else ec2.SubnetType.PUBLIC
            ),
            assign_public_ip=not redis_in_vpc,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            task_image_options=ecs_patterns.ApplicationLoadBalancedTaskImageOptions(
                image=ecs.ContainerImage.from_docker_image_asset(image),
                container_port=GRAFANA_PORT,
                container_name="grafana",
                log_driver=ecs.LogDrivers.aws_logs(stream_prefix="grafana", log_group=self.log_group),
                environment=self._environment(redis, config, redis_username),
                secrets={
                    "GF_SECURITY_ADMIN_PASSWORD": ecs.Secret.from_secrets_manager(self.admin_secret),
                    "REDIS_PASSWORD": ecs.Secret.from_secrets_manager(redis.secret, "password"),
                },
            ),
        )
        self.service = self.fargate.service
        cluster.add_service(self.service)
        # The pattern adds its own URL outputs; the stack publishes GrafanaUrl instead (the contract).
        for output in ("LoadBalancerDNS", "ServiceURL"):
            self.fargate.node.try_remove_child(output)
        self.fargate.target_group.configure_health_check(
            path="/api/health", healthy_http_codes="200", interval=Duration.seconds(30)
        )
        self._allow_ingress(config)
        redis.allow_from(self.service)

        scheme = "https" if certificate else "http"
        host = config.domain_name or self.load_balancer.load_balancer_dns_name
        self.url = f"{scheme}://{host}"
        self._acknowledge_findings()

    @staticmethod
    def _environment(
        redis: RedisConnection, config: GrafanaConfig, redis_username: str | None
    ) -> dict[str, str]:
        """Plain settings only; every secret goes through `secrets` (the provisioning file expands these)."""
        environment = {
            "GF_SECURITY_ADMIN_USER": ADMIN_USER,
            # The data source's TLS switch is a boolean, so it is chosen as a provisioning tree.
            "GF_PATHS_PROVISIONING": IMAGE_PROVISIONING_TLS_PATH if redis.tls else IMAGE_PROVISIONING_PATH,
            "REDIS_HOST": redis.host,
            "REDIS_PORT": str(redis.port),
            "REDIS_USERNAME": redis_username or "default",
        }
        if config.https:
            environment["GF_SECURITY_COOKIE_SECURE"] = "true"
        if config.domain_name:
            environment["GF_SERVER_ROOT_URL"] = f"https://{config.domain_name}/"
        return environment

    def _access_log_bucket(self) -> s3.Bucket:
        # ALB access logs support only SSE-S3 encryption (not KMS).
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(ACCESS_LOG_DAYS))],
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        Validations.of(bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This bucket is the access-log destination of the Grafana load balancer; logging "
                "its own accesses would need yet another bucket with the same finding.",
            )
        )
        return bucket

    def _log_access(self, bucket: s3.Bucket) -> None:
        """ALB access logs into `bucket`, also when the stack's region is only known at deploy time.

        `log_access_logs` needs a concrete region to pick the writer (the regional ELB account in
        regions older than August 2022, the log-delivery service principal in newer ones). This app is
        environment-agnostic, so the bucket policy admits both: the ELB account from a region map
        (the stack's own account where the map has no entry), and the service principal.
        """
        stack = Stack.of(self)
        if not Token.is_unresolved(stack.region):
            self.load_balancer.log_access_logs(bucket, prefix=ACCESS_LOG_PREFIX)
            return
        objects = bucket.arn_for_objects(f"{ACCESS_LOG_PREFIX}/AWSLogs/{stack.account}/*")
        elb_account = stack.regional_fact(FactName.ELBV2_ACCOUNT, "none")
        legacy_region = CfnCondition(
            self, "LegacyElbRegion", expression=Fn.condition_not(Fn.condition_equals(elb_account, "none"))
        )
        writer = Fn.condition_if(
            legacy_region.logical_id,
            f"arn:{stack.partition}:iam::{elb_account}:root",
            f"arn:{stack.partition}:iam::{stack.account}:root",
        ).to_string()
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[objects], principals=[iam.ArnPrincipal(writer)]
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[objects],
                principals=[iam.ServicePrincipal("logdelivery.elasticloadbalancing.amazonaws.com")],
            )
        )
        self.load_balancer.set_attribute("access_logs.s3.enabled", "true")
        self.load_balancer.set_attribute("access_logs.s3.bucket", bucket.bucket_name)
        self.load_balancer.set_attribute("access_logs.s3.prefix", ACCESS_LOG_PREFIX)
        # The ALB checks that it may write when the attribute is set: the policy must exist first.
        assert bucket.policy is not None
        self.load_balancer.node.add_dependency(bucket.policy)

    def _allow_ingress(self, config: GrafanaConfig) -> None:
        ports = [443, 80] if config.https else [80]
        if config.allowed_cidr is None:
            Annotations.of(self).add_warning_v2(
                "grafana:closed",
                "Grafana's load balancer admits no one: "
                "set -c grafanaAllowedCidr=<your IP>/32 (docs/grafana.md).",
            )
            return
        network = (
            ec2.Peer.ipv6(config.allowed_cidr)
            if ":" in config.allowed_cidr
            else ec2.Peer.ipv4(config.allowed_cidr)
        )
        for port in ports:
            self.load_balancer.connections.allow_from(network, ec2.Port.tcp(port), "Grafana users")
        if config.open_to_internet:
            Validations.of(self.load_balancer).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-EC23",
                    reason="The operator opened Grafana to every address on purpose (grafanaAllowedCidr).",
                )
            )

    def _acknowledge_findings(self) -> None:
        task_definition = self.fargate.task_definition
        Validations.of(task_definition).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="The environment holds only non-secret settings (Redis host/port/user, Grafana "
                "paths); both passwords are injected as ECS secrets from Secrets Manager.",
            )
        )
        execution_role = task_definition.execution_role
        assert execution_role is not None
        Validations.of(execution_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions; pulls are scoped to "
                "the asset repository.",
            )
        )
