"""Build the exact event AWS Lambda receives from a Kinesis event source mapping.

Tests, benchmarks and the local event-source-mapping loop all hand the scorer events of this shape,
so the handler sees locally what it sees in AWS:

    kinesis_event([{"transaction_id": "t1", ...}, b"raw bytes", KinesisRecord(...)])

The local trigger builds `KinesisRecord`s from real GetRecords output (`KinesisRecord.from_get_records`).
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_REGION = "us-east-1"
DEFAULT_STREAM_ARN = f"arn:aws:kinesis:{DEFAULT_REGION}:123456789012:stream/fraud-transactions"
DEFAULT_INVOKE_IDENTITY_ARN = "arn:aws:iam::123456789012:role/fraud-scorer"
# Kinesis sequence numbers are decimal strings of up to 128 digits; real ones are 56 digits long.
_SEQUENCE_BASE = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000
_auto_sequence = itertools.count(1)


@dataclass(frozen=True)
class KinesisRecord:
    """One Kinesis record as GetRecords returns it."""

    data: bytes
    partition_key: str
    sequence_number: str
    arrival_s: float

    @classmethod
    def from_get_records(cls, record: Mapping[str, Any]) -> KinesisRecord:
        """From one element of boto3's `get_records()["Records"]` (Data is already bytes there)."""
        arrival = record["ApproximateArrivalTimestamp"]
        arrival_s = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
        return cls(
            data=record["Data"],
            partition_key=record["PartitionKey"],
            sequence_number=record["SequenceNumber"],
            arrival_s=arrival_s,
        )


def next_sequence_number() -> str:
    """A fresh, increasing sequence number in the real format (for records made up by tests)."""
    return str(_SEQUENCE_BASE + next(_auto_sequence))


def as_kinesis_record(record: KinesisRecord | Mapping[str, Any] | bytes | str) -> KinesisRecord:
    """Accept a `KinesisRecord`, a JSON-able dict (an event), or raw bytes/str data."""
    if isinstance(record, KinesisRecord):
        return record
    if isinstance(record, Mapping):
        data = json.dumps(record).encode()
        partition_key = str(record.get("card_id") or record.get("transaction_id") or "pk")
    elif isinstance(record, bytes | bytearray):
        data, partition_key = bytes(record), "pk"
    elif isinstance(record, str):
        data, partition_key = record.encode(), "pk"
    else:
        raise TypeError(f"cannot make a Kinesis record from {type(record).__name__}")
    return KinesisRecord(
        data=data,
        partition_key=partition_key,
        sequence_number=next_sequence_number(),
        arrival_s=time.time(),
    )


def kinesis_event(
    records: Iterable[KinesisRecord | Mapping[str, Any] | bytes | str],
    *,
    stream_arn: str = DEFAULT_STREAM_ARN,
    shard_id: str = "shardId-000000000000",
    invoke_identity_arn: str = DEFAULT_INVOKE_IDENTITY_ARN,
) -> dict[str, Any]:
    """The Lambda event for one batch from one shard, in the order given."""
    region = stream_arn.split(":")[3] or DEFAULT_REGION
    out = []
    for item in records:
        record = as_kinesis_record(item)
        out.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record.partition_key,
                    "sequenceNumber": record.sequence_number,
                    "data": base64.b64encode(record.data).decode("ascii"),
                    "approximateArrivalTimestamp": record.arrival_s,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record.sequence_number}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": invoke_identity_arn,
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": out}
