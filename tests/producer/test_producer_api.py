"""The library API the local demo calls in-process: `producer.send(...) -> Summary`."""

from __future__ import annotations

import threading

import pytest

from producer import Producer, send
from producer.errors import ProducerError
from producer.source import SyntheticSource


class RecordingProgress:
    def __init__(self) -> None:
        self.snapshots, self.notes, self.summary = [], [], None

    def update(self, snapshot) -> None:
        self.snapshots.append(snapshot)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def finish(self, summary_line: str) -> None:
        self.summary = summary_line


def test_send_by_endpoint_url_with_progress_hook_and_resume(moto_url, stream, read_stream, tmp_path):
    # GIVEN the library API pointed at moto by URL, with a checkpoint file and a progress hook
    progress = RecordingProgress()
    checkpoint = tmp_path / "cp.json"
    # WHEN it sends 700 records, then resumes for 300 more
    first = send(
        stream, count=700, seed=5, endpoint_url=moto_url, checkpoint_path=checkpoint, progress=progress
    )
    second = send(stream, count=300, seed=5, endpoint_url=moto_url, checkpoint_path=checkpoint, resume=True)
    # THEN the stream holds ids 0..999 once each, and the hook saw the counts grow to the summary
    ids = sorted(r["event"]["transaction_id"] for r in read_stream(stream))
    assert ids == [f"synthetic-5-{i:06d}" for i in range(1000)]
    assert (first.sent, second.sent, first.retried, first.rejected_rows) == (700, 300, 0, 0)
    assert [s.sent for s in progress.snapshots] == [500, 700]
    assert progress.summary.startswith("700 records sent")
    assert not first.interrupted


def test_an_endpoint_url_without_a_scheme_is_a_clear_error(moto_url):
    # botocore's own error is a bare ValueError, a traceback in any CLI that calls send()
    schemeless = moto_url.removeprefix("http://")
    with pytest.raises(ProducerError, match=f"'{schemeless}' is not an endpoint URL; .* e.g. http://"):
        send("s", count=1, endpoint_url=schemeless)


def test_stop_from_another_thread_ends_an_endless_run_cleanly(kinesis, stream, read_stream):
    # GIVEN an endless synthetic run whose progress hook asks it to stop after the second batch
    class StopAfterTwoBatches(RecordingProgress):
        def update(self, snapshot) -> None:
            super().update(snapshot)
            if len(self.snapshots) == 2:
                threading.Thread(target=producer.stop).start()

    producer = Producer(
        source=SyntheticSource(seed=6),
        stream_name=stream,
        kinesis_client=kinesis,
        progress=StopAfterTwoBatches(),
    )
    # WHEN it runs
    summary = producer.run()
    # THEN it stopped at a batch boundary with everything it counted in the stream
    assert summary.interrupted
    assert summary.sent == len(read_stream(stream)) >= 1000
