"""The scoring Lambda (container image from lambda_src/), its Kinesis trigger and on-failure queue."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, IgnoreMode, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contracts import metrics as metric_names
from contracts import scorer_env
from stacks.config import ScorerConfig, TriggerConfig
from stacks.log_retention import retention_days
from stacks.platforms import IMAGE_PLATFORM, LAMBDA_ARCHITECTURE

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE_NAME = metric_names.SERVICE
METRICS_NAMESPACE = metric_names.NAMESPACE

# The image is built from the repository root so that it can take the contracts it imports from their
# one home (contracts/) instead of a copy; these gitignore-style rules leave nothing else in the
# build context.
IMAGE_CONTEXT_RULES = [
    "/*",
    "!/lambda_src",
    "!/contracts",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
]
DOCKERFILE = "lambda_src/Dockerfile"


class Scorer(Construct):
    """`function` scores batches from `stream`; batches it gives up on are described in `on_failure_queue`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ScorerConfig,
        trigger: TriggerConfig,
        stream: kinesis.IStream,
        environment: dict[str, str],
        vpc: ec2.IVpc | None,
        vpc_subnets: ec2.SubnetSelection | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention_days(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            description="Scores card transactions from Kinesis with SageMaker and stores them in Redis",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT),
                file=DOCKERFILE,
                platform=IMAGE_PLATFORM[config.architecture],
                exclude=IMAGE_CONTEXT_RULES,
                ignore_mode=IgnoreMode.GIT,
            ),
            architecture=LAMBDA_ARCHITECTURE[config.architecture],
            memory_size=config.memory_mb,
            timeout=Duration.seconds(config.timeout_seconds),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            reserved_concurrent_executions=config.reserved_concurrency,
            environment={
                scorer_env.POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
                scorer_env.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
                scorer_env.POWERTOOLS_LOG_LEVEL: config.log_level,
                scorer_env.TS_RETENTION_MS: str(config.ts_retention_ms),
                scorer_env.TXN_RETENTION_MS: str(config.txn_retention_ms),
                **environment,
            },
            # In the VPC only with self-hosted Redis; an external Redis is reached over the internet.
            vpc=vpc,
            vpc_subnets=vpc_subnets,
        )

        self.on_failure_queue = sqs.Queue(
            self,
            "OnFailureQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.DESTROY,
        )
        Validations.of(self.on_failure_queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead end: the trigger's on-failure destination.",
            )
        )
        self.event_source = event_sources.KinesisEventSource(
            stream,
            # Everything still in the stream is scored once the mapping exists; writes are
            # idempotent, so a replay after the mapping is replaced stores nothing twice.
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=trigger.batch_size,
            max_batching_window=Duration.seconds(trigger.batching_window_seconds),
            parallelization_factor=trigger.parallelization_factor,
            report_batch_item_failures=True,
            bisect_batch_on_error=True,
            retry_attempts=trigger.retry_attempts,
            max_record_age=Duration.seconds(trigger.max_record_age_seconds),
            on_failure=event_sources.SqsDlq(self.on_failure_queue),
        )
        self.function.add_event_source(self.event_source)
