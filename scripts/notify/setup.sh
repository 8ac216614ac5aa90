#!/usr/bin/env bash
# Installs the pinned receivers (scripts/notify/requirements.txt) into .run/tools/notify-venv for
# `make test-notify`. Idempotent: the virtualenv is reused while the pin is unchanged.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
python=${LIFELINE_NOTIFY_BOOTSTRAP_PYTHON:-python3}
venv=$root/.run/tools/notify-venv
requirements=$root/scripts/notify/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  if ! "$python" -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null; then
    echo "notify setup: installing python3-venv"
    apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  fi
  echo "notify setup: creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import standardwebhooks, aiosmtpd; print("notify setup: ready:", standardwebhooks.__name__, aiosmtpd.__version__)'
