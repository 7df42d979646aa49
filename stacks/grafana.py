"""Grafana on ECS Fargate behind an Application Load Balancer, provisioned from this folder.

Stateless: the image carries the plugin, the data source and the dashboards (grafana/Dockerfile), so a
replaced task comes back identical and nothing needs EFS. Secrets reach the container only as ECS
secrets (the admin password and Grafana's secret key generated here; the read-only `grafana` Redis
user's name and password from its secret). HTTPS is required unless one address may reach it
(GrafanaConfig); under HTTPS cookies are Secure and HSTS is on (docs/grafana.md, docs/security.md).

Where the tasks run depends on where Redis is:
- Redis inside the VPC (self-hosted): the isolated subnets, next to Redis; the VPC endpoints the
  network creates for that mode (ECR, S3, Logs, Secrets Manager) serve the image pull, logs and
  secrets, and Redis's security group admits this service.
- Redis outside AWS (external): the VPC has no NAT gateway, so the tasks run in the public subnets
  with a public IP to reach Redis and the AWS APIs; their security group admits only the load balancer.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Acknowledgment,
    Annotations,
    Aws,
    CfnCondition,
    CfnMapping,
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
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from grafana import GRAFANA_DIR, IMAGE_PROVISIONING_PATH, IMAGE_PROVISIONING_TLS_PATH
from stacks.cluster import ServiceCluster
from stacks.config import GrafanaConfig
from stacks.log_retention import retention_days
from stacks.platforms import ECS_CPU_ARCHITECTURE, IMAGE_PLATFORM
from stacks.redis.connection import RedisConnection
from stacks.regions import ELB_LOG_DELIVERY_PRINCIPAL, NO_ELB_ACCOUNT, elb_account_by_region

GRAFANA_PORT = 3000
ADMIN_USER = "admin"
ACCESS_LOG_DAYS = 90
ACCESS_LOG_PREFIX = "grafana"
SECRET_KEY_LENGTH = 40
HSTS_MAX_AGE_SECONDS = 31_536_000
# The Secrets Manager calls that give a secret a new value (CloudTrail event names).
SECRET_CHANGE_EVENTS = ("PutSecretValue", "UpdateSecret", "RotateSecret")
# aws-events-targets.AwsApi's singleton function: "AWS" + its fixed uuid without dashes.
AWS_API_SINGLETON_ID = "AWSb4cf1abd4e4f4bc699441af7ccd9ec37"


@dataclass(frozen=True)
class RedisLogin:
    """How Grafana's data source logs in to Redis: a plain username (or None when it comes from a
    secret), the ECS secrets to inject, and the secrets whose change must restart Grafana."""

    username: str | None
    secrets: dict[str, ecs.Secret]
    watched: tuple[secretsmanager.ISecret, ...]


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
        redis_login_secret: secretsmanager.ISecret | None = None,
        secret_key_arns: tuple[str, ...] = (),
        restart_on_secret_change: bool = False,
        private_subnets: ec2.SubnetSelection | None = None,
    ) -> None:
        """`redis_login_secret`: a secret with `username` and `password` of Grafana's own read-only Redis
        user; without it Grafana logs in with the connection secret's password as `redis_username`
        (or `default`). `secret_key_arns`: customer-managed KMS keys that encrypt a secret Grafana
        reads (the task execution role gets kms:Decrypt on them, through Secrets Manager only).
        `restart_on_secret_change`: replace the tasks when a Redis secret Grafana reads changes.
        """
        super().__init__(scope, construct_id)
        redis_in_vpc = redis.connections is not None
        if config.allowed_cidr is not None and not config.https:
            # GrafanaConfig accepts plain HTTP only for one address; say what that means at synth.
            Annotations.of(self).add_warning_v2(
                "grafana:plain-http",
                f"Grafana is served over plain HTTP to {config.allowed_cidr} only: the login and the "
                "session cookie travel unencrypted. Set -c grafanaCertificateArn=<ACM ARN> for HTTPS "
                + ("" if config.load_balanced else "with -c grafanaAccess=load-balancer ")
                + "(required for any wider range; docs/grafana.md).",
            )

        self.admin_secret = secretsmanager.Secret(
            self,
            "AdminPassword",
            description=f"Password of the Grafana '{ADMIN_USER}' user",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=32
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Grafana signs and encrypts with this key (data source secrets in its database, cookies);
        # its built-in default is public. Generated here, never in a file or the template.
        self.secret_key = secretsmanager.Secret(
            self,
            "SecretKey",
            description="Grafana's [security] secret_key (GF_SECURITY_SECRET_KEY)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=SECRET_KEY_LENGTH
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        for secret in (self.admin_secret, self.secret_key):
            Validations.of(secret).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SMG4",
                    reason="Grafana reads this secret from its environment when a task starts; the service "
                    "is stateless (its database is rebuilt from provisioning), so a rotation takes effect "
                    "by a new deployment, not by a rotation Lambda.",
                )
            )
        redis_login = self._redis_login(redis, redis_username, redis_login_secret)

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention_days(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        image = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(GRAFANA_DIR), platform=IMAGE_PLATFORM[config.architecture]
        )
        secrets = {
            "GF_SECURITY_ADMIN_PASSWORD": ecs.Secret.from_secrets_manager(self.admin_secret),
            "GF_SECURITY_SECRET_KEY": ecs.Secret.from_secrets_manager(self.secret_key),
            **redis_login.secrets,
        }
        if not config.load_balanced:
            # grafanaAccess=public-ip (the lean preset): no load balancer, the task's own public IP.
            self.load_balancer: elbv2.ApplicationLoadBalancer | None = None
            self.access_logs: s3.Bucket | None = None
            self.fargate: ecs_patterns.ApplicationLoadBalancedFargateService | None = None
            self.task_definition, self.service = self._public_ip_service(
                cluster, config, image, self._environment(redis, config, redis_login.username), secrets
            )
            cluster.add_service(self.service)
            self._allow_direct_ingress(config)
            redis.allow_from(self.service)
            self._finish(cluster.cluster, redis_login, secret_key_arns, restart_on_secret_change)
            # The address is the running task's, known only once it starts (docs/cost.md says how to
            # read it); the output says where to find it rather than a URL that would be wrong.
            self.url = (
                f"http://<public IP of the running task>:{GRAFANA_PORT} (grafanaAccess=public-ip: "
                f"aws ecs list-tasks --cluster {cluster.cluster.cluster_name} --service-name "
                f"{self.service.service_name}, then describe-tasks; docs/cost.md)"
            )
            return

        self.access_logs = self._access_log_bucket()
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
            # IPv4 only: GrafanaConfig refuses an IPv6 allowed range for that reason.
            ip_address_type=elbv2.IpAddressType.IPV4,
        )
        self._log_access(self.access_logs)

        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn)
            if config.certificate_arn
            else None
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
            )
            if private_subnets is None or not redis_in_vpc
            else private_subnets,
            assign_public_ip=not redis_in_vpc,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            task_image_options=ecs_patterns.ApplicationLoadBalancedTaskImageOptions(
                image=ecs.ContainerImage.from_docker_image_asset(image),
                container_port=GRAFANA_PORT,
                container_name="grafana",
                log_driver=ecs.LogDrivers.aws_logs(stream_prefix="grafana", log_group=self.log_group),
                environment=self._environment(redis, config, redis_login.username),
                secrets=secrets,
            ),
        )
        self.service = self.fargate.service
        self.task_definition = self.fargate.task_definition
        cluster.add_service(self.service)
        # The pattern adds its own URL outputs; the stack publishes GrafanaUrl instead (the contract).
        for output in ("LoadBalancerDNS", "ServiceURL"):
            self.fargate.node.try_remove_child(output)
        self.fargate.target_group.configure_health_check(
            path="/api/health", healthy_http_codes="200", interval=Duration.seconds(30)
        )
        self._allow_ingress(config)
        redis.allow_from(self.service)
        self._finish(cluster.cluster, redis_login, secret_key_arns, restart_on_secret_change)

        scheme = "https" if certificate else "http"
        host = config.domain_name or self.load_balancer.load_balancer_dns_name
        self.url = f"{scheme}://{host}"

    def _finish(
        self,
        cluster: ecs.ICluster,
        redis_login: RedisLogin,
        secret_key_arns: tuple[str, ...],
        restart_on_secret_change: bool,
    ) -> None:
        """What both access modes share: KMS grants, the restart rule, cdk-nag acknowledgements."""
        self._grant_secret_keys(secret_key_arns)
        self.redis_login_secrets = redis_login.watched
        self.restart_rule: events.Rule | None = (
            self._restart_on_change(cluster, redis_login.watched) if restart_on_secret_change else None
        )
        self._acknowledge_findings()

    def _public_ip_service(
        self,
        cluster: ServiceCluster,
        config: GrafanaConfig,
        image: ecr_assets.DockerImageAsset,
        environment: dict[str, str],
        secrets: dict[str, ecs.Secret],
    ) -> tuple[ecs.FargateTaskDefinition, ecs.FargateService]:
        """One task in a public subnet with a public IP and no load balancer (grafanaAccess=public-ip).

        It saves the load balancer's hourly charge and its two public IPv4 addresses ($29.57 a month,
        docs/cost.md) for one address of its own ($3.65). What it gives up: no HTTPS (GrafanaConfig
        refuses a certificate here, and plain HTTP only ever for a single address), no stable name (the
        address changes when the task is replaced), no access logs. The security group admits
        `grafanaAllowedCidr` on Grafana's port and nothing else; by default nobody.
        """
        task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=config.cpu,
            memory_limit_mib=config.memory_mb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ECS_CPU_ARCHITECTURE[config.architecture],
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        task_definition.add_container(
            "grafana",
            container_name="grafana",
            image=ecs.ContainerImage.from_docker_image_asset(image),
            port_mappings=[ecs.PortMapping(container_port=GRAFANA_PORT)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="grafana", log_group=self.log_group),
            environment=environment,
            secrets=secrets,
        )
        service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster.cluster,
            task_definition=task_definition,
            desired_count=1,
            # Stateless: start the replacement before stopping the old task (the address changes).
            min_healthy_percent=100,
            max_healthy_percent=200,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            assign_public_ip=True,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        return task_definition, service

    def _allow_direct_ingress(self, config: GrafanaConfig) -> None:
        """Grafana's port for the allowed range only (a single address: GrafanaConfig refuses more
        without a certificate, and this mode has none); nobody by default."""
        if config.allowed_cidr is None:
            Annotations.of(self).add_warning_v2(
                "grafana:closed",
                "Grafana's task admits no one: set -c grafanaAllowedCidr=<your IP>/32 (docs/grafana.md).",
            )
            return
        self.service.connections.allow_from(
            ec2.Peer.ipv4(config.allowed_cidr), ec2.Port.tcp(GRAFANA_PORT), "Grafana users"
        )

    @staticmethod
    def _redis_login(
        redis: RedisConnection, username: str | None, login_secret: secretsmanager.ISecret | None
    ) -> RedisLogin:
        if login_secret is not None:
            # Grafana's own read-only ACL user: both halves of the login from its secret.
            return RedisLogin(
                username=None,
                secrets={
                    "REDIS_USERNAME": ecs.Secret.from_secrets_manager(login_secret, "username"),
                    "REDIS_PASSWORD": ecs.Secret.from_secrets_manager(login_secret, "password"),
                },
                watched=(login_secret,),
            )
        return RedisLogin(
            username=username or "default",
            secrets={"REDIS_PASSWORD": ecs.Secret.from_secrets_manager(redis.secret, "password")},
            watched=(redis.secret,),
        )

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
        }
        if redis_username is not None:
            environment["REDIS_USERNAME"] = redis_username
        if config.https:
            # Cookies only over HTTPS, and browsers told to use HTTPS only for a year (HSTS).
            environment["GF_SECURITY_COOKIE_SECURE"] = "true"
            environment["GF_SECURITY_STRICT_TRANSPORT_SECURITY"] = "true"
            environment["GF_SECURITY_STRICT_TRANSPORT_SECURITY_MAX_AGE_SECONDS"] = str(HSTS_MAX_AGE_SECONDS)
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
        environment-agnostic, so the bucket policy admits both: the ELB account from this app's own
        map, which has an entry for every supported Region (`stacks/regions.py`; the CDK's built-in
        map lacks the newer Regions, and `Fn::FindInMap` on a missing key fails the deployment), or
        the stack's own account where the Region has none; and the service principal.
        """
        stack = Stack.of(self)
        if not Token.is_unresolved(stack.region):
            self.load_balancer.log_access_logs(bucket, prefix=ACCESS_LOG_PREFIX)
            return
        objects = bucket.arn_for_objects(f"{ACCESS_LOG_PREFIX}/AWSLogs/{stack.account}/*")
        writers = CfnMapping(
            self,
            "ElbLogWriter",
            mapping={region: {"account": account} for region, account in elb_account_by_region().items()},
        )
        elb_account = writers.find_in_map(Aws.REGION, "account")
        legacy_region = CfnCondition(
            self,
            "LegacyElbRegion",
            expression=Fn.condition_not(Fn.condition_equals(elb_account, NO_ELB_ACCOUNT)),
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
                principals=[iam.ServicePrincipal(ELB_LOG_DELIVERY_PRINCIPAL)],
            )
        )
        self.load_balancer.set_attribute("access_logs.s3.enabled", "true")
        self.load_balancer.set_attribute("access_logs.s3.bucket", bucket.bucket_name)
        self.load_balancer.set_attribute("access_logs.s3.prefix", ACCESS_LOG_PREFIX)
        # The ALB checks that it may write when the attribute is set: the policy must exist first.
        assert bucket.policy is not None
        self.load_balancer.node.add_dependency(bucket.policy)

    def _grant_secret_keys(self, key_arns: tuple[str, ...]) -> None:
        """kms:Decrypt on customer-managed keys of secrets the task reads, via Secrets Manager only.

        ECS fetches `secrets` with the task execution role; a secret encrypted with a customer key
        needs kms:Decrypt on that key as well as secretsmanager:GetSecretValue (the key policy must
        also allow this account's IAM policies, the default key policy does).
        """
        if not key_arns:
            return
        execution_role = self.task_definition.obtain_execution_role()
        execution_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=list(key_arns),
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com"}},
            )
        )

    def _restart_on_change(
        self, cluster: ecs.ICluster, secrets: tuple[secretsmanager.ISecret, ...]
    ) -> events.Rule:
        """Replace Grafana's tasks when a Redis secret it reads gets a new value.

        ECS injects secrets only when a task starts, so after `put-secret-value` Grafana would keep the
        old password. CloudTrail delivers Secrets Manager's write calls to EventBridge ("AWS API Call
        via CloudTrail", which needs a trail recording management events in this Region); this rule
        matches them for these secrets, by the ARN CloudTrail records in the request (when the
        caller names the secret by ARN) or in the response, and calls ECS UpdateService with
        forceNewDeployment. New tasks fetch the new value; the old task keeps serving until the new
        one is healthy (min healthy 100 %).
        """
        arns = [secret.secret_arn for secret in secrets]
        rule = events.Rule(
            self,
            "RestartOnSecretChange",
            description="Restart Grafana when its Redis secret changes (ECS reads secrets at task start)",
            event_pattern=events.EventPattern(
                source=["aws.secretsmanager"],
                detail_type=["AWS API Call via CloudTrail"],
                detail={
                    "eventSource": ["secretsmanager.amazonaws.com"],
                    "eventName": list(SECRET_CHANGE_EVENTS),
                    "$or": [
                        {"requestParameters": {"secretId": arns}},
                        {"responseElements": {"arn": arns}},
                    ],
                },
            ),
        )
        rule.add_target(
            targets.AwsApi(
                service="ECS",
                action="updateService",
                parameters={
                    "cluster": cluster.cluster_name,
                    "service": self.service.service_name,
                    "forceNewDeployment": True,
                },
                policy_statement=iam.PolicyStatement(
                    actions=["ecs:UpdateService"], resources=[self.service.service_arn]
                ),
            )
        )
        # AwsApi runs the call from one stack-wide singleton Lambda (its id is the CDK's fixed uuid).
        helper = Stack.of(self).node.try_find_child(AWS_API_SINGLETON_ID)
        assert isinstance(helper, lambda_.Function), "aws-events-targets.AwsApi changed its singleton id"
        assert helper.role is not None
        Validations.of(helper.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                reason="The CDK's AwsApi helper Lambda: AWS's minimal policy lets it write its own log "
                "streams; its only other permission is ecs:UpdateService on the Grafana service.",
            )
        )
        return rule

    def _allow_ingress(self, config: GrafanaConfig) -> None:
        ports = [443, 80] if config.https else [80]
        if config.allowed_cidr is None:
            Annotations.of(self).add_warning_v2(
                "grafana:closed",
                "Grafana's load balancer admits no one: "
                "set -c grafanaAllowedCidr=<your IP>/32 (docs/grafana.md).",
            )
            return
        network = ec2.Peer.ipv4(config.allowed_cidr)  # IPv4 only, like the load balancer
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
        task_definition = self.task_definition
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
