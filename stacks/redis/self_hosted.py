"""A self-hosted Redis 8 on ECS Fargate in the VPC's isolated subnets (docs/redis.md).

Redis 8 ships JSON, time series and search built in.
- Durable: the append-only file (`appendfsync always` by default: Redis replies only once a write
  is on EFS; `redisAppendFsync=everysec` trades that for speed) lives on an encrypted EFS file system,
  mounted through an access point that makes every file belong to the image's `redis` user (uid/gid
  999), with TLS in transit and IAM authorization by the task role. A replaced task loads it again.
  The file system is deleted with the stack (`cdk destroy` leaves no data behind).
- Bounded: `maxmemory` is derived from the task size (`maxmemory_mib`), `noeviction` (an evicted
  transaction document would be lost data; a refused write is retried by the scorer).
- Least privilege (contracts/redis_acl.py): `default` is off; the scorer and Grafana log in as their
  own ACL users, each with its own generated password in its own Secrets Manager secret.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from contracts import redis_acl
from stacks.cluster import ServiceCluster
from stacks.config import RedisConfig
from stacks.platforms import ECS_CPU_ARCHITECTURE, IMAGE_PLATFORM
from stacks.redis.connection import REDIS_PORT, RedisConnection, connection_secret

IMAGE_DIR = Path(__file__).resolve().parent / "image"
NAMESPACE = "fraud-detection.internal"
SERVICE_NAME = "redis"
# The redis image's unprivileged user (docker-library/redis: `useradd -r -u 999 redis`, group 999).
REDIS_UID = "999"
REDIS_GID = "999"
DATA_PATH = "/data"  # the start script's REDIS_DATA_DIR default
EFS_ROOT = "/redis"
VOLUME_NAME = "redis-data"
# Task memory Redis must not count on: the process and its bundled modules, the start script and the
# health check's redis-cli, client buffers and the kernel's page cache for the AOF (~200 MiB).
RESERVED_MIB = 200
# Of the rest, Redis may fill 60 %: its resident size runs ~1.2-1.3x `used_memory` (allocator
# fragmentation) and an AOF rewrite forks a child whose copy-on-write pages grow with the writes
# arriving meanwhile (up to ~0.35x more under steady load). 1/0.6 = 1.67x covers both.
MAXMEMORY_SHARE = 0.6
# Loading the AOF after a restart: ~1 GB takes tens of seconds; unhealthy checks before this count not.
HEALTH_START_PERIOD = Duration.seconds(120)


def maxmemory_mib(task_memory_mib: int) -> int:
    """Redis's `maxmemory` for a Fargate task of `task_memory_mib`: 0.6 x (memory - 200 MiB)."""
    return int((task_memory_mib - RESERVED_MIB) * MAXMEMORY_SHARE)


def _user_secret(
    scope: Construct, construct_id: str, *, host: str, username: str, purpose: str
) -> secretsmanager.Secret:
    """A generated password in the documented connection JSON {host, port, password, username, tls}."""
    return connection_secret(
        scope,
        construct_id,
        connection={"host": host, "port": REDIS_PORT, "tls": False, "username": username},
        description=f"Connection JSON {{host, port, password, username, tls}} of the self-hosted Redis "
        f"for its ACL user '{username}' ({purpose})",
        why_not_rotated="Redis reads its users' password hashes once at start (the ACL file the start "
        "script writes); a rotation takes a task replacement, which rotation Lambdas cannot do. "
        "Rotate by put-secret-value + force-new-deployment (docs/redis.md).",
    )


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
        # The scorer's secret keeps its construct id (and so its ARN across updates): `RedisSecretArn`.
        self.secret = _user_secret(
            self, "Secret", host=host, username=redis_acl.SCORER_USER, purpose="the scorer: read/write"
        )
        # For the Grafana data source: read-only on the keys the dashboards use.
        self.grafana_secret = _user_secret(
            self, "GrafanaSecret", host=host, username=redis_acl.GRAFANA_USER, purpose="Grafana: read-only"
        )
        user_secrets = {redis_acl.SCORER_USER: self.secret, redis_acl.GRAFANA_USER: self.grafana_secret}
        assert set(user_secrets) == {u.name for u in redis_acl.USERS}, "one secret per ACL user"

        namespace = servicediscovery.PrivateDnsNamespace(
            self, "Namespace", name=NAMESPACE, vpc=vpc, description="Service discovery for Redis"
        )
        namespace.apply_removal_policy(RemovalPolicy.DESTROY)

        self.file_system, access_point = self._file_system(vpc, subnets)
        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=config.cpu,
            memory_limit_mib=config.memory_mb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ECS_CPU_ARCHITECTURE[architecture],
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            volumes=[
                ecs.Volume(
                    name=VOLUME_NAME,
                    efs_volume_configuration=ecs.EfsVolumeConfiguration(
                        file_system_id=self.file_system.file_system_id,
                        # Both required with an access point and IAM authorization.
                        transit_encryption="ENABLED",
                        authorization_config=ecs.AuthorizationConfig(
                            access_point_id=access_point.access_point_id, iam="ENABLED"
                        ),
                    ),
                )
            ],
        )
        # Mount and write through this access point only; no root access (ClientRootAccess) at all.
        task.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                resources=[self.file_system.file_system_arn],
                conditions={
                    "StringEquals": {"elasticfilesystem:AccessPointArn": access_point.access_point_arn}
                },
            )
        )
        log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        image = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(IMAGE_DIR), platform=IMAGE_PLATFORM[architecture]
        )
        # Redis refuses writes (the scorer retries, the memory alarm fires) before the task runs out
        # of memory and is killed; see maxmemory_mib for the headroom.
        self.maxmemory_mib = maxmemory_mib(config.memory_mb)
        grafana_password = redis_acl.password_env(redis_acl.GRAFANA_USER)
        container = task.add_container(
            "redis",
            image=ecs.ContainerImage.from_docker_image_asset(image),
            command=["--maxmemory", f"{self.maxmemory_mib}mb", "--appendfsync", config.append_fsync],
            # Never root: the image's redis user; the access point maps every file to the same ids.
            user=f"{REDIS_UID}:{REDIS_GID}",
            # The users and their rules (not secret); the passwords come only as ECS secrets.
            environment=redis_acl.start_script_environment(),
            secrets={
                redis_acl.password_env(name): ecs.Secret.from_secrets_manager(secret, "password")
                for name, secret in user_secrets.items()
            },
            port_mappings=[ecs.PortMapping(container_port=REDIS_PORT)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="redis", log_group=log_group),
            health_check=ecs.HealthCheck(
                # As the read-only user (PING is among its commands); REDISCLI_AUTH keeps the password
                # off the command line.
                command=[
                    "CMD-SHELL",
                    f'REDISCLI_AUTH="${grafana_password}" redis-cli --no-auth-warning '
                    f"--user {redis_acl.GRAFANA_USER} ping | grep -q PONG",
                ],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=HEALTH_START_PERIOD,
            ),
        )
        Validations.of(task).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="The environment holds only the ACL users' names and rules (public, from "
                "contracts/redis_acl.py) for the start script; every password is an ECS secret.",
            )
        )
        container.add_mount_points(
            ecs.MountPoint(container_path=DATA_PATH, source_volume=VOLUME_NAME, read_only=False)
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
        # The task mounts the file system at start: not before its mount targets exist (~90 s).
        self.service.node.add_dependency(self.file_system.mount_targets_available)
        self.file_system.connections.allow_default_port_from(self.service, "Redis task mounts its AOF volume")
        self.connection = RedisConnection(
            secret=self.secret,
            host=host,
            port=REDIS_PORT,
            tls=False,
            connections=self.service.connections,
            grafana_secret=self.grafana_secret,
        )

    def _file_system(
        self, vpc: ec2.IVpc, subnets: ec2.SubnetSelection
    ) -> tuple[efs.FileSystem, efs.AccessPoint]:
        """Encrypted EFS with mount targets in the Redis task's subnets, deleted with the stack."""
        file_system = efs.FileSystem(
            self,
            "Data",
            vpc=vpc,
            vpc_subnets=subnets,
            encrypted=True,
            # Pay per byte moved: an AOF write stream is steady but small, and a tiny file system in
            # bursting mode earns almost no throughput credit (docs/redis.md, Cost).
            throughput_mode=efs.ThroughputMode.ELASTIC,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Refuse any NFS client that does not use TLS, whatever its IAM permissions.
        file_system.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["*"],
                resources=["*"],
                conditions={"Bool": {"aws:SecureTransport": "false"}},
            )
        )
        # Nobody acts as root over NFS (CDK's default policy would allow it through any mount target);
        # the access point maps every client to the redis user anyway.
        file_system.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["elasticfilesystem:ClientRootAccess"],
                resources=["*"],
            )
        )
        access_point = file_system.add_access_point(
            "RedisAccessPoint",
            path=EFS_ROOT,
            # Created on first mount, owned by the redis user; every client acts as that user.
            create_acl=efs.Acl(owner_uid=REDIS_UID, owner_gid=REDIS_GID, permissions="750"),
            posix_user=efs.PosixUser(uid=REDIS_UID, gid=REDIS_GID),
        )
        return file_system, access_point
