"""Sources: the synthetic generator and creditcard.csv-shaped files, read from any position."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from fraud_data.schema import COLUMNS, FEATURE_COUNT
from fraud_data.synthetic import generate_rows
from producer.errors import ProducerError
from producer.events import Row
from producer.source import CsvSource, Malformed, Position, SyntheticSource, open_source


def take(iterator, count):
    return list(itertools.islice(iterator, count))


def write_csv(path: Path, rows, header=COLUMNS) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def test_synthetic_rows_follow_the_schema_and_are_deterministic_per_seed():
    # GIVEN two reads with the same seed and one with another seed
    first = take(SyntheticSource(seed=7).read(Position(), loop=False), 5000)
    again = take(SyntheticSource(seed=7).read(Position(), loop=False), 5000)
    other = take(SyntheticSource(seed=8).read(Position(), loop=False), 5000)
    # THEN the same seed gives the same rows, another seed different ones
    assert first == again
    assert [r for _, r in first] != [r for _, r in other]
    # AND every row has 30 finite features, a non-negative Amount and a 0/1 label, in order
    rows = [row for _, row in first]
    assert [r.index for r in rows] == list(range(5000))
    assert all(len(r.features) == FEATURE_COUNT and r.features[-1] >= 0 for r in rows)
    assert {r.label for r in rows} <= {0, 1}
    # AND it is generate_rows' data, unchanged
    assert [list(r.features) + [float(r.label)] for r in rows[:50]] == list(generate_rows(50, seed=7))


def test_synthetic_fraud_rate_is_realistic_and_frauds_are_shifted():
    rows = [row for _, row in take(SyntheticSource(seed=1).read(Position(), loop=False), 20_000)]
    frauds = [r for r in rows if r.label == 1]
    assert 0.0005 < len(frauds) / len(rows) < 0.005  # ~0.17 % like the real data
    legit_v14 = sum(r.features[14] for r in rows if r.label == 0) / (len(rows) - len(frauds))
    fraud_v14 = sum(r.features[14] for r in frauds) / len(frauds)
    assert fraud_v14 < legit_v14 - 1.0  # the class-dependent shift a model can learn


def test_synthetic_read_resumes_at_an_offset():
    rows = take(SyntheticSource(seed=3).read(Position(), loop=False), 30)
    assert take(SyntheticSource(seed=3).read(Position(0, 20), loop=False), 10) == rows[20:]


def test_csv_with_header_reads_every_row_and_label(tmp_path):
    expected = list(generate_rows(40, seed=5))
    source = CsvSource(write_csv(tmp_path / "creditcard.csv", expected))
    items = list(source.read(Position(), loop=False))
    assert [p for p, _ in items] == [Position(0, i) for i in range(40)]
    assert [list(r.features) + [float(r.label)] for _, r in items] == expected


def test_csv_columns_are_found_by_name_and_class_is_optional(tmp_path):
    # GIVEN a file with its columns reordered, an extra column and no Class
    header = ["Amount", "note", *COLUMNS[:-2]]
    rows = [[r[29], "x", *r[:29]] for r in generate_rows(5, seed=2)]
    source = CsvSource(write_csv(tmp_path / "reordered.csv", rows, header=header))
    # WHEN read
    items = [row for _, row in source.read(Position(), loop=False)]
    # THEN features come back in creditcard.csv order, without a label
    assert [list(r.features) for r in items] == [r[:30] for r in generate_rows(5, seed=2)]
    assert {r.label for r in items} == {None}


def test_csv_without_header_uses_creditcard_order(tmp_path):
    expected = list(generate_rows(3, seed=9))
    source = CsvSource(write_csv(tmp_path / "noheader.csv", expected, header=None))
    assert [list(r.features) + [float(r.label)] for _, r in source.read(Position(), loop=False)] == expected


def test_malformed_rows_are_yielded_with_a_reason_not_raised(tmp_path):
    good = [list(r) for r in generate_rows(6, seed=4)]
    path = tmp_path / "mixed.csv"
    write_csv(path, good)
    lines = path.read_text().splitlines()
    lines[2] = "1,2,3"  # too few columns
    lines[3] = lines[3].replace(str(good[2][5]), "abc", 1)  # not a number
    lines[4] = ",".join(["nan"] * 31)  # NaN
    lines[5] = ",".join([*(["1"] * 29), "-5", "0"])  # negative Amount
    lines[6] = ",".join([*(["1"] * 30), '"2"'])  # Class not 0/1
    path.write_text("\n".join(lines) + "\n")
    items = [item for _, item in CsvSource(path).read(Position(), loop=False)]
    assert [type(i) for i in items] == [Row, Malformed, Malformed, Malformed, Malformed, Malformed]
    assert [i.index for i in items] == list(range(6))
    assert "columns" in items[1].reason
    assert "number" in items[2].reason
    assert "NaN" in items[3].reason
    assert "negative" in items[4].reason
    assert "Class" in items[5].reason


def test_shuffle_sends_every_row_once_in_a_seeded_order_per_pass(tmp_path):
    path = write_csv(tmp_path / "c.csv", generate_rows(50, seed=1))
    first = take(CsvSource(path, shuffle=True, seed=11).read(Position(), loop=True), 100)
    again = take(CsvSource(path, shuffle=True, seed=11).read(Position(), loop=True), 100)
    other = take(CsvSource(path, shuffle=True, seed=12).read(Position(), loop=False), 50)
    pass0 = [row.index for p, row in first if p.loop == 0]
    pass1 = [row.index for p, row in first if p.loop == 1]
    assert first == again
    assert sorted(pass0) == sorted(pass1) == list(range(50))
    assert pass0 != list(range(50))
    assert pass0 != pass1
    assert pass0 != [r.index for _, r in other]
    # Resuming mid-pass continues the same permutation.
    resumed = take(CsvSource(path, shuffle=True, seed=11).read(Position(1, 10), loop=True), 5)
    assert resumed == first[60:65]


def test_loop_starts_over_and_stops_on_a_file_without_valid_rows(tmp_path):
    path = write_csv(tmp_path / "c.csv", generate_rows(3, seed=1))
    positions = [p for p, _ in take(CsvSource(path).read(Position(), loop=True), 7)]
    assert positions == [Position(0, 0), Position(0, 1), Position(0, 2), Position(1, 0), Position(1, 1),
                         Position(1, 2), Position(2, 0)]  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(COLUMNS) + "\n1,2\n")
    assert len(list(CsvSource(bad).read(Position(), loop=True))) == 1


def test_the_source_key_follows_the_content_not_the_path(tmp_path):
    one = write_csv(tmp_path / "one.csv", generate_rows(5, seed=1))
    copy = tmp_path / "copy.csv"
    copy.write_bytes(one.read_bytes())
    other = write_csv(tmp_path / "other.csv", generate_rows(5, seed=2))
    assert CsvSource(one).key == CsvSource(copy).key != CsvSource(other).key


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("Time,V1,Amount\n1,2,3\n", "header lacks column(s) V2"),
        ("1,2,3\n", "3 columns and no header"),
    ],
)
def test_unusable_files_are_refused_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(ProducerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CsvSource(path)


def test_open_source_refuses_missing_files_and_shuffled_synthetic(tmp_path):
    with pytest.raises(ProducerError, match="no such file"):
        open_source(str(tmp_path / "missing.csv"))
    with pytest.raises(ProducerError, match="--shuffle needs a file"):
        open_source("synthetic", shuffle=True)
    assert open_source("synthetic", seed=5).key == "synthetic-5"


def test_a_simulator_csv_is_read_from_any_position_and_looped_with_new_ids(tmp_path):
    from fraud_data.simulator import SimulationConfig, simulate
    from fraud_data.transactions import write_csv
    from producer.events import SimRow, build_event
    from producer.source import SimulatorCsvSource, detect_shape

    # GIVEN a simulator CSV
    table = simulate(SimulationConfig(customers=20, terminals=40, days=2, seed=4)).transactions
    path = tmp_path / "sim.csv"
    write_csv(table, path)
    source = open_source(str(path))
    assert isinstance(source, SimulatorCsvSource)
    assert detect_shape(path) == "simulator"

    # WHEN read from the middle, and looped
    middle = take(source.read(Position(0, 5), loop=False), 3)
    looped = take(source.read(Position(0, len(table) - 1), loop=True), 2)

    # THEN positions and rows are the file's, and a second pass gets new transaction ids
    assert [p for p, _ in middle] == [Position(0, 5), Position(0, 6), Position(0, 7)]
    assert [r.transaction_id for _, r in middle] == table.transaction_id[5:8]
    assert all(isinstance(r, SimRow) for _, r in middle)
    row = middle[0][1]
    assert (row.timestamp_ms, row.card_id, row.terminal_id, row.amount, row.label) == (
        table.timestamp[5],
        table.card_id[5],
        table.terminal_id[5],
        table.amount[5],
        table.label[5],
    )
    (last_position, last), (next_position, first_again) = looped
    assert next_position == Position(1, 0)
    again = build_event(first_again, source_key=source.key, loop=next_position.loop, timestamp_ms=0)
    assert again["transaction_id"] == table.transaction_id[0] + "-l1"
    assert (
        build_event(last, source_key=source.key, loop=0, timestamp_ms=0)["transaction_id"]
        == table.transaction_id[-1]
    )


def test_a_directory_is_not_a_source(tmp_path):
    with pytest.raises(ProducerError, match="is a directory"):
        open_source(str(tmp_path))
