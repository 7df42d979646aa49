"""The TrainedModels construct, synthesized in a minimal stack (fast), with cdk-nag and cfn-lint.

Three syntheses cover the options: the defaults (training on simulated data, both models on one
multi-container endpoint), training from a local file with separate endpoints (a serverless XGBoost
one) and custom instance types, and skipped training.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
import cfnlint.api  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk import aws_logs as logs  # noqa: E402
from aws_cdk.assertions import Capture, Match, Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from contracts.sagemaker_formats import ANOMALY_CONTAINER_HOSTNAME, FRAUD_CONTAINER_HOSTNAME  # noqa: E402
from stacks.context import ContextReader  # noqa: E402
from stacks.models import ModelsConfig, TrainedModels  # noqa: E402
from stacks.models.config import CREDITCARD_DATA_SOURCE  # noqa: E402
from stacks.models.images import REGISTRY_ACCOUNTS  # noqa: E402
from training.custom_resource import budget  # noqa: E402

pytestmark = pytest.mark.infra

FRAUD_URL = "s3://my-models/fraud/model.tar.gz"
ANOMALY_URL = "s3://my-models/rcf/model.tar.gz"


@dataclass
class Synth:
    template: Template
    outdir: Path
    models: TrainedModels

    @property
    def json(self) -> dict:
        return self.template.to_json()

    def resources(self, type_: str) -> dict[str, dict]:
        return self.template.find_resources(type_)


def _synth(tmp_path_factory, name: str, context: dict) -> Synth:
    outdir = tmp_path_factory.mktemp(name)
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "FraudDetection")
    models = TrainedModels(
        stack,
        "Models",
        config=ModelsConfig.from_context(ContextReader(context.get)),
        log_retention=logs.RetentionDays.ONE_MONTH,
    )
    invoker = iam.Role(stack, "Invoker", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    models.grant_invoke(invoker)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # app.synth() runs cdk-nag: any unacknowledged finding raises here.
    app.synth()
    template = json.loads((outdir / "FraudDetection.template.json").read_text())
    return Synth(Template.from_json(template), outdir, models)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Synth:
    return _synth(tmp_path_factory, "trained", {})  # every default


@pytest.fixture(scope="module")
def from_file_serverless(tmp_path_factory) -> Synth:
    data = tmp_path_factory.mktemp("data") / "creditcard.csv"
    data.write_text("Time,V1\n0,1\n")  # only uploaded as an asset here; never parsed at synth
    return _synth(
        tmp_path_factory,
        "serverless",
        {
            "trainingDataSource": str(data),
            "endpointLayout": "separate",
            "fraudEndpointServerless": "true",
            "fraudServerlessMemoryMb": "4096",
            "fraudServerlessMaxConcurrency": "10",
            "anomalyEndpointInstanceType": "ml.c5.xlarge",
            "trainingInstanceType": "ml.m5.2xlarge",
        },
    )


@pytest.fixture(scope="module")
def skipped(tmp_path_factory) -> Synth:
    return _synth(
        tmp_path_factory,
        "skipped",
        {
            "skipTraining": "true",
            "fraudModelDataUrl": FRAUD_URL,
            "anomalyModelDataUrl": ANOMALY_URL,
            "fraudThreshold": "0.73",
            "modelFeatureSpecVersion": "abc123def456",
        },
    )


def test_both_models_share_one_instance_on_a_multi_container_endpoint_by_default(trained):
    t = trained.template
    t.resource_count_is("AWS::SageMaker::Model", 1)
    t.resource_count_is("AWS::SageMaker::EndpointConfig", 1)
    t.resource_count_is("AWS::SageMaker::Endpoint", 1)
    # Direct invocation: the scorer names the container on each call (TargetContainerHostname)
    (model,) = trained.resources("AWS::SageMaker::Model").values()
    properties = model["Properties"]
    assert properties["InferenceExecutionConfig"] == {"Mode": "Direct"}
    assert "PrimaryContainer" not in properties
    containers = {c["ContainerHostname"]: c for c in properties["Containers"]}
    assert set(containers) == {FRAUD_CONTAINER_HOSTNAME, ANOMALY_CONTAINER_HOSTNAME}
    assert "sagemaker-xgboost" in json.dumps(containers[FRAUD_CONTAINER_HOSTNAME]["Image"])
    assert "randomcutforest" in json.dumps(containers[ANOMALY_CONTAINER_HOSTNAME]["Image"])
    assert containers[FRAUD_CONTAINER_HOSTNAME]["ModelDataUrl"]["Fn::GetAtt"][1] == "FraudModelDataUrl"
    assert containers[ANOMALY_CONTAINER_HOSTNAME]["ModelDataUrl"]["Fn::GetAtt"][1] == "AnomalyModelDataUrl"
    # One instance for both, and a small one: the idle-cost levers (one ml.t2.medium instead of two
    # ml.m5.large; docs/cost.md, docs/deploy.md "Endpoint instance").
    t.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like({"InstanceType": "ml.t2.medium", "InitialInstanceCount": 1})
            ]
        },
    )
    # No fixed names on model/config: a new model replaces them while the endpoint is updated.
    t.has_resource_properties("AWS::SageMaker::Model", {"ModelName": Match.absent()})
    t.all_resources_properties("AWS::SageMaker::EndpointConfig", {"EndpointConfigName": Match.absent()})
    t.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "FraudDetection-models"})
    # The scorer gets the same name twice: that is how it knows to target containers.
    assert trained.models.fraud_endpoint_name == trained.models.anomaly_endpoint_name
    assert list(trained.models.endpoints) == ["Models"]


def test_separate_layout_serves_each_model_behind_its_own_endpoint(from_file_serverless):
    t = from_file_serverless.template
    t.resource_count_is("AWS::SageMaker::Model", 2)
    t.resource_count_is("AWS::SageMaker::Endpoint", 2)
    t.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "FraudDetection-fraud"})
    t.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "FraudDetection-anomaly"})
    t.all_resources_properties("AWS::SageMaker::Model", {"InferenceExecutionConfig": Match.absent()})
    models = from_file_serverless.models
    assert models.fraud_endpoint_name != models.anomaly_endpoint_name
    assert set(models.endpoints) == {"Fraud", "Anomaly"}


def test_models_use_region_mapped_images_and_the_trained_artifacts(from_file_serverless):
    image = Capture()
    data_url = Capture()
    from_file_serverless.template.has_resource_properties(
        "AWS::SageMaker::Model",
        {"PrimaryContainer": {"Image": image, "ModelDataUrl": data_url}},
    )
    rendered = json.dumps(image.as_object())
    assert "Fn::FindInMap" in rendered
    assert "AWS::Region" in rendered
    assert data_url.as_object()["Fn::GetAtt"][1] in ("FraudModelDataUrl", "AnomalyModelDataUrl")
    trained = from_file_serverless
    (mapping,) = trained.json["Mappings"].values()
    assert mapping["us-east-1"] == {"xgboost": "683313688378", "randomcutforest": "382416733822"}
    assert set(mapping) == set(REGISTRY_ACCOUNTS)
    assert len(mapping) > 20


def test_endpoint_configs_are_encrypted_with_a_rotating_key_and_instance_types_from_context(trained):
    t = trained.template
    key_arn = Capture()
    t.all_resources_properties("AWS::SageMaker::EndpointConfig", {"KmsKeyId": key_arn})
    (key_id,) = t.find_resources("AWS::KMS::Key", {"Properties": {"EnableKeyRotation": True}})
    assert key_arn.as_object() == {"Fn::GetAtt": [key_id, "Arn"]}
    t.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Delete"})
    t.all_resources_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like({"InstanceType": "ml.t2.medium", "InitialInstanceCount": 1})
            ]
        },
    )


def test_serverless_option_for_the_xgboost_endpoint(from_file_serverless):
    t = from_file_serverless.template
    t.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like(
                    {
                        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10},
                        "InstanceType": Match.absent(),
                    }
                )
            ],
            "KmsKeyId": Match.any_value(),
        },
    )
    t.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like({"InstanceType": "ml.c5.xlarge", "ServerlessConfig": Match.absent()})
            ]
        },
    )
    t.has_resource_properties(
        "Custom::FraudModelTraining",
        {"TrainingInstanceType": "ml.m5.2xlarge", "TransformInstanceType": "ml.m5.large"},
    )


def test_training_custom_resource_runs_on_the_provider_framework(trained):
    t = trained.template
    t.resource_count_is("Custom::FraudModelTraining", 1)
    t.has_resource_properties(
        "Custom::FraudModelTraining",
        {
            # The default: simulated data generated in the Lambda, at the Handbook's size, seeded
            "Source": "simulated",
            "Simulation": {
                "Customers": "5000",
                "Terminals": "10000",
                "Days": "183",
                "Start": "2018-04-01",
                "Seed": "42",
            },
            "TrainingInstanceType": "ml.m5.xlarge",
            "XgboostImage": Match.any_value(),
            "RcfImage": Match.any_value(),
            "RuntimeVersion": Match.any_value(),
        },
    )
    # The provider's waiter polls is_complete and logs everything it does.
    t.has_resource_properties(
        "AWS::StepFunctions::StateMachine", {"LoggingConfiguration": Match.object_like({"Level": "ALL"})}
    )
    # Thresholds, endpoint data and the feature-spec version come from the custom resource.
    stack = cdk.Stack.of(trained.models)
    assert "FraudThreshold" in json.dumps(stack.resolve(trained.models.fraud_threshold))
    assert stack.resolve(trained.models.feature_spec_version)["Fn::GetAtt"][1] == "FeatureSpecVersion"


def _lambda_timeout(synth: Synth, handler: str) -> int:
    (function,) = [
        f
        for f in synth.resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == handler
    ]
    return function["Properties"]["Timeout"]


def _waiter_retry(synth: Synth) -> dict:
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    definition = "".join(
        p for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1] if isinstance(p, str)
    )
    (retry,), _ = json.JSONDecoder().raw_decode(definition, definition.index('"Retry":') + len('"Retry":'))
    return retry


def test_every_job_budget_fits_inside_the_custom_resource_timeout(trained):
    """CloudFormation waits at most ServiceTimeout (1..3600 s) for a custom resource; the provider, the
    preparation, training and scoring must all end before it, with margin, or jobs outlive the stack."""
    (resource,) = trained.resources("Custom::FraudModelTraining").values()
    properties = resource["Properties"]
    service_timeout = int(properties["ServiceTimeout"])
    assert service_timeout <= 3600  # AWS::CloudFormation::CustomResource ServiceTimeout maximum
    # The provider framework's total: retries of is_complete at a fixed interval (backoff 1).
    retry = _waiter_retry(trained)
    assert retry["BackoffRate"] == 1
    provider_total = retry["IntervalSeconds"] * retry["MaxAttempts"]
    assert provider_total <= service_timeout - 300  # time for the failure response to reach CloudFormation
    # The jobs: preparation (the on_event Lambda), training (each job's MaxRuntimeInSeconds), scoring;
    # is_complete enforces their shared deadline and notices it at most one poll (and one run) late.
    prepare = _lambda_timeout(trained, "training.custom_resource.handler.on_event")
    poll = _lambda_timeout(trained, "training.custom_resource.handler.is_complete")
    training = int(properties["TrainingMaxRuntimeSeconds"])
    deadline = int(properties["JobDeadlineSeconds"])
    assert prepare <= 900  # Lambda's maximum
    # The Provider framework's own onEvent function calls on_event synchronously: ours must end first,
    # or the framework dies at the same limit and CloudFormation waits out the ServiceTimeout (the CDK
    # custom_resources README: "not to exceed a 14 minutes timeout").
    assert prepare < _lambda_timeout(trained, "framework.onEvent")
    assert prepare + 60 <= _lambda_timeout(trained, "framework.onEvent")
    assert prepare + training + budget.SCORING_BUDGET_S <= deadline
    assert budget.SCORING_BUDGET_S >= 300  # two transforms on fresh instances need minutes
    assert deadline + retry["IntervalSeconds"] + poll <= provider_total


def test_quotas_are_checked_for_every_instance_the_deployment_runs_at_once(trained, from_file_serverless):
    (defaults,) = trained.resources("Custom::FraudModelTraining").values()
    assert sorted(defaults["Properties"]["Quotas"], key=lambda q: q["Usage"]) == [
        # The endpoint type actually configured (ml.t2.medium by default), one shared instance.
        {"InstanceType": "ml.t2.medium", "Usage": "endpoint", "Count": "1"},
        {"InstanceType": "ml.m5.xlarge", "Usage": "training job", "Count": "2"},  # both jobs in parallel
        {"InstanceType": "ml.m5.large", "Usage": "transform job", "Count": "2"},
    ]
    (separate,) = from_file_serverless.resources("Custom::FraudModelTraining").values()
    # The serverless XGBoost endpoint needs no instance; the RCF one runs on ml.c5.xlarge.
    assert {"InstanceType": "ml.c5.xlarge", "Usage": "endpoint", "Count": "1"} in separate["Properties"][
        "Quotas"
    ]
    assert [q for q in separate["Properties"]["Quotas"] if q["Usage"] == "endpoint"] == [
        {"InstanceType": "ml.c5.xlarge", "Usage": "endpoint", "Count": "1"}
    ]


def test_only_the_preparation_reads_quotas_and_it_can_change_nothing(trained):
    def quota_actions(role: str) -> list[str]:
        return [
            a
            for statement in _policies_of_role(trained, role)
            for a in _as_list(statement["Action"])
            if a.startswith("servicequotas:")
        ]

    assert sorted(quota_actions("ModelsTrainingPrepareRole")) == [
        "servicequotas:ListAWSDefaultServiceQuotas",
        "servicequotas:ListServiceQuotas",
    ]
    assert quota_actions("ModelsTrainingPollRole") == []
    assert quota_actions("ModelsTrainingJobRole") == []


def test_a_local_source_file_is_pinned_by_its_sha256_at_synth(from_file_serverless, tmp_path):
    (resource,) = from_file_serverless.resources("Custom::FraudModelTraining").values()
    expected = hashlib.sha256(b"Time,V1\n0,1\n").hexdigest()
    assert resource["Properties"]["SourceSha256"] == expected


def test_custom_resource_code_holds_only_its_runtime_and_what_it_imports(trained):
    manifest = json.loads((trained.outdir / "FraudDetection.assets.json").read_text())
    code_dirs = [
        trained.outdir / f["source"]["path"]
        for f in manifest["files"].values()
        if (trained.outdir / f["source"]["path"]).is_dir()
        and (trained.outdir / f["source"]["path"] / "fraud_data").is_dir()
    ]
    (code,) = code_dirs
    assert sorted(p.name for p in code.iterdir()) == ["contracts", "fraud_data", "training"]
    assert sorted(p.name for p in (code / "training").iterdir()) == [
        "__init__.py",
        "custom_resource",
        "prepare.py",
        "spec.py",
        "thresholds.py",
    ]
    # The Lambda has the standard library and boto3 only: the runtime must import from this folder
    # (-S: site-packages is added by hand for boto3, without its .pth files, so the project's editable
    # install cannot stand in) and must not pull in the CDK or the data-science stack.
    site_packages = str(Path(boto3.__file__).resolve().parents[1])
    probe = (
        f"import sys; sys.path[:0] = ['.']; sys.path.append({site_packages!r}); "
        "import training.custom_resource.handler as h; "
        "assert callable(h.on_event) and callable(h.is_complete); "
        "assert all(m.split('.')[0] not in ('aws_cdk', 'numpy', 'xgboost') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-S", "-c", probe], cwd=code, check=True)


def _policies_of_role(synth: Synth, role_fragment: str) -> list[dict]:
    roles = [rid for rid in synth.resources("AWS::IAM::Role") if role_fragment in rid]
    statements = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        attached = [r.get("Ref") for r in policy["Properties"].get("Roles", [])]
        if any(r in roles for r in attached):
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statements, f"no policy for roles matching {role_fragment}"
    return statements


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(
    "role",
    ["ModelsTrainingJobRole", "ModelsTrainingPrepareRole", "ModelsTrainingPollRole", "ModelsModelRole"],
)
def test_roles_are_scoped_to_the_stacks_bucket_prefixes_and_named_jobs(trained, role):
    (bucket_id,) = trained.resources("AWS::S3::Bucket")
    for statement in _policies_of_role(trained, role):
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        assert not any(a.endswith(":*") or a == "*" for a in actions), statement
        if resources == ["*"]:
            # Only actions without a resource type: PutMetricData (limited to SageMaker's namespaces
            # by a condition) and the read-only quota listing of the preparation.
            if actions[0].startswith("servicequotas:"):
                assert role == "ModelsTrainingPrepareRole"
                assert all(a.startswith("servicequotas:List") for a in actions)
                continue
            assert actions == ["cloudwatch:PutMetricData"]
            assert statement["Condition"]["StringLike"]["cloudwatch:namespace"]
            continue
        for resource in resources:
            rendered = json.dumps(resource)
            if any(a.startswith("s3:") for a in actions):
                assert bucket_id in rendered, statement
                if "s3:ListBucket" not in actions:
                    assert any(f"/{p}/*" in rendered for p in ("prepared", "training", "transform")), (
                        statement
                    )
            elif any(a.startswith("sagemaker:") for a in actions):
                assert any(
                    f"{kind}/fraud-*" in rendered for kind in ("training-job", "transform-job", "model")
                )
            elif any(a.startswith("iam:") for a in actions):
                assert actions == ["iam:PassRole"]
                assert "JobRole" in rendered


# The SageMaker calls of each handler of the training custom resource, read from
# training/custom_resource/ (lifecycle.py on_event / is_complete and the jobs.py methods they run).
HANDLER_SAGEMAKER_CALLS = {
    # on_event: Create/Update start the training jobs (describe, create; stop the one started if the
    # other cannot start) and name the transforms (describe); Delete stops every attempt, drops models.
    "ModelsTrainingPrepareRole": {
        "training-job": {"CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"},
        "transform-job": {"DescribeTransformJob", "StopTransformJob"},
        "model": {"DeleteModel"},
    },
    # is_complete: describes the jobs, starts the scoring (temporary model, transform), stops what runs
    # on a failure or past the deadline, drops the temporary models. Neither calls DescribeModel.
    "ModelsTrainingPollRole": {
        "training-job": {"DescribeTrainingJob", "StopTrainingJob"},
        "transform-job": {"CreateTransformJob", "DescribeTransformJob", "StopTransformJob"},
        "model": {"CreateModel", "DeleteModel"},
    },
}


@pytest.mark.parametrize("role", list(HANDLER_SAGEMAKER_CALLS))
def test_each_training_handler_may_call_only_what_its_code_calls(trained, role):
    # GIVEN the role's SageMaker and IAM statements
    granted: dict[str, set[str]] = {}
    pass_role = []
    for statement in _policies_of_role(trained, role):
        actions = _as_list(statement["Action"])
        if any(a.startswith("sagemaker:") for a in actions):
            (resource,) = _as_list(statement["Resource"])
            kind = next(
                k for k in ("training-job", "transform-job", "model") if f":{k}/" in json.dumps(resource)
            )
            granted.setdefault(kind, set()).update(a.removeprefix("sagemaker:") for a in actions)
        elif "iam:PassRole" in actions:
            pass_role.append(statement)
    # THEN exactly the handler's calls, on this construct's names
    assert granted == HANDLER_SAGEMAKER_CALLS[role]
    # and it may hand SageMaker the job role only (CreateTrainingJob / CreateModel name it)
    (passed,) = pass_role
    assert _as_list(passed["Action"]) == ["iam:PassRole"]
    assert "JobRole" in json.dumps(passed["Resource"])


def test_grant_invoke_allows_exactly_these_endpoints(trained, from_file_serverless):
    (shared,) = [
        s for s in _policies_of_role(trained, "Invoker") if s["Action"] == "sagemaker:InvokeEndpoint"
    ]
    assert "endpoint/frauddetection-models" in json.dumps(shared["Resource"])
    assert not isinstance(shared["Resource"], list) or len(shared["Resource"]) == 1
    (statement,) = [
        s
        for s in _policies_of_role(from_file_serverless, "Invoker")
        if s["Action"] == "sagemaker:InvokeEndpoint"
    ]
    rendered = json.dumps(statement["Resource"])
    assert len(statement["Resource"]) == 2
    assert "endpoint/frauddetection-fraud" in rendered
    assert "endpoint/frauddetection-anomaly" in rendered


def test_data_bucket_is_encrypted_tls_only_and_removed_on_destroy(trained):
    t = trained.template
    t.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Delete",
            "Properties": Match.object_like(
                {
                    "BucketEncryption": Match.any_value(),
                    "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
                }
            ),
        },
    )
    t.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )
    t.resource_count_is("Custom::S3AutoDeleteObjects", 1)


def test_local_file_source_is_uploaded_as_an_asset_and_readable_by_the_preparation(from_file_serverless):
    source = Capture()
    from_file_serverless.template.has_resource_properties("Custom::FraudModelTraining", {"Source": source})
    rendered = json.dumps(source.as_object())
    assert rendered.startswith('{"Fn::Join"')
    assert "s3://" in rendered
    assert ".csv" in rendered
    statements = _policies_of_role(from_file_serverless, "ModelsTrainingPrepareRole")
    (read,) = [s for s in statements if "assets" in json.dumps(s["Resource"])]
    assert read["Action"] == "s3:GetObject"
    assert json.dumps(read["Resource"]).endswith('.csv"]]}')  # exactly the one object, no wildcard


def test_skip_training_serves_given_artifacts_with_context_thresholds(skipped):
    t = skipped.template
    t.resource_count_is("Custom::FraudModelTraining", 0)
    t.resource_count_is("AWS::StepFunctions::StateMachine", 0)
    (model,) = skipped.resources("AWS::SageMaker::Model").values()
    urls = {c["ContainerHostname"]: c["ModelDataUrl"] for c in model["Properties"]["Containers"]}
    assert urls == {FRAUD_CONTAINER_HOSTNAME: FRAUD_URL, ANOMALY_CONTAINER_HOSTNAME: ANOMALY_URL}
    assert skipped.models.fraud_threshold == "0.73"
    assert skipped.models.anomaly_threshold == "3.0"
    assert skipped.models.feature_spec_version == "abc123def456"
    (statement,) = [s for s in _policies_of_role(skipped, "ModelsModelRole") if s["Action"] == "s3:GetObject"]
    rendered = json.dumps(statement["Resource"])
    assert "my-models/fraud/model.tar.gz" in rendered
    assert "my-models/rcf/model.tar.gz" in rendered


@pytest.mark.parametrize("synth_name", ["trained", "from_file_serverless", "skipped"])
def test_cfn_lint_finds_no_errors(synth_name, request):
    synth = request.getfixturevalue(synth_name)
    matches = cfnlint.api.lint_file(synth.outdir / "FraudDetection.template.json")
    errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"fraudEndpointInstanceType": "m5.large"}, "fraudEndpointInstanceType"),
        ({"anomalyEndpointInstanceType": "ml.m5d.large"}, "anomalyEndpointInstanceType"),
        # NVMe instance storage without a `d` in the name: SageMaker refuses the KMS key there too.
        ({"endpointInstanceType": "ml.g5.xlarge"}, "endpointInstanceType"),
        ({"fraudEndpointServerless": "maybe"}, "fraudEndpointServerless"),
        ({"fraudServerlessMemoryMb": "1500"}, "fraudServerlessMemoryMb"),
        ({"trainingSyntheticRows": "ten"}, "trainingSyntheticRows"),
        ({"trainingDataSource": "/no/such/creditcard.csv"}, "trainingDataSource"),
        ({"trainingDataSource": "s3://"}, "trainingDataSource"),
        ({"xgboostVersion": "0.72"}, "xgboostVersion"),
        ({"skipTraining": "true"}, "fraudModelDataUrl"),
        (
            {"skipTraining": "true", "fraudModelDataUrl": FRAUD_URL, "anomalyModelDataUrl": "http://x"},
            "anomalyModelDataUrl",
        ),
        ({"fraudModelDataUrl": FRAUD_URL}, "skipTraining"),
        ({"fraudThreshold": "1.5"}, "fraudThreshold"),
        # A remote source needs its pinned SHA-256; the ULB zip's is published nowhere we could confirm.
        ({"trainingDataSource": CREDITCARD_DATA_SOURCE}, "trainingDataSha256"),
        ({"trainingDataSource": "https://example.com/creditcard.csv"}, "trainingDataSha256"),
        (
            {"trainingDataSource": CREDITCARD_DATA_SOURCE, "trainingDataSha256": "abc"},
            "trainingDataSha256",
        ),
        ({"fraudEndpointServerless": "true"}, "endpointLayout"),  # serverless hosts one model
        ({"endpointLayout": "both"}, "endpointLayout"),
        ({"endpointInstanceType": "ml.c5d.large"}, "endpointInstanceType"),
        ({"trainingSimulationDays": "30"}, "trainingSimulationDays"),  # shorter than the warm-up
        ({"trainingSimulationCustomers": "100000"}, "trainingSimulationCustomers"),
        # each key within its bounds, but together more than the preparation Lambda was measured to hold
        (
            {"trainingSimulationCustomers": "10000", "trainingSimulationDays": "184"},
            "trainingSimulationCustomers",
        ),
        (
            {"skipTraining": "true", "fraudModelDataUrl": FRAUD_URL, "anomalyModelDataUrl": ANOMALY_URL},
            "modelFeatureSpecVersion",
        ),
    ],
)
def test_bad_context_fails_synthesis_with_the_key_named(context, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        ModelsConfig.from_context(ContextReader(context.get))


def test_the_largest_simulation_allowed_is_the_one_measured_to_fit_the_preparation_lambda():
    # twice the default customers x days: measured at 3.2 GB peak and 255 s of CPU (docs/training.md)
    config = ModelsConfig.from_context(
        ContextReader({"trainingSimulationCustomers": "10000", "trainingSimulationDays": "183"}.get)
    )
    assert (config.simulation.customers, config.simulation.days) == (10_000, 183)


def test_context_strings_are_parsed_like_cdk_json_values():
    strings = {
        "endpointLayout": "separate",
        "fraudEndpointServerless": "true",
        "fraudServerlessMemoryMb": "3072",
        "trainingSyntheticRows": "5000",
    }
    typed = {
        "endpointLayout": "separate",
        "fraudEndpointServerless": True,
        "fraudServerlessMemoryMb": 3072,
        "trainingSyntheticRows": 5000,
    }
    assert ModelsConfig.from_context(ContextReader(strings.get)) == ModelsConfig.from_context(
        ContextReader(typed.get)
    )
    # "" means "use the default", as for every key
    assert ModelsConfig.from_context(ContextReader(lambda k: "")) == ModelsConfig()


@pytest.mark.parametrize("instance_type", ["ml.t2.medium", "ml.m5.large", "ml.c5.xlarge"])
def test_the_quota_check_names_the_endpoint_instance_actually_configured(instance_type):
    # The default is ml.t2.medium; `-c endpointInstanceType=ml.m5.large` switches back, and the quota
    # the deployment checks before training follows whichever type the endpoint will use.
    context = {} if instance_type == "ml.t2.medium" else {"endpointInstanceType": instance_type}
    config = ModelsConfig.from_context(ContextReader(context.get))
    assert config.endpoint_instance_type == instance_type
    endpoint_needs = [n for n in TrainedModels.quota_needs(config) if n.usage == "endpoint"]
    assert [(n.instance_type, n.count) for n in endpoint_needs] == [(instance_type, 1)]
    assert endpoint_needs[0].quota_name == f"{instance_type} for endpoint usage"
