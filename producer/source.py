"""Where rows come from: the transaction simulator (`simulated`), a simulator CSV, a creditcard.csv-
shaped file (either shape also inside a .zip; detected from the header), or the i.i.d. `synthetic`
test generator.

A source yields `(Position, Row | SimRow | Malformed)` pairs from any starting position, so a run can resume
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
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from contracts.events import ENTITY_ID, TRANSACTION_ID
from fraud_data.schema import AMOUNT_INDEX, FEATURE_COLUMNS, FEATURE_COUNT, LABEL_COLUMN
from fraud_data.simulator import SimulationConfig, simulate
from fraud_data.synthetic import generate_rows
from fraud_data.transactions import Transactions
from producer.errors import ProducerError
from producer.events import Row, SimRow

SYNTHETIC = "synthetic"
SIMULATED = "simulated"


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
        first = _first_row(self.path, str(self.path))
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
        cells = _cells(index, text)
        if isinstance(cells, Malformed):
            return cells
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


def _cells(index: int, line: str) -> list[str] | Malformed:
    """The cells of row `index`; Malformed for a line the csv module refuses (a field over its size
    limit, csv.field_size_limit), so the row is skipped and counted instead of ending the run."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error as exc:
        return Malformed(index, f"not a CSV row ({exc})")


def _first_row(path: Path, display: str) -> list[str] | None:
    """The file's first row (its header, or its first data row); None for an empty file. A file the
    csv module cannot read a row of (a binary file, a field over its size limit) is a ProducerError."""
    try:
        with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
            return next(csv.reader(handle), None)
    except OSError as exc:
        raise ProducerError(f"{display}: cannot read ({exc.strerror or exc})") from None
    except csv.Error as exc:
        raise ProducerError(f"{display}: not a CSV file: its first row is unreadable ({exc})") from None


class TransactionsSource:
    """Simulator transactions held in memory (`fraud_data.transactions.Transactions`), in event order.

    Rows keep the dataset's own ids, so a row sent twice is the same transaction downstream; a
    `--loop` pass after the first gets `-l<pass>` ids (its timestamps repeat the dataset's unless
    the producer stamps send times)."""

    order = "sequential"
    ordered_per_card = True  # see producer.sender.Batch.one_per_key

    def __init__(self, transactions: Transactions, *, key: str) -> None:
        self.transactions = transactions
        self.key = key

    def read(self, start: Position, *, loop: bool) -> Iterator[tuple[Position, SimRow | Malformed]]:
        table = self.transactions
        current = start
        while True:
            for offset in range(current.offset, len(table)):
                row = SimRow(
                    offset,
                    table.transaction_id[offset],
                    table.timestamp[offset],
                    table.card_id[offset],
                    table.terminal_id[offset],
                    table.amount[offset],
                    table.label[offset],
                )
                yield Position(current.loop, offset), row
            if not loop or not len(table):
                return
            current = Position(current.loop + 1, 0)


class SimulatedSource(TransactionsSource):
    """`--source simulated`: the Handbook-style simulator (`fraud_data.simulator`), run on first read.

    The key names the simulation's parameters, so a checkpoint only resumes the same dataset."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        c = config
        super().__init__(
            Transactions(), key=f"simulated-{c.seed}-{c.customers}c-{c.terminals}t-{c.days}d-{c.start}"
        )
        self._simulated = False

    def load(self) -> Transactions:
        """The simulated transactions (simulated on the first call)."""
        if not self._simulated:
            self.transactions = simulate(self.config).transactions
            self._simulated = True
        return self.transactions

    def read(self, start: Position, *, loop: bool) -> Iterator[tuple[Position, SimRow | Malformed]]:
        self.load()
        yield from super().read(start, loop=loop)


class SimulatorCsvSource:
    """A simulator CSV (`python -m fraud_data simulate`): `transaction_id, timestamp, card_id,
    terminal_id, amount` and optional `label` (other columns, such as `scenario`, are ignored),
    found by name in the header. Rows must be in event order, as the simulator writes them; a
    malformed row is skipped and counted, like a malformed creditcard.csv row."""

    order = "sequential"
    ordered_per_card = True  # see producer.sender.Batch.one_per_key

    def __init__(self, path: Path, *, display: str | None = None) -> None:
        self.path = Path(path)
        self.display = display or str(self.path)
        digest = hashlib.sha256()
        try:
            with self.path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise ProducerError(f"{self.display}: cannot read ({exc.strerror or exc})") from None
        header = [cell.strip() for cell in _first_row(self.path, self.display) or []]
        self.key = f"simcsv-{digest.hexdigest()[:12]}"
        missing = [c for c in SIMULATOR_REQUIRED if c not in header]
        if missing:
            raise ProducerError(f"{self.display}: header lacks column(s) {', '.join(missing)}")
        self._index = {name: header.index(name) for name in (*SIMULATOR_REQUIRED, "label") if name in header}

    def read(self, start: Position, *, loop: bool) -> Iterator[tuple[Position, SimRow | Malformed]]:
        current = start
        while True:
            produced_rows = False
            with self.path.open("rb") as handle:
                lines = itertools.islice(handle, 1 + current.offset, None)
                for offset, line in enumerate(lines, start=current.offset):
                    item = self._parse(offset, line)
                    produced_rows = produced_rows or isinstance(item, SimRow)
                    yield Position(current.loop, offset), item
            if not loop or (not produced_rows and current.offset == 0):
                return
            current = Position(current.loop + 1, 0)

    def _parse(self, index: int, raw: bytes) -> SimRow | Malformed:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Malformed(index, "not UTF-8")
        cells = _cells(index, text)
        if isinstance(cells, Malformed):
            return cells
        at = self._index
        if len(cells) <= max(at.values()):
            return Malformed(index, f"{len(cells)} columns, expected {max(at.values()) + 1}")
        tid, card, terminal = (cells[at[n]].strip() for n in ("transaction_id", "card_id", "terminal_id"))
        if not TRANSACTION_ID.fullmatch(tid):
            return Malformed(index, "transaction_id must be 1-128 chars of [A-Za-z0-9._:-]")
        if not (ENTITY_ID.fullmatch(card) and ENTITY_ID.fullmatch(terminal)):
            return Malformed(index, "card_id and terminal_id must be 1-64 chars of [A-Za-z0-9._:-]")
        try:
            timestamp = int(cells[at["timestamp"]])
            amount = float(cells[at["amount"]])
        except ValueError:
            return Malformed(index, "timestamp (epoch ms) or amount is not a number")
        if timestamp < 0 or not math.isfinite(amount) or amount < 0:
            return Malformed(index, "negative timestamp, or amount negative or not finite")
        label = None
        if "label" in at:
            label = _label(cells[at["label"]])
            if label is None:
                return Malformed(index, f"label is {cells[at['label']]!r}, expected 0 or 1")
        return SimRow(index, tid, timestamp, card, terminal, amount, label)


SIMULATOR_REQUIRED = ("transaction_id", "timestamp", "card_id", "terminal_id", "amount")


class _Unzipped:
    """The CSV inside a .zip (the Kaggle download of creditcard.csv is one), extracted to a temporary
    directory that lives as long as the source: shuffling needs random access, which a compressed
    member does not give. Same bytes, same content hash, so the same transaction ids as the CSV."""

    def __init__(self, path: Path) -> None:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ProducerError(f"{path}: not a readable .zip ({exc})") from None
        with archive:
            members = [
                m for m in archive.infolist() if m.filename.lower().endswith(".csv") and not m.is_dir()
            ]
            if len(members) != 1:
                found = ", ".join(m.filename for m in members) or "none"
                raise ProducerError(f"{path}: expected exactly one .csv inside the .zip, found {found}")
            self._dir = tempfile.TemporaryDirectory(prefix="producer-zip-")
            try:
                self.csv_path = Path(archive.extract(members[0], self._dir.name))
            except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
                raise ProducerError(f"{path}: cannot extract {members[0].filename} ({exc})") from None
        self.display = f"{path}:{members[0].filename}"


def detect_shape(path: Path) -> str:
    """'simulator' when the header names card_id and terminal_id, else 'creditcard'."""
    header = {cell.strip() for cell in _first_row(path, str(path)) or []}
    return "simulator" if {"card_id", "terminal_id"} <= header else "creditcard"


def open_source(
    spec: str, *, seed: int = 42, shuffle: bool = False, simulation: SimulationConfig | None = None
) -> Source:
    """`synthetic`, `simulated` (the simulator, with `simulation`'s parameters), or a path to a CSV of
    either shape (creditcard.csv or the simulator's; detected from the header), or a .zip holding one."""
    if spec == SYNTHETIC:
        if shuffle:
            raise ProducerError("--shuffle needs a file source: synthetic rows are already random draws")
        return SyntheticSource(seed=seed)
    if spec == SIMULATED:
        if shuffle:
            raise ProducerError("--shuffle would break the event order the features are computed in")
        return SimulatedSource(simulation or SimulationConfig(seed=seed))
    path = Path(spec)
    if path.is_dir():
        raise ProducerError(f"{path}: is a directory, expected a CSV file (or a .zip holding one)")
    if not path.is_file():
        raise ProducerError(f"{path}: no such file")
    keep_alive = None
    display = str(path)
    if path.suffix.lower() == ".zip":
        keep_alive = _Unzipped(path)
        path, display = keep_alive.csv_path, keep_alive.display
    if detect_shape(path) == "simulator":
        if shuffle:
            raise ProducerError("--shuffle would break the event order the features are computed in")
        source = SimulatorCsvSource(path, display=display)
    else:
        source = CsvSource(path, shuffle=shuffle, seed=seed)
    source._keep_alive = keep_alive  # the extracted copy lives as long as the source
    return source
