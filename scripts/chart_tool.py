#!/usr/bin/env python3
"""Helpers of scripts/check-chart.sh and scripts/alerting-e2e.sh; rendered manifests are read from stdin.

  kinds                          "Kind name" of every rendered object, one a line
  rules                          the PrometheusRule's groups as a plain Prometheus rules file
  configmap-key NAME KEY         data[KEY] of the ConfigMap called NAME
  value FILE DOTTED.KEY          a value from a YAML values file (stdin unused)
  spec-compare SPEC VALUES       the rules file (stdin) against observability.md's alert table: the same
                                 alerts in the same groups, expressions (placeholders filled from VALUES),
                                 `for`, severity, action, service and the four annotations
  metric-names CATALOGUE FILE..  every metric a rules file (stdin) or a dashboard JSON (FILE..) uses is
                                 in docs/metrics.md (CATALOGUE) or a known outside metric
"""
import json
import re
import sys

import yaml

# Metrics the rules and dashboards may use that Ringback does not serve.
OUTSIDE_METRICS = {"up", "ALERTS", "kube_pod_container_status_ready", "kube_pod_container_status_restarts_total"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan", "Inf", "NaN"}


def docs():
    return [d for d in yaml.safe_load_all(sys.stdin) if d]


def fail(msg):
    print(f"chart_tool: {msg}", file=sys.stderr)
    sys.exit(1)


def spec_alerts(spec_path, values):
    """(group, alert, expr-or-None, for-or-None, severity, action) rows of observability.md's alert table."""
    rows = []
    text = open(spec_path, encoding="utf-8").read()
    section = text.split("## Alert rules", 1)[1]
    last_pod_expr = None
    for line in section.splitlines():
        if not line.startswith("| ges-"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        group, names, expr, for_, severity, action = cells
        for name in re.findall(r"`([A-Z0-9_]+)`", names):
            e = None
            code = re.search(r"_(\d{3})_", name)
            code = code.group(1) if code else None
            if expr.startswith("same with") and last_pod_expr and code:
                e = last_pod_expr.replace('"400"', f'"{code}"').replace("http_400_", f"http_{code}_")
            elif re.fullmatch(r"`[^`]+`(\s*\(.*\))?", expr):  # code, optionally followed by a remark
                e = expr[1:].split("`", 1)[0]
                e = (e.replace("<job>", str(values["alerts"]["job"]))
                      .replace("<minPods>", str(values["alerts"]["minPods"]))
                      .replace("<memoryLimitBytes>", str(values["alerts"]["memoryLimitBytes"])))
                if code:
                    e = e.replace("<code>", code)
                if name.endswith("_POD") and code == "400":
                    last_pod_expr = e
                if "<" in e and re.search(r"<[a-zA-Z]+>", e):
                    fail(f"spec expression of {name} has a placeholder this check does not know: {e}")
            rows.append((group, name, e, None if for_ in ("—", "-", "") else for_, severity, action))
    if len(rows) < 20:
        fail(f"found only {len(rows)} alerts in {spec_path}; has the table moved?")
    return rows


# Rule groups of alerts an issue added beyond observability.md (the README's alert table lists them).
EXTENSION_GROUPS = {"ringback-extensions"}


def spec_compare(spec_path, values_path):
    values = yaml.safe_load(open(values_path, encoding="utf-8"))
    rules = yaml.safe_load(sys.stdin)
    got = {}
    for g in rules["groups"]:
        for r in g["rules"]:
            if r["alert"] in got:
                fail(f"alert {r['alert']} defined twice")
            got[r["alert"]] = (g["name"], r)
    want = spec_alerts(spec_path, values)
    problems = []
    norm = lambda s: re.sub(r"\s+", " ", s).strip()
    for group, name, expr, for_, severity, action in want:
        if name not in got:
            problems.append(f"{name}: in the spec, not in the chart")
            continue
        g, r = got.pop(name)
        if g != group:
            problems.append(f"{name}: group {g}, spec says {group}")
        if expr is not None and norm(r["expr"]) != norm(expr):
            problems.append(f"{name}: expr\n    chart: {r['expr']}\n    spec:  {expr}")
        if r.get("for") != for_:
            problems.append(f"{name}: for {r.get('for')}, spec says {for_}")
        labels = r.get("labels", {})
        for key, val in (("severity", severity), ("action", action), ("service", "GES")):
            if labels.get(key) != val:
                problems.append(f"{name}: label {key}={labels.get(key)}, spec says {val}")
        ann = r.get("annotations", {})
        for key in ("summary", "description", "dashboard", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{name}: annotation {key} missing")
        if not ann.get("runbook_url", "").endswith(f"/docs/runbook.md#{name.lower()}"):
            problems.append(f"{name}: runbook_url {ann.get('runbook_url')} does not point at docs/runbook.md#{name.lower()}")
    for name, (g, r) in got.items():
        if g not in EXTENSION_GROUPS:
            problems.append(f"{name}: in the chart, not in the spec")
            continue
        # Beyond the spec (an issue's contract): the same labels and annotations as the spec's rules.
        labels, ann = r.get("labels", {}), r.get("annotations", {})
        if labels.get("service") != "GES" or labels.get("action") not in ("page", "email") or not labels.get("severity"):
            problems.append(f"{name}: labels severity, action (page|email) and service=GES are required")
        for key in ("summary", "description", "dashboard", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{name}: annotation {key} missing")
    if problems:
        fail("rules differ from observability.md:\n  " + "\n  ".join(problems))
    checked = sum(1 for w in want if w[2] is not None)
    print(f"{len(want)} alerts match observability.md (groups, for, severity, action, service, annotations; "
          f"{checked} expressions compared verbatim, the rest are described in prose there)")


def metrics_in(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def metric_names(catalogue_path, dashboards):
    catalogue = set(re.findall(r"^\| `([A-Za-z_:][A-Za-z0-9_:]*)` \|", open(catalogue_path, encoding="utf-8").read(), re.M))
    histograms = set(re.findall(r"^\| `([A-Za-z_:][A-Za-z0-9_:]*)` \| histogram", open(catalogue_path, encoding="utf-8").read(), re.M))
    if len(catalogue) < 30:
        fail(f"read only {len(catalogue)} metrics from {catalogue_path}")
    exprs = []
    rules = yaml.safe_load(sys.stdin)
    for g in rules["groups"]:
        for r in g["rules"]:
            exprs.append((f"rule {r['alert']}", r["expr"]))
    for path in dashboards:
        d = json.load(open(path, encoding="utf-8"))
        for p in d["panels"]:
            for t in p.get("targets", []):
                exprs.append((f"{d['title']} / {p['title']}", t["expr"]))
    unknown = []
    used = set()
    for where, expr in exprs:
        for name in metrics_in(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name in catalogue or name in OUTSIDE_METRICS or (base in histograms and base != name):
                used.add(name)
            else:
                unknown.append(f"{where}: {name}")
    if unknown:
        fail("metrics not in " + catalogue_path + ":\n  " + "\n  ".join(unknown))
    print(f"{len(exprs)} expressions use {len(used)} metric names, all in {catalogue_path} or kube-state-metrics/Prometheus")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd = argv[0]
    if cmd == "kinds":
        for d in docs():
            print(d.get("kind"), d.get("metadata", {}).get("name"))
    elif cmd == "rules":
        rules = [d for d in docs() if d.get("kind") == "PrometheusRule"]
        if len(rules) != 1:
            fail(f"expected one PrometheusRule in the render, found {len(rules)}")
        sys.stdout.write(yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, sort_keys=False, width=1000))
    elif cmd == "configmap-key" and len(argv) == 3:
        for d in docs():
            if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == argv[1]:
                sys.stdout.write(d["data"][argv[2]])
                return
        fail(f"no ConfigMap {argv[1]} in the render")
    elif cmd == "value" and len(argv) == 3:
        with open(argv[1], encoding="utf-8") as f:
            node = yaml.safe_load(f)
        for part in argv[2].split("."):
            node = node[part]
        print(node)
    elif cmd == "spec-compare" and len(argv) == 3:
        spec_compare(argv[1], argv[2])
    elif cmd == "metric-names" and len(argv) >= 2:
        metric_names(argv[1], argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
