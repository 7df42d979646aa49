"""emulators.kinesis_events builds the event Lambda receives from a Kinesis event source mapping."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from emulators.kinesis_events import KinesisRecord, kinesis_event

ARN = "arn:aws:kinesis:eu-west-1:111122223333:stream/tx"


def test_event_has_the_lambda_kinesis_shape():
    # GIVEN one explicit record
    record = KinesisRecord(
        data=b'{"a": 1}', partition_key="card-1", sequence_number="495", arrival_s=1700000000.25
    )

    # WHEN
    event = kinesis_event([record], stream_arn=ARN, shard_id="shardId-000000000003")

    # THEN
    assert event == {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "card-1",
                    "sequenceNumber": "495",
                    "data": base64.b64encode(b'{"a": 1}').decode(),
                    "approximateArrivalTimestamp": 1700000000.25,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": "shardId-000000000003:495",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/fraud-scorer",
                "awsRegion": "eu-west-1",
                "eventSourceARN": ARN,
            }
        ]
    }


def test_dicts_and_bytes_get_increasing_sequence_numbers_and_card_partition_keys():
    event = kinesis_event([{"card_id": "c9", "x": 1}, b"raw", "text"])
    records = list(KinesisStreamEvent(event).records)
    sequence_numbers = [int(r.kinesis.sequence_number) for r in records]
    assert sequence_numbers == sorted(set(sequence_numbers))
    assert records[0].kinesis.partition_key == "c9"
    assert json.loads(records[0].kinesis.data_as_text()) == {"card_id": "c9", "x": 1}
    assert records[1].kinesis.data_as_bytes() == b"raw"
    assert records[2].kinesis.data_as_text() == "text"


def test_record_from_get_records_output():
    # GIVEN one element of boto3's get_records()["Records"]
    arrived = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = {
        "SequenceNumber": "4960",
        "ApproximateArrivalTimestamp": arrived,
        "Data": b"d",
        "PartitionKey": "k",
    }

    # WHEN
    record = KinesisRecord.from_get_records(raw)

    # THEN
    assert record == KinesisRecord(
        data=b"d", partition_key="k", sequence_number="4960", arrival_s=arrived.timestamp()
    )
