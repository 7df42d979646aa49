"""The Redis ACL users (contracts/redis_acl.py) against a real Redis Stack started by the self-hosted
deployment's own start script: `default` is off, the scorer's whole path works as `scorer`, every
dashboard query works as `grafana`, and neither can write where it should not or administer Redis."""

from __future__ import annotations

import inspect
import json
import os
import re
import stat
import subprocess
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import redis

import handler
from contracts import redis_acl
from contracts import redis_keys as keys
from emulators.kinesis_events import kinesis_event
from emulators.redis_stack import ADMIN_USER, RedisStackServer
from fraud_scorer import feature_store
from grafana import queries

# Commands nobody but an operator may run (issue 14: a Grafana Viewer could send any of these).
ADMIN_COMMANDS = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "*"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("ACL", "LIST"),
    ("ACL", "SETUSER", "intruder", "on", ">x", "+@all", "~*"),
    ("ACL", "DELUSER", "scorer"),
    ("KEYS", "*"),
    ("SCAN", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("MODULE", "LIST"),
    ("SAVE",),
    ("BGREWRITEAOF",),
    ("REPLICAOF", "127.0.0.1", "1"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("FT.DROPINDEX", keys.INDEX),
]


@pytest.fixture(scope="module")
def acl_server():
    with RedisStackServer(start_script=True) as server:
        yield server


@pytest.fixture
def admin(acl_server):
    client = redis.Redis.from_url(acl_server.url, decode_responses=True, protocol=2)
    client.flushall()
    client.script_flush()
    client.execute_command("ACL", "LOG", "RESET")
    yield client
    client.close()


@pytest.fixture
def as_scorer(acl_server, scorer_env, monkeypatch, admin):
    """The scorer's environment (conftest's `scorer_env`) pointed at the ACL server as `scorer`."""
    monkeypatch.setenv("REDIS_URL", acl_server.url_for(redis_acl.SCORER_USER))
    handler.reset_container_state()
    yield acl_server
    handler.reset_container_state()


def connect(server: RedisStackServer, user: str) -> redis.Redis:
    return redis.Redis.from_url(server.url_for(user), decode_responses=True, protocol=2)


def now_ms() -> int:
    return int(time.time() * 1000)


def a_batch(make_transaction, prefix: str) -> dict:
    at = now_ms() - 60_000
    return kinesis_event(
        [
            make_transaction(f"{prefix}-fraud", fraud=0.9, timestamp=at),
            make_transaction(f"{prefix}-suspicious", anomaly=9.0, timestamp=at + 1),
            make_transaction(f"{prefix}-legit", timestamp=at + 2),
            b"not json",
        ]
    )


# --- the users themselves ------------------------------------------------------------------------


def test_the_start_script_writes_exactly_the_contract_users(acl_server):
    # GIVEN the ACL file the deployment's start script wrote (plus the emulator's test-only admin)
    acl_file = acl_server.data_dir / "acl" / "users.acl"
    lines = acl_file.read_text().splitlines()
    deployed = [line for line in lines if not line.startswith(f"user {ADMIN_USER} ")]
    # THEN it is the contract's file line for line, holds no clear password and only its owner reads it
    assert "\n".join(deployed) + "\n" == redis_acl.acl_file(acl_server.user_passwords)
    assert not [p for p in acl_server.user_passwords.values() if p in acl_file.read_text()]
    assert stat.S_IMODE(os.stat(acl_file).st_mode) == 0o600


def test_default_user_is_off(acl_server):
    # WHEN a client connects without credentials, or as `default` with any password
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl_server.port).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl_server.port, username="default", password=acl_server.password).ping()
    # THEN the server says so too
    default = redis.Redis.from_url(acl_server.url, decode_responses=True).acl_getuser("default")
    assert "off" in default["flags"]


def test_a_wrong_password_is_refused(acl_server):
    for name in (redis_acl.SCORER_USER, redis_acl.GRAFANA_USER):
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=acl_server.port, username=name, password="not-the-password").ping()


def test_every_key_the_contract_names_is_the_scorers():
    # GIVEN every key and key prefix contracts/redis_keys.py defines (constants, key builders, catalogue)
    named = [
        value
        for name, value in vars(keys).items()
        if isinstance(value, str)
        and name.isupper()
        and (name.endswith(("_PREFIX", "_STREAM", "INDEX", "_KEY")) or name.startswith(("TS_", "LEGACY_")))
    ]
    named += [s.key for s in keys.series_catalog()]
    named += [d for s in keys.series_catalog() for _, d in s.compactions]
    for name, function in vars(keys).items():
        if callable(function) and name.endswith(("_key", "_series")) and inspect.isfunction(function):
            arguments = inspect.signature(function).parameters
            named.append(function(*["x" for _ in arguments]))
    # THEN the scorer's ACL patterns cover each (a new key family needs its pattern in redis_acl.py)
    patterns = redis_acl.SCORER.keys
    uncovered = [k for k in named if not any(fnmatchcase(k, p) or fnmatchcase(k + "x", p) for p in patterns)]
    assert named
    assert uncovered == []


# --- the scorer ------------------------------------------------------------------------------------


def test_the_scorers_whole_path_works_as_its_user(as_scorer, admin, make_transaction, lambda_context):
    # GIVEN a fresh Redis (no schema, no scripts) and a batch with every verdict and a rejected record
    event = a_batch(make_transaction, "t")

    # WHEN the handler runs as `scorer`: schema bootstrap, scripts, documents, series, rejection
    response = handler.handler(event, lambda_context)
    # AND the same batch is replayed (duplicate path), AND once more after Redis lost its scripts
    replay = handler.handler(event, lambda_context)
    admin.script_flush()
    after_flush = handler.handler(a_batch(make_transaction, "u"), lambda_context)
    # AND a batch with a fraud report (label), a reused id with other content, and a v2 event whose
    # features come from the card's and terminal's stored state
    at = now_ms() - 30_000
    mixed = kinesis_event(
        [
            {"type": "label", "transaction_id": "t-fraud", "label": 1, "timestamp": now_ms()},
            make_transaction("t-legit", amount=99.0, timestamp=at),
            {
                "transaction_id": "v2-1",
                "timestamp": at,
                "card_id": "card-v2",
                "terminal_id": "term-v2",
                "amount": 12.5,
            },
        ]
    )
    labelled = handler.handler(mixed, lambda_context)

    # THEN nothing failed and everything is stored once
    assert response == replay == after_flush == labelled == {"batchItemFailures": []}
    assert admin.execute_command("JSON.GET", keys.txn_key("t-fraud"), "$.label") == "[1]"
    assert (
        admin.exists(keys.txn_key("v2-1"), keys.card_state_key("card-v2"), keys.terminal_state_key("term-v2"))
        == 3
    )
    assert sorted(admin.keys(f"{keys.TXN_PREFIX}t-*")) == [
        keys.txn_key("t-fraud"),
        keys.txn_key("t-legit"),
        keys.txn_key("t-suspicious"),
    ]
    # two unreadable records and the reused id, kept aside with its reason
    reasons = sorted(fields["reason"] for _, fields in admin.xrange(keys.REJECTED_STREAM))
    assert reasons == ["duplicate_id_conflict", "not_json", "not_json"]
    assert admin.ts().info(keys.TS_SCORED).total_samples >= 1
    assert admin.execute_command("FT.SEARCH", keys.INDEX, "*", "LIMIT", "0", "0")[0] == 7  # t-*, u-*, v2-1
    # AND Redis logged no refused command on the way (a refused CLIENT SETINFO would be logged too)
    assert admin.execute_command("ACL", "LOG") == []


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_the_scorer_cannot_administer_redis(acl_server, admin, command):
    with pytest.raises(redis.exceptions.NoPermissionError):
        connect(acl_server, redis_acl.SCORER_USER).execute_command(*command)


def test_a_script_runs_with_the_scorers_own_permissions(acl_server, admin):
    # The scorer may EVAL (its state compaction), but a script runs no command the user may not.
    scorer = connect(acl_server, redis_acl.SCORER_USER)
    with pytest.raises(redis.exceptions.ResponseError, match="no permissions to run the 'del' command"):
        scorer.execute_command("EVAL", "return redis.call('DEL', KEYS[1])", "1", keys.card_state_key("c1"))


def test_the_scorer_cannot_touch_keys_outside_its_namespaces(acl_server, admin):
    scorer = connect(acl_server, redis_acl.SCORER_USER)
    for command in (
        ("SET", "other:key", "1"),
        ("JSON.SET", "session:1", "$", "{}"),
        ("JSON.GET", "session:1"),
        ("ZADD", "other:z", "1", "m"),
        ("APPEND", "other:s", "x"),
        ("EVAL", "return redis.call('SET', KEYS[1], '1')", "1", "other:key"),
        ("TS.ADD", "metrics:x", "*", "1"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            scorer.execute_command(*command)


def test_the_scorer_maintains_card_and_terminal_state(acl_server, admin):
    # The feature-state commands the scorer runs (fraud_scorer/feature_store.py), on its key builders.
    scorer = connect(acl_server, redis_acl.SCORER_USER)
    card, terminal = keys.card_state_key("c1"), keys.terminal_state_key("t1")
    assert scorer.execute_command("APPEND", card, "abcd") == 4
    assert scorer.execute_command("PEXPIRE", card, "60000") == 1
    assert scorer.execute_command("MGET", card, terminal) == ["abcd", None]
    assert scorer.execute_command("GET", card) == "abcd"
    # the compaction script: its GET and SET (value still as read), its APPEND and PEXPIRE (not)
    assert (
        scorer.execute_command("EVAL", feature_store.COMPACT_LUA, "1", card, "ab", "4", "new", "60000", "+")
        == 1
    )
    assert (
        scorer.execute_command("EVAL", feature_store.COMPACT_LUA, "1", card, "ab", "3", "x", "60000", "+")
        == 0
    )
    assert scorer.execute_command("GET", card) == "new+"


def test_the_scorer_reads_redis_memory_use_and_still_administers_nothing(acl_server, admin):
    # GIVEN the scorer's user (the memory alarm's metric, fraud_scorer/redis_memory.py)
    scorer = connect(acl_server, redis_acl.SCORER_USER)
    # WHEN it reads INFO memory THEN it gets what the share is computed from, as the admin sees it
    memory = scorer.info("memory")
    assert memory["used_memory"] > 0
    assert memory["maxmemory"] == int(admin.config_get("maxmemory")["maxmemory"])
    # AND INFO is all it gained: no configuration (CONFIG GET would reveal the same and more, CONFIG
    # SET would lift the limit), no flushing, no memory introspection of keys, no other diagnostics
    for command in (
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "0"),
        ("CONFIG", "RESETSTAT"),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("MEMORY", "USAGE", keys.txn_key("x")),
        ("MEMORY", "PURGE"),
        ("LATENCY", "RESET"),
        ("SLOWLOG", "GET"),
        ("CLIENT", "LIST"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            scorer.execute_command(*command)
    assert admin.execute_command("ACL", "DRYRUN", redis_acl.SCORER_USER, "INFO", "memory") == "OK"


def test_the_scorer_publishes_the_memory_share_against_the_deployed_maxmemory(
    as_scorer, admin, make_transaction, lambda_context, capsys
):
    # GIVEN the start script's Redis with the maxmemory the default task definition passes (`494mb`)
    from contracts import metrics as metric_names
    from stacks.redis.self_hosted import maxmemory_mib

    limit_mib = maxmemory_mib(1024)
    admin.config_set("maxmemory", f"{limit_mib}mb")
    capsys.readouterr()
    try:
        # WHEN the handler runs as `scorer`
        assert handler.handler(a_batch(make_transaction, "mem"), lambda_context) == {"batchItemFailures": []}
        out = capsys.readouterr().out
        used = admin.info("memory")["used_memory"]
    finally:
        admin.config_set("maxmemory", "0")

    # THEN its EMF output holds used_memory / maxmemory, the limit read in bytes, and INFO was allowed
    emf = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    (share,) = [b for b in emf if metric_names.REDIS_MEMORY_USED_PERCENT in b]
    assert share[metric_names.REDIS_MEMORY_USED_PERCENT] == [
        pytest.approx(100 * used / (limit_mib * 1024 * 1024), abs=0.01)
    ]
    assert admin.execute_command("ACL", "LOG") == []


def test_a_first_argument_rule_would_not_confine_info_to_one_section(redis_client):
    # Why the contract grants `+info` and not `+info|memory`: INFO has no subcommands, so `info|memory`
    # is a (deprecated) first-argument rule, and Redis checks it against the first section only.
    try:
        redis_client.execute_command("ACL", "SETUSER", "probe", "on", ">pw", "-@all", "+info|memory")
        probe = redis.Redis(
            port=redis_client.connection_pool.connection_kwargs["port"], username="probe", password="pw"
        )
        with pytest.raises(redis.exceptions.NoPermissionError):
            probe.info("server")
        # a second section passes: the rule would promise a confinement it does not give
        assert "redis_version" in probe.execute_command("INFO", "memory", "server")
        probe.close()
    finally:
        redis_client.acl_deluser("probe")


# --- Grafana -----------------------------------------------------------------------------------------


def test_grafana_runs_every_dashboard_query(as_scorer, admin, make_transaction, lambda_context):
    # GIVEN data written by the scorer's own path
    assert handler.handler(a_batch(make_transaction, "g"), lambda_context) == {"batchItemFailures": []}
    grafana = queries.connect(as_scorer.url_for(redis_acl.GRAFANA_USER))

    # WHEN every panel of every dashboard runs its commands as the data source sends them
    results = [
        (panel.title, result)
        for path in queries.dashboard_paths()
        for panel in queries.run_dashboard(grafana, queries.load_dashboard(path), time_from="now-1h")
        for result in panel.results
    ]

    # THEN none is refused (or fails otherwise), and the data the scorer wrote is visible
    assert results
    assert [(title, r.error) for title, r in results if r.error is not None] == []
    assert grafana.ping() is True
    with_data = {title for title, r in results if r.has_data}
    assert {"Transactions scored", "Fraud verdicts", "Latest flagged transactions"} <= with_data


def test_the_chart_renderer_runs_as_the_grafana_user(acl_server, admin, tmp_path):
    # WHEN the PNG renderer logs in as the deployment's read-only Grafana user (it may not list modules)
    result = subprocess.run(
        [sys.executable, "-m", "grafana.render", "--redis-url", acl_server.url_for(redis_acl.GRAFANA_USER)]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    # THEN it draws the dashboards instead of failing on the module check
    assert result.returncode == 0, result.stderr[-2000:]
    charts = list(tmp_path.iterdir())
    assert charts
    assert {p.suffix for p in charts} == {".png"}


WRITES = [
    ("SET", keys.txn_key("x"), "1"),
    ("JSON.SET", keys.txn_key("x"), "$", "{}"),
    ("TS.ADD", keys.TS_SCORED, "*", "1"),
    ("TS.CREATE", "ts:new"),
    ("XADD", keys.REJECTED_STREAM, "*", "reason", "forged"),
    ("DEL", keys.TS_SCORED),
    ("FT.CREATE", "idx:other", "ON", "JSON", "SCHEMA", "$.a", "AS", "a", "NUMERIC"),
    ("SCRIPT", "LOAD", "return 1"),
    ("JSON.GET", keys.txn_key("x")),  # whole documents (card data) are not a dashboard query
    ("GET", keys.txn_key("x")),
    ("INFO", "memory"),  # server statistics: the scorer's memory metric, no dashboard panel's query
]


@pytest.mark.parametrize("command", WRITES + ADMIN_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_grafana_cannot_write_read_documents_or_administer(acl_server, admin, command):
    with pytest.raises(redis.exceptions.NoPermissionError):
        connect(acl_server, redis_acl.GRAFANA_USER).execute_command(*command)


def test_setuser_lines_create_the_same_users_on_a_redis_we_do_not_start(redis_stack, redis_client):
    # GIVEN an existing Redis (the session's), as an operator of an external Redis would have it
    # WHEN the documented ACL SETUSER lines run (docs/deploy.md)
    try:
        for acl_user in redis_acl.USERS:
            redis_client.execute_command(*redis_acl.setuser_command(acl_user, "pw-" + acl_user.name))
            # THEN the user has exactly the contract's commands and keys
            got = redis_client.acl_getuser(acl_user.name)
            rules = got["commands"] if isinstance(got["commands"], str) else " ".join(got["commands"])
            commands = set(re.findall(r"\+(\S+)", rules))
            assert commands == set(acl_user.commands)
            key_rules = got["keys"] if isinstance(got["keys"], str) else " ".join(got["keys"])
            assert set(key_rules.split()) == {f"~{p}" for p in acl_user.keys}
    finally:
        for acl_user in redis_acl.USERS:
            redis_client.acl_deluser(acl_user.name)


# --- the documentation says what the contract says --------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_deploy_guides_acl_lines_are_the_contracts():
    lines = [line.strip() for line in (DOCS / "deploy.md").read_text().splitlines()]
    documented = [line for line in lines if line.startswith("ACL SETUSER ")]
    assert documented == [
        " ".join(redis_acl.setuser_command(u, f"{u.name.upper()}_PASSWORD")) for u in redis_acl.USERS
    ]


def test_the_redis_guides_user_table_is_the_contracts():
    text = (DOCS / "redis.md").read_text()
    for acl_user in redis_acl.USERS:
        (row,) = [line for line in text.splitlines() if line.startswith(f"| `{acl_user.name}` |")]
        _, commands, patterns, _ = row.split(" | ")
        assert re.findall(r"`([^`]+)`", commands) == list(acl_user.commands)
        named = re.findall(r"`([^`]+)`", patterns)
        assert set(named) <= set(acl_user.keys)
