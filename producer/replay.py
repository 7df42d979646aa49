"""The replay loop: read rows, hold the rate, batch, send, track what Kinesis accepted, checkpoint."""

from __future__ import annotations

import dataclasses
import itertools
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fraud_data.simulator import SimulationConfig
from producer.aws import make_client
from producer.checkpoint import CheckpointStore, PendingReport, Watermark, default_path
from producer.errors import ProducerError
from producer.events import Row, SimRow, build_event, encode
from producer.labels import (
    DAY_MS,
    DEFAULT_LABEL_DELAY_MS,
    DEFAULT_LABELS,
    LABEL_CHOICES,
    MAX_LABEL_DELAY_MS,
    LabelSchedule,
)
from producer.progress import Mode, Progress, Snapshot
from producer.rate import RateLimiter
from producer.sender import Backoff, Batch, Entry, KinesisSender
from producer.source import Malformed, Position, Source, open_source

LABEL_TICKET = -1  # label events have no read position: the checkpoint does not track them

# With a rate limit, a batch waits at most this long for more records before it is sent, so low
# rates send small batches promptly and high rates still fill them.
LINGER_SECONDS = 0.1
CHECKPOINT_EVERY_SECONDS = 1.0
SLEEP_SLICE_SECONDS = 0.1  # a stop request is noticed within this time, even during a long wait


@dataclass
class Summary:
    sent: int = 0  # transactions Kinesis accepted (printed ones with dry_run)
    labels_sent: int = 0  # label events Kinesis accepted (printed ones with dry_run)
    retried: int = 0  # entries sent again after a throttled or failed attempt
    rejected_rows: int = 0  # malformed source rows, skipped
    elapsed_seconds: float = 0.0
    put_calls: int = 0
    interrupted: bool = False
    dry_run: bool = False
    resume_at: Position | None = None  # where a --resume run would continue (None with dry_run)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def snapshot(self) -> Snapshot:
        return Snapshot(self.sent, self.retried, self.rejected_rows, self.elapsed_seconds)

    def line(self) -> str:
        verb = "printed (dry run, nothing sent)" if self.dry_run else "sent"
        text = (
            f"{self.sent:,} records {verb} in {self.elapsed_seconds:.1f} s ({self.rate:,.0f} rec/s); "
            f"retried {self.retried:,}, rejected rows {self.rejected_rows:,}"
        )
        if self.labels_sent:
            text += f"; {self.labels_sent:,} label events {verb}"
        return text + (" - interrupted, checkpoint saved" if self.interrupted and not self.dry_run else "")


class Producer:
    """Replays `source` into a Kinesis stream; `run()` returns a Summary.

    Ctrl-C (or `stop()` from another thread) ends the run cleanly: the in-flight batch is finished
    or left pending, the checkpoint keeps only accepted records, `Summary.interrupted` is set.
    """

    def __init__(
        self,
        *,
        source: Source,
        stream_name: str | None = None,
        kinesis_client=None,
        count: int | None = None,
        rate: float | None = None,
        loop: bool = False,
        checkpoint: CheckpointStore | None = None,
        resume: bool = False,
        dry_run: bool = False,
        output: TextIO | None = None,
        progress: Progress | None = None,
        handle_sigint: bool = False,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen dataclass, safe as a default
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        shift_to_now: bool = False,
        labels: str = DEFAULT_LABELS,
        label_delay_ms: int = DEFAULT_LABEL_DELAY_MS,
    ) -> None:
        """`shift_to_now`: stamp simulator rows with the moment they are sent instead of their own
        event time (rows without an event time of their own - creditcard.csv, synthetic - always
        are). `labels`: which of the rows' labels go out as label events (`all`, `fraud`, `none`),
        each `label_delay_ms` after its transaction in the stamped time."""
        if count is not None and count < 0:
            raise ProducerError("count must be >= 0")
        if labels not in LABEL_CHOICES:
            raise ProducerError(f"labels must be one of {', '.join(LABEL_CHOICES)}")
        if not 0 <= label_delay_ms < MAX_LABEL_DELAY_MS:
            raise ProducerError(
                f"the label delay must be >= 0 and under {MAX_LABEL_DELAY_MS // DAY_MS} days: later "
                "labels miss the terminal features that need them"
            )
        self.shift_to_now = shift_to_now
        self.labels = labels
        self.label_delay_ms = label_delay_ms
        # Per-card order matters for simulator rows (the online features read a card's events in
        # order; a report must follow its transaction): see producer.sender.Batch.one_per_key.
        self.ordered = bool(getattr(source, "ordered_per_card", False))
        self._last_stamp: int | None = None
        if not dry_run and (kinesis_client is None or not stream_name):
            raise ProducerError("a stream name and a Kinesis client are needed unless dry_run")
        self.source = source
        self.count = count
        self.loop = loop
        self.checkpoint = checkpoint
        self.resume = resume
        self.dry_run = dry_run
        self.output = output or sys.stdout
        self.progress = progress or Progress(mode=Mode.SILENT)
        self.handle_sigint = handle_sigint
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._limiter = RateLimiter(rate=rate, clock=clock)
        self._sender = (
            None
            if dry_run
            else KinesisSender(
                client=kinesis_client,
                stream_name=stream_name,
                backoff=backoff,
                sleep=self._sleep_unless_stopped,
                should_stop=self._should_stop,
            )
        )
        self._stop_requested = False
        self._stop_noted = False

    def stop(self) -> None:
        """Ask a running `run()` to stop after its in-flight batch (safe from any thread)."""
        self._stop_requested = True

    def run(self) -> Summary:
        summary = Summary(dry_run=self.dry_run)
        start, already_done, reports_due = self._resume_point()
        watermark = Watermark(start, already_done)
        started = self._clock()
        last_saved = started
        batch = Batch(one_per_key=self.ordered)
        batch_deadline = 0.0
        labels = LabelSchedule(self.labels, self.label_delay_ms)
        labels.restore(reports_due)

        def flush() -> None:
            nonlocal batch, last_saved
            if not batch:
                return
            entries, batch = batch.entries, Batch(one_per_key=self.ordered)

            def accepted(entry: Entry) -> None:
                if entry.report is not None:
                    labels.accepted(entry.report)
                    summary.labels_sent += 1
                else:
                    watermark.done(entry.ticket)
                    summary.sent += 1

            if self._sender is None:
                for entry in entries:
                    self.output.write(entry.data.decode() + "\n")
                    accepted(entry)
            else:
                result = self._sender.send(entries, accepted)
                summary.retried += result.retried
                summary.put_calls += result.calls
            summary.elapsed_seconds = self._clock() - started
            self.progress.update(summary.snapshot())
            if self._clock() - last_saved >= CHECKPOINT_EVERY_SECONDS:
                self._save(watermark)
                last_saved = self._clock()

        def add(entry: Entry) -> None:
            nonlocal batch_deadline
            if not batch.fits(entry):
                flush()
            if not batch:
                batch_deadline = self._clock() + LINGER_SECONDS
            batch.add(entry)
            if batch.full:
                flush()

        def add_labels(reports: list[tuple[int, dict, str]]) -> None:
            for report, event, partition_key in reports:
                add(Entry(LABEL_TICKET, partition_key, encode(event), report))

        try:
            with self._sigint_stops_run():
                taken = 0
                rows = self.source.read(start, loop=self.loop)
                # A source's first read can be slow (SimulatedSource simulates its world then): the
                # clock - the summary's elapsed time and rate - starts again once the rows are ready.
                first_row = list(itertools.islice(rows, 1))
                started = last_saved = self._clock()
                for position, item in itertools.chain(first_row, rows):
                    if self._should_stop() or (self.count is not None and taken >= self.count):
                        break
                    if position in already_done:
                        continue
                    if isinstance(item, Malformed):
                        summary.rejected_rows += 1
                        watermark.done(watermark.issue(position))
                        continue
                    wait = self._limiter.wait_time()
                    if wait > 0 and batch and self._clock() + wait > batch_deadline:
                        flush()
                        wait = self._limiter.wait_time()
                    if wait > 0:
                        self._sleep_unless_stopped(wait)
                        if self._should_stop():
                            break
                    self._limiter.take()
                    stamp = self._stamp(item)
                    add_labels(labels.due(stamp))  # reports due by now go before this transaction
                    event = build_event(
                        item, source_key=self.source.key, loop=position.loop, timestamp_ms=stamp
                    )
                    ticket = watermark.issue(position)
                    add(Entry(ticket, event["card_id"], encode(event)))
                    labels.schedule(item, event, stamp, ticket)
                    taken += 1
                # The run ends here: the reports not yet due are sent now (see producer.labels), after
                # their transactions, and only for transactions Kinesis accepted.
                flush()
                end_ms = self._last_stamp if self._last_stamp is not None else self._now_ms()
                add_labels(labels.drain(end_ms, sent=watermark.is_done))
                flush()
        except KeyboardInterrupt:
            # A second Ctrl-C (or one outside our handler): entries of an interrupted call stay
            # pending, so a resumed run sends them again; the downstream ignores duplicate ids.
            self._stop_requested = True
        finally:
            summary.interrupted = self._stop_requested
            summary.elapsed_seconds = self._clock() - started
            if not self.dry_run:
                summary.resume_at = watermark.checkpoint(
                    source=self.source.key, order=self.source.order
                ).resume_at
                self._save(watermark, labels)
            self.progress.finish(summary.line())
        return summary

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    def _stamp(self, item: Row | SimRow) -> int:
        """The event time a row goes out with: a simulator row's own, unless `shift_to_now`; else the
        moment it is sent, never earlier than the previous record's (the wall clock can step back)."""
        if isinstance(item, SimRow) and not self.shift_to_now:
            stamp = item.timestamp_ms
        else:
            stamp = self._now_ms()
            if self._last_stamp is not None:
                stamp = max(stamp, self._last_stamp)
        if self.shift_to_now or isinstance(item, SimRow):
            self._last_stamp = stamp
        return stamp

    def _resume_point(self) -> tuple[Position, frozenset[Position], tuple[PendingReport, ...]]:
        if not (self.resume and self.checkpoint):
            return Position(), frozenset(), ()
        saved = self.checkpoint.load(source=self.source.key, order=self.source.order)
        if saved is None:
            self.progress.note(f"no checkpoint at {self.checkpoint.path}: starting at the beginning")
            return Position(), frozenset(), ()
        self.progress.note(f"resuming at pass {saved.resume_at.loop}, row {saved.resume_at.offset}")
        return saved.resume_at, saved.done_ahead, saved.pending_reports

    def _save(self, watermark: Watermark, labels: LabelSchedule | None = None) -> None:
        """The checkpoint; with `labels` (when the run ends, however it ends), the reports of accepted
        transactions that Kinesis has not accepted yet (still due, or in a call that failed or never
        went) too. Not in the saves of every second: a day's report delay at a few hundred records/s
        keeps ~10^5 reports due, megabytes to write each time."""
        if self.checkpoint is not None and not self.dry_run:
            checkpoint = watermark.checkpoint(source=self.source.key, order=self.source.order)
            if labels is not None:
                reports = tuple(labels.pending(sent=watermark.is_done))
                checkpoint = dataclasses.replace(checkpoint, pending_reports=reports)
            self.checkpoint.save(checkpoint)

    def _should_stop(self) -> bool:
        # Said here, not in the signal handler: writing to stderr from a handler can collide with
        # a progress write the main thread is in the middle of.
        if self._stop_requested and not self._stop_noted:
            self._stop_noted = True
            self.progress.note("stopping after the in-flight batch (Ctrl-C again to stop at once)")
        return self._stop_requested

    def _sleep_unless_stopped(self, seconds: float) -> None:
        deadline = self._clock() + seconds
        while not self._stop_requested:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._sleep(min(remaining, SLEEP_SLICE_SECONDS))

    @contextmanager
    def _sigint_stops_run(self) -> Iterator[None]:
        """First Ctrl-C: finish the in-flight batch, then stop. Second: stop at once."""
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            yield
            return

        def first_interrupt(signum, frame) -> None:
            self._stop_requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = signal.signal(signal.SIGINT, first_interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def send(
    stream_name: str | None,
    *,
    source: str | Source = "synthetic",
    count: int | None = None,
    rate: float | None = None,
    seed: int = 42,
    loop: bool = False,
    shuffle: bool = False,
    kinesis_client=None,
    endpoint_url: str | None = None,
    region: str | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    shift_to_now: bool = False,
    labels: str = DEFAULT_LABELS,
    label_delay_ms: int = DEFAULT_LABEL_DELAY_MS,
    simulation: SimulationConfig | None = None,
) -> Summary:
    """Send `count` records from `source` ("synthetic", "simulated", a CSV path or a Source) to
    `stream_name`; label events for simulator rows as `Producer` describes.

    Pass a boto3 Kinesis client, or an endpoint URL (e.g. a local moto server) to build one. A
    checkpoint is written only when `checkpoint_path` is given (or `resume` is set, then at the
    default place). Ctrl-C returns a Summary with `interrupted=True` instead of raising.
    """
    if isinstance(source, str):
        source = open_source(source, seed=seed, shuffle=shuffle, simulation=simulation)
    if kinesis_client is None and not dry_run:
        kinesis_client = make_client("kinesis", endpoint_url=endpoint_url, region=region)
    store = None
    if checkpoint_path is not None or resume:
        store = CheckpointStore(checkpoint_path or default_path(source.key, source.order))
    return Producer(
        source=source,
        stream_name=stream_name,
        kinesis_client=kinesis_client,
        count=count,
        rate=rate,
        loop=loop,
        checkpoint=store,
        resume=resume,
        dry_run=dry_run,
        progress=progress,
        shift_to_now=shift_to_now,
        labels=labels,
        label_delay_ms=label_delay_ms,
    ).run()
