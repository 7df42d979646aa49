"""The simulator's transaction CSV: columns, an in-memory column table, reading and writing.

`transaction_id,timestamp,card_id,terminal_id,amount,label,scenario` — timestamp in epoch
milliseconds (UTC), amount in currency units rounded to cents, label 0/1, scenario 0 = legitimate,
1/2/3 = the Handbook's fraud scenario that made it fraudulent. Rows are in event order
(timestamp, then transaction_id), the order every feature computation assumes.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from contracts.events import ENTITY_ID, ENTITY_ID_PATTERN, MAX_AMOUNT, TRANSACTION_ID, TRANSACTION_ID_PATTERN

COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "card_id",
    "terminal_id",
    "amount",
    "label",
    "scenario",
)


@dataclass
class Transactions:
    """Column-oriented: 1.75 M rows as seven lists cost far less memory than 1.75 M row objects."""

    transaction_id: list[str] = field(default_factory=list)
    timestamp: list[int] = field(default_factory=list)
    card_id: list[str] = field(default_factory=list)
    terminal_id: list[str] = field(default_factory=list)
    amount: list[float] = field(default_factory=list)
    label: list[int] = field(default_factory=list)
    scenario: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.transaction_id)

    def rows(self):
        return zip(
            self.transaction_id,
            self.timestamp,
            self.card_id,
            self.terminal_id,
            self.amount,
            self.label,
            self.scenario,
            strict=True,
        )

    def slice(self, start: int, stop: int, shift_ms: int = 0) -> Transactions:
        """Rows [start, stop) as a new table, their timestamps moved by `shift_ms` (order and gaps kept)."""
        return Transactions(
            transaction_id=self.transaction_id[start:stop],
            timestamp=[ts + shift_ms for ts in self.timestamp[start:stop]],
            card_id=self.card_id[start:stop],
            terminal_id=self.terminal_id[start:stop],
            amount=self.amount[start:stop],
            label=self.label[start:stop],
            scenario=self.scenario[start:stop],
        )

    def is_event_ordered(self) -> bool:
        keys = list(zip(self.timestamp, self.transaction_id, strict=True))
        return all(a < b for a, b in zip(keys, keys[1:], strict=False))


def _lines(transactions: Transactions):
    yield ",".join(COLUMNS) + "\n"
    # f-strings over csv.writer: ids are plain tokens (no quoting needed) and this is several times faster.
    for tid, ts, card, term, amount, label, scenario in transactions.rows():
        yield f"{tid},{ts},{card},{term},{amount:.2f},{label},{scenario}\n"


def write_csv(transactions: Transactions, path: str | os.PathLike) -> None:
    with replaced_on_success(path) as out:
        out.writelines(_lines(transactions))


@contextlib.contextmanager
def replaced_on_success(path: str | os.PathLike) -> Iterator[TextIO]:
    """A text file that becomes `path` only once it is written whole: a write that fails (a full disk,
    a size limit) leaves no shortened file that reads as complete, and leaves an older `path` alone."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def read_csv(path: str | os.PathLike) -> Transactions:
    """Read a simulator CSV; ValueError naming the line for anything malformed (a row the csv module
    cannot read, a field over its size limit, included), or the file for one that is not UTF-8."""
    with open(path, encoding="utf-8", newline="") as src:
        reader = csv.reader(src)
        try:
            return _read_rows(path, reader)
        except csv.Error as err:
            raise ValueError(f"{path}, line {reader.line_num}: not a CSV row ({err})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text (a binary file?)") from None


def _read_rows(path: str | os.PathLike, reader: Iterator[list[str]]) -> Transactions:
    table = Transactions()
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ValueError(f"{path}: expected the header {','.join(COLUMNS)}")
    append = (
        table.transaction_id.append,
        table.timestamp.append,
        table.card_id.append,
        table.terminal_id.append,
        table.amount.append,
        table.label.append,
        table.scenario.append,
    )
    for line, row in enumerate(reader, start=2):
        try:
            tid, ts, card, term, amount, label, scenario = row
            values = (tid, int(ts), card, term, float(amount), int(label), int(scenario))
            _check(values)
        except ValueError as err:
            raise ValueError(f"{path}, line {line}: {err}") from None
        for add, value in zip(append, values, strict=True):
            add(value)
    return table


def _check(values: tuple) -> None:
    """The event schema's rules (contracts.events) for what a row becomes: the backfill writes its ids
    into Redis state records (where a newline would split one id in two) and the producer sends it."""
    tid, ts, card, term, amount, label, scenario = values
    if not TRANSACTION_ID.fullmatch(tid):
        raise ValueError(f"transaction_id must be {TRANSACTION_ID_PATTERN}")
    if not (ENTITY_ID.fullmatch(card) and ENTITY_ID.fullmatch(term)):
        raise ValueError(f"card_id and terminal_id must be {ENTITY_ID_PATTERN}")
    if ts < 0 or not 0 <= amount <= MAX_AMOUNT or label not in (0, 1) or scenario not in (0, 1, 2, 3):
        raise ValueError(
            f"timestamp < 0, amount not within 0..{MAX_AMOUNT:g}, label not 0/1 or scenario not 0-3"
        )


def to_csv_text(transactions: Transactions) -> str:
    """The CSV as a string (small datasets, tests)."""
    return "".join(_lines(transactions))
