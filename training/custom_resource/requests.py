"""SageMaker API request bodies for the built-in XGBoost and Random Cut Forest algorithms."""

from __future__ import annotations

from training import spec as model_spec
from training.custom_resource.budget import TRAINING_MAX_RUNTIME_S
from training.custom_resource.naming import PREFIXES
from training.prepare import FEATURE_FILES, XGBOOST_FILES, is_behavioural

VOLUME_GB = 10


def _s3_channel(name: str, uri: str, content_type: str, *, sharded: bool = False) -> dict:
    return {
        "ChannelName": name,
        "ContentType": content_type,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
            }
        },
    }


def _training_common(
    name: str, *, image: str, role_arn: str, bucket: str, instance_type: str, max_runtime_seconds: int
) -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{PREFIXES.training}"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": VOLUME_GB},
        # SageMaker stops the job at this limit: no job outlives the custom resource (budget.py).
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
    }


def xgboost_hyperparameters(manifest: dict) -> dict[str, str]:
    train = manifest["splits"]["train"]
    return model_spec.xgboost_hyperparameters(
        behavioural=is_behavioural(manifest),
        negatives=train["negatives"],
        positives=train["positives"],
    )


def rcf_hyperparameters(manifest: dict) -> dict[str, str]:
    return model_spec.rcf_hyperparameters(feature_dim=manifest["feature_count"])


def xgboost_training(
    name: str,
    *,
    image: str,
    role_arn: str,
    bucket: str,
    data_prefix: str,
    instance_type: str,
    manifest: dict,
    max_runtime_seconds: int = TRAINING_MAX_RUNTIME_S,
) -> dict:
    request = _training_common(
        name,
        image=image,
        role_arn=role_arn,
        bucket=bucket,
        instance_type=instance_type,
        max_runtime_seconds=max_runtime_seconds,
    )
    base = f"s3://{bucket}/{data_prefix}"
    request["HyperParameters"] = xgboost_hyperparameters(manifest)
    request["InputDataConfig"] = [
        _s3_channel("train", base + XGBOOST_FILES["train"], "text/csv"),
        _s3_channel("validation", base + XGBOOST_FILES["validation"], "text/csv"),
    ]
    return request


def rcf_training(
    name: str,
    *,
    image: str,
    role_arn: str,
    bucket: str,
    data_prefix: str,
    instance_type: str,
    manifest: dict,
    max_runtime_seconds: int = TRAINING_MAX_RUNTIME_S,
) -> dict:
    request = _training_common(
        name,
        image=image,
        role_arn=role_arn,
        bucket=bucket,
        instance_type=instance_type,
        max_runtime_seconds=max_runtime_seconds,
    )
    request["HyperParameters"] = rcf_hyperparameters(manifest)
    # RCF reads unlabelled CSV (`label_size=0`) and its train channel must be ShardedByS3Key.
    request["InputDataConfig"] = [
        _s3_channel(
            "train",
            f"s3://{bucket}/{data_prefix}{FEATURE_FILES['train']}",
            "text/csv;label_size=0",
            sharded=True,
        )
    ]
    return request


def model(name: str, *, image: str, model_data_url: str, role_arn: str) -> dict:
    """A temporary model for the scoring transform (deleted once the thresholds are computed)."""
    return {
        "ModelName": name,
        "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data_url},
        "ExecutionRoleArn": role_arn,
    }


def scoring_transform(
    name: str, *, model_name: str, input_uri: str, output_uri: str, accept: str, instance_type: str
) -> dict:
    """Score a features-only CSV line by line; the output keeps the input's line order."""
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": accept, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
    }
