"""Who may do what in Redis (issue 14.1): the ACL users of the deployment, in ONE place.

- `scorer`: the scoring Lambda. Only the commands its path runs (schema bootstrap, the stored Lua
  scripts and what they call, feature state, labels, latency samples, `INFO` for the memory alarm)
  on the keys `contracts.redis_keys` names; `EVAL` only for the feature state's compaction script, on
  those keys. No KEYS/SCAN, no FLUSH*, CONFIG, ACL, DEBUG or MODULE.
- `grafana`: the Grafana data source. Only the read commands the dashboards' panels send
  (`grafana/queries.py` builds them), read-only on the keys they read. Any Grafana user can send any
  command string through the data source, so this list is what a Grafana Viewer can do to Redis.
- `default`: disabled, so a client without credentials (or with the old shared password) gets nothing.

Used by the self-hosted Redis's start script (the construct passes `start_script_environment()` to the
task; the script adds each user's password hash from Secrets Manager), by docs/deploy.md's lines for
an external Redis (`setuser_command`) and by the tests that run the scorer and every dashboard query
as these users against a real Redis Stack. Standard library only (shipped like every contract).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from contracts import redis_keys as keys

SCORER_USER = "scorer"
GRAFANA_USER = "grafana"

# Series the scorer creates under one prefix (the catalogue's keys and their compactions).
TS_PREFIX = "ts:"
LEGACY_SERIES = (keys.LEGACY_ALL, keys.LEGACY_FRAUD, keys.LEGACY_NOT_FRAUD)

# The default user: off and without any password, so no client can ever log in as it (a new
# connection starts unauthenticated and can only AUTH as scorer or grafana).
# It keeps its permissions on purpose: Redis replays the append-only file as the default user, and
# EXEC re-checks that user's ACL; Lua scripts' effects are in the AOF as MULTI/EXEC, so a default user
# without permissions makes a restart silently drop every transaction the scorer stored (reproduced
# on the local Redis 7.4 by tests/emulators/test_redis_durability.py; redis/redis#14541, fixed by
# #14545, backported to 8.4 after the 8.4.0 we pin; external Redis versions vary).
DEFAULT_USER_RULES = ("off", "resetpass", "resetkeys", "resetchannels", "~*", "&*", "+@all")


@dataclass(frozen=True)
class AclUser:
    name: str
    # Exact commands (`container|subcommand` for one subcommand only); nothing else, no categories.
    # What a user can do to a key is bounded by these: a user without write commands cannot write.
    commands: tuple[str, ...]
    # Key patterns (`~pattern`) the commands may touch. Not `%R~` (read-only keys) even for Grafana:
    # RedisTimeSeries before 8.4 (the local Redis Stack 7.4) declares TS.RANGE's key as read-write,
    # so a read-only pattern refuses the dashboards' main query; its command list keeps it read-only.
    keys: tuple[str, ...] = ()

    def rules(self) -> tuple[str, ...]:
        """ACL rules after the password: no pub/sub channels, nothing but the listed commands and keys."""
        return (
            "resetkeys",
            "resetchannels",
            "-@all",
            *(f"+{command}" for command in self.commands),
            *(f"~{pattern}" for pattern in self.keys),
        )

    def rules_text(self) -> str:
        return " ".join(self.rules())


SCORER = AclUser(
    name=SCORER_USER,
    commands=(
        # connection: redis-py's health check and the library name it announces on connect
        "ping",
        "client|setinfo",
        # the memory alarm's metric (fraud_scorer/redis_memory.py): `INFO memory`, once a minute. The
        # whole command, not `info|memory`: for a command without subcommands that is a deprecated
        # first-argument rule which Redis checks against the first section only, so `INFO memory
        # server` passes it anyway (tests/emulators/test_redis_acl_users.py shows both). INFO reveals
        # server statistics (version, counts, memory, replication), never keys' names or values.
        "info",
        # schema bootstrap (fraud_scorer/schema.py)
        "ft.create",
        "ts.create",
        "ts.createrule",
        "ts.info",
        # the stored Lua scripts (fraud_scorer/store.py), loaded once and run by SHA;
        # scripts run with the caller's permissions, so the commands they call are listed too
        "script|load",
        "evalsha",
        # transaction documents: stored NX with their retention, content hash read back for reused ids,
        # labels set on them
        "json.set",
        "json.get",
        "pexpire",
        # time series samples
        "ts.madd",
        "ts.add",
        # rejected records: the per-record "seen" gate and the stream
        "set",
        "xadd",
        # per-card / per-terminal feature state (strings of records, fraud_scorer/feature_store.py):
        # read with MGET (GET on a cluster), written with APPEND and PEXPIRE, compacted by a script
        # sent with EVAL that GETs the value, checks its start and length, and SETs it
        "mget",
        "get",
        "append",
        "eval",
    ),
    keys=(
        f"{keys.TXN_PREFIX}*",
        f"{keys.CARD_PREFIX}*",
        f"{keys.TERMINAL_PREFIX}*",
        keys.REJECTED_STREAM,
        f"{keys.REJECTED_SEEN_PREFIX}*",
        keys.INDEX,  # the search index's name counts as a key for FT.* permissions
        f"{TS_PREFIX}*",
        *LEGACY_SERIES,
    ),
)

GRAFANA = AclUser(
    name=GRAFANA_USER,
    commands=(
        "ping",  # the data source's health check
        "ts.range",
        "ts.mrange",
        "xlen",
        "xrevrange",
        "ft.search",
    ),
    # Not the card/terminal feature state, not the rejected records' "seen" keys.
    keys=(
        f"{TS_PREFIX}*",
        *LEGACY_SERIES,
        keys.REJECTED_STREAM,
        keys.INDEX,
        # FT.SEARCH returns the documents' fields; read access to them keeps it working on Redis
        # versions that check the index's key prefix too.
        f"{keys.TXN_PREFIX}*",
    ),
)

USERS: tuple[AclUser, ...] = (SCORER, GRAFANA)


def user(name: str) -> AclUser:
    for candidate in USERS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no Redis ACL user {name!r}; known: {', '.join(u.name for u in USERS)}")


def password_hash(password: str) -> str:
    """The `#<sha256>` form Redis accepts in ACL files: the password itself is never written."""
    return hashlib.sha256(password.encode()).hexdigest()


def acl_file(passwords: Mapping[str, str]) -> str:
    """The ACL file for `passwords` (user name -> password; every user of `USERS` needs one).

    The self-hosted start script writes the same lines with the same rules (from
    `start_script_environment`); the local tests compare the two.
    """
    missing = [u.name for u in USERS if not passwords.get(u.name)]
    if missing:
        raise ValueError(f"no password for Redis user(s) {', '.join(missing)}")
    lines = [" ".join(("user", "default", *DEFAULT_USER_RULES))]
    for acl_user in USERS:
        lines.append(
            f"user {acl_user.name} on #{password_hash(passwords[acl_user.name])} {acl_user.rules_text()}"
        )
    return "\n".join(lines) + "\n"


def setuser_command(acl_user: AclUser, password: str) -> list[str]:
    """`ACL SETUSER` arguments that (re)create the user exactly: `reset` first, so it is idempotent."""
    return ["ACL", "SETUSER", acl_user.name, "reset", "on", f">{password}", *acl_user.rules()]


# --- the self-hosted start script's environment (stacks/redis/image/start-redis.sh) ---------------

ENV_USERS = "REDIS_ACL_USERS"
ENV_DEFAULT_RULES = "REDIS_ACL_DEFAULT_RULES"


def rules_env(name: str) -> str:
    return f"REDIS_ACL_RULES_{name.upper()}"


def password_env(name: str) -> str:
    """The variable the password arrives in (an ECS secret from Secrets Manager, never a plain value)."""
    return f"REDIS_PASSWORD_{name.upper()}"


def start_script_environment() -> dict[str, str]:
    """Plain (non-secret) variables telling the start script which users to create with which rules."""
    env = {ENV_USERS: " ".join(u.name for u in USERS), ENV_DEFAULT_RULES: " ".join(DEFAULT_USER_RULES)}
    for acl_user in USERS:
        env[rules_env(acl_user.name)] = acl_user.rules_text()
    return env
