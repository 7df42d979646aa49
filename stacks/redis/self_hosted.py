"""A self-hosted Redis 8 on ECS Fargate in the VPC's isolated subnets.

Redis 8 ships JSON, time series and search built in. There is no persistence: the data lives in the
task's memory and is lost when the task is replaced (docs/deploy.md says so).
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from stacks.cluster import ServiceCluster
from stacks.config import RedisConfig
from stacks.platforms import ECS_CPU_ARCHITECTURE, IMAGE_PLATFORM
from stacks.redis.connection import REDIS_PORT, RedisConnection

IMAGE_DIR = Path(__file__).resolve().parent / "image"
NAMESPACE = "fraud-detection.internal"
SERVICE_NAME = "redis"


class SelfHostedRedis(Construct):
    """One Redis task with a generated password and a stable DNS name (`redis.fraud-detection.internal`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RedisConfig,
        vpc: ec2.IVpc,
        cluster: ServiceCluster,
        subnets: ec2.SubnetSelection,
        architecture: str,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        host = f"{SERVICE_NAME}.{NAMESPACE}"
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description="Connection JSON {host, port, password, username, tls} of the self-hosted Redis",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps(
                    {"host": host, "port": REDIS_PORT, "tls": False, "username": "default"}
                ),
                generate_string_key="password",
                # Letters and digits only: the password goes on a redis-server command line and into URLs.
                exclude_punctuation=True,
                password_length=32,
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        Validations.of(self.secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="Redis reads its password once at start (--requirepass); rotating it means "
                "replacing the task, which also empties this non-persistent Redis.",
            )
        )

        namespace = servicediscovery.PrivateDnsNamespace(
            self, "Namespace", name=NAMESPACE, vpc=vpc, description="Service discovery for Redis"
        )
        namespace.apply_removal_policy(RemovalPolicy.DESTROY)

        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=config.cpu,
            memory_limit_mib=config.memory_mb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ECS_CPU_ARCHITECTURE[architecture],
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        image = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(IMAGE_DIR), platform=IMAGE_PLATFORM[architecture]
        )
        # Leave a quarter of the task's memory to the process itself, so Redis refuses writes
        # (the scorer retries, alarms fire) instead of being killed for running out of memory.
        maxmemory_mb = config.memory_mb * 3 // 4
        task.add_container(
            "redis",
            image=ecs.ContainerImage.from_docker_image_asset(image),
            command=["--maxmemory", f"{maxmemory_mb}mb"],
            secrets={"REDIS_PASSWORD": ecs.Secret.from_secrets_manager(self.secret, "password")},
            port_mappings=[ecs.PortMapping(container_port=REDIS_PORT)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="redis", log_group=log_group),
            health_check=ecs.HealthCheck(
                # REDISCLI_AUTH keeps the password off the redis-cli command line.
                command=["CMD-SHELL", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG'],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(10),
            ),
        )
        # The execution role exists once a container needs it (image pull, logs, secret).
        assert task.execution_role is not None
        Validations.of(task.execution_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions; pulls are "
                "scoped to the asset repository.",
            )
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster.cluster,
            task_definition=task,
            desired_count=1,
            # Never two Redis tasks at once: DNS would split clients between two separate datasets.
            min_healthy_percent=0,
            max_healthy_percent=100,
            vpc_subnets=subnets,
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            cloud_map_options=ecs.CloudMapOptions(
                name=SERVICE_NAME,
                cloud_map_namespace=namespace,
                dns_record_type=servicediscovery.DnsRecordType.A,
                dns_ttl=Duration.seconds(10),
            ),
        )
        cluster.add_service(self.service)
        self.connection = RedisConnection(
            secret=self.secret,
            host=host,
            port=REDIS_PORT,
            tls=False,
            connections=self.service.connections,
        )
