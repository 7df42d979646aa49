"""Progress on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from typing import TextIO


class Mode(Enum):
    BAR = "bar"  # a terminal: one line redrawn in place
    LINES = "lines"  # a pipe or log file: plain lines, no control characters
    SUMMARY = "summary"  # --quiet: only the final summary
    SILENT = "silent"  # library use: print nothing


@dataclass(frozen=True)
class Snapshot:
    sent: int
    retried: int
    rejected_rows: int
    elapsed_seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


class Progress:
    def __init__(
        self,
        *,
        mode: Mode | None = None,
        stream: TextIO | None = None,
        total: int | None = None,
        bar_interval: float = 0.1,
        line_interval: float = 5.0,
        dry_run: bool = False,
    ) -> None:
        self.stream = stream or sys.stderr
        # A dry run sends nothing: its progress must not say "sent" (the records are printed).
        self.verb = "would send" if dry_run else "sent"
        if mode is None:
            mode = Mode.BAR if self.stream.isatty() else Mode.LINES
        self.mode = mode
        self.total = total
        self._interval = bar_interval if mode is Mode.BAR else line_interval
        self._last_shown: float | None = None
        self._bar_drawn = False

    def update(self, snapshot: Snapshot) -> None:
        if self.mode not in (Mode.BAR, Mode.LINES):
            return
        now = snapshot.elapsed_seconds
        if self._last_shown is not None and now - self._last_shown < self._interval:
            return
        self._last_shown = now
        if self.mode is Mode.BAR:
            self.stream.write("\r" + self._bar(snapshot) + "\x1b[K")
            self._bar_drawn = True
        else:
            self.stream.write(self._counts(snapshot) + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A line between the progress ones (resuming, stopping): progress too, so --quiet drops it."""
        if self.mode in (Mode.BAR, Mode.LINES):
            self._write_line(message)

    def finish(self, summary_line: str) -> None:
        if self.mode is not Mode.SILENT:
            self._write_line(summary_line)

    def _write_line(self, line: str) -> None:
        self._end_bar()
        self.stream.write(line + "\n")
        self.stream.flush()

    def _end_bar(self) -> None:
        if self._bar_drawn:
            self.stream.write("\n")
            self._bar_drawn = False

    def _counts(self, s: Snapshot) -> str:
        done = f"{s.sent:,}" if self.total is None else f"{s.sent:,}/{self.total:,}"
        return (
            f"{self.verb} {done} ({s.rate:,.0f} rec/s), retried {s.retried:,}, "
            f"rejected rows {s.rejected_rows:,}"
        )

    def _bar(self, s: Snapshot, width: int = 24) -> str:
        if not self.total:
            return self._counts(s)
        filled = min(width, int(width * s.sent / self.total))
        return f"[{'#' * filled}{'.' * (width - filled)}] " + self._counts(s)
