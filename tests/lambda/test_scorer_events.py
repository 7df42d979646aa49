"""Decoding and validation of Kinesis records (fraud_scorer.events), both wire formats."""

from __future__ import annotations

import base64
import json

import pytest
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from contracts.events import MAX_AMOUNT
from emulators.kinesis_events import KinesisRecord, kinesis_event
from fraud_scorer.events import MAX_RECORD_BYTES, Rejection, RejectReason, Transaction, decode_record

SEQUENCE = "49650000000000000000000000000000000000000000000000000000042"
ARRIVAL_S = 1_764_032_400.5


def decode(data: bytes) -> Transaction | Rejection:
    record = KinesisRecord(data=data, partition_key="card", sequence_number=SEQUENCE, arrival_s=ARRIVAL_S)
    event = kinesis_event([record], shard_id="shardId-000000000007")
    return decode_record(next(KinesisStreamEvent(event).records))


V2 = {
    "transaction_id": "sim-42-000001",
    "timestamp": 1764032400000,
    "card_id": "card-00017",
    "terminal_id": "term-00042",
    "amount": 12.5,
}


def valid_event(**overrides) -> dict:
    event = {
        "transaction_id": "synthetic-42-000001",
        "timestamp": 1764032400000,
        "card_id": "card-00017",
        "amount": 149.62,
        "features": [float(i) for i in range(29)] + [149.62],
        "channel": "online",
        "merchant": "m-0042",
        "label": 0,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def test_valid_v1_event_is_decoded_with_its_kinesis_position():
    # WHEN
    txn = decode(json.dumps(valid_event()).encode())

    # THEN
    assert isinstance(txn, Transaction)
    assert txn.format == "v1"
    assert txn.ref.shard_id == "shardId-000000000007"
    assert txn.ref.sequence_number == SEQUENCE
    assert txn.event_fields() == {
        "transaction_id": "synthetic-42-000001",
        "timestamp": 1764032400000,
        "card_id": "card-00017",
        "amount": 149.62,
        "features": [float(i) for i in range(29)] + [149.62],
        "channel": "online",
        "merchant": "m-0042",
        "label": 0,
    }


def test_optional_fields_may_be_absent_and_unknown_fields_are_ignored():
    txn = decode(json.dumps(valid_event(channel=..., merchant=..., label=..., extra="x")).encode())
    assert isinstance(txn, Transaction)
    assert "channel" not in txn.event_fields()
    assert "label" not in txn.event_fields()


@pytest.mark.parametrize(
    ("timestamp", "expected_ms"),
    [
        (1764032400000, 1764032400000),
        (1764032400123.9, 1764032400123),
        ("2025-11-25T01:00:00Z", 1764032400000),
        ("2025-11-25T01:00:00", 1764032400000),  # no zone = UTC
        ("2025-11-25T02:00:00+01:00", 1764032400000),
    ],
)
def test_timestamps_in_epoch_ms_or_iso8601(timestamp, expected_ms):
    txn = decode(json.dumps(valid_event(timestamp=timestamp)).encode())
    assert isinstance(txn, Transaction)
    assert txn.timestamp_ms == expected_ms


def test_legacy_format_maps_to_a_stable_id_from_the_sequence_number():
    # GIVEN the old demo's wire format
    numbers = [0.5] * 29 + [42.0]
    body = {"data": ",".join(str(x) for x in numbers), "metadata": [1764032400000, 17, "pos"]}

    # WHEN
    txn = decode(json.dumps(body).encode())

    # THEN
    assert isinstance(txn, Transaction)
    assert txn.format == "legacy"
    assert txn.transaction_id == f"kinesis-{SEQUENCE}"
    assert txn.card_id == "legacy-17"
    assert txn.amount == 42.0
    assert txn.timestamp_ms == 1764032400000
    assert txn.channel == "pos"
    assert txn.features == tuple(numbers)


def test_legacy_ids_too_long_for_a_card_are_rejected_not_cut():
    # GIVEN two legacy ids that share their first 57 characters (a card id holds 64, "legacy-" included)
    numbers = ",".join(["1"] * 30)
    longest, too_long = "7" * 57, "7" * 57 + "1"

    # WHEN
    accepted = decode(json.dumps({"data": numbers, "metadata": [0, longest, "pos"]}).encode())
    rejected = decode(json.dumps({"data": numbers, "metadata": [0, too_long, "pos"]}).encode())

    # THEN the one that fits keeps its whole id; the other is refused with its reason, never merged
    # into the first one's card by cutting it to length
    assert isinstance(accepted, Transaction)
    assert accepted.card_id == "legacy-" + longest
    assert isinstance(rejected, Rejection)
    assert rejected.reason == RejectReason.INVALID_FIELD
    assert "1-57 characters" in rejected.detail


@pytest.mark.parametrize("source_id", ["", None], ids=["empty", "null"])
def test_a_legacy_record_without_an_id_is_rejected(source_id):
    # ("legacy-" and "legacy-None" would make every such record one card)
    body = {"data": ",".join(["1"] * 30), "metadata": [0, source_id, "pos"]}
    rejected = decode(json.dumps(body).encode())
    assert isinstance(rejected, Rejection)
    assert rejected.reason == RejectReason.INVALID_FIELD
    assert "1-57 characters" in rejected.detail


@pytest.mark.parametrize(
    "timestamp", ["yesterday-ish", 10**400, -5], ids=["text", "beyond-float", "negative"]
)
def test_legacy_timestamp_that_does_not_parse_falls_back_to_arrival_time(timestamp):
    body = {"data": ",".join(["1"] * 30), "metadata": [timestamp, "id", "src"]}
    txn = decode(json.dumps(body).encode())
    assert isinstance(txn, Transaction)
    assert txn.timestamp_ms == int(ARRIVAL_S * 1000)


NOT_UTF8 = b'{"transaction_id": "\xff\xfe"}'
HUGE = json.dumps(valid_event(merchant="m" * MAX_RECORD_BYTES)).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(NOT_UTF8, RejectReason.NOT_UTF8, id="not-utf8"),
        pytest.param(b"{not json", RejectReason.NOT_JSON, id="not-json"),
        pytest.param(b"", RejectReason.NOT_JSON, id="empty"),
        pytest.param(b"[1, 2, 3]", RejectReason.NOT_OBJECT, id="array"),
        pytest.param(b'"a string"', RejectReason.NOT_OBJECT, id="string"),
        pytest.param(HUGE, RejectReason.TOO_LARGE, id="huge"),
        pytest.param(b'{"user": "u1", "event": "click"}', RejectReason.UNKNOWN_SCHEMA, id="another-schema"),
        pytest.param(json.dumps(valid_event(card_id=...)).encode(), RejectReason.MISSING_FIELD, id="missing"),
        pytest.param(
            json.dumps(valid_event(amount="12")).encode(), RejectReason.INVALID_FIELD, id="amount-str"
        ),
        pytest.param(
            json.dumps(valid_event(amount=True)).encode(), RejectReason.INVALID_FIELD, id="bool-amount"
        ),
        pytest.param(json.dumps(valid_event(amount=-1)).encode(), RejectReason.INVALID_FIELD, id="negative"),
        pytest.param(
            json.dumps(valid_event(features=[True] + [0.0] * 29)).encode(),
            RejectReason.INVALID_FIELD,
            id="bool-feature",
        ),
        pytest.param(
            json.dumps(valid_event(features=[0.0] * 29)).encode(),
            RejectReason.WRONG_FEATURE_COUNT,
            id="29-features",
        ),
        pytest.param(
            json.dumps(valid_event(features="1,2")).encode(), RejectReason.INVALID_FIELD, id="features-str"
        ),
        pytest.param(
            json.dumps(valid_event(features=[float("nan")] + [0.0] * 29)).encode(),
            RejectReason.NON_FINITE,
            id="nan",
        ),
        pytest.param(
            json.dumps(valid_event(amount=float("inf"))).encode(), RejectReason.NON_FINITE, id="infinity"
        ),
        pytest.param(
            json.dumps(valid_event()).replace("149.62]", "1e999]").encode(),
            RejectReason.NON_FINITE,
            id="overflow",
        ),
        pytest.param(
            json.dumps(valid_event(transaction_id="")).encode(), RejectReason.INVALID_FIELD, id="empty-id"
        ),
        pytest.param(
            json.dumps(valid_event(transaction_id="a b")).encode(), RejectReason.INVALID_FIELD, id="id-space"
        ),
        pytest.param(
            json.dumps(valid_event(transaction_id=7)).encode(), RejectReason.INVALID_FIELD, id="id-int"
        ),
        pytest.param(
            json.dumps(valid_event(timestamp="soon")).encode(), RejectReason.INVALID_FIELD, id="bad-time"
        ),
        pytest.param(
            json.dumps(valid_event(timestamp=-5)).encode(), RejectReason.INVALID_FIELD, id="neg-time"
        ),
        pytest.param(json.dumps(valid_event(label=2)).encode(), RejectReason.INVALID_FIELD, id="label-2"),
        pytest.param(
            json.dumps(valid_event(label=True)).encode(), RejectReason.INVALID_FIELD, id="label-bool"
        ),
        pytest.param(
            json.dumps(valid_event(channel=5)).encode(), RejectReason.INVALID_FIELD, id="channel-int"
        ),
        pytest.param(
            json.dumps({"data": "1,2,x", "metadata": [0, 1, "s"]}).encode(),
            RejectReason.INVALID_FIELD,
            id="legacy-x",
        ),
        pytest.param(
            json.dumps({"data": "1,2", "metadata": [0, 1, "s"]}).encode(),
            RejectReason.WRONG_FEATURE_COUNT,
            id="legacy-short",
        ),
        pytest.param(
            json.dumps({"data": ",".join(["nan"] * 30), "metadata": [0, 1, "s"]}).encode(),
            RejectReason.NON_FINITE,
            id="legacy-nan",
        ),
        pytest.param(
            json.dumps({"data": ",".join(["1"] * 30), "metadata": "m"}).encode(),
            RejectReason.INVALID_FIELD,
            id="legacy-metadata",
        ),
        # Finite, but beyond what the windows' sums and the models' float32 inputs can hold.
        pytest.param(
            json.dumps(valid_event(amount=MAX_AMOUNT * 2)).encode(),
            RejectReason.INVALID_FIELD,
            id="amount-max",
        ),
        pytest.param(
            json.dumps(V2 | {"amount": 1e308}).encode(), RejectReason.INVALID_FIELD, id="v2-amount-max"
        ),
        pytest.param(
            json.dumps(valid_event(features=[1e39] + [0.0] * 29)).encode(),
            RejectReason.INVALID_FIELD,
            id="feature-beyond-float32",
        ),
        pytest.param(
            json.dumps({"data": ",".join(["-1e39"] + ["1"] * 29), "metadata": [0, 1, "s"]}).encode(),
            RejectReason.INVALID_FIELD,
            id="legacy-beyond-float32",
        ),
        # A lone surrogate: the stdlib parser reads it, UTF-8 (and so the stored document) cannot hold it.
        pytest.param(
            json.dumps(valid_event(channel="\ud800")).encode(), RejectReason.INVALID_FIELD, id="surrogate"
        ),
        pytest.param(
            json.dumps(V2 | {"merchant": "m\udfff"}).encode(), RejectReason.INVALID_FIELD, id="v2-surrogate"
        ),
        pytest.param(
            json.dumps({"data": ",".join(["1"] * 30), "metadata": [0, 1, "\ud800"]}).encode(),
            RejectReason.INVALID_FIELD,
            id="legacy-surrogate",
        ),
    ],
)
def test_bad_input_is_rejected_with_its_reason_and_raw_data(data, reason):
    # WHEN
    result = decode(data)

    # THEN
    assert isinstance(result, Rejection)
    assert result.reason == reason, result.detail
    assert result.raw == data
    assert result.ref.sequence_number == SEQUENCE


def test_bad_base64_is_rejected():
    event = kinesis_event([b"x"])
    event["Records"][0]["kinesis"]["data"] = "!!not base64!!"
    result = decode_record(next(KinesisStreamEvent(event).records))
    assert isinstance(result, Rejection)
    assert result.reason == RejectReason.BAD_BASE64
    assert result.raw == b""


def test_rejection_detail_never_echoes_the_record():
    secret_looking = json.dumps(valid_event(card_id="4111111111111111", amount="x")).encode()
    result = decode(secret_looking)
    assert isinstance(result, Rejection)
    assert "4111" not in result.detail


def test_base64_round_trip_of_the_event_builder():
    data = json.dumps(valid_event()).encode()
    event = kinesis_event([data])
    assert base64.b64decode(event["Records"][0]["kinesis"]["data"]) == data


def test_what_only_the_fast_parser_refuses_is_still_read():
    # GIVEN an integer beyond 64 bits in an extra field (orjson refuses it, JSON allows it)
    data = json.dumps(valid_event(extra=2**70)).encode()

    # WHEN / THEN the record is accepted, the unknown field ignored
    assert isinstance(decode(data), Transaction)


def test_features_text_is_both_a_csv_row_and_a_json_array_body():
    txn = decode(json.dumps(valid_event(features=[1e-05, -0.5, 3] + [0] * 27)).encode())
    assert isinstance(txn, Transaction)
    assert [float(x) for x in txn.features_text.split(",")] == [1e-05, -0.5, 3.0] + [0.0] * 27
    assert json.loads(f"[{txn.features_text}]") == list(txn.features)
