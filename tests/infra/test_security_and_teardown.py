"""cdk-nag, cfn-lint, least-privilege IAM, no secret in any template, and a clean `cdk destroy`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from tests.infra.synth import REPO_ROOT, Synth
from tests.infra.synth import synth as synth_with

pytestmark = pytest.mark.infra

SYNTHS = ["default_synth", "external_synth", "options_synth"]
# Types that hold data or cost money while they exist: `cdk destroy` must delete them.
STATEFUL_TYPES = {
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
    "AWS::SecretsManager::Secret",
    "AWS::SQS::Queue",
    "AWS::Kinesis::Stream",
    "AWS::S3::Bucket",
}


@pytest.fixture(params=SYNTHS)
def any_synth(request) -> Synth:
    return request.getfixturevalue(request.param)


def policies_of_role(synth: Synth, role_id: str) -> list[dict]:
    statements = []
    for policy in synth.template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def scorer_role_id(synth: Synth) -> str:
    (function,) = synth.template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"PackageType": "Image"}}
    ).values()
    return function["Properties"]["Role"]["Fn::GetAtt"][0]


# --- shape -------------------------------------------------------------------------------------------


def test_exactly_one_environment_agnostic_stack(any_synth):
    stacks = any_synth.assembly.stacks
    assert len(stacks) == 1
    assert stacks[0].environment.account == "unknown-account"
    assert stacks[0].environment.region == "unknown-region"


def test_stack_name_from_context(default_synth, options_synth):
    assert default_synth.assembly.stacks[0].stack_name == "FraudDetection"
    assert options_synth.assembly.stacks[0].stack_name == "FraudDemo"


def test_outputs_are_the_documented_ones(any_synth):
    outputs = set(any_synth.template.find_outputs("*"))
    expected = {
        "StreamName",
        "StreamArn",
        "RedisSecretArn",
        "RedisEndpoint",
        "FraudEndpointName",
        "AnomalyEndpointName",
        "FraudThreshold",
        "AnomalyThreshold",
        "AlarmTopicArn",
        "OnFailureQueueUrl",
    }
    assert expected <= outputs
    # Anything else must be documented in docs/architecture.md's output table.
    documented = (REPO_ROOT / "docs" / "architecture.md").read_text()
    for name in outputs - expected:
        assert f"`{name}`" in documented, name


# --- cdk-nag -----------------------------------------------------------------------------------------


def test_cdk_nag_reports_nothing_unacknowledged(any_synth):
    # The fixture's synthesis would have raised on a finding; the report confirms it.
    report = json.loads((any_synth.outdir / "validation-report.json").read_text())
    assert [r["pluginName"] for r in report["pluginReports"] if r["conclusion"] != "success"] == []
    nag = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert [v for r in nag for v in r.get("violations", [])] == []


def test_cdk_nag_fails_synthesis_on_a_finding(tmp_path):
    # GIVEN a stack with a queue that is neither encrypted nor TLS-only, checked like ours
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bad")
    sqs.Queue(stack, "Queue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # WHEN / THEN synthesis fails and names the rule
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS4" in report


def test_acknowledgements_are_narrow_and_explained(default_synth, external_synth):
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    for synth in (default_synth, external_synth):
        for construct in [synth.stack, *synth.stack.node.find_all()]:
            for entry in construct.node.metadata:
                if entry.type != key:
                    continue
                for rule_id, reason in entry.data.items():
                    if not rule_id.startswith("AwsSolutions"):
                        continue  # the CDK's own acknowledgements
                    # on the construct concerned, never the whole stack
                    assert construct is not synth.stack, rule_id
                    assert len(reason) >= 40, (construct.node.path, rule_id, reason)
                    if rule_id.startswith(("AwsSolutions-IAM4", "AwsSolutions-IAM5")):
                        assert "[" in rule_id, f"IAM acknowledgement without a finding: {rule_id}"


# --- cfn-lint ----------------------------------------------------------------------------------------


def test_cfn_lint_passes_on_every_synthesized_template(default_synth, external_synth, options_synth):
    files = [str(f) for s in (default_synth, external_synth, options_synth) for f in s.template_files()]
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        # W3005 (DependsOn next to a GetAtt) is how the CDK writes some constructs: not ours to fix.
        [str(cfn_lint), "--format", "parseable", "--ignore-checks", "W3005", "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- IAM -----------------------------------------------------------------------------------------------


def test_scorer_permissions_are_scoped_to_this_stacks_resources(default_synth):
    statements = policies_of_role(default_synth, scorer_role_id(default_synth))
    by_action = {}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            by_action.setdefault(action, []).append(statement["Resource"])
    secret_id = default_synth.template.find_outputs("RedisSecretArn")["RedisSecretArn"]["Value"]["Ref"]
    (stream_id,) = default_synth.template.find_resources("AWS::Kinesis::Stream")
    (queue_id,) = default_synth.template.find_resources("AWS::SQS::Queue")
    endpoint_ids = set(default_synth.template.find_resources("AWS::SageMaker::Endpoint"))

    assert by_action["secretsmanager:GetSecretValue"] == [{"Ref": secret_id}]
    assert by_action["kinesis:GetRecords"] == [{"Fn::GetAtt": [stream_id, "Arn"]}]
    assert by_action["sqs:SendMessage"] == [{"Fn::GetAtt": [queue_id, "Arn"]}]
    # InvokeEndpoint on exactly this stack's two endpoints, by name
    (invoke,) = by_action["sagemaker:InvokeEndpoint"]
    invoke = invoke if isinstance(invoke, list) else [invoke]
    endpoint_names = sorted(
        default_synth.template_json["Resources"][i]["Properties"]["EndpointName"].lower()
        for i in endpoint_ids
    )
    assert endpoint_names  # one per endpoint (the models may share one multi-container endpoint)
    rendered = sorted(json.dumps(arn) for arn in invoke)
    assert len(rendered) == len(endpoint_names), f"expected one ARN per endpoint, got {rendered}"
    for name, arn in zip(endpoint_names, rendered, strict=True):
        assert f':endpoint/{name}"' in arn, (name, arn)
    # The only unscoped resource is X-Ray's, which has no resource-level permissions.
    unscoped = {a for a, resources in by_action.items() if "*" in resources}
    assert unscoped == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# --- secrets -------------------------------------------------------------------------------------------


def test_no_secret_value_in_any_template(any_synth):
    for path in any_synth.template_files():
        text = path.read_text()
        # A dynamic reference would render the secret into the resource's properties.
        assert "{{resolve:secretsmanager" not in text, path
        template = json.loads(text)
        for logical_id, resource in template.get("Resources", {}).items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::SecretsManager::Secret":
                assert "SecretString" not in properties, logical_id
                assert "GenerateSecretString" in properties, logical_id
            if resource["Type"] == "AWS::Lambda::Function":
                variables = properties.get("Environment", {}).get("Variables", {})
                assert not [n for n in variables if "PASSWORD" in n.upper()], logical_id
            if resource["Type"] == "AWS::ECS::TaskDefinition":
                for container in properties["ContainerDefinitions"]:
                    names = [e["Name"] for e in container.get("Environment", [])]
                    assert not [n for n in names if "PASSWORD" in n.upper()], logical_id


# --- teardown -----------------------------------------------------------------------------------------


def test_cdk_destroy_leaves_nothing_behind(any_synth):
    resources = any_synth.template_json["Resources"]
    for logical_id, resource in resources.items():
        assert resource.get("DeletionPolicy", "Delete") == "Delete", logical_id
        assert resource.get("UpdateReplacePolicy", "Delete") == "Delete", logical_id
        if resource["Type"] in STATEFUL_TYPES:
            assert resource.get("DeletionPolicy") == "Delete", logical_id
        if resource["Type"] == "AWS::KMS::Key":
            # Deleted keys stay billed for their pending window: keep it at the 7-day minimum.
            assert resource["Properties"].get("PendingWindowInDays") == 7, logical_id
    # Buckets are emptied by the CDK's auto-delete custom resource before they are deleted.
    auto_deleted = {
        json.dumps(r["Properties"]["BucketName"])
        for r in resources.values()
        if r["Type"] == "Custom::S3AutoDeleteObjects"
    }
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::S3::Bucket":
            assert json.dumps({"Ref": logical_id}) in auto_deleted, logical_id


def test_every_ecs_cluster_owns_its_container_insights_log_group(any_synth):
    # Left to ECS, Container Insights creates this log group itself: no retention, and it outlives
    # `cdk destroy`. Every cluster in every Redis mode must have the stack's own, created before the
    # cluster and deleted after it (so a cluster still reporting cannot recreate it, unowned).
    resources = any_synth.template_json["Resources"]
    clusters = [logical_id for logical_id, r in resources.items() if r["Type"] == "AWS::ECS::Cluster"]
    assert len(clusters) == 1  # Grafana and the self-hosted Redis share one
    cluster = resources[clusters[0]]
    cluster_name = cluster["Properties"]["ClusterName"]
    assert cluster_name == {"Fn::Join": ["", [{"Ref": "AWS::StackName"}, "-services"]]}
    expected_group = {
        "Fn::Join": ["", ["/aws/ecs/containerinsights/", {"Ref": "AWS::StackName"}, "-services/performance"]]
    }
    insights_groups = [
        logical_id
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::Logs::LogGroup" and r["Properties"].get("LogGroupName") == expected_group
    ]
    assert len(insights_groups) == 1
    (group_id,) = insights_groups
    assert "RetentionInDays" in resources[group_id]["Properties"]
    # CloudFormation deletes in reverse dependency order: the cluster goes first.
    assert group_id in cluster.get("DependsOn", [])
    assert clusters[0] not in json.dumps(resources[group_id])


def test_every_log_group_is_deleted_with_the_stack_and_has_a_retention(any_synth):
    groups = any_synth.template.find_resources("AWS::Logs::LogGroup")
    assert groups
    for logical_id, group in groups.items():
        assert group.get("DeletionPolicy") == "Delete", logical_id
        assert group.get("UpdateReplacePolicy") == "Delete", logical_id
        assert group["Properties"].get("RetentionInDays"), logical_id


def test_every_log_group_keeps_its_logs_for_log_retention_days():
    # GIVEN `-c logRetentionDays=7` (30 by default: a fixed 30 anywhere would pass unnoticed there)
    s = synth_with({"logRetentionDays": "7"})
    groups = s.template.find_resources("AWS::Logs::LogGroup")
    # THEN every log group the stack creates keeps 7 days, the training custom resource's included
    assert any("Training" in logical_id for logical_id in groups)
    assert {i: g["Properties"].get("RetentionInDays") for i, g in groups.items()} == dict.fromkeys(groups, 7)


def test_every_lambda_logs_to_a_log_group_of_the_stack(any_synth):
    # A function without one writes to /aws/lambda/<name>, which Lambda creates on first use with
    # no retention and which `cdk destroy` leaves behind; the CDK's helper functions are such.
    resources = any_synth.template_json["Resources"]
    groups = {i: r for i, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    functions = {i: r for i, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert len(functions) >= 3  # the scorer, the training driver, the CDK's helpers
    for logical_id, function in functions.items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        default_name = {"Fn::Join": ["", ["/aws/lambda/", {"Ref": logical_id}]]}
        named_after_it = [g for g in groups.values() if g["Properties"].get("LogGroupName") == default_name]
        if target is not None:
            # A Ref to a log group of this template (Ref of a log group is its name)
            assert target.get("Ref") in groups, (logical_id, target)
        else:
            assert named_after_it, f"{logical_id} logs to a log group the stack does not own"


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("npx") is None or not (REPO_ROOT / "node_modules" / "aws-cdk").is_dir(),
    reason="needs the pinned CDK CLI (make setup)",
)
def test_cdk_cli_synth_runs_the_app_from_cdk_json(tmp_path):
    # GIVEN the environment `make synth` sets up: the venv's python3 first on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    # WHEN
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # THEN
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "FraudDetection.template.json").is_file()


# --- docs/security.md -------------------------------------------------------------------------------


def test_every_test_docs_security_cites_exists():
    # Each protection names the test that proves it; a renamed or deleted test must not leave a claim.
    text = (REPO_ROOT / "docs" / "security.md").read_text()
    test_sources = "\n".join(p.read_text() for p in (REPO_ROOT / "tests").rglob("test_*.py"))
    cited = set(re.findall(r"\b(test_[a-z0-9_]+)\b(?!\.py)", text))
    assert len(cited) >= 15
    missing = [name for name in sorted(cited) if f"def {name}(" not in test_sources]
    assert missing == []
    for path in set(re.findall(r"`(tests/[a-z0-9_/]+\.py)", text)):
        assert (REPO_ROOT / path).is_file(), path
