"""The custom resource's properties (what stacks/models/training.py passes), parsed once per event."""

from __future__ import annotations

from dataclasses import dataclass

from training import spec as model_spec
from training.custom_resource import budget
from training.custom_resource import quotas as quota_check


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
    simulation: model_spec.SimulationSize = model_spec.SimulationSize()
    source_sha256: str | None = None
    quotas: tuple[quota_check.Need, ...] = ()
    training_max_runtime_s: int = budget.TRAINING_MAX_RUNTIME_S
    job_deadline_s: int = budget.JOB_DEADLINE_S

    @classmethod
    def from_event(cls, event: dict) -> Properties:
        props = event.get("ResourceProperties", {})
        try:
            simulation = props.get("Simulation") or {}
            return cls(
                source=props["Source"],
                synthetic_rows=int(props.get("SyntheticRows", "100000")),
                bucket=props["Bucket"],
                job_role_arn=props["JobRoleArn"],
                xgboost_image=props["XgboostImage"],
                rcf_image=props["RcfImage"],
                training_instance_type=props["TrainingInstanceType"],
                transform_instance_type=props["TransformInstanceType"],
                simulation=model_spec.SimulationSize(
                    customers=int(simulation.get("Customers", model_spec.SimulationSize.customers)),
                    terminals=int(simulation.get("Terminals", model_spec.SimulationSize.terminals)),
                    days=int(simulation.get("Days", model_spec.SimulationSize.days)),
                    start=simulation.get("Start", model_spec.SimulationSize.start),
                    seed=int(simulation.get("Seed", model_spec.SimulationSize.seed)),
                ),
                source_sha256=(props.get("SourceSha256") or "").lower() or None,
                quotas=tuple(quota_check.Need.from_property(q) for q in props.get("Quotas", [])),
                training_max_runtime_s=int(
                    props.get("TrainingMaxRuntimeSeconds", budget.TRAINING_MAX_RUNTIME_S)
                ),
                job_deadline_s=int(props.get("JobDeadlineSeconds", budget.JOB_DEADLINE_S)),
            )
        except KeyError as missing:
            raise ValueError(f"custom resource property {missing} is required") from None

    def image(self, model: str) -> str:
        return self.xgboost_image if model == "fraud" else self.rcf_image
