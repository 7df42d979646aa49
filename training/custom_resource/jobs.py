"""SageMaker orchestration: start or reuse the training jobs, name and start the scoring transforms,
describe them, and stop what must not outlive the resource (orphans, jobs past the deadline, a delete).

A job's name is a hash of its inputs (data sha256, hyperparameters, image, output location), so an
update that changes nothing the models depend on finds the Completed jobs and does not retrain.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from training import prepare
from training.custom_resource import naming, progress, requests
from training.custom_resource.errors import TrainingFailed
from training.custom_resource.properties import Properties

logger = logging.getLogger(__name__)

MODELS = ("fraud", "anomaly")
ALGORITHM = {"fraud": "xgboost", "anomaly": "rcf"}
# Which split each model's scoring transform reads, and what it returns.
SCORED_SPLIT = {"fraud": "validation", "anomaly": "train"}
ACCEPT = {"fraud": "text/csv", "anomaly": "application/jsonlines"}
HYPERPARAMETERS = {"fraud": requests.xgboost_hyperparameters, "anomaly": requests.rcf_hyperparameters}
BUILD_TRAINING = {"fraud": requests.xgboost_training, "anomaly": requests.rcf_training}


def input_digest(model: str, props: Properties, manifest: dict) -> str:
    """Everything the trained model depends on; equal digests mean the same model."""
    return naming.digest(
        {
            "algorithm": ALGORITHM[model],
            "data_sha256": manifest["sha256"],
            "hyperparameters": HYPERPARAMETERS[model](manifest),
            "image": props.image(model),
            "output": f"s3://{props.bucket}/{naming.PREFIXES.training}",
        }
    )


def scored_file(model: str) -> str:
    """The prepared file (under the data prefix) that `model`'s scoring transform reads."""
    return prepare.FEATURE_FILES[SCORED_SPLIT[model]]


class Jobs:
    def __init__(self, sagemaker: Any) -> None:
        self.sagemaker = sagemaker

    # ---- training -------------------------------------------------------------------------------

    def start_training(
        self, props: Properties, manifest: dict, data_prefix: str, digests: dict[str, str]
    ) -> dict[str, str]:
        """Start (or reuse) both models' training jobs, named after their `input_digest`s; returns
        {model: job name}. If one cannot start, the jobs this call started are stopped again, so that
        no job runs without its resource."""
        names: dict[str, str] = {}
        started: list[str] = []
        for model in MODELS:
            base = naming.base_job_name(ALGORITHM[model], digests[model])
            request_for = functools.partial(
                BUILD_TRAINING[model],
                image=props.image(model),
                role_arn=props.job_role_arn,
                bucket=props.bucket,
                data_prefix=data_prefix,
                instance_type=props.training_instance_type,
                manifest=manifest,
                max_runtime_seconds=props.training_max_runtime_s,
            )
            try:
                names[model], created = self.ensure_training_job(base, request_for)
            except (ClientError, TrainingFailed) as error:
                self.stop_training_jobs(started, why="its resource failed to start")
                stopped = (
                    f"; stopped {', '.join(started)} so that no job runs without its resource"
                    if started
                    else ""
                )
                raise TrainingFailed(
                    f"could not start the {model} model's training: {error}{stopped}"
                ) from error
            if created:
                started.append(names[model])
        return names

    def ensure_training_job(self, base: str, request_for: Callable[[str], dict]) -> tuple[str, bool]:
        """Reuse a running/completed job with these inputs, else start one (a failed one gets a retry).
        Returns (job name, whether this call started it)."""
        last = None
        for name in naming.candidate_names(base):
            state = self.describe_training(name)
            if state.status is None:
                logger.info("starting training job %s", name)
                self.sagemaker.create_training_job(**request_for(name))
                return name, True
            if state.status not in progress.NOT_REUSABLE:
                logger.info("reusing training job %s (%s)", name, state.status)
                return name, False
            last = state
        raise TrainingFailed(
            f"training with these inputs failed {naming.MAX_ATTEMPTS} times; last job {last.name} is "
            f"{last.status}: {last.failure_reason or 'no reason given'}"
        )

    def stop_training_jobs(self, names: list[str], *, why: str) -> None:
        """Best effort: keep stopping the others if one cannot be stopped (the deployment fails anyway)."""
        for name in names:
            self._stop("training", name, why)

    def _stop(self, kind: str, name: str, why: str) -> None:
        """Ask SageMaker to stop a training or transform job; never raises. SageMaker refuses to stop
        a job that is no longer InProgress (already Stopping for up to 2 minutes, or just finished
        between the describe and this call): a Delete or a failure report must not fail on that."""
        logger.info("stopping %s job %s: %s", kind, name, why)
        try:
            if kind == "training":
                self.sagemaker.stop_training_job(TrainingJobName=name)
            else:
                self.sagemaker.stop_transform_job(TransformJobName=name)
        except ClientError as error:
            logger.warning("could not stop %s job %s: %s", kind, name, error)

    # ---- scoring --------------------------------------------------------------------------------

    def scoring_name(self, training_name: str) -> str:
        """The transform name for this model: the first attempt that has not failed."""
        last = None
        for name in naming.candidate_names(naming.transform_job_name(training_name)):
            state = self.describe_transform(name)
            if state.status is None or state.status not in progress.NOT_REUSABLE:
                return name
            last = state
        raise TrainingFailed(
            f"scoring with these inputs failed {naming.MAX_ATTEMPTS} times; last job {last.name}: "
            f"{last.failure_reason or 'no reason given'}"
        )

    def start_scoring(
        self, model: str, props: Properties, *, name: str, data_prefix: str, training: progress.JobState
    ) -> None:
        """Create the temporary model from the trained artifacts and start the transform `name`."""
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
        logger.info("starting transform job %s (%s split)", name, SCORED_SPLIT[model])
        self.sagemaker.create_transform_job(
            **requests.scoring_transform(
                name,
                model_name=model_name,
                input_uri=f"s3://{props.bucket}/{data_prefix}{scored_file(model)}",
                output_uri=f"s3://{props.bucket}/{naming.PREFIXES.transform}{name}/",
                accept=ACCEPT[model],
                instance_type=props.transform_instance_type,
            )
        )

    # ---- stopping -------------------------------------------------------------------------------

    def stop_running(
        self, training: dict[str, progress.JobState], scoring: dict[str, progress.JobState], *, why: str
    ) -> None:
        """Stop every job still running (the deadline, or a failed sibling) and drop the temporary
        models."""
        for job in training.values():
            if job.status == progress.IN_PROGRESS:
                self._stop("training", job.name, why)
        for job in scoring.values():
            if job.status == progress.IN_PROGRESS:
                self._stop("transform", job.name, why)
        for job in training.values():
            self.delete_model(job.name)

    def stop_all_attempts(self, algorithm: str, digest: str) -> None:
        """Stop every running attempt (training and its scoring) for these inputs; drop their models."""
        for training_name in naming.candidate_names(naming.base_job_name(algorithm, digest)):
            status = self.describe_training(training_name).status
            if status is None:
                break  # attempts are numbered in order: no later attempt exists either
            if status == progress.IN_PROGRESS:
                self._stop("training", training_name, "its resource is deleted")
            for transform_name in naming.candidate_names(naming.transform_job_name(training_name)):
                if self.describe_transform(transform_name).status == progress.IN_PROGRESS:
                    self._stop("transform", transform_name, "its resource is deleted")
            self.delete_model(training_name)

    # ---- describe / delete ----------------------------------------------------------------------

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

    def delete_model(self, name: str) -> None:
        try:
            self.sagemaker.delete_model(ModelName=name)
        except ClientError as error:
            if not _not_found(error):
                raise


def _not_found(error: ClientError) -> bool:
    # SageMaker answers a missing job or model with ValidationException ("... not found" /
    # "Could not find ..."), not with a dedicated error code.
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "").lower()
    return code in ("ResourceNotFound", "ValidationException") and (
        "not found" in message or "could not find" in message
    )
