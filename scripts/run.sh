#!/usr/bin/env bash
# `make run`: the whole system locally — infrastructure, the platform simulator, the four
# services and demo data — until Ctrl-C, which stops what this script started and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
log() { printf '\033[1m[run]\033[0m %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for port in 8025 8080 8081 8082 8083 8090 8091 8092; do
  if port_open "$port"; then
    log "port $port is in use (is another 'make run' still running?); stop it first"
    exit 1
  fi
done

bash scripts/infra.sh
log "building (cargo build --workspace --bins)"
cargo build --workspace --bins --quiet
# Cargo may build elsewhere (CARGO_TARGET_DIR, build.target-dir in a cargo config): ask it.
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
bin=$target_dir/debug

# Secrets are generated once per checkout and never committed (.run is ignored by git).
mkdir -p .run/logs
platforms="x linkedin instagram facebook youtube tiktok threads"
touch .run/secrets.env
chmod 600 .run/secrets.env
rand() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }
add_secret() { grep -q "^$1=" .run/secrets.env || echo "$1=$2" >> .run/secrets.env; }
add_secret LIFELINE_JWT_SECRET "$(rand 48)"
add_secret LIFELINE_VAULT_KEYS "k1:$(rand 32)"
for p in $platforms; do
  P=$(echo "$p" | tr a-z A-Z)
  secret=$(rand 24 | tr '+/' '-_')
  add_secret "LIFELINE_${P}_CLIENT_SECRET" "$secret"
  add_secret "SIM_${P}_CLIENT_SECRET" "$(grep "^LIFELINE_${P}_CLIENT_SECRET=" .run/secrets.env | cut -d= -f2-)"
done
set -a
# shellcheck disable=SC1091
. .run/secrets.env
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lifeline}
LIFELINE_SIM_URL=http://127.0.0.1:8090
# The simulator serves the demo media over http on this machine, which production refuses.
LIFELINE_MEDIA_ALLOW_HTTP=true
LIFELINE_MEDIA_ALLOW_HOSTS=127.0.0.1
LIFELINE_PUBLIC_URL=http://127.0.0.1:8080
# Platform time runs 60x faster: X's 2-hour tokens last 2 minutes, so refreshes are visible.
SIM_TIME_SCALE=${SIM_TIME_SCALE:-60}
# Expiry warnings count platform time too: 7 and 1 platform days before a credential lapses
# (at 60x, 2 h 48 min and 24 min), or every token would look about to lapse.
LIFELINE_EXPIRING_HORIZONS=$((604800 / SIM_TIME_SCALE))s,$((86400 / SIM_TIME_SCALE))s
# The demo's notification receivers (webhook, Slack, SMTP catcher) listen on this machine.
LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS=true
LIFELINE_GATEWAY_URL=http://127.0.0.1:8080
# The notifier counts an account's waiting posts at the publisher (messages, the reminder).
LIFELINE_PUBLISHER_URL=http://127.0.0.1:8081
LIFELINE_SMTP_HOST=127.0.0.1
LIFELINE_SMTP_PORT=8025
LIFELINE_SMTP_TLS=none
LIFELINE_SMTP_FROM="Lifeline demo <lifeline@localhost>"
set +a
for p in $platforms; do
  P=$(echo "$p" | tr a-z A-Z)
  export "LIFELINE_${P}_CLIENT_ID=lifeline-$p-dev" "SIM_${P}_CLIENT_ID=lifeline-$p-dev"
done

pids=()
stop() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] || return 0
  log "stopping services"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if grep -qx nats .run/started-infra 2>/dev/null; then
    log "stopping the NATS server this script started"
    start-stop-daemon --stop --oknodo --quiet --exec "$(command -v nats-server || echo /usr/sbin/nats-server)" || true
  fi
  if grep -qx postgres .run/started-infra 2>/dev/null; then
    log "stopping the PostgreSQL cluster this script started"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main stop || true
  fi
  : > .run/started-infra
}
trap stop EXIT
trap 'stop; exit 130' INT TERM

start() { # name binary port env...
  local name=$1 binary=$2 port=$3; shift 3
  local t0; t0=$(date +%s%N)
  env LIFELINE_HTTP_ADDR="127.0.0.1:$port" SIM_HTTP_ADDR="127.0.0.1:$port" "$@" "$bin/$binary" >> ".run/logs/$name.log" 2>&1 &
  pids+=($!)
  echo "$name $port $t0" >> .run/starts
}
# The simulator keeps nothing between runs (every token it issued is forgotten), so accounts an
# earlier run stored would all look revoked: each run starts from a fresh demo database.
if [ "$DATABASE_URL" = postgres://postgres@127.0.0.1:5432/lifeline ]; then
  log "recreating the demo database (the simulator forgets its tokens between runs)"
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS lifeline WITH (FORCE)'
else
  log "DATABASE_URL is not the demo database: kept (accounts from earlier runs will look revoked)"
fi
# Local receivers for the demo's notification channels (scripts/notify; Python, aiosmtpd and the
# Standard Webhooks library in .run/tools/notify-venv): an SMTP catcher writing every message to
# .run/mail/, a webhook receiver verifying every signature, a stand-in for Slack.
notify_py=.run/tools/notify-venv/bin/python
if bash scripts/notify/setup.sh > .run/logs/notify-setup.log 2>&1; then
  mkdir -p .run/mail .run/notify
  : > .run/notify/webhook-secret
  "$notify_py" scripts/notify/smtp_catcher.py --port 8025 --dir .run/mail > .run/logs/smtp.log 2>&1 &
  pids+=($!)
  "$notify_py" scripts/notify/webhook_receiver.py --port 8091 --secret-file .run/notify/webhook-secret > .run/logs/webhooks.log 2>&1 &
  pids+=($!)
  "$notify_py" scripts/notify/webhook_receiver.py --port 8092 --slack > .run/logs/slack.log 2>&1 &
  pids+=($!)
else
  notify_py=
  log "no local notification receivers (see .run/logs/notify-setup.log); channels are not configured"
fi
: > .run/starts
start platform-sim platform-sim 8090
start auth-gateway auth-gateway 8080
start publisher publisher 8081
start notifier notifier 8082
start token-refresher token-refresher 8083

while read -r name port t0; do
  path=readyz; [ "$name" = platform-sim ] && path=healthz
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$port/$path" >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/$path" >/dev/null || { log "$name did not become ready; see .run/logs/$name.log"; exit 1; }
  log "$name ready on :$port after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done < .run/starts

# Demo data: one workspace with a connected X account (@demo_user) and scheduled posts.
if [ ! -f .run/demo.env ]; then echo "WORKSPACE=$("$bin/lifelinectl" token mint --workspace new 2>&1 >/dev/null | sed 's/^workspace: //')" > .run/demo.env; fi
# shellcheck disable=SC1091
. .run/demo.env
token=$("$bin/lifelinectl" token mint --workspace "$WORKSPACE" --ttl 12h)
auth=(-H "authorization: Bearer $token")
# Goes through the platform's OAuth flow, approving on the simulator as @demo_user. The cookie
# jar plays the browser the flow is bound to; a new identity is confirmed as on the gateway's page.
connect_demo() {
  local authorize callback answer jar=.run/oauth-cookies
  rm -f "$jar"
  authorize=$(curl -fsS -c "$jar" "${auth[@]}" -H 'content-type: application/json' -d "{\"platform\":\"$1\"}" \
    http://127.0.0.1:8080/v1/accounts/connect | jq -r .authorize_url) || return 1
  callback=$(curl -fsS -o /dev/null -w '%{redirect_url}' "$authorize&sim_approve_as=demo_user") || return 1
  answer=$(curl -fsS -b "$jar" -H 'accept: application/json' "$callback") || return 1
  if [ "$(jq -r .result <<<"$answer")" = confirmation_required ]; then
    answer=$(curl -fsS -b "$jar" -H 'accept: application/json' -H 'content-type: application/json' \
      -d "$(jq -c '{confirmation, decision: "connect"}' <<<"$answer")" http://127.0.0.1:8080/oauth/confirm) || return 1
  fi
  jq -r .account_id <<<"$answer"
}
configured=$(curl -fsS "${auth[@]}" http://127.0.0.1:8080/v1/platforms | jq -r '.platforms[].id')
now=$(date -u +%s)
for p in $configured; do
  account=$(curl -fsS "${auth[@]}" http://127.0.0.1:8080/v1/accounts | jq -r --arg p "$p" '.accounts[] | select(.platform == $p) | .id' | head -n 1)
  if [ -z "$account" ]; then
    if ! account=$(connect_demo "$p") || [ -z "$account" ] || [ "$account" = null ]; then
      log "could not connect a demo $p account (see .run/logs/platform-sim.log); skipping it"
      continue
    fi
    log "connected $p account @demo_user ($account)"
  fi
  case $p in
    instagram) media=",\"media\":{\"url\":\"http://127.0.0.1:8090/_sim/media/sample.jpg\",\"kind\":\"image\"}" ;;
    youtube|tiktok) media=",\"media\":{\"url\":\"http://127.0.0.1:8090/_sim/media/sample.mp4\",\"kind\":\"video\"}" ;;
    *) media= ;;
  esac
  for i in 0 1 2; do
    at=$(date -u -d "@$((now + i * 60))" +%Y-%m-%dT%H:%M:%SZ)
    curl -fsS "${auth[@]}" -H 'content-type: application/json' \
      -d "{\"account_id\":\"$account\",\"text\":\"Lifeline demo post $i on $p ($(date -u +%H:%M:%S))\",\"scheduled_at\":\"$at\"$media}" \
      http://127.0.0.1:8081/v1/posts >/dev/null || log "could not schedule a demo post on $p"
  done
  [ "$p" = x ] && x_account=$account
done
account=${x_account:-}
log "scheduled 3 demo posts per connected platform (now, +1 min, +2 min)"

# The demo workspace's notification channels: one email, one signed webhook, one Slack message
# per notification (the database is new each run, so are the channels).
if [ -n "$notify_py" ]; then
  channel() { curl -fsS "${auth[@]}" -H 'content-type: application/json' -d "$1" http://127.0.0.1:8082/v1/notification-channels; }
  channel '{"kind":"email","address":"owner@demo.localhost"}' >/dev/null || log "could not create the email channel"
  channel '{"kind":"webhook","url":"http://127.0.0.1:8091/hook"}' | jq -r .secret > .run/notify/webhook-secret || log "could not create the webhook channel"
  channel '{"kind":"slack","url":"http://127.0.0.1:8092/services/T0DEMO/B0DEMO/demo"}' >/dev/null || log "could not create the Slack channel"
fi

page_link=$(curl -fsS "${auth[@]}" -XPOST http://127.0.0.1:8080/v1/page-links | jq -r .url) || page_link="(could not mint a sign-in link; see .run/logs/auth-gateway.log)"

cat <<INFO

  Lifeline is running.  Workspace $WORKSPACE; platforms: $(echo $configured); X account @demo_user ($account).

  Accounts page   $page_link
                  (a sign-in link: it works once, within 15 minutes; for another:
                   curl -XPOST -H "authorization: Bearer \$LIFELINE_TOKEN" http://127.0.0.1:8080/v1/page-links)
  APIs            gateway :8080  publisher :8081  notifier :8082  refresher :8083 (/metrics, /readyz)
  Simulator       http://127.0.0.1:8090  (X under /x, control API under /_sim)
  Logs            .run/logs/<service>.log
  Notifications   email, webhook and Slack channels: mail in .run/mail/*.eml (ls -t .run/mail | head),
                  signed webhooks (verified by the Standard Webhooks library) in .run/logs/webhooks.log,
                  Slack messages in .run/logs/slack.log; the delivery log:
                    curl -H "authorization: Bearer \$LIFELINE_TOKEN" http://127.0.0.1:8082/v1/notification-channels

  Try the reconnect story in another terminal:
    export LIFELINE_TOKEN=$token
    $bin/lifelinectl events tail &                     # watch the events
    curl -XPOST http://127.0.0.1:8090/_sim/x/accounts/demo_user/revoke    # revoke on "X"
    curl -H "authorization: Bearer \$LIFELINE_TOKEN" -H 'content-type: application/json' \\
      -d '{"account_id":"$account","text":"after the revoke"}' http://127.0.0.1:8081/v1/posts
    $bin/lifelinectl accounts list                      # needs_reconnect (revoked)
    $bin/lifelinectl notifications list                 # one notification
    # then click Reconnect on the Accounts page (approve on the simulator's consent page)
    $bin/lifelinectl posts list                         # every failed post published once

  Ctrl-C stops everything this command started.
INFO
wait -n "${pids[@]}" || true
log "a service exited; see .run/logs/ (stopping the rest)"
