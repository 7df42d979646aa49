#!/bin/sh
# Start the self-hosted Redis: ACL users from the task's environment, append-only file on /data (EFS).
#
# - Users (contracts/redis_acl.py, passed by the task definition): REDIS_ACL_USERS names them,
#   REDIS_ACL_RULES_<NAME> holds each one's rules, REDIS_ACL_DEFAULT_RULES the default user's (off).
#   Each password arrives as an ECS secret from Secrets Manager in REDIS_PASSWORD_<NAME>; only its
#   SHA-256 is written, into an ACL file readable by the Redis user alone. Refuse to start with a
#   user missing its password or rules rather than fall back to an open server.
# - Persistence: append-only file, fsynced before Redis replies (`always`), so nothing acknowledged
#   is lost even if the machine dies. The task definition may pass `--appendfsync everysec` instead
#   (faster; a crash can then lose up to ~2 s of acknowledged writes: with everysec Redis postpones
#   the write while a background fsync is in flight, and still replies). No RDB snapshots besides
#   the AOF's own preamble.
# - Extra arguments (e.g. --maxmemory from the task definition; --port/--dir in the local tests) are
#   passed through last, so they win.
# - docker-entrypoint.sh (redis image) loads Redis 8's bundled modules (JSON, search, time series);
#   the container already runs as the unprivileged `redis` user, so it drops nothing.
set -eu

fail() {
    echo "start-redis: $*" >&2
    exit 1
}

DATA_DIR="${REDIS_DATA_DIR:-/data}"
ACL_DIR="${REDIS_ACL_DIR:-/run/redis}"
command -v sha256sum >/dev/null || fail "sha256sum is missing"
sha256() { printf '%s' "$1" | sha256sum | cut -d ' ' -f 1; }

umask 077
mkdir -p "$ACL_DIR"
acl_file="$ACL_DIR/users.acl"
tmp_file="$acl_file.tmp"
if [ -z "${REDIS_ACL_USERS:-}" ]; then
    # Local docker-compose only (docker-compose.yml, bound to 127.0.0.1): one password for the
    # default user. The deployment always sets REDIS_ACL_USERS (tests/infra assert it).
    [ -n "${REDIS_PASSWORD:-}" ] ||
        fail "neither REDIS_ACL_USERS (deployment) nor REDIS_PASSWORD (docker-compose) is set; refusing to start Redis without a password"
    printf 'user default on #%s ~* &* +@all\n' "$(sha256 "$REDIS_PASSWORD")" >"$tmp_file"
    unset REDIS_PASSWORD
    REDIS_ACL_USERS=""
else
    [ -n "${REDIS_ACL_DEFAULT_RULES:-}" ] || fail "REDIS_ACL_DEFAULT_RULES is not set"
    printf 'user default %s\n' "$REDIS_ACL_DEFAULT_RULES" >"$tmp_file"
fi
for name in $REDIS_ACL_USERS; do
    case "$name" in
    *[!a-z]* | "") fail "invalid user name '$name' in REDIS_ACL_USERS" ;;
    esac
    upper=$(printf '%s' "$name" | tr 'a-z' 'A-Z')
    # Indirect expansion; $upper is [A-Z]+ (checked above), so eval only ever sees a variable name.
    eval "password=\${REDIS_PASSWORD_$upper:-}"
    eval "rules=\${REDIS_ACL_RULES_$upper:-}"
    [ -n "$password" ] || fail "REDIS_PASSWORD_$upper is not set; refusing to start user '$name' without a password"
    [ -n "$rules" ] || fail "REDIS_ACL_RULES_$upper is not set"
    printf 'user %s on #%s %s\n' "$name" "$(sha256 "$password")" "$rules" >>"$tmp_file"
    # Redis itself never needs the clear password: keep it out of the server's environment.
    unset "REDIS_PASSWORD_$upper"
done
unset password
mv "$tmp_file" "$acl_file"

exec docker-entrypoint.sh redis-server \
    --aclfile "$acl_file" \
    --dir "$DATA_DIR" \
    --appendonly yes \
    --appendfsync always \
    --appenddirname appendonlydir \
    --save "" \
    --maxmemory-policy noeviction \
    "$@"
