"""How the scorer and Grafana reach Redis, the same in both Redis modes."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

REDIS_PORT = 6379


@dataclass(frozen=True)
class RedisConnection:
    """A Redis endpoint plus the secrets that hold its connection JSON, one per ACL user.

    Each secret's JSON is `{"host", "port", "password", "username", "tls"}` in both modes
    (docs/architecture.md), so consumers read everything from the secret; `host`, `port` and `tls`
    are here too for outputs and for consumers that need them at synth time.
    `secret` logs in as the scorer's user (read/write), `grafana_secret` as the read-only `grafana`
    user the Grafana data source must use (contracts/redis_acl.py).
    """

    secret: secretsmanager.ISecret
    host: str
    port: int
    tls: bool
    # The Redis server's security group in self-hosted mode; None when Redis is outside the VPC.
    connections: ec2.Connections | None = None
    # The read-only Grafana user's connection secret (same JSON keys).
    grafana_secret: secretsmanager.ISecret | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def allow_from(self, other: ec2.IConnectable) -> None:
        """Let `other` reach Redis: opens the Redis security group; a no-op for external Redis."""
        if self.connections is not None:
            self.connections.allow_from(other, ec2.Port.tcp(self.port), "Redis clients")


def connection_secret(
    scope: Construct,
    construct_id: str,
    *,
    connection: dict,
    description: str,
    why_not_rotated: str,
) -> secretsmanager.Secret:
    """One ACL user's connection JSON `{host, port, password, username, tls}`: `connection` plus a
    generated password, letters and digits only (it goes into URLs, and the start script hashes it as
    is). Not rotated by a Lambda; `why_not_rotated` says why, for cdk-nag."""
    secret = secretsmanager.Secret(
        scope,
        construct_id,
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            secret_string_template=json.dumps(connection),
            generate_string_key="password",
            exclude_punctuation=True,
            password_length=32,
        ),
        removal_policy=RemovalPolicy.DESTROY,
    )
    Validations.of(secret).acknowledge(Acknowledgment(id="AwsSolutions-SMG4", reason=why_not_rotated))
    return secret
