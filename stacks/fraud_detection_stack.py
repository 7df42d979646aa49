"""The one deployable stack: stream -> scorer Lambda -> SageMaker endpoints + Redis, with alarms.

The stack only wires constructs together: grants, Lambda environment, alarms and outputs (names as
docs/architecture.md lists them). `self.vpc`, `self.redis` and `self.config` are public so further
parts (e.g. Grafana) plug in here with a few lines.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from constructs import Construct

from contracts import scorer_env
from stacks.cluster import ServiceCluster
from stacks.config import AppConfig
from stacks.grafana import GrafanaService
from stacks.log_retention import retention_days
from stacks.models import TrainedModels
from stacks.monitoring import Monitoring
from stacks.network import Network
from stacks.redis import ExternalRedis, RedisConnection, SelfHostedRedis
from stacks.scorer import Scorer
from stacks.stream import TransactionStream


class FraudDetectionStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=config.stack_name,
            description="Real-time credit-card fraud detection: Kinesis, Lambda, SageMaker, Redis, Grafana",
        )
        self.config = config
        log_retention = retention_days(config.scorer.log_retention_days)
        self_hosted = config.redis.self_hosted

        self.network = Network(
            self,
            "Network",
            max_azs=config.vpc_max_azs,
            private_endpoints=self_hosted,
            log_retention=log_retention,
        )
        self.vpc = self.network.vpc
        self.stream = TransactionStream(self, "Transactions", config=config.stream)
        # One ECS cluster for the Fargate services (Grafana always, Redis when self-hosted).
        self.cluster = ServiceCluster(self, "Cluster", vpc=self.vpc, log_retention=log_retention)

        if self_hosted:
            self_hosted_redis = SelfHostedRedis(
                self,
                "Redis",
                config=config.redis,
                vpc=self.vpc,
                cluster=self.cluster,
                subnets=self.network.isolated_subnets,
                architecture=config.scorer.architecture,
                log_retention=log_retention,
            )
            self.redis: RedisConnection = self_hosted_redis.connection
        else:
            self.redis = ExternalRedis(self, "Redis", config=config.redis).connection

        self.models = TrainedModels(self, "Models", config=config.models)

        self.scorer = Scorer(
            self,
            "Scorer",
            config=config.scorer,
            trigger=config.trigger,
            stream=self.stream.stream,
            # Names and ARNs only: the scorer fetches the Redis password from the secret at run time.
            environment={
                scorer_env.REDIS_SECRET_ARN: self.redis.secret.secret_arn,
                scorer_env.FRAUD_ENDPOINT_NAME: self.models.fraud_endpoint_name,
                scorer_env.ANOMALY_ENDPOINT_NAME: self.models.anomaly_endpoint_name,
                scorer_env.FRAUD_THRESHOLD: self.models.fraud_threshold,
                scorer_env.ANOMALY_THRESHOLD: self.models.anomaly_threshold,
            },
            vpc=self.vpc if self_hosted else None,
            vpc_subnets=self.network.isolated_subnets if self_hosted else None,
        )
        function = self.scorer.function
        self.redis.secret.grant_read(function)
        self.redis.allow_from(function)
        self.models.grant_invoke(function)

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config.alarms,
            function=function,
            on_failure_queue=self.scorer.on_failure_queue,
        )
        self.monitoring.add_endpoint_alarms(label="Fraud", endpoint_name=self.models.fraud_endpoint_name)
        self.monitoring.add_endpoint_alarms(label="Anomaly", endpoint_name=self.models.anomaly_endpoint_name)

        self.grafana = GrafanaService(
            self,
            "Grafana",
            vpc=self.vpc,
            cluster=self.cluster,
            redis=self.redis,
            config=config.grafana,
            redis_username=config.redis.username,
        )

        self._acknowledge_scorer_findings(self_hosted)
        self._outputs()

    def _acknowledge_scorer_findings(self, self_hosted: bool) -> None:
        role = self.scorer.function.role
        assert role is not None
        managed = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{}]"
        acknowledgements = [
            Acknowledgment(
                id=managed.format("AWSLambdaBasicExecutionRole"),
                reason="AWS's minimal Lambda policy: write to the function's own CloudWatch log streams.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions.",
            ),
        ]
        if self_hosted:
            acknowledgements.append(
                Acknowledgment(
                    id=managed.format("AWSLambdaVPCAccessExecutionRole"),
                    reason="AWS's policy for attaching a Lambda to a VPC (ENI management); "
                    "EC2 network-interface actions have no resource-level scope.",
                )
            )
        Validations.of(role).acknowledge(*acknowledgements)

    def _outputs(self) -> None:
        CfnOutput(self, "StreamName", value=self.stream.stream.stream_name)
        CfnOutput(self, "StreamArn", value=self.stream.stream.stream_arn)
        CfnOutput(self, "RedisSecretArn", value=self.redis.secret.secret_arn)
        CfnOutput(self, "RedisEndpoint", value=self.redis.endpoint)
        CfnOutput(self, "FraudEndpointName", value=self.models.fraud_endpoint_name)
        CfnOutput(self, "AnomalyEndpointName", value=self.models.anomaly_endpoint_name)
        CfnOutput(self, "FraudThreshold", value=self.models.fraud_threshold)
        CfnOutput(self, "AnomalyThreshold", value=self.models.anomaly_threshold)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        CfnOutput(self, "OnFailureQueueUrl", value=self.scorer.on_failure_queue.queue_url)
        CfnOutput(self, "GrafanaUrl", value=self.grafana.url)
        CfnOutput(self, "GrafanaAdminSecretArn", value=self.grafana.admin_secret.secret_arn)
