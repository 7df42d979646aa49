"""The one error that fails the deployment on purpose."""

from __future__ import annotations


class TrainingFailed(Exception):
    """Raised to fail the deployment; the Provider framework reports the message to CloudFormation."""
