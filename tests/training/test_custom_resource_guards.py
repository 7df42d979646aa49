"""The training custom resource's guards, judged by what exists afterwards (moto's S3 and SageMaker, see
test_custom_resource_lifecycle.py): quotas checked before anything starts, no orphaned job when the
second training job cannot start, the pinned SHA-256 of a fetched source, and the default simulated
data with its feature-spec version.

Service Quotas' ListServiceQuotas is not in moto: botocore's Stubber answers it, on a real client, so the
answers have the service's exact shape (the point of those tests); they assert on the outcome.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile

import boto3
import pytest
from botocore.stub import Stubber

from contracts import features as feature_spec
from fraud_data.schema import COLUMNS
from fraud_data.synthetic import generate_rows
from tests.training.test_custom_resource_lifecycle import Deployment, deployment  # noqa: F401 - fixture
from training import prepare
from training.custom_resource import budget
from training.custom_resource.data import verify_sha256
from training.custom_resource.errors import TrainingFailed

QUOTAS = [
    {"InstanceType": "ml.m5.xlarge", "Usage": "training job", "Count": "2"},
    {"InstanceType": "ml.m5.large", "Usage": "transform job", "Count": "2"},
    {"InstanceType": "ml.m5.large", "Usage": "endpoint", "Count": "1"},
]


def quota(name: str, value: float, code: str) -> dict:
    """One entry of ListServiceQuotas / ListAWSDefaultServiceQuotas, in the service's shape."""
    return {
        "ServiceCode": "sagemaker",
        "ServiceName": "Amazon SageMaker",
        "QuotaArn": f"arn:aws:servicequotas:us-east-1:123456789012:sagemaker/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }


def test_a_quota_of_zero_fails_the_deployment_before_anything_starts(deployment: Deployment):  # noqa: F811
    # GIVEN a new account: no ml.m5.xlarge for training jobs (applied value 0); the transform quota has
    # no applied value, only AWS's default of 2; the endpoint quota is fine
    client = boto3.client("service-quotas", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "list_service_quotas",
            {
                "Quotas": [
                    quota("ml.m5.xlarge for training job usage", 0.0, "L-TRAIN"),
                    quota("ml.m5.large for endpoint usage", 4.0, "L-ENDPT"),
                    quota("ml.m5.large for notebook instance usage", 0.0, "L-NOTE"),
                ]
            },
        )
        stubber.add_response(
            "list_aws_default_service_quotas",
            {"Quotas": [quota("ml.m5.large for transform job usage", 2.0, "L-XFORM")]},
        )
        deployment.trainer.service_quotas = client

        # WHEN CloudFormation creates the resource
        with pytest.raises(TrainingFailed) as failure:
            deployment.create(Quotas=QUOTAS)

    # THEN the message names the quota, its code, what is needed and how to raise it
    message = str(failure.value)
    assert (
        "'ml.m5.xlarge for training job usage' (quota code L-TRAIN) is 0, this deployment needs 2" in message
    )
    assert (
        "request-service-quota-increase --service-code sagemaker --quota-code L-TRAIN --desired-value 2"
        in (message)
    )
    assert "transform job" not in message  # that quota (AWS's default) and the endpoint one suffice
    assert "endpoint usage" not in message
    # AND nothing was prepared or started
    assert deployment.keys() == set()
    assert deployment.world.training_jobs == {}


def test_a_trainer_without_a_quota_client_refuses_quotas_to_check(deployment: Deployment):  # noqa: F811
    with pytest.raises(ValueError, match="no Service Quotas client"):
        deployment.create(Quotas=QUOTAS)
    assert deployment.world.training_jobs == {}


def test_if_the_second_training_job_cannot_start_the_first_is_stopped(deployment: Deployment):  # noqa: F811
    # GIVEN an account that may run one ml.m5.xlarge training instance at a time
    deployment.world.training_instance_quota["ml.m5.xlarge"] = 1

    # WHEN CloudFormation creates the resource (two training jobs on that type)
    with pytest.raises(TrainingFailed) as failure:
        deployment.create()

    # THEN the job that did start is stopped (no job runs without its resource) and the message says so,
    # with SageMaker's own error
    (first,) = deployment.world.training_jobs
    assert deployment.world.training_status() == {first: "Stopping"}
    message = str(failure.value)
    assert "could not start the anomaly model's training" in message
    assert "ResourceLimitExceeded" in message
    assert "'ml.m5.xlarge for training job usage' is 1 Instances" in message
    assert f"stopped {first} so that no job runs without its resource" in message


def test_when_the_first_training_job_cannot_start_nothing_is_left_running(deployment: Deployment):  # noqa: F811
    deployment.world.training_instance_quota["ml.m5.xlarge"] = 0
    with pytest.raises(TrainingFailed, match="could not start the fraud model's training") as failure:
        deployment.create()
    assert "stopped" not in str(failure.value)
    assert deployment.world.training_jobs == {}


def _creditcard_zip() -> bytes:
    lines = [",".join(COLUMNS)] + [
        ",".join(map(repr, r)) for r in generate_rows(3_000, seed=4, fraud_rate=0.02)
    ]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("creditcard.csv", "\n".join(lines) + "\n")
    return archive.getvalue()


def _source(deployment: Deployment, body: bytes) -> str:  # noqa: F811
    bucket = f"datasets-{uuid.uuid4().hex[:12]}"
    deployment.s3.create_bucket(Bucket=bucket)
    deployment.s3.put_object(Bucket=bucket, Key="fraud/creditcardfraud.zip", Body=body)
    return f"s3://{bucket}/fraud/creditcardfraud.zip"


def test_a_source_that_differs_from_its_pinned_sha256_fails_the_deployment(deployment: Deployment):  # noqa: F811
    # GIVEN the third-party zip in S3, but a pin made for another file
    body = _creditcard_zip()
    pinned = hashlib.sha256(b"the file we checked").hexdigest()

    # WHEN the resource is created THEN it refuses, naming both hashes and how to re-pin
    with pytest.raises(TrainingFailed) as failure:
        deployment.create(Source=_source(deployment, body), SourceSha256=pinned)
    message = str(failure.value)
    assert hashlib.sha256(body).hexdigest() in message
    assert pinned in message
    assert "trainingDataSha256" in message
    # AND nothing was prepared or trained from it
    assert deployment.keys() == set()
    assert deployment.world.training_jobs == {}


def test_the_pinned_file_is_trained_on(deployment: Deployment):  # noqa: F811
    body = _creditcard_zip()
    pin = hashlib.sha256(body).hexdigest().upper()  # case does not matter
    result = deployment.create(Source=_source(deployment, body), SourceSha256=pin)
    manifest = json.loads(deployment.read(result["Data"]["DataPrefix"] + prepare.MANIFEST))
    assert manifest["split"] == "time-ordered"
    assert result["Data"]["FeatureSpecVersion"] == "creditcard-30"
    assert len(deployment.world.training_jobs) == 2


def test_verify_sha256_of_a_local_file(tmp_path):
    path = tmp_path / "creditcard.csv"
    path.write_bytes(b"Time,V1\n0,1\n")
    expected = hashlib.sha256(b"Time,V1\n0,1\n").hexdigest()
    assert verify_sha256(path, "creditcard.csv", expected) == expected
    assert verify_sha256(path, "creditcard.csv", None) == expected  # not pinned: only logged
    with pytest.raises(TrainingFailed, match="refusing to train on a different file"):
        verify_sha256(path, "creditcard.csv", "0" * 64)


SMALL_SIMULATION = {"Customers": "300", "Terminals": "600", "Days": "75", "Start": "2018-04-01", "Seed": "7"}


def test_the_default_simulated_data_trains_on_the_spec_features_and_reports_its_version(deployment):  # noqa: F811
    # GIVEN the default source at a reduced size WHEN the resource is created
    result = deployment.create(Source="simulated", Simulation=SMALL_SIMULATION)

    # THEN the prepared rows are the spec's model features, after the warm-up, in time order
    data = result["Data"]
    manifest = json.loads(deployment.read(data["DataPrefix"] + prepare.MANIFEST))
    assert manifest["feature_names"] == list(feature_spec.MODEL_FEATURES)
    assert manifest["feature_spec_version"] == feature_spec.SPEC_VERSION
    assert manifest["split"] == "time-ordered"
    assert manifest["warm_up_rows_left_out"] > 0
    assert manifest["simulation"]["seed"] == 7
    first = deployment.read(data["DataPrefix"] + prepare.XGBOOST_FILES["train"]).splitlines()[0].split(",")
    assert len(first) == 1 + len(feature_spec.MODEL_FEATURES)  # label, then the features
    # AND RCF's feature_dim is the spec's width; the version is an attribute for the scorer
    xgb = deployment.world.training_jobs[data["FraudTrainingJob"]]
    rcf = deployment.world.training_jobs[data["AnomalyTrainingJob"]]
    assert rcf.hyper_parameters["feature_dim"] == str(len(feature_spec.MODEL_FEATURES))
    assert xgb.stopping_condition["MaxRuntimeInSeconds"] == budget.TRAINING_MAX_RUNTIME_S
    assert data["FeatureSpecVersion"] == feature_spec.SPEC_VERSION


def test_the_same_seed_prepares_the_same_data_so_the_jobs_are_reused(deployment):  # noqa: F811
    tiny = {**SMALL_SIMULATION, "Customers": "100", "Terminals": "200", "Days": "50"}
    first = deployment.create(Source="simulated", Simulation=tiny)
    again = deployment.create(Source="simulated", Simulation=tiny)
    other = deployment.create(Source="simulated", Simulation={**tiny, "Seed": "8"})
    assert again == first
    assert other["Data"]["DataSha256"] != first["Data"]["DataSha256"]
    assert len(deployment.world.training_jobs) == 4
