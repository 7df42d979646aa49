"""An external Redis (e.g. Redis Cloud): connection details from context, password in Secrets Manager."""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.config import RedisConfig
from stacks.redis.connection import RedisConnection


class ExternalRedis(Construct):
    """The connection secret for a Redis outside AWS.

    Either an existing secret (context `redisSecretArn`), or a secret created here with the host,
    port and TLS flag from context and a generated placeholder password that the user replaces with
    `aws secretsmanager put-secret-value` (docs/deploy.md). The password never passes through CDK.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: RedisConfig) -> None:
        super().__init__(scope, construct_id)
        assert config.host is not None, "RedisConfig.from_context requires redisHost in external mode"
        if config.secret_arn is not None:
            self.secret: secretsmanager.ISecret = secretsmanager.Secret.from_secret_complete_arn(
                self, "Secret", config.secret_arn
            )
        else:
            template = {"host": config.host, "port": config.port, "tls": config.tls}
            if config.username is not None:
                template["username"] = config.username
            secret = secretsmanager.Secret(
                self,
                "Secret",
                description="Redis connection JSON {host, port, password, username?, tls?}; "
                "set the real password with put-secret-value",
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
            self.secret = secret
        self.connection = RedisConnection(
            secret=self.secret, host=config.host, port=config.port, tls=config.tls
        )
