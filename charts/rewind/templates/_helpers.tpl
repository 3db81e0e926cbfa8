{{/* Every helper is prefixed "rewind." so a parent chart's helpers cannot collide. */}}

{{- define "rewind.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object-name prefix: the release name, plus the chart name unless it holds it already. */}}
{{- define "rewind.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rewind.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "rewind.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rewind
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: call with (dict "ctx" $ "component" "controller"). */}}
{{- define "rewind.componentLabels" -}}
{{ include "rewind.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "rewind.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rewind.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "rewind.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "rewind.controller.name" -}}{{ include "rewind.fullname" . }}-controller{{- end }}
{{- define "rewind.collector.name" -}}{{ include "rewind.fullname" . }}-collector{{- end }}

{{- define "rewind.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "rewind.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{- define "rewind.tls.generated" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecrets.collector) }}true{{ end }}
{{- end }}

{{- define "rewind.collectorTlsSecret" -}}
{{- default (printf "%s-collector-tls" (include "rewind.fullname" .)) .Values.tls.existingSecrets.collector }}
{{- end }}

{{- define "rewind.controllerTlsSecret" -}}
{{- default (printf "%s-controller-tls" (include "rewind.fullname" .)) .Values.tls.existingSecrets.controller }}
{{- end }}

{{/* DNS name of the collector's headless Service, in the release namespace. */}}
{{- define "rewind.collector.serviceHost" -}}
{{- printf "%s.%s.svc" (include "rewind.collector.name" .) .Release.Namespace }}
{{- end }}

{{- define "rewind.controller.defaultCollector" -}}
{{- if .Values.controller.defaultCollector }}
{{- .Values.controller.defaultCollector }}
{{- else }}
{{- printf "%s-0.%s:%d" (include "rewind.collector.name" .) (include "rewind.collector.serviceHost" .) (int .Values.collector.grpcPort) }}
{{- end }}
{{- end }}

{{/*
The container securityContext of every container: not configurable, so a values file
cannot weaken it. Only the CSI node plugin (not built yet) will differ, and say why.
*/}}
{{- define "rewind.containerSecurityContext" -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Refusals the schema cannot express. */}}
{{- define "rewind.validate" -}}
{{- if .Values.csi.enabled }}
{{- fail "csi.enabled: the CSI driver cdp.rewind.dev is not built yet; keep it false" }}
{{- end }}
{{- if .Values.csi.storageClass.create }}
{{- fail "csi.storageClass.create: nothing provisions cdp.rewind.dev yet, so every PVC of that StorageClass would stay Pending; keep it false" }}
{{- end }}
{{- if and (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection.enabled) }}
{{- fail "controller.leaderElection.enabled: more than one controller replica needs leader election" }}
{{- end }}
{{- $e := .Values.tls.existingSecrets }}
{{- if ne (empty $e.collector) (empty $e.controller) }}
{{- fail "tls.existingSecrets: give collector and controller together, or neither (then the chart generates them)" }}
{{- end }}
{{- if and $e.shipper (empty $e.collector) }}
{{- fail "tls.existingSecrets.shipper: given without tls.existingSecrets.collector; the generated collector certificate's CA could not verify it" }}
{{- end }}
{{- end }}
