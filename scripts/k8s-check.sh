#!/usr/bin/env bash
# `make k8s-check`: validates the Kubernetes manifests offline, as CI does.
#
#  1. each overlay (k8s/overlays/dev, k8s/overlays/prod) renders with `kubectl kustomize` and
#     passes `kubernetes-validate --strict` for a current Kubernetes version (K8S_VERSION, default
#     the newest the installed kubernetes-validate knows);
#  2. policy checks on the rendered objects (scripts/k8s_check.py lint): no Secret objects, no
#     secret in a literal or a ConfigMap, security context, probes, drain time, resources, prod
#     replicas/HPA/spread, Ingress host = LIFELINE_PUBLIC_URL, NATS cluster = NATS_URL;
#  3. the prod nats.conf loads in `nats-server -t`;
#  4. k8s/monitoring: rendered; its CRD objects (PrometheusRule, ServiceMonitor) are skipped by
#     kubernetes-validate, which has no CRD schemas, and checked by k8s_check.py instead; the
#     rest is validated; `promtool check rules` and `promtool test rules`; the PrometheusRule
#     carries exactly the rules file;
#  5. config drift: the environment each Deployment gives its container (ConfigMaps resolved,
#     Secrets replaced by generated values of a valid shape, mounted files created) is passed with
#     `env -i` to `<target>/debug/<binary> --check-config`, which must exit 0.
#
# Tools are installed when missing (idempotent): kubernetes-validate from PyPI into
# .run/tools/k8s-venv, promtool from Debian's `prometheus` package. kubectl must be installed.
# K8S_CHECK_NO_BUILD=1 skips `cargo build` of the binaries (they must then exist).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
log() { printf '\033[1m[k8s-check]\033[0m %s\n' "$*" >&2; }
failed=()
step() { # name command...
  local name=$1; shift
  log "$name"
  if "$@"; then return 0; fi
  failed+=("$name")
  return 1
}

# --- tools ------------------------------------------------------------------------------------
command -v kubectl >/dev/null || { log "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"; exit 1; }
venv=$root/.run/tools/k8s-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  log "installing kubernetes-validate into .run/tools/k8s-venv"
  mkdir -p "$root/.run/tools"
  python3 -m venv "$venv" && "$venv/bin/pip" install --quiet kubernetes-validate \
    || { log "cannot install kubernetes-validate"; exit 1; }
fi
if ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then "$venv/bin/pip" install --quiet PyYAML; fi
if ! command -v promtool >/dev/null; then
  log "installing promtool (Debian package prometheus)"
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || { log "cannot install promtool"; exit 1; }
fi
kv=$venv/bin/kubernetes-validate
py=$venv/bin/python
K8S_VERSION=${K8S_VERSION:-$("$kv" --version)}
out=$root/.run/k8s-check
mkdir -p "$out"

# --- 1-3: overlays ----------------------------------------------------------------------------
overlays=(dev prod)
for o in "${overlays[@]}"; do
  if ! step "render $o" kubectl kustomize "k8s/overlays/$o" -o "$out/$o.yaml"; then continue; fi
  printf '  %s: ' "$o" >&2; grep -h '^kind:' "$out/$o.yaml" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}' >&2; echo >&2
  step "kubernetes-validate --strict -k $K8S_VERSION ($o)" \
    bash -c "set -o pipefail; kubectl kustomize k8s/overlays/$o | '$kv' --strict --quiet -k '$K8S_VERSION' -"
  step "policy checks ($o)" "$py" scripts/k8s_check.py lint "$o" "$out/$o.yaml"
  step "nats.conf ($o)" "$py" scripts/k8s_check.py nats-conf "$out/$o.yaml"
done

# Operator Jobs (lifelinectl vault status / rewrap), applied by hand.
step "kubernetes-validate --strict -k $K8S_VERSION (k8s/jobs)" "$kv" --strict --quiet -k "$K8S_VERSION" k8s/jobs/*.yaml

# --- 4: monitoring ----------------------------------------------------------------------------
if step "render monitoring" kubectl kustomize k8s/monitoring -o "$out/monitoring.yaml"; then
  step "monitoring CRD objects" "$py" scripts/k8s_check.py monitoring "$out/monitoring.yaml" "$out/monitoring-core.yaml" &&
    step "kubernetes-validate --strict -k $K8S_VERSION (monitoring, CRDs skipped)" \
      "$kv" --strict --quiet -k "$K8S_VERSION" "$out/monitoring-core.yaml"
fi
step "promtool check rules" promtool check rules k8s/monitoring/rules/lifeline.rules.yaml
step "promtool test rules" promtool test rules k8s/monitoring/rules/lifeline.rules.test.yaml
step "PrometheusRule = rules file" "$py" scripts/k8s_check.py sync-rules --check

# --- 5: config drift --------------------------------------------------------------------------
target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null | "$py" -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])') \
  || target=$root/target
bins=(auth-gateway publisher notifier token-refresher platform-sim)
if [ "${K8S_CHECK_NO_BUILD:-}" != 1 ]; then
  # The workspace as `make test` builds it (one feature resolution, shared artifacts): a no-op
  # after `make test`, which CI runs first.
  step "cargo build --workspace --all-targets (for ${bins[*]})" \
    cargo build --quiet --workspace --all-targets
fi
for o in "${overlays[@]}"; do
  [ -f "$out/$o.yaml" ] && step "config drift: --check-config on every Deployment ($o)" \
    "$py" scripts/k8s_check.py drift "$o" "$out/$o.yaml" "$target/debug"
done

if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "all checks passed (Kubernetes $K8S_VERSION)"
