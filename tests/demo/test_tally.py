"""`demo.tally`, the end-to-end suite's oracle, against a real Redis Stack holding hand-made documents.

The index and the series are created by the scorer's own `ensure_schema` (the shape the tally
reads is the shape the scorer writes); every document, sample and stream entry is written here by
hand, so each expected figure is known exactly.
"""

from __future__ import annotations

import pytest

from contracts.redis_keys import REJECTED_STREAM, TS_LATENCY_P99, TS_SCORED, txn_key, verdict_series
from demo import tally
from demo.tally import Tally, lost

SINCE = 1_800_000_000_000  # a run's start (epoch ms)
RETENTION_MS = 10 * 365 * 24 * 3600 * 1000  # keep every hand-made sample, whatever its time


@pytest.fixture
def client(redis_client):
    from fraud_scorer.schema import ensure_schema

    ensure_schema(redis_client, retention_ms=RETENTION_MS)
    return redis_client


def put(client, transaction_id: str, *, verdict: str, scored_at: int = SINCE + 1_000, latency_ms: int = 100,
        label: int | None = None, count_in_series: bool = True) -> None:  # fmt: skip
    """One stored transaction as the scorer writes it (the fields the tally reads), and - unless told
    otherwise - its samples in the counter series."""
    document = {
        "transaction_id": transaction_id,
        "verdict": verdict,
        "scored_at": scored_at,
        "timestamp": scored_at - latency_ms,
        "latency_ms": latency_ms,
        "amount": 10.0,
        "card_id": "card-1",
    }
    if label is not None:
        document["label"] = label
    client.json().set(txn_key(transaction_id), "$", document)
    if count_in_series:
        client.ts().add(TS_SCORED, scored_at, 1, duplicate_policy="sum")
        client.ts().add(verdict_series(verdict), scored_at, 1, duplicate_policy="sum")


def test_an_empty_redis_counts_nothing_without_error(redis_client):
    # No index at all: nothing scored yet (the scorer creates it on first use).
    counted = tally.count(redis_client)
    assert counted == Tally()
    assert counted.precision is None
    assert counted.recall is None
    assert "0 transactions scored" in counted.summary_line(0)
    assert "p50 n/a" in counted.summary_line(0)


def test_verdicts_are_counted_from_the_index_since_a_time(client):
    # GIVEN documents scored before and after SINCE
    for i in range(3):
        put(client, f"f{i}", verdict="fraud")
    for i in range(2):
        put(client, f"s{i}", verdict="suspicious")
    for i in range(5):
        put(client, f"l{i}", verdict="legit")
    put(client, "old-fraud", verdict="fraud", scored_at=SINCE - 1)
    put(client, "old-legit", verdict="legit", scored_at=SINCE - 60_000)

    # WHEN counted since SINCE, and since the beginning
    recent, everything = tally.count(client, since_ms=SINCE), tally.count(client)

    # THEN only the documents scored at or after SINCE count
    assert (recent.fraud, recent.suspicious, recent.legit, recent.stored) == (3, 2, 5, 10)
    assert (everything.fraud, everything.legit, everything.stored) == (4, 6, 12)


def test_rejections_are_counted_from_the_stream_since_a_time(client):
    for offset in (-5, -1, 0, 1, 2):  # stream ids are <epoch ms>-<seq>
        client.xadd(REJECTED_STREAM, {"reason": "not_json"}, id=f"{SINCE + offset}-0")
    assert tally.count_rejected(client, since_ms=SINCE) == 3
    assert tally.count_rejected(client) == 5
    assert tally.count(client, since_ms=SINCE).rejected == 3


def test_only_rejected_transactions_count_not_labels_or_reused_ids(client):
    # A lost fraud transaction's own report is rejected as unknown_transaction: counting it as a
    # rejected transaction would make "sent - (stored + rejected)" hide the loss.
    for i, reason in enumerate(["not_json", "unknown_transaction", "duplicate_id_conflict", "invalid_field"]):
        client.xadd(REJECTED_STREAM, {"reason": reason}, id=f"{SINCE + i}-0")
    assert tally.count_rejected(client, since_ms=SINCE) == 2
    assert tally.count_rejected(client) == 2


def test_rejections_are_counted_across_pages(client):
    pipe = client.pipeline(transaction=False)
    for i in range(10_050):
        pipe.xadd(REJECTED_STREAM, {"reason": "not_json"}, id=f"{SINCE + i}-0")
    pipe.execute()
    assert tally.count_rejected(client, since_ms=SINCE + 10) == 10_040


def test_latency_quantiles_are_over_every_transaction(client):
    # GIVEN 200 transactions with latencies 1..200 ms
    for i in range(1, 201):
        put(client, f"t{i}", verdict="legit", latency_ms=i, count_in_series=False)

    counted = tally.count(client, since_ms=SINCE)

    # THEN p50 and p99 are those of all 200 values (RediSearch's QUANTILE: within a rank or two)
    assert counted.latency_p50_ms == pytest.approx(100, abs=2)
    assert counted.latency_p99_ms == pytest.approx(198, abs=2)
    assert "latency p50 100 ms" in counted.summary_line(200) or "latency p50 101 ms" in counted.summary_line(
        200
    )


def test_the_slowest_batch_p99_is_the_highest_per_batch_sample_since_a_time(client):
    # GIVEN per-batch p99 samples as the scorer writes them (one per batch, at its scoring time)
    client.ts().add(TS_LATENCY_P99, SINCE - 10, 9_999)  # an earlier run's slow batch
    for offset, value in ((10, 420), (20, 610), (30, 380)):
        client.ts().add(TS_LATENCY_P99, SINCE + offset, value)

    # THEN the run's figure is its own slowest batch, named as such in the summary
    counted = tally.count(client, since_ms=SINCE)
    assert counted.slowest_batch_p99_ms == 610
    assert "(slowest batch's p99 610 ms)" in counted.summary_line(0)
    assert tally.slowest_batch_p99(client, since_ms=SINCE + 25) == 380


def test_precision_and_recall_of_fraud_verdicts_against_the_reported_labels(client):
    # GIVEN fraud verdicts: 3 on reported frauds, 1 unreported, 1 reported legitimate (label 0);
    # reported frauds the model missed: 1 legit, 1 suspicious; and unlabelled legit ones
    for i in range(3):
        put(client, f"tp{i}", verdict="fraud", label=1)
    put(client, "fp-unreported", verdict="fraud")
    put(client, "fp-label-0", verdict="fraud", label=0)
    put(client, "fn-legit", verdict="legit", label=1)
    put(client, "fn-suspicious", verdict="suspicious", label=1)
    for i in range(4):
        put(client, f"legit{i}", verdict="legit")
    put(client, "old-tp", verdict="fraud", label=1, scored_at=SINCE - 1)  # before the run

    counted = tally.count(client, since_ms=SINCE)

    # THEN precision = TP / fraud verdicts and recall = TP / reported frauds, over this run only
    assert (counted.true_positives, counted.fraud, counted.reported_frauds) == (3, 5, 5)
    assert counted.precision == pytest.approx(3 / 5)
    assert counted.recall == pytest.approx(3 / 5)
    line = counted.summary_line(counted.stored)
    assert "fraud verdicts vs 5 reported frauds: precision 0.60, recall 0.60" in line


def test_precision_without_fraud_verdicts_and_recall_without_frauds_are_not_numbers(client):
    put(client, "a", verdict="legit", label=1)
    put(client, "b", verdict="fraud")
    only_missed = tally.count(client, since_ms=SINCE)
    assert only_missed.recall == 0.0
    assert only_missed.precision == 0.0
    client.flushall()
    assert tally.count(client).precision is None


def test_lost_is_what_was_sent_minus_stored_and_rejected_never_negative():
    counted = Tally(fraud=2, suspicious=1, legit=5, rejected=1)
    assert lost(10, counted) == 1
    assert lost(9, counted) == 0
    assert lost(3, counted) == 0  # more stored than sent (an earlier run's): not "negative lost"
    assert (
        "8 transactions scored (fraud 2, suspicious 1, legit 5), 1 rejected, 1 lost"
        in counted.summary_line(10)
    )


def test_audit_finds_missing_documents_and_counters_that_disagree_with_the_index(client):
    # GIVEN 3 stored transactions, one of them counted twice in the series (a replay written twice)
    for i in range(3):
        put(client, f"a{i}", verdict="legit")
    client.ts().add(TS_SCORED, SINCE + 5_000, 1, duplicate_policy="sum")
    client.ts().add(verdict_series("legit"), SINCE + 5_000, 1, duplicate_policy="sum")

    # WHEN audited against 4 sent ids
    audit = tally.audit(client, ["a0", "a1", "a2", "never-stored"])
    problems = audit.problems(tally.count(client))

    # THEN the missing id and both disagreeing counters are named
    assert audit.missing == ["never-stored"]
    assert audit.scored_samples == 4
    assert any("1 sent transactions not in Redis" in p for p in problems)
    assert any("ts:scored counts 4 transactions, the index 3" in p for p in problems)
    assert any("ts:verdict:legit counts 4" in p for p in problems)


def test_audit_of_a_clean_run_finds_nothing(client):
    ids = [f"c{i}" for i in range(7)]
    for i, transaction_id in enumerate(ids):
        put(client, transaction_id, verdict=("fraud", "suspicious", "legit")[i % 3])
    audit = tally.audit(client, ids)
    assert audit.problems(tally.count(client)) == []
    assert audit.verdict_samples == {"fraud": 3, "suspicious": 2, "legit": 2}


def test_counts_are_complete_even_when_a_query_outlasts_the_search_timeout(client):
    # GIVEN RediSearch told to give up after 1 ms and return what it has (ON_TIMEOUT return), and more
    # documents than it can aggregate in 1 ms
    pipe = client.pipeline(transaction=False)
    for i in range(20_000):
        document = {"verdict": "legit", "scored_at": SINCE + i, "latency_ms": i % 500, "label": i % 2}
        pipe.json().set(txn_key(f"many-{i}"), "$", document)
    pipe.execute()
    previous = {"TIMEOUT": 500, "ON_TIMEOUT": "return"}  # the module's defaults, restored after
    client.execute_command("FT.CONFIG", "SET", "TIMEOUT", 1)
    client.execute_command("FT.CONFIG", "SET", "ON_TIMEOUT", "return")
    try:
        # WHEN the tally counts
        counted = tally.count(client, since_ms=SINCE)
    finally:
        for name, value in previous.items():
            client.execute_command("FT.CONFIG", "SET", name, value)

    # THEN nothing is cut short: the oracle's queries carry their own TIMEOUT 0 (none)
    assert counted.legit == 20_000
    assert counted.reported_frauds == 10_000
