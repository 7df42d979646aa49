"""No poison record (issue 14.3): whatever bytes a record holds, decoding it yields a transaction, a
label event or a rejection with a reason — it never raises, so it can never fail the whole batch.
Property-based (hypothesis) over random bytes and mutations of valid records; the cases that broke
the decoder before are kept as explicit examples."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from contracts.events import RejectReason
from emulators.kinesis_events import KinesisRecord, kinesis_event
from fraud_scorer.events import LabelEvent, Rejection, TimeBounds, Transaction, decode_record

NOW = 1_764_032_400_000
BOUNDS = TimeBounds(NOW - 7 * 86_400_000, NOW + 300_000)
V2 = {"transaction_id": "t-1", "timestamp": NOW, "card_id": "card-1", "terminal_id": "term-1", "amount": 12.5}
V1 = {
    "transaction_id": "t-2",
    "timestamp": NOW,
    "card_id": "card-1",
    "amount": 1.0,
    "features": [0.0] * 30,
}
LABEL = {"type": "label", "transaction_id": "t-1", "label": 1, "timestamp": NOW}
VALID = [V2, V1, LABEL, {"data": ",".join(["0.5"] * 30), "metadata": [NOW, 7, "src"]}]

# Found by fuzzing or by the attack review; each once raised out of the decoder.
POISON = [
    b'{"transaction_id": "t", "timestamp": 1, "card_id": "c", "amount": '
    + b"9" * 4400
    + b', "features": []}',
    b'{"transaction_id": "t", "timestamp": '
    + b"1" * 5000
    + b', "card_id": "c", "terminal_id": "x", "amount": 1}',
    json.dumps({**V2, "amount": 10**400}).encode(),
    json.dumps({**V1, "features": [10**400] * 30}).encode(),
    json.dumps({**V2, "timestamp": "99999-01-01"}).encode(),
    json.dumps({**V2, "timestamp": "9999-12-31T23:59:59+14:00"}).encode(),
    json.dumps({**LABEL, "label": True}).encode(),
    json.dumps({"data": "1e999," * 29 + "1", "metadata": [NOW, "x", "s"]}).encode(),
    json.dumps({"data": "0," * 29 + "0", "metadata": [NOW, {"a": 1}, "s"]}).encode(),
    b"[" * 100_000,
]


def decode(data: bytes) -> Transaction | LabelEvent | Rejection:
    record = KinesisRecord(data=data, partition_key="p", sequence_number="1", arrival_s=NOW / 1000)
    event = kinesis_event([record], shard_id="shardId-000000000000")
    return decode_record(next(KinesisStreamEvent(event).records), BOUNDS)


def check(result: object) -> None:
    assert isinstance(result, Transaction | LabelEvent | Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, RejectReason)
        assert result.detail


@pytest.mark.parametrize("data", POISON)
def test_known_poison_records_become_rejections(data):
    result = decode(data)
    assert isinstance(result, Rejection)
    check(result)


def test_a_4400_digit_number_is_a_rejection_with_a_reason():
    result = decode(POISON[0])
    assert isinstance(result, Rejection)
    assert result.reason == RejectReason.NOT_JSON
    assert "too long" in result.detail


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
@example(b"")
@example(b"\x00")
@example(b"null")
@example(b'"x"')
def test_random_bytes_never_raise(data):
    check(decode(data))


def _json_values():
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=80)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    )


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(VALID),
    field=st.sampled_from(
        [
            "transaction_id",
            "timestamp",
            "card_id",
            "terminal_id",
            "amount",
            "features",
            "type",
            "label",
            "data",
            "metadata",
            "channel",
            "merchant",
        ]
    ),
    value=_json_values(),
    drop=st.booleans(),
)
def test_mutated_valid_records_never_raise(base, field, value, drop):
    event = dict(base)
    if drop:
        event.pop(field, None)
    else:
        event[field] = value
    try:
        data = orjson.dumps(event)
    except (TypeError, orjson.JSONEncodeError):  # e.g. ints beyond 64 bits: the stdlib writes them
        data = json.dumps(event).encode()
    check(decode(data))


@settings(max_examples=300, deadline=None, database=None)  # no .hypothesis/ in the tree
@given(base=st.sampled_from(VALID), cut=st.integers(min_value=0, max_value=400), byte=st.integers(0, 255))
def test_corrupted_bytes_of_valid_records_never_raise(base, cut, byte):
    data = bytearray(json.dumps(base).encode())
    position = cut % len(data)
    data[position] = byte
    check(decode(bytes(data)))
    check(decode(bytes(data[:position])))


def test_bad_base64_is_a_rejection():
    record = KinesisRecord(data=b"x", partition_key="p", sequence_number="1", arrival_s=NOW / 1000)
    event = kinesis_event([record])
    event["Records"][0]["kinesis"]["data"] = base64.b64encode(b"ok").decode() + "%%"
    assert decode_record(next(KinesisStreamEvent(event).records), BOUNDS).reason == RejectReason.BAD_BASE64


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({**V2, "timestamp": NOW + 301_000}, RejectReason.TIMESTAMP_OUT_OF_RANGE),
        ({**V2, "timestamp": NOW - 8 * 86_400_000}, RejectReason.TIMESTAMP_OUT_OF_RANGE),
        ({**LABEL, "timestamp": 4_102_444_800_000}, RejectReason.TIMESTAMP_OUT_OF_RANGE),
        ({**V2, "terminal_id": "a{b}"}, RejectReason.INVALID_FIELD),
        ({**V2, "card_id": "x" * 65}, RejectReason.INVALID_FIELD),
        ({k: v for k, v in V2.items() if k != "terminal_id"}, RejectReason.MISSING_FIELD),
        ({**LABEL, "label": 2}, RejectReason.INVALID_FIELD),
        ({**LABEL, "label": None}, RejectReason.INVALID_FIELD),
        ({k: v for k, v in LABEL.items() if k != "timestamp"}, RejectReason.MISSING_FIELD),
        ({**V2, "type": "refund"}, RejectReason.UNKNOWN_SCHEMA),
    ],
)
def test_v2_and_label_validation(event, reason):
    result = decode(json.dumps(event).encode())
    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_v2_and_label_events_decode():
    txn = decode(json.dumps({**V2, "timestamp": NOW + 299_000}).encode())
    assert isinstance(txn, Transaction)
    assert (txn.format, txn.terminal_id, txn.features, txn.behavioural) == ("v2", "term-1", (), True)
    label = decode(json.dumps(LABEL).encode())
    assert isinstance(label, LabelEvent)
    assert (label.transaction_id, label.label, label.reported_at_ms) == ("t-1", 1, NOW)
    # the content hash identifies the event's content, not its bytes
    again = decode(json.dumps(dict(reversed(list({**V2, "timestamp": NOW + 299_000}.items())))).encode())
    assert again.content_hash == txn.content_hash
    assert decode(json.dumps({**V2, "amount": 12.51}).encode()).content_hash != txn.content_hash
