"""The Kinesis stream, the scorer Lambda, its event source mapping and on-failure queue."""

from __future__ import annotations

from aws_cdk.assertions import Capture, Match

from tests.infra.synth import Synth


def only(synth: Synth, resource_type: str, props: dict | None = None) -> tuple[str, dict]:
    """The one resource of a type (optionally matching props): (logical id, resource)."""
    found = synth.template.find_resources(resource_type, {"Properties": props} if props else None)
    assert len(found) == 1, f"expected one {resource_type}, found {list(found)}"
    return next(iter(found.items()))


def scorer(synth: Synth) -> tuple[str, dict]:
    return only(synth, "AWS::Lambda::Function", {"PackageType": "Image"})


# --- stream ----------------------------------------------------------------------------------------


def test_stream_is_on_demand_and_kms_encrypted_by_default(default_synth):
    default_synth.template.resource_count_is("AWS::Kinesis::Stream", 1)
    default_synth.template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
            "ShardCount": Match.absent(),
            "RetentionPeriodHours": 24,
        },
    )


def test_stream_can_be_provisioned_with_a_shard_count(options_synth):
    options_synth.template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "ShardCount": 4,
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
        },
    )


# --- function --------------------------------------------------------------------------------------


def test_scorer_is_a_container_image_with_matching_architecture_and_asset_platform(default_synth):
    # THEN the function is x86_64 ...
    _, function = scorer(default_synth)
    assert function["Properties"]["Architectures"] == ["x86_64"]
    # ... and the image asset built from lambda_src/ targets the same platform
    images = default_synth.asset_manifest()["dockerImages"].values()
    lambda_images = [image for image in images if "Scorer/Function" in image["displayName"]]
    assert [image["source"]["platform"] for image in lambda_images] == ["linux/amd64"]


def test_arm64_scorer_gets_an_arm64_image(options_synth):
    _, function = scorer(options_synth)
    assert function["Properties"]["Architectures"] == ["arm64"]
    images = options_synth.asset_manifest()["dockerImages"].values()
    assert [i["source"]["platform"] for i in images if "Scorer/Function" in i["displayName"]] == [
        "linux/arm64"
    ]


def test_scorer_sizing_tracing_logs_and_powertools_environment(default_synth):
    log_group = Capture()
    default_synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "PackageType": "Image",
            "MemorySize": 1024,
            "Timeout": 60,
            "TracingConfig": {"Mode": "Active"},
            "LoggingConfig": {"LogGroup": {"Ref": log_group}},
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "POWERTOOLS_SERVICE_NAME": "fraud-scorer",
                        "POWERTOOLS_METRICS_NAMESPACE": "FraudDetection",
                        "POWERTOOLS_LOG_LEVEL": "INFO",
                        "TS_RETENTION_MS": "604800000",
                        "TXN_RETENTION_MS": "2592000000",  # documents expire: Redis memory is bounded
                        "REDIS_SECRET_ARN": Match.any_value(),
                    }
                )
            },
            "ReservedConcurrentExecutions": Match.absent(),
        },
    )
    group = default_synth.template_json["Resources"][log_group.as_string()]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 30
    assert group["DeletionPolicy"] == "Delete"


def test_scorer_options_from_context(options_synth):
    options_synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "PackageType": "Image",
            "MemorySize": 2048,
            "ReservedConcurrentExecutions": 20,
            "Environment": {
                "Variables": Match.object_like(
                    {"POWERTOOLS_LOG_LEVEL": "DEBUG", "TXN_RETENTION_MS": "86400000"}
                )
            },
        },
    )
    options_synth.template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})


def test_scorer_environment_holds_no_password(default_synth, external_synth, options_synth):
    for synth in (default_synth, external_synth, options_synth):
        _, function = scorer(synth)
        variables = function["Properties"]["Environment"]["Variables"]
        assert not [name for name in variables if "PASSWORD" in name.upper()]
        assert "REDIS_URL" not in variables  # a URL would carry the password
        assert "resolve:secretsmanager" not in str(variables)


def test_scorer_runs_in_the_isolated_subnets_only_with_self_hosted_redis(default_synth, external_synth):
    # GIVEN self-hosted Redis: the function is in the VPC's isolated subnets
    subnets = Capture()
    default_synth.template.has_resource_properties(
        "AWS::Lambda::Function", {"PackageType": "Image", "VpcConfig": {"SubnetIds": subnets}}
    )
    resources = default_synth.template_json["Resources"]
    for ref in subnets.as_array():
        tags = {t["Key"]: t["Value"] for t in resources[ref["Ref"]]["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"
    # THEN with external Redis it is outside the VPC (it reaches Redis over the internet)
    _, function = scorer(external_synth)
    assert "VpcConfig" not in function["Properties"]


# --- event source mapping -----------------------------------------------------------------------------


def test_event_source_mapping_is_bounded_and_reports_partial_failures(default_synth):
    stream_id, _ = only(default_synth, "AWS::Kinesis::Stream")
    queue_id, _ = only(default_synth, "AWS::SQS::Queue")
    function_id, _ = scorer(default_synth)
    default_synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [stream_id, "Arn"]},
            "FunctionName": {"Ref": function_id},
            "BatchSize": 500,
            "MaximumBatchingWindowInSeconds": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            # Retried through an outage, up to the records' age (an hour), then to the on-failure queue
            "MaximumRetryAttempts": 10000,
            "MaximumRecordAgeInSeconds": 3600,
            "ParallelizationFactor": 1,
            "StartingPosition": "TRIM_HORIZON",
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}},
        },
    )


def test_event_source_mapping_options_from_context(options_synth):
    options_synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 200,
            "MaximumBatchingWindowInSeconds": 5,
            "ParallelizationFactor": 3,
            "MaximumRetryAttempts": 2,
            "MaximumRecordAgeInSeconds": 600,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
        },
    )


def test_on_failure_queue_is_encrypted_and_tls_only(default_synth):
    queue_id, queue = only(default_synth, "AWS::SQS::Queue")
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    default_synth.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "sqs:*",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )
