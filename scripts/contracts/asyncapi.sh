#!/usr/bin/env bash
# Checks docs/asyncapi.yaml, Lifeline's AsyncAPI 3.0 document:
#   1. installs @asyncapi/cli (pinned by scripts/contracts/asyncapi.package{,-lock}.json) into
#      .run/tools/asyncapi, once; with its telemetry off (it never touches the network)
#   2. `asyncapi validate docs/asyncapi.yaml --fail-severity warn`: warnings fail too; the
#      protobuf payloads are parsed by the CLI's protobuf schema parser
#   3. proves the validation can fail: a copy with a broken protobuf payload must be rejected
#   4. the drift check (asyncapi-drift.mjs): every subject the code publishes (the events!
#      block, the dead-letter pattern, the key-value bucket) is a channel with a send operation,
#      every message and enum of proto/ is referenced by a payload, the payloads are the current
#      proto, and the streams are described as shared/kit/src/bus/mod.rs creates them
#   5. the drift check's self-test: on temp copies with one channel removed and with one message
#      unreferenced it must name each failure, and pass on the unchanged copy
# The real files are never modified, except with --write: that first regenerates the document's
# protobuf payload schemas from proto/ (run it after changing the proto), then checks.
# Needs node and npm, and buf (`make proto-lint` installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
write=false
case "${1:-}" in
  --write) write=true ;;
  "") ;;
  *) echo "usage: $0 [--write]" >&2; exit 2 ;;
esac
BUF=${BUF:-.run/tools/node_modules/.bin/buf}
DOC=${ASYNCAPI_DOC:-docs/asyncapi.yaml}
TOOLS=.run/tools/asyncapi
PKG=scripts/contracts/asyncapi.package.json
LOCK=scripts/contracts/asyncapi.package-lock.json
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

command -v npm >/dev/null || { echo "FAIL npm not found (Node 20 or later)"; exit 1; }
[ -x "$BUF" ] || { echo "FAIL buf not found at $BUF (make proto-lint installs it)"; exit 1; }

# 1. Install, unless this exact lockfile is installed already.
stamp=$(cat "$PKG" "$LOCK" | sha256sum | cut -d' ' -f1)
if [ -x "$TOOLS/node_modules/.bin/asyncapi" ] && [ "$(cat "$TOOLS/.installed" 2>/dev/null)" = "$stamp" ]; then
  echo "ok   @asyncapi/cli already installed in $TOOLS"
else
  start=$(date +%s)
  rm -rf "$TOOLS" && mkdir -p "$TOOLS/omitted"
  cp "$PKG" "$TOOLS/package.json" && cp "$LOCK" "$TOOLS/package-lock.json"
  # The CLI depends on its web studio (Next.js, ~1 GB) for `asyncapi start studio`; validation
  # never loads it, so package.json's overrides point it, and next, at this stub.
  echo '{"name":"omitted","version":"0.0.0","private":true,"main":"index.js"}' >"$TOOLS/omitted/package.json"
  echo 'throw new Error("not installed: scripts/contracts/asyncapi.sh installs the CLI for `asyncapi validate` only");' >"$TOOLS/omitted/index.js"
  (cd "$TOOLS" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$stamp" >"$TOOLS/.installed"
  echo "ok   installed @asyncapi/cli $(node -p "require('./$TOOLS/node_modules/@asyncapi/cli/package.json').version") in $TOOLS in $(($(date +%s) - start)) s ($(du -sm "$TOOLS" | cut -f1) MB)"
fi
ASYNCAPI=$TOOLS/node_modules/.bin/asyncapi

# Telemetry: the CLI reads its analytics switch from this file (ASYNCAPI_METRICS is not read by
# 4.x). Written here rather than by `asyncapi config analytics --disable`, whose first run sends
# a metric before it switches them off.
export ASYNCAPI_METRICS_CONFIG_PATH=$PWD/$TOOLS/analytics.json
echo '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"lifeline-contracts"}' >"$ASYNCAPI_METRICS_CONFIG_PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
image=$work/image.json
"$BUF" build proto -o "$image#format=json"
export ASYNCAPI_NODE_MODULES=$PWD/$TOOLS/node_modules
if $write; then node scripts/contracts/asyncapi-drift.mjs write "$DOC" "$image"; fi

# 2. Validate.
if out=$("$ASYNCAPI" validate "$DOC" --fail-severity warn 2>&1); then
  echo "ok   asyncapi validate $DOC --fail-severity warn: valid, no errors or warnings"
  sed 's/\x1b\[[0-9;]*m//g' <<<"$out" | grep -E '^ *[0-9]+:[0-9]+ +(information|hint) ' | sed 's/^ */     (/; s/$/)/' || true
else
  fail "asyncapi validate $DOC:"; echo "$out"
fi

# 3. The validation can fail: one field of the first protobuf payload made unparsable.
broken=$work/broken.yaml
sed '0,/^\( *\)string event_id = 1;$/s//\1string event_id = 1 broken;/' "$DOC" >"$broken"
if cmp -s "$DOC" "$broken"; then
  fail "validation proof: the edit changed nothing (is Envelope.event_id still field 1?)"
elif out=$("$ASYNCAPI" validate "$broken" --fail-severity warn --diagnostics-format json 2>&1); then
  fail "validation proof: a broken protobuf payload was accepted"
elif grep -q "illegal token 'broken'" <<<"$out"; then
  echo "ok   validation proof: a broken protobuf payload is rejected (illegal token 'broken')"
else
  fail "validation proof: rejected, but not for the broken payload:"; echo "$out"
fi

# 4. and 5. The drift check and its self-test, against the current proto.
node scripts/contracts/asyncapi-drift.mjs check --quiet "$DOC" "$image" || failures=$((failures + 1))
node scripts/contracts/asyncapi-drift.mjs self-test "$DOC" "$image" || failures=$((failures + 1))

if [ "$failures" -gt 0 ]; then
  echo "asyncapi: $failures step(s) failed"
  exit 1
fi
echo "asyncapi: the document is valid and matches the code and the proto"
