"""Where the last run on a source stopped: only records Kinesis accepted count, written atomically.

The checkpoint holds the first position not yet done plus the few positions after it that are done
already (a batch's entries are accepted out of order when some come back failed). A resumed run
starts at that position and skips those, so nothing is lost and nothing accepted is sent twice. It
also holds the fraud reports still due for transactions Kinesis accepted: a resumed run sends them
(the run that accepted those transactions will not).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from producer.errors import ProducerError
from producer.source import Position

DEFAULT_DIR = Path(".producer")
FORMAT_VERSION = 1


def default_path(source_key: str, order: str) -> Path:
    suffix = "" if order == "sequential" else "-" + order.replace(":", "-")
    return DEFAULT_DIR / f"checkpoint-{source_key}{suffix}.json"


# A report still due: (due at ms, transaction id, label, card id = its partition key).
PendingReport = tuple[int, str, int, str]


@dataclass(frozen=True)
class Checkpoint:
    source: str
    order: str
    resume_at: Position = Position()
    done_ahead: frozenset[Position] = field(default_factory=frozenset)
    pending_reports: tuple[PendingReport, ...] = ()


class CheckpointStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self, *, source: str, order: str) -> Checkpoint | None:
        """The saved checkpoint for this source and order; None when there is none yet."""
        try:
            data = json.loads(self.path.read_text())
            saved = Checkpoint(
                source=data["source"],
                order=data["order"],
                resume_at=Position(*data["resume_at"]),
                done_ahead=frozenset(Position(*p) for p in data.get("done_ahead", ())),
                pending_reports=tuple(
                    (int(due), str(tid), int(label), str(card))
                    for due, tid, label, card in data.get("pending_reports", ())
                ),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProducerError(
                f"checkpoint {self.path} is unreadable ({exc}); delete it to start over"
            ) from None
        if (saved.source, saved.order) != (source, order):
            raise ProducerError(
                f"checkpoint {self.path} belongs to source {saved.source} ({saved.order}), "
                f"not {source} ({order}); pass another --checkpoint or drop --resume"
            )
        return saved

    def save(self, checkpoint: Checkpoint) -> None:
        """Write to a temporary file, fsync, then rename over the old one: a crash leaves either the
        old checkpoint or the new one, never half of one."""
        payload = {
            "version": FORMAT_VERSION,
            "source": checkpoint.source,
            "order": checkpoint.order,
            "resume_at": [checkpoint.resume_at.loop, checkpoint.resume_at.offset],
            "done_ahead": sorted([p.loop, p.offset] for p in checkpoint.done_ahead),
            "pending_reports": [list(report) for report in checkpoint.pending_reports],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise ProducerError(f"cannot write checkpoint {self.path}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:  # e.g. the path names a directory
            Path(tmp).unlink(missing_ok=True)
            raise ProducerError(f"cannot write checkpoint {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class Watermark:
    """Tracks which read positions are done (accepted by Kinesis, or malformed and skipped).

    Positions get consecutive tickets in read order; `resume_at` is the first position not done
    yet (or the one after the last issued when all are done).
    """

    def __init__(self, start: Position, done_ahead: frozenset[Position] = frozenset()) -> None:
        # Positions a resumed run skips because an earlier run had them accepted; kept in the
        # checkpoint until the watermark passes them, so a third run skips them too.
        self._carried = done_ahead
        self._next = start
        self._pending: dict[int, Position] = {}  # ticket -> position, not done yet
        self._done_ahead: dict[int, Position] = {}  # done, but behind a pending one
        self._issued = 0
        self._first = 0  # lowest ticket not done (== _issued when all are done)

    def issue(self, position: Position) -> int:
        ticket = self._issued
        self._issued += 1
        self._pending[ticket] = position
        self._next = Position(position.loop, position.offset + 1)
        return ticket

    def done(self, ticket: int) -> None:
        position = self._pending.pop(ticket)
        if ticket != self._first:
            self._done_ahead[ticket] = position
            return
        # Each ticket is stepped over once, so this stays O(1) per record on average.
        while self._first < self._issued and self._first not in self._pending:
            self._done_ahead.pop(self._first, None)
            self._first += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def is_done(self, ticket: int) -> bool:
        return ticket < self._issued and ticket not in self._pending

    def checkpoint(self, *, source: str, order: str) -> Checkpoint:
        if self._first == self._issued:
            resume_at, ahead = self._next, set()
        else:
            resume_at, ahead = self._pending[self._first], set(self._done_ahead.values())
        # `>=`: a carried position the run stopped just before is still done (resuming there must
        # skip it, not send it again).
        ahead |= {p for p in self._carried if p >= resume_at}
        return Checkpoint(source, order, resume_at, frozenset(ahead))
