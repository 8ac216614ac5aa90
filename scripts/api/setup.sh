#!/usr/bin/env bash
# Installs the pinned schemathesis (scripts/api/requirements.txt) into
# .run/tools/schemathesis-venv for `make test-api`. Idempotent: the virtualenv is reused while
# the pin is unchanged; python3-venv comes from apt-get only where Debian's python3 lacks it.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
start=$(date +%s)
say() { echo "api setup: $1 ($(( $(date +%s) - start ))s)"; }

python=${LIFELINE_API_BOOTSTRAP_PYTHON:-python3}
venv=$root/.run/tools/schemathesis-venv
requirements=$root/scripts/api/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/schemathesis || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  # Debian's own python3 ships venv/ensurepip separately.
  if ! "$python" -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null; then
    say "installing python3-venv"
    apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  fi
  say "creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
else
  say "virtualenv up to date"
fi
"$venv/bin/schemathesis" --version
say "ready: $venv/bin/schemathesis"
