"""The training custom resource end to end through its CloudFormation entry points (on_event, is_complete),
against moto's server for S3 and SageMaker. The tests look at what exists afterwards — the prepared objects,
the jobs and their inputs, the temporary models, the attributes — never at the order of API calls.

moto's SageMaker keeps jobs and models but does no work: its jobs are Completed the moment they are
created, and it has no StopTrainingJob/StopTransformJob. `SageMakerWorld` makes it behave like the
service where that matters here (new jobs are InProgress; Stop* sets Stopping; a training-instance quota
answers ResourceLimitExceeded), and the tests play SageMaker's part: they finish or fail a job and write a
transform's output where the job was told to write it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import posixpath
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from moto.core.responses import EmptyResult
from moto.sagemaker.exceptions import SagemakerClientError
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse

from fraud_data.schema import COLUMNS
from fraud_data.synthetic import generate_rows
from training import prepare
from training.custom_resource import budget, handler, lifecycle, naming
from training.custom_resource.errors import TrainingFailed
from training.custom_resource.lifecycle import Trainer

ACCOUNT = "123456789012"  # moto's account for any access key
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/job-role"
XGB_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RCF_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC).timestamp()


# ---- SageMaker as the service behaves (on top of moto's state) ---------------------------------------


class ResourceLimitExceeded(SagemakerClientError):
    code = "ResourceLimitExceeded"


class Validation(SagemakerClientError):
    code = "ValidationException"


class ResourceNotFound(SagemakerClientError):
    code = "ResourceNotFound"


def _s3_parts(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


@dataclass
class SageMakerWorld:
    """moto's SageMaker state for one test's bucket, and SageMaker's side of the story."""

    backend: SageMakerModelBackend
    s3: Any
    bucket: str
    # Instances of a type the account may use for training jobs at once (absent: no limit).
    training_instance_quota: dict[str, int] = field(default_factory=dict)

    def _ours(self, uri: str) -> bool:
        return uri.startswith(f"s3://{self.bucket}/")

    @property
    def training_jobs(self) -> dict[str, Any]:
        return {
            name: job
            for name, job in self.backend.training_jobs.items()
            if self._ours(job.output_data_config["S3OutputPath"])
        }

    @property
    def transform_jobs(self) -> dict[str, Any]:
        return {
            name: job
            for name, job in self.backend.transform_jobs.items()
            if self._ours(job.transform_output["S3OutputPath"])
        }

    @property
    def models(self) -> dict[str, Any]:
        return {
            name: model
            for name, model in self.backend._models.items()
            if self._ours(model.primary_container.get("ModelDataUrl", ""))
        }

    def training_status(self) -> dict[str, str]:
        return {name: job.training_job_status for name, job in self.training_jobs.items()}

    def transform_status(self) -> dict[str, str]:
        return {name: job.transform_job_status for name, job in self.transform_jobs.items()}

    # SageMaker moving jobs on
    def complete_training(self, name: str) -> None:
        self.training_jobs[name].training_job_status = "Completed"

    def fail_training(self, name: str, reason: str) -> None:
        job = self.training_jobs[name]
        job.training_job_status = "Failed"
        job.failure_reason = reason

    def fail_transform(self, name: str, reason: str) -> None:
        job = self.transform_jobs[name]
        job.transform_job_status = "Failed"
        job.failure_reason = reason

    def complete_transform(self, name: str, output: str) -> None:
        """Write the job's output where batch transform writes it (`<output path>/<input file>.out`)."""
        job = self.transform_jobs[name]
        _, input_key = _s3_parts(job.transform_input["DataSource"]["S3DataSource"]["S3Uri"])
        bucket, prefix = _s3_parts(job.transform_output["S3OutputPath"])
        key = posixpath.join(prefix, posixpath.basename(input_key) + ".out")
        self.s3.put_object(Bucket=bucket, Key=key, Body=output.encode())
        job.transform_job_status = "Completed"

    # the service's own rules, installed on moto's backend
    def _create_training_job(self, original, backend, **request):
        instance_type = request["resource_config"]["InstanceType"]
        limit = self.training_instance_quota.get(instance_type)
        running = [
            job
            for job in self.training_jobs.values()
            if job.training_job_status == "InProgress"
            and job.resource_config["InstanceType"] == instance_type
        ]
        if limit is not None and len(running) + 1 > limit:
            raise ResourceLimitExceeded(
                f"The account-level service limit '{instance_type} for training job usage' is {limit} "
                f"Instances, with current utilization of {len(running)} Instances and a request delta of 1 "
                "Instances. Please use AWS Service Quotas to request an increase for this quota."
            )
        job = original(backend, **request)
        job.training_job_status, job.secondary_status = "InProgress", "Training"
        return job

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original_training = SageMakerModelBackend.create_training_job
        original_transform = SageMakerModelBackend.create_transform_job

        def create_training_job(backend, **request):
            return self._create_training_job(original_training, backend, **request)

        def create_transform_job(backend, **request):
            job = original_transform(backend, **request)
            job.transform_job_status = "InProgress"
            return job

        # StopTrainingJob/StopTransformJob: "SageMaker changes the status of the job to Stopping"
        # (API reference); a job that does not exist is ResourceNotFound.
        # SageMaker stops only an InProgress job: "The request was rejected because the training job
        # is in status Stopped." (a Stopping job stays so for up to 120 s: API_StopTrainingJob)
        def stop_training_job(response):
            job = response.sagemaker_backend.training_jobs.get(response._get_param("TrainingJobName"))
            if job is None:
                raise ResourceNotFound("Requested resource not found.")
            if job.training_job_status != "InProgress":
                status = job.training_job_status
                raise Validation(f"The request was rejected because the training job is in status {status}.")
            job.training_job_status = "Stopping"
            return EmptyResult()

        def stop_transform_job(response):
            job = response.sagemaker_backend.transform_jobs.get(response._get_param("TransformJobName"))
            if job is None:
                raise ResourceNotFound("Requested resource not found.")
            if job.transform_job_status != "InProgress":
                status = job.transform_job_status
                raise Validation(f"The request was rejected because the transform job is in status {status}.")
            job.transform_job_status = "Stopping"
            return EmptyResult()

        monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_training_job)
        monkeypatch.setattr(SageMakerModelBackend, "create_transform_job", create_transform_job)
        monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)
        monkeypatch.setattr(SageMakerResponse, "stop_transform_job", stop_transform_job, raising=False)


class Clock:
    """The custom resource's clock (the deadline is measured with it), moved by the tests."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Deployment:
    """One custom resource as CloudFormation and the Provider framework drive it."""

    trainer: Trainer
    world: SageMakerWorld
    s3: Any
    bucket: str
    clock: Clock

    @property
    def properties(self) -> dict:
        return {
            "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:provider",
            "Source": "synthetic",
            "SyntheticRows": "5000",
            "Bucket": self.bucket,
            "JobRoleArn": ROLE_ARN,
            "XgboostImage": XGB_IMAGE,
            "RcfImage": RCF_IMAGE,
            "TrainingInstanceType": "ml.m5.xlarge",
            "TransformInstanceType": "ml.m5.large",
            "RuntimeVersion": "abc",
        }

    def create(self, **properties) -> dict:
        return self.trainer.on_event(
            {"RequestType": "Create", "ResourceProperties": {**self.properties, **properties}}
        )

    def update(self, previous: dict, **properties) -> dict:
        return self.trainer.on_event(
            {
                "RequestType": "Update",
                "PhysicalResourceId": previous["PhysicalResourceId"],
                "ResourceProperties": {**self.properties, **properties},
            }
        )

    def poll(self, created: dict, **properties) -> dict:
        return self.trainer.is_complete(
            {"RequestType": "Create", "ResourceProperties": {**self.properties, **properties}, **created}
        )

    def delete(self, physical_id: str) -> dict:
        return self.trainer.on_event(
            {"RequestType": "Delete", "PhysicalResourceId": physical_id, "ResourceProperties": {}}
        )

    def read(self, key: str) -> str:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()

    def keys(self, prefix: str = "") -> set[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def exists(self, uri: str) -> bool:
        bucket, key = _s3_parts(uri)
        return bucket == self.bucket and key in self.keys(key)


@pytest.fixture
def deployment(moto_url, monkeypatch, tmp_path) -> Deployment:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    # moto's state lives as long as the session: a bucket of its own gives each test its own job names
    # (the output location is one of a job's inputs).
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_url, region_name=REGION)
    world = SageMakerWorld(sagemaker_backends[ACCOUNT][REGION], s3, bucket)
    world.install(monkeypatch)
    clock = Clock(NOW)
    trainer = Trainer(sagemaker=sagemaker, s3=s3, workdir=tmp_path, clock=clock)
    return Deployment(trainer, world, s3, bucket, clock)


def _channels(job) -> dict[str, dict]:
    return {c["ChannelName"]: c for c in job.input_data_config}


def _uri(channel: dict) -> str:
    return channel["DataSource"]["S3DataSource"]["S3Uri"]


# ---- Create / Update -----------------------------------------------------------------------------------


def test_create_uploads_the_prepared_data_and_starts_both_training_jobs_on_it(deployment):
    # GIVEN an empty bucket and no jobs WHEN CloudFormation creates the resource
    result = deployment.create()

    # THEN the prepared splits and their manifest are in the bucket, under the data's hash
    data = result["Data"]
    expected = {*prepare.XGBOOST_FILES.values(), *prepare.FEATURE_FILES.values(), prepare.MANIFEST}
    assert deployment.keys(data["DataPrefix"]) == {data["DataPrefix"] + name for name in expected}
    manifest = json.loads(deployment.read(data["DataPrefix"] + prepare.MANIFEST))
    assert manifest["sha256"] == data["DataSha256"]
    assert manifest["rows_valid"] == 5000
    assert data["FeatureSpecVersion"] == manifest["feature_spec_version"]
    # AND exactly two training jobs run: the ones named in the attributes
    assert deployment.world.training_status() == {
        data["FraudTrainingJob"]: "InProgress",
        data["AnomalyTrainingJob"]: "InProgress",
    }
    xgb = deployment.world.training_jobs[data["FraudTrainingJob"]]
    rcf = deployment.world.training_jobs[data["AnomalyTrainingJob"]]
    # AND each reads prepared objects that exist, in the built-in algorithms' formats
    assert xgb.algorithm_specification["TrainingImage"] == XGB_IMAGE
    assert rcf.algorithm_specification["TrainingImage"] == RCF_IMAGE
    assert xgb.role_arn == rcf.role_arn == ROLE_ARN
    xgb_channels, rcf_channels = _channels(xgb), _channels(rcf)
    assert set(xgb_channels) == {"train", "validation"}
    assert set(rcf_channels) == {"train"}
    for channel in (*xgb_channels.values(), *rcf_channels.values()):
        assert deployment.exists(_uri(channel)), _uri(channel)
    assert _uri(xgb_channels["train"]).endswith(prepare.XGBOOST_FILES["train"])
    assert _uri(xgb_channels["validation"]).endswith(prepare.XGBOOST_FILES["validation"])
    assert _uri(rcf_channels["train"]).endswith(prepare.FEATURE_FILES["train"])  # no label column
    assert xgb_channels["train"]["ContentType"] == "text/csv"
    assert rcf_channels["train"]["ContentType"] == "text/csv;label_size=0"
    assert rcf_channels["train"]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    # AND the hyperparameters come from the prepared data
    assert xgb.hyper_parameters["objective"] == "binary:logistic"
    assert xgb.hyper_parameters["eval_metric"] == "aucpr"
    train = manifest["splits"]["train"]
    assert float(xgb.hyper_parameters["scale_pos_weight"]) == pytest.approx(
        train["negatives"] / train["positives"], rel=1e-3
    )
    assert rcf.hyper_parameters["feature_dim"] == str(manifest["feature_count"]) == "30"
    # AND the models are written to the bucket's training prefix; no job outlives the budget
    assert xgb.output_data_config["S3OutputPath"] == f"s3://{deployment.bucket}/{naming.PREFIXES.training}"
    assert xgb.stopping_condition["MaxRuntimeInSeconds"] == budget.TRAINING_MAX_RUNTIME_S
    assert result["PhysicalResourceId"].startswith(lifecycle.PHYSICAL_ID_PREFIX)
    # AND nothing is scored yet
    assert deployment.world.transform_jobs == {}


def test_an_update_with_unchanged_inputs_reuses_the_jobs_without_retraining(deployment):
    # GIVEN jobs created from these exact inputs, now Completed
    first = deployment.create()
    for name in deployment.world.training_jobs:
        deployment.world.complete_training(name)
    # (a marker in one prepared file shows whether the set is uploaded again)
    marked = first["Data"]["DataPrefix"] + prepare.XGBOOST_FILES["test"]
    deployment.s3.put_object(Bucket=deployment.bucket, Key=marked, Body=b"marker")

    # WHEN an update arrives whose inputs hash the same (only RuntimeVersion changed)
    second = deployment.update(first, RuntimeVersion="def")

    # THEN nothing is retrained or re-uploaded, and the resource keeps its identity and attributes
    assert second == first
    assert set(deployment.world.training_jobs) == {
        first["Data"]["FraudTrainingJob"],
        first["Data"]["AnomalyTrainingJob"],
    }
    assert deployment.read(marked) == "marker"


def test_a_running_job_with_the_same_inputs_is_reused_too(deployment):
    first = deployment.create()  # both InProgress
    second = deployment.update(first, RuntimeVersion="def")
    assert second["Data"]["FraudTrainingJob"] == first["Data"]["FraudTrainingJob"]
    assert len(deployment.world.training_jobs) == 2


def test_a_changed_hyperparameter_retrains_that_model_under_a_new_name(deployment, monkeypatch):
    # GIVEN a resource created once
    first = deployment.create()

    # WHEN the XGBoost hyperparameters change (here: more boosting rounds)
    monkeypatch.setattr("training.spec.XGBOOST_NUM_ROUND", 300)
    second = deployment.update(first)

    # THEN a new XGBoost job trains with the new value; the RCF job's inputs did not change
    new_fraud = second["Data"]["FraudTrainingJob"]
    assert new_fraud != first["Data"]["FraudTrainingJob"]
    assert deployment.world.training_jobs[new_fraud].hyper_parameters["num_round"] == "300"
    assert second["Data"]["AnomalyTrainingJob"] == first["Data"]["AnomalyTrainingJob"]
    assert len(deployment.world.training_jobs) == 3
    # AND the resource gets a new identity, so CloudFormation deletes the old one after the update
    assert second["PhysicalResourceId"] != first["PhysicalResourceId"]


def test_a_failed_job_is_retried_under_the_next_name_up_to_the_attempt_limit(deployment):
    # GIVEN the XGBoost job for these inputs failed (e.g. capacity)
    first = deployment.create()
    fraud = first["Data"]["FraudTrainingJob"]
    deployment.world.fail_training(fraud, "CapacityError: Unable to provision requested ML compute capacity")

    # WHEN the deployment is retried THEN a new attempt trains, named after the same inputs
    retried = deployment.create()
    assert retried["Data"]["FraudTrainingJob"] == f"{fraud}-r1"
    assert deployment.world.training_status()[f"{fraud}-r1"] == "InProgress"
    assert retried["Data"]["AnomalyTrainingJob"] == first["Data"]["AnomalyTrainingJob"]  # reused
    assert retried["PhysicalResourceId"] == first["PhysicalResourceId"]  # same inputs, same resource

    # AND after the last attempt fails too, the deployment fails with SageMaker's reason
    for name in naming.candidate_names(fraud)[1:]:
        if name in deployment.world.training_jobs:
            deployment.world.fail_training(name, "CapacityError: still no capacity")
        else:
            deployment.create()
            deployment.world.fail_training(name, "CapacityError: still no capacity")
    with pytest.raises(TrainingFailed, match=f"failed {naming.MAX_ATTEMPTS} times.*CapacityError: still no"):
        deployment.create()


def test_a_job_still_stopping_is_not_reused_by_a_redeploy(deployment):
    # GIVEN a deployment stopped at its deadline: its jobs are Stopping (they end Stopped)
    first = deployment.create()
    deployment.clock.now = NOW + budget.JOB_DEADLINE_S + 1
    with pytest.raises(TrainingFailed):
        deployment.poll(first)

    # WHEN the user deploys again at once THEN new attempts train instead of waiting on dying jobs
    again = deployment.create()
    for key in ("FraudTrainingJob", "AnomalyTrainingJob"):
        assert again["Data"][key] == f"{first['Data'][key]}-r1"
        assert deployment.world.training_status()[again["Data"][key]] == "InProgress"


def test_the_scoring_job_name_skips_failed_attempts(deployment):
    # GIVEN a model whose first scoring transform failed
    created = deployment.create()
    data = created["Data"]
    for name in deployment.world.training_jobs:
        deployment.world.complete_training(name)
    deployment.poll(created)  # starts both scoring transforms
    deployment.world.fail_transform(data["FraudScoringJob"], "ClientError: out of memory")

    # WHEN the deployment is retried THEN the fraud model is scored under the next name
    retried = deployment.create()
    assert retried["Data"]["FraudScoringJob"] == f"{data['FraudScoringJob']}-r1"
    assert retried["Data"]["AnomalyScoringJob"] == data["AnomalyScoringJob"]


def test_a_missing_property_is_a_clear_error_and_starts_nothing(deployment):
    properties = {k: v for k, v in deployment.properties.items() if k != "JobRoleArn"}
    with pytest.raises(ValueError, match="'JobRoleArn' is required"):
        deployment.trainer.on_event({"RequestType": "Create", "ResourceProperties": properties})
    assert deployment.keys() == set()
    assert deployment.world.training_jobs == {}


def test_an_unknown_request_type_is_refused(deployment):
    with pytest.raises(ValueError, match="unknown RequestType 'Replace'"):
        deployment.trainer.on_event({"RequestType": "Replace", "ResourceProperties": deployment.properties})


def test_an_s3_zip_source_is_fetched_and_bad_rows_are_counted(deployment):
    # GIVEN the dataset as a zip in another bucket, with one malformed row
    lines = [",".join(COLUMNS)] + [
        ",".join(map(repr, r)) for r in generate_rows(3_000, seed=4, fraud_rate=0.02)
    ]
    lines.insert(10, "not,a,row")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("creditcard.csv", "\n".join(lines) + "\n")
    source_bucket = f"datasets-{uuid.uuid4().hex[:12]}"
    deployment.s3.create_bucket(Bucket=source_bucket)
    deployment.s3.put_object(Bucket=source_bucket, Key="fraud/creditcardfraud.zip", Body=archive.getvalue())

    # WHEN the resource is created from it
    result = deployment.create(Source=f"s3://{source_bucket}/fraud/creditcardfraud.zip")

    # THEN the prepared manifest counts the valid and the malformed rows, and the models train on it
    manifest = json.loads(deployment.read(result["Data"]["DataPrefix"] + prepare.MANIFEST))
    assert manifest["source"] == "creditcardfraud.zip"
    assert manifest["rows_valid"] == 3_000
    assert manifest["rows_malformed"] == 1
    xgb = deployment.world.training_jobs[result["Data"]["FraudTrainingJob"]]
    assert _uri(_channels(xgb)["train"]).startswith(
        f"s3://{deployment.bucket}/{result['Data']['DataPrefix']}"
    )


# ---- is_complete -----------------------------------------------------------------------------------------


def test_a_poll_starts_scoring_each_model_as_soon_as_it_is_trained(deployment):
    # GIVEN the RCF model trained, the XGBoost one still training
    created = deployment.create()
    data = created["Data"]
    deployment.world.complete_training(data["AnomalyTrainingJob"])

    # WHEN the provider polls
    result = deployment.poll(created)

    # THEN it is not complete; only the RCF model scores the training split (no label column)
    assert result == {"IsComplete": False}
    assert set(deployment.world.transform_jobs) == {data["AnomalyScoringJob"]}
    transform = deployment.world.transform_jobs[data["AnomalyScoringJob"]]
    input_uri = transform.transform_input["DataSource"]["S3DataSource"]["S3Uri"]
    assert input_uri == f"s3://{deployment.bucket}/{data['DataPrefix']}{prepare.FEATURE_FILES['train']}"
    assert deployment.exists(input_uri)
    assert transform.transform_input["SplitType"] == "Line"
    assert transform.transform_output["AssembleWith"] == "Line"
    assert transform.transform_output["Accept"] == "application/jsonlines"
    assert transform.transform_resources["InstanceType"] == "ml.m5.large"
    # AND it runs the trained artifacts through a temporary model of the RCF image
    model = deployment.world.models[transform.model_name]
    rcf = deployment.world.training_jobs[data["AnomalyTrainingJob"]]
    assert model.primary_container["ModelDataUrl"] == rcf.model_artifacts["S3ModelArtifacts"]
    assert model.primary_container["Image"] == RCF_IMAGE

    # WHEN XGBoost finishes and the provider polls again
    deployment.world.complete_training(data["FraudTrainingJob"])
    assert deployment.poll(created) == {"IsComplete": False}

    # THEN the fraud model scores the labelled validation split's features; RCF is not started twice
    assert set(deployment.world.transform_jobs) == {data["AnomalyScoringJob"], data["FraudScoringJob"]}
    fraud = deployment.world.transform_jobs[data["FraudScoringJob"]]
    assert fraud.transform_input["DataSource"]["S3DataSource"]["S3Uri"].endswith(
        f"{data['DataPrefix']}{prepare.FEATURE_FILES['validation']}"
    )
    assert fraud.transform_output["Accept"] == "text/csv"


def _labels(deployment: Deployment, data: dict) -> list[int]:
    validation = deployment.read(data["DataPrefix"] + prepare.XGBOOST_FILES["validation"])
    return [int(line.split(",", 1)[0]) for line in validation.splitlines()]


def _train_and_start_scoring(deployment: Deployment) -> tuple[dict, dict]:
    created = deployment.create()
    for name in created["Data"]["FraudTrainingJob"], created["Data"]["AnomalyTrainingJob"]:
        deployment.world.complete_training(name)
    assert deployment.poll(created) == {"IsComplete": False}
    return created, created["Data"]


def test_completion_computes_thresholds_from_the_scored_splits_and_drops_the_temporary_models(deployment):
    # GIVEN both models trained and both scoring transforms done
    created, data = _train_and_start_scoring(deployment)
    labels = _labels(deployment, data)
    probabilities = [0.9 if label else 0.1 for label in labels]
    # XGBoost output, older containers' style: a batch's predictions joined by commas
    deployment.world.complete_transform(
        data["FraudScoringJob"],
        ",".join(map(str, probabilities[:100])) + "\n" + "\n".join(map(str, probabilities[100:])) + "\n",
    )
    # RCF output, jsonlines: scores 1 and 3 alternating -> mean 2, std 1 -> threshold 2 + 3*1 = 5
    deployment.world.complete_transform(
        data["AnomalyScoringJob"],
        "\n".join(json.dumps({"score": 1.0 if i % 2 else 3.0}) for i in range(1000)) + "\n",
    )
    assert deployment.world.models  # the scoring models exist until now

    # WHEN the provider polls
    result = deployment.poll(created)

    # THEN the resource completes with the artifacts and data-driven thresholds
    assert result["IsComplete"] is True
    attributes = result["Data"]
    assert float(attributes["FraudThreshold"]) == pytest.approx(0.5)
    assert float(attributes["ValidationF1"]) == pytest.approx(1.0)
    assert float(attributes["ValidationPrecision"]) == pytest.approx(1.0)
    assert float(attributes["ValidationRecall"]) == pytest.approx(1.0)
    assert float(attributes["AnomalyThreshold"]) == pytest.approx(5.0)
    jobs = deployment.world.training_jobs
    assert (
        attributes["FraudModelDataUrl"] == jobs[data["FraudTrainingJob"]].model_artifacts["S3ModelArtifacts"]
    )
    assert attributes["FraudModelDataUrl"] == (
        f"s3://{deployment.bucket}/training/{data['FraudTrainingJob']}/output/model.tar.gz"
    )
    assert (
        attributes["AnomalyModelDataUrl"]
        == (jobs[data["AnomalyTrainingJob"]].model_artifacts["S3ModelArtifacts"])
    )
    assert attributes["FeatureSpecVersion"] == data["FeatureSpecVersion"]
    # AND the temporary scoring models are gone
    assert deployment.world.models == {}


def test_scores_that_do_not_match_the_validation_rows_fail_the_deployment(deployment):
    created, data = _train_and_start_scoring(deployment)
    rows = len(_labels(deployment, data))
    deployment.world.complete_transform(data["FraudScoringJob"], "0.5\n" * (rows - 1))
    deployment.world.complete_transform(data["AnomalyScoringJob"], '{"score": 1.0}\n' * 10)
    with pytest.raises(TrainingFailed, match=f"scoring returned {rows - 1} predictions for {rows} rows"):
        deployment.poll(created)


def test_a_failed_training_job_fails_the_deployment_with_sagemakers_reason(deployment):
    # GIVEN the RCF training job failed while XGBoost still trains
    created = deployment.create()
    data = created["Data"]
    reason = "ClientError: Unable to read data channel 'train'. Requested content-type is 'text/csv'."
    deployment.world.fail_training(data["AnomalyTrainingJob"], reason)

    # WHEN the provider polls THEN it raises with the job's name and SageMaker's reason
    with pytest.raises(TrainingFailed) as failure:
        deployment.poll(created)
    assert f"training job {data['AnomalyTrainingJob']} is Failed: {reason}" in str(failure.value)
    assert deployment.world.transform_jobs == {}
    assert deployment.world.models == {}
    # AND no job runs without its resource: the other model's training is stopped (a failed Update
    # gets no Delete that would stop it)
    assert deployment.world.training_status()[data["FraudTrainingJob"]] == "Stopping"


def test_the_training_max_runtime_comes_from_the_resource_properties(deployment):
    created = deployment.create(TrainingMaxRuntimeSeconds="600")
    for name in (created["Data"]["FraudTrainingJob"], created["Data"]["AnomalyTrainingJob"]):
        assert deployment.world.training_jobs[name].stopping_condition["MaxRuntimeInSeconds"] == 600


def test_a_failed_scoring_transform_fails_the_deployment_and_drops_the_temporary_models(deployment):
    created, data = _train_and_start_scoring(deployment)
    deployment.world.fail_transform(data["FraudScoringJob"], "AlgorithmError: bad input")
    assert deployment.world.models

    with pytest.raises(TrainingFailed, match=f"batch transform job {data['FraudScoringJob']} is Failed: "):
        deployment.poll(created)
    assert deployment.world.models == {}


def test_a_training_job_that_disappeared_fails_the_deployment(deployment):
    created = deployment.create()
    del deployment.world.backend.training_jobs[created["Data"]["FraudTrainingJob"]]
    with pytest.raises(TrainingFailed, match="does not exist"):
        deployment.poll(created)


def test_a_delete_event_is_complete_at_once(deployment):
    assert deployment.trainer.is_complete({"RequestType": "Delete", "PhysicalResourceId": "x"}) == {
        "IsComplete": True
    }


# ---- the deadline ----------------------------------------------------------------------------------------


def test_before_the_deadline_a_poll_only_waits(deployment):
    created = deployment.create()
    deployment.clock.now = NOW + budget.JOB_DEADLINE_S - 1
    assert deployment.poll(created) == {"IsComplete": False}
    assert set(deployment.world.training_status().values()) == {"InProgress"}


def test_jobs_still_running_at_the_deadline_are_stopped_and_the_deployment_fails(deployment):
    # GIVEN XGBoost still training and RCF already scoring
    created = deployment.create()
    data = created["Data"]
    deployment.world.complete_training(data["AnomalyTrainingJob"])
    deployment.poll(created)

    # WHEN the provider polls after the deadline (measured from on_event's start)
    deployment.clock.now = NOW + budget.JOB_DEADLINE_S + 1
    with pytest.raises(TrainingFailed) as failure:
        deployment.poll(created)

    # THEN every job still running was stopped: nothing outlives the custom resource
    message = str(failure.value)
    assert f"did not finish within {budget.JOB_DEADLINE_S} s" in message
    assert f"{data['FraudTrainingJob']} InProgress" in message
    assert f"{data['FraudScoringJob']} not started" in message
    assert deployment.world.training_status() == {
        data["FraudTrainingJob"]: "Stopping",
        data["AnomalyTrainingJob"]: "Completed",
    }
    assert deployment.world.transform_status() == {data["AnomalyScoringJob"]: "Stopping"}
    assert deployment.world.models == {}


def test_the_deadline_comes_from_the_resource_properties(deployment):
    created = deployment.create()
    deployment.clock.now = NOW + 601
    with pytest.raises(TrainingFailed, match="did not finish within 600 s"):
        deployment.poll(created, JobDeadlineSeconds="600")


# ---- Delete ------------------------------------------------------------------------------------------------


def test_delete_stops_the_running_jobs_and_drops_the_temporary_models(deployment):
    # GIVEN a resource whose XGBoost job still trains and whose RCF model is already scoring
    created = deployment.create()
    data = created["Data"]
    deployment.world.complete_training(data["AnomalyTrainingJob"])
    deployment.poll(created)
    assert set(deployment.world.models) == {data["AnomalyTrainingJob"]}

    # WHEN CloudFormation deletes the resource
    result = deployment.delete(created["PhysicalResourceId"])

    # THEN exactly the running jobs are stopped, and no temporary model is left
    assert result == {"PhysicalResourceId": created["PhysicalResourceId"]}
    assert deployment.world.training_status() == {
        data["FraudTrainingJob"]: "Stopping",
        data["AnomalyTrainingJob"]: "Completed",
    }
    assert deployment.world.transform_status() == {data["AnomalyScoringJob"]: "Stopping"}
    assert deployment.world.models == {}


def test_a_delete_right_after_a_deadline_failure_succeeds_while_the_jobs_are_stopping(deployment):
    # GIVEN a deployment failed at its deadline: its jobs are Stopping (for up to 2 minutes)
    created = deployment.create()
    deployment.clock.now = NOW + budget.JOB_DEADLINE_S + 1
    with pytest.raises(TrainingFailed):
        deployment.poll(created)
    assert set(deployment.world.training_status().values()) == {"Stopping"}

    # WHEN CloudFormation rolls back at once THEN the Delete succeeds (SageMaker would refuse to stop
    # a Stopping job again: the stack would end in ROLLBACK_FAILED)
    deployment.delete(created["PhysicalResourceId"])
    assert set(deployment.world.training_status().values()) == {"Stopping"}


def test_delete_also_stops_a_retried_attempt(deployment):
    # GIVEN a first XGBoost attempt that failed and a retry that is running
    first = deployment.create()
    fraud = first["Data"]["FraudTrainingJob"]
    deployment.world.fail_training(fraud, "CapacityError")
    deployment.create()

    deployment.delete(first["PhysicalResourceId"])

    assert deployment.world.training_status() == {
        fraud: "Failed",
        f"{fraud}-r1": "Stopping",
        first["Data"]["AnomalyTrainingJob"]: "Stopping",
    }


def test_delete_of_a_resource_that_never_started_leaves_everything_alone(deployment):
    # GIVEN running jobs, and a resource whose create failed before it named any job (the Provider
    # framework then gives it an id of its own)
    deployment.create()
    before = deployment.world.training_status()

    result = deployment.delete("a-provider-generated-id")

    assert result == {"PhysicalResourceId": "a-provider-generated-id"}
    assert deployment.world.training_status() == before


# ---- the Lambda's entry points ----------------------------------------------------------------------


class ThrottlingException(SagemakerClientError):
    code = "ThrottlingException"


# Throttling is one of AWS's common errors, not a shape in SageMaker's model; moto rightly says so.
@pytest.mark.filterwarnings(r"ignore:Exception\(ThrottlingException\):UserWarning")
def test_the_lambda_entry_points_retry_throttling_with_their_own_clients(deployment, moto_url, monkeypatch):
    # GIVEN the Lambda's environment (its clients come from it) and SageMaker throttling the first
    # two DescribeTrainingJob calls, as it does under load
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    refusals = iter(range(2))
    original = SageMakerModelBackend.describe_training_job

    def describe_training_job(backend, name):
        if next(refusals, None) is not None:
            raise ThrottlingException("Rate exceeded")
        return original(backend, name)

    monkeypatch.setattr(SageMakerModelBackend, "describe_training_job", describe_training_job)
    handler._trainer.cache_clear()  # built on first use, from the environment
    try:
        # WHEN CloudFormation's events arrive through the handlers the construct names
        event = {"RequestType": "Create", "ResourceProperties": deployment.properties}
        created = handler.on_event(event, None)
        polled = handler.is_complete({**event, **created}, None)
    finally:
        handler._trainer.cache_clear()

    # THEN botocore's bounded retries absorbed the throttling: both jobs started, the poll waits
    assert next(refusals, None) is None  # SageMaker did refuse twice
    assert set(deployment.world.training_jobs) == {
        created["Data"]["FraudTrainingJob"],
        created["Data"]["AnomalyTrainingJob"],
    }
    assert polled == {"IsComplete": False}
