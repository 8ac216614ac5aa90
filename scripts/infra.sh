#!/usr/bin/env bash
# Ensures NATS (with JetStream) on 127.0.0.1:4222 and PostgreSQL on 127.0.0.1:5432 (user postgres,
# no password) are running: reuses them when they are, installs (apt-get) and starts them when not.
# Writes the names of what it started to .run/started-infra so `make run` can stop exactly those.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
: > .run/started-infra

log() { printf '\033[1m[infra]\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else log "need root for: $*"; exit 1; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  log "$2 did not come up on port $1"; return 1
}

# --- tools the scripts use --------------------------------------------------------------------
for tool in curl jq; do command -v "$tool" >/dev/null || apt_install "$tool"; done

# --- NATS with JetStream ------------------------------------------------------------------
if port_open 4222; then
  log "NATS already running on 127.0.0.1:4222; reusing it"
else
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  as_root mkdir -p /var/lib/nats-server
  log "starting NATS with JetStream"
  as_root start-stop-daemon --start --oknodo --background --exec "$nats_bin" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
  echo nats >> .run/started-infra
fi

# --- PostgreSQL ------------------------------------------------------------------------------
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_isready >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  if ! port_open 5432; then apt_install postgresql postgresql-client; fi
fi
if pg_ready || port_open 5432; then
  log "PostgreSQL already running on 127.0.0.1:5432; reusing it"
else
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
  echo postgres >> .run/started-infra
fi
# Lifeline connects as postgres without a password on loopback (a development setup). A fresh
# Debian cluster asks for one; allow trust on loopback only.
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$hba" ] && ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    log "allowing passwordless loopback connections for user postgres in $hba (development only)"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload
    sleep 1
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null || { log "cannot connect to PostgreSQL as postgres on 127.0.0.1"; exit 1; }
fi
# psql and pgbench (make bench-refresh compares with Postgres' raw update rate).
command -v pgbench >/dev/null || apt_install postgresql-client
log "infrastructure ready"
