"""The Redis memory alarm (issue 13) on the synthesized template, in both Redis modes: it watches the
exact metric the scorer emits (name, namespace and `service` dimension as the scorer's environment makes
Powertools write them; tests/lambda/test_scorer_redis_memory.py reads that EMF), with the documented
threshold and evaluation, notifying the alarm topic."""

from __future__ import annotations

import json

import pytest

from contracts import metrics as names
from stacks import monitoring
from tests.infra.synth import Synth

# PutMetricAlarm (CloudWatch API reference, `Period`): valid periods are 10, 20, 30 and multiples of 60;
# an alarm whose period is under an hour may not evaluate more than one day (86,400 s) of data.
ONE_DAY_S = 86_400


@pytest.fixture(params=["default_synth", "external_synth"], ids=["self-hosted", "external"])
def any_mode(request) -> Synth:
    return request.getfixturevalue(request.param)


def memory_alarm(synth: Synth) -> dict:
    found = [
        r["Properties"]
        for r in synth.template.find_resources("AWS::CloudWatch::Alarm").values()
        if r["Properties"].get("MetricName") == names.REDIS_MEMORY_USED_PERCENT
    ]
    assert len(found) == 1, f"expected one alarm on {names.REDIS_MEMORY_USED_PERCENT}, found {len(found)}"
    return found[0]


def scorer_environment(synth: Synth) -> dict:
    (function,) = synth.template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"PackageType": "Image"}}
    ).values()
    return function["Properties"]["Environment"]["Variables"]


def test_the_alarm_watches_the_metric_the_scorer_emits(any_mode):
    alarm = memory_alarm(any_mode)
    env = scorer_environment(any_mode)
    # Powertools writes the namespace and the `service` dimension from these two variables
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"] == names.NAMESPACE
    assert alarm["Dimensions"] == [
        {"Name": names.SERVICE_DIMENSION, "Value": env["POWERTOOLS_SERVICE_NAME"]},
    ]
    assert env["POWERTOOLS_SERVICE_NAME"] == names.SERVICE
    # A unit other than the published one (Percent) would leave the alarm without data for good
    assert alarm.get("Unit", "Percent") == "Percent"


def test_the_alarm_fires_at_80_percent_for_2_of_3_five_minute_periods(any_mode):
    alarm = memory_alarm(any_mode)
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Period"] == 300
    assert alarm["Threshold"] == 80 == monitoring.REDIS_MEMORY_ALARM_PERCENT
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (2, 3)
    # a level that exists only while the scorer runs: missing data keeps the state (docs/deploy.md)
    assert alarm["TreatMissingData"] == "ignore"
    # within CloudWatch's limits
    assert alarm["Period"] in (10, 20, 30) or alarm["Period"] % 60 == 0
    assert 1 <= alarm["DatapointsToAlarm"] <= alarm["EvaluationPeriods"]
    assert alarm["Period"] * alarm["EvaluationPeriods"] <= ONE_DAY_S


def test_the_alarm_notifies_the_alarm_topic_both_ways(any_mode):
    (topic_id,) = any_mode.template.find_resources("AWS::SNS::Topic")
    alarm = memory_alarm(any_mode)
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    assert alarm["OKActions"] == [{"Ref": topic_id}]
    assert "maxmemory" in alarm["AlarmDescription"]
    assert "txnRetentionMs" in alarm["AlarmDescription"]


def test_the_dashboard_graphs_the_share_against_the_threshold(default_synth):
    (dashboard,) = default_synth.template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(
        "".join(
            p if isinstance(p, str) else "0" for p in dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
        )
    )
    (widget,) = [
        w
        for w in body["widgets"]
        if any(names.REDIS_MEMORY_USED_PERCENT in m for m in w["properties"].get("metrics", []))
    ]
    (metric,) = widget["properties"]["metrics"]
    assert metric[:4] == [
        names.NAMESPACE,
        names.REDIS_MEMORY_USED_PERCENT,
        names.SERVICE_DIMENSION,
        names.SERVICE,
    ]
    assert metric[4]["stat"] == "Maximum"
    assert (
        widget["properties"]["annotations"]["horizontal"][0]["value"] == monitoring.REDIS_MEMORY_ALARM_PERCENT
    )
    assert widget["properties"]["yAxis"]["left"] == {"min": 0, "max": 100}
