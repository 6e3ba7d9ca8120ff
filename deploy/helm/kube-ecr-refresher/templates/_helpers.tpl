{{/*
Expand the name of the chart.
*/}}
{{- define "kube-ecr-refresher.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "kube-ecr-refresher.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "kube-ecr-refresher.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels, then commonLabels (validate keeps them off the chart's own).
*/}}
{{- define "kube-ecr-refresher.labels" -}}
helm.sh/chart: {{ include "kube-ecr-refresher.chart" . }}
{{ include "kube-ecr-refresher.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Whether the controller serves metrics: metrics.enabled, or anything that
needs them (the Service, the ServiceMonitor, the PrometheusRule). "true" or "".
*/}}
{{- define "kube-ecr-refresher.metricsEnabled" -}}
{{- $m := .Values.metrics }}
{{- if or $m.enabled $m.service.enabled $m.serviceMonitor.enabled $m.prometheusRule.enabled }}true{{ end }}
{{- end }}

{{/*
Whether a value is set: neither missing, null nor the empty string (0 is set).
*/}}
{{- define "kube-ecr-refresher.isSet" -}}
{{- if and (not (kindIs "invalid" .)) (ne (toString .) "") }}true{{ end }}
{{- end }}

{{/*
A PodDisruptionBudget count as the API wants it: a percentage quoted, a
number as an integer.
*/}}
{{- define "kube-ecr-refresher.intOrPercent" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "kube-ecr-refresher.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-ecr-refresher.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "kube-ecr-refresher.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-ecr-refresher.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container image: repository@digest when a digest is set, else
repository:tag with the tag defaulting to the chart's appVersion.
*/}}
{{- define "kube-ecr-refresher.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the leader election Lease: config.leaseName, else the full name.
*/}}
{{- define "kube-ecr-refresher.leaseName" -}}
{{- default (include "kube-ecr-refresher.fullname" .) .Values.config.leaseName }}
{{- end }}

{{/*
Name of the Secret holding static AWS keys: aws.existingSecret, else the one
the chart creates from aws.accessKeyId/secretAccessKey, else empty (keyless).
*/}}
{{- define "kube-ecr-refresher.awsSecretName" -}}
{{- if .Values.aws.existingSecret }}
{{- .Values.aws.existingSecret }}
{{- else if .Values.aws.accessKeyId }}
{{- printf "%s-aws" (include "kube-ecr-refresher.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Checks of combinations the schema cannot express; renders nothing.
*/}}
{{- define "kube-ecr-refresher.validate" -}}
{{- $_ := required "aws.region is required: the AWS region of the ECR registry, e.g. --set aws.region=eu-west-1" .Values.aws.region }}
{{- if and .Values.aws.existingSecret (or .Values.aws.accessKeyId .Values.aws.secretAccessKey) }}
{{- fail "set either aws.existingSecret or aws.accessKeyId/aws.secretAccessKey, not both" }}
{{- end }}
{{- if ne (empty .Values.aws.accessKeyId) (empty .Values.aws.secretAccessKey) }}
{{- fail "aws.accessKeyId and aws.secretAccessKey must be set together" }}
{{- end }}
{{- with .Values.aws.webIdentity.roleArn }}
{{- if or $.Values.aws.existingSecret $.Values.aws.accessKeyId $.Values.aws.secretAccessKey }}
{{- fail "set either aws.webIdentity.roleArn or static keys (aws.existingSecret, aws.accessKeyId/aws.secretAccessKey), not both: the AWS SDK would use the keys and ignore the role" }}
{{- end }}
{{- if get $.Values.serviceAccount.annotations "eks.amazonaws.com/role-arn" }}
{{- fail "set either aws.webIdentity.roleArn or the IRSA annotation serviceAccount.annotations.eks.amazonaws.com/role-arn, not both: two web identities, each with its own token and role" }}
{{- end }}
{{- if eq (dir $.Values.aws.webIdentity.tokenPath) "/var/run/secrets/kubernetes.io/serviceaccount" }}
{{- fail "aws.webIdentity.tokenPath must not be in /var/run/secrets/kubernetes.io/serviceaccount, where Kubernetes mounts the token the controller reads the API with" }}
{{- end }}
{{- range $.Values.extraEnv }}
{{- if has .name (list "AWS_ROLE_ARN" "AWS_WEB_IDENTITY_TOKEN_FILE" "AWS_ROLE_SESSION_NAME") }}
{{- fail (printf "extraEnv must not set %s with aws.webIdentity.roleArn, which sets it" .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq (toString .Values.config.leaderElect) "false" }}
{{- fail "config.leaderElect was removed and cannot be false: the controller always elects a leader through a Lease (one renewal every few seconds), so that the uninstall cleanup can stop it and a rollout never runs two writers. Delete the key from your values." }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if hasPrefix "KUBE_ECR_REFRESHER_" .name }}
{{- fail (printf "extraEnv must not set %s: the controller's settings are the config, health, metrics and events values, and the chart sets the rest itself (leader election, Lease namespace, identity)" .name) }}
{{- end }}
{{- end }}
{{- if and (has "*" .Values.config.serviceAccounts) (gt (len .Values.config.serviceAccounts) 1) }}
{{- fail "config.serviceAccounts: \"*\" (every ServiceAccount) must be the only entry" }}
{{- end }}
{{- if .Values.cronJob.enabled }}
{{- $m := .Values.metrics }}
{{- range $key, $on := dict "enabled" $m.enabled "service.enabled" $m.service.enabled "serviceMonitor.enabled" $m.serviceMonitor.enabled "prometheusRule.enabled" $m.prometheusRule.enabled }}
{{- if $on }}
{{- fail (printf "metrics.%s needs the Deployment: a CronJob's Pod lives for one pass only (set cronJob.enabled=false)" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (include "kube-ecr-refresher.metricsEnabled" .) (eq (int .Values.metrics.port) (int .Values.health.port)) }}
{{- fail (printf "metrics.port and health.port must differ, both are %d" (int .Values.health.port)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and (include "kube-ecr-refresher.isSet" $pdb.minAvailable) (include "kube-ecr-refresher.isSet" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- $ownLabels := list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/component" "app.kubernetes.io/part-of" }}
{{- range $values, $labels := dict "commonLabels" .Values.commonLabels "serviceAccount.labels" .Values.serviceAccount.labels }}
{{- range $key, $_ := $labels }}
{{- if has $key $ownLabels }}
{{- fail (printf "%s must not set %s: the chart sets it (its selectors and Helm rely on it)" $values $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The flags of the settings the chart renders itself or scopes RBAC
rules by (config.FlagName of their KUBE_ECR_REFRESHER_* keys). */}}
{{- $ownFlags := list "cleanup" "once" "leader-elect" "lease-name" "lease-namespace" "leader-election-identity" "health-addr" "metrics-addr" "events" "secret-name" "service-accounts" "kubeconfig" }}
{{- range .Values.extraArgs }}
{{- if hasPrefix "-" . }}
{{- $flag := regexReplaceAll "^-+([^=]*).*$" . "${1}" }}
{{- if has $flag $ownFlags }}
{{- fail (printf "extraArgs must not set --%s: the chart sets it or scopes the RBAC rules by it; use the values (cronJob, cleanup, config, health, metrics, events)" $flag) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The start of the container environment of the controller and of the cleanup
Job: the downward API and AWS_REGION.
*/}}
{{- define "kube-ecr-refresher.baseEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: AWS_REGION
  value: {{ .Values.aws.region | quote }}
{{- end }}

{{/*
The controller's AWS credentials, if the values configure any (validate
keeps them exclusive): AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the
static keys' Secret, or the web identity's role, token file and session name
(the Pod name, which CloudTrail then shows).
*/}}
{{- define "kube-ecr-refresher.awsCredentialsEnv" -}}
{{- $awsSecret := include "kube-ecr-refresher.awsSecretName" . }}
{{- if $awsSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $awsSecret }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $awsSecret }}
      key: AWS_SECRET_ACCESS_KEY
{{- else if .Values.aws.webIdentity.roleArn }}
- name: AWS_ROLE_ARN
  value: {{ .Values.aws.webIdentity.roleArn | quote }}
- name: AWS_WEB_IDENTITY_TOKEN_FILE
  value: {{ .Values.aws.webIdentity.tokenPath | quote }}
- name: AWS_ROLE_SESSION_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- end }}

{{/*
The web identity's volume: a ServiceAccount token of the Pod's own
ServiceAccount for aws.webIdentity.audience, renewed by the kubelet. Empty
unless aws.webIdentity.roleArn is set.
*/}}
{{- define "kube-ecr-refresher.webIdentityVolumes" -}}
{{- with .Values.aws.webIdentity }}
{{- if .roleArn }}
- name: aws-web-identity-token
  projected:
    sources:
      - serviceAccountToken:
          audience: {{ .audience | quote }}
          expirationSeconds: {{ int64 .expirationSeconds }}
          path: {{ base .tokenPath | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The mount of the web identity's volume: the directory of
aws.webIdentity.tokenPath, read-only. Empty unless aws.webIdentity.roleArn is set.
*/}}
{{- define "kube-ecr-refresher.webIdentityVolumeMounts" -}}
{{- with .Values.aws.webIdentity }}
{{- if .roleArn }}
- name: aws-web-identity-token
  mountPath: {{ dir .tokenPath | quote }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
The KUBE_ECR_REFRESHER_* variables: one per config key, in key order (lists
joined with commas, registries as ACCOUNT_ID:REGION[:ROLE_ARN]), then leader
election, always on, the health address, the metrics address and events when
enabled, then extraEnv (which validate keeps from setting any of these).
*/}}
{{- define "kube-ecr-refresher.settingsEnv" -}}
{{- range $key, $value := .Values.config }}
{{- $name := printf "KUBE_ECR_REFRESHER_%s" ($key | snakecase | upper) }}
{{- if eq $key "leaderElect" }}
{{- /* removed; validate rejects false, true is the only behaviour */}}
{{- else if eq $key "leaseName" }}
- name: {{ $name }}
  value: {{ include "kube-ecr-refresher.leaseName" $ | quote }}
{{- else if eq $key "registries" }}
- name: {{ $name }}
  value: {{ include "kube-ecr-refresher.registries" $ | quote }}
{{- else if kindIs "slice" $value }}
- name: {{ $name }}
  value: {{ join "," $value | quote }}
{{- else if ne (toString $value) "" }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}
- name: KUBE_ECR_REFRESHER_LEADER_ELECT
  value: "true"
- name: KUBE_ECR_REFRESHER_HEALTH_ADDR
  value: {{ printf ":%d" (int .Values.health.port) | quote }}
{{- if include "kube-ecr-refresher.metricsEnabled" . }}
- name: KUBE_ECR_REFRESHER_METRICS_ADDR
  value: {{ printf ":%d" (int .Values.metrics.port) | quote }}
{{- end }}
{{- if .Values.events.enabled }}
- name: KUBE_ECR_REFRESHER_EVENTS
  value: "true"
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
config.registries as KUBE_ECR_REFRESHER_REGISTRIES wants them:
ACCOUNT_ID:REGION[:ROLE_ARN], joined with commas.
*/}}
{{- define "kube-ecr-refresher.registries" -}}
{{- $entries := list }}
{{- range .Values.config.registries }}
{{- $entry := printf "%s:%s" (toString .accountId) .region }}
{{- if .roleArn }}
{{- $entry = printf "%s:%s" $entry .roleArn }}
{{- end }}
{{- $entries = append $entries $entry }}
{{- end }}
{{- join "," $entries }}
{{- end }}

{{/*
Labels of the metrics Service, which the ServiceMonitor selects it by.
*/}}
{{- define "kube-ecr-refresher.metricsSelectorLabels" -}}
{{ include "kube-ecr-refresher.selectorLabels" . }}
app.kubernetes.io/component: metrics
{{- end }}

{{/*
A duration of hours, minutes and seconds (1h, 90m, 1h30m) in seconds.
*/}}
{{- define "kube-ecr-refresher.seconds" -}}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+[hms]" . -1 }}
{{- $n := regexFind "[0-9]+" . | int }}
{{- if hasSuffix "h" . }}
{{- $total = add $total (mul $n 3600) }}
{{- else if hasSuffix "m" . }}
{{- $total = add $total (mul $n 60) }}
{{- else }}
{{- $total = add $total $n }}
{{- end }}
{{- end }}
{{- $total }}
{{- end }}
