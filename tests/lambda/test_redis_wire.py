"""The scorer's wire (`fraud_scorer.redis_wire`): replies in order, error replies where asked, the
caller's work between sending and reading, and a broken connection reported as redis-py reports it."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
import redis

from fraud_scorer import redis_wire
from fraud_scorer.redis_wire import Wire


@pytest.mark.parametrize("parser", ["hiredis", "pure-python"])
def test_error_replies_stay_in_place_and_the_stream_stays_in_step(redis_client, monkeypatch, parser):
    if parser == "pure-python":  # as with redis-py's own parser: its read_response loop
        monkeypatch.setattr(redis_wire, "NOT_ENOUGH_DATA", None)
    wire = Wire.of(redis_client)
    commands = [("SET", "w:a", "text"), ("INCR", "w:a"), ("GET", "w:a"), ("EVALSHA", "0" * 40, 0)]

    replies = wire.run(commands, errors_in_place=True)

    assert replies[0] == b"OK"
    assert replies[2] == b"text"
    assert isinstance(replies[1], redis.ResponseError)
    assert isinstance(replies[3], redis.exceptions.NoScriptError)  # what the store reloads scripts on
    with pytest.raises(redis.ResponseError):
        wire.run(commands)  # by default an error reply is raised
    assert wire.run([("GET", "w:a")]) == [b"text"]  # and the pool's connection is still usable


def test_the_callers_work_runs_after_the_commands_are_sent(redis_client, redis_url):
    # GIVEN a command and, as the work to do while Redis executes it, a check from another connection
    observer = redis.Redis.from_url(redis_url)
    seen: list[bytes | None] = []

    def while_waiting() -> None:
        deadline = time.monotonic() + 5
        while observer.get("w:sent") is None and time.monotonic() < deadline:
            time.sleep(0.001)
        seen.append(observer.get("w:sent"))

    # WHEN it runs
    replies = Wire.of(redis_client).run([("SET", "w:sent", "1")], while_waiting=while_waiting)

    # THEN the work ran once, after Redis had the command (it saw its effect), before the reply was read
    assert seen == [b"1"]
    assert replies == [b"OK"]


def test_a_reset_connection_is_a_redis_connection_error():
    # GIVEN a server that takes the command and resets the connection (RST) instead of replying
    listener = socket.create_server(("127.0.0.1", 0))

    def reset_after_request() -> None:
        conn, _ = listener.accept()
        while b"PING" not in conn.recv(65536):  # redis-py's own handshake (CLIENT SETINFO) is fine
            conn.sendall(b"+OK\r\n")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    server = threading.Thread(target=reset_after_request, daemon=True)
    server.start()
    client = redis.Redis(port=listener.getsockname()[1], retry=None, protocol=2)

    # WHEN the wire runs a command on it, THEN the caller gets redis-py's ConnectionError (which its
    # `except RedisError` and the retry policy handle), not a bare OSError
    try:
        with pytest.raises(redis.ConnectionError, match="reset"):
            Wire.of(client).run([("PING",)])
    finally:
        server.join(5)
        listener.close()
