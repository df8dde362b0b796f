{{/*
Names and labels, prometheus-community style.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "ingestion-observability.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The fully qualified app name: fullnameOverride, else "<release>-<name>" (just the release name when it already
contains the chart name). Truncated to 40 characters so that every "<fullname>-<component>" name and Strimzi's
"<cluster>-kafka-bootstrap" stay within Kubernetes' 63-character limit.
*/}}
{{- define "ingestion-observability.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "ingestion-observability.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "ingestion-observability.labels" -}}
helm.sh/chart: {{ include "ingestion-observability.chart" . }}
{{ include "ingestion-observability.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ingestion-observability
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels (immutable in a Deployment: keep them few and stable). */}}
{{- define "ingestion-observability.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingestion-observability.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: include "ingestion-observability.componentLabels" (list . "consumer") */}}
{{- define "ingestion-observability.componentLabels" -}}
{{ include "ingestion-observability.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Selector labels of one component: include "ingestion-observability.componentSelectorLabels" (list . "consumer") */}}
{{- define "ingestion-observability.componentSelectorLabels" -}}
{{ include "ingestion-observability.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
Image reference: include "ingestion-observability.image" (list . .Values.consumer.image)
"<repository>:<tag>", the tag defaulting to the chart's appVersion; a tag holding "@sha256:" is used as is.
*/}}
{{- define "ingestion-observability.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $tag := $image.tag | default $root.Chart.AppVersion | toString -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}

{{/* The label kube-prometheus-stack's Prometheus selects rules, ServiceMonitors and PodMonitors by. */}}
{{- define "ingestion-observability.monitoringLabels" -}}
release: {{ .Values.monitoring.releaseLabel | default .Release.Name | quote }}
{{- with .Values.monitoring.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Strimzi Kafka cluster's name. */}}
{{- define "ingestion-observability.kafkaClusterName" -}}
{{- .Values.kafka.clusterName | default (include "ingestion-observability.fullname" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Kafka bootstrap servers: the Strimzi cluster's bootstrap Service, or kafka.externalBootstrapServers. */}}
{{- define "ingestion-observability.bootstrapServers" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s-kafka-bootstrap.%s.svc:%d" (include "ingestion-observability.kafkaClusterName" .) .Release.Namespace (int .Values.kafka.listener.port) -}}
{{- else if .Values.kafka.externalBootstrapServers -}}
{{- .Values.kafka.externalBootstrapServers -}}
{{- else -}}
{{- fail "kafka.enabled is false: set kafka.externalBootstrapServers (host:port[,host:port])" -}}
{{- end -}}
{{- end -}}

{{/* The main topic, the dead-letter topic and the consumer's state changelog (the consumer's default name). */}}
{{- define "ingestion-observability.topic" -}}
{{- .Values.kafka.topics.logs.name -}}
{{- end -}}
{{- define "ingestion-observability.dlqTopic" -}}
{{- .Values.kafka.topics.dlq.name -}}
{{- end -}}
{{- define "ingestion-observability.stateTopic" -}}
{{- printf "%s.state" .Values.kafka.topics.logs.name -}}
{{- end -}}

{{/* apiVersion, kind and metadata of the KafkaTopic of kafka.topics.<key>: (list . key) */}}
{{- define "ingestion-observability.kafkaTopicHeader" -}}
{{- $root := index . 0 -}}
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: {{ printf "%s-%s" (include "ingestion-observability.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ingestion-observability.componentLabels" (list $root "kafka") | nindent 4 }}
    strimzi.io/cluster: {{ include "ingestion-observability.kafkaClusterName" $root }}
{{- end -}}

{{/*
The Loki push URL: consumer.loki.url, else the Loki subchart's Service "<release>-loki" (the loki chart's
fullname rule: just the release name when it contains "loki"; loki.fullnameOverride wins) on port 3100.
*/}}
{{- define "ingestion-observability.lokiUrl" -}}
{{- $loki := index .Values "loki" | default dict -}}
{{- if .Values.consumer.loki.url -}}
{{- .Values.consumer.loki.url -}}
{{- else if $loki.enabled -}}
{{- $name := "" -}}
{{- if $loki.fullnameOverride -}}
{{- $name = $loki.fullnameOverride -}}
{{- else if contains "loki" .Release.Name -}}
{{- $name = .Release.Name -}}
{{- else -}}
{{- $name = printf "%s-loki" .Release.Name -}}
{{- end -}}
{{- printf "http://%s.%s.svc:3100" ($name | trunc 63 | trimSuffix "-") .Release.Namespace -}}
{{- else -}}
{{- fail "loki.enabled is false: set consumer.loki.url (e.g. http://loki.monitoring.svc:3100)" -}}
{{- end -}}
{{- end -}}

{{/* "true" when kube-prometheus-stack deploys Grafana (its grafana.enabled defaults to true), else "". */}}
{{- define "ingestion-observability.grafanaEnabled" -}}
{{- $kps := index .Values "kube-prometheus-stack" -}}
{{- if and $kps.enabled (ne (toString (dig "grafana" "enabled" true $kps)) "false") -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding Grafana's admin credentials (kube-prometheus-stack.grafana.admin.existingSecret). */}}
{{- define "ingestion-observability.grafanaAdminSecretName" -}}
{{- printf "%s-grafana-admin" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Namespaces the operator watches: operator.watchNamespaces, else the release namespace. */}}
{{- define "ingestion-observability.operatorNamespaces" -}}
{{- $namespaces := .Values.operator.watchNamespaces | default (list .Release.Namespace) -}}
{{- toJson (uniq $namespaces) -}}
{{- end -}}

{{/*
The intake's base URL the operator publishes the Jobs' runs to (INGESTION_OPERATOR_INTAKE_URL):
operator.jobs.intakeUrl, else this release's intake Service when intake.enabled, else "" (no URL: the sources'
Jobs are reported as not observed).
*/}}
{{- define "ingestion-observability.operatorIntakeUrl" -}}
{{- if .Values.operator.jobs.intakeUrl -}}
{{- .Values.operator.jobs.intakeUrl | trimSuffix "/" -}}
{{- else if .Values.intake.enabled -}}
{{- printf "http://%s-intake.%s.svc:%d" (include "ingestion-observability.fullname" .) .Release.Namespace (int .Values.intake.port) -}}
{{- end -}}
{{- end -}}

{{/*
The Secret key holding the operator's intake token, as JSON {"name": ..., "key": ...}, or "" for none:
operator.jobs.tokenSecret, else this release's intake tokens (intake.auth.tokenSecret) when the intake is
deployed with auth (the operator sends the file's first token).
*/}}
{{- define "ingestion-observability.operatorIntakeTokenSecret" -}}
{{- $own := .Values.operator.jobs.tokenSecret -}}
{{- $intake := .Values.intake -}}
{{- if $own.name -}}
{{- toJson (dict "name" $own.name "key" $own.key) -}}
{{- else if and $intake.enabled $intake.auth.enabled -}}
{{- toJson (dict "name" $intake.auth.tokenSecret.name "key" $intake.auth.tokenSecret.key) -}}
{{- end -}}
{{- end -}}

{{/* Where the operator's intake token is mounted (a directory: the Secret volume holds the file "token"). */}}
{{- define "ingestion-observability.operatorIntakeTokenDir" -}}
/var/run/secrets/ingestion-operator/intake
{{- end -}}

{{/* Service account names. */}}
{{- define "ingestion-observability.serviceAccountName" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $sa := (index $root.Values $component).serviceAccount -}}
{{- if $sa.create -}}
{{- $sa.name | default (printf "%s-%s" (include "ingestion-observability.fullname" $root) $component) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security context shared by our workloads (restricted Pod Security Standard). */}}
{{- define "ingestion-observability.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* Container-level security context shared by our containers. */}}
{{- define "ingestion-observability.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/*
The producer's pod template (the install Job and the suspended CronJob used as a template share it).
*/}}
{{- define "ingestion-observability.producerPodSpec" -}}
{{- $p := .Values.producer -}}
serviceAccountName: {{ include "ingestion-observability.serviceAccountName" (list . "producer") }}
automountServiceAccountToken: false
restartPolicy: Never
securityContext:
  {{- include "ingestion-observability.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: producer
    image: {{ include "ingestion-observability.image" (list . $p.image) | quote }}
    imagePullPolicy: {{ $p.image.pullPolicy }}
    args:
      {{- if $p.rebaseTime }}
      - --rebase-time
      {{- end }}
      {{- if $p.strict }}
      - --strict
      {{- end }}
      {{- range $p.extraArgs }}
      - {{ . | quote }}
      {{- end }}
    env:
      - name: KAFKA_BOOTSTRAP_SERVERS
        value: {{ include "ingestion-observability.bootstrapServers" . | quote }}
      - name: KAFKA_TOPIC
        value: {{ include "ingestion-observability.topic" . | quote }}
      - name: LOG_LEVEL
        value: {{ $p.logLevel | quote }}
      - name: SIMULATE_REALTIME
        value: {{ $p.simulateRealtime | toString | quote }}
      - name: SIMULATE_SPEED
        value: {{ $p.speed | toString | quote }}
      {{- if $p.timezone }}
      - name: SOURCE_TIMEZONE
        value: {{ $p.timezone | quote }}
      {{- end }}
      {{- if ne $p.data.source "sample" }}
      - name: LOGS_FILE_PATH
        value: {{ printf "/data/%s" (include "ingestion-observability.producerDataFile" .) | quote }}
      {{- end }}
      {{- with $p.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    securityContext:
      {{- include "ingestion-observability.containerSecurityContext" . | nindent 6 }}
    resources:
      {{- toYaml $p.resources | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if ne $p.data.source "sample" }}
      - name: data
        mountPath: /data
        readOnly: true
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- if eq $p.data.source "inline" }}
  - name: data
    configMap:
      name: {{ include "ingestion-observability.fullname" . }}-producer-data
  {{- else if eq $p.data.source "configMap" }}
  - name: data
    configMap:
      name: {{ required "producer.data.configMap.name is required when producer.data.source is configMap" $p.data.configMap.name }}
  {{- else if eq $p.data.source "persistentVolumeClaim" }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ required "producer.data.persistentVolumeClaim.claimName is required when producer.data.source is persistentVolumeClaim" $p.data.persistentVolumeClaim.claimName }}
      readOnly: true
  {{- end }}
{{- with $p.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $p.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $p.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The file the producer reads under /data, by producer.data.source. */}}
{{- define "ingestion-observability.producerDataFile" -}}
{{- $d := .Values.producer.data -}}
{{- if eq $d.source "inline" -}}
{{- $d.inline.fileName -}}
{{- else if eq $d.source "configMap" -}}
{{- $d.configMap.key -}}
{{- else if eq $d.source "persistentVolumeClaim" -}}
{{- $d.persistentVolumeClaim.path -}}
{{- end -}}
{{- end -}}

{{/*
Notifications (templates/monitoring/alertmanager-*.yaml). Fixed names, not "<fullname>-...": the Alertmanager of
kube-prometheus-stack names them in its values (alertmanagerSpec.alertmanagerConfiguration), which that chart
renders with toYaml and no tpl, so they cannot follow the release name. One release per namespace.
*/}}
{{- define "ingestion-observability.notificationsConfigName" -}}
ingestion-observability-notifications
{{- end -}}
{{- define "ingestion-observability.notificationTemplatesName" -}}
ingestion-observability-notification-templates
{{- end -}}
{{/* The file and ConfigMap key of the Go templates (render.notifications.TEMPLATE_FILE). */}}
{{- define "ingestion-observability.notificationTemplatesFile" -}}
ingestion.tmpl
{{- end -}}

{{/*
An Alertmanager template call, {{ template "<name>" . }}, as a string (render.notifications TITLE, TEXT, HTML):
include "ingestion-observability.alertmanagerTemplateCall" "ingestion.titre"
*/}}
{{- define "ingestion-observability.alertmanagerTemplateCall" -}}
{{- printf "{{ template %q . }}" . -}}
{{- end -}}

{{/* The Grafana URL the generated files link to: the render config's default grafana_url. */}}
{{- define "ingestion-observability.renderDefaultGrafanaUrl" -}}
http://localhost:3000
{{- end -}}

{{/* notifications.grafanaUrl without a trailing slash (the render library strips it too). */}}
{{- define "ingestion-observability.grafanaUrl" -}}
{{- .Values.notifications.grafanaUrl | trimSuffix "/" -}}
{{- end -}}

{{/*
The operator's render defaults (YAML; "{}" when empty): operator.renderDefaults, with grafana_url from
notifications.grafanaUrl when that is not the render default, so that the sources' alerts link where the
platform alerts do. A different renderDefaults.grafana_url is refused rather than silently overridden.
*/}}
{{- define "ingestion-observability.operatorRenderDefaults" -}}
{{- $defaults := deepCopy (.Values.operator.renderDefaults | default dict) -}}
{{- $url := include "ingestion-observability.grafanaUrl" . -}}
{{- with $defaults.grafana_url -}}
{{- if ne (toString . | trimSuffix "/") $url -}}
{{- fail (printf "operator.renderDefaults.grafana_url (%s) differs from notifications.grafanaUrl (%s): set notifications.grafanaUrl only (the platform rules and the operator both use it)" (toString .) $url) -}}
{{- end -}}
{{- end -}}
{{- if ne $url (include "ingestion-observability.renderDefaultGrafanaUrl" .) -}}
{{- $_ := set $defaults "grafana_url" $url -}}
{{- end -}}
{{- toYaml $defaults -}}
{{- end -}}
