"""The built-in algorithms' image URIs for whatever region the stack is deployed to."""

from __future__ import annotations

from aws_cdk import Aws, CfnMapping
from constructs import Construct

from stacks.models import images


class BuiltInImages(Construct):
    """A CfnMapping region -> registry account, resolved with Fn::FindInMap over AWS::Region.

    The table is generated from the SageMaker SDK (scripts/generate_sagemaker_images.py), so the
    ~1 GB SDK stays out of `cdk synth` and the stack stays environment-agnostic.
    """

    def __init__(self, scope: Construct, construct_id: str, *, xgboost_version: str) -> None:
        super().__init__(scope, construct_id)
        if xgboost_version not in images.XGBOOST_VERSIONS:
            raise ValueError(f"xgboost_version must be one of {images.XGBOOST_VERSIONS}")
        mapping = CfnMapping(
            self,
            "RegistryAccounts",
            mapping={
                region: {"xgboost": xgboost, "randomcutforest": rcf}
                for region, (xgboost, rcf) in images.REGISTRY_ACCOUNTS.items()
            },
        )
        self.xgboost_image: str = self._uri(
            mapping.find_in_map(Aws.REGION, "xgboost"), images.XGBOOST_REPOSITORY, xgboost_version
        )
        self.rcf_image: str = self._uri(
            mapping.find_in_map(Aws.REGION, "randomcutforest"), images.RCF_REPOSITORY, images.RCF_VERSION
        )

    @staticmethod
    def _uri(account: str, repository: str, tag: str) -> str:
        # URL_SUFFIX is amazonaws.com, or amazonaws.com.cn in the China regions.
        return f"{account}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}/{repository}:{tag}"
