"""Redis for the scorer and Grafana: a self-hosted Redis 8 on Fargate, or an external one."""

from stacks.redis.connection import REDIS_PORT, RedisConnection
from stacks.redis.external import ExternalRedis
from stacks.redis.self_hosted import SelfHostedRedis

__all__ = ["REDIS_PORT", "ExternalRedis", "RedisConnection", "SelfHostedRedis"]
