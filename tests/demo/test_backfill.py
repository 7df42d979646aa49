"""Warm start: `demo.backfill` loads history into the feature state exactly as streaming it through the
scoring Lambda would, and its command answers user errors with one line."""

from __future__ import annotations

import io
import json
import time

import pytest

from contracts import redis_keys as keys
from demo.backfill import history, load_history, main, shift_to_end_at
from emulators.kinesis_events import kinesis_event
from fraud_data.simulator import SimulationConfig, simulate
from producer.labels import DAY_MS, LABELS_FRAUD
from producer.replay import Producer
from producer.source import TransactionsSource

SMALL = SimulationConfig(customers=40, terminals=80, days=6, seed=3)


def test_state_after_backfill_equals_state_after_streaming_the_same_history(
    redis_client, scorer_env, lambda_context
):
    import handler
    from fraud_scorer.feature_store import dump_entity_state

    # GIVEN six days of simulated history, moved to end a minute ago (inside the scorer's time bounds)
    rows = shift_to_end_at(simulate(SMALL).transactions, int(time.time() * 1000) - 60_000)
    assert sum(rows.label) > 0

    # WHEN it is streamed through the handler as the producer sends it (transactions in event order,
    # each fraud's report a day later, the reports still pending at the end sent then) ...
    printed = io.StringIO()
    Producer(
        source=TransactionsSource(rows, key="history"),
        dry_run=True,
        output=printed,
        labels=LABELS_FRAUD,
        label_delay_ms=DAY_MS,
    ).run()
    events = [json.loads(line) for line in printed.getvalue().splitlines()]
    assert len(events) == len(rows) + sum(rows.label)
    for start in range(0, len(events), 500):
        response = handler.handler(kinesis_event(events[start : start + 500]), lambda_context)
        assert response == {"batchItemFailures": []}
    streamed = dump_entity_state(redis_client)

    # ... and, into an empty Redis, backfilled in bulk
    redis_client.flushall()
    stats = load_history(redis_client, rows)
    backfilled = dump_entity_state(redis_client)

    # THEN every card's and terminal's state is the same, member for member (fraud marks compared
    # without their report times: streamed reports come a day late, backfilled ones are known)
    assert stats.transactions == len(rows)
    assert stats.labels == sum(rows.label)
    assert backfilled == streamed
    cards = {k for k in backfilled if k.startswith("card:")}
    frauds = sum(len(v) for k, v in backfilled.items() if k.endswith(":frauds"))
    assert len(cards) == len(set(rows.card_id))
    assert frauds == sum(rows.label)
    # AND backfilling again changes nothing (idempotent)
    load_history(redis_client, rows)
    assert dump_entity_state(redis_client) == backfilled


def test_history_takes_the_first_days_and_the_shift_keeps_every_gap():
    rows = simulate(SMALL).transactions
    first_two = history(rows, 2)
    midnight = rows.timestamp[0] // DAY_MS * DAY_MS
    assert max(first_two.timestamp) < midnight + 2 * DAY_MS
    assert len(first_two) == sum(1 for ts in rows.timestamp if ts < midnight + 2 * DAY_MS)
    shifted = shift_to_end_at(first_two, 1_900_000_000_000)
    assert max(shifted.timestamp) == 1_900_000_000_000 - 1_000
    gaps = [b - a for a, b in zip(first_two.timestamp, first_two.timestamp[1:], strict=False)]
    assert gaps == [b - a for a, b in zip(shifted.timestamp, shifted.timestamp[1:], strict=False)]
    assert shifted.transaction_id == first_two.transaction_id


def test_the_command_loads_a_simulated_history_and_writes_what_it_loaded(
    redis_url, redis_client, tmp_path, capsys
):
    from fraud_data.transactions import read_csv

    out = tmp_path / "history.csv"
    code = main(["--redis-url", redis_url, "--customers", "30", "--terminals", "60", "--days", "3",
                 "--out", str(out)])  # fmt: skip

    assert code == 0
    line = capsys.readouterr().out.strip()
    loaded = read_csv(out)
    assert line.startswith(f"backfilled {len(loaded):,} transactions")
    assert "transactions/s" in line
    assert max(loaded.timestamp) <= int(time.time() * 1000)  # shifted to end just before now
    assert redis_client.exists(keys.card_state_key(loaded.card_id[0]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no Redis to load into"),
        (["--redis-url", "redis://127.0.0.1:1/0", "--customers", "30", "--terminals", "60", "--days", "1"],
         "cannot use the Redis"),
        (["--redis-url", "redis://x", "--source", "missing.csv"], "missing.csv: no such file"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(monkeypatch, capsys, argv, message):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_a_row_over_the_csv_field_limit_is_one_line_naming_its_line(tmp_path, capsys):
    path = tmp_path / "sim.csv"
    header = "transaction_id,timestamp,card_id,terminal_id,amount,label,scenario"
    row = "sim-1-0,1522540800000,c0,t0,1.0,0,0"
    path.write_text(f"{header}\n{row}\n{row[:-1]}{'9' * 200_000}\n")
    assert main(["--redis-url", "redis://127.0.0.1:1/0", "--source", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"demo.backfill: error: {path}, line 3: not a CSV row (field larger than field limit (131072)); "
        "write one with `python -m fraud_data simulate --out PATH`"
    ]


def test_no_checkpoint_is_left_when_the_history_does_not_reach_redis(tmp_path, capsys):
    # A checkpoint placed after the history would have the producer's --resume skip a history
    # that never got into Redis.
    checkpoint = tmp_path / "cp.json"
    assert main(["--redis-url", "redis://127.0.0.1:1/0", "--customers", "30", "--terminals", "60",
                 "--days", "1", "--checkpoint", str(checkpoint)]) == 1  # fmt: skip
    assert "cannot use the Redis" in capsys.readouterr().err
    assert not checkpoint.exists()


def test_the_command_leaves_a_checkpoint_from_which_the_producer_streams_what_follows(
    redis_url, tmp_path, capsys, monkeypatch
):

    from producer.cli import main as producer_main

    # GIVEN a 5-day world: the first 3 days backfilled, with a producer checkpoint after them
    world = ["--customers", "30", "--terminals", "60", "--seed", "9"]
    checkpoint = tmp_path / "cp.json"
    history_csv = tmp_path / "history.csv"
    assert main(["--redis-url", redis_url, *world, "--days", "3", "--world-days", "5",
                 "--checkpoint", str(checkpoint), "--out", str(history_csv)]) == 0  # fmt: skip

    # WHEN the producer resumes the same world from that checkpoint (dry run: printed, not sent)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    resume = ["--resume", "--checkpoint", str(checkpoint)]
    assert producer_main(["--source", "simulated", *world, "--days", "5", *resume,
                          "--dry-run", "--count", "20", "-q", "--labels", "none"]) == 0  # fmt: skip

    # THEN it sends the 20 transactions that follow the history, none of the history's
    from fraud_data.transactions import read_csv

    sent = [json.loads(line)["transaction_id"] for line in capsys.readouterr().out.splitlines()]
    loaded = read_csv(history_csv).transaction_id
    full = simulate(SimulationConfig(customers=30, terminals=60, days=5, seed=9)).transactions.transaction_id
    assert loaded == full[: len(loaded)]
    assert sent == full[len(loaded) : len(loaded) + 20]
