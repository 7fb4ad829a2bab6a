{{/*
Names shared by the service chart and the umbrella chart `sukverse`: both derive every
cross-reference (Services, databases, Kafka users, topics) from these, so they agree.
Each takes a dict: `root` (the top context) and, where named, `service`.
*/}}

{{/* The resources of one service: `<release>-<service>`, `_` as `-` (e.g. sukverse-user-mgmt). */}}
{{- define "sukverse.name" -}}
{{- printf "%s-%s" .root.Release.Name (.service | replace "_" "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A service's port: global.ports[service], as the umbrella lists them. */}}
{{- define "sukverse.port" -}}
{{- dig "ports" .service 8000 .root.Values.global -}}
{{- end -}}

{{/* A service's CloudNativePG Cluster; its URI is in the Secret `<cluster>-app`. */}}
{{- define "sukverse.database" -}}
{{- printf "%s-db" (include "sukverse.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A Secret of global.secrets by its key (`name`): its existingSecret, or `<release>-<name>`. */}}
{{- define "sukverse.secretName" -}}
{{- dig "secrets" .name "existingSecret" "" .root.Values.global | default (printf "%s-%s" .root.Release.Name (kebabcase .name)) -}}
{{- end -}}

{{/* The Strimzi Kafka cluster. */}}
{{- define "sukverse.kafka" -}}
{{- dig "kafka" "strimzi" "clusterName" "" .root.Values.global | default (printf "%s-kafka" .root.Release.Name) -}}
{{- end -}}

{{/* A service's Strimzi KafkaUser, and the Secret Strimzi writes its credentials to. */}}
{{- define "sukverse.kafkaUser" -}}
{{- include "sukverse.name" . -}}
{{- end -}}

{{/* A topic on the broker: the prefix, then `sukverse.<service>` (one per producing service). */}}
{{- define "sukverse.topic" -}}
{{- printf "%ssukverse.%s" (dig "kafka" "topicPrefix" "" .root.Values.global) .service -}}
{{- end -}}

{{/* A consumer group on the broker: the prefix, then the consuming service's name. */}}
{{- define "sukverse.group" -}}
{{- printf "%s%s" (dig "kafka" "topicPrefix" "" .root.Values.global) .service -}}
{{- end -}}

{{/* ---- this chart's own ---- */}}

{{- define "sukverse-service.service" -}}
{{- required "service is required: auth, user_mgmt, workshop, quiz, analytics or certificate" .Values.service -}}
{{- end -}}

{{- define "sukverse-service.fullname" -}}
{{- .Values.fullnameOverride | default (include "sukverse.name" (dict "root" . "service" (include "sukverse-service.service" .))) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sukverse-service.port" -}}
{{- .Values.port | default (include "sukverse.port" (dict "root" . "service" .Values.service)) -}}
{{- end -}}

{{- define "sukverse-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sukverse-service.service" . | replace "_" "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sukverse-service.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sukverse-service.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ include "sukverse-service.service" . | replace "_" "-" }}
app.kubernetes.io/part-of: sukverse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The migration Job's: not the Deployment's selector, so no Service or budget counts its pod. */}}
{{- define "sukverse-service.migrationLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "sukverse-service.service" . | replace "_" "-" }}-migration
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: migration
app.kubernetes.io/part-of: sukverse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
"true" when the migration Job is a pre-install,pre-upgrade hook: once its database's Secret
exists (an external database's always does; the release's own CloudNativePG cluster's only
once the cluster exists), else "" (an ordinary Job beside the cluster).
*/}}
{{- define "sukverse-service.migrationIsHook" -}}
{{- $secret := (index (include "sukverse-service.databaseFile" . | fromYamlArray) 0).secretName -}}
{{- if or .Values.database.existingSecret (lookup "v1" "Secret" .Release.Namespace $secret) -}}true{{- end -}}
{{- end -}}

{{- define "sukverse-service.migrationHook" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{- define "sukverse-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "sukverse-service.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "sukverse-service.image" -}}
{{- $global := .Values.global.image | default dict -}}
{{- $repository := .Values.image.repository | default $global.repository | default "sukverse" -}}
{{- $tag := .Values.image.tag | default $global.tag | default .Chart.AppVersion -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{- define "sukverse-service.pullPolicy" -}}
{{- $global := .Values.global.image | default dict -}}
{{- .Values.image.pullPolicy | default $global.pullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{/* The kafka and postgres wiring of the umbrella (empty when the chart stands alone). */}}
{{- define "sukverse-service.kafkaMode" -}}
{{- dig "kafka" "mode" "" .Values.global -}}
{{- end -}}

{{- define "sukverse-service.postgresMode" -}}
{{- dig "postgres" "mode" "" .Values.global -}}
{{- end -}}

{{/*
The service's settings (not secret): SUKVERSE_* variables, rendered into the ConfigMap and,
for the migration hook (which runs before the ConfigMap exists), into its pod; and the
OTEL_* variables of global.tracing, for the service's pods alone.
*/}}
{{- define "sukverse-service.settings" -}}
{{- $ctx := dict "root" . "service" (include "sukverse-service.service" .) -}}
{{- $settings := dict
  "SUKVERSE_MODE" "cluster"
  "SUKVERSE_HOST" "0.0.0.0"
  "SUKVERSE_PORT" (include "sukverse-service.port" .)
  "SUKVERSE_DATA_DIR" "/tmp/sukverse" -}}
{{- if or (include "sukverse-service.kafkaMode" .) (include "sukverse-service.postgresMode" .) -}}
{{- $_ := set $settings "SUKVERSE_AUTH_URL" (printf "http://%s:%s" (include "sukverse.name" (dict "root" . "service" "auth")) (include "sukverse.port" (dict "root" . "service" "auth"))) -}}
{{- if eq $ctx.service "certificate" -}}
{{- $_ := set $settings "SUKVERSE_WORKSHOP_URL" (printf "http://%s:%s" (include "sukverse.name" (dict "root" . "service" "workshop")) (include "sukverse.port" (dict "root" . "service" "workshop"))) -}}
{{- end -}}
{{- end -}}
{{- $kafka := .Values.global.kafka | default dict -}}
{{- if eq (include "sukverse-service.kafkaMode" .) "strimzi" -}}
{{- $auth := dig "strimzi" "authentication" "scram-sha-512" $kafka -}}
{{- $_ := set $settings "SUKVERSE_BUS" "kafka" -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS" (printf "%s-kafka-bootstrap:9093" (include "sukverse.kafka" $ctx)) -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_CREATE_TOPICS" "false" -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_SECURITY_PROTOCOL" (ternary "SASL_SSL" "SSL" (eq $auth "scram-sha-512")) -}}
{{- if eq $auth "scram-sha-512" -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_SASL_MECHANISM" "SCRAM-SHA-512" -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_SASL_USERNAME" (include "sukverse.kafkaUser" $ctx) -}}
{{- end -}}
{{- else if eq (include "sukverse-service.kafkaMode" .) "external" -}}
{{- $external := $kafka.external | default dict -}}
{{- $_ := set $settings "SUKVERSE_BUS" "kafka" -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS" (required "global.kafka.external.bootstrapServers is required with global.kafka.mode external" $external.bootstrapServers) -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_CREATE_TOPICS" (ternary "true" "false" (dig "createTopics" false $external)) -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_SECURITY_PROTOCOL" ($external.securityProtocol | default "PLAINTEXT") -}}
{{- if hasPrefix "SASL_" ($external.securityProtocol | default "") -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_SASL_MECHANISM" ($external.saslMechanism | default "SCRAM-SHA-512") -}}
{{- end -}}
{{- end -}}
{{- with (dig "kafka" "topicPrefix" "" .Values.global) -}}
{{- $_ := set $settings "SUKVERSE_KAFKA_TOPIC_PREFIX" . -}}
{{- end -}}
{{- range $key, $value := .Values.settings -}}
{{- $_ := set $settings (printf "SUKVERSE_%s" (upper $key)) (tpl (toString $value) $) -}}
{{- end -}}
{{- $settings = merge $settings (include "sukverse-service.tracing" . | fromYaml) -}}
{{- toYaml $settings -}}
{{- end -}}

{{/*
The OpenTelemetry variables of global.tracing: {} while its otlpEndpoint is empty, else the
endpoint, the sampler (its argument for the ratio samplers alone) and the resource
attributes, `k8s.*` first and the listed ones over them, each value percent-encoded where
OTEL_RESOURCE_ATTRIBUTES would misread it. The service's name is the code's own. The
headers, a secret, are never here: see tracingHeaders. The operator chart renders the same.
*/}}
{{- define "sukverse-service.tracing" -}}
{{- $tracing := .Values.global.tracing | default dict -}}
{{- $variables := dict -}}
{{- with $tracing.otlpEndpoint -}}
{{- $sampler := $tracing.sampler | default "parentbased_traceidratio" -}}
{{- $_ := set $variables "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}
{{- $_ := set $variables "OTEL_TRACES_SAMPLER" $sampler -}}
{{- if hasSuffix "traceidratio" $sampler -}}
{{- $_ := set $variables "OTEL_TRACES_SAMPLER_ARG" (ternary $tracing.samplerArg "0.01" (hasKey $tracing "samplerArg") | toString) -}}
{{- end -}}
{{- $attributes := dict "k8s.namespace.name" $.Release.Namespace "k8s.deployment.name" (include "sukverse-service.fullname" $) -}}
{{- $attributes = merge (deepCopy ($tracing.resourceAttributes | default dict)) $attributes -}}
{{- $pairs := list -}}
{{- range $key := keys $attributes | sortAlpha -}}
{{- $value := index $attributes $key | toString | replace "%" "%25" | replace "," "%2C" | replace "=" "%3D" -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- $_ := set $variables "OTEL_RESOURCE_ATTRIBUTES" (join "," $pairs) -}}
{{- end -}}
{{- toYaml $variables -}}
{{- end -}}

{{/* The container's OTEL_EXPORTER_OTLP_HEADERS, from global.tracing.headersSecret; empty when off. */}}
{{- define "sukverse-service.tracingHeaders" -}}
{{- $tracing := .Values.global.tracing | default dict -}}
{{- $secret := $tracing.headersSecret | default dict -}}
{{- if and $tracing.otlpEndpoint $secret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name }}
      key: {{ $secret.key | default "headers" }}
{{- end }}
{{- end -}}

{{/*
The collector's port, as the endpoint names it or its scheme implies (80, 443): what the
network policy lets the pods reach.
*/}}
{{- define "sukverse-service.collectorPort" -}}
{{- $url := urlParse . -}}
{{- regexFind ":[0-9]+$" $url.host | trimPrefix ":" | default (ternary "443" "80" (eq $url.scheme "https")) -}}
{{- end -}}

{{/* The database URI's file: [] or [{secretName, key, env}]; the migration Job's only secret. */}}
{{- define "sukverse-service.databaseFile" -}}
{{- $ctx := dict "root" . "service" (include "sukverse-service.service" .) -}}
{{- $files := list -}}
{{- if .Values.database.existingSecret -}}
{{- $files = append $files (dict "secretName" (tpl .Values.database.existingSecret $) "key" .Values.database.key "env" "SUKVERSE_DATABASE_URL_FILE") -}}
{{- else if eq (include "sukverse-service.postgresMode" .) "cloudnativepg" -}}
{{- $files = append $files (dict "secretName" (printf "%s-app" (include "sukverse.database" $ctx)) "key" "uri" "env" "SUKVERSE_DATABASE_URL_FILE") -}}
{{- else -}}
{{- fail (printf "%s: database.existingSecret is required (a Secret with the PostgreSQL URI), unless the umbrella's global.postgres.mode is cloudnativepg" .Values.service) -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/*
The Secret keys the service reads as files: `secretFiles`, then the database URI and the
Kafka credentials of the wiring. A list of {secretName, key, env}.
*/}}
{{- define "sukverse-service.secretFiles" -}}
{{- $ctx := dict "root" . "service" (include "sukverse-service.service" .) -}}
{{- $files := list -}}
{{- range .Values.secretFiles -}}
{{- $name := tpl (.secretName | default "") $ -}}
{{- if .secret -}}
{{- $name = include "sukverse.secretName" (dict "root" $ "name" .secret) -}}
{{- end -}}
{{- $files = append $files (dict "secretName" (required "each secretFiles item needs secret or secretName" $name) "key" .key "env" .env) -}}
{{- end -}}
{{- $files = concat $files (include "sukverse-service.databaseFile" . | fromYamlArray) -}}
{{- $kafka := .Values.global.kafka | default dict -}}
{{- if eq (include "sukverse-service.kafkaMode" .) "strimzi" -}}
{{- $user := include "sukverse.kafkaUser" $ctx -}}
{{- $files = append $files (dict "secretName" (printf "%s-cluster-ca-cert" (include "sukverse.kafka" $ctx)) "key" "ca.crt" "env" "SUKVERSE_KAFKA_SSL_CAFILE") -}}
{{- if eq (dig "strimzi" "authentication" "scram-sha-512" $kafka) "scram-sha-512" -}}
{{- $files = append $files (dict "secretName" $user "key" "password" "env" "SUKVERSE_KAFKA_SASL_PASSWORD_FILE") -}}
{{- else -}}
{{- $files = append $files (dict "secretName" $user "key" "user.crt" "env" "SUKVERSE_KAFKA_SSL_CERTFILE") -}}
{{- $files = append $files (dict "secretName" $user "key" "user.key" "env" "SUKVERSE_KAFKA_SSL_KEYFILE") -}}
{{- end -}}
{{- else if eq (include "sukverse-service.kafkaMode" .) "external" -}}
{{- $external := $kafka.external | default dict -}}
{{- with $external.caSecret -}}
{{- if .name -}}
{{- $files = append $files (dict "secretName" .name "key" (.key | default "ca.crt") "env" "SUKVERSE_KAFKA_SSL_CAFILE") -}}
{{- end -}}
{{- end -}}
{{- if hasPrefix "SASL_" ($external.securityProtocol | default "") -}}
{{- $secret := required (printf "%s: kafka.existingSecret (keys username and password) is required with a SASL protocol" $.Values.service) $.Values.kafka.existingSecret -}}
{{- $files = append $files (dict "secretName" $secret "key" "username" "env" "SUKVERSE_KAFKA_SASL_USERNAME_FILE") -}}
{{- $files = append $files (dict "secretName" $secret "key" "password" "env" "SUKVERSE_KAFKA_SASL_PASSWORD_FILE") -}}
{{- end -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{- define "sukverse-service.secretMount" -}}/var/run/secrets/sukverse{{- end -}}

{{/*
For a list of secret files (`files`, as secretFiles gives them): the container's env (the
files' paths), the pod's volumes (a projected volume of those keys, and /tmp) and mounts.
*/}}
{{- define "sukverse-service.secretEnv" -}}
{{- range .files }}
- name: {{ .env }}
  value: {{ printf "%s/%s/%s" (include "sukverse-service.secretMount" .) .secretName .key | quote }}
{{- end }}
{{- end -}}

{{- define "sukverse-service.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- $files := .files }}
{{- if $files }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
    {{- range $files }}
      - secret:
          name: {{ .secretName }}
          items:
            - key: {{ .key }}
              path: {{ printf "%s/%s" .secretName .key }}
    {{- end }}
{{- end }}
{{- end -}}

{{- define "sukverse-service.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .files }}
- name: secrets
  mountPath: {{ include "sukverse-service.secretMount" . }}
  readOnly: true
{{- end }}
{{- end -}}
