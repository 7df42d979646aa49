"""The training custom resource's runtime, against a real S3 API (moto server) and SageMaker's exact
API shapes (botocore Stubber on a real client: requests are validated against the service model)."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import boto3
import pytest
from botocore.stub import Stubber

from fraud_data.schema import COLUMNS
from fraud_data.synthetic import generate_rows
from training import prepare
from training.custom_resource import handler, naming, progress
from training.custom_resource.handler import Trainer, TrainingFailed

BUCKET = "models-bucket"
ROLE_ARN = "arn:aws:iam::123456789012:role/job-role"
XGB_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RCF_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"
PROPERTIES = {
    "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
    "Source": "synthetic",
    "SyntheticRows": "5000",
    "Bucket": BUCKET,
    "JobRoleArn": ROLE_ARN,
    "XgboostImage": XGB_IMAGE,
    "RcfImage": RCF_IMAGE,
    "TrainingInstanceType": "ml.m5.xlarge",
    "TransformInstanceType": "ml.m5.large",
    "RuntimeVersion": "abc",
}
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


@pytest.fixture
def clients(moto_url, monkeypatch, tmp_path):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=moto_url)
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if BUCKET in existing:
        objects = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        for item in objects:
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    else:
        s3.create_bucket(Bucket=BUCKET)
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    stubber = Stubber(sagemaker)
    stubber.activate()
    trainer = Trainer(sagemaker=sagemaker, s3=s3, workdir=tmp_path)
    yield trainer, stubber, s3
    stubber.deactivate()


def _not_found(stubber: Stubber, operation: str) -> None:
    message = "Requested resource not found." if "training" in operation else "Could not find requested job"
    stubber.add_client_error(operation, service_error_code="ValidationException", service_message=message)


def _training(stubber: Stubber, name: str, status: str, reason: str | None = None) -> None:
    response = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/training/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Completed" if status == "Completed" else "Training",
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": NOW,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
    }
    if reason:
        response["FailureReason"] = reason
    stubber.add_response("describe_training_job", response, {"TrainingJobName": name})


def _transform(stubber: Stubber, name: str, status: str, reason: str | None = None) -> None:
    response = {
        "TransformJobName": name,
        "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}",
        "TransformJobStatus": status,
        "ModelName": name.removesuffix("-scores"),
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "CreationTime": NOW,
    }
    if reason:
        response["FailureReason"] = reason
    stubber.add_response("describe_transform_job", response, {"TransformJobName": name})


def _capture(trainer: Trainer, operation: str) -> list[dict]:
    """Record the parameters of every call to `operation` (after botocore validated them)."""
    calls: list[dict] = []
    trainer.sagemaker.meta.events.register(
        f"provide-client-params.sagemaker.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def _create(trainer: Trainer, stubber: Stubber) -> dict:
    """on_event Create on an empty account: both training jobs are started."""
    _not_found(stubber, "describe_training_job")
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:::training-job/x"})
    _not_found(stubber, "describe_training_job")
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:::training-job/y"})
    _not_found(stubber, "describe_transform_job")
    _not_found(stubber, "describe_transform_job")
    return trainer.on_event({"RequestType": "Create", "ResourceProperties": PROPERTIES})


def test_create_prepares_data_in_s3_and_starts_both_training_jobs(clients):
    # GIVEN an empty bucket and no training jobs
    trainer, stubber, s3 = clients
    created = _capture(trainer, "CreateTrainingJob")

    # WHEN CloudFormation creates the resource
    result = _create(trainer, stubber)

    # THEN the prepared splits and their manifest are in the bucket, under the data's hash
    stubber.assert_no_pending_responses()
    data = result["Data"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=data["DataPrefix"])["Contents"]}
    expected = {*prepare.XGBOOST_FILES.values(), *prepare.FEATURE_FILES.values(), prepare.MANIFEST}
    assert keys == {data["DataPrefix"] + name for name in expected}
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=data["DataPrefix"] + "manifest.json")["Body"].read()
    )
    assert manifest["sha256"] == data["DataSha256"]
    assert manifest["rows_valid"] == 5000
    # AND one XGBoost and one RCF job, with the built-in algorithms' data formats
    xgb, rcf = created
    assert xgb["TrainingJobName"] == data["FraudTrainingJob"]
    assert rcf["TrainingJobName"] == data["AnomalyTrainingJob"]
    assert xgb["AlgorithmSpecification"]["TrainingImage"] == XGB_IMAGE
    assert xgb["HyperParameters"]["objective"] == "binary:logistic"
    assert xgb["HyperParameters"]["eval_metric"] == "aucpr"
    train = manifest["splits"]["train"]
    assert float(xgb["HyperParameters"]["scale_pos_weight"]) == pytest.approx(
        train["negatives"] / train["positives"], rel=1e-3
    )
    assert [c["ChannelName"] for c in xgb["InputDataConfig"]] == ["train", "validation"]
    assert xgb["InputDataConfig"][0]["ContentType"] == "text/csv"
    assert rcf["InputDataConfig"][0]["ContentType"] == "text/csv;label_size=0"
    assert (
        rcf["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    )
    assert rcf["HyperParameters"]["feature_dim"] == "30"
    assert xgb["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/training/"
    assert result["PhysicalResourceId"].startswith(handler.PHYSICAL_ID_PREFIX)


def test_unchanged_inputs_reuse_completed_jobs_without_retraining(clients):
    # GIVEN jobs created from these exact inputs, now Completed
    trainer, stubber, _ = clients
    first = _create(trainer, stubber)
    created = _capture(trainer, "CreateTrainingJob")

    # WHEN an update arrives whose inputs hash the same (only RuntimeVersion changed)
    _training(stubber, first["Data"]["FraudTrainingJob"], "Completed")
    _training(stubber, first["Data"]["AnomalyTrainingJob"], "Completed")
    _transform(stubber, first["Data"]["FraudScoringJob"], "Completed")
    _transform(stubber, first["Data"]["AnomalyScoringJob"], "Completed")
    second = trainer.on_event(
        {
            "RequestType": "Update",
            "PhysicalResourceId": first["PhysicalResourceId"],
            "ResourceProperties": {**PROPERTIES, "RuntimeVersion": "def"},
        }
    )

    # THEN nothing is retrained and the resource keeps its identity
    stubber.assert_no_pending_responses()
    assert created == []
    assert second == first


def test_changed_hyperparameter_input_retrains_under_a_new_name(clients, monkeypatch):
    # GIVEN a resource created once
    trainer, stubber, _ = clients
    first = _create(trainer, stubber)

    # WHEN the XGBoost hyperparameters change (here: more boosting rounds)
    monkeypatch.setattr("training.spec.XGBOOST_NUM_ROUND", 300)
    second = _create(trainer, stubber)

    # THEN the XGBoost job gets a new name (it retrains); the RCF job's inputs did not change
    assert second["Data"]["FraudTrainingJob"] != first["Data"]["FraudTrainingJob"]
    assert second["Data"]["AnomalyTrainingJob"] == first["Data"]["AnomalyTrainingJob"]
    assert second["PhysicalResourceId"] != first["PhysicalResourceId"]


def test_a_failed_job_is_retried_under_the_next_name(clients):
    # GIVEN the XGBoost job for these inputs failed before (e.g. capacity)
    trainer, stubber, _ = clients
    first = _create(trainer, stubber)
    created = _capture(trainer, "CreateTrainingJob")
    fraud_job = first["Data"]["FraudTrainingJob"]
    _training(
        stubber, fraud_job, "Failed", "CapacityError: Unable to provision requested ML compute capacity"
    )
    _not_found(stubber, "describe_training_job")
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:::training-job/z"})
    _training(stubber, first["Data"]["AnomalyTrainingJob"], "Completed")
    _not_found(stubber, "describe_transform_job")
    _transform(stubber, first["Data"]["AnomalyScoringJob"], "Completed")

    # WHEN the deployment is retried
    result = trainer.on_event({"RequestType": "Create", "ResourceProperties": PROPERTIES})

    # THEN a new attempt starts, named after the same inputs
    stubber.assert_no_pending_responses()
    assert [c["TrainingJobName"] for c in created] == [f"{fraud_job}-r1"]
    assert result["Data"]["FraudTrainingJob"] == f"{fraud_job}-r1"


def _poll(trainer: Trainer, created: dict) -> dict:
    return trainer.is_complete({"RequestType": "Create", "ResourceProperties": PROPERTIES, **created})


def test_poll_while_training_is_in_progress(clients):
    # GIVEN both training jobs still running
    trainer, stubber, _ = clients
    created = _create(trainer, stubber)
    data = created["Data"]
    _training(stubber, data["FraudTrainingJob"], "InProgress")
    _training(stubber, data["AnomalyTrainingJob"], "Completed")
    _not_found(stubber, "describe_transform_job")
    _not_found(stubber, "describe_transform_job")
    stubber.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:::model/m"})
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:::transform-job/t"})
    transforms = _capture(trainer, "CreateTransformJob")

    # WHEN the provider polls
    result = _poll(trainer, created)

    # THEN it is not complete; only the finished RCF model starts scoring the training split
    stubber.assert_no_pending_responses()
    assert result == {"IsComplete": False}
    (transform,) = transforms
    assert transform["TransformJobName"] == data["AnomalyScoringJob"]
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("features/train.csv")
    assert transform["TransformInput"]["SplitType"] == "Line"
    assert transform["TransformOutput"]["AssembleWith"] == "Line"


def test_completion_computes_thresholds_from_the_scored_splits(clients):
    # GIVEN both models trained and both scoring transforms completed
    trainer, stubber, s3 = clients
    created = _create(trainer, stubber)
    data = created["Data"]
    labels = [
        int(line.split(",", 1)[0])
        for line in s3.get_object(Bucket=BUCKET, Key=data["DataPrefix"] + "xgboost/validation.csv")["Body"]
        .read()
        .decode()
        .splitlines()
    ]
    # XGBoost output, older containers' style: a batch's predictions joined by commas
    probabilities = [0.9 if label else 0.1 for label in labels]
    s3.put_object(
        Bucket=BUCKET,
        Key=f"transform/{data['FraudScoringJob']}/validation.csv.out",
        Body=",".join(map(str, probabilities[:100])) + "\n" + "\n".join(map(str, probabilities[100:])) + "\n",
    )
    # RCF output, jsonlines: scores 1 and 3 alternating -> mean 2, std 1 -> threshold 2 + 3*1 = 5
    s3.put_object(
        Bucket=BUCKET,
        Key=f"transform/{data['AnomalyScoringJob']}/train.csv.out",
        Body="\n".join(json.dumps({"score": 1.0 if i % 2 else 3.0}) for i in range(1000)) + "\n",
    )
    _training(stubber, data["FraudTrainingJob"], "Completed")
    _training(stubber, data["AnomalyTrainingJob"], "Completed")
    _transform(stubber, data["FraudScoringJob"], "Completed")
    _transform(stubber, data["AnomalyScoringJob"], "Completed")
    stubber.add_response("delete_model", {}, {"ModelName": data["FraudTrainingJob"]})
    stubber.add_response("delete_model", {}, {"ModelName": data["AnomalyTrainingJob"]})

    # WHEN the provider polls
    result = _poll(trainer, created)

    # THEN the resource completes with artifacts and data-driven thresholds; temporary models are gone
    stubber.assert_no_pending_responses()
    assert result["IsComplete"] is True
    attributes = result["Data"]
    assert float(attributes["FraudThreshold"]) == pytest.approx(0.5)
    assert float(attributes["ValidationF1"]) == pytest.approx(1.0)
    assert float(attributes["AnomalyThreshold"]) == pytest.approx(5.0)
    assert attributes["FraudModelDataUrl"] == (
        f"s3://{BUCKET}/training/{data['FraudTrainingJob']}/output/model.tar.gz"
    )
    assert attributes["AnomalyModelDataUrl"].endswith(f"{data['AnomalyTrainingJob']}/output/model.tar.gz")


def test_a_failed_training_job_fails_the_deployment_with_sagemakers_reason(clients):
    # GIVEN the RCF training job failed
    trainer, stubber, _ = clients
    created = _create(trainer, stubber)
    data = created["Data"]
    reason = "ClientError: Unable to read data channel 'train'. Requested content-type is 'text/csv'."
    _training(stubber, data["FraudTrainingJob"], "InProgress")
    _training(stubber, data["AnomalyTrainingJob"], "Failed", reason)
    _not_found(stubber, "describe_transform_job")
    _not_found(stubber, "describe_transform_job")
    _not_found(stubber, "delete_model")
    _not_found(stubber, "delete_model")

    # WHEN the provider polls THEN it raises with the job name and SageMaker's failure reason
    with pytest.raises(TrainingFailed, match="training job .* is Failed: ClientError: Unable to read data"):
        _poll(trainer, created)
    stubber.assert_no_pending_responses()


def test_a_failed_scoring_transform_fails_the_deployment(clients):
    trainer, stubber, _ = clients
    created = _create(trainer, stubber)
    data = created["Data"]
    _training(stubber, data["FraudTrainingJob"], "Completed")
    _training(stubber, data["AnomalyTrainingJob"], "Completed")
    _transform(stubber, data["FraudScoringJob"], "Failed", "AlgorithmError: bad input")
    _transform(stubber, data["AnomalyScoringJob"], "InProgress")
    stubber.add_response("delete_model", {}, {"ModelName": data["FraudTrainingJob"]})
    stubber.add_response("delete_model", {}, {"ModelName": data["AnomalyTrainingJob"]})

    with pytest.raises(TrainingFailed, match="batch transform job .* is Failed: AlgorithmError: bad input"):
        _poll(trainer, created)


def test_delete_stops_running_jobs_and_drops_temporary_models(clients):
    # GIVEN a resource whose XGBoost job still trains and whose RCF job already scores
    trainer, stubber, _ = clients
    created = _create(trainer, stubber)
    data = created["Data"]
    stopped = _capture(trainer, "StopTrainingJob")
    stopped_transforms = _capture(trainer, "StopTransformJob")
    fraud, anomaly = data["FraudTrainingJob"], data["AnomalyTrainingJob"]
    _training(stubber, fraud, "InProgress")
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": fraud})
    for _ in naming.candidate_names(naming.transform_job_name(fraud)):
        _not_found(stubber, "describe_transform_job")
    _not_found(stubber, "delete_model")
    _not_found(stubber, "describe_training_job")  # no retry attempt exists: stop looking
    _training(stubber, anomaly, "Completed")
    _transform(stubber, data["AnomalyScoringJob"], "InProgress")
    stubber.add_response("stop_transform_job", {}, {"TransformJobName": data["AnomalyScoringJob"]})
    for _ in range(naming.MAX_ATTEMPTS - 1):
        _not_found(stubber, "describe_transform_job")
    stubber.add_response("delete_model", {}, {"ModelName": anomaly})
    _not_found(stubber, "describe_training_job")

    # WHEN CloudFormation deletes the resource
    result = trainer.on_event(
        {
            "RequestType": "Delete",
            "PhysicalResourceId": created["PhysicalResourceId"],
            "ResourceProperties": {},
        }
    )

    # THEN exactly the running jobs are stopped
    stubber.assert_no_pending_responses()
    assert result == {"PhysicalResourceId": created["PhysicalResourceId"]}
    assert [c["TrainingJobName"] for c in stopped] == [fraud]
    assert [c["TransformJobName"] for c in stopped_transforms] == [data["AnomalyScoringJob"]]


def test_delete_of_a_resource_that_never_started_does_nothing(clients):
    trainer, stubber, _ = clients
    result = trainer.on_event(
        {"RequestType": "Delete", "PhysicalResourceId": "a-provider-generated-id", "ResourceProperties": {}}
    )
    stubber.assert_no_pending_responses()
    assert result == {"PhysicalResourceId": "a-provider-generated-id"}


def test_missing_property_is_a_clear_error(clients):
    trainer, _, _ = clients
    properties = {k: v for k, v in PROPERTIES.items() if k != "JobRoleArn"}
    with pytest.raises(ValueError, match="'JobRoleArn' is required"):
        trainer.on_event({"RequestType": "Create", "ResourceProperties": properties})


def test_s3_zip_source_is_streamed_into_the_lambda_and_bad_rows_are_counted(clients):
    # GIVEN the dataset as a zip in another bucket, with one malformed row
    trainer, stubber, s3 = clients
    lines = [",".join(COLUMNS)] + [
        ",".join(map(repr, r)) for r in generate_rows(3_000, seed=4, fraud_rate=0.02)
    ]
    lines.insert(10, "not,a,row")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("creditcard.csv", "\n".join(lines) + "\n")
    s3.create_bucket(Bucket="public-datasets")
    s3.put_object(Bucket="public-datasets", Key="fraud/creditcardfraud.zip", Body=archive.getvalue())
    properties = {**PROPERTIES, "Source": "s3://public-datasets/fraud/creditcardfraud.zip"}
    for operation in ("describe_training_job", "describe_training_job"):
        _not_found(stubber, operation)
        stubber.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:::training-job/x"})
    _not_found(stubber, "describe_transform_job")
    _not_found(stubber, "describe_transform_job")

    # WHEN the resource is created from it
    result = trainer.on_event({"RequestType": "Create", "ResourceProperties": properties})

    # THEN the prepared manifest counts the valid and the malformed rows
    key = result["Data"]["DataPrefix"] + prepare.MANIFEST
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert manifest["source"] == "creditcardfraud.zip"
    assert manifest["rows_valid"] == 3_000
    assert manifest["rows_malformed"] == 1


@pytest.mark.parametrize(
    ("training", "transforms", "expected"),
    [
        (("InProgress", "InProgress"), (None, None), progress.Decision()),
        (("Completed", "InProgress"), (None, None), progress.Decision(start_transforms=("fraud",))),
        (("Completed", "Completed"), ("InProgress", None), progress.Decision(start_transforms=("anomaly",))),
        (("Completed", "Completed"), ("Completed", "Completed"), progress.Decision(finished=True)),
        (("Stopping", "Completed"), (None, "InProgress"), progress.Decision()),
    ],
)
def test_progress_is_a_pure_function_of_job_states(training, transforms, expected):
    jobs = {m: progress.JobState(f"t-{m}", s) for m, s in zip(("fraud", "anomaly"), training, strict=True)}
    scoring = {
        m: progress.JobState(f"s-{m}", s) for m, s in zip(("fraud", "anomaly"), transforms, strict=True)
    }
    assert progress.decide(jobs, scoring) == expected


def test_progress_reports_every_failure_with_its_reason():
    jobs = {
        "fraud": progress.JobState("t-fraud", "Stopped"),
        "anomaly": progress.JobState("t-anomaly", "Failed", "AlgorithmError: feature_dim mismatch"),
    }
    scoring = {m: progress.JobState(f"s-{m}", None) for m in jobs}
    decision = progress.decide(jobs, scoring)
    assert decision.failure == (
        "SageMaker training job t-fraud is Stopped: no reason given; "
        "SageMaker training job t-anomaly is Failed: AlgorithmError: feature_dim mismatch"
    )
    assert not decision.finished
