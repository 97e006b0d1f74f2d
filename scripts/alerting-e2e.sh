#!/usr/bin/env bash
# End-to-end alerting test on loopback, with the real programs:
#   Ringback (${RINGBACK_BIN:-target/debug/ringback}, its configuration file rendered from the chart) on a fresh
#   PostgreSQL database and its own Redis on a free port; Prometheus scraping it every second with the rules
#   rendered from the chart (charts/ringback/ci/e2e-values.yaml); Alertmanager running the plain alertmanager.yml
#   rendered from the same values, its page and email receivers pointed at a local webhook receiver.
# Stop Redis (cache and dispatch stream) → GES_HEALTH arrives on the page route (action=page, severity=critical);
# start Redis again → it resolves; flood 400s → GES_HTTP_400_POD arrives on the email route.
# Bounded: every wait has a deadline and the whole run a hard timeout (E2E_TIMEOUT_SECONDS, default 240).
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), as ./scripts/test.sh provides.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ -z "${RINGBACK_E2E_UNDER_TIMEOUT:-}" ]; then
  limit=${E2E_TIMEOUT_SECONDS:-240}
  status=0
  RINGBACK_E2E_UNDER_TIMEOUT=1 timeout -k 15 "$limit" "$0" "$@" || status=$?
  [ "$status" = 124 ] && printf 'alerting-e2e: FAILED: hard timeout of %ss reached\n' "$limit" >&2
  exit "$status"
fi

CHART=charts/ringback
VALUES=$CHART/ci/e2e-values.yaml
RELEASE=ringback-e2e
POD=ringback-e2e-0
ADMIN_TOKEN=e2e-admin-token
RINGBACK_BIN=${RINGBACK_BIN:-target/debug/ringback}
PG_URL_BASE=${RINGBACK_E2E_POSTGRES:-postgres://postgres@127.0.0.1:5432}
START=$(date +%s)

say() { printf '== alerting-e2e [%3ss]: %s\n' "$(($(date +%s) - START))" "$*"; }
fail() {
  printf 'alerting-e2e: FAILED: %s\n' "$*" >&2
  FAILED=1
  exit 1
}

for tool in psql:postgresql-client createdb:postgresql-client redis-server:redis-server redis-cli:redis-tools \
  prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager curl:curl python3:python3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 && continue
  say "installing Debian package ${tool#*:}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null) || true
  command -v "${tool%%:*}" >/dev/null 2>&1 || fail "${tool%%:*} is missing"
done
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet PyYAML 2>/dev/null ||
  python3 -m pip install --quiet --break-system-packages PyYAML || fail "python3 cannot import yaml"
[ -x "$RINGBACK_BIN" ] || fail "no Ringback binary at $RINGBACK_BIN (cargo build, or set RINGBACK_BIN)"
HELM=$(./scripts/get-helm.sh) || fail "no helm"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ringback-e2e.XXXXXX")
DB=ringback_e2e_$(date +%s)_$$
FAILED=
PIDS=()
REDIS_PID=
DB_CREATED=

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ "$status" = 0 ] || FAILED=1
  for pid in "${PIDS[@]}" $REDIS_PID; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}" $REDIS_PID; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ -n "$DB_CREATED" ] && { dropdb -h 127.0.0.1 -U postgres --if-exists --force "$DB" 2>/dev/null || say "could not drop database $DB"; }
  if [ -n "$FAILED" ]; then
    for log in ringback prometheus alertmanager redis hooks; do
      [ -s "$TMP/$log.log" ] || continue
      printf -- '--- last lines of %s.log\n' "$log" >&2
      tail -n 25 "$TMP/$log.log" >&2
    done
    [ -s "$TMP/hooks.jsonl" ] && { printf -- '--- notifications received\n' >&2; python3 - "$TMP/hooks.jsonl" >&2 <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    for a in r["body"].get("alerts", []):
        print(r["path"], a["status"], a["labels"].get("alertname"), a["labels"])
EOF
    }
  fi
  rm -rf "$TMP"
  [ "$status" = 0 ] || printf 'alerting-e2e: exit %s after %ss\n' "$status" "$(($(date +%s) - START))" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'fail "interrupted (signal)"' INT TERM

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.25 s until it succeeds or the deadline passes.
wait_until() {
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "waited ${limit}s for: $what"
    sleep 0.25
  done
}

read -r RB_PORT REDIS_PORT PROM_PORT AM_PORT HOOK_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)
say "ports: ringback $RB_PORT, redis $REDIS_PORT, prometheus $PROM_PORT, alertmanager $AM_PORT, webhook receiver $HOOK_PORT"

# --- render the chart with the test values: rules, alertmanager.yml, ringback.toml
"$HELM" template "$RELEASE" "$CHART" -f "$VALUES" \
  --set "alerting.page.webhookUrl=http://127.0.0.1:$HOOK_PORT/page" \
  --set "alerting.email.webhookUrl=http://127.0.0.1:$HOOK_PORT/email" >"$TMP/render.yaml" || fail "helm template"
python3 scripts/chart_tool.py rules <"$TMP/render.yaml" >"$TMP/rules.yaml"
python3 scripts/chart_tool.py configmap-key "$RELEASE-alertmanager-example" alertmanager.yml <"$TMP/render.yaml" >"$TMP/alertmanager.yml"
python3 scripts/chart_tool.py configmap-key "$RELEASE" ringback.toml <"$TMP/render.yaml" >"$TMP/ringback.toml"
JOB=$(python3 scripts/chart_tool.py value "$VALUES" alerts.job)
say "rendered $(grep -c '^ *- alert:' "$TMP/rules.yaml") rules, alertmanager.yml and ringback.toml from $VALUES (job $JOB)"

# --- webhook receiver: one JSON line per notification, with the path it came in on
cat >"$TMP/hooks.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        out.write(json.dumps({"path": self.path, "body": body}) + "\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, fmt, *args):
        sys.stderr.write("hook: " + fmt % args + "\n")
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
EOF
: >"$TMP/hooks.jsonl"
python3 "$TMP/hooks.py" "$HOOK_PORT" "$TMP/hooks.jsonl" >"$TMP/hooks.log" 2>&1 &
PIDS+=($!)

# --- PostgreSQL database and Redis of our own
pg_isready -h 127.0.0.1 -p 5432 -q || fail "PostgreSQL is not reachable on 127.0.0.1:5432 (./scripts/test.sh starts it)"
createdb -h 127.0.0.1 -U postgres "$DB" || fail "createdb $DB"
DB_CREATED=1
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >>"$TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_until 10 "redis-server on port $REDIS_PORT" redis-cli -p "$REDIS_PORT" ping
}
start_redis

# --- Ringback
RINGBACK__DATABASE__URL="$PG_URL_BASE/$DB" \
  RINGBACK__REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
  RINGBACK__LISTEN__INTERNAL="127.0.0.1:$RB_PORT" \
  RINGBACK__LISTEN__EXTERNAL= \
  RINGBACK__ADMIN__TOKENS="$ADMIN_TOKEN" \
  RINGBACK_LOG=warn \
  "$RINGBACK_BIN" serve --config "$TMP/ringback.toml" >"$TMP/ringback.log" 2>&1 &
PIDS+=($!)
RB_PID=$!

# --- Alertmanager and Prometheus
prometheus-alertmanager --config.file="$TMP/alertmanager.yml" --storage.path="$TMP/alertmanager" \
  --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= >"$TMP/alertmanager.log" 2>&1 &
PIDS+=($!)
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $TMP/rules.yaml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$AM_PORT"]
scrape_configs:
  - job_name: $JOB
    static_configs:
      - targets: ["127.0.0.1:$RB_PORT"]
        labels:
          pod: $POD
EOF
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prometheus" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --rules.alert.resend-delay=2s >"$TMP/prometheus.log" 2>&1 &
PIDS+=($!)

alive() { kill -0 "$RB_PID" 2>/dev/null || fail "ringback exited (see its log)"; }
ready() { alive && curl -sf "http://127.0.0.1:$RB_PORT/health/ready"; }
wait_until 90 "ringback /health/ready (migrations on a fresh database)" ready
wait_until 30 "prometheus /-/ready" curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"
wait_until 30 "alertmanager /-/ready" curl -sf "http://127.0.0.1:$AM_PORT/-/ready"
say "ringback, prometheus and alertmanager are up"

# prom_true EXPR: the instant query returns at least one sample.
prom_true() {
  curl -sf --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
}
wait_until 30 "Prometheus scrapes ringback with GES_HEALTH 0" prom_true "GES_HEALTH{job=\"$JOB\", pod=\"$POD\"} == 0"
prom_true "http_400_tolerance{pod=\"$POD\"} == 5" || fail "http_400_tolerance is not 5: the chart's ringback.toml did not reach the app"
prom_true 'up == 1' || fail "target not up"
say "Prometheus scrapes ringback (GES_HEALTH 0, http_400_tolerance 5 from the chart's ringback.toml)"

# Every dashboard query parses and runs on this Prometheus.
python3 - "http://127.0.0.1:$PROM_PORT" "$CHART"/dashboards/*.json <<'EOF' || fail "a dashboard query does not run"
import json, sys, urllib.parse, urllib.request
base, files = sys.argv[1], sys.argv[2:]
n = 0
for path in files:
    for p in json.load(open(path))["panels"]:
        for t in p.get("targets", []):
            q = t["expr"].replace("$job", ".+").replace("$pod", ".+").replace("$__range", "1h")
            url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
            try:
                json.load(urllib.request.urlopen(url, timeout=10))
            except Exception as e:
                sys.exit(f"{path} / {p['title']}: {q}: {e}")
            n += 1
print(f"   {n} dashboard queries run on Prometheus")
EOF

# hook_seen PATH ALERTNAME STATUS [LABEL=VALUE...]: since the mark (the notification count when the step began),
# the receiver got that alert with that status on PATH.
HOOK_MARK=0
mark_hooks() { HOOK_MARK=$(wc -l <"$TMP/hooks.jsonl"); }
hook_seen() {
  python3 - "$TMP/hooks.jsonl" "$HOOK_MARK" "$@" <<'EOF'
import json, sys
mark, path, name, status = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
want = dict(kv.split("=", 1) for kv in sys.argv[6:])
for line in open(sys.argv[1]).readlines()[mark:]:
    r = json.loads(line)
    if r["path"] != path:
        continue
    for a in r["body"].get("alerts", []):
        if a["labels"].get("alertname") == name and a["status"] == status and all(a["labels"].get(k) == v for k, v in want.items()):
            sys.exit(0)
sys.exit(1)
EOF
}

# --- 1. Redis down → GES_HEALTH pages
say "stopping Redis (the cache and the dispatch stream)"
mark_hooks
kill "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
REDIS_PID=
wait_until 60 "GES_HEALTH firing on the page route" \
  hook_seen /page GES_HEALTH firing action=page severity=critical service=GES pod="$POD" job="$JOB"
say "page route received GES_HEALTH firing (action=page, severity=critical, service=GES, pod=$POD)"
prom_true 'REDIS_CONNECTION == 1' && prom_true 'ORS_REDIS_STATUS == 1' || fail "REDIS_CONNECTION/ORS_REDIS_STATUS not 1 while Redis is down"
curl -sf "http://127.0.0.1:$RB_PORT/health/ready" >/dev/null || fail "ringback became unready with Redis down (readiness must follow the database only)"

# --- 2. Redis back → GES_HEALTH resolves
say "starting Redis again on port $REDIS_PORT"
mark_hooks
start_redis
wait_until 60 "GES_HEALTH resolved on the page route" hook_seen /page GES_HEALTH resolved action=page pod="$POD"
say "page route received GES_HEALTH resolved"

# --- 3. a flood of 400s → GES_HTTP_400_POD on the email route
bad_request() {
  curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$RB_PORT/admin/v1/tenants/e2e" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d '{"bogus":1}'
}
mark_hooks
code=$(bad_request)
[ "$code" = 400 ] || fail "PUT /admin/v1/tenants/e2e with an unknown field answered $code, not 400"
# The failure counter's series starts at its first 400; increase() needs a sample before the flood.
wait_until 30 "Prometheus sees the first 400" prom_true "ges_http_failed_requests_total{httpCode=\"400\", pod=\"$POD\"} >= 1"
for _ in $(seq 1 20); do
  code=$(bad_request)
  [ "$code" = 400 ] || fail "a bad request answered $code, not 400"
done
say "sent 21 requests answered 400 (tolerance 5 per 2 minutes)"
wait_until 60 "GES_HTTP_400_POD firing on the email route" \
  hook_seen /email GES_HTTP_400_POD firing action=email severity=info service=GES pod="$POD"
say "email route received GES_HTTP_400_POD firing (action=email, severity=info, pod=$POD)"

# --- nothing on the wrong route
python3 - "$TMP/hooks.jsonl" <<'EOF' || fail "an alert reached the wrong route"
import json, sys
routes = {"/page": "page", "/email": "email"}
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    for a in r["body"].get("alerts", []):
        n += 1
        if a["labels"].get("action") != routes.get(r["path"]):
            sys.exit(f"{a['labels'].get('alertname')} (action={a['labels'].get('action')}) arrived on {r['path']}")
print(f"   {n} alert notifications, each on the route of its action")
EOF
say "OK: GES_HEALTH paged and resolved, GES_HTTP_400_POD emailed"
