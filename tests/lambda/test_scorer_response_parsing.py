"""Both built-in algorithms' response formats, parsed into scores in row order."""

from __future__ import annotations

import json

import pytest

from fraud_scorer.sagemaker import csv_body, parse_rcf, parse_xgboost


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"0.1\n0.25\n0.9", "text/csv; charset=utf-8", id="csv-newlines"),
        pytest.param(b"0.1\n0.25\n0.9\n", "text/csv", id="csv-trailing-newline"),
        pytest.param(b"0.1,0.25,0.9", "text/csv", id="csv-commas"),
        pytest.param(
            json.dumps({"predictions": [{"score": 0.1}, {"score": 0.25}, {"score": 0.9}]}).encode(),
            "application/json",
            id="json",
        ),
    ],
)
def test_xgboost_formats(body, content_type):
    assert parse_xgboost(body, content_type) == [0.1, 0.25, 0.9]


def test_rcf_format():
    body = json.dumps({"scores": [{"score": 1.5}, {"score": 0.25}]}).encode()
    assert parse_rcf(body, "application/json") == [1.5, 0.25]


@pytest.mark.parametrize("body", [b"0.1,abc", b'{"predictions": [{"p": 1}]}'])
def test_unreadable_xgboost_answers_raise(body):
    with pytest.raises((ValueError, KeyError)):
        parse_xgboost(body, "application/json" if body.startswith(b"{") else "text/csv")


def test_csv_body_is_one_row_per_line_without_header():
    assert csv_body(["1.0,2.5", "3.0,-4.0"]) == b"1.0,2.5\n3.0,-4.0"
