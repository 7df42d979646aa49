"""Alarms (published to an SNS topic) and the operators' CloudWatch dashboard."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contracts import metrics as metric_names
from contracts.verdicts import Verdict
from stacks.config import AlarmsConfig
from stacks.scorer import METRICS_NAMESPACE, SERVICE_NAME

PERIOD = Duration.minutes(5)

# Redis memory (issue 13). Redis runs `noeviction`: at 100 % of maxmemory it refuses writes and every
# batch is retried until memory is freed (documents expire after TXN_RETENTION_MS, 30 days by default),
# so the alarm must come while there is still time to act (resize the task, shorten the retention).
# - 80 %: the remaining 20 % of the default 1 GiB task's 494 MiB maxmemory holds ~38 thousand more
#   transactions (~2,700 bytes each, docs/deploy.md *Redis capacity*): hours at tens per second,
#   days at the rates that size is meant for; a redeploy with a larger task takes minutes. Lower
#   would fire on a deployment sized to sit, retention-bound, at 70-75 %.
# - Maximum, 2 of 3 five-minute periods: every scorer container samples the same Redis at most once
#   a minute, so the highest sample is the latest fill; one high period alone (a big batch's client
#   buffers count in used_memory) is not enough, and a real fill only grows, so this costs ~5 minutes.
# - Missing data IGNORE (keep the state): the metric exists only while the scorer runs. Treated as
#   not breaching, an idle pipeline would turn a full Redis's alarm back to OK (it is still full, and
#   the next batch fails); a scorer that never publishes (no +info on an external Redis) leaves the
#   alarm at INSUFFICIENT_DATA, visible, instead of a green OK.
REDIS_MEMORY_ALARM_PERCENT = 80
REDIS_MEMORY_EVALUATION_PERIODS = 3
REDIS_MEMORY_DATAPOINTS_TO_ALARM = 2


def scorer_metric(name: str, *, statistic: str = "Sum") -> cloudwatch.Metric:
    """A Powertools metric the handler publishes (namespace FraudDetection, dimension service)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={metric_names.SERVICE_DIMENSION: SERVICE_NAME},
        statistic=statistic,
        period=PERIOD,
    )


def alarm_arn_pattern() -> str:
    """Every CloudWatch alarm of the deploying account in the stack's Region."""
    return f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"


def endpoint_metric(endpoint_name: str, name: str, *, statistic: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/SageMaker",
        metric_name=name,
        dimensions_map={"EndpointName": endpoint_name, "VariantName": "AllTraffic"},
        statistic=statistic,
        period=PERIOD,
    )


class Monitoring(Construct):
    """Alarms on the pipeline's health; `add_endpoint_alarms` adds them for a SageMaker endpoint."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AlarmsConfig,
        function: lambda_.IFunction,
        on_failure_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        # CloudWatch can only publish to an encrypted topic whose key policy lets it use the key;
        # the AWS-managed SNS key does not, so the topic gets its own key.
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts the alarm topic",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True)
        # `enforce_ssl` gives the topic a policy of its own, which replaces SNS's default (owner-only)
        # policy and holds only the TLS deny: without this statement CloudWatch may not publish and
        # every alarm action fails. Only this account's alarms in this Region may use it: the
        # aws:SourceAccount / aws:SourceArn conditions the SNS developer guide recommends against the
        # confused deputy (docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html); the key
        # grant above is what an encrypted topic needs as well (sns-key-management.html,
        # "compatibility with AWS services"). The TLS deny still applies: CloudWatch publishes over TLS.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsCloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": alarm_arn_pattern()},
                },
            )
        )
        if config.email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.email))
        self._action = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        self._alarm(
            "IteratorAge",
            function.metric("IteratorAge", statistic="Maximum", period=PERIOD),
            threshold=config.iterator_age_ms,
            description="The scorer is falling behind the stream (oldest record age, ms).",
        )
        self._alarm(
            "Errors",
            function.metric_errors(period=PERIOD, statistic="Sum"),
            threshold=1,
            description="The scorer failed whole invocations (not per-record failures).",
        )
        self._alarm(
            "Throttles",
            function.metric_throttles(period=PERIOD, statistic="Sum"),
            threshold=1,
            description="The scorer was throttled (concurrency limit).",
        )
        self._alarm(
            "OnFailureQueueDepth",
            on_failure_queue.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic="Maximum"
            ),
            threshold=1,
            description="The trigger gave up on a batch; its metadata is in the on-failure queue.",
        )
        rejected_rate = cloudwatch.MathExpression(
            expression="IF(scored + rejected > 0, 100 * rejected / (scored + rejected), 0)",
            using_metrics={
                "scored": scorer_metric(metric_names.RECORDS_SCORED),
                "rejected": scorer_metric(metric_names.RECORDS_REJECTED),
            },
            label="Rejected records (%)",
            period=PERIOD,
        )
        self._alarm(
            "RejectedRate",
            rejected_rate,
            threshold=config.rejected_percent,
            description="Share of records rejected as invalid (%); the producer may be sending bad data.",
        )
        # Published by the scorer from INFO memory (fraud_scorer/redis_memory.py), so it exists in both
        # Redis modes; nothing is published when maxmemory is 0 (no limit to run out of).
        redis_memory = scorer_metric(metric_names.REDIS_MEMORY_USED_PERCENT, statistic="Maximum")
        self.redis_memory_alarm = self._alarm(
            "RedisMemory",
            redis_memory,
            threshold=REDIS_MEMORY_ALARM_PERCENT,
            description=f"Redis uses >= {REDIS_MEMORY_ALARM_PERCENT} % of its maxmemory; at 100 % it refuses "
            "writes and batches are retried until memory is freed. Resize the Redis task or shorten "
            "txnRetentionMs (docs/deploy.md, Redis capacity).",
            evaluation_periods=REDIS_MEMORY_EVALUATION_PERIODS,
            datapoints_to_alarm=REDIS_MEMORY_DATAPOINTS_TO_ALARM,
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            # Dashboard names are unique per account across regions; the region keeps two deployments apart.
            dashboard_name=f"{Stack.of(self).stack_name}-operations-{Aws.REGION}",
            default_interval=Duration.hours(3),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Records per 5 minutes",
                left=[
                    scorer_metric(metric_names.RECORDS_SCORED),
                    scorer_metric(metric_names.RECORDS_REJECTED),
                    scorer_metric(metric_names.RECORDS_RETRIED),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Verdicts per 5 minutes",
                left=[
                    scorer_metric(metric_names.verdict_metric(Verdict.FRAUD)),
                    scorer_metric(metric_names.verdict_metric(Verdict.SUSPICIOUS)),
                    scorer_metric(metric_names.verdict_metric(Verdict.LEGIT)),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Scorer: iterator age (ms) and duration (ms)",
                left=[function.metric("IteratorAge", statistic="Maximum", period=PERIOD)],
                right=[function.metric_duration(statistic="p99", period=PERIOD)],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Scorer: errors, throttles, concurrency",
                left=[
                    function.metric_errors(period=PERIOD, statistic="Sum"),
                    function.metric_throttles(period=PERIOD, statistic="Sum"),
                ],
                right=[function.metric("ConcurrentExecutions", statistic="Maximum", period=PERIOD)],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Rejected records (%) and on-failure queue",
                left=[rejected_rate],
                right=[on_failure_queue.metric_approximate_number_of_messages_visible(period=PERIOD)],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Redis memory used (% of maxmemory)",
                left=[redis_memory],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=REDIS_MEMORY_ALARM_PERCENT, label="alarm")
                ],
                width=12,
            ),
        )

    def add_endpoint_alarms(self, *, label: str, endpoint_name: str) -> None:
        """5xx-error and latency alarms (and a dashboard graph) for one SageMaker endpoint."""
        errors = endpoint_metric(endpoint_name, "Invocation5XXErrors", statistic="Sum")
        # ModelLatency is reported in microseconds.
        latency = endpoint_metric(endpoint_name, "ModelLatency", statistic="p99")
        self._alarm(
            f"{label}Endpoint5xx",
            errors,
            threshold=1,
            description=f"The {label} SageMaker endpoint returned server errors.",
        )
        self._alarm(
            f"{label}EndpointLatency",
            latency,
            threshold=self._config.endpoint_latency_ms * 1000,
            description=f"p99 model latency of the {label} endpoint is above "
            f"{self._config.endpoint_latency_ms} ms.",
            evaluation_periods=2,
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{label} endpoint: p99 model latency (µs) and 5xx errors",
                left=[latency],
                right=[errors],
                width=12,
            )
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        # No traffic is not a failure (for counts and rates; a level such as the memory share differs).
        treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = metric.create_alarm(
            self,
            construct_id,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=treat_missing_data,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm
