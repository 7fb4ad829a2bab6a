{{/*
What each service publishes and consumes, as the services' code declares it (a test holds
this to the code's event consumers and contracts): `produces` its own topic
`sukverse.<service>`; `consumes` the topics of the services named, as consumer group
`<service>`, dead-lettering to their `.dlq`.
*/}}
{{- define "sukverse.events" -}}
auth: {produces: true, consumes: []}
user_mgmt: {produces: false, consumes: [auth]}
workshop: {produces: true, consumes: []}
quiz: {produces: true, consumes: [workshop]}
analytics: {produces: false, consumes: [certificate, quiz, workshop]}
certificate: {produces: true, consumes: [auth, quiz, workshop]}
{{- end -}}

{{/*
The topics every service reads in no consumer group, each replica all of it, with the
service that writes each: auth's token revocations, which every token verifier applies.
*/}}
{{- define "sukverse.listened" -}}
auth.revocations: auth
{{- end -}}

{{- define "sukverse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sukverse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
