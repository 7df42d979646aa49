"""`python -m producer`: send simulated transactions (the simulator, or a simulator CSV) and their
fraud reports (label events), or creditcard.csv-shaped rows, into a Kinesis stream.

Library use (the local demo calls this in-process):

    from producer import send
    summary = send("my-stream", source="sim.csv", count=5000, rate=500, shift_to_now=True, endpoint_url=url)

or build a `Producer` for full control (`Producer(...).run() -> Summary`).
"""

from producer.replay import Producer, Summary, send

__all__ = ["Producer", "Summary", "send"]
