"""Where rows come from: a creditcard.csv-shaped file or the seeded synthetic generator.

A source yields `(Position, Row | Malformed)` pairs from any starting position, so a run can resume
exactly where an earlier one stopped. A position is (pass number, place in that pass); the place
equals the row index unless the file is shuffled. Malformed rows are yielded, not raised, so the
caller counts them and carries on.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fraud_data.schema import AMOUNT_INDEX, FEATURE_COLUMNS, FEATURE_COUNT, LABEL_COLUMN
from fraud_data.synthetic import generate_rows
from producer.errors import ProducerError
from producer.events import Row

SYNTHETIC = "synthetic"


@dataclass(frozen=True, order=True)
class Position:
    loop: int = 0
    offset: int = 0


@dataclass(frozen=True)
class Malformed:
    index: int
    reason: str


class Source(Protocol):
    key: str  # stable identity: part of every transaction id and of the checkpoint's name
    order: str  # "sequential" or "shuffle:<seed>"; a checkpoint only resumes the same order

    def read(self, start: Position, *, loop: bool) -> Iterator[tuple[Position, Row | Malformed]]: ...


class SyntheticSource:
    """`fraud_data.synthetic.generate_rows` as an endless source (its rows are independent draws,
    so neither shuffling nor looping would add anything)."""

    order = "sequential"

    def __init__(self, *, seed: int) -> None:
        self.seed = seed
        self.key = f"synthetic-{seed}"

    def read(self, start: Position, *, loop: bool) -> Iterator[tuple[Position, Row | Malformed]]:
        # generate_rows is sequential (one RNG), so resuming means regenerating and skipping.
        rows = itertools.islice(generate_rows(2**62, seed=self.seed), start.offset, None)
        for index, values in enumerate(rows, start=start.offset):
            yield Position(0, index), Row(index, tuple(values[:FEATURE_COUNT]), int(values[FEATURE_COUNT]))


@dataclass(frozen=True)
class _Layout:
    feature_indices: tuple[int, ...]
    label_index: int | None
    has_header: bool


class CsvSource:
    """A creditcard.csv-shaped file: `Time, V1…V28, Amount` and an optional `Class`.

    With a header, columns are found by name (extra columns are ignored); without one, the file
    must have 30 or 31 columns in creditcard.csv order. Rows are lines: the row index is the data
    line number, the same whether the file is read in order or shuffled.
    """

    def __init__(self, path: str | Path, *, shuffle: bool = False, seed: int = 42) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ProducerError(f"{self.path}: no such file")
        self.shuffle = shuffle
        self.seed = seed
        self.order = f"shuffle:{seed}" if shuffle else "sequential"
        try:
            digest, self._offsets = self._scan()
        except OSError as exc:
            raise ProducerError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        # A content hash, not the path: moving the file keeps its ids, a different file gets new ones.
        self.key = f"csv-{digest}"
        self._layout = self._read_layout()

    def _scan(self) -> tuple[str, list[int]]:
        """Hash the content and, when shuffling, note where every line starts (for random access)."""
        hasher = hashlib.sha256()
        offsets: list[int] = []
        with self.path.open("rb") as handle:
            position = 0
            for line in handle:
                hasher.update(line)
                if self.shuffle:
                    offsets.append(position)
                position += len(line)
        return hasher.hexdigest()[:12], offsets

    def _read_layout(self) -> _Layout:
        with self.path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
            first = next(csv.reader(handle), None)
        if not first:
            raise ProducerError(f"{self.path}: empty file, expected creditcard.csv columns")
        if all(_is_number(cell) for cell in first):
            if len(first) not in (FEATURE_COUNT, FEATURE_COUNT + 1):
                raise ProducerError(
                    f"{self.path}: {len(first)} columns and no header; expected {FEATURE_COUNT} "
                    f"(Time, V1…V28, Amount) or {FEATURE_COUNT + 1} (plus Class)"
                )
            label = FEATURE_COUNT if len(first) > FEATURE_COUNT else None
            return _Layout(tuple(range(FEATURE_COUNT)), label, has_header=False)
        names = [cell.strip() for cell in first]
        missing = [column for column in FEATURE_COLUMNS if column not in names]
        if missing:
            raise ProducerError(f"{self.path}: header lacks column(s) {', '.join(missing)}")
        label = names.index(LABEL_COLUMN) if LABEL_COLUMN in names else None
        return _Layout(tuple(names.index(c) for c in FEATURE_COLUMNS), label, has_header=True)

    def read(self, start: Position, *, loop: bool) -> Iterator[tuple[Position, Row | Malformed]]:
        current = start
        while True:
            produced_rows = False
            for offset, index, line in self._pass(current):
                item = self._parse(index, line)
                produced_rows = produced_rows or isinstance(item, Row)
                yield Position(current.loop, offset), item
            # A pass without one valid row would make --loop spin forever sending nothing.
            if not loop or (not produced_rows and current.offset == 0):
                return
            current = Position(current.loop + 1, 0)

    def _pass(self, start: Position) -> Iterator[tuple[int, int, bytes]]:
        """(place in pass, row index, raw line) for one pass, from `start.offset` on."""
        skip = 1 if self._layout.has_header else 0
        with self.path.open("rb") as handle:
            if not self.shuffle:
                lines = itertools.islice(handle, skip + start.offset, None)
                yield from ((o, o, line) for o, line in enumerate(lines, start=start.offset))
                return
            data_offsets = self._offsets[skip:]
            # One permutation per pass, reproducible from the seed: a resumed run sees the same order.
            order = list(range(len(data_offsets)))
            random.Random(f"{self.seed}:{start.loop}").shuffle(order)
            for place in range(start.offset, len(order)):
                handle.seek(data_offsets[order[place]])
                yield place, order[place], handle.readline()

    def _parse(self, index: int, raw: bytes) -> Row | Malformed:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Malformed(index, "not UTF-8")
        cells = next(csv.reader([text]), [])
        layout = self._layout
        needed = max(*layout.feature_indices, layout.label_index or 0) + 1
        if len(cells) < needed:
            return Malformed(index, f"{len(cells)} columns, expected {needed}")
        try:
            features = tuple(float(cells[i]) for i in layout.feature_indices)
        except ValueError:
            return Malformed(index, "a feature is not a number")
        if not all(math.isfinite(value) for value in features):
            return Malformed(index, "a feature is NaN or infinite")
        if features[AMOUNT_INDEX] < 0:
            return Malformed(index, "negative Amount")
        label = None
        if layout.label_index is not None:
            label = _label(cells[layout.label_index])
            if label is None:
                return Malformed(index, f"Class is {cells[layout.label_index]!r}, expected 0 or 1")
        return Row(index, features, label)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _label(cell: str) -> int | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if value in (0.0, 1.0) else None


def open_source(spec: str, *, seed: int = 42, shuffle: bool = False) -> Source:
    """`synthetic` or a path to a creditcard.csv-shaped file."""
    if spec == SYNTHETIC:
        if shuffle:
            raise ProducerError("--shuffle needs a file source: synthetic rows are already random draws")
        return SyntheticSource(seed=seed)
    return CsvSource(spec, shuffle=shuffle, seed=seed)
