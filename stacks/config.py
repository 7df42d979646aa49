"""Typed, validated configuration read from `cdk.json` context (and `-c key=value` overrides).

Every key has a default in `cdk.json`; `docs/deploy.md` lists them. Values given with `-c` arrive as
strings, so every getter coerces and validates, and a bad value fails synthesis with a `ConfigError`
naming the key, the value and what is allowed — before any resource is built.

Other parts of the app read their own section with their own `from_context(context)` function over
the same `ContextReader` (e.g. `ModelsConfig.from_context` in `stacks/models/config.py`), and
`AppConfig.from_context` collects them into one object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grafana.config import GrafanaConfig
    from stacks.models.config import ModelsConfig


class ConfigError(ValueError):
    """A context value that cannot be used; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"cdk context '{key}' = {value!r} is not valid: {allowed}")
        self.key = key
        self.value = value


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class ContextReader:
    """Typed access to context values; `lookup` is usually `app.node.try_get_context`."""

    def __init__(self, lookup: Callable[[str], Any]) -> None:
        self._lookup = lookup

    def raw(self, key: str) -> Any:
        return self._lookup(key)

    def is_set(self, key: str) -> bool:
        value = self._lookup(key)
        return value is not None and value != ""

    def string(self, key: str, default: str, *, pattern: str | None = None, allowed: str = "") -> str:
        value = self._lookup(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(key, value, allowed or "a string")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ConfigError(key, value, allowed or f"a string matching {pattern}")
        return value

    def optional_string(self, key: str, *, pattern: str, allowed: str) -> str | None:
        if not self.is_set(key):
            return None
        return self.string(key, "", pattern=pattern, allowed=allowed)

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        options = tuple(choices)
        value = self._lookup(key)
        if value is None:
            return default
        if value not in options:
            raise ConfigError(key, value, "one of " + ", ".join(options))
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._lookup(key)
        if value is None:
            return default
        return self._to_int(key, value, minimum, maximum)

    def optional_integer(self, key: str, *, minimum: int, maximum: int) -> int | None:
        if not self.is_set(key):
            return None
        return self._to_int(key, self._lookup(key), minimum, maximum)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._lookup(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(key, value, "true or false")

    @staticmethod
    def _to_int(key: str, value: Any, minimum: int, maximum: int) -> int:
        allowed = f"an integer from {minimum} to {maximum}"
        number = value
        if isinstance(number, str) and re.fullmatch(r"-?\d+", number.strip()):
            number = int(number.strip())
        # bool is an int subclass in Python; `true` is never a valid count.
        if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
            raise ConfigError(key, value, allowed)  # the value as given, e.g. '0' from `-c`
        return number


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

    @classmethod
    def from_context(cls, ctx: ContextReader) -> ScorerConfig:
        retention = ctx.integer("logRetentionDays", 30, minimum=1, maximum=2557)
        if retention not in LOG_RETENTION_DAYS:
            raise ConfigError(
                "logRetentionDays", retention, "one of " + ", ".join(map(str, LOG_RETENTION_DAYS))
            )
        return cls(
            architecture=ctx.choice("lambdaArchitecture", "x86_64", ARCHITECTURES),
            memory_mb=ctx.integer("scorerMemoryMb", 1024, minimum=256, maximum=10240),
            timeout_seconds=ctx.integer("scorerTimeoutSeconds", 60, minimum=10, maximum=900),
            reserved_concurrency=ctx.optional_integer("scorerReservedConcurrency", minimum=1, maximum=1000),
            log_level=ctx.choice("scorerLogLevel", "INFO", LOG_LEVELS),
            log_retention_days=retention,
            ts_retention_ms=ctx.integer("tsRetentionMs", 604_800_000, minimum=60_000, maximum=31_536_000_000),
        )


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
            batch_size=ctx.integer("batchSize", 500, minimum=1, maximum=10000),
            batching_window_seconds=ctx.integer("batchingWindowSeconds", 1, minimum=0, maximum=300),
            parallelization_factor=ctx.integer("parallelizationFactor", 1, minimum=1, maximum=10),
            # Bounded: a poison batch is bisected, retried at most this often, then sent to the queue.
            retry_attempts=ctx.integer("retryAttempts", 5, minimum=0, maximum=10000),
            max_record_age_seconds=ctx.integer("maxRecordAgeSeconds", 3600, minimum=60, maximum=604800),
        )


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
        cpu = ctx.integer("redisCpu", 512, minimum=256, maximum=16384)
        memory_mb = ctx.integer("redisMemoryMb", 1024, minimum=512, maximum=122880)
        return cls(
            mode=mode,
            host=host,
            port=ctx.integer("redisPort", 6379, minimum=1, maximum=65535),
            tls=ctx.boolean("redisTls", True),
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

    @classmethod
    def from_context(cls, ctx: ContextReader) -> AppConfig:
        # Imported here: stacks.models.config imports ConfigError from this module.
        from grafana.config import GrafanaConfig
        from stacks.models.config import ModelsConfig

        return cls(
            stack_name=ctx.string(
                "stackName",
                "FraudDetection",
                pattern=_STACK_NAME,
                allowed="a CloudFormation stack name: a letter, then up to 54 letters, digits or '-'",
            ),
            vpc_max_azs=ctx.integer("vpcMaxAzs", 2, minimum=2, maximum=6),
            stream=StreamConfig.from_context(ctx),
            scorer=ScorerConfig.from_context(ctx),
            trigger=TriggerConfig.from_context(ctx),
            redis=RedisConfig.from_context(ctx),
            alarms=AlarmsConfig.from_context(ctx),
            models=ModelsConfig.from_context(ctx),
            grafana=GrafanaConfig.from_context(ctx),
        )
