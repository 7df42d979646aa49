"""An external Redis (e.g. Redis Cloud): connection details from context, password in Secrets Manager."""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contracts import redis_acl
from stacks.config import RedisConfig
from stacks.redis.connection import RedisConnection, connection_secret


class ExternalRedis(Construct):
    """The connection secrets for a Redis outside AWS: the scorer's and Grafana's ACL users.

    Each is either an existing secret (context `redisSecretArn`, `redisGrafanaSecretArn`), or a secret
    created here with the host, port and TLS flag from context, the user name (`scorer` unless
    `redisUsername` says otherwise; `grafana`) and a generated placeholder password that the user
    replaces with `aws secretsmanager put-secret-value` after creating the users with the ACL lines
    of docs/deploy.md. No password ever passes through CDK.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: RedisConfig) -> None:
        super().__init__(scope, construct_id)
        assert config.host is not None, "RedisConfig.from_context requires redisHost in external mode"
        self.secret = self._secret(
            "Secret",
            config,
            existing_arn=config.secret_arn,
            username=config.username or redis_acl.SCORER_USER,
        )
        self.grafana_secret = self._secret(
            "GrafanaSecret", config, existing_arn=config.grafana_secret_arn, username=redis_acl.GRAFANA_USER
        )
        self.connection = RedisConnection(
            secret=self.secret,
            host=config.host,
            port=config.port,
            tls=config.tls,
            grafana_secret=self.grafana_secret,
        )

    def _secret(
        self, construct_id: str, config: RedisConfig, *, existing_arn: str | None, username: str
    ) -> secretsmanager.ISecret:
        if existing_arn is not None:
            return secretsmanager.Secret.from_secret_complete_arn(self, construct_id, existing_arn)
        return connection_secret(
            self,
            construct_id,
            connection={"host": config.host, "port": config.port, "tls": config.tls, "username": username},
            description=f"Redis connection JSON {{host, port, password, username, tls}} for the ACL user "
            f"'{username}'; set the real password with put-secret-value",
            why_not_rotated="The password belongs to the external Redis provider; it is rotated there "
            "and copied in with put-secret-value, which a rotation Lambda cannot do.",
        )
