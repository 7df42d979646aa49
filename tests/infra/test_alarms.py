"""Alarms, their SNS topic and the operators' dashboard."""

from __future__ import annotations

import fnmatch
import json

from aws_cdk.assertions import Match

from tests.infra.synth import Synth


def alarms(synth: Synth) -> list[dict]:
    return [r["Properties"] for r in synth.template.find_resources("AWS::CloudWatch::Alarm").values()]


def topic_id(synth: Synth) -> str:
    (logical_id,) = synth.template.find_resources("AWS::SNS::Topic")
    return logical_id


def alarm_for(synth: Synth, metric_name: str) -> dict:
    found = [a for a in alarms(synth) if a.get("MetricName") == metric_name]
    assert len(found) == 1, f"expected one alarm on {metric_name}, found {len(found)}"
    return found[0]


def test_every_alarm_notifies_the_topic(default_synth):
    topic = {"Ref": topic_id(default_synth)}
    all_alarms = alarms(default_synth)
    endpoints = default_synth.template.find_resources("AWS::SageMaker::Endpoint")
    assert len(all_alarms) >= 5 + 2 * len(endpoints)  # 5 pipeline alarms + 2 per SageMaker endpoint
    for alarm in all_alarms:
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]
        # Counts and rates: no traffic is not a failure. The Redis memory level keeps its state instead
        # (tests/infra/test_monitoring_redis_memory.py).
        level = alarm.get("MetricName") == "RedisMemoryUsedPercent"
        assert alarm["TreatMissingData"] == ("ignore" if level else "notBreaching")
        assert alarm["AlarmDescription"]


def test_scorer_alarms_watch_the_scorer_function(default_synth):
    (function_id,) = default_synth.template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"PackageType": "Image"}}
    )
    dimensions = [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    iterator_age = alarm_for(default_synth, "IteratorAge")
    assert iterator_age["Dimensions"] == dimensions
    assert iterator_age["Statistic"] == "Maximum"
    assert iterator_age["Threshold"] == 60000
    for metric in ("Errors", "Throttles"):
        alarm = alarm_for(default_synth, metric)
        assert alarm["Dimensions"] == dimensions
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_on_failure_queue_depth_alarm(default_synth):
    (queue_id,) = default_synth.template.find_resources("AWS::SQS::Queue")
    alarm = alarm_for(default_synth, "ApproximateNumberOfMessagesVisible")
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert alarm["Threshold"] == 1


def test_rejected_record_rate_is_metric_math_on_the_handler_metrics(default_synth):
    # GIVEN the one metric-math alarm
    (rate,) = [a for a in alarms(default_synth) if "Metrics" in a]
    by_id = {m["Id"]: m for m in rate["Metrics"]}
    expression = next(m for m in rate["Metrics"] if "Expression" in m)
    # THEN it divides RecordsRejected by all records, on the Powertools namespace and dimension
    assert expression["Expression"] == "IF(scored + rejected > 0, 100 * rejected / (scored + rejected), 0)"
    for metric_id, name in (("scored", "RecordsScored"), ("rejected", "RecordsRejected")):
        stat = by_id[metric_id]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "FraudDetection",
            "MetricName": name,
            "Dimensions": [{"Name": "service", "Value": "fraud-scorer"}],
        }
        assert stat["Stat"] == "Sum"
        assert by_id[metric_id]["ReturnData"] is False
    assert rate["Threshold"] == 5


def test_endpoint_alarms_use_endpoint_and_variant_dimensions(default_synth):
    outputs = default_synth.template.find_outputs("*")
    for output in ("FraudEndpointName", "AnomalyEndpointName"):
        endpoint_name = outputs[output]["Value"]
        dimensions = [
            {"Name": "EndpointName", "Value": endpoint_name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ]
        found = {
            a["MetricName"]: a
            for a in alarms(default_synth)
            if a.get("Namespace") == "AWS/SageMaker" and a["Dimensions"] == dimensions
        }
        assert set(found) == {"Invocation5XXErrors", "ModelLatency"}, output
        assert found["Invocation5XXErrors"]["Threshold"] == 1
        # ModelLatency is in microseconds: 1000 ms by default
        assert found["ModelLatency"]["Threshold"] == 1_000_000
        assert found["ModelLatency"]["ExtendedStatistic"] == "p99"


def test_alarm_topic_is_encrypted_tls_only_and_cloudwatch_can_publish(default_synth):
    template = default_synth.template
    (key_id,) = template.find_resources(
        "AWS::KMS::Key", {"Properties": {"Description": "Encrypts the alarm topic"}}
    )
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic_id(default_synth)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            },
        },
    )
    key = default_synth.template_json["Resources"][key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["PendingWindowInDays"] == 7
    cloudwatch = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_email_subscription_only_when_configured(default_synth, options_synth):
    default_synth.template.resource_count_is("AWS::SNS::Subscription", 0)
    options_synth.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": {"Ref": topic_id(options_synth)}},
    )


def test_operator_dashboard_shows_the_pipeline(default_synth):
    (dashboard,) = default_synth.template.find_resources("AWS::CloudWatch::Dashboard").values()
    name = json.dumps(dashboard["Properties"]["DashboardName"])
    assert "FraudDetection-operations-" in name
    assert "AWS::Region" in name
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("RecordsScored", "RecordsRejected", "IteratorAge", "Throttles", "ModelLatency"):
        assert metric in body


# --- can CloudWatch actually publish? (a small evaluator of the topic policy) ----------------------

ACCOUNT, REGION, PARTITION = "111122223333", "eu-west-1", "aws"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION}


def render(value, refs: dict[str, str]):
    """Resolve the intrinsic functions a policy here uses (Ref, Fn::Join) for one deployment."""
    if isinstance(value, dict) and "Ref" in value:
        return PSEUDO.get(value["Ref"], refs.get(value["Ref"]))
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p, refs) for p in parts)
    if isinstance(value, dict):
        return {k: render(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, refs) for v in value]
    return value


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def conditions_hold(conditions: dict, context: dict[str, str]) -> bool:
    for operator, pairs in conditions.items():
        for key, expected in pairs.items():
            actual = context.get(key)
            if operator == "StringEquals" and actual not in as_list(expected):
                return False
            if operator == "ArnLike" and not any(
                fnmatch.fnmatchcase(actual or "", e) for e in as_list(expected)
            ):
                return False
            if operator == "Bool" and str(actual).lower() not in [str(e).lower() for e in as_list(expected)]:
                return False
    return True


def publish_allowed(synth: Synth, *, service: str, context: dict[str, str]) -> bool:
    """IAM's order for a resource policy: an explicit deny wins, else an allow must match."""
    topic_arn = f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:alarms"
    refs = {topic_id(synth): topic_arn}
    (policy,) = synth.template.find_resources("AWS::SNS::TopicPolicy").values()
    allowed = False
    for statement in render(policy["Properties"]["PolicyDocument"]["Statement"], refs):
        principal = statement["Principal"]
        matches_principal = principal in ("*", {"AWS": "*"}) or (
            isinstance(principal, dict) and service in as_list(principal.get("Service", []))
        )
        matches_action = any(fnmatch.fnmatchcase("sns:Publish", a) for a in as_list(statement["Action"]))
        if not (matches_principal and matches_action and topic_arn in as_list(statement["Resource"])):
            continue
        if conditions_hold(statement.get("Condition", {}), context):
            if statement["Effect"] == "Deny":
                return False
            allowed = True
    return allowed


def test_this_accounts_alarms_may_publish_to_the_topic_over_tls(default_synth):
    own_alarm = {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:FraudDetection-Errors-1A2B",
        "aws:SecureTransport": "true",
    }
    assert publish_allowed(default_synth, service="cloudwatch.amazonaws.com", context=own_alarm)
    # ... but not another account's alarm (confused deputy), not without TLS, not another service
    other_account = {**own_alarm, "aws:SourceAccount": "444455556666"}
    other_account["aws:SourceArn"] = other_account["aws:SourceArn"].replace(ACCOUNT, "444455556666")
    assert not publish_allowed(default_synth, service="cloudwatch.amazonaws.com", context=other_account)
    plain = {**own_alarm, "aws:SecureTransport": "false"}
    assert not publish_allowed(default_synth, service="cloudwatch.amazonaws.com", context=plain)
    assert not publish_allowed(default_synth, service="events.amazonaws.com", context=own_alarm)


def test_the_cloudwatch_statement_is_scoped_by_source_account_and_arn(default_synth):
    (policy,) = default_synth.template.find_resources("AWS::SNS::TopicPolicy").values()
    (statement,) = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sns:Publish"
    assert statement["Resource"] == {"Ref": topic_id(default_synth)}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    arn = statement["Condition"]["ArnLike"]["aws:SourceArn"]
    assert render(arn, {}) == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"
