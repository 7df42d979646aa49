"""The Kinesis trigger's defaults: the deployed event source mapping (`stacks/config.py`, each one a
`-c` context key) and the local one the demo and the end-to-end tests run (`demo/pipeline.py`).

A batch fails only when Redis or an endpoint is unavailable: the scorer keeps bad records aside and
never fails them. So the trigger retries through an outage, such as a Redis task's replacement
(minutes), bounded by the records' age, then sends the batch's range to the on-failure queue. With
5 retries, a scorer that fails in ~1 s against a dead Redis gave its records up 5 s into an outage
(measured with the local trigger).
"""

BATCH_SIZE = 500
BATCHING_WINDOW_SECONDS = 1
RETRY_ATTEMPTS = 10_000  # the largest bounded value: the records' age is the bound that applies
MAX_RECORD_AGE_SECONDS = 3600
