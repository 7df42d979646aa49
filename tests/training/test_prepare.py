"""training.prepare: the one preparation used by SageMaker training (in the Lambda) and locally."""

from __future__ import annotations

import json
import zipfile

import pytest

from fraud_data.schema import COLUMNS
from fraud_data.synthetic import generate_rows
from training import prepare


def _write_csv(path, rows, *, header=True, extra_lines=()):
    lines = []
    if header:
        lines.append(",".join(f'"{c}"' for c in COLUMNS))
    for row in rows:
        *features, label = row
        lines.append(",".join(repr(v) for v in features) + f',"{int(label)}"')
    lines.extend(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_stratified_split_keeps_the_class_ratio_in_every_split(tmp_path):
    # GIVEN 40,000 rows at a 1% fraud rate
    stats = prepare.ReadStats()
    rows = list(generate_rows(40_000, seed=7, fraud_rate=0.01))
    records = [prepare.Record(int(r[-1]), ",".join(map(repr, r[:-1]))) for r in rows]

    # WHEN the data is prepared
    manifest = prepare.prepare(records, tmp_path, source_name="test", stats=stats)

    # THEN every split has the overall positive rate (to within one row per split)
    overall = sum(int(r[-1]) for r in rows) / len(rows)
    splits = manifest["splits"]
    assert [splits[s]["rows"] for s in prepare.SPLITS] == [28_000, 6_000, 6_000]
    for split in prepare.SPLITS:
        assert splits[split]["positive_rate"] == pytest.approx(overall, abs=1 / splits[split]["rows"] + 1e-4)
    assert sum(splits[s]["positives"] for s in prepare.SPLITS) == sum(int(r[-1]) for r in rows)


def test_splits_are_disjoint_complete_and_seeded():
    labels = [1 if i % 50 == 0 else 0 for i in range(10_000)]
    first = prepare.stratified_split(labels, seed=1)
    again = prepare.stratified_split(labels, seed=1)
    other = prepare.stratified_split(labels, seed=2)
    indices = [i for split in prepare.SPLITS for i in first[split]]
    assert sorted(indices) == list(range(10_000))
    assert first == again
    assert first != other


def test_a_rare_class_still_reaches_validation_and_test():
    labels = [0] * 1000 + [1] * 3
    split = prepare.stratified_split(labels)
    for name in prepare.SPLITS:
        assert sum(labels[i] for i in split[name]) == 1


def test_formats_xgboost_label_first_and_rcf_features_only(tmp_path):
    # GIVEN a creditcard.csv with a header
    rows = list(generate_rows(2_000, seed=3, fraud_rate=0.05))
    source = _write_csv(tmp_path / "creditcard.csv", rows)

    # WHEN prepared
    manifest = prepare.prepare_source(source, tmp_path / "out")

    # THEN XGBoost files: label first, no header, 31 columns; feature files: the same rows, 30 columns
    out = tmp_path / "out"
    xgb_lines = (out / "xgboost/train.csv").read_text().splitlines()
    feature_lines = (out / "features/train.csv").read_text().splitlines()
    assert len(xgb_lines) == manifest["splits"]["train"]["rows"] == len(feature_lines)
    assert all(line.split(",")[0] in ("0", "1") for line in xgb_lines)
    assert {len(line.split(",")) for line in xgb_lines} == {31}
    assert {len(line.split(",")) for line in feature_lines} == {30}
    assert [line.split(",", 1)[1] for line in xgb_lines] == feature_lines
    assert not xgb_lines[0].startswith("Time")
    assert '"' not in xgb_lines[0]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["rows_valid"] == 2_000
    assert manifest["source"] == "creditcard.csv"


def test_malformed_rows_are_counted_not_fatal(tmp_path):
    rows = list(generate_rows(500, seed=3, fraud_rate=0.05))
    bad = [
        "1,2,3",  # too few columns
        ",".join(["x"] * 31),  # not numbers
        ",".join(["nan"] * 30) + ",0",  # NaN
        ",".join(["1"] * 30) + ",2",  # Class not 0/1
    ]
    source = _write_csv(tmp_path / "creditcard.csv", rows, extra_lines=bad)

    manifest = prepare.prepare_source(source, tmp_path / "out")

    assert manifest["rows_read"] == 504
    assert manifest["rows_valid"] == 500
    assert manifest["rows_malformed"] == 4
    assert set(manifest["malformed_reasons"]) == {
        "expected 31 columns, got 3",
        "a value is not a number",
        "a value is NaN or infinite",
        "Class is not 0 or 1",
    }
    assert manifest["malformed_examples"][0].startswith("line 502:")


def test_reads_the_csv_inside_a_zip_like_the_public_dataset(tmp_path):
    rows = list(generate_rows(1_000, seed=5, fraud_rate=0.05))
    csv_path = _write_csv(tmp_path / "creditcard.csv", rows)
    archive = tmp_path / "creditcardfraud.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(csv_path, "creditcard.csv")

    from_zip = prepare.prepare_source(archive, tmp_path / "zip")
    from_csv = prepare.prepare_source(csv_path, tmp_path / "csv")

    # Same data, same prepared bytes: the sha256 identifies the data, not where it came from.
    assert from_zip["sha256"] == from_csv["sha256"]
    assert from_zip["rows_valid"] == 1_000


def test_sha256_changes_with_the_data(tmp_path):
    a = prepare.prepare_source("synthetic", tmp_path / "a", synthetic_rows=2_000)
    b = prepare.prepare_source("synthetic", tmp_path / "b", synthetic_rows=2_000)
    c = prepare.prepare_source("synthetic", tmp_path / "c", synthetic_rows=3_000)
    assert a["sha256"] == b["sha256"]
    assert a["sha256"] != c["sha256"]


def test_a_single_class_source_is_a_clear_error(tmp_path):
    rows = [r for r in generate_rows(500, seed=1) if r[-1] == 0.0]
    source = _write_csv(tmp_path / "creditcard.csv", rows)
    with pytest.raises(ValueError, match="both classes are needed"):
        prepare.prepare_source(source, tmp_path / "out")


def test_a_zip_without_a_csv_is_a_clear_error(tmp_path):
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "nothing here")
    with pytest.raises(ValueError, match="no .csv file"):
        prepare.prepare_source(archive, tmp_path / "out")


def test_creditcard_rows_are_split_in_time_order_80_20(tmp_path):
    # GIVEN a creditcard.csv whose rows are not in time order (rows swapped around)
    rows = list(generate_rows(5_000, seed=11, fraud_rate=0.03))
    shuffled = rows[2_500:] + rows[:2_500]
    source = _write_csv(tmp_path / "creditcard.csv", shuffled)

    # WHEN prepared
    manifest = prepare.prepare_source(source, tmp_path / "out")

    # THEN the first 80% of the rows by Time train (the last eighth of them validates), the last 20% test
    def times(split: str) -> list[float]:
        lines = (tmp_path / "out" / prepare.XGBOOST_FILES[split]).read_text().splitlines()
        return [float(line.split(",")[1]) for line in lines]

    train, validation, test = times("train"), times("validation"), times("test")
    assert manifest["split"] == "time-ordered"
    assert [len(train), len(validation), len(test)] == [3_500, 500, 1_000]
    assert train == sorted(train)
    assert max(train) <= min(validation)
    assert max(validation) <= min(test)
    assert sorted(train + validation + test) == sorted(r[0] for r in rows)
    assert manifest["feature_count"] == 30
    assert manifest["feature_spec_version"] == "creditcard-30"


def test_a_time_ordered_split_without_both_classes_is_a_clear_error(tmp_path):
    # GIVEN frauds only in the first half of the time range
    rows = [r for i, r in enumerate(generate_rows(2_000, seed=2, fraud_rate=0.05)) if i < 1_000 or r[-1] == 0]
    source = _write_csv(tmp_path / "creditcard.csv", rows)
    with pytest.raises(ValueError, match="the validation split .* does not hold both classes"):
        prepare.prepare_source(source, tmp_path / "out")


def test_time_ordered_split_cuts_at_the_fractions():
    assert prepare.time_ordered_split(10, (0.7, 0.1, 0.2)) == {
        "train": [0, 1, 2, 3, 4, 5, 6],
        "validation": [7],
        "test": [8, 9],
    }
    with pytest.raises(ValueError, match="fractions"):
        prepare.time_ordered_split(10, (0.7, 0.1, 0.1))
