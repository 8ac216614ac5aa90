#!/usr/bin/env bash
# Prepares the Accounts page browser story (tests/browser/story.mjs): Debian's Chromium at
# /usr/bin/chromium (apt-get, with sudo only when not root) and playwright-core from the lockfile.
# Idempotent: nothing is installed again while /usr/bin/chromium exists and node_modules matches
# package-lock.json. Never downloads Playwright's own browsers.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
say() { echo "browser setup: $1 ($(( $(date +%s) - start ))s)"; }

if [[ ! -x /usr/bin/chromium ]]; then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  say "installing chromium with apt-get"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  say "chromium present"
fi
/usr/bin/chromium --version

lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.lock.sha256 || $(cat node_modules/.lock.sha256) != "$lock_sum" ]]; then
  say "npm ci"
  # playwright-core has no install script; the variable only makes sure nothing is fetched.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.lock.sha256
else
  say "node_modules up to date"
fi
say "ready"
