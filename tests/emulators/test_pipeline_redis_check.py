"""The pipeline refuses, at once and clearly, a Redis that lacks the modules the scorer needs."""

from __future__ import annotations

import pytest

from demo.pipeline import LocalPipeline, PipelineSettings
from emulators.redis_stack import free_port


def test_a_redis_without_the_modules_is_refused_before_anything_starts(redis_without_modules):
    pipeline = LocalPipeline(PipelineSettings(redis_url=redis_without_modules), models=object())

    with pytest.raises(RuntimeError, match="lacks ReJSON, Search, TimeSeries"):
        pipeline.start()
    assert pipeline.trigger is None
    assert not pipeline.kinesis.running


def test_the_stack_server_passes_the_check_and_a_refusal_names_the_url(redis_url):
    from demo.pipeline import check_redis

    # GIVEN the session's Redis Stack WHEN the pipeline checks it THEN it is accepted (None, no raise)
    assert check_redis(redis_url) is None
    # GIVEN nothing listening WHEN checked THEN the refusal says which Redis could not be used
    with pytest.raises(RuntimeError, match="cannot use the Redis at REDIS_URL"):
        check_redis(f"redis://127.0.0.1:{free_port()}/0")
