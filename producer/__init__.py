"""`python -m producer`: replay creditcard.csv-shaped rows (or synthetic ones) into a Kinesis stream.

Library use (the local demo calls this in-process):

    from producer import send
    summary = send("my-stream", source="synthetic", count=5000, rate=500, endpoint_url=url)

or build a `Producer` for full control (`Producer(...).run() -> Summary`).
"""

from producer.replay import Producer, Summary, send

__all__ = ["Producer", "Summary", "send"]
