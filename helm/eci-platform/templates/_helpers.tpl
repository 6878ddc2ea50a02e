{{/* Names and labels. */}}
{{- define "eci-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eci-platform.fullname" -}}
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

{{- define "eci-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eci-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eci-platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eci-platform.labels" -}}
helm.sh/chart: {{ include "eci-platform.chart" . }}
{{ include "eci-platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eci-platform
{{- end }}

{{- define "eci-platform.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eci-platform.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "eci-platform.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Values the chart refuses, each with the reason. Included by every template that renders a workload, so
`helm install`, `helm template` and `helm lint` all stop on them.
*/}}
{{- define "eci-platform.validate" -}}
{{- $_ := required "image.repository is required" .Values.image.repository }}
{{- $domain := required "platformDomain is required: the operator console's host; initiatives live on <slug>.<platformDomain>" .Values.platformDomain }}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$" $domain) }}
{{- fail (printf "platformDomain %q is not a lower-case DNS name such as eci.example.org" $domain) }}
{{- end }}
{{- $_ = required "secrets.existingSecret is required: the Secret with SECRET_KEY, DATABASE_URL, REDIS_URL and EMAIL_URL (this chart never renders secrets)" .Values.secrets.existingSecret }}
{{- $_ = required "exportSigning.existingSecret is required: the Secret with the export-signing key and certificate (PEM)" .Values.exportSigning.existingSecret }}
{{- $provider := toString (default "" .Values.config.KEY_PROVIDER) }}
{{- if eq $provider "local" }}
{{- fail "config.KEY_PROVIDER=local is refused on Kubernetes: the local provider keeps its keystore on one host's private volume, which pods do not share and which must stay out of database backups. Set config.KEY_PROVIDER to aws-kms (any KMS-compatible endpoint via config.AWS_KMS_ENDPOINT_URL)." }}
{{- else if ne $provider "aws-kms" }}
{{- fail (printf "config.KEY_PROVIDER must be aws-kms on Kubernetes, not %q." $provider) }}
{{- end }}
{{- $storage := toString (default "" .Values.config.EXPORT_STORAGE_URL) }}
{{- if not (hasPrefix "s3://" $storage) }}
{{- fail (printf "config.EXPORT_STORAGE_URL must be an s3://bucket/prefix URL on Kubernetes (export files must be reachable from every worker and survive pods), not %q." $storage) }}
{{- end }}
{{- range $name := list "SECRET_KEY" "DATABASE_URL" "REDIS_URL" "EMAIL_URL" "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN" "LOCAL_MASTER_KEY" }}
{{- if hasKey $.Values.config $name }}
{{- fail (printf "config.%s is a secret: put it in the Secret named by secrets.existingSecret, never in values." $name) }}
{{- end }}
{{- end }}
{{- range $name := list "PLATFORM_DOMAIN" "DEBUG" "METRICS_PORT" "EXPORT_SIGNING_KEY_FILE" "EXPORT_SIGNING_CERTIFICATE_FILE" "DJANGO_SETTINGS_MODULE" }}
{{- if hasKey $.Values.config $name }}
{{- fail (printf "config.%s is set by the chart (platformDomain, metrics.port, exportSigning); remove it from config." $name) }}
{{- end }}
{{- end }}
{{- range $name := list "LOCAL_MASTER_KEY_FILE" "LOCAL_KEYSTORE_DIR" "ECI_DATA_DIR" "CELERY_TASK_ALWAYS_EAGER" }}
{{- if hasKey $.Values.config $name }}
{{- fail (printf "config.%s is for development or the local key provider only; remove it from config." $name) }}
{{- end }}
{{- end }}
{{- $known := list "default" "exports" "keys" "maintenance" }}
{{- $served := dict }}
{{- $groupNames := dict }}
{{- range $group := .Values.workers.groups }}
{{- $name := required "every workers.groups entry needs a name" $group.name }}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$" $name) }}
{{- fail (printf "workers.groups name %q must be a DNS label of at most 20 characters (a-z, 0-9, -)." $name) }}
{{- end }}
{{- if hasKey $groupNames $name }}
{{- fail (printf "workers.groups name %q is used twice." $name) }}
{{- end }}
{{- $_ := set $groupNames $name true }}
{{- if not $group.queues }}
{{- fail (printf "workers.groups %q lists no queues." $name) }}
{{- end }}
{{- range $queue := $group.queues }}
{{- if not (has $queue $known) }}
{{- fail (printf "workers.groups %q: unknown queue %q (the queues are default, exports, keys, maintenance)." $name $queue) }}
{{- end }}
{{- $_ := set $served $queue true }}
{{- end }}
{{- end }}
{{- range $queue := $known }}
{{- if not (hasKey $served $queue) }}
{{- fail (printf "no workers.groups entry serves the %q queue: its tasks would wait forever." $queue) }}
{{- end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.tlsSecretName) }}
{{- fail "ingress.tlsSecretName is required: the Ingress serves HTTPS only, with a certificate for the platform domain and its wildcard" }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
{{- range $name := list "postgresql" "redis" "kms" "s3" "smtp" }}
{{- if not (index $.Values.networkPolicy $name) }}
{{- fail (printf "networkPolicy.%s is required when networkPolicy.enabled: list the {cidr, port} the pods may reach it at." $name) }}
{{- end }}
{{- range $destination := index $.Values.networkPolicy $name }}
{{- if not (and $destination.cidr $destination.port) }}
{{- fail (printf "networkPolicy.%s: every entry needs a cidr and a port." $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A config value as the environment sees it. Values arrive as JSON numbers (float64): print whole numbers
without an exponent (31536000, not 3.1536e+07).
*/}}
{{- define "eci-platform.envString" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* The non-secret environment: the ConfigMap's data, also written inline into the migration hook. */}}
{{- define "eci-platform.configData" -}}
DJANGO_SETTINGS_MODULE: "eci_platform.settings"
DEBUG: "0"
PLATFORM_DOMAIN: {{ .Values.platformDomain | quote }}
EXPORT_SIGNING_KEY_FILE: {{ printf "%s/%s" .Values.exportSigning.mountPath .Values.exportSigning.keyKey | quote }}
EXPORT_SIGNING_CERTIFICATE_FILE: {{ printf "%s/%s" .Values.exportSigning.mountPath .Values.exportSigning.certificateKey | quote }}
{{- range $name, $value := .Values.config }}
{{- if not (or (kindIs "invalid" $value) (eq (toString $value) "")) }}
{{ $name }}: {{ include "eci-platform.envString" $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The secret environment, from the operator's Secret; a missing required key stops the pod's start. */}}
{{- define "eci-platform.secretEnv" -}}
{{- range $name := list "SECRET_KEY" "DATABASE_URL" "REDIS_URL" "EMAIL_URL" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.existingSecret }}
      key: {{ $name }}
{{- end }}
{{- range $name := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.existingSecret }}
      key: {{ $name }}
      optional: true
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* envFrom of the long-running containers: the ConfigMap and any extra sources. */}}
{{- define "eci-platform.envFrom" -}}
- configMapRef:
    name: {{ include "eci-platform.fullname" . }}
{{- with .Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Every container: non-root, no privilege escalation, read-only root, no capabilities, seccomp. */}}
{{- define "eci-platform.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "eci-platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod-level settings shared by every workload. */}}
{{- define "eci-platform.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- include "eci-platform.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The writable /tmp and the export-signing files, mounted in every container. */}}
{{- define "eci-platform.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: export-signing
  secret:
    secretName: {{ .Values.exportSigning.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.exportSigning.keyKey }}
        path: {{ .Values.exportSigning.keyKey }}
      - key: {{ .Values.exportSigning.certificateKey }}
        path: {{ .Values.exportSigning.certificateKey }}
{{- end }}

{{- define "eci-platform.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: export-signing
  mountPath: {{ .Values.exportSigning.mountPath }}
  readOnly: true
{{- end }}

{{/* Pod annotations: a change of the configuration rolls the pods. */}}
{{- define "eci-platform.podAnnotations" -}}
checksum/config: {{ include "eci-platform.configData" . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The migration hook's account: a hook ServiceAccount of its own, or the existing one named. */}}
{{- define "eci-platform.migrateServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-migrate" (include "eci-platform.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "eci-platform.serviceAccountName" . }}
{{- end }}
{{- end }}
