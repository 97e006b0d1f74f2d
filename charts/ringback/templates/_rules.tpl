{{/*
The alert rules of observability.md § Alert rules: four groups, every rule labelled severity, action and
service: GES, annotated summary, description, dashboard and runbook_url. Used by the PrometheusRule and by the
plain rules ConfigMap, so both always carry the same rules. Thresholds in expressions come from values.
Tested by tests/alerts.test.yaml (promtool test rules, run by scripts/check-chart.sh).
*/}}

{{/* One rule. Argument: dict root, alert, expr, for (empty = none), severity, action, dashboard (uid), summary, description. */}}
{{- define "ringback.rule" -}}
{{- $root := .root -}}
- alert: {{ .alert }}
  expr: {{ .expr | quote }}
  {{- if .for }}
  for: {{ .for }}
  {{- end }}
  labels:
    {{- with $root.Values.alerts.extraLabels }}
    {{- toYaml (omit . "severity" "action" "service" "namespace") | nindent 4 }}
    {{- end }}
    {{- if $root.Values.alerts.namespaceLabel }}
    namespace: {{ $root.Release.Namespace }}
    {{- end }}
    severity: {{ .severity }}
    action: {{ .action }}
    service: GES
  annotations:
    summary: {{ .summary | quote }}
    description: {{ .description | quote }}
    dashboard: {{ printf "%s/d/%s" (trimSuffix "/" $root.Values.alerts.grafanaUrl) .dashboard | quote }}
    runbook_url: {{ printf "%s/docs/runbook.md#%s" (trimSuffix "/" $root.Values.alerts.runbookBaseUrl) (lower .alert) | quote }}
{{- end }}

{{- define "ringback.ruleGroups" -}}
{{- $job := include "ringback.alertJob" . }}
{{- $minPods := int .Values.alerts.minPods }}
{{- $mem := include "ringback.memoryLimitBytes" . }}
{{- $ksm := include "ringback.ksmSelector" . }}
{{- $perf := "ringback-performance" }}
{{- $biz := "ringback-business-logic" -}}
- name: ges-performance
  rules:
    {{- include "ringback.rule" (dict "root" . "alert" "GES_UP" "for" "15m" "severity" "critical" "action" "page" "dashboard" $perf
        "expr" (printf "(count(up{job=%q} == 1) or vector(0)) < %d" $job $minPods)
        "summary" (printf "Fewer than %d Ringback replicas are up" $minPods)
        "description" (printf "Only {{ $value }} target(s) of job %s have answered scrapes for 15 minutes; at least %d are expected. Bookings may be failing." $job $minPods)) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_CPU_USAGE" "for" "5m" "severity" "info" "action" "email" "dashboard" $perf
        "expr" `rate(ges_process_cpu_seconds_total[1m]) > 0.9`
        "summary" "Ringback pod uses more than 0.9 CPU"
        "description" `Pod {{ $labels.pod }} has used {{ printf "%.2f" $value }} CPU seconds per second for 5 minutes.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_MEMORY_USAGE" "for" "90s" "severity" "info" "action" "email" "dashboard" $perf
        "expr" (printf "ges_process_resident_memory_bytes / %s > 0.8" $mem)
        "summary" "Ringback pod uses more than 80% of its memory limit"
        "description" (printf "Pod {{ $labels.pod }} uses {{ $value | humanizePercentage }} of its %s-byte memory limit." $mem)) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_EVENT_LOOP_LAG" "for" "5m" "severity" "warning" "action" "email" "dashboard" $perf
        "expr" `max by (pod) (ges_eventloop_lag_seconds) > 0.005`
        "summary" "Ringback event loop lags more than 5 ms"
        "description" `A runtime worker of pod {{ $labels.pod }} has lagged {{ $value | humanizeDuration }} behind its timer for 5 minutes.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_NOT_READY_WARNING" "for" "10m" "severity" "warning" "action" "email" "dashboard" $perf
        "expr" (printf "sum(kube_pod_container_status_ready{%s}) / count(kube_pod_container_status_ready{%s}) < 0.75" $ksm $ksm)
        "summary" "Less than 75% of Ringback containers are ready"
        "description" `Only {{ $value | humanizePercentage }} of the release's Ringback containers have been ready for 10 minutes.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_NOT_READY_CRITICAL" "for" "5m" "severity" "critical" "action" "page" "dashboard" $perf
        "expr" (printf "sum(kube_pod_container_status_ready{%s}) / count(kube_pod_container_status_ready{%s}) < 0.5" $ksm $ksm)
        "summary" "Less than half of the Ringback containers are ready"
        "description" `Only {{ $value | humanizePercentage }} of the release's Ringback containers have been ready for 5 minutes.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_PODS_RESTART" "for" "" "severity" "critical" "action" "page" "dashboard" $perf
        "expr" (printf "sum(increase(kube_pod_container_status_restarts_total{%s}[15m])) > 5" $ksm)
        "summary" "Ringback containers restart repeatedly"
        "description" `The release's Ringback containers restarted {{ printf "%.0f" $value }} times in 15 minutes.`) | nindent 4 }}
- name: ges-health
  rules:
    {{- include "ringback.rule" (dict "root" . "alert" "GES_HEALTH" "for" "" "severity" "critical" "action" "page" "dashboard" $perf
        "expr" `GES_HEALTH > 0`
        "summary" "Ringback lost a required dependency"
        "description" `Pod {{ $labels.pod }} reports GES_HEALTH=1: the database or the dispatch-stream Redis is down. Bookings or hand-offs to the voice platform are failing or waiting.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_REDIS_DOWN" "for" "2m" "severity" "warning" "action" "email" "dashboard" $perf
        "expr" `REDIS_CONNECTION > 0`
        "summary" "Ringback cache Redis is down"
        "description" `Pod {{ $labels.pod }} cannot reach the cache Redis for 2 minutes: throttles fall back to per-replica limits. When the same Redis holds the dispatch stream, GES_HEALTH and GES_ORS_REDIS_DOWN page too.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_ORS_REDIS_DOWN" "for" "5m" "severity" "critical" "action" "page" "dashboard" $perf
        "expr" `ORS_REDIS_STATUS > 0`
        "summary" "Ringback dispatch-stream Redis is down"
        "description" `Pod {{ $labels.pod }} cannot reach the dispatch-stream Redis for 5 minutes: due callbacks are not handed to the voice platform.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_POSTGRES_DOWN" "for" "1m" "severity" "critical" "action" "page" "dashboard" $perf
        "expr" `POSTGRES_STATUS > 0`
        "summary" "Ringback database is down"
        "description" `Pod {{ $labels.pod }} cannot reach PostgreSQL for 1 minute: the API answers 503 and the pod is not ready.`) | nindent 4 }}
- name: ges-networking
  rules:
    {{- range $code := list "400" "401" "404" "500" }}
    {{- include "ringback.rule" (dict "root" $ "alert" (printf "GES_HTTP_%s_POD" $code) "for" "" "severity" "info" "action" "email" "dashboard" $perf
        "expr" (printf "sum by (pod) (increase(ges_http_failed_requests_total{httpCode=%q}[2m])) > on(pod) http_%s_tolerance" $code $code)
        "summary" (printf "Ringback pod answers too many HTTP %s" $code)
        "description" (printf "Pod {{ $labels.pod }} answered {{ printf \"%%.0f\" $value }} requests with HTTP %s in 2 minutes, over its http_%s_tolerance." $code $code)) | nindent 4 }}
    {{- end }}
    {{- range $code := list "400" "401" "404" "500" }}
    {{- include "ringback.rule" (dict "root" $ "alert" (printf "GES_HTTP_%s_TENANT" $code) "for" "" "severity" "info" "action" "email" "dashboard" $perf
        "expr" (printf "sum by (tenant) (increase(ges_http_failed_requests_total{httpCode=%q}[2m])) > 0" $code)
        "summary" (printf "Ringback answered HTTP %s to a tenant" $code)
        "description" (printf "Tenant {{ $labels.tenant }} got {{ printf \"%%.0f\" $value }} HTTP %s answers in 2 minutes." $code)) | nindent 4 }}
    {{- end }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_SLOW_HTTP_RESPONSE_TIME" "for" "" "severity" "warning" "action" "email" "dashboard" $perf
        "expr" `sum by (pod) (increase(ges_http_request_duration_seconds_sum[15m])) / sum by (pod) (increase(ges_http_request_duration_seconds_count[15m])) > 1.5`
        "summary" "Ringback responses take more than 1.5 s on average"
        "description" `Pod {{ $labels.pod }} took {{ $value | humanizeDuration }} per request on average over 15 minutes.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_HTTP_P99_LATENCY" "for" "10m" "severity" "warning" "action" "email" "dashboard" $perf
        "expr" `histogram_quantile(0.99, sum by (le, pod) (rate(ges_http_request_duration_seconds_bucket[5m]))) > 0.5`
        "summary" "Ringback p99 latency above 500 ms"
        "description" `The 99th percentile of request latency on pod {{ $labels.pod }} has been {{ $value | humanizeDuration }} for 10 minutes.`) | nindent 4 }}
- name: ges-business-logic
  rules:
    {{- include "ringback.rule" (dict "root" . "alert" "GES_RBAC_CREATE_VQ_PROXY_ERROR" "for" "" "severity" "info" "action" "email" "dashboard" $biz
        "expr" `increase(RBAC_CREATE_VQ_PROXY_ERROR[10m]) > on(pod) rbac_create_vq_proxy_error_tolerance`
        "summary" "Ringback failed to write virtual-queue proxy records"
        "description" `Pod {{ $labels.pod }} failed {{ printf "%.0f" $value }} times in 10 minutes to create or update a virtual-queue proxy record, over its rbac_create_vq_proxy_error_tolerance.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_LOGGING_FAILURE" "for" "" "severity" "warning" "action" "email" "dashboard" $biz
        "expr" `increase(LOGGING_FAILURE[1m]) > 0`
        "summary" "Ringback dropped log lines"
        "description" `Pod {{ $labels.pod }} could not write {{ printf "%.0f" $value }} log lines in the last minute.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_UNCAUGHT_EXCEPTION" "for" "" "severity" "warning" "action" "email" "dashboard" $biz
        "expr" `increase(UNCAUGHT_EXCEPTION[1m]) > 0`
        "summary" "Ringback caught a panic"
        "description" `Pod {{ $labels.pod }} caught {{ printf "%.0f" $value }} panics in the last minute (the request got a 500 or the task restarted).`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_INVALID_CONTENT_LENGTH" "for" "" "severity" "info" "action" "email" "dashboard" $biz
        "expr" `increase(INVALID_CONTENT_LENGTH[2m]) > on(pod) invalid_content_length_tolerance`
        "summary" "Ringback refuses many oversized request bodies"
        "description" `Pod {{ $labels.pod }} refused {{ printf "%.0f" $value }} oversized bodies in 2 minutes, over its invalid_content_length_tolerance.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_DNS_FAILURE" "for" "" "severity" "warning" "action" "email" "dashboard" $biz
        "expr" `increase(DNS_FAILURE[30m]) > 0`
        "summary" "Ringback failed to resolve a dependency host"
        "description" `Pod {{ $labels.pod }} failed {{ printf "%.0f" $value }} times in 30 minutes to resolve a configured dependency host.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_MONITOR_LAGGING_BEHIND" "for" "" "severity" "info" "action" "email" "dashboard" $biz
        "expr" `increase(MONITOR_LAGGING_BEHIND[1m]) > 100`
        "summary" "Ringback hands callbacks over late"
        "description" `Pod {{ $labels.pod }} handed {{ printf "%.0f" $value }} callbacks over later than the lag threshold in the last minute.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_CB_TTL_LIMIT_REACHED" "for" "" "severity" "info" "action" "email" "dashboard" $biz
        "expr" `increase(CB_TTL_LIMIT_REACHED[2m]) > 0`
        "summary" "A per-service rate window refuses bookings"
        "description" `Tenant {{ $labels.tenant }} had {{ printf "%.0f" $value }} bookings refused by a per-service rate window in 2 minutes (pod {{ $labels.pod }}).`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_CB_ENQUEUE_LIMIT_REACHED" "for" "" "severity" "info" "action" "email" "dashboard" $biz
        "expr" `increase(CB_ENQUEUE_LIMIT_REACHED[2m]) > 0`
        "summary" "A per-number throttle refuses bookings"
        "description" `Tenant {{ $labels.tenant }} had {{ printf "%.0f" $value }} bookings refused by the per-number throttle in 2 minutes (pod {{ $labels.pod }}).`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_CB_SUBMIT_FAILED" "for" "" "severity" "info" "action" "email" "dashboard" $biz
        "expr" `increase(CB_SUBMIT_FAILED[2m]) > 0`
        "summary" "Callbacks end SUBMIT_FAILED"
        "description" `Tenant {{ $labels.tenant }} had {{ printf "%.0f" $value }} callbacks end SUBMIT_FAILED in 2 minutes (pod {{ $labels.pod }}); they can be re-driven.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "GES_CALLIN_POOL_EXHAUSTED" "for" "" "severity" "warning" "action" "email" "dashboard" $biz
        "expr" `increase(CALLIN_POOL_EXHAUSTED[5m]) > 0`
        "summary" "A click-to-call-in group ran out of numbers or codes"
        "description" `Tenant {{ $labels.tenant }} had {{ printf "%.0f" $value }} call-in requests refused for lack of a free number or code in 5 minutes (pod {{ $labels.pod }}).`) | nindent 4 }}
- name: ringback-extensions
  rules:
    {{- include "ringback.rule" (dict "root" . "alert" "RINGBACK_WEBHOOK_ENDPOINT_FAILING" "for" "15m" "severity" "warning" "action" "email" "dashboard" $biz
        "expr" `max by (tenant, endpoint) (ges_webhook_endpoint_failing) > 0`
        "summary" "A webhook endpoint keeps failing"
        "description" `Webhook endpoint {{ $labels.endpoint }} of tenant {{ $labels.tenant }} has failed its requests for 15 minutes (refused, timed out or a non-2xx): its services' hand-offs wait or fail.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "RINGBACK_WEBHOOK_OUTBOX_BACKLOG" "for" "2m" "severity" "warning" "action" "email" "dashboard" $biz
        "expr" `max(ges_webhook_outbox_oldest_age_seconds) > 300`
        "summary" "Lifecycle events wait more than 5 minutes for delivery"
        "description" `The oldest lifecycle event waiting in the outbox reports a change {{ printf "%.0f" $value }} s old: an endpoint is failing (retried with backoff) or delivery cannot keep up.`) | nindent 4 }}
    {{- include "ringback.rule" (dict "root" . "alert" "RINGBACK_WEBHOOK_ENDPOINT_DISABLED" "for" "" "severity" "warning" "action" "email" "dashboard" $biz
        "expr" `increase(WEBHOOK_ENDPOINT_DISABLED[5m]) > 0`
        "summary" "A webhook endpoint was disabled"
        "description" `Tenant {{ $labels.tenant }} had a webhook endpoint disabled after failing every delivery for webhooks.retry_for_hours (pod {{ $labels.pod }}); its undelivered events are marked failed.`) | nindent 4 }}
{{- end }}
