"""The one deployable stack: stream -> scorer Lambda -> SageMaker endpoints + Redis, with alarms.

The stack only wires constructs together: grants, Lambda environment, alarms and outputs (names as
docs/architecture.md lists them). `self.vpc`, `self.redis` and `self.config` are public so further
parts (e.g. Grafana) plug in here with a few lines.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Environment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from contracts import scorer_env
from contracts import stack_outputs as outputs
from stacks.cluster import ServiceCluster
from stacks.config import AppConfig
from stacks.grafana import GrafanaService
from stacks.log_retention import give_every_function_a_log_group, retention_days
from stacks.models import TrainedModels
from stacks.monitoring import Monitoring
from stacks.network import Network
from stacks.redis import ExternalRedis, RedisConnection, SelfHostedRedis
from stacks.regions import add_region_rule, require_supported
from stacks.scorer import Scorer
from stacks.stream import TransactionStream


class FraudDetectionStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, env: Environment | None = None
    ) -> None:
        # `env` is for tests and for users who pin a Region: a concrete, unsupported Region fails here.
        if env is not None and env.region is not None:
            require_supported(env.region)
        super().__init__(
            scope,
            construct_id,
            stack_name=config.stack_name,
            description="Real-time credit-card fraud detection: Kinesis, Lambda, SageMaker, Redis, Grafana",
            env=env,
        )
        self.config = config
        # Customer-managed KMS key of an existing external Redis secret: its readers need kms:Decrypt.
        redis_secret_keys = (config.redis_secret_key_arn,) if config.redis_secret_key_arn else ()
        log_retention = retention_days(config.scorer.log_retention_days)
        self_hosted = config.redis.self_hosted

        self.network = Network(
            self,
            "Network",
            max_azs=config.vpc_max_azs,
            private_endpoints=self_hosted,
            log_retention=log_retention,
            endpoint_azs=config.vpc_endpoint_azs,
            egress=config.vpc_egress,
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
            self_hosted_redis.service.node.add_dependency(self.network.private_egress_ready)
        else:
            self.redis = ExternalRedis(self, "Redis", config=config.redis).connection

        self.models = TrainedModels(self, "Models", config=config.models, log_retention=log_retention)

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
                # Reported by the training custom resource: the scorer refuses to score on a mismatch.
                scorer_env.FEATURE_SPEC_VERSION: self.models.feature_spec_version,
            },
            vpc=self.vpc if self_hosted else None,
            vpc_subnets=self.network.isolated_subnets if self_hosted else None,
        )
        function = self.scorer.function
        self.redis.secret.grant_read(function)
        for key_arn in redis_secret_keys:
            # The scorer reads the secret at run time; Secrets Manager decrypts with the caller's rights.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"secretsmanager.{self.region}.amazonaws.com"}
                    },
                )
            )
        self.redis.allow_from(function)
        self.models.grant_invoke(function)

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config.alarms,
            function=function,
            on_failure_queue=self.scorer.on_failure_queue,
        )
        # One set of alarms per endpoint: "Models" (both models on one instance, the default), or
        # "Fraud" and "Anomaly" (endpointLayout=separate).
        for label, endpoint_name in self.models.endpoints.items():
            self.monitoring.add_endpoint_alarms(label=label, endpoint_name=endpoint_name)

        self.grafana = GrafanaService(
            self,
            "Grafana",
            vpc=self.vpc,
            cluster=self.cluster,
            redis=self.redis,
            config=config.grafana,
            redis_username=config.redis.username,
            # Grafana's read-only ACL user (contracts/redis_acl.py): username and password from its secret.
            redis_login_secret=self.redis.grafana_secret,
            private_subnets=self.network.isolated_subnets,
            secret_key_arns=redis_secret_keys,
            # External Redis: the user sets the password with put-secret-value after the deploy.
            restart_on_secret_change=not self_hosted,
        )

        self.grafana.service.node.add_dependency(self.network.private_egress_ready)

        self._acknowledge_scorer_findings(self_hosted)
        self._outputs()
        # Deploy-time guard: CloudFormation refuses the template outside SUPPORTED_REGIONS.
        add_region_rule(self)
        # Last: every Lambda (the CDK's helpers included) logs to a log group the stack deletes.
        give_every_function_a_log_group(self, log_retention)

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
        CfnOutput(self, outputs.STREAM_NAME, value=self.stream.stream.stream_name)
        CfnOutput(self, outputs.STREAM_ARN, value=self.stream.stream.stream_arn)
        CfnOutput(self, outputs.REDIS_SECRET_ARN, value=self.redis.secret.secret_arn)
        CfnOutput(self, outputs.REDIS_GRAFANA_SECRET_ARN, value=self.redis.grafana_secret.secret_arn)
        CfnOutput(self, outputs.REDIS_ENDPOINT, value=self.redis.endpoint)
        CfnOutput(self, outputs.FRAUD_ENDPOINT_NAME, value=self.models.fraud_endpoint_name)
        CfnOutput(self, outputs.ANOMALY_ENDPOINT_NAME, value=self.models.anomaly_endpoint_name)
        CfnOutput(self, outputs.FRAUD_THRESHOLD, value=self.models.fraud_threshold)
        CfnOutput(self, outputs.ANOMALY_THRESHOLD, value=self.models.anomaly_threshold)
        CfnOutput(self, outputs.ALARM_TOPIC_ARN, value=self.monitoring.topic.topic_arn)
        CfnOutput(self, outputs.ON_FAILURE_QUEUE_URL, value=self.scorer.on_failure_queue.queue_url)
        CfnOutput(self, outputs.GRAFANA_URL, value=self.grafana.url)
        CfnOutput(self, outputs.GRAFANA_ADMIN_SECRET_ARN, value=self.grafana.admin_secret.secret_arn)
        CfnOutput(self, outputs.FEATURE_SPEC_VERSION, value=self.models.feature_spec_version)
