#!/usr/bin/env bash
# Proves that `make proto-lint`'s breaking check can fail: on a temporary copy of proto/ (the real
# files are never touched) it runs the same `buf breaking` against the committed released image
# (proto/released/lifeline-events-v1.binpb) for four schemas:
#   unchanged                      -> must pass
#   additive (new field, message,  -> must pass
#             enum value)
#   a renumbered field             -> must fail, naming the field
#   a removed enum value           -> must fail, naming the value
# Each edit is checked to have changed the copy, so a pattern that no longer matches fails the
# test instead of passing it silently.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUF=${BUF:-.run/tools/node_modules/.bin/buf}
RELEASED=proto/released/lifeline-events-v1.binpb
[ -x "$BUF" ] || { echo "buf not found at $BUF (make proto-lint installs it)" >&2; exit 1; }
[ -f "$RELEASED" ] || { echo "no released image at $RELEASED (make proto-release)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# check <name> <expect pass|fail> <expected text in buf's output, for fail> <edit command…>
check() {
  local name=$1 expect=$2 needle=$3
  shift 3
  rm -rf "$work/proto" && cp -r proto "$work/proto"
  local file="$work/proto/lifeline/events/v1/events.proto"
  if [ $# -gt 0 ]; then
    local before
    before=$(sha256sum "$file")
    "$@" "$file"
    if [ "$(sha256sum "$file")" = "$before" ]; then
      echo "FAIL $name: the edit changed nothing (has the proto moved on?)"
      failures=$((failures + 1))
      return
    fi
  fi
  local out rc=0
  out=$("$BUF" breaking "$work/proto" --against "$RELEASED" 2>&1) || rc=$?
  case "$expect" in
    pass)
      if [ "$rc" -eq 0 ]; then echo "ok   $name: passes"; else
        echo "FAIL $name: expected to pass, buf said (exit $rc):"; echo "$out"
        failures=$((failures + 1))
      fi ;;
    fail)
      if [ "$rc" -ne 0 ] && grep -qF "$needle" <<<"$out"; then
        echo "ok   $name: fails (exit $rc): $(grep -F "$needle" <<<"$out" | head -1 | sed 's/^.*proto:[0-9:]*//')"
      else
        echo "FAIL $name: expected a failure mentioning '$needle', buf said (exit $rc):"; echo "$out"
        failures=$((failures + 1))
      fi ;;
  esac
}

additive() {
  sed -i 's/^  string post_id = 6;$/  string post_id = 6;\n  string contract_test_hint = 99;/' "$1"
  sed -i 's/^  AUTH_FAILURE_CAUSE_UNKNOWN = 7;$/  AUTH_FAILURE_CAUSE_UNKNOWN = 7;\n  AUTH_FAILURE_CAUSE_CONTRACT_TEST = 98;/' "$1"
  printf '\n// Added by the contract test.\nmessage ContractTestAddition {\n  Envelope envelope = 1;\n}\n' >>"$1"
}
renumber() { sed -i 's/^  string detail = 4;$/  string detail = 14;/' "$1"; }
remove_enum_value() { sed -i '/^  AUTH_FAILURE_CAUSE_POLICY = 6;$/d' "$1"; }

check "unchanged schema" pass ""
check "additive change" pass "" additive
check "renumbered field (AuthFailed.detail 4 -> 14)" fail 'field "4" with name "detail"' renumber
check "removed enum value (AUTH_FAILURE_CAUSE_POLICY)" fail 'enum value "6"' remove_enum_value

if [ "$failures" -gt 0 ]; then
  echo "breaking-check test: $failures case(s) failed"
  exit 1
fi
echo "breaking-check test: all cases behave"
