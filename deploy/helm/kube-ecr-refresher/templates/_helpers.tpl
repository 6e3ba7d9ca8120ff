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
Common labels
*/}}
{{- define "kube-ecr-refresher.labels" -}}
helm.sh/chart: {{ include "kube-ecr-refresher.chart" . }}
{{ include "kube-ecr-refresher.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
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
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.config.leaderElect) }}
{{- fail "config.leaderElect=false needs replicaCount=1: replicas without leader election would all write" }}
{{- end }}
{{- end }}

{{/*
Leader election is on when config.leaderElect is true; validate makes sure it
is whenever there is more than one replica.
*/}}
{{- define "kube-ecr-refresher.leaderElect" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.config.leaderElect }}true{{ else }}false{{ end }}
{{- end }}
