"""TrainedModels: the two SageMaker models, trained during `cdk deploy` and served behind endpoints."""

from __future__ import annotations

from aws_cdk import Duration, Names, RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.models.config import ModelsConfig
from stacks.models.endpoint import ModelEndpoint, ServerlessSettings
from stacks.models.image_mapping import BuiltInImages
from stacks.models.permissions import (
    acknowledge,
    allow_objects,
    allow_sagemaker_logging,
    bucket_prefix_finding,
)
from stacks.models.training import TrainingRun
from training.custom_resource.naming import PREFIXES
from training.custom_resource.sources import parse_s3_uri

MAX_ENDPOINT_NAME = 63


class TrainedModels(Construct):
    """XGBoost fraud classifier + Random Cut Forest anomaly model, each behind a stable-name endpoint.

    Exposes `fraud_endpoint_name`, `anomaly_endpoint_name`, `fraud_threshold`, `anomaly_threshold`
    (strings, tokens when trained at deploy time), `endpoint_arns` and `grant_invoke(grantee)`.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: ModelsConfig) -> None:
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
        else:
            self.training = TrainingRun(
                self,
                "Training",
                config=config,
                bucket=self.bucket,
                xgboost_image=images.xgboost_image,
                rcf_image=images.rcf_image,
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

        base_name = self._endpoint_base_name()
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
        self.fraud_endpoint_name: str = self.fraud.endpoint_name
        self.anomaly_endpoint_name: str = self.anomaly.endpoint_name
        self.endpoint_arns: list[str] = [self.fraud.endpoint_arn, self.anomaly.endpoint_arn]

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """sagemaker:InvokeEndpoint on this construct's two endpoints only."""
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
