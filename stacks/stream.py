"""The Kinesis data stream the producer writes transactions to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

from stacks.config import StreamConfig


class TransactionStream(Construct):
    """A KMS-encrypted Kinesis stream; on-demand or provisioned capacity."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StreamConfig) -> None:
        super().__init__(scope, construct_id)
        provisioned = config.mode == "provisioned"
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_mode=kinesis.StreamMode.PROVISIONED if provisioned else kinesis.StreamMode.ON_DEMAND,
            shard_count=config.shard_count if provisioned else None,
            retention_period=Duration.hours(config.retention_hours),
            # The AWS-managed key (aws/kinesis): KMS encryption at no key cost, nothing to delete on
            # destroy, and the producer and the trigger need no extra KMS grants.
            encryption=kinesis.StreamEncryption.MANAGED,
            removal_policy=RemovalPolicy.DESTROY,
        )
