"""The Kinesis trigger's defaults: the deployed event source mapping (`stacks/config.py`, each one a
`-c` context key) and the local one the demo and the end-to-end tests run (`demo/pipeline.py`).

A batch fails only when Redis or an endpoint is unavailable: the scorer keeps bad records aside and
never fails them. So the trigger retries through an outage, such as a Redis task's replacement
(minutes), bounded by the records' age, then sends the batch's range to the on-failure queue. With
the former 5 retries, a scorer that fails in ~0.7 s against a dead Redis gave up every record of a
shard during an 8 s outage, and 960 of 3,000 records over a 25 s one (the local trigger).
"""

BATCH_SIZE = 500
BATCHING_WINDOW_SECONDS = 1
RETRY_ATTEMPTS = 10_000  # the largest bounded value: the records' age is the bound that applies
MAX_RECORD_AGE_SECONDS = 3600
