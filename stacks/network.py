"""The VPC: public subnets (for load balancers) and isolated private subnets, no NAT gateway.

Workloads in the isolated subnets reach AWS APIs through VPC endpoints instead of a NAT gateway,
which is cheaper for this traffic and keeps the Redis and the scorer off the internet.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

# What the scorer Lambda and the Redis task call from the isolated subnets.
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,  # image manifest (Fargate pulls the Redis image)
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,  # awslogs driver of the Redis task
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,  # Redis password
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,  # InvokeEndpoint
    "XRay": ec2.InterfaceVpcEndpointAwsService.XRAY,  # trace segments from a VPC-attached Lambda
}


class Network(Construct):
    """A two-tier VPC with flow logs; `private_endpoints` adds the endpoints isolated workloads need."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        max_azs: int,
        private_endpoints: bool,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
                ),
            ],
            restrict_default_security_group=True,
        )
        self.flow_log_group = logs.LogGroup(
            self, "FlowLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.isolated_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        if private_endpoints:
            # ECR stores image layers in S3: the gateway endpoint is free, and needed to pull.
            self.vpc.add_gateway_endpoint(
                "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.isolated_subnets]
            )
            for name, service in INTERFACE_ENDPOINTS.items():
                endpoint = self.vpc.add_interface_endpoint(
                    name, service=service, subnets=self.isolated_subnets, private_dns_enabled=True
                )
                Validations.of(endpoint).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-EC23",
                        reason="Ingress is HTTPS from this VPC's own CIDR (CDK's default for interface "
                        "endpoints), never 0.0.0.0/0; the rule cannot evaluate the CIDR token.",
                    )
                )
                self.interface_endpoints[name] = endpoint
