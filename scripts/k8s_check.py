#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests (k8s/), run by scripts/k8s-check.sh.

Subcommands (each reads a rendered overlay, i.e. `kubectl kustomize` output, from a file):

  lint OVERLAY RENDERED         policy checks: no Secret objects and no secret value in the
                                manifests, security context, probes, resources, drain time,
                                replicas/HPA/PDB/spread in prod, Ingress host = LIFELINE_PUBLIC_URL,
                                NATS cluster size = NATS_URL = LIFELINE_STREAM_REPLICAS
  drift OVERLAY RENDERED BINDIR the config drift check: the environment each Deployment gives its
                                container (ConfigMaps resolved, Secrets replaced by generated
                                values of a valid shape, mounted files created) is passed with
                                `env -i` to `BINDIR/<binary> --check-config`; exit 0 passes
  nats-conf RENDERED            the rendered nats.conf is loaded by `nats-server -t` (every
                                nats-server found: the machine's and .run/tools/nats-venv's)
  monitoring RENDERED OUT       checks the CRD objects of k8s/monitoring (PrometheusRule,
                                ServiceMonitor), which kubernetes-validate cannot know, and
                                writes the other objects to OUT for kubernetes-validate
  env OVERLAY RENDERED NAME     prints the environment the drift check gives Deployment NAME
                                (generated secrets shown as <generated>)
  sync-rules [--check]          writes k8s/monitoring/prometheusrule.yaml from the plain rules
                                file (--check: fail if it differs)

Standard library and PyYAML only.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "k8s/monitoring/rules/lifeline.rules.yaml"
PROMETHEUS_RULE = ROOT / "k8s/monitoring/prometheusrule.yaml"

# The binaries of the image (deploy/Dockerfile) that `--check-config` applies to.
BINARIES = {"auth-gateway", "publisher", "notifier", "token-refresher", "platform-sim"}
SERVICES = ["auth-gateway", "publisher", "notifier", "token-refresher"]

# The Secrets docs/deploy.md tells operators to create, and their keys. Used for
# `envFrom: secretRef` (whose keys the manifests do not name) and to check that every
# secretKeyRef names a documented key.
SECRETS = {
    "lifeline-database": ["DATABASE_URL"],
    "lifeline-jwt": ["LIFELINE_JWT_SECRET"],
    "lifeline-vault": ["LIFELINE_VAULT_KEYS", "LIFELINE_VAULT_ACTIVE_KEY"],
    "lifeline-platforms": [
        f"LIFELINE_{p}_CLIENT_SECRET"
        for p in ["X", "LINKEDIN", "INSTAGRAM", "FACEBOOK", "YOUTUBE", "TIKTOK", "THREADS"]
    ],
    "lifeline-nats-client": [
        "LIFELINE_NATS_USER",
        "LIFELINE_NATS_PASSWORD",
        "LIFELINE_NATS_TOKEN",
        "LIFELINE_NATS_NKEY_SEED",
    ],
    "lifeline-dev-postgres": ["password"],
}

# Variables that hold a secret: they must come from a Secret, never from a literal or a ConfigMap.
SECRET_VARS = re.compile(
    r"^(DATABASE_URL|LIFELINE_JWT_SECRET|LIFELINE_VAULT_KEYS|LIFELINE_NATS_PASSWORD|"
    r"LIFELINE_NATS_TOKEN|LIFELINE_NATS_NKEY_SEED|POSTGRES_PASSWORD|.*_CLIENT_SECRET|.*PASSWORD.*)$"
)

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"  FAIL {msg}", file=sys.stderr)


def load(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def name(d: dict) -> str:
    return d["metadata"]["name"]


def pod_spec(d: dict) -> dict:
    return d["spec"]["template"]["spec"]


def binary_of(container: dict) -> str | None:
    cmd = container.get("command") or []
    if not cmd:
        return None
    b = os.path.basename(cmd[0])
    return b if b in BINARIES else None


def configmaps(docs: list[dict]) -> dict[str, dict]:
    return {name(c): c.get("data") or {} for c in by_kind(docs, "ConfigMap")}


def duration_seconds(s: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", s.strip())
    if not m:
        raise ValueError(s)
    n, unit = float(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


# --------------------------------------------------------------------------------------------
# The environment a container gets, as the kubelet computes it.


class Generated:
    """Secret values of a valid shape, and the files mounted paths point at."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._pem: tuple[str, str] | None = None

    @staticmethod
    def token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(secrets.choice(alphabet) for _ in range(n))

    def value(self, var: str, secret: str, key: str, params: str, container: dict) -> str:
        if var == "LIFELINE_VAULT_KEYS" or key == "LIFELINE_VAULT_KEYS":
            return "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
        if var == "LIFELINE_VAULT_ACTIVE_KEY":
            return "k1"
        if var == "LIFELINE_JWT_SECRET":
            return self.token(48)
        if var == "DATABASE_URL":
            query = dict(parse_qsl(params)) if params else {}
            for p in ("sslrootcert", "sslcert", "sslkey"):
                if p in query:
                    query[p] = self.file(query[p], container, f"DATABASE_URL ({p})")
            q = ("?" + urlencode(query, safe="/")) if query else ""
            return f"postgres://lifeline:{self.token(32)}@db.lifeline.internal:5432/lifeline{q}"
        if var == "LIFELINE_NATS_USER":
            return "lifeline"
        if var == "LIFELINE_NATS_NKEY_SEED":
            return nkey_user_seed()
        if var.endswith("_FILE"):
            return self.file(self.token(8), container, var)
        return self.token(32, string.ascii_letters + string.digits + "-_")

    def pem(self) -> tuple[str, str]:
        """A throwaway self-signed certificate and its key (PEM)."""
        if self._pem is None:
            d = self.tmp / "pki"
            d.mkdir(exist_ok=True)
            key, crt = d / "key.pem", d / "cert.pem"
            if shutil.which("openssl"):
                subprocess.run(
                    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                     "/CN=k8s-check", "-addext", "subjectAltName=DNS:localhost,DNS:*.nats-headless",
                     "-keyout", str(key), "-out", str(crt)],
                    check=True, capture_output=True,
                )
                self._pem = (crt.read_text(), key.read_text())
            else:
                self._pem = ("", "")
        return self._pem

    def file(self, path: str, container: dict, what: str) -> str:
        """Creates the file `path` names (under a temporary root) and returns the new path.
        The path must be inside one of the container's volume mounts."""
        mounts = [m["mountPath"].rstrip("/") for m in container.get("volumeMounts", [])]
        if path.startswith("/") and not any(path.startswith(m + "/") for m in mounts):
            fail(f"{container['name']}: {what} = {path} is not inside any volumeMount")
        target = self.tmp / "files" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        crt, key = self.pem()
        low = os.path.basename(path).lower()
        if "key" in low and "seed" not in low:
            target.write_text(key)
        elif "creds" in low:
            target.write_text(creds_file())
        elif "seed" in low or low.endswith(".nk"):
            target.write_text(nkey_user_seed() + "\n")
        else:
            target.write_text(crt)
        return str(target)


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def nkey_user_seed() -> str:
    """An NKey user seed ("SU..."), the format `nsc`/`nk -gen user` print."""
    prefix_seed, prefix_user = 18 << 3, 20 << 3
    raw = bytes([prefix_seed | (prefix_user >> 5), (prefix_user & 31) << 3]) + secrets.token_bytes(32)
    raw += crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def creds_file() -> str:
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).decode().rstrip("=")

    jwt = ".".join([b64(b'{"typ":"JWT","alg":"ed25519-nkey"}'), b64(b'{"sub":"check"}'), b64(b"sig")])
    return (
        "-----BEGIN NATS USER JWT-----\n" + jwt + "\n------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\n" + nkey_user_seed() + "\n------END USER NKEY SEED------\n"
    )


def field_value(d: dict, path: str, namespace: str) -> str:
    return {
        "metadata.name": f"{name(d)}-7d9f8c6b5-x2k4q",
        "metadata.namespace": namespace,
        "metadata.uid": "00000000-0000-4000-8000-000000000000",
        "spec.nodeName": "node-1",
        "spec.serviceAccountName": pod_spec(d).get("serviceAccountName", "default"),
        "status.podIP": "10.0.0.17",
        "status.hostIP": "10.1.0.5",
    }.get(path, "x")


def expand(value: str, env: dict[str, str]) -> str:
    """$(VAR) references to variables defined before, as the kubelet expands them."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, value)


def container_env(d: dict, c: dict, cms: dict[str, dict], gen: Generated) -> dict[str, str]:
    namespace = d["metadata"].get("namespace", "default")
    params = (d["metadata"].get("annotations") or {}).get("lifeline.dev/database-url-params", "")
    where = f"{d['kind']}/{name(d)}"
    env: dict[str, str] = {"HOSTNAME": field_value(d, "metadata.name", namespace)}
    for src in c.get("envFrom", []):
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            ref = src["configMapRef"]
            if ref["name"] not in cms:
                if not ref.get("optional"):
                    fail(f"{where}: envFrom ConfigMap {ref['name']} is not in the overlay")
                continue
            for k, v in cms[ref["name"]].items():
                env[prefix + k] = v
        elif "secretRef" in src:
            ref = src["secretRef"]
            keys = SECRETS.get(ref["name"])
            if keys is None:
                fail(f"{where}: envFrom Secret {ref['name']} is not documented (scripts/k8s_check.py SECRETS)")
                continue
            for k in keys:
                env[prefix + k] = gen.value(prefix + k, ref["name"], k, params, c)
    for e in c.get("env", []):
        n = e["name"]
        if "value" in e:
            env[n] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom", {})
        if "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            data = cms.get(ref["name"])
            if data is None or ref["key"] not in data:
                if not ref.get("optional"):
                    fail(f"{where}: {n} needs key {ref['key']} of ConfigMap {ref['name']}, not in the overlay")
                continue
            env[n] = data[ref["key"]]
        elif "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            if ref["name"] in SECRETS and ref["key"] not in SECRETS[ref["name"]]:
                fail(f"{where}: {n} reads key {ref['key']} of Secret {ref['name']}, which docs/deploy.md does not create")
            env[n] = gen.value(n, ref["name"], ref["key"], params, c)
        elif "fieldRef" in vf:
            env[n] = field_value(d, vf["fieldRef"]["fieldPath"], namespace)
        elif "resourceFieldRef" in vf:
            env[n] = "1"
        else:
            env[n] = ""
    # docs/deploy.md has a platform's client secret created only for the platforms that are
    # enabled (client id set): an optional secret of a disabled platform stays unset (a service
    # given one warns at start, and --check-config refuses it).
    for e in c.get("env", []):
        m = re.fullmatch(r"(LIFELINE|SIM)_([A-Z]+)_CLIENT_SECRET", e["name"])
        ref = e.get("valueFrom", {}).get("secretKeyRef", {})
        if m and ref.get("optional") and f"{m.group(1)}_{m.group(2)}_CLIENT_ID" not in env:
            env.pop(e["name"], None)
    # Files the configuration points at must exist where the container will see them.
    for n, v in list(env.items()):
        if n.endswith("_FILE") and v.startswith("/"):
            env[n] = gen.file(v, c, n)
    return env


# --------------------------------------------------------------------------------------------


def cmd_drift(overlay: str, rendered: str, bindir: str) -> int:
    docs = load(rendered)
    cms = configmaps(docs)
    candidates = 0
    with tempfile.TemporaryDirectory(prefix="k8s-check-") as tmp:
        gen = Generated(Path(tmp))
        for d in by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet"):
            for c in pod_spec(d).get("containers", []):
                binary = binary_of(c)
                if not binary:
                    continue
                candidates += 1
                env = container_env(d, c, cms, gen)
                exe = Path(bindir).resolve() / binary
                label = f"{overlay}: {d['kind']}/{name(d)} ({binary})"
                if not exe.exists():
                    fail(f"{label}: {exe} not built")
                    continue
                if binary not in SERVICES and b"--check-config" not in exe.read_bytes():
                    # Started without the flag it would serve instead of exiting.
                    print(f"  skip {label}: this binary has no --check-config")
                    continue
                try:
                    r = subprocess.run(
                        ["env", "-i", *[f"{k}={v}" for k, v in sorted(env.items())], str(exe), "--check-config"],
                        capture_output=True, text=True, timeout=15, cwd=tmp,
                    )
                except subprocess.TimeoutExpired:
                    fail(f"{label}: `{binary} --check-config` did not exit within 15 s "
                         "(a binary built before the flag existed? rebuild it)")
                    continue
                out = (r.stdout + r.stderr).strip()
                if r.returncode == 0:
                    print(f"  ok   {label}: {len(env)} variables accepted" + (f" ({out})" if out else ""))
                else:
                    fail(f"{label}: exit {r.returncode}: {out or '(no message)'}")
    if candidates == 0:
        fail(f"{overlay}: no Deployment runs a Lifeline binary")
    return report(f"drift {overlay}")


# --------------------------------------------------------------------------------------------


def cmd_env(overlay: str, rendered: str, deployment: str) -> int:
    docs = load(rendered)
    cms = configmaps(docs)
    with tempfile.TemporaryDirectory(prefix="k8s-check-") as tmp:
        gen = Generated(Path(tmp))
        for d in by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet"):
            if name(d) != deployment:
                continue
            for c in pod_spec(d).get("containers", []):
                secret_vars = {e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
                for k, v in sorted(container_env(d, c, cms, gen).items()):
                    shown = "<generated>" if k in secret_vars else v.replace(tmp, "$TMP")
                    if k == "DATABASE_URL":
                        shown = re.sub(r"//[^@]*@", "//<generated>@", v.replace(tmp, "$TMP"))
                    print(f"{k}={shown}")
            return report(f"env {overlay} {deployment}")
    fail(f"{overlay}: no Deployment {deployment}")
    return report("env")


def cmd_lint(overlay: str, rendered: str) -> int:
    docs = load(rendered)
    cms = configmaps(docs)
    prod = overlay == "prod"

    if by_kind(docs, "Secret"):
        fail(f"{overlay}: renders Secret objects ({', '.join(map(name, by_kind(docs, 'Secret')))}): "
             "secrets are created in the cluster, never kept in the repository")
    for cm, data in cms.items():
        for k in data:
            if SECRET_VARS.match(k):
                fail(f"{overlay}: ConfigMap {cm} holds {k}, a secret: use a Secret")

    workloads = by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for d in workloads:
        where = f"{overlay}: {d['kind']}/{name(d)}"
        spec = pod_spec(d)
        psc = spec.get("securityContext", {})
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        if not any(all(labels.get(k) == v for k, v in p["spec"]["selector"].get("matchLabels", {}).items())
                   for p in pdbs if p["spec"]["selector"].get("matchLabels")):
            if d["kind"] == "StatefulSet" and overlay == "dev" or name(d) == "platform-sim":
                pass  # single dev instances of the infrastructure
            else:
                fail(f"{where}: no PodDisruptionBudget selects it")
        if spec.get("automountServiceAccountToken") is not False:
            fail(f"{where}: automountServiceAccountToken should be false")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                fail(f"{cw}: runAsNonRoot is not true")
            if (sc.get("runAsUser", psc.get("runAsUser")) or 0) == 0:
                fail(f"{cw}: no numeric non-root runAsUser")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{cw}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cw}: allowPrivilegeEscalation is not false")
            if "ALL" not in (sc.get("capabilities", {}).get("drop") or []):
                fail(f"{cw}: capabilities do not drop ALL")
            if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                fail(f"{cw}: seccompProfile is not RuntimeDefault")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        fail(f"{cw}: no {kind}.{r}")
            image = c.get("image", "")
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                fail(f"{cw}: image {image} is not pinned to a tag")
            for e in c.get("env", []):
                if SECRET_VARS.match(e["name"]) and "secretKeyRef" not in e.get("valueFrom", {}):
                    fail(f"{cw}: {e['name']} is a secret but does not come from a secretKeyRef")
            binary = binary_of(c)
            if binary in SERVICES:
                check_service_container(overlay, d, c, cms)
        if labels.get("lifeline.dev/tier") == "app" and prod:
            replicas = d["spec"].get("replicas")
            hpa = hpas.get(name(d))
            least = hpa["spec"].get("minReplicas", 1) if hpa else replicas
            if least is None or least < 2:
                fail(f"{where}: prod runs fewer than 2 replicas ({replicas}, HPA {bool(hpa)})")
            if hpa and replicas is not None:
                fail(f"{where}: has an HPA and a fixed spec.replicas: an apply would undo the HPA")
            if not spec.get("topologySpreadConstraints"):
                fail(f"{where}: no topologySpreadConstraints")
    names = {name(d) for d in workloads}
    for target in hpas:
        if target not in names:
            fail(f"{overlay}: HPA targets {target}, which is not rendered")
    if prod:
        for svc in ("publisher", "token-refresher"):
            if svc not in hpas:
                fail(f"{overlay}: no HPA for {svc}")
        check_ingress(overlay, docs, cms)
        check_nats(overlay, docs, cms)
    return report(f"lint {overlay}")


def check_service_container(overlay: str, d: dict, c: dict, cms: dict[str, dict]) -> None:
    where = f"{overlay}: {d['kind']}/{name(d)}"
    probes = {p: (c.get(p) or {}).get("httpGet", {}).get("path") for p in
              ("startupProbe", "livenessProbe", "readinessProbe")}
    if probes["livenessProbe"] != "/healthz":
        fail(f"{where}: livenessProbe is not GET /healthz")
    if probes["readinessProbe"] != "/readyz":
        fail(f"{where}: readinessProbe is not GET /readyz")
    if not probes["startupProbe"]:
        fail(f"{where}: no HTTP startupProbe")
    # The drain: preStop sleep + platform calls in flight (LIFELINE_PLATFORM_TIMEOUT) + writes.
    timeout = 15.0
    for src in c.get("envFrom", []):
        data = cms.get(src.get("configMapRef", {}).get("name", ""), {})
        if "LIFELINE_PLATFORM_TIMEOUT" in data:
            timeout = duration_seconds(data["LIFELINE_PLATFORM_TIMEOUT"])
    sleep = 0.0
    cmd = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command", [])
    if len(cmd) == 2 and cmd[0].endswith("sleep"):
        sleep = float(cmd[1])
    grace = pod_spec(d).get("terminationGracePeriodSeconds", 30)
    if grace <= sleep + timeout + 10:
        fail(f"{where}: terminationGracePeriodSeconds {grace} is not longer than the drain "
             f"({sleep:g} s preStop + {timeout:g} s platform timeout + 10 s for writes)")


def check_ingress(overlay: str, docs: list[dict], cms: dict[str, dict]) -> None:
    public = None
    for cm, data in cms.items():
        if "LIFELINE_PUBLIC_URL" in data:
            public = data["LIFELINE_PUBLIC_URL"]
    ingresses = by_kind(docs, "Ingress")
    if not ingresses:
        fail(f"{overlay}: no Ingress for the gateway")
        return
    if not public:
        fail(f"{overlay}: LIFELINE_PUBLIC_URL is not set")
        return
    u = urlsplit(public)
    if u.scheme != "https":
        fail(f"{overlay}: LIFELINE_PUBLIC_URL {public} is not https")
    services = {name(s): s for s in by_kind(docs, "Service")}
    hosts = set()
    for ing in ingresses:
        tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
        for rule in ing["spec"].get("rules", []):
            hosts.add(rule.get("host"))
            if rule.get("host") not in tls_hosts:
                fail(f"{overlay}: Ingress/{name(ing)} host {rule.get('host')} has no TLS")
            for p in rule.get("http", {}).get("paths", []):
                svc = p["backend"]["service"]
                s = services.get(svc["name"])
                port = svc["port"].get("name") or svc["port"].get("number")
                if not s or not any(port in (sp.get("name"), sp.get("port")) for sp in s["spec"]["ports"]):
                    fail(f"{overlay}: Ingress/{name(ing)} routes to {svc['name']}:{port}, which does not exist")
                if p["path"].startswith(("/metrics", "/healthz", "/readyz")) or (
                        p["path"] == "/" and p.get("pathType") == "Prefix"):
                    fail(f"{overlay}: Ingress/{name(ing)} exposes {p['path']} ({p.get('pathType')}), "
                         "and with it /metrics")
    if u.hostname not in hosts:
        fail(f"{overlay}: LIFELINE_PUBLIC_URL host {u.hostname} is not an Ingress host ({', '.join(map(str, hosts))}): "
             "OAuth callbacks would not reach the gateway")
    if u.path not in ("", "/"):
        fail(f"{overlay}: LIFELINE_PUBLIC_URL {public} has a path; the Ingress routes the host's root")


def check_nats(overlay: str, docs: list[dict], cms: dict[str, dict]) -> None:
    sts = [s for s in by_kind(docs, "StatefulSet") if name(s) == "nats"]
    if not sts:
        fail(f"{overlay}: no NATS StatefulSet")
        return
    nats = sts[0]
    replicas = nats["spec"].get("replicas", 1)
    if replicas < 3:
        fail(f"{overlay}: NATS runs {replicas} servers; a JetStream cluster needs 3")
    if not nats["spec"].get("volumeClaimTemplates"):
        fail(f"{overlay}: NATS has no volumeClaimTemplates")
    image = pod_spec(nats)["containers"][0]["image"]
    m = re.search(r":(\d+)\.(\d+)\.(\d+)", image)
    if not m or (int(m.group(1)), int(m.group(2))) < (2, 10):
        fail(f"{overlay}: NATS image {image} is not a pinned 2.10+ release")
    common = next((data for cm, data in cms.items() if cm.startswith("lifeline-common")), {})
    urls = [u for u in common.get("NATS_URL", "").split(",") if u.strip()]
    if len(urls) != replicas:
        fail(f"{overlay}: NATS_URL lists {len(urls)} servers, the StatefulSet runs {replicas}")
    if int(common.get("LIFELINE_STREAM_REPLICAS", "1")) != min(replicas, 3):
        fail(f"{overlay}: LIFELINE_STREAM_REPLICAS is {common.get('LIFELINE_STREAM_REPLICAS')}, expected 3")
    conf = next((data.get("nats.conf") for cm, data in cms.items() if cm.startswith("nats-config")), None)
    if not conf:
        fail(f"{overlay}: no nats.conf ConfigMap")
        return
    for i in range(replicas):
        if f"nats-{i}.nats-headless:6222" not in conf:
            fail(f"{overlay}: nats.conf has no route to nats-{i}")
    for word in ("jetstream", "store_dir", "tls", "include"):
        if word not in conf:
            fail(f"{overlay}: nats.conf has no {word}")
    if re.search(r"password\s*[:=]|token\s*[:=]", conf, re.I):
        fail(f"{overlay}: nats.conf holds a credential; it belongs in the included Secret")


# --------------------------------------------------------------------------------------------


def cmd_nats_conf(rendered: str) -> int:
    docs = load(rendered)
    conf = next((c["data"]["nats.conf"] for c in by_kind(docs, "ConfigMap")
                 if name(c).startswith("nats-config")), None)
    if conf is None:
        print("  (no nats.conf in this overlay)")
        return 0
    servers = []
    for candidate in [shutil.which("nats-server"), str(ROOT / ".run/tools/nats-venv/bin/nats-server")]:
        if candidate and os.access(candidate, os.X_OK) and candidate not in servers:
            servers.append(candidate)
    if not servers:
        print("  (nats-server not installed: skipping the nats.conf load test)")
        return 0
    with tempfile.TemporaryDirectory(prefix="k8s-check-nats-") as tmp:
        t = Path(tmp)
        for d in ("etc/nats/config", "etc/nats/auth", "etc/nats/tls", "data", "run"):
            (t / d).mkdir(parents=True)
        text = (conf.replace("/etc/nats/", f"{tmp}/etc/nats/")
                .replace("/data/", f"{tmp}/data/").replace("/var/run/nats/", f"{tmp}/run/"))
        (t / "etc/nats/config/nats.conf").write_text(text)
        gen = Generated(t)
        crt, key = gen.pem()
        for f, content in (("tls.crt", crt), ("tls.key", key), ("ca.crt", crt)):
            (t / "etc/nats/tls" / f).write_text(content)
        # The shape docs/deploy.md gives the nats-auth Secret.
        (t / "etc/nats/auth/auth.conf").write_text(
            "accounts {\n"
            "  LIFELINE { jetstream: enabled, users: [ { user: lifeline, password: \"%s\" } ] }\n"
            "  SYS { users: [ { user: sys, password: \"%s\" } ] }\n"
            "}\nsystem_account: SYS\n" % (Generated.token(24), Generated.token(24)))
        for server in servers:
            version = subprocess.run([server, "--version"], capture_output=True, text=True).stdout.strip()
            r = subprocess.run([server, "-t", "-c", str(t / "etc/nats/config/nats.conf")],
                               capture_output=True, text=True, env={"SERVER_NAME": "nats-0", "PATH": "/usr/bin:/bin"})
            out = (r.stdout + r.stderr).strip().replace(tmp, "")
            if r.returncode == 0:
                print(f"  ok   nats.conf loads in {version}")
            else:
                fail(f"nats.conf does not load in {version}: {out}")
    return report("nats-conf")


# --------------------------------------------------------------------------------------------

CRD_KINDS = {
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}


def cmd_monitoring(rendered: str, out: str) -> int:
    docs = load(rendered)
    rest = []
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        if key not in CRD_KINDS:
            rest.append(d)
            continue
        where = f"{d['kind']}/{name(d)}"
        print(f"  skip kubernetes-validate for {where} (CRD); checked here")
        spec = d.get("spec") or {}
        if d["kind"] == "PrometheusRule":
            groups = spec.get("groups") or []
            if not groups or not all(g.get("name") and g.get("rules") for g in groups):
                fail(f"{where}: spec.groups must be non-empty groups with a name and rules")
            for g in groups:
                for r in g.get("rules", []):
                    if set(r) - {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}:
                        fail(f"{where}: rule {r.get('alert')} has unknown fields {set(r) - {'alert', 'expr'}}")
                    if not r.get("expr") or not (r.get("alert") or r.get("record")):
                        fail(f"{where}: a rule lacks expr or alert/record")
        else:
            if set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"}:
                fail(f"{where}: unknown spec fields {sorted(set(spec))}")
            if not spec.get("selector") or not spec.get("endpoints"):
                fail(f"{where}: needs spec.selector and spec.endpoints")
            for e in spec.get("endpoints", []):
                if set(e) - {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings",
                             "metricRelabelings", "honorLabels", "targetPort"}:
                    fail(f"{where}: unknown endpoint fields {sorted(e)}")
    with open(out, "w") as f:
        yaml.safe_dump_all(rest, f, sort_keys=False)
    return report("monitoring CRDs")


def prometheus_rule_text() -> str:
    body = RULES.read_text()
    groups = yaml.safe_load(body)["groups"]
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "lifeline", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": groups},
    }
    header = ("# Generated from rules/lifeline.rules.yaml by `python3 scripts/k8s_check.py sync-rules`;\n"
              "# edit that file, not this one (`make k8s-check` fails when they differ).\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def cmd_sync_rules(check: bool) -> int:
    want = prometheus_rule_text()
    have = PROMETHEUS_RULE.read_text() if PROMETHEUS_RULE.exists() else ""
    if check:
        if yaml.safe_load(have) != yaml.safe_load(want):
            fail(f"{PROMETHEUS_RULE.relative_to(ROOT)} differs from {RULES.relative_to(ROOT)}: "
                 "run `python3 scripts/k8s_check.py sync-rules`")
        else:
            print(f"  ok   {PROMETHEUS_RULE.relative_to(ROOT)} matches {RULES.relative_to(ROOT)}")
        return report("rules in sync")
    PROMETHEUS_RULE.write_text(want)
    print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")
    return 0


# --------------------------------------------------------------------------------------------


def report(what: str) -> int:
    if failures:
        print(f"{what}: {len(failures)} problem(s)", file=sys.stderr)
        return 1
    print(f"{what}: ok")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 64
    cmd, args = argv[0], argv[1:]
    if cmd == "lint" and len(args) == 2:
        return cmd_lint(*args)
    if cmd == "drift" and len(args) == 3:
        return cmd_drift(*args)
    if cmd == "env" and len(args) == 3:
        return cmd_env(*args)
    if cmd == "nats-conf" and len(args) == 1:
        return cmd_nats_conf(*args)
    if cmd == "monitoring" and len(args) == 2:
        return cmd_monitoring(*args)
    if cmd == "sync-rules":
        return cmd_sync_rules("--check" in args)
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
