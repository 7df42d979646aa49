"""The ECS cluster shared by the stack's Fargate services (self-hosted Redis, Grafana).

Container Insights writes to `/aws/ecs/containerinsights/<cluster>/performance`. Left to ECS, that log
group appears on first use with no retention and outlives `cdk destroy`. Here the stack creates it,
with the stack's retention, *before* the cluster and deletes it *after* the cluster: the cluster gets
an explicit name (`<stack name>-services`), so the log group's name does not depend on the cluster
resource and the cluster can depend on the log group. Had the log group referenced the cluster, it
would be deleted first and a cluster still reporting could recreate it, unowned.
"""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct, IDependable

CLUSTER_NAME_SUFFIX = "-services"


class ServiceCluster(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, log_retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        # Stack names are unique per account and Region, and so are cluster names.
        cluster_name = f"{Aws.STACK_NAME}{CLUSTER_NAME_SUFFIX}"
        self.insights_logs = logs.LogGroup(
            self,
            "InsightsLogs",
            log_group_name=f"/aws/ecs/containerinsights/{cluster_name}/performance",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            cluster_name=cluster_name,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.cluster.node.add_dependency(self.insights_logs)

    def add_service(self, service: IDependable) -> None:
        """Make `service` wait for the insights log group, so ECS never creates its own."""
        service.node.add_dependency(self.insights_logs)
