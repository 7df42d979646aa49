"""What to do next, as a pure function of the described SageMaker job states (easy to test).

Per model (`fraud`, `anomaly`): training job -> batch transform that scores a split -> done.
"""

from __future__ import annotations

from dataclasses import dataclass

IN_PROGRESS = "InProgress"  # the only status SageMaker lets a Stop* call act on
RUNNING = frozenset({IN_PROGRESS, "Stopping"})
FAILED = frozenset({"Failed", "Stopped"})
# Not worth waiting for: a Stopping job (a deadline stopped it) ends Stopped within ~2 minutes.
NOT_REUSABLE = FAILED | {"Stopping"}
COMPLETED = "Completed"


@dataclass(frozen=True)
class JobState:
    name: str
    status: str | None  # None: the job does not exist (yet)
    failure_reason: str | None = None
    model_artifacts: str | None = None  # training jobs: s3://…/model.tar.gz once Completed


@dataclass(frozen=True)
class Decision:
    failure: str | None = None  # raise this: the deployment fails with SageMaker's reason
    start_transforms: tuple[str, ...] = ()  # models whose scoring transform must be started now
    finished: bool = False  # every transform completed: compute thresholds and report


def decide(training: dict[str, JobState], transforms: dict[str, JobState]) -> Decision:
    failures = [_failure("training", job) for job in training.values() if job.status in FAILED] + [
        _failure("batch transform", job) for job in transforms.values() if job.status in FAILED
    ]
    if failures:
        return Decision(failure="; ".join(failures))
    for job in training.values():
        if job.status is None:
            return Decision(failure=f"training job {job.name} does not exist (was it deleted?)")
    start = tuple(
        model
        for model, job in training.items()
        if job.status == COMPLETED and transforms[model].status is None
    )
    finished = all(job.status == COMPLETED for job in (*training.values(), *transforms.values()))
    return Decision(start_transforms=start, finished=finished)


def _failure(kind: str, job: JobState) -> str:
    reason = job.failure_reason or "no reason given"
    return f"SageMaker {kind} job {job.name} is {job.status}: {reason}"
