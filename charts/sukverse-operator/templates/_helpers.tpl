{{/* The chart's name, or nameOverride. */}}
{{- define "sukverse-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources, truncated to 63 characters (the limit of a DNS
label). The release name alone when it already contains the chart's name.
*/}}
{{- define "sukverse-operator.fullname" -}}
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

{{/* Chart name and version, as the helm.sh/chart label. */}}
{{- define "sukverse-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "sukverse-operator.labels" -}}
helm.sh/chart: {{ include "sukverse-operator.chart" . }}
{{ include "sukverse-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: sukverse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: only name and instance, which never change on upgrade. */}}
{{- define "sukverse-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sukverse-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "sukverse-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sukverse-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The name of the Kopf peering object(s): the operator joins the peering of this name
(sukverse_operator.run), so it is fixed, not derived from the release.
*/}}
{{- define "sukverse-operator.peeringName" -}}
sukverse-operator
{{- end }}

{{/* Where the client secret is mounted, and the file in it. */}}
{{- define "sukverse-operator.secretDir" -}}
/var/run/secrets/sukverse/operator
{{- end }}

{{/*
The operator's permissions on namespaced resources, as RBAC rules: the same whether they
are granted cluster-wide (a ClusterRole) or in each watched namespace (a Role).
*/}}
{{- define "sukverse-operator.namespacedRules" -}}
- apiGroups: [sukverse.io]
  resources: [sukversecohorts]
  verbs: [get, list, watch, patch, update]
- apiGroups: [sukverse.io]
  resources: [sukversecohorts/status]
  verbs: [get, patch, update]
- apiGroups: [sukverse.io]
  resources: [sukversecohorts/finalizers]
  verbs: [update]
# Rosters (studentsFrom.configMapKeyRef), read and watched.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
# The <cohort>-invitations Secrets it writes (created, then patched with new accounts'
# tokens); it never gets, lists, watches, updates or deletes a Secret.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}

{{/* Cluster-scoped permissions, needed in either mode. */}}
{{- define "sukverse-operator.clusterRules" -}}
# Kopf watches the CRDs to learn which resources are served.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
# Kopf lists and watches namespaces to know which of the served ones exist.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/*
The OpenTelemetry variables of global.tracing (the umbrella's, or this chart's own `global`):
none while its otlpEndpoint is empty, else the endpoint, the sampler (its argument for the
ratio samplers alone), the resource attributes (`k8s.*` first, the listed ones over them,
each value percent-encoded where OTEL_RESOURCE_ATTRIBUTES would misread it) and the headers
from their Secret. As the service chart renders them; the service's name is the code's own.
*/}}
{{- define "sukverse-operator.tracingEnv" -}}
{{- $tracing := dig "tracing" dict (.Values.global | default dict) -}}
{{- with $tracing.otlpEndpoint }}
{{- $sampler := $tracing.sampler | default "parentbased_traceidratio" }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $sampler | quote }}
{{- if hasSuffix "traceidratio" $sampler }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ ternary $tracing.samplerArg "0.01" (hasKey $tracing "samplerArg") | toString | quote }}
{{- end }}
{{- $attributes := dict "k8s.namespace.name" $.Release.Namespace "k8s.deployment.name" (include "sukverse-operator.fullname" $) }}
{{- $attributes = merge (deepCopy ($tracing.resourceAttributes | default dict)) $attributes }}
{{- $pairs := list }}
{{- range $key := keys $attributes | sortAlpha }}
{{- $value := index $attributes $key | toString | replace "%" "%25" | replace "," "%2C" | replace "=" "%3D" }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $pairs | quote }}
{{- with $tracing.headersSecret }}
{{- if .name }}
# The OTLP exporter's headers (an API key), from their Secret.
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key | default "headers" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
