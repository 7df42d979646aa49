"""Entry points of the training custom resource (CDK Provider framework: on_event + is_complete).

The Lambda's handlers (stacks/models/training.py names them); the work is in the modules beside this:
lifecycle.py (CloudFormation events, attributes), data.py (prepare + upload the data), jobs.py
(SageMaker jobs), results.py (thresholds from the scored splits), storage.py (S3).
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path

import boto3
from botocore.config import Config

from training.custom_resource.data import verify_sha256
from training.custom_resource.errors import TrainingFailed
from training.custom_resource.lifecycle import Trainer

# The Lambda runtime's root logger has its handler; the modules' loggers propagate to it.
logging.getLogger().setLevel(logging.INFO)

# botocore's own bounded retries with backoff for throttling and transient errors.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})

__all__ = ["CLIENT_CONFIG", "Trainer", "TrainingFailed", "is_complete", "on_event", "verify_sha256"]


@functools.cache
def _trainer() -> Trainer:
    return Trainer(
        sagemaker=boto3.client("sagemaker", config=CLIENT_CONFIG),
        s3=boto3.client("s3", config=CLIENT_CONFIG),
        service_quotas=boto3.client("service-quotas", config=CLIENT_CONFIG),
        workdir=Path(tempfile.gettempdir()),
    )


def on_event(event: dict, context: object) -> dict:
    return _trainer().on_event(event)


def is_complete(event: dict, context: object) -> dict:
    return _trainer().is_complete(event)
