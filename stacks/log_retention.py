"""Log retention: days (as configured) to the CDK's enum, and a log group for every Lambda."""

from __future__ import annotations

from aws_cdk import CfnResource, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
}


_DAYS_OF = {enum: days for days, enum in _BY_DAYS.items()}


def retention_days(days: int) -> logs.RetentionDays:
    """`days` must be one of `stacks.config.LOG_RETENTION_DAYS` (validated when config is read)."""
    return _BY_DAYS[days]


def give_every_function_a_log_group(stack: Stack, retention: logs.RetentionDays) -> list[logs.LogGroup]:
    """Send each Lambda in `stack` that has no log group of its own to one the stack owns.

    A Lambda without `LoggingConfig.LogGroup` writes to `/aws/lambda/<name>`, which Lambda creates on
    the first invocation with no retention and which stays after `cdk destroy`. That is the case for
    the CDK's own helper functions (the bucket auto-delete and default-security-group custom resource
    providers, AwsApi targets...), which take no logging options. Their L1 resource accepts
    `LoggingConfig`, so each gets an explicit log group here: retention as configured, deleted with the
    stack, and created before the function (the function references it), deleted after it.

    Writing to a custom log group needs logs:CreateLogStream/PutLogEvents on it; every such helper
    role carries AWSLambdaBasicExecutionRole, which allows both on any log group.
    Call this last in the stack's constructor, after every construct that may add a function.
    """
    created: list[logs.LogGroup] = []
    # Log groups already named after a function (`/aws/lambda/<function>`, as AwsApi's helper has).
    default_named = [
        stack.resolve(group.log_group_name)
        for group in stack.node.find_all()
        if isinstance(group, logs.CfnLogGroup) and group.log_group_name is not None
    ]
    for construct in stack.node.find_all():
        if not isinstance(construct, CfnResource) or construct.cfn_resource_type != "AWS::Lambda::Function":
            continue
        if {"Fn::Join": ["", ["/aws/lambda/", stack.resolve(construct.ref)]]} in default_named:
            continue
        if isinstance(construct, lambda_.CfnFunction) and construct.logging_config is not None:
            resolved = stack.resolve(construct.logging_config)
            if isinstance(resolved, dict) and (resolved.get("logGroup") or resolved.get("LogGroup")):
                continue
        # The helper's parent is the provider construct; the log group lives next to the function.
        parent = construct.node.scope
        assert parent is not None
        log_group = logs.LogGroup(
            parent,
            f"{construct.node.id}LogGroup",
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        construct.add_property_override("LoggingConfig.LogGroup", log_group.log_group_name)
        created.append(log_group)
    # Log groups the CDK's helpers create themselves (e.g. AwsApi's, RETAIN and two years by default):
    # the stack's retention where none is set, and deleted with the stack.
    for construct in stack.node.find_all():
        if isinstance(construct, logs.CfnLogGroup):
            if construct.retention_in_days is None:
                construct.retention_in_days = _DAYS_OF[retention]
            construct.apply_removal_policy(RemovalPolicy.DESTROY)
    return created
