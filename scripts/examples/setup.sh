#!/usr/bin/env bash
# Prepares the subscriber examples (examples/python, examples/typescript) to run: a virtualenv
# with the pinned requirements at .run/tools/examples-venv, `npm ci`, the protobuf code of
# proto/lifeline/events/v1/ generated for both, and the TypeScript compiled to dist/.
# Idempotent: the virtualenv and node_modules are reused while their pins are unchanged; the
# code is always generated again (a second or two), so a changed schema is never missed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
start=$(date +%s)
say() { echo "examples setup: $1 ($(( $(date +%s) - start ))s)"; }

python=${LIFELINE_EXAMPLES_BOOTSTRAP_PYTHON:-python3}
venv=$root/.run/tools/examples-venv
requirements=$root/examples/python/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
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

say "generating Python code"
gen=$root/examples/python/gen
rm -rf "$gen"
mkdir -p "$gen"
# grpc_tools.protoc adds the well-known types (google/protobuf/timestamp.proto) to the path.
"$venv/bin/python" -m grpc_tools.protoc -I "$root/proto" --python_out="$gen" --pyi_out="$gen" \
  "$root/proto/lifeline/events/v1/events.proto"

cd "$root/examples/typescript"
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.lock.sha256 || $(cat node_modules/.lock.sha256) != "$lock_sum" ]]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.lock.sha256
else
  say "node_modules up to date"
fi
say "generating TypeScript code (buf generate, local protoc-gen-es) and compiling (tsc)"
rm -rf src/gen dist
npm run --silent generate
npm run --silent build
say "done: $venv/bin/python examples/python/subscriber.py, node examples/typescript/dist/subscriber.js"
