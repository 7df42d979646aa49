"""Simulator data through the producer: CSV replay and `--source simulated`, v2 events, label events
after their report delay, send-time stamping, and creditcard.csv inside a .zip."""

from __future__ import annotations

import csv
import json
import time
import zipfile

import pytest

from fraud_data.schema import COLUMNS
from fraud_data.simulator import SimulationConfig, simulate
from fraud_data.synthetic import generate_rows
from fraud_data.transactions import write_csv
from producer.cli import main
from producer.labels import DAY_MS, LABELS_ALL
from producer.replay import Producer
from producer.sender import Backoff
from producer.source import TransactionsSource

SMALL = SimulationConfig(customers=60, terminals=120, days=12, seed=5)
SMALL_ARGS = ["--customers", "60", "--terminals", "120", "--days", "12", "--seed", "5"]


@pytest.fixture(scope="module")
def simulation():
    return simulate(SMALL).transactions


def split(records):
    """(transactions, label events) in stream order per shard, each with its shard and position."""
    transactions, labels = [], []
    for position, record in enumerate(records):
        item = {**record, "position": position}
        (labels if record["event"].get("type") == "label" else transactions).append(item)
    return transactions, labels


def test_a_simulator_csv_is_replayed_with_its_times_and_a_report_per_fraud(
    moto_url, stream, read_stream, tmp_path, simulation, assert_follows_contract, capsys
):
    # GIVEN a simulator CSV with frauds
    path = tmp_path / "transactions.csv"
    write_csv(simulation, path)
    frauds = {t for t, label in zip(simulation.transaction_id, simulation.label, strict=True) if label}
    assert frauds

    # WHEN it is replayed with a one-day report delay
    code = main(["--source", str(path), "--stream-name", stream, "--endpoint-url", moto_url, "-q"])

    # THEN every transaction arrives once as a v2 event with the dataset's own time, keyed by card
    assert code == 0
    transactions, labels = split(read_stream(stream))
    by_id = {t["event"]["transaction_id"]: t for t in transactions}
    assert sorted(by_id) == sorted(simulation.transaction_id)
    for row in zip(simulation.transaction_id, simulation.timestamp, simulation.card_id,
                   simulation.terminal_id, simulation.amount, strict=True):  # fmt: skip
        event = by_id[row[0]]["event"]
        assert (event["timestamp"], event["card_id"], event["terminal_id"], event["amount"]) == row[1:]
        assert by_id[row[0]]["partition_key"] == row[2]
    # AND exactly the frauds get a label event, on their transaction's shard, after it, stamped at
    # the report time (t + 1 day) or, for reports still pending at the end, the run's last time
    assert sorted(label["event"]["transaction_id"] for label in labels) == sorted(frauds)
    last_time = max(simulation.timestamp)
    for label in labels:
        event = label["event"]
        txn = by_id[event["transaction_id"]]
        assert (label["shard"], label["partition_key"]) == (txn["shard"], txn["event"]["card_id"])
        assert label["position"] > txn["position"]
        assert event["label"] == 1
        assert event["timestamp"] == min(txn["event"]["timestamp"] + DAY_MS, last_time)
        # reported before any transaction of its shard stamped at or after the report time
        shard = [t for t in transactions if t["shard"] == label["shard"]]
        reported = event["timestamp"]
        assert all(t["event"]["timestamp"] >= reported for t in shard if t["position"] > label["position"])
        assert all(t["event"]["timestamp"] <= reported for t in shard if t["position"] < label["position"])
    # AND the scorer's own decoder reads every event as sent
    for record in transactions[:200] + labels:
        assert_follows_contract(record["event"])
    assert f"{len(frauds):,} label events sent" in capsys.readouterr().err


def test_all_labels_and_a_zero_delay(moto_url, stream, read_stream, tmp_path, simulation):
    path = tmp_path / "transactions.csv"
    write_csv(simulation, path)

    code = main(["--source", str(path), "--stream-name", stream, "--endpoint-url", moto_url, "-q",
                 "--labels", "all", "--label-delay", "0", "--count", "500"])  # fmt: skip

    assert code == 0
    transactions, labels = split(read_stream(stream))
    assert len(transactions) == len(labels) == 500
    expected = dict(zip(simulation.transaction_id[:500], simulation.label[:500], strict=True))
    assert {e["event"]["transaction_id"]: e["event"]["label"] for e in labels} == expected


def test_no_labels(moto_url, stream, read_stream, tmp_path, simulation):
    path = tmp_path / "transactions.csv"
    write_csv(simulation, path)

    assert main(["--source", str(path), "--stream-name", stream, "--endpoint-url", moto_url, "-q",
                 "--labels", "none", "--count", "300"]) == 0  # fmt: skip

    transactions, labels = split(read_stream(stream))
    assert (len(transactions), labels) == (300, [])


def test_simulated_source_stamps_send_times_and_resumes_with_new_transactions(
    moto_url, stream, read_stream, tmp_path, simulation, assert_follows_contract
):
    # GIVEN the built-in simulator, stamped with send times (its default), and a checkpoint
    checkpoint = tmp_path / "cp.json"
    argv = ["--source", "simulated", *SMALL_ARGS, "--stream-name", stream, "--endpoint-url", moto_url,
            "-q", "--count", "400", "--resume", "--checkpoint", str(checkpoint)]  # fmt: skip

    # WHEN the same command runs twice
    before = int(time.time() * 1000)
    assert main(argv) == 0
    first = {r["event"]["transaction_id"] for r in split(read_stream(stream))[0]}
    assert main(argv) == 0
    after = int(time.time() * 1000)

    # THEN the second run sends the next 400 transactions of the same dataset, not the same ones
    transactions, labels = split(read_stream(stream))
    ids = [t["event"]["transaction_id"] for t in transactions]
    assert len(ids) == len(set(ids)) == 800
    assert sorted(ids) == sorted(simulation.transaction_id[:800])
    assert first == set(simulation.transaction_id[:400])
    # AND every timestamp is a send time, never going back within a shard
    for shard in {t["shard"] for t in transactions}:
        stamps = [t["event"]["timestamp"] for t in transactions if t["shard"] == shard]
        assert stamps == sorted(stamps)
        assert before <= stamps[0]
        assert stamps[-1] <= after
    assert labels
    for record in transactions[:50] + labels:
        assert_follows_contract(record["event"])


def test_a_zip_holding_creditcard_csv_gives_the_same_transactions_as_the_csv(
    moto_url, kinesis, tmp_path, read_stream
):
    import uuid

    # GIVEN creditcard.csv and the .zip it ships in
    path = tmp_path / "creditcard.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(generate_rows(30, seed=3))
    archive = tmp_path / "creditcardfraud.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "creditcard.csv")
    streams = {}
    for kind, source in (("csv", path), ("zip", archive)):
        streams[kind] = f"producer-zip-{uuid.uuid4().hex[:8]}"
        kinesis.create_stream(StreamName=streams[kind], ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName=streams[kind], WaiterConfig={"Delay": 0.1})
        # WHEN each is replayed
        assert main(["--source", str(source), "--stream-name", streams[kind], "--endpoint-url", moto_url,
                     "-q"]) == 0  # fmt: skip

    # THEN both send the same 30 transactions (same ids, same features)
    def content(name):
        return sorted((r["event"]["transaction_id"], r["event"]["features"]) for r in read_stream(name))

    assert len(content(streams["zip"])) == 30
    assert content(streams["zip"]) == content(streams["csv"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "x.zip").write_bytes(b"not a zip") and d / "x.zip", "not a readable .zip"),
        (lambda d: _zip(d, []), "expected exactly one .csv inside the .zip, found none"),
        (lambda d: _zip(d, ["a.csv", "b.csv"]), "found a.csv, b.csv"),
        (lambda d: _sim_csv_without(d, "terminal_id"), None),  # no terminal_id: the creditcard shape
        (lambda d: _sim_csv_without(d, "amount"), "header lacks column(s) amount"),
        (lambda d: (d / "x.bin").write_bytes(b"\x01" * 300_000) and d / "x.bin", "x.bin: not a CSV file"),
        (lambda d: (d / "x.csv").write_text("a," + "9" * 200_000 + "\n") and d / "x.csv", "not a CSV file"),
    ],
)
def test_unusable_files_get_one_clear_line(tmp_path, capsys, make, message):
    path = make(tmp_path)
    code = main(["--source", str(path), "--dry-run", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if message:
        assert message in err


def _zip(directory, names):
    path = directory / "data.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, "a,b\n1,2\n")
        zf.writestr("README.txt", "hello")
    return path


def _sim_csv_without(directory, column):
    path = directory / "sim.csv"
    names = ("transaction_id", "timestamp", "card_id", "terminal_id", "amount", "label")
    header = [c for c in names if c != column]
    path.write_text(",".join(header) + "\n")
    return path


def test_malformed_simulator_rows_are_skipped_and_counted(moto_url, stream, read_stream, tmp_path, capsys):
    path = tmp_path / "sim.csv"
    good = "sim-1-00000001,1522540800000,card-000001,term-00001,12.50,0,0"
    bad = [
        "sim-1-00000002,yesterday,card-000001,term-00001,1.00,0,0",
        "sim-1-00000003,1522540800001,card {x},term-00001,1.00,0,0",
        "sim-1-00000004,1522540800002,card-000001,term-00001,-3,0,0",
        "sim-1-00000005,1522540800003,card-000001,term-00001,3,2,0",
        "short,row",
        "sim-1-00000006,1522540800004,card-000001,term-00001,3,0," + "9" * 200_000,  # over the csv limit
    ]
    path.write_text(",".join(("transaction_id", "timestamp", "card_id", "terminal_id", "amount", "label",
                              "scenario")) + "\n" + "\n".join([good, *bad]) + "\n")  # fmt: skip

    assert main(["--source", str(path), "--stream-name", stream, "--endpoint-url", moto_url, "-q"]) == 0

    assert [r["event"]["transaction_id"] for r in read_stream(stream)] == ["sim-1-00000001"]
    assert "rejected rows 6" in capsys.readouterr().err


class ThrottlingKinesis:
    """PutRecords as a throttled stream answers it: every third new record is refused on its first
    attempt (ProvisionedThroughputExceededException) and accepted on a retry. Keeps what it accepted,
    in order, and every call's partition keys."""

    def __init__(self) -> None:
        self.attempts: dict[bytes, int] = {}
        self.accepted: list[dict] = []
        self.call_keys: list[list[str]] = []

    def put_records(self, StreamName, Records):  # noqa: N803 - boto3's parameter names
        self.call_keys.append([r["PartitionKey"] for r in Records])
        results = []
        for record in Records:
            tries = self.attempts[record["Data"]] = self.attempts.get(record["Data"], 0) + 1
            if tries == 1 and len(self.attempts) % 3 == 0:
                results.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
                )
            else:
                self.accepted.append(json.loads(record["Data"]))
                results.append({"SequenceNumber": str(len(self.accepted)), "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_throttled_entries_never_reorder_a_cards_events(simulation):
    # GIVEN a stream that throttles a third of the records on their first attempt
    kinesis = ThrottlingKinesis()

    # WHEN a simulator dataset (cards repeat within a batch) goes out with its fraud reports
    summary = Producer(
        source=TransactionsSource(simulation, key="sim"),
        stream_name="s",
        kinesis_client=kinesis,
        labels=LABELS_ALL,
        label_delay_ms=0,
        backoff=Backoff(base_seconds=0, cap_seconds=0),
    ).run()

    # THEN no call carried two records of one card, retries happened, and every card's events were
    # accepted in the order they were read: transactions in event order, each report after its own
    assert summary.retried > 0
    assert all(len(keys) == len(set(keys)) for keys in kinesis.call_keys)
    assert max(len(keys) for keys in kinesis.call_keys) > 1  # still batched
    by_card: dict[str, list[str]] = {}
    card_of = dict(zip(simulation.transaction_id, simulation.card_id, strict=True))
    for event in kinesis.accepted:
        kind = "label" if event.get("type") == "label" else "txn"
        by_card.setdefault(card_of[event["transaction_id"]], []).append(f"{kind}:{event['transaction_id']}")
    for card, events in by_card.items():
        transactions = [e for e in events if e.startswith("txn:")]
        expected = [
            f"txn:{t}"
            for t, c in zip(simulation.transaction_id, simulation.card_id, strict=True)
            if c == card
        ]
        assert transactions == expected, card
        for i, item in enumerate(events):
            if item.startswith("label:"):
                assert f"txn:{item[6:]}" in events[:i]
