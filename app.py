#!/usr/bin/env python3
"""The CDK app: one top-level stack, configured from cdk.json context (`-c key=value` overrides)."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.config import AppConfig, ContextReader
from stacks.fraud_detection_stack import FraudDetectionStack


def build_app(app: cdk.App) -> FraudDetectionStack:
    """Add the stack and the cdk-nag checks to `app`; shared by `cdk synth` and the tests."""
    config = AppConfig.from_context(ContextReader(app.node.try_get_context))
    # Environment-agnostic on purpose: no env=, so one template deploys to any account and region.
    stack = FraudDetectionStack(app, config.stack_name, config=config)
    # Any unacknowledged AwsSolutions finding fails synthesis.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    import sys

    from stacks.context import ConfigError

    application = cdk.App()
    try:
        build_app(application)
    except ConfigError as exc:
        # A bad context value is the user's to fix: one line on stderr, exit 1, no traceback.
        sys.exit(f"cdk app: error: {exc}; fix the -c option or cdk.json (every key: docs/deploy.md)")
    application.synth()
