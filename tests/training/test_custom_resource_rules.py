"""The custom resource's pure rules: what to do next given the jobs' states, job names, the resource's
identity, its properties, and the quota arithmetic."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from training.custom_resource import budget, lifecycle, naming, progress, quotas
from training.custom_resource.properties import Properties
from training.spec import SimulationSize


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


def test_attempt_names_fit_sagemakers_limit_and_share_the_inputs_hash():
    base = naming.base_job_name("xgboost", "f" * 64)
    names = naming.candidate_names(base)
    assert names == [base, f"{base}-r1", f"{base}-r2"][: naming.MAX_ATTEMPTS]
    for name in names:
        scoring = naming.candidate_names(naming.transform_job_name(name))
        assert all(len(n) <= naming.MAX_NAME_LENGTH and n.startswith(naming.JOB_PREFIX) for n in scoring)


def test_the_physical_id_carries_both_models_input_hashes():
    digests = {"fraud": "a" * 64, "anomaly": "b" * 64}
    physical_id = lifecycle.physical_id(digests)
    assert lifecycle.digests_of(physical_id) == {"xgboost": "a" * 24, "rcf": "b" * 24}
    assert lifecycle.digests_of("provider-generated-id") is None


def _event(**properties) -> dict:
    base = {
        "Source": "simulated",
        "Bucket": "b",
        "JobRoleArn": "arn:aws:iam::123456789012:role/r",
        "XgboostImage": "x",
        "RcfImage": "r",
        "TrainingInstanceType": "ml.m5.xlarge",
        "TransformInstanceType": "ml.m5.large",
    }
    return {"ResourceProperties": {**base, **properties}}


def test_properties_default_to_the_budget_and_the_full_simulation():
    props = Properties.from_event(_event())
    assert props.simulation == SimulationSize()
    assert props.job_deadline_s == budget.JOB_DEADLINE_S
    assert props.training_max_runtime_s == budget.TRAINING_MAX_RUNTIME_S
    assert props.source_sha256 is None
    assert props.quotas == ()
    assert props.image("fraud") == "x"
    assert props.image("anomaly") == "r"


def test_properties_arrive_as_strings_and_are_parsed():
    # CloudFormation passes every custom-resource property value as a string.
    props = Properties.from_event(
        _event(
            Simulation={"Customers": "300", "Days": "75", "Seed": "7"},
            SourceSha256="ABCDEF",
            JobDeadlineSeconds="600",
            Quotas=[{"InstanceType": "ml.m5.large", "Usage": "endpoint", "Count": "1"}],
        )
    )
    assert (props.simulation.customers, props.simulation.days, props.simulation.seed) == (300, 75, 7)
    assert props.simulation.terminals == SimulationSize.terminals
    assert props.source_sha256 == "abcdef"
    assert props.job_deadline_s == 600
    assert props.quotas == (quotas.Need("ml.m5.large", "endpoint", 1),)


def test_an_unknown_quota_usage_is_refused():
    with pytest.raises(ValueError, match="unknown quota usage 'notebook'"):
        Properties.from_event(
            _event(Quotas=[{"InstanceType": "ml.t3.medium", "Usage": "notebook", "Count": "1"}])
        )


def test_quotas_of_one_type_add_up_across_usages_of_the_same_kind():
    merged = quotas.merge(
        [
            quotas.Need("ml.m5.large", "endpoint", 1),
            quotas.Need("ml.m5.large", "endpoint", 1),
            quotas.Need("ml.m5.large", "transform job", 2),
        ]
    )
    assert merged == [
        quotas.Need("ml.m5.large", "endpoint", 2),
        quotas.Need("ml.m5.large", "transform job", 2),
    ]


def test_sufficient_quotas_pass():
    client = boto3.client("service-quotas", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "list_service_quotas",
            {
                "Quotas": [
                    {"QuotaName": "ml.m5.xlarge for training job usage", "QuotaCode": "L-T", "Value": 2.0},
                    {"QuotaName": "ml.m5.large for transform job usage", "QuotaCode": "L-X", "Value": 2.0},
                    {"QuotaName": "ml.m5.large for endpoint usage", "QuotaCode": "L-E", "Value": 1.0},
                ]
            },
            {"ServiceCode": "sagemaker"},
        )
        needs = [
            quotas.Need("ml.m5.xlarge", "training job", 2),
            quotas.Need("ml.m5.large", "transform job", 2),
            quotas.Need("ml.m5.large", "endpoint", 1),
        ]
        quotas.check(client, needs)  # raises QuotaTooLow otherwise
        # every quota had an applied value: AWS's defaults were not needed
        stubber.assert_no_pending_responses()
