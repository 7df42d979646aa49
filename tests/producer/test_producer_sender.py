"""PutRecords batching and retries, against botocore's Stubber (exact API shapes, no network)."""

from __future__ import annotations

import random
import socket
from collections import Counter

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from producer.errors import ProducerError
from producer.sender import MAX_BYTES, MAX_RECORDS, Backoff, Batch, Entry, KinesisSender

STREAM = "fraud-stream"
THROTTLED = {
    "ErrorCode": "ProvisionedThroughputExceededException",
    "ErrorMessage": "Rate exceeded for shard shardId-000000000000",
}


def ok(sequence: int) -> dict:
    return {"SequenceNumber": str(sequence), "ShardId": "shardId-000000000000"}


@pytest.fixture
def client():
    return boto3.client("kinesis", region_name="us-east-1")


@pytest.fixture
def received(client):
    """Every PutRecords request as the client sent it (after parameter validation)."""
    calls: list[list[dict]] = []
    client.meta.events.register(
        "provide-client-params.kinesis.PutRecords", lambda params, **_: calls.append(params["Records"])
    )
    return calls


def entries(count: int) -> list[Entry]:
    return [Entry(i, f"card-{i % 3:05d}", f'{{"transaction_id":"t-{i}"}}'.encode()) for i in range(count)]


def sender(client, sleeps: list[float], **kwargs) -> KinesisSender:
    return KinesisSender(
        client=client, stream_name=STREAM, sleep=sleeps.append, rng=random.Random(1), **kwargs
    )


def accepted_data(calls: list[list[dict]], responses: list[dict | None]) -> list[bytes]:
    """The records Kinesis kept: per call, the entries whose result has no ErrorCode."""
    kept = []
    for records, response in zip(calls, responses, strict=True):
        if response is None:  # the whole call failed
            continue
        kept += [
            r["Data"]
            for r, result in zip(records, response["Records"], strict=True)
            if "ErrorCode" not in result
        ]
    return kept


def test_partial_failures_and_throttling_end_with_every_record_sent_exactly_once(client, received):
    # GIVEN Kinesis throttles 3 of 6 entries, then the whole next call, then 1 entry, then accepts
    batch = entries(6)
    responses = [
        {"FailedRecordCount": 3, "Records": [ok(1), THROTTLED, ok(2), THROTTLED, THROTTLED, ok(3)]},
        None,
        {
            "FailedRecordCount": 1,
            "Records": [ok(4), {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}, ok(5)],
        },
        {"Records": [ok(6)]},
    ]
    stubber = Stubber(client)
    for response in responses:
        if response is None:
            stubber.add_client_error(
                "put_records", "ProvisionedThroughputExceededException", http_status_code=400
            )
        else:
            stubber.add_response("put_records", response)
    sleeps: list[float] = []
    on_accepted: list[Entry] = []
    # WHEN the batch is sent
    with stubber:
        result = sender(client, sleeps).send(batch, on_accepted.append)
    stubber.assert_no_pending_responses()
    # THEN each record was accepted exactly once, and only failed entries were sent again
    assert Counter(accepted_data(received, responses)) == Counter(e.data for e in batch)
    assert sorted(e.ticket for e in on_accepted) == list(range(6))
    assert [len(c) for c in received] == [6, 3, 3, 1]
    assert all(r["PartitionKey"].startswith("card-") for c in received for r in c)
    assert (result.calls, result.retried, result.complete) == (4, 7, True)
    # AND it waited between attempts, longer each time
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[2]


def test_throttling_never_crashes_and_the_wait_is_capped(client, received):
    # GIVEN a stream that throttles the whole call 40 times in a row
    stubber = Stubber(client)
    for _ in range(40):
        stubber.add_client_error(
            "put_records", "ProvisionedThroughputExceededException", http_status_code=400
        )
    stubber.add_response("put_records", {"Records": [ok(1), ok(2)]})
    sleeps: list[float] = []
    done: list[Entry] = []
    with stubber:
        result = sender(client, sleeps, backoff=Backoff(base_seconds=0.1, cap_seconds=2.0)).send(
            entries(2), done.append
        )
    # THEN the records get through and no wait exceeds the cap
    assert result.complete
    assert len(done) == 2
    assert max(sleeps) <= 2.0
    assert min(sleeps[-10:]) >= 1.0


def test_a_stop_request_ends_retries_and_leaves_failed_entries_unaccepted(client, received):
    stubber = Stubber(client)
    stubber.add_response("put_records", {"FailedRecordCount": 1, "Records": [ok(1), THROTTLED]})
    done: list[Entry] = []
    with stubber:
        result = sender(client, [], should_stop=lambda: True).send(entries(2), done.append)
    assert not result.complete
    assert [e.ticket for e in done] == [0]


def test_an_unknown_stream_is_a_clear_error(client, received):
    stubber = Stubber(client)
    stubber.add_client_error("put_records", "ResourceNotFoundException", http_status_code=400)
    with stubber, pytest.raises(ProducerError, match=f"stream {STREAM} not found"):
        sender(client, []).send(entries(1), lambda _: None)


def test_repeated_service_errors_give_up_after_a_bound(client, received):
    stubber = Stubber(client)
    for _ in range(3):
        stubber.add_client_error("put_records", "InternalFailure", http_status_code=500)
    with stubber, pytest.raises(ProducerError, match="giving up.*3 in a row"):
        sender(client, [], give_up_after=3).send(entries(1), lambda _: None)


def test_batches_respect_the_record_and_byte_limits():
    small = Batch()
    for entry in entries(MAX_RECORDS):
        assert small.fits(entry)
        small.add(entry)
    assert small.full
    assert not small.fits(entries(1)[0])
    big_entry = Entry(0, "card-1", b"x" * (1024 * 1024 - 6))  # 1 MiB with its key
    big = Batch()
    while big.fits(big_entry):
        big.add(big_entry)
    assert len(big) == 5
    assert big.size == MAX_BYTES


def test_an_unreachable_endpoint_gives_up_after_a_bound_with_a_clear_error():
    # GIVEN a client for a port nothing listens on, with botocore's own retries turned down
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "kinesis",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )
    sleeps: list[float] = []
    # WHEN records are sent THEN it retries twice more with backoff, then stops with one clear message
    with pytest.raises(
        ProducerError, match=r"giving up on stream fraud-stream: Could not connect.*3 in a row"
    ):
        sender(client, sleeps, give_up_after=3).send(entries(1), lambda _: None)
    assert len(sleeps) == 2
