"""The VPC: public subnets (for load balancers) and isolated private subnets, no NAT gateway.

Workloads in the isolated subnets reach AWS APIs through VPC endpoints instead of a NAT gateway,
which keeps the Redis and the scorer off the internet. The interface endpoints sit in one AZ by
default (`vpcEndpointAzs`): $7.30 per endpoint and AZ each month is most of the network's idle cost.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct, DependencyGroup

EGRESS_ENDPOINTS = "endpoints"
EGRESS_NAT_INSTANCE = "nat-instance"
EGRESS_MODES = (EGRESS_ENDPOINTS, EGRESS_NAT_INSTANCE)
# The smallest Graviton instance: $0.0042/h in us-east-1 (aws.amazon.com/ec2/pricing/on-demand).
NAT_INSTANCE_TYPE = "t4g.nano"

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
        endpoint_azs: int = 1,
        egress: str = EGRESS_ENDPOINTS,
    ) -> None:
        super().__init__(scope, construct_id)
        nat_instance = private_endpoints and egress == EGRESS_NAT_INSTANCE
        # The private tier: isolated (no route out) behind VPC endpoints, or with a route to the
        # internet through one NAT instance (the lean preset: ~$7 instead of ~$44 of endpoints).
        private_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if nat_instance else ec2.SubnetType.PRIVATE_ISOLATED
        self.nat_provider = self._nat_instance() if nat_instance else None
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=max_azs,
            nat_gateways=1 if nat_instance else 0,
            nat_gateway_provider=self.nat_provider,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="private" if nat_instance else "isolated", subnet_type=private_type, cidr_mask=22
                ),
            ],
            restrict_default_security_group=True,
        )
        if self.nat_provider is not None:
            self._secure_nat_instance(self.nat_provider)
        self.flow_log_group = logs.LogGroup(
            self, "FlowLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        # Where the private workloads run (Redis, the scorer, Grafana next to Redis). The name is kept
        # from when this tier was always isolated.
        self.isolated_subnets = ec2.SubnetSelection(subnet_type=private_type)
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        # What a task in the private subnets needs before it starts (image pull, secrets, logs): the
        # endpoints, or the NAT instance's routes. ECS services depend on it; CloudFormation would
        # otherwise start their tasks while the endpoints are still being created (1-2 minutes), and
        # three failed starts trip the deployment circuit breaker, failing the first deploy.
        self.private_egress_ready = DependencyGroup()
        if nat_instance:
            for subnet in self.vpc.private_subnets:  # each one's default route through the NAT instance
                self.private_egress_ready.add(subnet.internet_connectivity_established)
        if private_endpoints and not nat_instance:
            # ECR stores image layers in S3: the gateway endpoint is free, and needed to pull.
            gateway = self.vpc.add_gateway_endpoint(
                "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.isolated_subnets]
            )
            self.private_egress_ready.add(gateway)
            # Interface endpoints bill per endpoint *per AZ* (aws.amazon.com/privatelink/pricing). With
            # private DNS the regional names resolve to the endpoint's addresses from every subnet of
            # the VPC, so one AZ serves all of them; more AZs only buy resilience to an AZ outage
            # (`vpcEndpointAzs`, docs/cost.md).
            self.endpoint_subnets = ec2.SubnetSelection(
                subnets=self.vpc.isolated_subnets[: max(1, min(endpoint_azs, len(self.vpc.isolated_subnets)))]
            )
            for name, service in INTERFACE_ENDPOINTS.items():
                endpoint = self.vpc.add_interface_endpoint(
                    name, service=service, subnets=self.endpoint_subnets, private_dns_enabled=True
                )
                Validations.of(endpoint).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-EC23",
                        reason="Ingress is HTTPS from this VPC's own CIDR (CDK's default for interface "
                        "endpoints), never 0.0.0.0/0; the rule cannot evaluate the CIDR token.",
                    )
                )
                self.interface_endpoints[name] = endpoint
                self.private_egress_ready.add(endpoint)

    @staticmethod
    def _nat_instance() -> ec2.NatInstanceProviderV2:
        return ec2.NatProvider.instance_v2(
            instance_type=ec2.InstanceType(NAT_INSTANCE_TYPE),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=ec2.AmazonLinuxCpuType.ARM_64),
            # Outbound only: the inbound rule below admits this VPC's own addresses, never the internet.
            default_allowed_traffic=ec2.NatTrafficDirection.OUTBOUND_ONLY,
            associate_public_ip_address=True,
        )

    def _secure_nat_instance(self, provider: ec2.NatInstanceProviderV2) -> None:
        # EC2 takes rule descriptions of "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*" only
        # (API_IpRange): an apostrophe fails the deploy with InvalidParameterValue.
        provider.security_group.add_ingress_rule(
            ec2.Peer.ipv4(self.vpc.vpc_cidr_block), ec2.Port.all_traffic(), "The private subnets of this VPC"
        )
        Validations.of(provider.security_group).acknowledge(
            Acknowledgment(
                id="AwsSolutions-EC23",
                reason="The NAT instance admits only this VPC's own CIDR (the rule cannot evaluate the "
                "CIDR token), never 0.0.0.0/0: it forwards the private subnets' traffic out.",
            )
        )
        for construct in self.vpc.node.find_all():
            if isinstance(construct, ec2.Instance):
                # An encrypted root volume, like every other store here.
                construct.instance.block_device_mappings = [
                    ec2.CfnInstance.BlockDeviceMappingProperty(
                        device_name="/dev/xvda",  # Amazon Linux 2023's root device
                        ebs=ec2.CfnInstance.EbsProperty(encrypted=True, volume_type="gp3", volume_size=8),
                    )
                ]
                Validations.of(construct).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-EC28",
                        reason="The lean preset's NAT instance forwards packets only; detailed monitoring "
                        "would cost more than the instance and the flow logs already record rejects.",
                    ),
                    Acknowledgment(
                        id="AwsSolutions-EC29",
                        reason="The NAT instance is disposable and stateless: `cdk destroy` must remove "
                        "it, so termination protection stays off.",
                    ),
                )
