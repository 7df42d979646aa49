#!/bin/sh
# The password arrives as an ECS secret in REDIS_PASSWORD (never in the task definition in clear).
# Refuse to start an open server rather than fall back to no authentication.
set -eu
if [ -z "${REDIS_PASSWORD:-}" ]; then
    echo "REDIS_PASSWORD is not set; refusing to start Redis without a password" >&2
    exit 1
fi
# No persistence: this Redis is a cache of scored transactions (see docs/deploy.md).
# Extra arguments (e.g. --maxmemory from the task definition) are passed through.
# docker-entrypoint.sh drops root privileges before starting redis-server.
exec docker-entrypoint.sh redis-server \
    --requirepass "$REDIS_PASSWORD" \
    --save "" \
    --appendonly no \
    --maxmemory-policy noeviction \
    "$@"
