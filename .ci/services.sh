#!/usr/bin/env bash
# Brings up what the integration tests need, idempotently, on a machine of kind node-svc:
#   - PostgreSQL 15 test cluster on 127.0.0.1:${DBOPT_TEST_PG_PORT:-55432} with
#     pg_stat_statements preloaded and HypoPG available (Debian postgresql-15-hypopg)
#   - Redis on 127.0.0.1:${DBOPT_TEST_REDIS_PORT:-6379}
# A dedicated cluster (initdb) leaves the machine's own PostgreSQL on 5432 untouched.
set -euo pipefail

PG_PORT="${DBOPT_TEST_PG_PORT:-55432}"
REDIS_PORT="${DBOPT_TEST_REDIS_PORT:-6379}"
PG_VERSION="${DBOPT_TEST_PG_VERSION:-15}"
PG_BIN="/usr/lib/postgresql/${PG_VERSION}/bin"
PG_DATA="${DBOPT_TEST_PG_DATA:-/var/tmp/dbopt-test-pg-${PG_PORT}}"
PG_LOG="${PG_DATA}.log"

log() { printf '[services] %s\n' "$*"; }

as_postgres() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_hypopg() {
  if [ -f "/usr/share/postgresql/${PG_VERSION}/extension/hypopg.control" ]; then return; fi
  if [ "$(id -u)" != "0" ]; then
    log "HypoPG is not installed and this is not root: run 'sudo apt-get install postgresql-${PG_VERSION}-hypopg'"
    return
  fi
  log "installing postgresql-${PG_VERSION}-hypopg"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-${PG_VERSION}-hypopg" >/dev/null
}

start_postgres() {
  if [ ! -x "${PG_BIN}/initdb" ]; then
    log "PostgreSQL ${PG_VERSION} binaries not found in ${PG_BIN}"; exit 1
  fi
  if [ ! -s "${PG_DATA}/PG_VERSION" ]; then
    log "initdb ${PG_DATA}"
    mkdir -p "${PG_DATA}"
    chown postgres:postgres "${PG_DATA}" 2>/dev/null || true
    chmod 700 "${PG_DATA}"
    as_postgres "${PG_BIN}/initdb" -D "${PG_DATA}" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"${PG_DATA}/postgresql.conf" <<CONF
# dbopt test cluster
listen_addresses = '127.0.0.1'
port = ${PG_PORT}
unix_socket_directories = '${PG_DATA}'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
# Every test file shares one cluster-wide pg_stat_statements: room for all of them, so that no
# test's statements are evicted (deallocated) by another's while it runs.
pg_stat_statements.max = 20000
compute_query_id = on
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi
  if as_postgres "${PG_BIN}/pg_ctl" -D "${PG_DATA}" status >/dev/null 2>&1; then
    log "PostgreSQL test cluster already running on ${PG_PORT}"
  else
    touch "${PG_LOG}" && chown postgres:postgres "${PG_LOG}" 2>/dev/null || true
    as_postgres "${PG_BIN}/pg_ctl" -D "${PG_DATA}" -l "${PG_LOG}" -w -t 60 start >/dev/null
    log "PostgreSQL test cluster started on ${PG_PORT}"
  fi
  # Clusters created before the setting existed get it now (it needs a restart).
  if [ "$("${PG_BIN}/psql" -h 127.0.0.1 -p "${PG_PORT}" -U postgres -d postgres -tAc \
    'SHOW pg_stat_statements.max')" != "20000" ]; then
    "${PG_BIN}/psql" -h 127.0.0.1 -p "${PG_PORT}" -U postgres -d postgres -qc \
      'ALTER SYSTEM SET pg_stat_statements.max = 20000' >/dev/null
    as_postgres "${PG_BIN}/pg_ctl" -D "${PG_DATA}" -l "${PG_LOG}" -w -t 60 restart >/dev/null
    log "PostgreSQL test cluster restarted with pg_stat_statements.max = 20000"
  fi
  for db in dbopt_test; do
    if ! "${PG_BIN}/psql" -h 127.0.0.1 -p "${PG_PORT}" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '${db}'" | grep -q 1; then
      "${PG_BIN}/createdb" -h 127.0.0.1 -p "${PG_PORT}" -U postgres "${db}"
    fi
  done
  "${PG_BIN}/psql" -h 127.0.0.1 -p "${PG_PORT}" -U postgres -d dbopt_test -qc \
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null | grep -q PONG; then
    log "Redis already running on ${REDIS_PORT}"; return
  fi
  if ! command -v redis-server >/dev/null; then log "redis-server not found"; exit 1; fi
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port "${REDIS_PORT}" --save "" \
    --appendonly no --dir /tmp --logfile "/tmp/dbopt-redis-${REDIS_PORT}.log"
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  log "Redis started on ${REDIS_PORT}"
}

install_hypopg
start_postgres
start_redis
