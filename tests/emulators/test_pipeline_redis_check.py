"""The pipeline refuses, at once and clearly, a Redis that lacks the modules the scorer needs."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import redis

from demo.pipeline import LocalPipeline, PipelineSettings
from emulators.redis_stack import LIBSSL_DIR, free_port, server_paths


@pytest.fixture
def bare_redis(tmp_path):
    """The same redis-server binary, without the JSON, Search and TimeSeries modules."""
    port = free_port()
    env = dict(os.environ)
    if LIBSSL_DIR.is_dir():
        env["LD_LIBRARY_PATH"] = str(LIBSSL_DIR)
    server, _ = server_paths()
    process = subprocess.Popen(
        [str(server), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


def test_a_redis_without_the_modules_is_refused_before_anything_starts(bare_redis):
    pipeline = LocalPipeline(PipelineSettings(redis_url=bare_redis), models=object())

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
