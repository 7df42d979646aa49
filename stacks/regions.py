"""The AWS Regions this app supports, in one place, and the per-Region facts its template needs.

Supported = the commercial (`aws` partition) Regions where SageMaker publishes the built-in XGBoost
and Random Cut Forest images (`stacks/models/images.py`, generated from the SageMaker SDK). China,
GovCloud and the ISO partitions are left out: their ARNs, service principals and endpoints differ
and nothing here is tested against them.

The template is environment-agnostic (one template for any account and Region), so a Region can only
be checked in two places:
- at synth, when the stack was given an explicit Region (`env=`): `require_supported` raises a
  `ConfigError` before anything is built;
- at deploy, always: `add_region_rule` adds a CloudFormation rule (`Rules:` section) whose assertion
  `Fn::Contains [SUPPORTED_REGIONS, AWS::Region]` CloudFormation evaluates when it creates the stack or
  a change set, before any resource is touched, and fails with the message below.
  (A `Conditions:` entry could only skip resources, and a parameter would be a value the user must
  type correctly; a rule rejects the whole template with one clear sentence.)

Every `Fn::FindInMap` keyed by `AWS::Region` must resolve for each of `SUPPORTED_REGIONS`;
tests/infra/test_regions.py resolves all of them in the synthesized template.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnRule, CfnRuleAssertion, Fn, Stack, Token

from stacks.context import ConfigError
from stacks.models.images import REGISTRY_ACCOUNTS

_OTHER_PARTITIONS = ("cn-", "us-gov-", "us-iso")

SUPPORTED_REGIONS: tuple[str, ...] = tuple(
    sorted(region for region in REGISTRY_ACCOUNTS if not region.startswith(_OTHER_PARTITIONS))
)

# Application Load Balancer access logs: in Regions available before August 2022 the log writer is
# a regional Elastic Load Balancing account; in newer Regions it is the service principal
# `logdelivery.elasticloadbalancing.amazonaws.com` and there is no account
# (docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html, step 2).
ELB_LOG_DELIVERY_PRINCIPAL = "logdelivery.elasticloadbalancing.amazonaws.com"
ELB_ACCOUNTS: dict[str, str] = {
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887",
    "ap-northeast-3": "383597477331",
    "ap-south-1": "718504428378",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-southeast-3": "589379963580",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-north-1": "897822967062",
    "eu-south-1": "635631232127",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
}
# The value a Region without an ELB account maps to (a CloudFormation condition tests for it).
NO_ELB_ACCOUNT = "none"

REGION_RULE_MESSAGE = (
    "This template supports only these AWS Regions: "
    + ", ".join(SUPPORTED_REGIONS)
    + " (stacks/regions.py, docs/deploy.md 'Supported Regions')."
)


def elb_account_by_region() -> dict[str, str]:
    """Every supported Region -> its ELB log-writer account, or NO_ELB_ACCOUNT (service principal)."""
    return {region: ELB_ACCOUNTS.get(region, NO_ELB_ACCOUNT) for region in SUPPORTED_REGIONS}


def require_supported(region: str) -> None:
    """Refuse a concrete, unsupported Region at synth; an unresolved (deploy-time) Region passes."""
    if Token.is_unresolved(region):
        return
    if region not in SUPPORTED_REGIONS:
        raise ConfigError("region", region, "one of " + ", ".join(SUPPORTED_REGIONS))


def add_region_rule(stack: Stack) -> CfnRule:
    """Make CloudFormation refuse the template in any other Region, before creating anything."""
    require_supported(stack.region)
    return CfnRule(
        stack,
        "SupportedRegion",
        assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_contains(list(SUPPORTED_REGIONS), Aws.REGION),
                assert_description=REGION_RULE_MESSAGE,
            )
        ],
    )
