"""The CloudFormation side: Create/Update/Delete (on_event) and the Provider framework's is_complete.

on_event  Create/Update: check the SageMaker quotas, prepare and upload the data (data.py), start (or
          reuse) both training jobs (jobs.py). Returns the physical id (the two models' input digests)
          and the job names as Data, which the framework hands to every is_complete call.
          Delete: stop this resource's jobs that are still running, drop temporary models.
is_complete  poll the jobs; when training is done, start a batch transform per model to score a
          split; when those are done, compute the thresholds (results.py) and return every result as
          attributes (with the feature-spec version the models were trained on). Past the deadline
          (budget.py) it stops every job still running and fails the deployment, before
          CloudFormation gives up.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.custom_resource import data, jobs, progress
from training.custom_resource import quotas as quota_check
from training.custom_resource.errors import TrainingFailed
from training.custom_resource.properties import Properties
from training.custom_resource.results import evaluate
from training.custom_resource.storage import Storage

logger = logging.getLogger(__name__)

PHYSICAL_ID_PREFIX = "fraud-models-"


def physical_id(digests: dict[str, str]) -> str:
    """The resource's identity is what its models depend on: new inputs, new resource."""
    return f"{PHYSICAL_ID_PREFIX}{digests['fraud'][:24]}-{digests['anomaly'][:24]}"


def digests_of(physical_id: str) -> dict[str, str] | None:
    """{algorithm: digest prefix} of a physical id we made; None for one the framework generated
    (the create failed before a job was named: nothing of ours exists)."""
    if not physical_id.startswith(PHYSICAL_ID_PREFIX):
        return None
    fraud, _, anomaly = physical_id.removeprefix(PHYSICAL_ID_PREFIX).partition("-")
    return {jobs.ALGORITHM["fraud"]: fraud, jobs.ALGORITHM["anomaly"]: anomaly}


def _key(model: str, kind: str) -> str:
    """The Data/attribute key of a model's job, e.g. FraudTrainingJob, AnomalyScoringJob."""
    return f"{model.capitalize()}{kind}Job"


def _number(value: float) -> str:
    return repr(round(value, 6))


class Trainer:
    """Holds the clients; the attributes are read at each call (tests swap them)."""

    def __init__(
        self,
        *,
        sagemaker: Any,
        s3: Any,
        workdir: Path,
        service_quotas: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.service_quotas = service_quotas
        self.workdir = workdir
        self.clock = clock

    @property
    def sagemaker_jobs(self) -> jobs.Jobs:
        return jobs.Jobs(self.sagemaker)

    @property
    def storage(self) -> Storage:
        return Storage(self.s3)

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
        started_at = self.clock()
        self.check_quotas(props)  # before minutes of preparation: fail fast, start nothing
        manifest, data_prefix = data.prepare_and_upload(props, self.storage, self.workdir)
        digests = {model: jobs.input_digest(model, props, manifest) for model in jobs.MODELS}
        sagemaker = self.sagemaker_jobs
        training = sagemaker.start_training(props, manifest, data_prefix, digests)
        scoring = {model: sagemaker.scoring_name(training[model]) for model in jobs.MODELS}
        return {
            "PhysicalResourceId": physical_id(digests),
            "Data": {
                "DataSha256": manifest["sha256"],
                "DataPrefix": data_prefix,
                "FeatureSpecVersion": manifest["feature_spec_version"],
                "StartedAt": repr(started_at),
                **{_key(model, "Training"): training[model] for model in jobs.MODELS},
                **{_key(model, "Scoring"): scoring[model] for model in jobs.MODELS},
            },
        }

    def check_quotas(self, props: Properties) -> None:
        if not props.quotas:
            return
        if self.service_quotas is None:
            raise ValueError("quotas to check but no Service Quotas client")
        try:
            quota_check.check(self.service_quotas, props.quotas, region=os.environ.get("AWS_REGION", ""))
        except quota_check.QuotaTooLow as error:
            raise TrainingFailed(str(error)) from None

    def delete(self, physical_id: str) -> None:
        """Stop this resource's running jobs and drop its temporary models (data goes with the bucket)."""
        digests = digests_of(physical_id)
        if digests is None:
            return
        for algorithm, digest in digests.items():
            self.sagemaker_jobs.stop_all_attempts(algorithm, digest)

    # ---- is_complete ----------------------------------------------------------------------------

    def is_complete(self, event: dict) -> dict:
        if event["RequestType"] == "Delete":
            return {"IsComplete": True}
        props = Properties.from_event(event)
        state = event["Data"]
        sagemaker = self.sagemaker_jobs
        training = {m: sagemaker.describe_training(state[_key(m, "Training")]) for m in jobs.MODELS}
        scoring = {m: sagemaker.describe_transform(state[_key(m, "Scoring")]) for m in jobs.MODELS}
        decision = progress.decide(training, scoring)
        logger.info(
            "jobs: %s -> %s",
            {job.name: job.status for job in (*training.values(), *scoring.values())},
            decision,
        )
        if decision.failure:
            # No job runs without its resource: the other model's job is stopped too (a failed
            # Update gets no Delete for these jobs).
            sagemaker.stop_running(training, scoring, why="a job of this deployment failed")
            raise TrainingFailed(decision.failure)
        elapsed = self.clock() - float(state.get("StartedAt", self.clock()))
        if not decision.finished and elapsed > props.job_deadline_s:
            sagemaker.stop_running(training, scoring, why="the deadline passed")
            raise TrainingFailed(_deadline_message(props, elapsed, [*training.values(), *scoring.values()]))
        for model in decision.start_transforms:
            sagemaker.start_scoring(
                model,
                props,
                name=state[_key(model, "Scoring")],
                data_prefix=state["DataPrefix"],
                training=training[model],
            )
        if not decision.finished:
            return {"IsComplete": False}
        attributes = self._attributes(props, state, training)
        for job in training.values():
            sagemaker.delete_model(job.name)
        logger.info("results %s", json.dumps(attributes))
        return {"IsComplete": True, "Data": attributes}

    def _attributes(self, props: Properties, state: dict, training: dict[str, progress.JobState]) -> dict:
        evaluation = evaluate(
            self.storage,
            props.bucket,
            data_prefix=state["DataPrefix"],
            scoring_jobs={model: state[_key(model, "Scoring")] for model in jobs.MODELS},
        )
        confusion = evaluation.fraud.confusion
        return {
            "FraudModelDataUrl": training["fraud"].model_artifacts,
            "AnomalyModelDataUrl": training["anomaly"].model_artifacts,
            "FeatureSpecVersion": state["FeatureSpecVersion"],
            "FraudThreshold": _number(evaluation.fraud.threshold),
            "AnomalyThreshold": _number(evaluation.anomaly_threshold),
            "ValidationF1": _number(confusion.f1),
            "ValidationPrecision": _number(confusion.precision),
            "ValidationRecall": _number(confusion.recall),
        }


def _deadline_message(props: Properties, elapsed: float, states: list[progress.JobState]) -> str:
    return (
        f"training and scoring did not finish within {props.job_deadline_s} s (deadline of this "
        f"custom resource, below CloudFormation's 3600 s limit; {elapsed:.0f} s elapsed); stopped "
        "the jobs still running. Jobs: "
        + ", ".join(f"{job.name} {job.status or 'not started'}" for job in states)
        + ". A smaller simulation (trainingSimulationDays) or larger instance types finish sooner."
    )
