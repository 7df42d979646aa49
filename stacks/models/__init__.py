"""SageMaker models of the fraud pipeline: trained during `cdk deploy`, served behind endpoints."""

from stacks.models.config import ModelsConfig
from stacks.models.trained_models import TrainedModels

__all__ = ["ModelsConfig", "TrainedModels"]
