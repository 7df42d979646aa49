"""SageMaker models served behind endpoints with stable names: one model per endpoint, or several
models on one instance (a multi-container endpoint with direct invocation)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

MAX_CONTAINERS = (
    15  # "Currently there is a limit of up to 15 containers supported on a multi-container endpoint"
)


def _stable_endpoint(
    scope: Construct, endpoint_name: str, config: sagemaker.CfnEndpointConfig
) -> tuple[sagemaker.CfnEndpoint, str]:
    """The endpoint with the stable name (updated in place to a new config) and its ARN, for IAM."""
    endpoint = sagemaker.CfnEndpoint(
        scope,
        "Endpoint",
        endpoint_name=endpoint_name,
        endpoint_config_name=config.attr_endpoint_config_name,
    )
    arn = Stack.of(scope).format_arn(
        service="sagemaker",
        resource="endpoint",
        # SageMaker lower-cases endpoint names in ARNs; IAM compares ARNs case-sensitively.
        resource_name=endpoint_name.lower(),
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )
    return endpoint, arn


@dataclass(frozen=True)
class ServerlessSettings:
    memory_size_mb: int
    max_concurrency: int


class ModelEndpoint(Construct):
    """CfnModel + CfnEndpointConfig (no fixed names, so a new model replaces them) + CfnEndpoint.

    The endpoint keeps its name across model updates: CloudFormation updates it in place to the
    new config, so the scoring Lambda's FRAUD_/ANOMALY_ENDPOINT_NAME never change.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        image_uri: str,
        model_data_url: str,
        role: iam.IRole,
        key: kms.IKey,
        instance_type: str,
        serverless: ServerlessSettings | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri, model_data_url=model_data_url
            ),
        )
        if serverless is None:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name="AllTraffic",
                model_name=self.model.attr_model_name,
                initial_instance_count=1,
                instance_type=instance_type,
                initial_variant_weight=1.0,
            )
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name="AllTraffic",
                model_name=self.model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=serverless.memory_size_mb,
                    max_concurrency=serverless.max_concurrency,
                ),
            )
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self, "Config", production_variants=[variant], kms_key_id=key.key_arn
        )
        self.endpoint, self.endpoint_arn = _stable_endpoint(self, endpoint_name, self.endpoint_config)
        self.endpoint_name: str = self.endpoint.attr_endpoint_name


@dataclass(frozen=True)
class Container:
    hostname: str
    image_uri: str
    model_data_url: str


class SharedModelEndpoint(Construct):
    """Several models on one instance: a multi-container CfnModel invoked directly
    (InferenceExecutionConfig Mode=Direct), one endpoint config, one endpoint with a stable name.

    Each call names its container with TargetContainerHostname (SageMaker developer guide, "Invoke a
    multi-container endpoint with direct invocation"); one instance serves both models, which halves
    the idle cost of two single-model endpoints.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        containers: list[Container],
        role: iam.IRole,
        key: kms.IKey,
        instance_type: str,
    ) -> None:
        super().__init__(scope, construct_id)
        if not 2 <= len(containers) <= MAX_CONTAINERS:
            raise ValueError(f"a multi-container endpoint hosts 2 to {MAX_CONTAINERS} containers")
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            containers=[
                sagemaker.CfnModel.ContainerDefinitionProperty(
                    container_hostname=c.hostname, image=c.image_uri, model_data_url=c.model_data_url
                )
                for c in containers
            ],
            inference_execution_config=sagemaker.CfnModel.InferenceExecutionConfigProperty(mode="Direct"),
        )
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name="AllTraffic",
                    model_name=self.model.attr_model_name,
                    initial_instance_count=1,
                    instance_type=instance_type,
                    initial_variant_weight=1.0,
                )
            ],
            kms_key_id=key.key_arn,
        )
        self.endpoint, self.endpoint_arn = _stable_endpoint(self, endpoint_name, self.endpoint_config)
        self.endpoint_name: str = self.endpoint.attr_endpoint_name
