"""Fixtures for the producer tests: a moto server (Kinesis + CloudFormation) and stream helpers."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest

from contracts.events import AMOUNT_INDEX, LABEL_EVENT_TYPE, TYPE_FIELD
from emulators.kinesis_events import KinesisRecord, kinesis_event, next_sequence_number
from producer.events import encode

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    """Placeholder credentials for moto, and no AWS config or instance metadata from this machine."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        monkeypatch.delenv(name, raising=False)
    # Checkpoints default to ./.producer: keep them out of the repository.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def kinesis(moto_url, aws_env):
    return boto3.client("kinesis", endpoint_url=moto_url, region_name=REGION)


@pytest.fixture
def stream(kinesis) -> str:
    """A fresh 2-shard stream (moto's state is shared by the session, so each test gets its own)."""
    name = f"producer-test-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return name


@pytest.fixture
def read_stream(kinesis):
    """read_stream(name) -> every record in the stream: {"partition_key", "event", "shard"}."""
    return lambda stream_name: _read_stream(kinesis, stream_name)


def _read_stream(kinesis, stream_name: str) -> list[dict]:
    records = []
    for shard in kinesis.list_shards(StreamName=stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for record in page["Records"]:
                records.append(
                    {
                        "partition_key": record["PartitionKey"],
                        "event": json.loads(record["Data"]),
                        "shard": shard["ShardId"],
                    }
                )
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def decode_as_the_scorer_does(event: dict, *, partition_key: str | None = None):
    """The scoring Lambda's own reading of `event`: encoded as the producer sends it, wrapped in the
    exact Lambda event (emulators.kinesis_events) and decoded by `fraud_scorer.events.decode_record`
    - not a test-local copy of the rules. Event-time bounds are left out: replayed datasets carry
    their own (old) times; the bounds are the scorer's tests' business."""
    from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

    from fraud_scorer.events import decode_record

    record = KinesisRecord(
        data=encode(event),
        partition_key=partition_key or str(event.get("card_id") or event["transaction_id"]),
        sequence_number=next_sequence_number(),
        arrival_s=time.time(),
    )
    (lambda_record,) = KinesisStreamEvent(kinesis_event([record])).records
    return decode_record(lambda_record)


def _assert_follows_contract(event: dict) -> None:
    """The scorer accepts the event and reads back exactly the values the producer put in."""
    from fraud_scorer.events import LabelEvent, Rejection, Transaction

    decoded = decode_as_the_scorer_does(event)
    assert not isinstance(decoded, Rejection), f"scorer rejects {event}: {decoded.reason}: {decoded.detail}"
    assert decoded.transaction_id == event["transaction_id"]
    if event.get(TYPE_FIELD) == LABEL_EVENT_TYPE:
        assert isinstance(decoded, LabelEvent)
        assert (decoded.label, decoded.reported_at_ms) == (event["label"], event["timestamp"])
        return
    assert isinstance(decoded, Transaction)
    assert decoded.timestamp_ms == event["timestamp"]
    assert decoded.card_id == event["card_id"]
    assert decoded.amount == event["amount"]
    assert decoded.terminal_id == event.get("terminal_id")
    if "features" in event:
        assert list(decoded.features) == event["features"]
        assert decoded.amount == decoded.features[AMOUNT_INDEX]
    for optional in ("channel", "merchant", "label"):
        assert getattr(decoded, optional) == event.get(optional)


@pytest.fixture
def assert_follows_contract():
    """assert_follows_contract(event): the scoring Lambda's decoder accepts it and reads its values."""
    return _assert_follows_contract
