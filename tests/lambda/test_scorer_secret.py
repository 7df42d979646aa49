"""Redis connection from a Secrets Manager secret (moto server), including a password rotation."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid

import boto3
import pytest
import redis

import handler
from emulators.kinesis_events import kinesis_event


@pytest.fixture
def secrets(moto_url, scorer_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_url)
    return boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def scorer_user(redis_stack, redis_client):
    """An ACL user on the test Redis, removed afterwards (FLUSHALL keeps ACL users)."""
    name = f"scorer-{uuid.uuid4().hex[:8]}"
    redis_client.acl_setuser(
        name, enabled=True, passwords=["+first-password"], keys="*", channels="*", commands=["+@all"]
    )
    yield name
    redis_client.acl_deluser(name)


def use_secret(monkeypatch, secrets, redis_stack, user: str, password: str) -> str:
    value = {
        "host": "127.0.0.1",
        "port": redis_stack.port,
        "username": user,
        "password": password,
        "tls": False,
    }
    arn = secrets.create_secret(Name=f"redis-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(value))["ARN"]
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("REDIS_SECRET_ARN", arn)
    handler.reset_container_state()
    return arn


def test_secret_provides_the_connection(
    monkeypatch, secrets, redis_stack, scorer_user, redis_client, make_transaction, lambda_context
):
    # GIVEN only a secret ARN in the environment
    use_secret(monkeypatch, secrets, redis_stack, scorer_user, "first-password")

    # WHEN
    response = handler.handler(kinesis_event([make_transaction("via-secret")]), lambda_context)

    # THEN the write happened as the secret's user
    assert response == {"batchItemFailures": []}
    assert redis_client.json().get("txn:via-secret", "$.verdict") == ["legit"]
    assert any(client["user"] == scorer_user for client in redis_client.client_list())


def test_rotated_password_is_fetched_again_once(
    monkeypatch, secrets, redis_stack, scorer_user, redis_client, make_transaction, lambda_context
):
    # GIVEN a warm container connected with the first password
    arn = use_secret(monkeypatch, secrets, redis_stack, scorer_user, "first-password")
    assert handler.handler(kinesis_event([make_transaction("before")]), lambda_context) == {
        "batchItemFailures": []
    }

    # WHEN the password is rotated in Redis and in the secret, and its connections are dropped
    redis_client.acl_setuser(scorer_user, enabled=True, reset_passwords=True, passwords=["+second-password"])
    new_value = {
        "host": "127.0.0.1",
        "port": redis_stack.port,
        "username": scorer_user,
        "password": "second-password",
        "tls": False,  # the rotation keeps it: a secret without "tls" means TLS
    }
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(new_value))
    redis_client.client_kill_filter(user=scorer_user)
    response = handler.handler(kinesis_event([make_transaction("after")]), lambda_context)

    # THEN the handler re-read the secret after the auth failure and stored the record
    assert response == {"batchItemFailures": []}
    assert redis_client.json().get("txn:after", "$.transaction_id") == ["after"]


@pytest.mark.timeout(60)
def test_wrong_password_everywhere_fails_the_batch_without_looping(
    monkeypatch, secrets, redis_stack, scorer_user, redis_client, make_transaction, lambda_context
):
    # GIVEN a secret whose password Redis does not accept
    use_secret(monkeypatch, secrets, redis_stack, scorer_user, "not-the-password")
    event = kinesis_event([make_transaction("nope")])

    # WHEN / THEN every record is reported for retry, and nothing is stored
    assert handler.handler(event, lambda_context) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]
    }
    assert redis_client.keys("txn:*") == []


def test_the_password_never_reaches_the_logs(
    monkeypatch, secrets, redis_stack, scorer_user, make_transaction, lambda_context, caplog
):
    use_secret(monkeypatch, secrets, redis_stack, scorer_user, "not-the-password")
    with caplog.at_level(logging.DEBUG):
        handler.handler(kinesis_event([make_transaction("x")]), lambda_context)
    # Our loggers only: botocore's own DEBUG output echoes API responses by design (off in Lambda).
    ours = [r for r in caplog.records if r.name.startswith("fraud-scorer")]
    assert any(r.getMessage() == "redis unavailable, batch to be retried" for r in ours)
    assert not any("not-the-password" in json.dumps(r.__dict__, default=str) for r in ours)


def test_tls_secret_verifies_certificates():
    from fraud_scorer.redis_connection import client_from_secret

    client = client_from_secret({"host": "redis.example", "port": 6380, "password": "p", "tls": True})
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    assert client.connection_pool.connection_class is redis.SSLConnection


REDIS_CLOUD = {"host": "redis-12345.c1.us-east-1-2.ec2.cloud.redislabs.com", "port": 12345, "password": "p"}


@pytest.mark.parametrize(
    ("tls", "connection_class"),
    [
        pytest.param(..., redis.SSLConnection, id="absent-means-tls"),  # never plain text by omission
        pytest.param(True, redis.SSLConnection, id="true"),
        pytest.param("false", redis.Connection, id="text-false"),  # bool("false") would be True
        pytest.param(False, redis.Connection, id="false"),
    ],
)
def test_a_secret_means_tls_unless_it_says_tls_false(tls, connection_class):
    from fraud_scorer.redis_connection import client_from_secret

    secret = REDIS_CLOUD if tls is ... else {**REDIS_CLOUD, "tls": tls}
    assert client_from_secret(secret).connection_pool.connection_class is connection_class


def test_an_unusable_or_unreadable_secret_fails_the_batch_for_retry(
    monkeypatch, secrets, redis_stack, scorer_user, make_transaction, lambda_context
):
    # GIVEN a secret whose "tls" is neither true nor false, then one that does not exist
    arn = use_secret(monkeypatch, secrets, redis_stack, scorer_user, "first-password")
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"host": "127.0.0.1", "tls": "maybe"}))
    handler.reset_container_state()
    event = kinesis_event([make_transaction("s1")])
    retried = {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]}

    # WHEN / THEN each is a partial-batch answer (the records are retried), not a failed invocation
    assert handler.handler(event, lambda_context) == retried
    monkeypatch.setenv("REDIS_SECRET_ARN", arn + "-gone")
    handler.reset_container_state()
    assert handler.handler(event, lambda_context) == retried


@pytest.mark.timeout(60)
def test_a_secrets_manager_that_never_answers_is_given_up_in_seconds(monkeypatch, scorer_env):
    from fraud_scorer.redis_connection import RedisConnector

    # GIVEN an endpoint that accepts connections and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{silent.getsockname()[1]}")
    handler.reset_container_state()
    connector = RedisConnector(secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-AbCdEf")

    # WHEN the scorer needs its secret THEN it gets a redis ConnectionError (the batch's records are
    # retried) within seconds, not botocore's default 60 s per attempt
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError, match="secret could not be read"):
        connector.client()
    silent.close()
    assert time.monotonic() - started < 15
