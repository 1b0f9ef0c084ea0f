#!/usr/bin/env bash
# Makes sure the services the several-node tests talk to are up: PostgreSQL on 127.0.0.1:5432
# with a database `test` the `postgres` role can use without a password, and `redis-server`
# (Redis 7) on 127.0.0.1:6379 and on the PATH (tests start private ones too). On the project's
# machines both run already and this only checks; on a fresh Debian machine (as root) it installs
# them from Debian's packages and starts them. The single-node server needs neither.
set -euo pipefail

say() { printf 'services: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    as_root apt-get update -qq >/dev/null && as_root apt-get install -y -qq "$@" >/dev/null
  }
}

# ---- PostgreSQL ---------------------------------------------------------------------------------
if ! command -v pg_isready >/dev/null || ! command -v pg_ctlcluster >/dev/null; then
  say "installing PostgreSQL"
  apt_install postgresql
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting PostgreSQL"
  for version in $(ls /etc/postgresql 2>/dev/null); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { say "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
psql_do() { as_root su postgres -c "psql -qAtX -c \"$1\"" 2>/dev/null; }
if ! psql -qAtX -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  say "preparing database test (trust auth for local TCP connections)"
  if [ -z "$(psql_do "select 1 from pg_database where datname = 'test'")" ]; then
    psql_do "create database test" || true
  fi
  hba="$(psql_do 'show hba_file')"
  if [ -n "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    psql_do 'select pg_reload_conf()' >/dev/null || true
  fi
fi
psql -qAtX -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null \
  || { say "cannot use postgres://postgres@127.0.0.1:5432/test" >&2; exit 1; }
say "PostgreSQL ready (postgres://postgres@127.0.0.1:5432/test)"

# ---- Redis --------------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  say "installing Redis"
  apt_install redis-server
fi
if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != "PONG" ]; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do [ "$(redis-cli ping 2>/dev/null)" = "PONG" ] && break; sleep 0.2; done
fi
[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ] \
  || { say "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }
say "Redis ready (redis://127.0.0.1:6379)"
