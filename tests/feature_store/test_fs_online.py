"""The scorer as the online feature store, through `handler.handler` against a real Redis Stack and
the local SageMaker runtime: vectors, labels, idempotency, conflicts, expiry and the skew guard."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest
import redis
from redis.crc import key_slot

import handler
from contracts import redis_keys as keys
from contracts.features import (
    CARD_RETENTION_MS,
    DAY_MS,
    MODEL_FEATURES,
    SPEC_VERSION,
    TERMINAL_RETENTION_MS,
    compute_dict,
)
from emulators.kinesis_events import KinesisRecord, kinesis_event, next_sequence_number
from fraud_scorer import feature_store as fs
from fraud_scorer.feature_store import dump_entity_state, entity_state

NOW = (int(time.time()) // 60) * 60_000
SHARD = "shardId-000000000001"


def txn(tid: str, ts: int, amount: float, *, card: str = "card-1", terminal: str = "term-1", **extra) -> dict:
    return {
        "transaction_id": tid,
        "timestamp": ts,
        "card_id": card,
        "terminal_id": terminal,
        "amount": amount,
        **extra,
    }


def label(tid: str, value: int, reported: int) -> dict:
    return {"type": "label", "transaction_id": tid, "label": value, "timestamp": reported}


def record(data: dict | bytes) -> KinesisRecord:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return KinesisRecord(
        data=raw, partition_key="pk", sequence_number=next_sequence_number(), arrival_s=NOW / 1000
    )


def deliver(events: list, lambda_context) -> list[str]:
    event = kinesis_event([e if isinstance(e, KinesisRecord) else record(e) for e in events], shard_id=SHARD)
    return [f["itemIdentifier"] for f in handler.handler(event, lambda_context)["batchItemFailures"]]


@pytest.fixture
def env(scorer_env, monkeypatch):
    monkeypatch.setenv("TS_RETENTION_MS", str(60 * DAY_MS))  # histories of a few weeks are accepted
    handler.reset_container_state()
    return scorer_env


def remove_card_event(redis_client, card_id: str, transaction_id: str) -> None:
    """Rewrite the card's state without one event (as if its state write had been lost)."""
    kept = [e for e in entity_state(redis_client, card_id=card_id)["card"] if e[2] != transaction_id]
    record = keys.encode_card_events(
        [ts for ts, _, _ in kept], [amount for _, amount, _ in kept], [tid.encode() for _, _, tid in kept]
    )
    redis_client.set(keys.card_state_key(card_id), record, keepttl=True)


def stored_features(redis_client, tid: str) -> dict:
    return redis_client.json().get(f"txn:{tid}", "$.features")[0]


def rejected(redis_client) -> list[dict]:
    return [fields for _, fields in redis_client.xrange(keys.REJECTED_STREAM)]


def state_dump(redis_client) -> dict:
    """Every key's content: documents, streams and series as stored, the entity state decoded (each
    event and each effective fraud mark with its report time; a replayed label appends its mark
    again, which changes no feature and is folded by the next compaction)."""
    out = {}
    for key in sorted(redis_client.keys("*")):
        kind = redis_client.type(key)
        if kind == "ReJSON-RL":
            out[key] = redis_client.json().get(key)
        elif kind == "stream":
            out[key] = redis_client.xrange(key)
        elif kind == "TSDB-TYPE":
            out[key] = redis_client.execute_command("TS.RANGE", key, "-", "+")
    out["entity state"] = dump_entity_state(redis_client, with_report_times=True)
    return out


def test_vectors_are_the_reference_computation_over_the_entities_history(env, redis_client, lambda_context):
    # GIVEN a card's and a terminal's history (two cards share the terminal), a fraud at the
    # terminal 10 days ago reported 2 days later, and a new transaction now
    t_fraud = NOW - 10 * DAY_MS
    history = [
        txn("h1", t_fraud, 40.0, card="card-2"),
        txn("h2", NOW - 9 * DAY_MS, 20.0),
        txn("h3", NOW - 8 * DAY_MS, 25.5, card="card-2"),
        txn("h4", NOW - 3_600_000, 12.25),
    ]
    assert deliver(history, lambda_context) == []
    assert deliver([label("h1", 1, t_fraud + 2 * DAY_MS)], lambda_context) == []

    # WHEN
    assert deliver([txn("now", NOW, 99.0)], lambda_context) == []

    # THEN its stored vector is compute_vector over exactly that history, keyed by name
    expected = compute_dict(
        NOW,
        99.0,
        [(NOW - 9 * DAY_MS, 20.0), (NOW - 3_600_000, 12.25)],
        [(t_fraud, 1), (NOW - 9 * DAY_MS, 0), (NOW - 8 * DAY_MS, 0), (NOW - 3_600_000, 0)],
    )
    assert stored_features(redis_client, "now") == expected
    assert list(stored_features(redis_client, "now")) == list(MODEL_FEATURES)
    assert expected["TERMINAL_ID_RISK_7DAY_WINDOW"] == 1 / 3  # the fraud and two others, 7+ days back
    doc = redis_client.json().get("txn:now")
    assert (doc["feature_spec_version"], doc["format"], doc["terminal_id"]) == (SPEC_VERSION, "v2", "term-1")
    # AND the label reached the fraud's document and its terminal at the fraud's own event time
    assert redis_client.json().get("txn:h1", "$.label") == [1]
    assert entity_state(redis_client, terminal_id="term-1")["frauds"] == [
        (t_fraud, t_fraud + 2 * DAY_MS, "h1")
    ]
    # AND the search index serves the features ("why flagged")
    found = redis_client.ft(keys.INDEX).search("@TERMINAL_ID_RISK_7DAY_WINDOW:[0.3 0.4]")
    assert [d.id for d in found.docs] == ["txn:now"]


def test_a_fraud_counts_only_once_reported_by_the_transactions_time(env, redis_client, lambda_context):
    # GIVEN a fraud 7.5 days ago whose report is dated in the future of the next transaction
    assert deliver([txn("f", NOW - 7 * DAY_MS - DAY_MS // 2, 5.0)], lambda_context) == []
    assert deliver([label("f", 1, NOW + 60_000)], lambda_context) == []

    # WHEN a transaction at the terminal comes before that report time
    assert deliver([txn("t", NOW, 5.0)], lambda_context) == []

    # THEN the fraud is counted, its label not (point in time)
    features = stored_features(redis_client, "t")
    assert features["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1
    assert features["TERMINAL_ID_RISK_1DAY_WINDOW"] == 0.0


def test_replays_duplicates_and_partial_retries_change_nothing(env, redis_client, lambda_context):
    # GIVEN a processed batch: transactions of two cards, a label, a bad record
    batch = [
        record(txn("a1", NOW - 2 * DAY_MS, 10.0)),
        record(txn("b1", NOW - DAY_MS, 11.0, card="card-2")),
        record(txn("a2", NOW - 3_600_000, 12.0)),
        record(label("a1", 1, NOW - DAY_MS)),
        record(b"not json"),
        record(txn("a3", NOW, 13.0)),
    ]
    assert deliver(batch, lambda_context) == []
    before = state_dump(redis_client)

    # WHEN the batch comes again, then from its third record on (a partial-batch retry) with a resend
    # of a1 (same content), and again in a new container
    assert deliver(batch, lambda_context) == []
    assert deliver([*batch[2:], record(txn("a1", NOW - 2 * DAY_MS, 10.0))], lambda_context) == []
    handler.reset_container_state()
    assert deliver(batch, lambda_context) == []

    # THEN not one state entry, document, sample or stream entry changed
    assert state_dump(redis_client) == before


def test_a_retried_transaction_gets_the_vector_it_would_have_had(env, redis_client, lambda_context):
    # GIVEN three transactions of a card processed; the second one's document is lost (as if its write
    # had failed while the later one was stored) and its state too
    events = [txn("p1", NOW - 3 * DAY_MS, 10.0), txn("p2", NOW - 2 * DAY_MS, 20.0), txn("p3", NOW, 30.0)]
    assert deliver(events, lambda_context) == []
    first_vector = stored_features(redis_client, "p2")
    redis_client.delete("txn:p2")
    remove_card_event(redis_client, "card-1", "p2")
    assert [tid for _, _, tid in entity_state(redis_client, card_id="card-1")["card"]] == ["p1", "p3"]

    # WHEN p2 is retried while p3 (later) is already in the card's state
    assert deliver([events[1], events[2]], lambda_context) == []

    # THEN p2's vector is computed as of its own time: p3 is not in it
    assert stored_features(redis_client, "p2") == first_vector
    assert first_vector["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 2


def test_a_reused_id_with_other_content_is_kept_aside_and_counted(env, redis_client, lambda_context, capsys):
    # GIVEN a stored transaction
    assert deliver([txn("dup", NOW - 60_000, 10.0)], lambda_context) == []
    original = redis_client.json().get("txn:dup")
    state = entity_state(redis_client, card_id="card-1", terminal_id="term-1")
    capsys.readouterr()

    # WHEN another transaction reuses its id (another amount), once alone and once twice in a batch
    other = txn("dup", NOW, 999.0, card="card-9")
    assert deliver([other], lambda_context) == []
    x = {"card": "card-5", "terminal": "term-5"}
    assert deliver([txn("x", NOW, 1.0, **x), txn("x", NOW, 2.0, **x)], lambda_context) == []

    # THEN the first stays, the others are kept aside with the reason, nothing entered any state
    assert redis_client.json().get("txn:dup") == original
    reasons = [e["reason"] for e in rejected(redis_client)]
    assert reasons == ["duplicate_id_conflict", "duplicate_id_conflict"]
    assert entity_state(redis_client, card_id="card-1", terminal_id="term-1") == state
    assert entity_state(redis_client, card_id="card-9")["card"] == []
    assert redis_client.json().get("txn:x", "$.amount") == [1.0]
    # AND the metric counts them
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert sum(b.get("DuplicateIdConflicts", [0])[0] for b in blobs) == 2


def test_a_label_for_an_unknown_transaction_is_kept_with_a_reason(env, redis_client, lambda_context):
    assert deliver([label("never-seen", 1, NOW)], lambda_context) == []
    [entry] = rejected(redis_client)
    assert entry["reason"] == "unknown_transaction"
    assert redis_client.keys("terminal:*") == []


def test_labels_are_idempotent_and_the_latest_wins(env, redis_client, lambda_context):
    assert deliver([txn("l", NOW - DAY_MS, 10.0), label("l", 1, NOW - 3_600_000)], lambda_context) == []
    frauds = entity_state(redis_client, terminal_id="term-1")["frauds"]
    assert frauds == [(NOW - DAY_MS, NOW - 3_600_000, "l")]
    assert deliver([label("l", 1, NOW - 3_600_000)], lambda_context) == []
    assert entity_state(redis_client, terminal_id="term-1")["frauds"] == frauds
    # a correction (label 0) removes the mark; the document says so
    assert deliver([label("l", 0, NOW)], lambda_context) == []
    assert entity_state(redis_client, terminal_id="term-1")["frauds"] == []
    assert redis_client.json().get("txn:l", "$.label", "$.label_reported_at") == {
        "$.label": [0],
        "$.label_reported_at": [NOW],
    }


def test_an_older_report_delivered_after_a_correction_changes_nothing(
    env, redis_client, lambda_context, capsys
):
    # GIVEN a fraud report, then its correction (reported later)
    assert deliver([txn("l", NOW - DAY_MS, 10.0)], lambda_context) == []
    fraud_report = record(label("l", 1, NOW - 3_600_000))
    assert deliver([fraud_report], lambda_context) == []
    assert deliver([label("l", 0, NOW - 60_000)], lambda_context) == []
    corrected = {"$.label": [0], "$.label_reported_at": [NOW - 60_000]}
    assert redis_client.json().get("txn:l", "$.label", "$.label_reported_at") == corrected
    capsys.readouterr()

    # WHEN the fraud report's batch is delivered again (a replay), and the report is re-sent
    assert deliver([fraud_report], lambda_context) == []
    assert deliver([label("l", 1, NOW - 3_600_000)], lambda_context) == []

    # THEN both are acknowledged and neither undoes the correction, in the document or the marks
    assert redis_client.json().get("txn:l", "$.label", "$.label_reported_at") == corrected
    assert entity_state(redis_client, terminal_id="term-1")["frauds"] == []
    # AND no label counts as applied
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert sum(b.get("LabelsApplied", [0])[0] for b in blobs) == 0


def test_reports_in_one_batch_apply_by_report_time_and_replays_count_once(
    env, redis_client, lambda_context, capsys
):
    # GIVEN a correction and, after it in the stream, the older fraud report it corrects
    capsys.readouterr()
    events = [txn("o", NOW - DAY_MS, 10.0), label("o", 0, NOW - 60_000), label("o", 1, NOW - 3_600_000)]

    # WHEN the batch is delivered, then delivered again
    assert deliver(events, lambda_context) == []
    assert deliver(events, lambda_context) == []

    # THEN the later report holds, and only the first delivery's one change counts
    assert redis_client.json().get("txn:o", "$.label", "$.label_reported_at") == {
        "$.label": [0],
        "$.label_reported_at": [NOW - 60_000],
    }
    assert entity_state(redis_client, terminal_id="term-1")["frauds"] == []
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [b.get("LabelsApplied", [0])[0] for b in blobs if "RecordsScored" in b] == [1, 0]


def test_state_and_documents_expire(env, monkeypatch, redis_client, lambda_context):
    # GIVEN documents kept for one hour
    monkeypatch.setenv("TXN_RETENTION_MS", "3600000")
    handler.reset_container_state()

    # WHEN
    assert deliver([txn("e", NOW, 1.0)], lambda_context) == []

    # THEN every key has a TTL: the document's, and the entities' longest window + delay + a day of
    # margin + the week a TTL lasts before a write sets it again
    assert 3_500_000 < redis_client.pttl("txn:e") <= 3_600_000
    day = keys.ENTITY_TTL_MARGIN_MS
    assert CARD_RETENTION_MS + day + 7 * day == fs.CARD_TTL_MS
    assert TERMINAL_RETENTION_MS + day + 7 * day == fs.TERMINAL_TTL_MS
    assert fs.CARD_TTL_MS - 60_000 < redis_client.pttl(keys.card_state_key("card-1")) <= fs.CARD_TTL_MS
    assert redis_client.pttl(keys.terminal_state_key("term-1")) > fs.TERMINAL_TTL_MS - 60_000
    assert all(
        redis_client.pttl(k) > 0 for k in redis_client.keys("card:*") + redis_client.keys("terminal:*")
    )


def test_events_older_than_the_retention_are_trimmed(env, redis_client, lambda_context):
    # beyond the retention, its margin and the compaction slack
    old = NOW - CARD_RETENTION_MS - keys.ENTITY_TTL_MARGIN_MS - fs.COMPACT_SLACK_MS - DAY_MS
    recent = NOW - DAY_MS
    redis_client.set(
        keys.card_state_key("card-1"),
        keys.encode_card_events([old, recent], [1.0, 2.0], [b"ancient", b"recent"]),
    )
    assert deliver([txn("fresh", NOW, 1.0)], lambda_context) == []
    assert [tid for _, _, tid in entity_state(redis_client, card_id="card-1")["card"]] == ["recent", "fresh"]
    # compacted: one events record holds the card's state again
    raw = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert keys.split_state(raw.get(keys.card_state_key("card-1")), True).records == 1


def test_entity_keys_are_hash_tagged_by_the_entity(env, redis_client, lambda_context):
    assert deliver([txn("k", NOW, 1.0, card="c:1.x", terminal="T-9")], lambda_context) == []
    assert sorted(redis_client.keys("card:*") + redis_client.keys("terminal:*")) == [
        "card:{c:1.x}:state",
        "terminal:{T-9}:state",
    ]
    # one key per entity, in the slot of its hash tag (the entity's id)
    assert key_slot(keys.terminal_state_key("T-9").encode()) == key_slot(b"T-9")
    assert key_slot(keys.card_state_key("c:1.x").encode()) == key_slot(b"c:1.x")


def test_bad_entity_ids_are_rejected_not_turned_into_keys(env, redis_client, lambda_context):
    bad = [
        txn("b1", NOW, 1.0, card="{evil}"),
        txn("b2", NOW, 1.0, terminal="x" * 65),
        txn("b3", NOW, 1.0, card=""),
    ]
    assert deliver(bad, lambda_context) == []
    assert [e["reason"] for e in rejected(redis_client)] == ["invalid_field"] * 3
    assert redis_client.keys("card:*") == []


def test_feature_spec_mismatch_fails_loudly_and_scores_nothing(
    env, monkeypatch, redis_client, lambda_context, capsys, caplog
):
    # GIVEN models trained on another feature specification
    monkeypatch.setenv("FEATURE_SPEC_VERSION", "0123456789ab")
    handler.reset_container_state()
    events = [record(txn("s1", NOW, 1.0)), record(b"bad"), record(label("s1", 1, NOW))]
    capsys.readouterr()

    # WHEN
    with caplog.at_level(logging.ERROR):
        failed = deliver(events, lambda_context)

    # THEN every transaction and label is returned for retry, nothing is scored or stored in state,
    # the bad record is still kept aside, a metric and an error log say why
    assert failed == [events[0].sequence_number, events[2].sequence_number]
    assert redis_client.keys("txn:*") == []
    assert redis_client.keys("card:*") == []
    assert [e["reason"] for e in rejected(redis_client)] == ["not_json"]
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert next(b for b in blobs if "FeatureSpecMismatch" in b)["FeatureSpecMismatch"] == [2.0]
    assert any("feature spec mismatch" in r.getMessage() for r in caplog.records)

    # AND with the matching version the same records are scored
    monkeypatch.setenv("FEATURE_SPEC_VERSION", SPEC_VERSION)
    handler.reset_container_state()
    assert deliver(events, lambda_context) == []
    assert redis_client.json().get("txn:s1", "$.feature_spec_version") == [SPEC_VERSION]


def test_a_creditcard_deployment_refuses_behavioural_transactions(
    env, monkeypatch, redis_client, make_transaction, lambda_context
):
    # GIVEN models trained on the creditcard profile's 30 columns
    monkeypatch.setenv("FEATURE_SPEC_VERSION", "creditcard-30")
    handler.reset_container_state()
    events = [record(make_transaction("cc", timestamp=NOW)), record(txn("v2", NOW, 1.0))]

    # WHEN / THEN the creditcard transaction is scored, the behavioural one is retried, not scored
    assert deliver(events, lambda_context) == [events[1].sequence_number]
    assert redis_client.keys("txn:*") == ["txn:cc"]
    assert redis_client.keys("card:*") == []


def test_a_label_waits_with_its_transaction_when_the_skew_guard_refuses_it(
    env, monkeypatch, redis_client, lambda_context
):
    # GIVEN models trained on the creditcard profile, and a behavioural transaction with its label
    monkeypatch.setenv("FEATURE_SPEC_VERSION", "creditcard-30")
    handler.reset_container_state()
    events = [record(txn("held", NOW - 60_000, 5.0)), record(label("held", 1, NOW))]

    # WHEN / THEN both are retried: the label is not rejected as naming an unknown transaction
    assert deliver(events, lambda_context) == [e.sequence_number for e in events]
    assert rejected(redis_client) == []

    # AND once scorer and models agree, both apply
    monkeypatch.setenv("FEATURE_SPEC_VERSION", SPEC_VERSION)
    handler.reset_container_state()
    assert deliver(events, lambda_context) == []
    assert redis_client.json().get("txn:held", "$.label") == [1]


def test_raw_payload_is_kept_only_when_asked(env, monkeypatch, redis_client, lambda_context):
    assert deliver([record(b"{oops")], lambda_context) == []
    assert "data" not in rejected(redis_client)[0]
    monkeypatch.setenv("REJECTED_KEEP_PAYLOAD", "true")
    handler.reset_container_state()
    assert deliver([record(b"{oops2")], lambda_context) == []
    assert rejected(redis_client)[1]["data"] == "e29vcHMy"  # base64 of {oops2


def test_creditcard_profile_keeps_its_path(env, redis_client, make_transaction, lambda_context):
    # GIVEN a v1 event with the 30 creditcard numbers and no terminal, next to a v2 one
    v1 = make_transaction("cc", fraud=0.9, timestamp=NOW)
    assert deliver([v1, txn("v2", NOW, 5.0)], lambda_context) == []

    # THEN the v1 document keeps its features array and verdict from them, and enters no entity state
    doc = redis_client.json().get("txn:cc")
    assert (doc["features"], doc["verdict"], doc["format"]) == (v1["features"], "fraud", "v1")
    assert "feature_spec_version" not in doc
    assert redis_client.keys("card:{card-00001}*") == []
    assert set(stored_features(redis_client, "v2")) == set(MODEL_FEATURES)


def test_a_lost_ttl_is_set_again_by_the_next_delivery(env, redis_client, lambda_context):
    # GIVEN a stored document that lost its TTL (its PEXPIRE did not reach Redis)
    batch = [record(txn("ttl", NOW, 1.0))]
    assert deliver(batch, lambda_context) == []
    redis_client.persist("txn:ttl")

    # WHEN the batch is delivered again
    assert deliver(batch, lambda_context) == []

    # THEN the document expires again, with the configured retention
    assert 0 < redis_client.pttl("txn:ttl") <= 30 * DAY_MS


def test_an_id_taken_meanwhile_by_other_content_is_retried_then_kept_aside(
    env, monkeypatch, redis_client, lambda_context
):
    # GIVEN another shard stores a transaction with this id between our read and our write
    from fraud_scorer.store import TransactionStore

    real_read = TransactionStore.read

    def read_then_race(store, client, ids, *args):
        result = real_read(store, client, ids, *args)
        client.execute_command("JSON.SET", "txn:race", "$", json.dumps({"content_hash": "other"}), "NX")
        return result

    monkeypatch.setattr(TransactionStore, "read", read_then_race)
    batch = [record(txn("race", NOW, 1.0))]

    # WHEN / THEN the NX refuses it: not stored, not in any state, retried
    assert deliver(batch, lambda_context) == [batch[0].sequence_number]
    assert redis_client.json().get("txn:race") == {"content_hash": "other"}
    assert redis_client.keys("card:*") == []

    # AND the retry sees the conflict and keeps the record aside
    monkeypatch.setattr(TransactionStore, "read", real_read)
    assert deliver(batch, lambda_context) == []
    assert [e["reason"] for e in rejected(redis_client)] == ["duplicate_id_conflict"]


def test_an_id_reused_after_its_document_expired_is_another_event(env, redis_client, lambda_context):
    # GIVEN a terminal's transaction X 40 days ago, whose document has expired (30 days)...
    old, new = NOW - 40 * DAY_MS, NOW - 9 * DAY_MS
    assert deliver([txn("X", old, 10.0, card="c-old", terminal="T")], lambda_context) == []
    redis_client.delete("txn:X")
    # ...while the terminal's state (37 days + margins) still holds it; then the id comes again, at
    # the same terminal, and that second X is reported as a fraud
    assert deliver([txn("X", new, 20.0, card="c-new", terminal="T")], lambda_context) == []
    assert deliver([label("X", 1, new + DAY_MS)], lambda_context) == []

    # WHEN a later transaction at the terminal is scored
    later = NOW - DAY_MS
    assert deliver([txn("Y", later, 5.0, card="c-y", terminal="T")], lambda_context) == []

    # THEN it sees two events, and the fraud is the second one (found by event time and id)
    want = compute_dict(later, 5.0, [], [(old, 0), (new, 1)], MODEL_FEATURES)
    assert stored_features(redis_client, "Y") == want
