"""The local event source mapping against a real moto Kinesis server, with scripted handlers."""

from __future__ import annotations

import base64
import json
import threading
import uuid

import pytest

from emulators.kinesis_server import LocalKinesisServer
from emulators.kinesis_trigger import (
    KinesisTrigger,
    OnFailureDestination,
    ShardCheckpoints,
    TriggerSettings,
)

FAST = {"poll_interval_s": 0.02, "retry_base_s": 0.01, "retry_max_s": 0.02}


@pytest.fixture(scope="module")
def kinesis():
    with LocalKinesisServer() as server:
        yield server


@pytest.fixture
def stream(kinesis):
    name = f"trigger-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(name, shard_count=1)
    yield name
    kinesis.delete_stream(name)


class RecordingHandler:
    """Records the data of every invocation; `fail` decides what each invocation answers."""

    def __init__(self, fail=None):
        self.calls: list[list[str]] = []
        self.sequence_numbers: list[list[str]] = []
        self.shards: list[set[str]] = []
        self._fail = fail or (lambda call, datas, seqs: None)
        self._lock = threading.Lock()

    def __call__(self, event, context):
        assert context.aws_request_id
        assert context.get_remaining_time_in_millis() > 0
        records = event["Records"]
        datas = [base64.b64decode(r["kinesis"]["data"]).decode() for r in records]
        seqs = [r["kinesis"]["sequenceNumber"] for r in records]
        with self._lock:
            self.calls.append(datas)
            self.sequence_numbers.append(seqs)
            self.shards.append({r["eventID"].split(":")[0] for r in records})
            call = len(self.calls) - 1
        return self._fail(call, datas, seqs)

    def delivered(self) -> list[str]:
        return [data for call in self.calls for data in call]


def put(kinesis, stream, datas, key="card-1") -> list[str]:
    client = kinesis.client()
    return [
        client.put_record(StreamName=stream, Data=data.encode(), PartitionKey=key)["SequenceNumber"]
        for data in datas
    ]


def run(kinesis, stream, handler, *, until_idle=True, checkpoints=None, **settings) -> KinesisTrigger:
    trigger = KinesisTrigger(
        kinesis_client=kinesis.client(),
        stream_name=stream,
        handler=handler,
        settings=TriggerSettings(**{**FAST, **settings}),
        checkpoints=checkpoints,
    )
    trigger.start()
    if until_idle:
        assert trigger.wait_until_idle(timeout_s=30)
        trigger.stop()
    return trigger


def test_batches_follow_batch_size_in_sequence_order_and_checkpoint_the_last_record(kinesis, stream):
    # GIVEN ten records in a one-shard stream
    datas = [f"r{i}" for i in range(10)]
    seqs = put(kinesis, stream, datas)
    handler = RecordingHandler()

    # WHEN the trigger runs with batches of 4
    trigger = run(kinesis, stream, handler, batch_size=4)

    # THEN the handler saw 4 + 4 + 2 records, in order, once each, and the checkpoint is the last
    assert handler.calls == [datas[0:4], datas[4:8], datas[8:10]]
    assert handler.sequence_numbers[0] == seqs[0:4]
    assert trigger.checkpoints.snapshot() == {trigger.shard_ids[0]: seqs[-1]}
    assert trigger.on_failure.records == []


def test_batch_item_failures_resume_from_the_lowest_failed_sequence_number(kinesis, stream):
    # GIVEN a handler that reports records 5 and 7 of its first batch as failed
    datas = [f"r{i}" for i in range(10)]
    seqs = put(kinesis, stream, datas)

    def fail(call, _datas, batch_seqs):
        if call == 0:
            return {
                "batchItemFailures": [{"itemIdentifier": batch_seqs[7]}, {"itemIdentifier": batch_seqs[5]}]
            }
        return {"batchItemFailures": []}

    handler = RecordingHandler(fail)

    # WHEN the trigger delivers the batch
    trigger = run(kinesis, stream, handler, batch_size=10)

    # THEN the retry starts at record 5 (not 7), records 0-4 are not sent again
    assert handler.calls == [datas, datas[5:]]
    assert trigger.checkpoints.snapshot()[trigger.shard_ids[0]] == seqs[-1]
    assert trigger.on_failure.records == []


def test_a_function_error_bisects_until_the_poison_record_is_alone_then_gives_up_on_it_only(
    kinesis, stream, tmp_path
):
    # GIVEN eight records, the fourth of which always makes the handler raise
    datas = [f"r{i}" for i in range(8)]
    datas[3] = "poison"
    seqs = put(kinesis, stream, datas)

    def fail(_call, batch, _seqs):
        if "poison" in batch:
            raise RuntimeError("cannot handle poison")

    handler = RecordingHandler(fail)
    on_failure = OnFailureDestination(tmp_path / "on-failure.jsonl")

    # WHEN the trigger runs with bisect on and two retries
    trigger = KinesisTrigger(
        kinesis_client=kinesis.client(),
        stream_name=stream,
        handler=handler,
        settings=TriggerSettings(**FAST, batch_size=8, bisect_on_error=True, maximum_retry_attempts=2),
        on_failure=on_failure,
    ).start()
    assert trigger.wait_until_idle(timeout_s=30)
    trigger.stop()

    # THEN the batch was halved down to the poison record, which was tried 1 + 2 times
    assert handler.calls == [
        datas,
        datas[0:4],
        datas[0:2],
        datas[2:4],
        ["r2"],
        ["poison"],
        ["poison"],
        ["poison"],
        datas[4:8],
    ]
    # every good record was delivered successfully exactly once
    succeeded = [d for call in handler.calls if "poison" not in call for d in call]
    assert sorted(succeeded) == sorted(d for d in datas if d != "poison")
    # the on-failure record names exactly the poison record, in memory and in the JSONL file
    (entry,) = on_failure.records
    assert entry["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert entry["KinesisBatchInfo"]["startSequenceNumber"] == seqs[3]
    assert entry["KinesisBatchInfo"]["endSequenceNumber"] == seqs[3]
    assert entry["KinesisBatchInfo"]["batchSize"] == 1
    assert [json.loads(line) for line in (tmp_path / "on-failure.jsonl").read_text().splitlines()] == [entry]
    # and the shard moved on past it
    assert trigger.checkpoints.snapshot()[trigger.shard_ids[0]] == seqs[-1]


def test_without_bisect_a_failing_batch_is_retried_whole_then_skipped_and_the_shard_moves_on(kinesis, stream):
    # GIVEN a handler that fails every batch containing r1, and records after that batch
    datas = [f"r{i}" for i in range(6)]
    seqs = put(kinesis, stream, datas)

    def fail(_call, batch, _seqs):
        if "r1" in batch:
            raise ValueError("boom")

    handler = RecordingHandler(fail)

    # WHEN the trigger runs with batches of 3, bisect off, one retry
    trigger = run(kinesis, stream, handler, batch_size=3, bisect_on_error=False, maximum_retry_attempts=1)

    # THEN the first batch was tried twice, given up, and the second batch was delivered
    assert handler.calls == [datas[:3], datas[:3], datas[3:]]
    (entry,) = trigger.on_failure.records
    assert entry["KinesisBatchInfo"]["startSequenceNumber"] == seqs[0]
    assert entry["KinesisBatchInfo"]["endSequenceNumber"] == seqs[2]
    assert entry["responseContext"]["functionError"] == "ValueError: boom"
    assert trigger.checkpoints.snapshot()[trigger.shard_ids[0]] == seqs[-1]


def test_retries_end_when_the_records_are_older_than_the_maximum_age(kinesis, stream):
    # GIVEN a batch that keeps failing (an outage that outlasts the records' maximum age)
    datas = ["r0", "r1"]
    seqs = put(kinesis, stream, datas)

    def fail(_call, batch, _seqs):
        if "r0" in batch:
            raise ConnectionError("redis down")

    handler = RecordingHandler(fail)

    # WHEN the retries are practically unbounded but the records may be at most 0.3 s old
    trigger = run(
        kinesis, stream, handler, batch_size=1, maximum_retry_attempts=10_000, maximum_record_age_s=0.3
    )

    # THEN the failing record is given up once too old (its range goes to the on-failure record),
    # after several retries, and the shard moves on
    assert 2 < len([c for c in handler.calls if c == ["r0"]]) < 200
    (entry,) = trigger.on_failure.records
    assert entry["KinesisBatchInfo"]["startSequenceNumber"] == seqs[0]
    assert handler.calls[-1] == ["r1"]


def test_an_unknown_item_identifier_fails_the_whole_batch(kinesis, stream):
    # GIVEN a handler whose first answer names a sequence number that is not in the batch
    datas = ["a", "b", "c"]
    put(kinesis, stream, datas)

    def fail(call, _datas, _seqs):
        return {"batchItemFailures": [{"itemIdentifier": "12345"}]} if call == 0 else None

    handler = RecordingHandler(fail)

    # WHEN the trigger runs without bisect
    run(kinesis, stream, handler, batch_size=10, bisect_on_error=False)

    # THEN the whole batch is retried, as Lambda does for a malformed partial response
    assert handler.calls == [datas, datas]


def test_every_shard_is_polled_and_a_batch_never_mixes_shards(kinesis):
    # GIVEN a stream of three shards with records spread over many partition keys
    stream = f"trigger-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(stream, shard_count=3)
    client = kinesis.client()
    datas = [f"r{i}" for i in range(60)]
    client.put_records(
        StreamName=stream,
        Records=[{"Data": d.encode(), "PartitionKey": f"card-{i}"} for i, d in enumerate(datas)],
    )
    handler = RecordingHandler()

    # WHEN the trigger runs
    trigger = run(kinesis, stream, handler, batch_size=7)

    # THEN every record arrived once, each batch came from one shard, and all three shards were read
    assert sorted(handler.delivered()) == sorted(datas)
    assert all(len(shards) == 1 for shards in handler.shards)
    assert set().union(*handler.shards) == set(trigger.shard_ids)
    assert len(trigger.shard_ids) == 3
    for seqs in handler.sequence_numbers:
        assert [int(s) for s in seqs] == sorted(int(s) for s in seqs)
    kinesis.delete_stream(stream)


def test_a_restarted_trigger_resumes_after_its_checkpoint_file(kinesis, stream, tmp_path):
    # GIVEN a first run that processed five records with a checkpoint file
    checkpoint_file = tmp_path / "checkpoints.json"
    first = [f"a{i}" for i in range(5)]
    put(kinesis, stream, first)
    handler = RecordingHandler()
    run(kinesis, stream, handler, checkpoints=ShardCheckpoints(checkpoint_file))
    assert handler.delivered() == first

    # WHEN three more records arrive and a new trigger starts from the same file
    second = ["b0", "b1", "b2"]
    seqs = put(kinesis, stream, second)
    handler = RecordingHandler()
    trigger = run(kinesis, stream, handler, checkpoints=ShardCheckpoints(checkpoint_file))

    # THEN it delivers only the new records, and the file holds the new position
    assert handler.delivered() == second
    assert json.loads(checkpoint_file.read_text()) == {trigger.shard_ids[0]: seqs[-1]}


def test_the_batching_window_gathers_records_that_arrive_within_it(kinesis, stream):
    # GIVEN a trigger with a generous batching window, already polling
    handler = RecordingHandler()
    trigger = run(kinesis, stream, handler, until_idle=False, batch_size=100, batching_window_s=3.0)
    assert trigger.wait_until_idle(timeout_s=30)

    # WHEN records arrive in two separate writes inside the window
    put(kinesis, stream, ["x0", "x1"])
    put(kinesis, stream, ["x2", "x3"])
    assert trigger.wait_until_idle(timeout_s=30)
    trigger.stop()

    # THEN one invocation carried all four
    assert handler.calls == [["x0", "x1", "x2", "x3"]]


def test_latest_starting_position_skips_what_was_there_before(kinesis, stream):
    # GIVEN records written before the trigger starts at LATEST
    put(kinesis, stream, ["old"])
    handler = RecordingHandler()
    trigger = run(kinesis, stream, handler, until_idle=False, starting_position="LATEST")
    assert trigger.wait_until_idle(timeout_s=30)

    # WHEN a record arrives afterwards
    put(kinesis, stream, ["new"])
    assert trigger.wait_until_idle(timeout_s=30)
    trigger.stop()

    # THEN only the new one is delivered
    assert handler.delivered() == ["new"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"maximum_retry_attempts": -1}, "maximum_retry_attempts"),
        ({"starting_position": "AT_TIMESTAMP"}, "starting_position"),
    ],
)
def test_settings_reject_values_lambda_would_reject(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TriggerSettings(**kwargs)


def test_moto_as_a_separate_process_serves_the_same_api():
    # GIVEN moto started as its own process
    with LocalKinesisServer(separate_process=True) as server:
        server.create_stream("separate", shard_count=2)
        client = server.client()
        client.put_record(StreamName="separate", Data=b"hello", PartitionKey="k")

        # WHEN the trigger reads it
        handler = RecordingHandler()
        run(server, "separate", handler)

    # THEN the record arrived, and the process is gone after stop
    assert handler.delivered() == ["hello"]
    assert server.running is False
