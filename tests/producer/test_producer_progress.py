"""Progress output: a bar on a terminal, plain throttled lines otherwise, nothing when silent."""

from __future__ import annotations

import io

from producer.progress import Mode, Progress, Snapshot


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def snapshots(times):
    return [
        Snapshot(sent=100 * (i + 1), retried=i, rejected_rows=0, elapsed_seconds=t)
        for i, t in enumerate(times)
    ]


def test_a_terminal_gets_one_redrawn_bar_then_the_summary_on_its_own_line():
    terminal = FakeTerminal()
    progress = Progress(stream=terminal, total=400)
    for snapshot in snapshots([0.5, 1.0, 1.5, 2.0]):
        progress.update(snapshot)
    progress.finish("400 records sent")
    text = terminal.getvalue()
    assert progress.mode is Mode.BAR
    assert text.count("\r") == 4
    assert "[" + "#" * 24 + "] sent 400/400 (200 rec/s), retried 3" in text
    assert text.endswith("\n400 records sent\n")


def test_a_pipe_gets_plain_lines_at_most_every_interval():
    pipe = io.StringIO()
    progress = Progress(stream=pipe, line_interval=5.0)
    for snapshot in snapshots([1, 2, 6, 7, 12]):
        progress.update(snapshot)
    progress.finish("done")
    lines = pipe.getvalue().splitlines()
    assert "\r" not in pipe.getvalue()
    assert lines == [
        "sent 100 (100 rec/s), retried 0, rejected rows 0",
        "sent 300 (50 rec/s), retried 2, rejected rows 0",
        "sent 500 (42 rec/s), retried 4, rejected rows 0",
        "done",
    ]


def test_quiet_prints_only_the_summary_and_silent_nothing():
    quiet, silent = io.StringIO(), io.StringIO()
    for stream, mode in ((quiet, Mode.SUMMARY), (silent, Mode.SILENT)):
        progress = Progress(stream=stream, mode=mode)
        progress.note("resuming at pass 0, row 2")
        progress.update(snapshots([1])[0])
        progress.note("stopping after the in-flight batch")
        progress.finish("done")
    assert quiet.getvalue() == "done\n"
    assert silent.getvalue() == ""
