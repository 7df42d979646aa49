"""TrainedModels: the two SageMaker models, trained during `cdk deploy` and served behind endpoints.

Default layout ("shared"): both models on one instance, a multi-container endpoint with direct
invocation; the scorer gets the same endpoint name twice and names the container on each call
(contracts.sagemaker_formats.*_CONTAINER_HOSTNAME). "separate": one endpoint per model (the XGBoost one
optionally serverless).
"""

from __future__ import annotations

from aws_cdk import Duration, Names, RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contracts.sagemaker_formats import ANOMALY_CONTAINER_HOSTNAME, FRAUD_CONTAINER_HOSTNAME
from stacks.models.config import ModelsConfig
from stacks.models.endpoint import Container, ModelEndpoint, ServerlessSettings, SharedModelEndpoint
from stacks.models.image_mapping import BuiltInImages
from stacks.models.permissions import (
    acknowledge,
    allow_objects,
    allow_sagemaker_logging,
    bucket_prefix_finding,
)
from stacks.models.training import TrainingRun
from training.custom_resource.naming import PREFIXES
from training.custom_resource.quotas import Need, merge
from training.custom_resource.sources import parse_s3_uri

MAX_ENDPOINT_NAME = 63


class TrainedModels(Construct):
    """XGBoost fraud classifier + Random Cut Forest anomaly model, each behind a stable-name endpoint.

    Exposes `fraud_endpoint_name`, `anomaly_endpoint_name` (equal in the shared layout),
    `fraud_threshold`, `anomaly_threshold`, `feature_spec_version` (strings, tokens when trained at
    deploy time), `endpoints` (label -> name, one entry per endpoint, for alarms), `endpoint_arns`
    and `grant_invoke(grantee)`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ModelsConfig,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.key = kms.Key(
            self,
            "EndpointKey",
            description="Encrypts the fraud-detection SageMaker endpoints' storage volumes",
            enable_key_rotation=True,
            # The shortest window AWS allows: `cdk destroy` should not leave a key billed for 30 days.
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Prepared data, training outputs and transform scores; emptied and removed by `cdk destroy`.
        self.bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            auto_delete_objects=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.bucket,
            {
                "AwsSolutions-S1": "Holds only data derived during deployment (prepared splits, model "
                "artifacts, scores), written and read by this construct's roles; no user traffic to audit."
            },
        )
        images = BuiltInImages(self, "Images", xgboost_version=config.xgboost_version)

        # The role the serving models run as: reads model artifacts, writes its logs; nothing else.
        self.model_role = iam.Role(
            self,
            "ModelRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker models of the fraud endpoints: read their artifacts, write their logs",
        )
        allow_sagemaker_logging(self.model_role)

        self.training: TrainingRun | None = None
        if config.skip_training:
            fraud_data_url = config.fraud_model_data_url
            anomaly_data_url = config.anomaly_model_data_url
            self._grant_read_objects(self.model_role, [fraud_data_url, anomaly_data_url])
            self.fraud_threshold: str = repr(config.fraud_threshold)
            self.anomaly_threshold: str = repr(config.anomaly_threshold)
            self.feature_spec_version: str = config.model_feature_spec_version or ""
        else:
            self.training = TrainingRun(
                self,
                "Training",
                config=config,
                bucket=self.bucket,
                xgboost_image=images.xgboost_image,
                rcf_image=images.rcf_image,
                quota_needs=self.quota_needs(config),
                log_retention=log_retention,
            )
            allow_objects(self.model_role, self.bucket, PREFIXES.training, ["s3:GetObject"])
            acknowledge(
                self.model_role,
                {
                    bucket_prefix_finding(self.bucket, PREFIXES.training): "Model artifacts under training/ "
                    "of this stack's bucket; their keys contain job names known only at deploy time."
                },
            )
            fraud_data_url = self.training.fraud_model_data_url
            anomaly_data_url = self.training.anomaly_model_data_url
            self.fraud_threshold = self.training.fraud_threshold
            self.anomaly_threshold = self.training.anomaly_threshold
            self.feature_spec_version = self.training.feature_spec_version

        base_name = self._endpoint_base_name()
        if config.shared_endpoint:
            self.shared = SharedModelEndpoint(
                self,
                "Shared",
                endpoint_name=f"{base_name}-models",
                containers=[
                    Container(FRAUD_CONTAINER_HOSTNAME, images.xgboost_image, fraud_data_url),
                    Container(ANOMALY_CONTAINER_HOSTNAME, images.rcf_image, anomaly_data_url),
                ],
                role=self.model_role,
                key=self.key,
                instance_type=config.endpoint_instance_type,
            )
            self.shared.model.node.add_dependency(self.model_role)
            self.fraud_endpoint_name: str = self.shared.endpoint_name
            self.anomaly_endpoint_name: str = self.shared.endpoint_name
            self.endpoints: dict[str, str] = {"Models": self.shared.endpoint_name}
            self.endpoint_arns: list[str] = [self.shared.endpoint_arn]
            return
        serverless = (
            ServerlessSettings(
                memory_size_mb=config.fraud_serverless_memory_mb,
                max_concurrency=config.fraud_serverless_max_concurrency,
            )
            if config.fraud_serverless
            else None
        )
        self.fraud = ModelEndpoint(
            self,
            "Fraud",
            endpoint_name=f"{base_name}-fraud",
            image_uri=images.xgboost_image,
            model_data_url=fraud_data_url,
            role=self.model_role,
            key=self.key,
            instance_type=config.fraud_instance_type,
            serverless=serverless,
        )
        self.anomaly = ModelEndpoint(
            self,
            "Anomaly",
            endpoint_name=f"{base_name}-anomaly",
            image_uri=images.rcf_image,
            model_data_url=anomaly_data_url,
            role=self.model_role,
            key=self.key,
            instance_type=config.anomaly_instance_type,
        )
        for endpoint in (self.fraud, self.anomaly):
            # The model must be able to read its artifacts before SageMaker creates it.
            endpoint.model.node.add_dependency(self.model_role)
        self.fraud_endpoint_name = self.fraud.endpoint_name
        self.anomaly_endpoint_name = self.anomaly.endpoint_name
        self.endpoints = {"Fraud": self.fraud.endpoint_name, "Anomaly": self.anomaly.endpoint_name}
        self.endpoint_arns = [self.fraud.endpoint_arn, self.anomaly.endpoint_arn]

    @staticmethod
    def quota_needs(config: ModelsConfig) -> list[Need]:
        """Instances this deployment runs at once, per quota: two training jobs and two scoring
        transforms in parallel, then the endpoint instance(s)."""
        needs = [
            Need(config.training_instance_type, "training job", 2),
            Need(config.transform_instance_type, "transform job", 2),
        ]
        if config.shared_endpoint:
            needs.append(Need(config.endpoint_instance_type, "endpoint", 1))
        else:
            if not config.fraud_serverless:
                needs.append(Need(config.fraud_instance_type, "endpoint", 1))
            needs.append(Need(config.anomaly_instance_type, "endpoint", 1))
        return merge(needs)

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """sagemaker:InvokeEndpoint on this construct's endpoint(s) only."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=self.endpoint_arns
        )

    def _endpoint_base_name(self) -> str:
        stack_name = Stack.of(self).stack_name
        if Token.is_unresolved(stack_name):  # e.g. inside a nested stack
            stack_name = Names.unique_resource_name(self, max_length=40, separator="-")
        base = "".join(c if c.isalnum() or c == "-" else "-" for c in stack_name).strip("-")
        if len(base) + len("-anomaly") > MAX_ENDPOINT_NAME:
            raise ValueError(f"stack name {stack_name!r} is too long for SageMaker endpoint names (max 55)")
        return base

    def _grant_read_objects(self, role: iam.IRole, uris: list[str | None]) -> None:
        stack = Stack.of(self)
        arns = []
        for uri in uris:
            bucket, key = parse_s3_uri(uri or "")
            arns.append(f"arn:{stack.partition}:s3:::{bucket}/{key}")
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=arns))
