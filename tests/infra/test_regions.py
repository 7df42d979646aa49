"""Supported Regions: one list, every Fn::FindInMap resolves in each, others refused at synth and deploy."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.region_info import RegionInfo

from stacks.config import AppConfig, ContextReader
from stacks.context import ConfigError
from stacks.fraud_detection_stack import FraudDetectionStack
from stacks.models.images import REGISTRY_ACCOUNTS
from stacks.regions import (
    ELB_LOG_DELIVERY_PRINCIPAL,
    NO_ELB_ACCOUNT,
    REGION_RULE_MESSAGE,
    SUPPORTED_REGIONS,
    elb_account_by_region,
)
from tests.infra.synth import REPO_ROOT, Synth, cdk_json_context

pytestmark = pytest.mark.infra

SYNTHS = ["default_synth", "external_synth", "options_synth"]
# The Regions the review found missing from the ELB account map (newer than August 2022).
NEWER_REGIONS = (
    "il-central-1",
    "me-central-1",
    "ca-west-1",
    "eu-central-2",
    "eu-south-2",
    "ap-south-2",
    "ap-southeast-4",
)


@pytest.fixture(params=SYNTHS)
def any_synth(request) -> Synth:
    return request.getfixturevalue(request.param)


def find_in_maps(node: Any, path: str = "") -> list[tuple[str, list]]:
    """Every Fn::FindInMap in a template fragment, with where it is."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::FindInMap":
                found.append((path, value))
            found += find_in_maps(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += find_in_maps(value, f"{path}[{index}]")
    return found


def resolve_key(key: Any, region: str) -> str:
    if key == {"Ref": "AWS::Region"}:
        return region
    assert isinstance(key, str), f"a FindInMap key this test cannot resolve: {key}"
    return key


def test_supported_regions_are_the_commercial_sagemaker_image_regions():
    assert set(NEWER_REGIONS) <= set(SUPPORTED_REGIONS)
    assert not [r for r in SUPPORTED_REGIONS if r.startswith(("cn-", "us-gov-", "us-iso"))]
    assert set(SUPPORTED_REGIONS) <= set(REGISTRY_ACCOUNTS)
    assert list(SUPPORTED_REGIONS) == sorted(set(SUPPORTED_REGIONS))


def test_every_find_in_map_resolves_in_every_supported_region(any_synth):
    # GIVEN every mapping lookup in every template of the assembly
    for path in any_synth.template_files():
        template = json.loads(path.read_text())
        mappings = template.get("Mappings", {})
        lookups = find_in_maps(template)
        assert lookups or path.name != any_synth.stack.template_file
        # WHEN CloudFormation resolves each in each supported Region, THEN it finds a value
        for region in SUPPORTED_REGIONS:
            for where, (name, top, second) in lookups:
                table = mappings.get(name)
                assert table is not None, f"{where}: no mapping {name}"
                top_key = resolve_key(top, region)
                second_key = resolve_key(second, region)
                missing = f"{where}: {name}[{top_key}][{second_key}] missing"
                assert second_key in table.get(top_key, {}), missing


def test_the_elb_log_writer_map_agrees_with_the_cdk_where_the_cdk_knows_the_account():
    # The CDK's region facts are an independent copy of the ELB docs' account table.
    writers = elb_account_by_region()
    assert set(writers) == set(SUPPORTED_REGIONS)
    for region, account in writers.items():
        known = RegionInfo.get(region).elbv2_account
        if known is not None:
            assert account == known, region
        else:
            assert account == NO_ELB_ACCOUNT, region
    for region in NEWER_REGIONS:
        assert writers[region] == NO_ELB_ACCOUNT  # these use the log-delivery service principal


def test_access_log_bucket_admits_the_service_principal_and_the_mapped_account(default_synth):
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in default_synth.template.find_resources("AWS::S3::BucketPolicy").values()
        if "elasticloadbalancing" in json.dumps(p) or "ElbLogWriter" in json.dumps(p)
    ]
    principals = json.dumps([s.get("Principal") for s in policy])
    assert ELB_LOG_DELIVERY_PRINCIPAL in principals
    assert "ElbLogWriter" in principals


def evaluate_rule(expression: Any, region: str) -> bool:
    """The CloudFormation rule functions this template uses, evaluated for `region`."""
    if isinstance(expression, dict) and "Fn::Contains" in expression:
        values, needle = expression["Fn::Contains"]
        return resolve_key(needle, region) in values
    raise AssertionError(f"unexpected rule expression {expression}")


def test_cloudformation_refuses_the_template_outside_the_supported_regions(any_synth):
    # GIVEN the template's rule (checked by CloudFormation before it creates anything)
    rule = any_synth.template_json["Rules"]["SupportedRegion"]
    (assertion,) = rule["Assertions"]
    assert assertion["AssertDescription"] == REGION_RULE_MESSAGE
    # THEN it holds in every supported Region and in no other
    for region in SUPPORTED_REGIONS:
        assert evaluate_rule(assertion["Assert"], region), region
    for region in ("cn-north-1", "us-gov-west-1", "mx-central-1", "ap-east-2"):
        assert not evaluate_rule(assertion["Assert"], region), region


def config() -> AppConfig:
    return AppConfig.from_context(ContextReader(cdk_json_context().get))


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1", "mx-central-1"])
def test_an_explicit_unsupported_region_fails_synthesis_naming_the_supported_ones(region):
    app = cdk.App(context=cdk_json_context())
    with pytest.raises(ConfigError) as error:
        FraudDetectionStack(
            app, "Fraud", config=config(), env=cdk.Environment(account="123456789012", region=region)
        )
    assert error.value.key == "region"
    assert "il-central-1" in str(error.value)


def test_an_explicit_newer_region_synthesizes_with_the_log_delivery_principal(tmp_path):
    # GIVEN a stack pinned to a Region the CDK's ELB map lacks (the app itself is environment-agnostic,
    # and its cdk-nag acknowledgements name the deploy-time ARNs, so no cdk-nag here)
    app = cdk.App(context=cdk_json_context(), outdir=str(tmp_path))
    stack = FraudDetectionStack(
        app, "Fraud", config=config(), env=cdk.Environment(account="123456789012", region="il-central-1")
    )
    # WHEN
    app.synth()
    # THEN the access-log bucket admits the service principal, and no lookup is left to fail
    template = json.loads((tmp_path / stack.template_file).read_text())
    assert ELB_LOG_DELIVERY_PRINCIPAL in json.dumps(template["Resources"])
    for _, (name, top, _second) in find_in_maps(template):
        assert resolve_key(top, "il-central-1") in template["Mappings"][name]


def test_the_deploy_guide_lists_exactly_the_supported_regions():
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    section = text.split("### Supported Regions", 1)[1].split("China, GovCloud", 1)[0]
    listed = re.findall(r"\b([a-z]{2}-[a-z]+-\d)\b", section)
    assert listed == list(SUPPORTED_REGIONS)
