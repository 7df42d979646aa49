"""Least-privilege IAM statements for the models' roles, and the exact cdk-nag findings they cause.

Bucket access is granted per key prefix with the precise S3 actions each role needs (not the
`grant_read`/`grant_read_write` action wildcards). The unavoidable wildcards (a key prefix, a job-name
prefix, `/aws/sagemaker/*` log groups, PutMetricData) are acknowledged one by one on the role.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

SAGEMAKER_LOG_GROUPS = "/aws/sagemaker/*"


def allow_objects(role: iam.IRole, bucket: s3.IBucket, prefix: str, actions: list[str]) -> None:
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")])
    )


def allow_list_bucket(role: iam.IRole, bucket: s3.IBucket) -> None:
    # Listing lets a missing key answer 404 (not 403) and lets SageMaker expand an S3Prefix input.
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
    )


def allow_sagemaker_logging(role: iam.IRole) -> None:
    """CloudWatch Logs and metrics for SageMaker jobs and endpoints that run as `role`."""
    stack = Stack.of(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            resources=[
                stack.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=SAGEMAKER_LOG_GROUPS,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],  # PutMetricData has no resource type; the condition limits the namespace
            conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}},
        )
    )
    acknowledge(
        role,
        {
            wildcard_resource(
                f"arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:{SAGEMAKER_LOG_GROUPS}"
            ): "SageMaker names its job and endpoint log groups /aws/sagemaker/<kind>; the names are "
            "created at run time, so the prefix is the narrowest scope.",
            wildcard_resource("*"): "cloudwatch:PutMetricData supports no resource ARN; it is limited to "
            "SageMaker's metric namespaces by a condition.",
        },
    )


def bucket_prefix_finding(bucket: s3.IBucket, prefix: str) -> str:
    """The IAM5 finding id cdk-nag reports for `bucket.arn_for_objects(prefix + '*')`."""
    cfn_bucket = bucket.node.default_child
    logical_id = Stack.of(bucket).get_logical_id(cfn_bucket)  # type: ignore[arg-type]
    return wildcard_resource(f"<{logical_id}.Arn>/{prefix}*")


def sagemaker_name_prefix_finding(resource: str, name_prefix: str) -> str:
    return wildcard_resource(
        f"arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:{resource}/{name_prefix}*"
    )


def wildcard_resource(rendered: str) -> str:
    return f"AwsSolutions-IAM5[Resource::{rendered}]"


def acknowledge(scope: IConstruct, findings: dict[str, str]) -> None:
    """Acknowledge exact cdk-nag findings (id -> specific reason) on `scope` and its children."""
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule, reason in findings.items())
    )
