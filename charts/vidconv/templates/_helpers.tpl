{{/* Names, labels and shared fragments. */}}

{{- define "vidconv.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vidconv.fullname" -}}
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

{{- define "vidconv.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: include "vidconv.selectorLabels" (list . "api") */}}
{{- define "vidconv.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "vidconv.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* All labels of one component: include "vidconv.labels" (list . "api") */}}
{{- define "vidconv.labels" -}}
{{- $ctx := index . 0 -}}
helm.sh/chart: {{ include "vidconv.chart" $ctx }}
{{ include "vidconv.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: vidconv
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* "repository:tag" of a component image: include "vidconv.image" (list . .Values.api.image) */}}
{{- define "vidconv.image" -}}
{{- $ctx := index . 0 -}}
{{- $img := index . 1 -}}
{{- printf "%s:%s" $img.repository (default $ctx.Chart.AppVersion $img.tag) }}
{{- end }}

{{- define "vidconv.apiServiceAccount" -}}
{{- default (printf "%s-api" (include "vidconv.fullname" .)) .Values.api.serviceAccount.name }}
{{- end }}
{{- define "vidconv.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "vidconv.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}
{{- define "vidconv.transcoderServiceAccount" -}}
{{- default (printf "%s-transcoder" (include "vidconv.fullname" .)) .Values.transcoder.serviceAccount.name }}
{{- end }}

{{/* Secret names and keys. */}}
{{- define "vidconv.dbSecret" -}}
{{- if and (not .Values.postgresql.enabled) .Values.database.external.existingSecret }}
{{- .Values.database.external.existingSecret }}
{{- else }}
{{- printf "%s-db" (include "vidconv.fullname" .) }}
{{- end }}
{{- end }}
{{- define "vidconv.dbSecretKey" -}}
{{- if and (not .Values.postgresql.enabled) .Values.database.external.existingSecret }}
{{- .Values.database.external.existingSecretKey }}
{{- else }}url{{ end }}
{{- end }}
{{- define "vidconv.s3Secret" -}}
{{- default (printf "%s-s3" (include "vidconv.fullname" .)) .Values.s3.existingSecret }}
{{- end }}
{{- define "vidconv.jwtSecret" -}}
{{- default (printf "%s-jwt" (include "vidconv.fullname" .)) .Values.jwt.existingSecret }}
{{- end }}

{{- define "vidconv.postgresqlHost" -}}
{{- printf "%s-postgresql" (include "vidconv.fullname" .) }}
{{- end }}
{{- define "vidconv.minioHost" -}}
{{- printf "%s-minio" (include "vidconv.fullname" .) }}
{{- end }}

{{- define "vidconv.s3Endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "http://%s:9000" (include "vidconv.minioHost" .) }}
{{- else }}
{{- required "s3.external.endpoint is required when minio.enabled is false" .Values.s3.external.endpoint }}
{{- end }}
{{- end }}

{{/*
A value kept in an existing Secret of this release, or a fresh random one: Secrets are generated
once and survive upgrades. include "vidconv.secretValue" (list . "<secret name>" "<key>")
*/}}
{{- define "vidconv.secretValue" -}}
{{- $ctx := index . 0 -}}
{{- $existing := lookup "v1" "Secret" $ctx.Release.Namespace (index . 1) -}}
{{- if and $existing (hasKey $existing.data (index . 2)) -}}
{{- index $existing.data (index . 2) | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end }}

{{/* Environment shared by the API and the operator: database, S3, limits, namespace. */}}
{{- define "vidconv.commonEnv" -}}
- name: VIDCONV_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: VIDCONV_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "vidconv.dbSecret" . }}
      key: {{ include "vidconv.dbSecretKey" . }}
- name: VIDCONV_STORAGE
  value: s3
- name: VIDCONV_S3_ENDPOINT
  value: {{ include "vidconv.s3Endpoint" . | quote }}
- name: VIDCONV_S3_REGION
  value: {{ .Values.s3.region | quote }}
- name: VIDCONV_S3_BUCKET
  value: {{ .Values.s3.bucket | quote }}
- name: VIDCONV_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "vidconv.s3Secret" . }}
      key: accessKey
- name: VIDCONV_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "vidconv.s3Secret" . }}
      key: secretKey
- name: VIDCONV_MAX_UPLOAD_BYTES
  value: {{ .Values.limits.maxUploadBytes | int64 | quote }}
- name: VIDCONV_MAX_INPUT_BYTES
  value: {{ .Values.limits.maxInputBytes | int64 | quote }}
- name: VIDCONV_MAX_DURATION_SECONDS
  value: {{ .Values.limits.maxDurationSeconds | quote }}
- name: VIDCONV_MAX_WIDTH
  value: {{ .Values.limits.maxWidth | int64 | quote }}
- name: VIDCONV_MAX_HEIGHT
  value: {{ .Values.limits.maxHeight | int64 | quote }}
# The API writes the deadline into each ConversionTask; the operator's Job takes it from there.
- name: VIDCONV_JOB_ACTIVE_DEADLINE_SECONDS
  value: {{ .Values.transcoder.activeDeadlineSeconds | int64 | quote }}
# ffmpeg gets no longer than the Job itself.
- name: VIDCONV_TRANSCODE_TIMEOUT_SECONDS
  value: {{ .Values.transcoder.activeDeadlineSeconds | int64 | quote }}
# The operator hands it on to the transcoder Jobs.
- name: VIDCONV_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- end }}

{{/*
A pod template's annotations: the component's own, and with metrics.scrapeAnnotations the
prometheus.io ones for its metrics port. include "vidconv.podAnnotations" (list . annotations port)
*/}}
{{- define "vidconv.podAnnotations" -}}
{{- $ctx := index . 0 -}}
{{- $annotations := deepCopy (index . 1) -}}
{{- if $ctx.Values.metrics.scrapeAnnotations -}}
{{- $_ := set $annotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $annotations "prometheus.io/port" (index . 2 | toString) -}}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The nginx ingress body-size for the upload limit: whole MiB rounded up, plus 1 MiB for the
multipart framing around the file.
*/}}
{{- define "vidconv.bodySize" -}}
{{- $bytes := .Values.limits.maxUploadBytes | int64 -}}
{{- $mib := add1 (div (add $bytes 1048575) 1048576) -}}
{{- printf "%dm" $mib -}}
{{- end }}

{{/* Selects the transcoder Job pods: the operator labels each with vidconv.io/task (vidconv.operator.job). */}}
{{- define "vidconv.transcoderPodSelector" -}}
matchLabels:
  app.kubernetes.io/component: transcoder
matchExpressions:
  - key: vidconv.io/task
    operator: Exists
{{- end }}

{{/*
Where clients reach S3 for direct transfers: directTransfers.publicEndpoint, else the bundled
MinIO's Ingress, else the external S3's endpoint. The in-cluster MinIO name is no answer: a
presigned URL names its host, and clients outside the cluster cannot resolve that one.
*/}}
{{- define "vidconv.s3PublicEndpoint" -}}
{{- if .Values.directTransfers.publicEndpoint -}}
{{- .Values.directTransfers.publicEndpoint -}}
{{- else if and .Values.minio.enabled .Values.minio.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" (ne .Values.minio.ingress.tlsSecretName "")) .Values.minio.ingress.host -}}
{{- else if not .Values.minio.enabled -}}
{{- .Values.s3.external.endpoint -}}
{{- else -}}
{{- fail "directTransfers.enabled with the bundled MinIO needs minio.ingress.enabled (or directTransfers.publicEndpoint): clients must reach S3 themselves" -}}
{{- end -}}
{{- end }}
