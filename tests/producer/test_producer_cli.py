"""`python -m producer` end to end against moto's server: good runs, bad use, dry run, Ctrl-C."""

from __future__ import annotations

import csv
import json
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid

import boto3
import pytest

from fraud_data.schema import COLUMNS
from fraud_data.synthetic import generate_rows
from producer.cli import main


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def stack(moto_url, stream):
    """A CloudFormation stack in moto whose StreamName output names `stream`."""
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_url)
    name = f"FraudDetection-{stream[-8:]}"
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"StreamName": {"Value": stream}, "StreamArn": {"Value": f"arn:aws:kinesis:::{stream}"}},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


def test_sends_to_the_stream_named_by_the_stack_outputs(
    moto_url, stack, stream, read_stream, capsys, assert_follows_contract
):
    # WHEN the producer finds the stream through the stack's outputs
    code = main(["--source", "synthetic", "--stack", stack, "--endpoint-url", moto_url, "--count", "1200",
                 "--seed", "3", "--quiet"])  # fmt: skip
    # THEN 1,200 contract-shaped records arrive, keyed by card, and one summary line is printed
    records = read_stream(stream)
    assert code == 0
    assert "1,200 records sent" in one_line(capsys.readouterr().err)
    assert sorted(r["event"]["transaction_id"] for r in records) == [
        f"synthetic-3-{i:06d}" for i in range(1200)
    ]
    for record in records:
        assert_follows_contract(record["event"])
        assert record["partition_key"] == record["event"]["card_id"]
    assert len({r["shard"] for r in records}) == 2  # card keys spread the load over both shards


def test_stream_name_wins_over_stack(moto_url, stream, read_stream, capsys):
    code = main(
        [
            "--source",
            "synthetic",
            "--stream-name",
            stream,
            "--stack",
            "NoSuchStack",
            "--endpoint-url",
            moto_url,
            "--count",
            "5",
            "-q",
        ]  # fmt: skip
    )
    assert code == 0
    assert len(read_stream(stream)) == 5


def test_malformed_csv_rows_are_skipped_and_counted(moto_url, stream, read_stream, tmp_path, capsys):
    # GIVEN a creditcard.csv with three broken rows among 20, one with a field over the csv module's limit
    path = tmp_path / "creditcard.csv"
    rows = [list(r) for r in generate_rows(20, seed=6)]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    lines = path.read_text().splitlines()
    lines[4], lines[9], lines[15] = "garbage", ",".join(["x"] * 31), '"' + "x" * 200_000 + '"'
    path.write_text("\n".join(lines) + "\n")
    # WHEN replayed
    code = main(["--source", str(path), "--stream-name", stream, "--endpoint-url", moto_url, "-q"])
    # THEN the 17 good rows arrive, with their labels, and the summary counts the 3 rejected rows
    events = sorted((r["event"] for r in read_stream(stream)), key=lambda e: e["transaction_id"])
    assert code == 0
    assert "17 records sent" in (line := one_line(capsys.readouterr().err))
    assert "rejected rows 3" in line
    good = [row for i, row in enumerate(rows) if i not in (3, 8, 14)]
    assert [e["features"] for e in events] == [row[:30] for row in good]
    assert [e["label"] for e in events] == [int(row[30]) for row in good]


def test_quiet_prints_only_the_summary_line_even_when_resuming(capsys):
    # --resume says where it starts ("no checkpoint at ...") - progress, which -q leaves out
    assert main(["--dry-run", "-q", "--source", "synthetic", "--count", "2", "--resume"]) == 0
    assert one_line(capsys.readouterr().err).startswith("2 records printed (dry run, nothing sent)")


def test_dry_run_prints_records_and_sends_nothing(moto_url, stream, read_stream, capsys, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # a dry run needs no AWS at all
    code = main(["--source", "synthetic", "--dry-run", "--count", "4", "--stream-name", stream,
                 "--endpoint-url", moto_url, "-q"])  # fmt: skip
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert "dry run, nothing sent" in one_line(err)
    assert [e["transaction_id"] for e in events] == [f"synthetic-42-{i:06d}" for i in range(4)]
    assert read_stream(stream) == []


def test_help_explains_every_option(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    options = "--stream-name --stack --source --count --rate --loop --shuffle --seed --resume --checkpoint"
    for option in [*options.split(), "--endpoint-url", "--region", "--dry-run", "--quiet"]:
        assert option in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--stream-name", "no-such-stream"], 1, "stream no-such-stream not found"),
        (["--stack", "NoSuchStack"], 1, "stack NoSuchStack not found"),
        (["--source", "missing.csv", "--stream-name", "s"], 1, "missing.csv: no such file"),
        (["--rate", "0"], 2, "argument --rate: 0 is not a positive number"),
        (["--rate", "fast"], 2, "argument --rate: 'fast' is not a number"),
        (["--count", "-1"], 2, "argument --count: -1 is negative"),
        (["--count", "many"], 2, "argument --count: 'many' is not a whole number"),
        (["--source", "synthetic", "--shuffle"], 2, "--shuffle needs a file --source"),
        (["--shuffle"], 2, "--shuffle would break the event order"),
        (["--label-delay", "7d"], 2, "argument --label-delay: 7d is not under 7d"),
        (["--label-delay", "soon"], 2, "argument --label-delay: 'soon' is not a duration"),
        (["--customers", "2"], 2, "the fraud scenarios need at least 3 customers"),
        (["--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
        (
            ["--endpoint-url", "127.0.0.1:4567", "--stream-name", "s"],
            2,
            "argument --endpoint-url: '127.0.0.1:4567' is not an endpoint URL; give the scheme and host, "
            "e.g. http://127.0.0.1:4566",
        ),
    ],
)
def test_bad_use_gets_one_clear_line_and_a_non_zero_exit(moto_url, argv, code, message, capsys):
    assert main([*argv, "--endpoint-url", moto_url]) == code
    assert message in one_line(capsys.readouterr().err)


def test_a_stack_without_a_stream_output_is_a_clear_error(moto_url, capsys):
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_url)
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"Other": {"Value": "x"}}}
    name = f"NoStreamOutput-{uuid.uuid4().hex[:8]}"  # moto's state is shared by the whole process
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    assert main(["--stack", name, "--endpoint-url", moto_url]) == 1
    assert f"stack {name} has no StreamName output" in one_line(capsys.readouterr().err)


def test_no_credentials_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(["--stream-name", "s", "--count", "1"]) == 1
    assert "no AWS credentials found" in one_line(capsys.readouterr().err)


def test_no_region_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert main(["--stream-name", "s"]) == 1
    assert "no AWS region" in one_line(capsys.readouterr().err)


def test_ctrl_c_stops_cleanly_with_the_checkpoint_saved(moto_url, stream, read_stream, tmp_path, capsys):
    # GIVEN an endless synthetic run (bounded only as a safety net) and a watcher that presses Ctrl-C
    # once the stream has records, i.e. while the producer is running with its handler installed
    def press_ctrl_c_when_records_arrive() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if read_stream(stream):
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return
            time.sleep(0.05)

    checkpoint = tmp_path / "cp.json"
    threading.Thread(target=press_ctrl_c_when_records_arrive, daemon=True).start()
    # WHEN the producer runs and is interrupted
    code = main(["--source", "synthetic", "--stream-name", stream, "--endpoint-url", moto_url,
                 "--count", "300000", "--rate", "2000",
                 "--checkpoint", str(checkpoint), "--seed", "9"])  # fmt: skip
    # THEN it exits 130 after finishing its batch, says so, and the checkpoint matches what arrived
    err = capsys.readouterr().err
    ids = sorted(r["event"]["transaction_id"] for r in read_stream(stream))
    saved = json.loads(checkpoint.read_text())
    assert code == 130
    assert "Traceback" not in err
    assert "stopping after the in-flight batch" in err
    assert "interrupted, checkpoint saved" in err.strip().splitlines()[-1]
    assert 0 < len(ids) < 300000
    assert ids == [f"synthetic-9-{i:06d}" for i in range(len(ids))]
    assert saved["resume_at"] == [0, len(ids)]
    assert saved["done_ahead"] == []


def test_a_dry_run_piped_into_head_ends_without_a_traceback():
    # `head` closes the pipe after one line: the producer must stop quietly, not print a traceback
    result = subprocess.run(
        f"{shlex.quote(sys.executable)} -m producer --dry-run --source synthetic -q --count 20000 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(result.stdout)["transaction_id"]
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
