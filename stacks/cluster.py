"""The ECS cluster shared by the stack's Fargate services (self-hosted Redis, Grafana).

Container Insights writes to `/aws/ecs/containerinsights/<cluster>/performance`. Left to ECS, that log
group appears on first use with no retention and outlives `cdk destroy`; created here, it has the
stack's retention and goes with the stack. Services depend on it so it exists before they report.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct, IDependable


class ServiceCluster(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, log_retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.insights_logs = logs.LogGroup(
            self,
            "InsightsLogs",
            log_group_name=f"/aws/ecs/containerinsights/{self.cluster.cluster_name}/performance",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )

    def add_service(self, service: IDependable) -> None:
        """Make `service` wait for the insights log group, so ECS never creates its own."""
        service.node.add_dependency(self.insights_logs)
