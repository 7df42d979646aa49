"""Names and S3 prefixes shared by the CDK construct (IAM scopes) and the custom-resource runtime."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

# Every SageMaker job and temporary model the custom resource creates starts with this, so the
# Lambda's IAM policy can be scoped to `training-job/fraud-*`, `transform-job/fraud-*`, `model/fraud-*`.
JOB_PREFIX = "fraud-"
MODEL_PREFIX = JOB_PREFIX
MAX_NAME_LENGTH = 63  # SageMaker's limit for job and model names
MAX_ATTEMPTS = 3  # per input: a Failed/Stopped job is retried under a new name at most this often


@dataclass(frozen=True)
class Prefixes:
    prepared: str = "prepared/"
    training: str = "training/"
    transform: str = "transform/"


PREFIXES = Prefixes()


def digest(parts: dict[str, Any]) -> str:
    """A stable hash of a job's inputs (canonical JSON), the identity that decides 'retrain or reuse'."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def base_job_name(kind: str, input_digest: str) -> str:
    """E.g. `fraud-xgboost-<24 hex>`; a retry appends `-r1`, `-r2` (see `candidate_names`)."""
    return f"{JOB_PREFIX}{kind}-{input_digest[:24]}"


def candidate_names(base: str) -> list[str]:
    names = [base] + [f"{base}-r{attempt}" for attempt in range(1, MAX_ATTEMPTS)]
    assert all(len(n) <= MAX_NAME_LENGTH for n in names)
    return names


def transform_job_name(training_job_name: str) -> str:
    """The batch transform that scores a split with the model of `training_job_name`."""
    return f"{training_job_name}-scores"
