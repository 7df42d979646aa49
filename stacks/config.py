"""Typed, validated configuration of the app, read from CDK context with `stacks.context.ContextReader`.

Each section reads its own keys with their defaults (the only place a default lives; `docs/deploy.md`
lists them) and `AppConfig.from_context` collects the sections into one object. The models' section
is in `stacks/models/config.py`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from contracts import trigger
from contracts.scorer_env import DEFAULT_TXN_RETENTION_MS
from contracts.stack_outputs import DEFAULT_STACK_NAME
from stacks.context import ConfigError, ContextReader
from stacks.models.config import ModelsConfig
from stacks.presets import preset_name, with_preset

ARCHITECTURES = ("x86_64", "arm64")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
STREAM_MODES = ("on-demand", "provisioned")
REDIS_MODES = ("self-hosted", "external")
# Values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)

# SageMaker endpoint names (max 63) are derived from the stack name plus "-anomaly".
_STACK_NAME = r"[A-Za-z][A-Za-z0-9-]{0,54}"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*"
_SECRET_ARN = r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}"  # noqa: S105
_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_REDIS_USERNAME = r"[A-Za-z0-9._-]{1,64}"
# The stack is environment-agnostic (app.py passes no env=: one template for any account and Region),
# and the CDK then builds the VPC in 2 AZs whatever maxAzs says: "environment-agnostic stacks will be
# created with access to only 2 AZs" (VpcProps.maxAzs, CDK API reference). More would be ignored
# silently, so more is refused.
ENV_AGNOSTIC_MAX_AZS = 2


@dataclass(frozen=True)
class StreamConfig:
    mode: str
    shard_count: int
    retention_hours: int

    @classmethod
    def from_context(cls, ctx: ContextReader) -> StreamConfig:
        return cls(
            mode=ctx.choice("streamMode", "on-demand", STREAM_MODES),
            shard_count=ctx.integer("streamShardCount", 1, minimum=1, maximum=500),
            retention_hours=ctx.integer("streamRetentionHours", 24, minimum=24, maximum=8760),
        )


@dataclass(frozen=True)
class ScorerConfig:
    architecture: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None
    log_level: str
    log_retention_days: int
    ts_retention_ms: int
    txn_retention_ms: int

    @classmethod
    def from_context(cls, ctx: ContextReader, *, log_retention_days: int) -> ScorerConfig:
        return cls(
            architecture=ctx.choice("lambdaArchitecture", "x86_64", ARCHITECTURES),
            memory_mb=ctx.integer("scorerMemoryMb", 1024, minimum=256, maximum=10240),
            timeout_seconds=ctx.integer("scorerTimeoutSeconds", 60, minimum=10, maximum=900),
            reserved_concurrency=ctx.optional_integer("scorerReservedConcurrency", minimum=1, maximum=1000),
            log_level=ctx.choice("scorerLogLevel", "INFO", LOG_LEVELS),
            log_retention_days=log_retention_days,
            ts_retention_ms=ctx.integer("tsRetentionMs", 604_800_000, minimum=60_000, maximum=31_536_000_000),
            # Bounded memory (docs/deploy.md, *Redis capacity*): documents expire; 1 h to 1 year.
            txn_retention_ms=ctx.integer(
                "txnRetentionMs", DEFAULT_TXN_RETENTION_MS, minimum=3_600_000, maximum=31_536_000_000
            ),
        )


def read_vpc_max_azs(ctx: ContextReader) -> int:
    """`vpcMaxAzs`: 2, the only AZ count an environment-agnostic stack's VPC gets."""
    try:
        return ctx.integer(
            "vpcMaxAzs", ENV_AGNOSTIC_MAX_AZS, minimum=ENV_AGNOSTIC_MAX_AZS, maximum=ENV_AGNOSTIC_MAX_AZS
        )
    except ConfigError:
        # One message for every other value (1, 3, 9, "two"): the one value there is, and why.
        raise ConfigError(
            "vpcMaxAzs",
            ctx.raw("vpcMaxAzs"),
            f"only {ENV_AGNOSTIC_MAX_AZS} here: the stack is environment-agnostic (no account or Region "
            f"at synth), and the CDK gives such a stack's VPC {ENV_AGNOSTIC_MAX_AZS} AZs whatever "
            "vpcMaxAzs says (VpcProps.maxAzs)",
        ) from None


def read_log_retention_days(ctx: ContextReader) -> int:
    """The app-wide log retention (scorer, Grafana, helpers): one of the values CloudWatch Logs accepts."""
    return ctx.choice("logRetentionDays", 30, LOG_RETENTION_DAYS)


@dataclass(frozen=True)
class TriggerConfig:
    """The Kinesis event source mapping."""

    batch_size: int
    batching_window_seconds: int
    parallelization_factor: int
    retry_attempts: int
    max_record_age_seconds: int

    @classmethod
    def from_context(cls, ctx: ContextReader) -> TriggerConfig:
        return cls(
            batch_size=ctx.integer("batchSize", trigger.BATCH_SIZE, minimum=1, maximum=10000),
            batching_window_seconds=ctx.integer(
                "batchingWindowSeconds", trigger.BATCHING_WINDOW_SECONDS, minimum=0, maximum=300
            ),
            parallelization_factor=ctx.integer("parallelizationFactor", 1, minimum=1, maximum=10),
            # Through an outage, up to the records' age (contracts/trigger.py says why).
            retry_attempts=ctx.integer("retryAttempts", trigger.RETRY_ATTEMPTS, minimum=0, maximum=10000),
            max_record_age_seconds=ctx.integer(
                "maxRecordAgeSeconds", trigger.MAX_RECORD_AGE_SECONDS, minimum=60, maximum=604800
            ),
        )


# Fargate's task sizes: CPU units -> allowed task memory (MiB), as AWS lists them for the task
# definition's `memory` (ECS API reference, RegisterTaskDefinition / TaskDefinition `memory`, and
# https://docs.aws.amazon.com/AmazonECS/latest/userguide/task-cpu-memory-error.html). 8 and 16 vCPU
# need Linux platform 1.4.0, which the Redis service gets (LATEST). Any other pair fails only at
# deploy ("Invalid 'cpu' setting for task"); checked here at synth instead.
FARGATE_TASK_MEMORY_MIB: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


REDIS_APPEND_FSYNC = ("always", "everysec")


def _fargate_memory_text(memory: tuple[int, ...]) -> str:
    if len(memory) <= 4:
        return ", ".join(map(str, memory))
    return f"{memory[0]} to {memory[-1]} in steps of {memory[1] - memory[0]}"


@dataclass(frozen=True)
class RedisConfig:
    mode: str
    # external mode
    host: str | None
    port: int
    tls: bool
    username: str | None
    secret_arn: str | None
    # self-hosted mode
    cpu: int
    memory_mb: int
    # external mode: an existing secret for the Grafana data source's read-only user
    grafana_secret_arn: str | None = None
    # external mode: plaintext accepted explicitly (redisAllowPlaintext=true)
    allow_plaintext: bool = False
    # self-hosted mode: the AOF's fsync policy (docs/redis.md, Durability)
    append_fsync: str = "always"

    @property
    def self_hosted(self) -> bool:
        return self.mode == "self-hosted"

    @classmethod
    def from_context(cls, ctx: ContextReader) -> RedisConfig:
        if ctx.is_set("redisPassword"):
            # Context values end up in cdk.out, shell history and the template; never accept a secret.
            raise ConfigError(
                "redisPassword",
                "***",
                "never pass a password through context; store it in Secrets Manager "
                "(`aws secretsmanager put-secret-value`, see docs/deploy.md) or give 'redisSecretArn'",
            )
        mode = ctx.choice("redisMode", "self-hosted", REDIS_MODES)
        host = ctx.optional_string(
            "redisHost", pattern=_HOSTNAME, allowed="a DNS name or IPv4 address, without scheme or port"
        )
        if mode == "external" and host is None:
            raise ConfigError("redisHost", None, "required when redisMode is 'external'")
        cpu = ctx.choice("redisCpu", 512, FARGATE_TASK_MEMORY_MIB)
        memory_mb = ctx.integer("redisMemoryMb", 1024, minimum=512, maximum=122880)
        if memory_mb not in FARGATE_TASK_MEMORY_MIB[cpu]:
            raise ConfigError(
                "redisMemoryMb",
                memory_mb,
                f"a Fargate task size: for redisCpu={cpu} one of "
                f"{_fargate_memory_text(FARGATE_TASK_MEMORY_MIB[cpu])} (MiB)",
            )
        tls = ctx.boolean("redisTls", True)
        allow_plaintext = ctx.boolean("redisAllowPlaintext", False)
        if mode == "external" and not tls and not allow_plaintext:
            # Passwords and card data would cross the internet in clear (issue 14.7).
            raise ConfigError(
                "redisTls",
                tls,
                "true for an external Redis (its password and the transactions travel over the "
                "internet); to accept plaintext anyway set redisAllowPlaintext=true (docs/redis.md)",
            )
        return cls(
            mode=mode,
            host=host,
            port=ctx.integer("redisPort", 6379, minimum=1, maximum=65535),
            tls=tls,
            username=ctx.optional_string(
                "redisUsername", pattern=_REDIS_USERNAME, allowed="1-64 characters of [A-Za-z0-9._-]"
            ),
            secret_arn=ctx.optional_string(
                "redisSecretArn",
                pattern=_SECRET_ARN,
                allowed="the complete ARN of a Secrets Manager secret (ending in -XXXXXX)",
            ),
            cpu=cpu,
            memory_mb=memory_mb,
            grafana_secret_arn=ctx.optional_string(
                "redisGrafanaSecretArn",
                pattern=_SECRET_ARN,
                allowed="the complete ARN of a Secrets Manager secret (ending in -XXXXXX)",
            ),
            allow_plaintext=allow_plaintext,
            # always: a reply means the write is on EFS. everysec: faster, but a crash (even a killed
            # process, while an fsync lags) can lose up to ~2 s of acknowledged writes.
            append_fsync=ctx.choice("redisAppendFsync", "always", REDIS_APPEND_FSYNC),
        )


@dataclass(frozen=True)
class AlarmsConfig:
    email: str | None
    iterator_age_ms: int
    rejected_percent: int
    endpoint_latency_ms: int

    @classmethod
    def from_context(cls, ctx: ContextReader) -> AlarmsConfig:
        return cls(
            email=ctx.optional_string("alarmEmail", pattern=_EMAIL, allowed="an e-mail address"),
            iterator_age_ms=ctx.integer("alarmIteratorAgeMs", 60_000, minimum=1000, maximum=604_800_000),
            rejected_percent=ctx.integer("alarmRejectedPercent", 5, minimum=1, maximum=100),
            endpoint_latency_ms=ctx.integer("alarmEndpointLatencyMs", 1000, minimum=1, maximum=60_000),
        )


# Fargate CPU units and the memory sizes each allows (MiB), for the sizes Grafana is sensible on.
_FARGATE_MEMORY = {256: (512, 1024, 2048), 512: (1024, 2048, 3072, 4096), 1024: (2048, 3072, 4096, 8192)}
# A KMS key ARN: a key id (UUID) or a multi-Region key id (mrk-...).
_KMS_KEY_ARN = r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/([0-9a-f-]{36}|mrk-[0-9a-f]{32})"
_CERTIFICATE_ARN = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}"
_DOMAIN = r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
# How users reach Grafana (docs/cost.md): through an Application Load Balancer (HTTPS with a
# certificate, a stable DNS name; $22.27 + 2 public IPv4 addresses a month), or straight to the task's
# own public IP (plain HTTP, which GrafanaConfig accepts only for a single address; $3.65 a month).
GRAFANA_ACCESS_LOAD_BALANCER = "load-balancer"
GRAFANA_ACCESS_PUBLIC_IP = "public-ip"
GRAFANA_ACCESS_MODES = (GRAFANA_ACCESS_LOAD_BALANCER, GRAFANA_ACCESS_PUBLIC_IP)


@dataclass(frozen=True)
class GrafanaConfig:
    """Grafana's section (docs/grafana.md). The default allowed range is *nobody*: the admin login
    must not face the whole internet, and without a certificate it travels as clear HTTP."""

    allowed_cidr: str | None
    certificate_arn: str | None
    domain_name: str | None
    architecture: str
    cpu: int
    memory_mb: int
    log_retention_days: int
    # GRAFANA_ACCESS_MODES: "load-balancer" (the default) or "public-ip" (the lean preset).
    access: str = GRAFANA_ACCESS_LOAD_BALANCER

    @property
    def https(self) -> bool:
        return self.certificate_arn is not None

    @property
    def load_balanced(self) -> bool:
        return self.access == GRAFANA_ACCESS_LOAD_BALANCER

    @property
    def open_to_internet(self) -> bool:
        return self.allowed_cidr is not None and ipaddress.ip_network(self.allowed_cidr).prefixlen == 0

    @property
    def single_address(self) -> bool:
        """The allowed range is one host (/32): the only case plain HTTP is accepted."""
        return self.allowed_cidr is not None and ipaddress.ip_network(self.allowed_cidr).num_addresses == 1

    @staticmethod
    def parse_allowed_cidr(raw: object) -> str:
        """An IPv4 network exactly as written: host bits set or another IP family is a ConfigError.

        `203.0.113.7/1` is refused rather than widened to `128.0.0.0/1` (what strict=False would open).
        The load balancer is IPv4-only (ipAddressType ipv4), so an IPv6 range would admit no one.
        """
        key = "grafanaAllowedCidr"
        text = str(raw).strip()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ConfigError(key, raw, "an IPv4 CIDR such as 203.0.113.7/32") from exc
        if network.version != 4:
            raise ConfigError(
                key, raw, "an IPv4 CIDR: Grafana's load balancer serves IPv4 only (ipAddressType ipv4)"
            )
        if "/" not in text or str(network) != text:
            host = text.split("/")[0]
            raise ConfigError(
                key,
                raw,
                f"a network without host bits set: this value would open {network} "
                f"({network.num_addresses} addresses); for one address write {host}/32",
            )
        return text

    @classmethod
    def from_context(cls, ctx: ContextReader, *, log_retention_days: int) -> GrafanaConfig:
        cidr = None
        if ctx.is_set("grafanaAllowedCidr"):
            cidr = cls.parse_allowed_cidr(ctx.raw("grafanaAllowedCidr"))
        cpu = ctx.choice("grafanaCpu", 256, _FARGATE_MEMORY)
        memory_mb = ctx.integer("grafanaMemoryMb", 1024, minimum=512, maximum=8192)
        if memory_mb not in _FARGATE_MEMORY[cpu]:
            allowed = ", ".join(map(str, _FARGATE_MEMORY[cpu]))
            raise ConfigError("grafanaMemoryMb", memory_mb, f"for grafanaCpu={cpu} one of {allowed}")
        certificate_arn = ctx.optional_string(
            "grafanaCertificateArn", pattern=_CERTIFICATE_ARN, allowed="the ARN of an ACM certificate"
        )
        domain_name = ctx.optional_string(
            "grafanaDomainName", pattern=_DOMAIN, allowed="a DNS name such as grafana.example.com"
        )
        if domain_name is not None and certificate_arn is None:
            raise ConfigError("grafanaDomainName", domain_name, "only together with grafanaCertificateArn")
        if cidr is not None and certificate_arn is None and ipaddress.ip_network(cidr).num_addresses > 1:
            # The admin login and the session cookie would cross every network in the range in clear.
            raise ConfigError(
                "grafanaAllowedCidr",
                cidr,
                "a single address (/32) unless grafanaCertificateArn is set: without a certificate "
                "Grafana is served over plain HTTP, which is accepted only for one address "
                "(docs/grafana.md, HTTPS)",
            )
        access = ctx.choice("grafanaAccess", GRAFANA_ACCESS_LOAD_BALANCER, GRAFANA_ACCESS_MODES)
        if access == GRAFANA_ACCESS_PUBLIC_IP and certificate_arn is not None:
            # TLS ends at the load balancer (ACM certificates cannot be installed in a task); without
            # it the certificate would be silently ignored and the login would travel in clear.
            raise ConfigError(
                "grafanaAccess",
                access,
                f"'{GRAFANA_ACCESS_LOAD_BALANCER}' with grafanaCertificateArn: HTTPS is served by the load "
                "balancer, the task's own public IP serves plain HTTP only (docs/cost.md)",
            )
        return cls(
            allowed_cidr=cidr,
            certificate_arn=certificate_arn,
            domain_name=domain_name,
            architecture=ctx.choice("grafanaArchitecture", "x86_64", ARCHITECTURES),
            cpu=cpu,
            memory_mb=memory_mb,
            log_retention_days=log_retention_days,
            access=access,
        )


@dataclass(frozen=True)
class AppConfig:
    stack_name: str
    vpc_max_azs: int
    stream: StreamConfig
    scorer: ScorerConfig
    trigger: TriggerConfig
    redis: RedisConfig
    alarms: AlarmsConfig
    models: ModelsConfig
    grafana: GrafanaConfig
    # `costPreset` (stacks/presets.py): which context defaults were applied.
    cost_preset: str = "default"
    # AZs that get an interface endpoint (the other AZs' subnets reach it across the VPC).
    vpc_endpoint_azs: int = 1
    # How private workloads reach AWS APIs: "endpoints" (isolated subnets) or "nat-instance".
    vpc_egress: str = "endpoints"
    # The customer-managed KMS key of an existing external Redis secret (redisSecretArn), if any:
    # whoever reads the secret (scorer, Grafana's task execution role) needs kms:Decrypt on it.
    redis_secret_key_arn: str | None = None

    @classmethod
    def from_context(cls, ctx: ContextReader) -> AppConfig:
        cost_preset = preset_name(ctx)
        ctx = with_preset(ctx)
        log_retention_days = read_log_retention_days(ctx)
        vpc_max_azs = read_vpc_max_azs(ctx)
        redis_secret_key_arn = ctx.optional_string(
            "redisSecretKmsKeyArn",
            pattern=_KMS_KEY_ARN,
            allowed="the ARN of a KMS key (arn:aws:kms:...:key/...)",
        )
        if redis_secret_key_arn is not None and not ctx.is_set("redisSecretArn"):
            raise ConfigError(
                "redisSecretKmsKeyArn", redis_secret_key_arn, "only together with redisSecretArn"
            )
        return cls(
            stack_name=ctx.string(
                "stackName",
                DEFAULT_STACK_NAME,
                pattern=_STACK_NAME,
                allowed="a CloudFormation stack name: a letter, then up to 54 letters, digits or '-'",
            ),
            vpc_max_azs=vpc_max_azs,
            stream=StreamConfig.from_context(ctx),
            scorer=ScorerConfig.from_context(ctx, log_retention_days=log_retention_days),
            trigger=TriggerConfig.from_context(ctx),
            redis=RedisConfig.from_context(ctx),
            alarms=AlarmsConfig.from_context(ctx),
            models=ModelsConfig.from_context(ctx),
            grafana=GrafanaConfig.from_context(ctx, log_retention_days=log_retention_days),
            cost_preset=cost_preset,
            vpc_endpoint_azs=ctx.integer("vpcEndpointAzs", 1, minimum=1, maximum=vpc_max_azs),
            vpc_egress=ctx.choice("vpcEgress", "endpoints", ("endpoints", "nat-instance")),
            redis_secret_key_arn=redis_secret_key_arn,
        )
