"""Entry points of the training custom resource (CDK Provider framework: on_event + is_complete).

on_event  Create/Update: prepare the data in this Lambda, upload it, start (or reuse) both training
          jobs. Delete: stop this resource's jobs that are still running, drop temporary models.
is_complete  poll the jobs; when training is done, start a batch transform per model to score a
          split; when those are done, compute the thresholds and return every result as attributes.

A job's name is a hash of its inputs (data sha256, hyperparameters, image, output location), so an
update that changes nothing the models depend on finds the Completed jobs and does not retrain.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from training import prepare, thresholds
from training.custom_resource import naming, progress, requests, sources
from training.custom_resource.scores import parse_csv_scores, parse_json_scores, parse_labels

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# botocore's own bounded retries with backoff for throttling and transient errors.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
PHYSICAL_ID_PREFIX = "fraud-models-"
MODELS = ("fraud", "anomaly")
ALGORITHM = {"fraud": "xgboost", "anomaly": "rcf"}
# Which split each model's scoring transform reads, and what it returns.
SCORED_SPLIT = {"fraud": "validation", "anomaly": "train"}
ACCEPT = {"fraud": "text/csv", "anomaly": "application/jsonlines"}
HYPERPARAMETERS = {"fraud": requests.xgboost_hyperparameters, "anomaly": requests.rcf_hyperparameters}


class TrainingFailed(Exception):
    """Raised to fail the deployment; the Provider framework reports the message to CloudFormation."""


@dataclass(frozen=True)
class Properties:
    source: str
    synthetic_rows: int
    bucket: str
    job_role_arn: str
    xgboost_image: str
    rcf_image: str
    training_instance_type: str
    transform_instance_type: str

    @classmethod
    def from_event(cls, event: dict) -> Properties:
        props = event.get("ResourceProperties", {})
        try:
            return cls(
                source=props["Source"],
                synthetic_rows=int(props.get("SyntheticRows", "100000")),
                bucket=props["Bucket"],
                job_role_arn=props["JobRoleArn"],
                xgboost_image=props["XgboostImage"],
                rcf_image=props["RcfImage"],
                training_instance_type=props["TrainingInstanceType"],
                transform_instance_type=props["TransformInstanceType"],
            )
        except KeyError as missing:
            raise ValueError(f"custom resource property {missing} is required") from None

    def image(self, model: str) -> str:
        return self.xgboost_image if model == "fraud" else self.rcf_image


class Trainer:
    def __init__(self, *, sagemaker: Any, s3: Any, workdir: Path) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.workdir = workdir

    # ---- on_event -------------------------------------------------------------------------------

    def on_event(self, event: dict) -> dict:
        request_type = event["RequestType"]
        logger.info("on_event %s %s", request_type, event.get("PhysicalResourceId", ""))
        if request_type == "Delete":
            self.delete(event["PhysicalResourceId"])
            return {"PhysicalResourceId": event["PhysicalResourceId"]}
        if request_type not in ("Create", "Update"):
            raise ValueError(f"unknown RequestType {request_type!r}")
        props = Properties.from_event(event)
        manifest, data_prefix = self.prepare_data(props)
        training_names = {}
        digests = {}
        for model in MODELS:
            request_for = self._training_request_builder(model, props, manifest, data_prefix)
            digests[model] = naming.digest(
                {
                    "algorithm": ALGORITHM[model],
                    "data_sha256": manifest["sha256"],
                    "hyperparameters": HYPERPARAMETERS[model](manifest),
                    "image": props.image(model),
                    "output": f"s3://{props.bucket}/{naming.PREFIXES.training}",
                }
            )
            base = naming.base_job_name(ALGORITHM[model], digests[model])
            training_names[model] = self._ensure_training_job(base, request_for)
        scoring_names = {
            model: self._pick_transform_name(naming.transform_job_name(training_names[model]))
            for model in MODELS
        }
        physical_id = f"{PHYSICAL_ID_PREFIX}{digests['fraud'][:24]}-{digests['anomaly'][:24]}"
        return {
            "PhysicalResourceId": physical_id,
            "Data": {
                "DataSha256": manifest["sha256"],
                "DataPrefix": data_prefix,
                "FraudTrainingJob": training_names["fraud"],
                "AnomalyTrainingJob": training_names["anomaly"],
                "FraudScoringJob": scoring_names["fraud"],
                "AnomalyScoringJob": scoring_names["anomaly"],
            },
        }

    def prepare_data(self, props: Properties) -> tuple[dict, str]:
        """Prepare the splits in /tmp and upload them once per content hash; returns (manifest, prefix)."""
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            out = Path(tmp) / "prepared"
            if props.source == "synthetic":
                manifest = prepare.prepare_source("synthetic", out, synthetic_rows=props.synthetic_rows)
            else:
                local = sources.fetch(props.source, Path(tmp) / "source", s3_client=self.s3)
                manifest = prepare.prepare_source(local, out)
            summary = {k: manifest[k] for k in ("source", "rows_valid", "rows_malformed", "splits", "sha256")}
            logger.info("prepared %s", json.dumps(summary))
            prefix = f"{naming.PREFIXES.prepared}{manifest['sha256'][:32]}/"
            if not self._object_exists(props.bucket, prefix + prepare.MANIFEST):
                for name in manifest["files"]:
                    self.s3.upload_file(str(out / name), props.bucket, prefix + name)
                # The manifest goes last: its presence means the whole prepared set is there.
                self.s3.upload_file(str(out / prepare.MANIFEST), props.bucket, prefix + prepare.MANIFEST)
        return manifest, prefix

    def _training_request_builder(self, model: str, props: Properties, manifest: dict, data_prefix: str):
        build = requests.xgboost_training if model == "fraud" else requests.rcf_training
        return functools.partial(
            build,
            image=props.image(model),
            role_arn=props.job_role_arn,
            bucket=props.bucket,
            data_prefix=data_prefix,
            instance_type=props.training_instance_type,
            manifest=manifest,
        )

    def _ensure_training_job(self, base: str, request_for) -> str:
        """Reuse a running/completed job with these inputs, else start one (a failed one gets a retry)."""
        last = None
        for name in naming.candidate_names(base):
            state = self.describe_training(name)
            if state.status is None:
                logger.info("starting training job %s", name)
                self.sagemaker.create_training_job(**request_for(name))
                return name
            if state.status not in progress.FAILED:
                logger.info("reusing training job %s (%s)", name, state.status)
                return name
            last = state
        raise TrainingFailed(
            f"training with these inputs failed {naming.MAX_ATTEMPTS} times; last job {last.name} is "
            f"{last.status}: {last.failure_reason or 'no reason given'}"
        )

    def _pick_transform_name(self, base: str) -> str:
        last = None
        for name in naming.candidate_names(base):
            state = self.describe_transform(name)
            if state.status is None or state.status not in progress.FAILED:
                return name
            last = state
        raise TrainingFailed(
            f"scoring with these inputs failed {naming.MAX_ATTEMPTS} times; last job {last.name}: "
            f"{last.failure_reason or 'no reason given'}"
        )

    def delete(self, physical_id: str) -> None:
        """Stop this resource's running jobs and drop its temporary models (data goes with the bucket)."""
        if not physical_id.startswith(PHYSICAL_ID_PREFIX):
            return  # the create failed before a job was named: nothing of ours exists
        fraud_digest, _, anomaly_digest = physical_id.removeprefix(PHYSICAL_ID_PREFIX).partition("-")
        for algorithm, digest in (("xgboost", fraud_digest), ("rcf", anomaly_digest)):
            for training_name in naming.candidate_names(naming.base_job_name(algorithm, digest)):
                status = self.describe_training(training_name).status
                if status is None:
                    break  # attempts are numbered in order: no later attempt exists either
                if status in progress.RUNNING:
                    logger.info("stopping training job %s", training_name)
                    self.sagemaker.stop_training_job(TrainingJobName=training_name)
                for transform_name in naming.candidate_names(naming.transform_job_name(training_name)):
                    if self.describe_transform(transform_name).status in progress.RUNNING:
                        logger.info("stopping transform job %s", transform_name)
                        self.sagemaker.stop_transform_job(TransformJobName=transform_name)
                self._delete_model(training_name)

    # ---- is_complete ----------------------------------------------------------------------------

    def is_complete(self, event: dict) -> dict:
        if event["RequestType"] == "Delete":
            return {"IsComplete": True}
        props = Properties.from_event(event)
        data = event["Data"]
        training = {model: self.describe_training(data[f"{_cap(model)}TrainingJob"]) for model in MODELS}
        scoring = {model: self.describe_transform(data[f"{_cap(model)}ScoringJob"]) for model in MODELS}
        decision = progress.decide(training, scoring)
        logger.info(
            "jobs: %s -> %s",
            {job.name: job.status for job in (*training.values(), *scoring.values())},
            decision,
        )
        if decision.failure:
            for job in training.values():
                self._delete_model(job.name)
            raise TrainingFailed(decision.failure)
        for model in decision.start_transforms:
            self._start_scoring(model, props, data, training[model])
        if not decision.finished:
            return {"IsComplete": False}
        result = self._results(props, data, training)
        for job in training.values():
            self._delete_model(job.name)
        logger.info("results %s", json.dumps(result))
        return {"IsComplete": True, "Data": result}

    def _start_scoring(self, model: str, props: Properties, data: dict, training: progress.JobState) -> None:
        model_name = training.name  # temporary; the serving CfnModel is separate and stack-managed
        try:
            self.sagemaker.create_model(
                **requests.model(
                    model_name,
                    image=props.image(model),
                    model_data_url=training.model_artifacts,
                    role_arn=props.job_role_arn,
                )
            )
        except ClientError as error:
            if "already exist" not in str(error).lower():
                raise
        name = data[f"{_cap(model)}ScoringJob"]
        split = SCORED_SPLIT[model]
        logger.info("starting transform job %s (%s split)", name, split)
        self.sagemaker.create_transform_job(
            **requests.scoring_transform(
                name,
                model_name=model_name,
                input_uri=f"s3://{props.bucket}/{data['DataPrefix']}{prepare.FEATURE_FILES[split]}",
                output_uri=f"s3://{props.bucket}/{naming.PREFIXES.transform}{name}/",
                accept=ACCEPT[model],
                instance_type=props.transform_instance_type,
            )
        )

    def _results(self, props: Properties, data: dict, training: dict[str, progress.JobState]) -> dict:
        def output(model: str) -> str:
            split_file = Path(prepare.FEATURE_FILES[SCORED_SPLIT[model]]).name
            return self._read_text(
                props.bucket,
                f"{naming.PREFIXES.transform}{data[f'{_cap(model)}ScoringJob']}/{split_file}.out",
            )

        labels = parse_labels(
            self._read_text(props.bucket, data["DataPrefix"] + prepare.XGBOOST_FILES["validation"])
        )
        probabilities = parse_csv_scores(output("fraud"))
        if len(probabilities) != len(labels):
            raise TrainingFailed(f"scoring returned {len(probabilities)} predictions for {len(labels)} rows")
        choice = thresholds.best_f1_threshold(labels, probabilities)
        anomaly = thresholds.anomaly_threshold(parse_json_scores(output("anomaly")))
        return {
            "FraudModelDataUrl": training["fraud"].model_artifacts,
            "AnomalyModelDataUrl": training["anomaly"].model_artifacts,
            "FraudThreshold": _number(choice.threshold),
            "AnomalyThreshold": _number(anomaly),
            "ValidationF1": _number(choice.confusion.f1),
            "ValidationPrecision": _number(choice.confusion.precision),
            "ValidationRecall": _number(choice.confusion.recall),
        }

    # ---- SageMaker / S3 helpers -----------------------------------------------------------------

    def describe_training(self, name: str) -> progress.JobState:
        try:
            job = self.sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError as error:
            if _not_found(error):
                return progress.JobState(name, None)
            raise
        return progress.JobState(
            name,
            job["TrainingJobStatus"],
            job.get("FailureReason"),
            job.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
        )

    def describe_transform(self, name: str) -> progress.JobState:
        try:
            job = self.sagemaker.describe_transform_job(TransformJobName=name)
        except ClientError as error:
            if _not_found(error):
                return progress.JobState(name, None)
            raise
        return progress.JobState(name, job["TransformJobStatus"], job.get("FailureReason"))

    def _delete_model(self, name: str) -> None:
        try:
            self.sagemaker.delete_model(ModelName=name)
        except ClientError as error:
            if not _not_found(error):
                raise

    def _object_exists(self, bucket: str, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _read_text(self, bucket: str, key: str) -> str:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")


def _not_found(error: ClientError) -> bool:
    # SageMaker answers a missing job or model with ValidationException ("... not found" /
    # "Could not find ..."), not with a dedicated error code.
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "").lower()
    return code in ("ResourceNotFound", "ValidationException") and (
        "not found" in message or "could not find" in message
    )


def _cap(model: str) -> str:
    return model.capitalize()


def _number(value: float) -> str:
    return repr(round(value, 6))


@functools.cache
def _trainer() -> Trainer:
    return Trainer(
        sagemaker=boto3.client("sagemaker", config=CLIENT_CONFIG),
        s3=boto3.client("s3", config=CLIENT_CONFIG),
        workdir=Path(tempfile.gettempdir()),
    )


def on_event(event: dict, context: object) -> dict:
    return _trainer().on_event(event)


def is_complete(event: dict, context: object) -> dict:
    return _trainer().is_complete(event)
