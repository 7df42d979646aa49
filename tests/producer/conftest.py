"""Fixtures for the producer tests: a moto server (Kinesis + CloudFormation) and stream helpers."""

from __future__ import annotations

import json
import math
import re
import uuid

import boto3
import pytest

from fraud_data.schema import AMOUNT_INDEX, FEATURE_COUNT
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


ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ALLOWED_FIELDS = {
    "transaction_id",
    "timestamp",
    "card_id",
    "amount",
    "features",
    "channel",
    "merchant",
    "label",
}


def _assert_follows_contract(event: dict) -> None:
    """The event schema's rules, field by field (booleans are not numbers)."""

    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    assert set(event) <= ALLOWED_FIELDS
    assert ID_PATTERN.fullmatch(event["transaction_id"])
    assert isinstance(event["timestamp"], int)
    assert not isinstance(event["timestamp"], bool)
    assert event["timestamp"] >= 0
    assert isinstance(event["card_id"], str)
    assert 1 <= len(event["card_id"]) <= 64
    assert number(event["amount"])
    assert event["amount"] >= 0
    assert len(event["features"]) == FEATURE_COUNT
    assert all(number(v) for v in event["features"])
    assert event["amount"] == event["features"][AMOUNT_INDEX]
    for optional in ("channel", "merchant"):
        assert isinstance(event[optional], str)
        assert len(event[optional]) <= 64
    if "label" in event:
        assert event["label"] in (0, 1)
        assert not isinstance(event["label"], bool)
    assert len(encode(event)) <= 64 * 1024


@pytest.fixture
def assert_follows_contract():
    """assert_follows_contract(event): the rules of docs/architecture.md's event schema."""
    return _assert_follows_contract
