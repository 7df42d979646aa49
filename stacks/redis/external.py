"""An external Redis (e.g. Redis Cloud): connection details from context, password in Secrets Manager."""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contracts import redis_acl
from stacks.config import RedisConfig
from stacks.redis.connection import RedisConnection


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
        template = {"host": config.host, "port": config.port, "tls": config.tls, "username": username}
        secret = secretsmanager.Secret(
            self,
            construct_id,
            description=f"Redis connection JSON {{host, port, password, username, tls}} for the ACL user "
            f"'{username}'; set the real password with put-secret-value",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps(template),
                generate_string_key="password",
                exclude_punctuation=True,
                password_length=32,
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        Validations.of(secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="The password belongs to the external Redis provider; it is rotated there "
                "and copied in with put-secret-value, which a rotation Lambda cannot do.",
            )
        )
        return secret
