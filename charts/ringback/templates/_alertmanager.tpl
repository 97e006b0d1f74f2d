{{/*
Alert routing, from the `alerting` values: action=page → the page receiver (PagerDuty), action=email → the email
receiver; anything else of service GES goes nowhere. "ringback.alertmanagerYml" is a plain alertmanager.yml;
alertmanagerconfig.yaml renders the same routing as a Prometheus Operator AlertmanagerConfig.
*/}}
{{- define "ringback.alertmanagerYml" -}}
{{- $a := .Values.alerting -}}
# Ringback alert routing, rendered by the Ringback Helm chart from its `alerting` values.
# Merge the route and receivers into your Alertmanager configuration, or run it as it is.
route:
  receiver: ringback-null
  group_by: {{ $a.groupBy | toJson }}
  group_wait: {{ $a.groupWait }}
  group_interval: {{ $a.groupInterval }}
  repeat_interval: {{ $a.repeatInterval }}
  routes:
    - receiver: {{ $a.page.receiver }}
      matchers:
        - service="GES"
        - action="page"
    - receiver: {{ $a.email.receiver }}
      matchers:
        - service="GES"
        - action="email"
receivers:
  # Alerts of service GES without a known action are dropped.
  - name: ringback-null
  - name: {{ $a.page.receiver }}
    {{- if $a.page.webhookUrl }}
    webhook_configs:
      - url: {{ $a.page.webhookUrl | quote }}
        send_resolved: {{ $a.sendResolved }}
    {{- else }}
    pagerduty_configs:
      # Events API v2; Alertmanager reads the routing key from this file (mount the secret there).
      - routing_key_file: {{ $a.page.routingKeyFile | quote }}
        send_resolved: {{ $a.sendResolved }}
    {{- end }}
  - name: {{ $a.email.receiver }}
    {{- if $a.email.webhookUrl }}
    webhook_configs:
      - url: {{ $a.email.webhookUrl | quote }}
        send_resolved: {{ $a.sendResolved }}
    {{- else }}
    email_configs:
      - to: {{ $a.email.to | quote }}
        from: {{ $a.email.from | quote }}
        smarthost: {{ $a.email.smarthost | quote }}
        {{- if $a.email.authUsername }}
        auth_username: {{ $a.email.authUsername | quote }}
        auth_password_file: {{ $a.email.authPasswordFile | quote }}
        {{- end }}
        require_tls: {{ $a.email.requireTls }}
        send_resolved: {{ $a.sendResolved }}
    {{- end }}
{{- end }}
