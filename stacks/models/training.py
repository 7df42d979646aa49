"""Training during `cdk deploy`: a custom resource on the CDK Provider framework.

on_event checks the SageMaker quotas, prepares the data (stdlib `training.prepare`, inside the
Lambda: by default simulated transactions and their offline features) and starts the two training
jobs; is_complete polls them, runs batch transforms to score the validation / training splits, and
returns the model artifacts, data-driven thresholds and the feature-spec version as attributes. Job
names are a hash of data + hyperparameters + image, so an unchanged input reuses the completed jobs.
Every time limit comes from `training.custom_resource.budget`, so the whole run ends before
CloudFormation's custom-resource timeout (ServiceTimeout, at most 3600 s).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, ArnFormat, CustomResource, Duration, IgnoreMode, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.models.config import ModelsConfig
from stacks.models.permissions import (
    acknowledge,
    allow_list_bucket,
    allow_objects,
    allow_sagemaker_logging,
    bucket_prefix_finding,
    sagemaker_name_prefix_finding,
    wildcard_resource,
)
from training.custom_resource import budget
from training.custom_resource.naming import JOB_PREFIX, MODEL_PREFIX, PREFIXES
from training.custom_resource.quotas import Need
from training.custom_resource.sources import parse_s3_uri

REPO_ROOT = Path(__file__).resolve().parents[2]
# The Lambda runs training/custom_resource/ with the stdlib-only code it imports: the contracts, the
# data code and the shared model preparation. Gitignore-style rules keep everything else out (the local
# twin's modules import xgboost and scikit-learn, which the Lambda does not have).
RUNTIME_ASSET_RULES = [
    "/*",
    "!/contracts",
    "!/fraud_data",
    "!/training",
    "/training/*",
    "!/training/__init__.py",
    "!/training/custom_resource",
    "!/training/prepare.py",
    "!/training/spec.py",
    "!/training/thresholds.py",
    "__pycache__",
    "*.pyc",
]
RUNTIME = lambda_.Runtime.PYTHON_3_14  # stdlib + the runtime's boto3: no bundling, no Docker
SERVICE_TIMEOUT = Duration.seconds(budget.SERVICE_TIMEOUT_S)
PROVIDER_TOTAL_TIMEOUT = Duration.seconds(budget.PROVIDER_TOTAL_TIMEOUT_S)
# The default-size simulated preparation peaks at 1,628 MB, the largest allowed (twice the default,
# config.MAX_SIMULATION_CUSTOMER_DAYS) at 3,165 MB (measured locally; docs/training.md): 6 GB leaves
# room for both. A Lambda gets CPU in proportion to memory, but the work is single-threaded, so more
# memory buys no speed.
PREPARE_MEMORY_MB = 6144
PREPARE_STORAGE_MB = 2048  # the prepared splits (~0.7 GB at the largest size) or the ULB zip and its splits
GET, PUT = "s3:GetObject", "s3:PutObject"
# The SageMaker calls each handler makes (training/custom_resource/lifecycle.py, jobs.py), by resource
# type; each role gets exactly its handler's. on_event (Prepare) starts or reuses the training jobs and
# names the transforms (describe) on Create/Update, stops a job it started if the other cannot start,
# and on Delete stops every attempt and drops the temporary models.
PREPARE_SAGEMAKER_ACTIONS = {
    "training-job": ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"),
    "transform-job": ("DescribeTransformJob", "StopTransformJob"),
    "model": ("DeleteModel",),
}
# is_complete (Poll) describes the jobs, starts the scoring (a temporary model from the artifacts, then
# its transform), stops what still runs on a failure or past the deadline, and drops the models.
POLL_SAGEMAKER_ACTIONS = {
    "training-job": ("DescribeTrainingJob", "StopTrainingJob"),
    "transform-job": ("CreateTransformJob", "DescribeTransformJob", "StopTransformJob"),
    "model": ("CreateModel", "DeleteModel"),
}


class TrainingRun(Construct):
    """Prepares the data and trains both models; exposes the results as CloudFormation attributes."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ModelsConfig,
        bucket: s3.IBucket,
        xgboost_image: str,
        rcf_image: str,
        quota_needs: list[Need],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self._bucket = bucket
        # The stack's `logRetentionDays`, like every other log group of the stack (docs/deploy.md).
        self._log_retention = log_retention
        self.source_asset: s3_assets.Asset | None = None
        source_uri = self._source_uri(config)

        # The role SageMaker assumes for the training jobs and the scoring batch transforms.
        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training/transform jobs of the fraud models: this stack's bucket only",
        )
        allow_objects(self.job_role, bucket, PREFIXES.prepared, [GET])
        allow_objects(self.job_role, bucket, PREFIXES.training, [GET, PUT])
        allow_objects(self.job_role, bucket, PREFIXES.transform, [PUT])
        allow_list_bucket(self.job_role, bucket)
        allow_sagemaker_logging(self.job_role)
        self._acknowledge_prefixes(self.job_role, [PREFIXES.prepared, PREFIXES.training, PREFIXES.transform])

        self.runtime_asset = s3_assets.Asset(
            self, "RuntimeCode", path=str(REPO_ROOT), exclude=RUNTIME_ASSET_RULES, ignore_mode=IgnoreMode.GIT
        )
        code = lambda_.Code.from_bucket(self.runtime_asset.bucket, self.runtime_asset.s3_object_key)
        # One asset shared by both functions. Its object key is its content hash, so changed code gets a
        # new key and CloudFormation updates the functions: no object version is needed.
        Annotations.of(self.runtime_asset.bucket).acknowledge_warning(
            "@aws-cdk/aws-lambda:codeFromBucketObjectVersionNotSpecified",
            "the asset's object key changes with its content",
        )
        self.on_event_function = self._function(
            "Prepare",
            code=code,
            handler="training.custom_resource.handler.on_event",
            memory_size=PREPARE_MEMORY_MB,
            timeout=Duration.seconds(budget.PREPARE_TIMEOUT_S),
            ephemeral_storage_mb=PREPARE_STORAGE_MB,
        )
        self.is_complete_function = self._function(
            "Poll",
            code=code,
            handler="training.custom_resource.handler.is_complete",
            memory_size=1024,
            timeout=Duration.seconds(budget.POLL_TIMEOUT_S),
            ephemeral_storage_mb=512,
        )
        prepare_role, poll_role = self.on_event_function.role, self.is_complete_function.role
        assert prepare_role is not None
        assert poll_role is not None
        allow_objects(prepare_role, bucket, PREFIXES.prepared, [GET, PUT])
        allow_list_bucket(prepare_role, bucket)
        self._acknowledge_prefixes(prepare_role, [PREFIXES.prepared])
        allow_objects(poll_role, bucket, PREFIXES.prepared, [GET])
        allow_objects(poll_role, bucket, PREFIXES.transform, [GET])
        self._acknowledge_prefixes(poll_role, [PREFIXES.prepared, PREFIXES.transform])
        self._allow_sagemaker_jobs(prepare_role, PREPARE_SAGEMAKER_ACTIONS)
        self._allow_sagemaker_jobs(poll_role, POLL_SAGEMAKER_ACTIONS)
        self._allow_source(prepare_role, config, source_uri)
        self._allow_quota_reads(prepare_role)

        provider = self._provider()
        simulation = config.simulation
        self.resource = CustomResource(
            self,
            "Models",
            service_token=provider.service_token,
            # Explicit: CloudFormation's maximum and default; the budget below is measured against it.
            service_timeout=SERVICE_TIMEOUT,
            resource_type="Custom::FraudModelTraining",
            properties={
                "Source": source_uri,
                "SourceSha256": config.data_sha256 or "",
                "Simulation": {
                    "Customers": str(simulation.customers),
                    "Terminals": str(simulation.terminals),
                    "Days": str(simulation.days),
                    "Start": simulation.start,
                    "Seed": str(simulation.seed),
                },
                "SyntheticRows": str(config.synthetic_rows),
                # Checked before anything starts (training/custom_resource/quotas.py).
                "Quotas": [need.as_property() for need in quota_needs],
                "TrainingMaxRuntimeSeconds": str(budget.TRAINING_MAX_RUNTIME_S),
                "JobDeadlineSeconds": str(budget.JOB_DEADLINE_S),
                "Bucket": bucket.bucket_name,
                "JobRoleArn": self.job_role.role_arn,
                "XgboostImage": xgboost_image,
                "RcfImage": rcf_image,
                "TrainingInstanceType": config.training_instance_type,
                "TransformInstanceType": config.transform_instance_type,
                # A change of the runtime (preparation code, hyperparameters) re-runs the resource;
                # the job-name hash then decides whether anything actually retrains.
                "RuntimeVersion": self.runtime_asset.asset_hash,
            },
        )
        # The jobs run as job_role: its policy must exist before the first job starts.
        self.resource.node.add_dependency(self.job_role)
        self.fraud_model_data_url: str = self.resource.get_att_string("FraudModelDataUrl")
        self.anomaly_model_data_url: str = self.resource.get_att_string("AnomalyModelDataUrl")
        self.fraud_threshold: str = self.resource.get_att_string("FraudThreshold")
        self.anomaly_threshold: str = self.resource.get_att_string("AnomalyThreshold")
        self.data_sha256: str = self.resource.get_att_string("DataSha256")
        # What the models' rows hold: contracts.features.SPEC_VERSION for the simulated data (the
        # scorer compares it with its own and refuses to score on a mismatch).
        self.feature_spec_version: str = self.resource.get_att_string("FeatureSpecVersion")

    def _source_uri(self, config: ModelsConfig) -> str:
        if config.source_kind != "file":
            return config.data_source
        # A local creditcard.csv / .zip goes up as a CDK asset; the Lambda reads it from there.
        self.source_asset = s3_assets.Asset(self, "SourceData", path=config.data_source)
        return f"s3://{self.source_asset.s3_bucket_name}/{self.source_asset.s3_object_key}"

    def _allow_source(self, role: iam.IRole, config: ModelsConfig, source_uri: str) -> None:
        # Exactly the one source object (an asset's key is its content hash, so it is known now).
        if self.source_asset is not None:
            bucket_name, key = self.source_asset.s3_bucket_name, self.source_asset.s3_object_key
        elif config.source_kind == "s3":
            bucket_name, key = parse_s3_uri(source_uri)
        else:
            return  # synthetic or https: nothing to read from S3
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[GET], resources=[f"arn:{Stack.of(self).partition}:s3:::{bucket_name}/{key}"]
            )
        )

    def _allow_quota_reads(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas"],
                resources=["*"],
            )
        )
        acknowledge(
            role,
            {
                wildcard_resource("*"): "Service Quotas' List actions support no resource-level permissions "
                "(Service Authorization Reference, Service Quotas); they only read quota values, which "
                "the preparation checks before starting any SageMaker job."
            },
        )

    def _function(
        self,
        name: str,
        *,
        code: lambda_.Code,
        handler: str,
        memory_size: int,
        timeout: Duration,
        ephemeral_storage_mb: int,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{name}Logs", retention=self._log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Fraud model training custom resource ({name}): its SageMaker jobs and bucket data",
        )
        # Instead of the AWSLambdaBasicExecutionRole managed policy: write to this log group only.
        log_group.grant_write(role)
        return lambda_.Function(
            self,
            name,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=code,
            handler=handler,
            role=role,
            memory_size=memory_size,
            timeout=timeout,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mb),
            log_group=log_group,
            description="Fraud model training during cdk deploy (stdlib + boto3 only)",
        )

    def _allow_sagemaker_jobs(self, role: iam.IRole, actions_by_resource: dict[str, tuple[str, ...]]) -> None:
        stack = Stack.of(self)
        # Jobs are named with JOB_PREFIX; the temporary models of the scoring transforms with
        # MODEL_PREFIX (the serving models are stack resources).
        prefixes = {"training-job": JOB_PREFIX, "transform-job": JOB_PREFIX, "model": MODEL_PREFIX}
        for resource, actions in actions_by_resource.items():
            prefix = prefixes[resource]
            arn = stack.format_arn(
                service="sagemaker",
                resource=resource,
                resource_name=f"{prefix}*",
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=[f"sagemaker:{a}" for a in actions], resources=[arn])
            )
            acknowledge(
                role,
                {
                    sagemaker_name_prefix_finding(resource, prefix): (
                        "Job and model names are hashes of their inputs, known only at run time; "
                        f"every one this resource creates starts with '{prefix}'."
                    )
                },
            )
        # Both hand the job role to SageMaker: CreateTrainingJob (Prepare) and CreateModel (Poll).
        self.job_role.grant_pass_role(role)

    def _acknowledge_prefixes(self, role: iam.IRole, prefixes: list[str]) -> None:
        acknowledge(
            role,
            {
                bucket_prefix_finding(
                    self._bucket, prefix
                ): f"Objects under {prefix} of this stack's own bucket; "
                "their keys are content hashes and job names known only at run time."
                for prefix in prefixes
            },
        )

    def _provider(self) -> cr.Provider:
        provider_logs = logs.LogGroup(
            self, "ProviderLogs", retention=self._log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        waiter_logs = logs.LogGroup(
            self, "WaiterLogs", retention=self._log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        framework_roles = []
        for name in ("FrameworkOnEventRole", "FrameworkPollRole"):
            role = iam.Role(
                self,
                name,
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description="CDK Provider framework of the fraud model training custom resource",
            )
            provider_logs.grant_write(role)
            framework_roles.append(role)
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.on_event_function,
            is_complete_handler=self.is_complete_function,
            query_interval=Duration.seconds(budget.POLL_INTERVAL_S),
            total_timeout=PROVIDER_TOTAL_TIMEOUT,
            log_group=provider_logs,
            framework_on_event_role=framework_roles[0],
            framework_complete_and_timeout_role=framework_roles[1],
            disable_waiter_state_machine_logging=False,  # the framework's default is no logging
            waiter_state_machine_log_options=cr.LogOptions(
                destination=waiter_logs, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        stack = Stack.of(self)
        invoke_reason = (
            "The CDK Provider framework invokes its handler functions by ARN including versions "
            "(<function ARN>:*); the functions are this construct's own."
        )
        findings = {
            wildcard_resource(f"<{stack.get_logical_id(fn.node.default_child)}.Arn>:*"): invoke_reason
            for fn in (self.on_event_function, self.is_complete_function)
        }
        for framework_function in ("framework-isComplete", "framework-onTimeout"):
            fn = provider.node.find_child(framework_function)
            findings[wildcard_resource(f"<{stack.get_logical_id(fn.node.default_child)}.Arn>:*")] = (
                invoke_reason
            )
        acknowledge(provider, findings)
        for role in framework_roles:
            acknowledge(role, findings)
        acknowledge(
            provider.node.find_child("waiter-state-machine"),
            {
                wildcard_resource("*"): "Step Functions log delivery (logs:CreateLogDelivery and friends) "
                "supports no resource-level permissions.",
            },
        )
        acknowledge(
            provider,
            {
                "AwsSolutions-SF2": "The CDK Provider framework's waiter state machine has no X-Ray option; "
                "it only polls is_complete, whose logs are in CloudWatch.",
            },
        )
        return provider
