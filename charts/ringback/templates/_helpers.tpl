{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "ringback.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "ringback.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ringback.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "ringback.labels" -}}
helm.sh/chart: {{ include "ringback.chart" . }}
{{ include "ringback.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the pods (never change them: Deployment selectors are immutable). */}}
{{- define "ringback.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringback.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ringback.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ringback.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ringback.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The `job` label of Ringback's scrape target, as GES_UP counts it. */}}
{{- define "ringback.alertJob" -}}
{{- .Values.alerts.job | default (include "ringback.fullname" .) }}
{{- end }}

{{/* kube-state-metrics selector of this release's Ringback containers. */}}
{{- define "ringback.ksmSelector" -}}
{{- if .Values.alerts.kubeStateMetricsSelector }}
{{- .Values.alerts.kubeStateMetricsSelector }}
{{- else }}
{{- printf "namespace=%q, pod=~%q, container=%q" .Release.Namespace (printf "%s-.*" (include "ringback.fullname" .)) .Chart.Name }}
{{- end }}
{{- end }}

{{/* The memory limit in bytes for GES_MEMORY_USAGE: alerts.memoryLimitBytes, else resources.limits.memory converted. */}}
{{- define "ringback.memoryLimitBytes" -}}
{{- if .Values.alerts.memoryLimitBytes }}
{{- int64 .Values.alerts.memoryLimitBytes }}
{{- else }}
{{- $limit := ((.Values.resources).limits).memory | default "" | toString }}
{{- if not $limit }}
{{- fail "alerts.memoryLimitBytes is 0 and resources.limits.memory is unset: GES_MEMORY_USAGE needs one of them" }}
{{- end }}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- $m := regexFindAll "^([0-9]+)([A-Za-z]*)$" $limit 1 }}
{{- if not $m }}
{{- fail (printf "resources.limits.memory %q is not an integer with an optional unit (Ki, Mi, Gi, Ti, k, M, G, T); set alerts.memoryLimitBytes" $limit) }}
{{- end }}
{{- $num := regexReplaceAll "^([0-9]+)([A-Za-z]*)$" $limit "${1}" | int64 }}
{{- $unit := regexReplaceAll "^([0-9]+)([A-Za-z]*)$" $limit "${2}" }}
{{- if $unit }}
{{- if not (hasKey $units $unit) }}
{{- fail (printf "resources.limits.memory %q has unit %q the chart cannot convert; set alerts.memoryLimitBytes" $limit $unit) }}
{{- end }}
{{- mul $num (get $units $unit) }}
{{- else }}
{{- $num }}
{{- end }}
{{- end }}
{{- end }}

{{/* One TOML value: integers stay integers (Helm reads YAML numbers as floats), strings are quoted, lists as arrays. */}}
{{- define "ringback.tomlValue" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ $v | toJson }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) }}
{{- if eq (float64 $v) (float64 (int64 $v)) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if kindIs "slice" $v }}{{ $v | toJson }}
{{- else }}{{ fail (printf "config: cannot write %v (%s) as TOML" $v (kindOf $v)) }}
{{- end }}
{{- end }}

{{/* ringback.toml: `config` sections plus the listeners derived from `ports`. */}}
{{- define "ringback.configToml" -}}
# Rendered by the Ringback Helm chart. URLs and tokens come from secrets through RINGBACK__* variables.
[listen]
internal = {{ printf "0.0.0.0:%d" (int .Values.ports.internal) | quote }}
external = {{ ternary (printf "0.0.0.0:%d" (int .Values.ports.external)) "" .Values.externalListener.enabled | quote }}
{{- range $section, $keys := .Values.config }}
{{- if eq $section "listen" }}{{ fail "config.listen: set ports.internal, ports.external and externalListener.enabled instead" }}{{ end }}

[{{ $section }}]
{{- range $key, $value := $keys }}
{{- if not (kindIs "map" $value) }}
{{ $key }} = {{ include "ringback.tomlValue" $value }}
{{- end }}
{{- end }}
{{- /* A map inside a section is a sub-table ([telemetry.otlp]). */}}
{{- range $key, $value := $keys }}
{{- if kindIs "map" $value }}

[{{ $section }}.{{ $key }}]
{{- range $k, $v := $value }}
{{ $k }} = {{ include "ringback.tomlValue" $v }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment of the Ringback and migration containers taken from existing secrets. */}}
{{- define "ringback.secretEnv" -}}
{{- $secrets := .Values.secrets }}
{{- if not $secrets.database.name }}
{{- fail "secrets.database.name is required: Ringback needs PostgreSQL (RINGBACK__DATABASE__URL)" }}
{{- end }}
{{- range $item := list (list "RINGBACK__DATABASE__URL" $secrets.database) (list "RINGBACK__REDIS__URL" $secrets.redis) (list "RINGBACK__ORS_REDIS__URL" $secrets.orsRedis) (list "RINGBACK__ADMIN__TOKENS" $secrets.adminTokens) (list "RINGBACK__INTERNAL__TOKENS" $secrets.internalTokens) (list "RINGBACK__API_KEYS__SIGNING_SECRETS" $secrets.apiKeySigning) }}
{{- $ref := index $item 1 }}
{{- if $ref.name }}
- name: {{ index $item 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}
{{- end }}
