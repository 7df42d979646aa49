"""Checkpoints: atomic, only accepted records, and a resumed run continues without loss or repeats."""

from __future__ import annotations

import csv
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from fraud_data.schema import COLUMNS
from fraud_data.synthetic import generate_rows
from fraud_data.transactions import COLUMNS as COLUMNS_V2
from fraud_data.transactions import Transactions
from producer.checkpoint import Checkpoint, CheckpointStore, Watermark
from producer.errors import ProducerError
from producer.labels import DAY_MS
from producer.replay import Producer
from producer.sender import Backoff
from producer.source import CsvSource, Position, SyntheticSource, TransactionsSource


def test_watermark_stops_at_the_first_record_not_accepted():
    # GIVEN five positions read, of which the 2nd is still pending after the others were accepted
    mark = Watermark(Position(0, 10))
    tickets = [mark.issue(Position(0, 10 + i)) for i in range(5)]
    for ticket in (tickets[0], tickets[2], tickets[4]):
        mark.done(ticket)
    # THEN the checkpoint resumes at the pending one and skips those accepted after it
    assert mark.checkpoint(source="s", order="sequential") == Checkpoint(
        "s", "sequential", Position(0, 11), frozenset({Position(0, 12), Position(0, 14)})
    )
    # WHEN the rest are accepted, THEN it moves past everything read
    mark.done(tickets[1])
    assert mark.checkpoint(source="s", order="sequential").resume_at == Position(0, 13)
    mark.done(tickets[3])
    assert mark.checkpoint(source="s", order="sequential") == Checkpoint("s", "sequential", Position(0, 15))


def test_positions_skipped_on_resume_stay_in_the_checkpoint_until_passed():
    # GIVEN a resumed run that skips (0, 3) and (0, 9), and stops after reading up to (0, 4)
    mark = Watermark(Position(0, 2), frozenset({Position(0, 3), Position(0, 9)}))
    for offset in (2, 4):
        mark.done(mark.issue(Position(0, offset)))
    # THEN the position it passed is dropped, the one ahead is kept for the next run
    assert mark.checkpoint(source="s", order="sequential") == Checkpoint(
        "s", "sequential", Position(0, 5), frozenset({Position(0, 9)})
    )


def test_save_is_atomic_and_round_trips(tmp_path):
    store = CheckpointStore(tmp_path / "deep" / "cp.json")
    saved = Checkpoint(
        "csv-abc", "shuffle:3", Position(2, 40), frozenset({Position(2, 42)}), ((1_000, "t-9", 1, "card-7"),)
    )
    store.save(saved)
    store.save(saved)  # overwriting leaves no temporary files behind
    assert [p.name for p in store.path.parent.iterdir()] == ["cp.json"]
    assert store.load(source="csv-abc", order="shuffle:3") == saved
    assert CheckpointStore(tmp_path / "none.json").load(source="x", order="sequential") is None


def test_a_checkpoint_of_another_source_or_order_is_refused(tmp_path):
    store = CheckpointStore(tmp_path / "cp.json")
    store.save(Checkpoint("csv-abc", "sequential", Position(0, 5)))
    with pytest.raises(ProducerError, match="belongs to source csv-abc"):
        store.load(source="csv-def", order="sequential")
    with pytest.raises(ProducerError, match="belongs to source"):
        store.load(source="csv-abc", order="shuffle:1")
    store.path.write_text("{not json")
    with pytest.raises(ProducerError, match="unreadable"):
        store.load(source="csv-abc", order="sequential")


def run(kinesis, stream, source, store, **kwargs):
    return Producer(
        source=source, stream_name=stream, kinesis_client=kinesis, checkpoint=store, **kwargs
    ).run()


def test_resume_across_two_runs_sends_every_row_once(kinesis, stream, read_stream, tmp_path):
    # GIVEN a 1,000-row file and a first run that stops after 600 records
    path = tmp_path / "creditcard.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(generate_rows(1000, seed=8))
    store = CheckpointStore(tmp_path / "cp.json")
    first = run(kinesis, stream, CsvSource(path), store, count=600)
    assert json.loads(store.path.read_text())["resume_at"] == [0, 600]
    # WHEN a second run resumes
    second = run(kinesis, stream, CsvSource(path), store, resume=True)
    # THEN the stream holds each row exactly once, and the checkpoint is at the end of the file
    ids = [r["event"]["transaction_id"] for r in read_stream(stream)]
    assert (first.sent, second.sent) == (600, 400)
    assert sorted(ids) == [f"{CsvSource(path).key}-{i:06d}" for i in range(1000)]
    assert second.resume_at == Position(0, 1000)


def test_resume_after_an_interrupt_skips_only_what_was_accepted(kinesis, stream, read_stream, tmp_path):
    # GIVEN a Kinesis client that accepts 2 batches and is interrupted (Ctrl-C) during the third call
    calls = []

    def interrupt_third_call(params, **_):
        calls.append(len(params["Records"]))
        if len(calls) == 3:
            raise KeyboardInterrupt

    kinesis.meta.events.register("provide-client-params.kinesis.PutRecords", interrupt_third_call)
    store = CheckpointStore(tmp_path / "cp.json")
    source = SyntheticSource(seed=4)
    # WHEN a run is interrupted
    first = run(kinesis, stream, source, store, count=2000)
    kinesis.meta.events.unregister("provide-client-params.kinesis.PutRecords", interrupt_third_call)
    # THEN it reports the interruption, and the checkpoint holds only the accepted records
    assert first.interrupted
    assert first.sent == 1000
    assert json.loads(store.path.read_text())["resume_at"] == [0, 1000]
    # AND a resumed run sends the rest, each record once
    second = run(kinesis, stream, source, store, count=1000, resume=True)
    ids = sorted(r["event"]["transaction_id"] for r in read_stream(stream))
    assert second.sent == 1000
    assert not second.interrupted
    assert ids == [f"synthetic-4-{i:06d}" for i in range(2000)]


def test_dry_run_neither_sends_nor_moves_the_checkpoint(tmp_path, capsys):
    store = CheckpointStore(tmp_path / "cp.json")
    store.save(Checkpoint("synthetic-1", "sequential", Position(0, 5)))
    summary = Producer(
        source=SyntheticSource(seed=1), count=3, dry_run=True, checkpoint=store, resume=True
    ).run()
    printed = [json.loads(line)["transaction_id"] for line in capsys.readouterr().out.splitlines()]
    assert summary.dry_run
    assert printed == ["synthetic-1-000005", "synthetic-1-000006", "synthetic-1-000007"]
    assert store.load(source="synthetic-1", order="sequential").resume_at == Position(0, 5)


def test_a_partially_accepted_batch_is_resumed_without_resending_accepted_rows(tmp_path):
    # GIVEN a stubbed Kinesis that throttles the middle one of 3 records while Ctrl-C is pressed
    client = boto3.client("kinesis", region_name="us-east-1")
    sent_ids: list[list[str]] = []
    store = CheckpointStore(tmp_path / "cp.json")
    first = Producer(
        source=SyntheticSource(seed=1), stream_name="s", kinesis_client=client, count=3, checkpoint=store
    )

    def record_and_press_ctrl_c(params, **_):
        sent_ids.append([json.loads(r["Data"])["transaction_id"] for r in params["Records"]])
        first.stop()

    client.meta.events.register("provide-client-params.kinesis.PutRecords", record_and_press_ctrl_c)
    accepted = {"SequenceNumber": "1", "ShardId": "shardId-000000000000"}
    throttled = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
    with Stubber(client) as stubber:
        stubber.add_response(
            "put_records", {"FailedRecordCount": 1, "Records": [accepted, throttled, accepted]}
        )
        summary = first.run()
        # WHEN the next run resumes
        stubber.add_response("put_records", {"Records": [accepted, accepted]})
        second = Producer(
            source=SyntheticSource(seed=1),
            stream_name="s",
            kinesis_client=client,
            count=2,
            checkpoint=store,
            resume=True,
        )
        second.run()
    # THEN the first run kept rows 0 and 2 and stopped; the second sent row 1 and row 3, not row 2
    assert summary.interrupted
    assert summary.sent == 2
    assert sent_ids == [
        ["synthetic-1-000000", "synthetic-1-000001", "synthetic-1-000002"],
        ["synthetic-1-000001", "synthetic-1-000003"],
    ]
    assert store.load(source="synthetic-1", order="sequential") == Checkpoint(
        "synthetic-1", "sequential", Position(0, 4)
    )


def test_a_carried_position_the_run_stops_just_before_stays_done():
    # GIVEN a resumed run that must skip (0, 2) and stops right after (0, 1)
    mark = Watermark(Position(0, 1), frozenset({Position(0, 2)}))
    mark.done(mark.issue(Position(0, 1)))
    # THEN the next run resumes at (0, 2) AND still skips it: it was accepted two runs ago
    assert mark.checkpoint(source="s", order="sequential") == Checkpoint(
        "s", "sequential", Position(0, 2), frozenset({Position(0, 2)})
    )


def test_a_checkpoint_path_that_is_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ProducerError, match="cannot write checkpoint"):
        CheckpointStore(tmp_path).save(Checkpoint("s", "sequential", Position(0, 1)))
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


class CtrlCDuringFirstCall:
    """Kinesis during a Ctrl-C: the call in which it is pressed (once `producer` is set) is throttled,
    or with `first_accepted` accepted, and every other call gets the other answer. Without `producer`
    it accepts everything."""

    def __init__(self, first_accepted: bool = False) -> None:
        self.producer: Producer | None = None
        self.first_accepted = first_accepted
        self.accepted: list[dict] = []

    def put_records(self, StreamName, Records):  # noqa: N803 - boto3's parameter names
        pressed = self.producer is not None
        if pressed:
            self.producer.stop()
            self.producer = None
        if pressed == self.first_accepted:
            self.accepted += [json.loads(r["Data"]) for r in Records]
            return {"Records": [{"SequenceNumber": "1", "ShardId": "shardId-0"} for _ in Records]}
        refused = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
        return {"FailedRecordCount": len(Records), "Records": [refused for _ in Records]}


def simulator_rows(*rows: tuple) -> Transactions:
    """A simulator table of `rows` (values in `fraud_data.transactions.COLUMNS` order)."""
    table = Transactions()
    for values in rows:
        for column, value in zip(COLUMNS_V2, values, strict=True):
            getattr(table, column).append(value)
    return table


def resumable_producer(
    rows: Transactions, kinesis, store: CheckpointStore, *, resume: bool, label_delay_ms: int = DAY_MS
) -> Producer:
    return Producer(
        source=TransactionsSource(rows, key="k"),
        stream_name="s",
        kinesis_client=kinesis,
        checkpoint=store,
        resume=resume,
        backoff=Backoff(base_seconds=0, cap_seconds=0),
        label_delay_ms=label_delay_ms,
    )


def sent_events(kinesis) -> list[tuple[str, str]]:
    return [(e.get("type", "transaction"), e["transaction_id"]) for e in kinesis.accepted]


def test_a_stopped_run_never_sends_a_report_without_its_transaction(tmp_path):
    # GIVEN one fraud, whose report is due a day later, and a stream that refuses it as Ctrl-C comes
    fraud = simulator_rows(("sim-1-0", 1_700_000_000_000, "c0", "t0", 10.0, 1, 1))
    store = CheckpointStore(tmp_path / "cp.json")
    kinesis = CtrlCDuringFirstCall()

    # WHEN the run stops with the transaction unsent, THEN its report is not sent either
    kinesis.producer = first = resumable_producer(fraud, kinesis, store, resume=False)
    first.run()
    assert kinesis.accepted == []
    # AND the resumed run sends the transaction, then its report
    resumable_producer(fraud, kinesis, store, resume=True).run()
    assert sent_events(kinesis) == [
        ("transaction", "sim-1-0"),
        ("label", "sim-1-0"),
    ]


class AcceptsOnceThenFails:
    """Kinesis accepting the first call, then answering every call with a service error."""

    def __init__(self) -> None:
        self.calls = 0
        self.accepted: list[dict] = []

    def put_records(self, StreamName, Records):  # noqa: N803 - boto3's parameter names
        self.calls += 1
        if self.calls > 1:
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"}}, "PutRecords")
        self.accepted += [json.loads(r["Data"]) for r in Records]
        return {"Records": [{"SequenceNumber": "1", "ShardId": "shardId-0"} for _ in Records]}


def test_the_reports_of_a_failed_runs_accepted_transactions_are_sent_by_the_resumed_run(tmp_path):
    # GIVEN a fraud on card c0, accepted, then a second transaction of c0 (its own batch: one record
    # per card per call) that the stream keeps refusing until the run gives up
    rows = simulator_rows(
        ("sim-1-0", 1_700_000_000_000, "c0", "t0", 10.0, 1, 1),
        ("sim-1-1", 1_700_000_001_000, "c0", "t0", 5.0, 0, 0),
    )
    store = CheckpointStore(tmp_path / "cp.json")

    failing = AcceptsOnceThenFails()
    with pytest.raises(ProducerError):
        resumable_producer(rows, failing, store, resume=False).run()
    assert [e["transaction_id"] for e in failing.accepted] == ["sim-1-0"]
    assert store.load(source="k", order="sequential").pending_reports == (
        (1_700_000_000_000 + DAY_MS, "sim-1-0", 1, "c0"),
    )

    # WHEN the run is resumed THEN the second transaction goes out, and the first one's report too
    working = CtrlCDuringFirstCall()
    resumable_producer(rows, working, store, resume=True).run()
    assert sorted(sent_events(working)) == [("label", "sim-1-0"), ("transaction", "sim-1-1")]
    assert store.load(source="k", order="sequential").pending_reports == ()


@pytest.mark.parametrize(
    "label_delay_ms",
    [0, DAY_MS],
    ids=["report due mid-run, in a failing call", "report sent at the end, in a failing call"],
)
def test_a_report_whose_own_call_fails_stays_in_the_checkpoint(tmp_path, label_delay_ms):
    # GIVEN a fraud on c0, accepted, then a transaction of c1; the fraud's report goes out either
    # before c1's transaction (delay 0) or when the run ends (a day), in a call the stream refuses
    rows = simulator_rows(
        ("sim-1-0", 1_700_000_000_000, "c0", "t0", 10.0, 1, 1),
        ("sim-1-1", 1_700_000_001_000, "c1", "t0", 5.0, 0, 0),
    )
    store = CheckpointStore(tmp_path / "cp.json")
    failing = AcceptsOnceThenFails()
    with pytest.raises(ProducerError):
        resumable_producer(rows, failing, store, resume=False, label_delay_ms=label_delay_ms).run()
    assert ("transaction", "sim-1-0") in sent_events(failing)
    assert ("label", "sim-1-0") not in sent_events(failing)

    # THEN the checkpoint keeps the report, with its own due time
    assert store.load(source="k", order="sequential").pending_reports == (
        (1_700_000_000_000 + label_delay_ms, "sim-1-0", 1, "c0"),
    )
    # AND the resumed run sends it: every event reaches the stream once
    working = CtrlCDuringFirstCall()
    resumable_producer(rows, working, store, resume=True, label_delay_ms=label_delay_ms).run()
    assert sorted(sent_events(failing) + sent_events(working)) == [
        ("label", "sim-1-0"),
        ("transaction", "sim-1-0"),
        ("transaction", "sim-1-1"),
    ]
    assert store.load(source="k", order="sequential").pending_reports == ()


def test_a_report_left_unsent_by_ctrl_c_stays_in_the_checkpoint(tmp_path):
    # GIVEN a fraud, accepted as Ctrl-C comes; its report (due a day later) goes out as the run ends,
    # once, and is throttled
    fraud = simulator_rows(("sim-1-0", 1_700_000_000_000, "c0", "t0", 10.0, 1, 1))
    store = CheckpointStore(tmp_path / "cp.json")
    kinesis = CtrlCDuringFirstCall(first_accepted=True)
    kinesis.producer = first = resumable_producer(fraud, kinesis, store, resume=False)
    assert first.run().interrupted
    assert sent_events(kinesis) == [("transaction", "sim-1-0")]

    # THEN the checkpoint keeps the report with its due time (not the end-of-run stamp it was sent with)
    assert store.load(source="k", order="sequential").pending_reports == (
        (1_700_000_000_000 + DAY_MS, "sim-1-0", 1, "c0"),
    )
    # AND the resumed run sends it
    working = CtrlCDuringFirstCall()
    resumable_producer(fraud, working, store, resume=True).run()
    assert sent_events(working) == [("label", "sim-1-0")]
