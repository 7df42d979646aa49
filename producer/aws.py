"""AWS clients, the stream lookup from the stack's outputs, and AWS errors as one-line messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from contracts.stack_outputs import DEFAULT_STACK_NAME, STREAM_NAME
from producer.errors import ProducerError

DEFAULT_STACK = DEFAULT_STACK_NAME
STREAM_OUTPUT = STREAM_NAME

# Standard retry mode: botocore retries failed calls (connection errors, 5xx, throttled calls) with
# capped exponential backoff and jitter. Per-entry PutRecords failures are producer.sender's job.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=4,
)
EXAMPLE_ENDPOINT = "http://127.0.0.1:4566"  # a local Kinesis API (moto, LocalStack)
CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "InvalidSignatureException",
    }
)


def make_client(service: str, *, endpoint_url: str | None = None, region: str | None = None):
    if endpoint_url is not None:
        check_endpoint_url(endpoint_url)
    with aws_errors():
        return boto3.session.Session().client(
            service, region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
        )


def check_endpoint_url(url: str) -> str:
    """`url` if botocore takes it as an endpoint (a scheme and a host), else a ProducerError: botocore
    itself raises a bare ValueError, a traceback for a typo such as a missing `http://`."""
    if not (is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)):
        raise ProducerError(
            f"{url!r} is not an endpoint URL; give the scheme and host, e.g. {EXAMPLE_ENDPOINT}"
        )
    return url


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn the AWS failures a user can fix into ProducerError (one line, no traceback)."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise ProducerError(
            "no AWS credentials found: configure them (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY)"
        ) from None
    except NoRegionError:
        raise ProducerError("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None
    except EndpointConnectionError as exc:
        raise ProducerError(f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code in CREDENTIAL_ERRORS:
            raise ProducerError(f"AWS rejected the credentials: {code}") from None
        raise ProducerError(f"{exc.operation_name} failed: {code}: {error.get('Message', '')}") from None
    except BotoCoreError as exc:
        raise ProducerError(str(exc)) from None


def stream_from_stack(cloudformation, stack_name: str) -> str:
    """The `StreamName` output of the deployed stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        # CloudFormation reports an unknown stack as a ValidationError "Stack with id X does not exist".
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise ProducerError(
                f"stack {stack_name} not found (deploy it with `npx cdk deploy`, or pass --stream-name)"
            ) from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []} if stacks else {}
    if STREAM_OUTPUT not in outputs:
        raise ProducerError(f"stack {stack_name} has no {STREAM_OUTPUT} output; pass --stream-name")
    return outputs[STREAM_OUTPUT]


def check_stream(kinesis, stream_name: str) -> None:
    """Fail before reading any row when the stream does not exist or cannot take records."""
    try:
        status = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise ProducerError(f"stream {stream_name} not found") from None
        raise
    if status["StreamStatus"] not in ("ACTIVE", "UPDATING"):
        raise ProducerError(f"stream {stream_name} is {status['StreamStatus']}, not ACTIVE")
