{{/*
Names and labels of every object. Object names are cut to 63 characters (the DNS label limit);
suffixes are added before the cut so that "-operator" and "-worker" never collide.
*/}}

{{- define "noetl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object name: <release>-noetl, or the release name when it says noetl. */}}
{{- define "noetl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", cut to 63: (dict "ctx" $ "component" "operator") */}}
{{- define "noetl.componentName" -}}
{{- $full := include "noetl.fullname" .ctx | trunc (int (sub 62 (len .component))) | trimSuffix "-" -}}
{{- printf "%s-%s" $full .component -}}
{{- end -}}

{{- define "noetl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that never change for the life of a release: used in selectors. */}}
{{- define "noetl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "noetl.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Labels of every object: (dict "ctx" $ "component" "operator"); component may be empty. */}}
{{- define "noetl.labels" -}}
helm.sh/chart: {{ include "noetl.chart" .ctx }}
{{ include "noetl.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: noetl
{{- end -}}

{{- define "noetl.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* ServiceAccount names: the value when given, else <fullname>-<component>. */}}
{{- define "noetl.operatorServiceAccount" -}}
{{- default (include "noetl.componentName" (dict "ctx" . "component" "operator")) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "noetl.workerServiceAccount" -}}
{{- default (include "noetl.componentName" (dict "ctx" . "component" "worker")) .Values.worker.serviceAccount.name -}}
{{- end -}}

{{- define "noetl.jobServiceAccount" -}}
{{- default (include "noetl.componentName" (dict "ctx" . "component" "job")) .Values.job.serviceAccount.name -}}
{{- end -}}

{{/* Environment shared by the operator and the workers: who am I, logging, result store. */}}
{{- define "noetl.commonEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: NOETL_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: NOETL_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- if eq .Values.resultStore.type "postgres" }}
# Not read by noetl 0.1.0 yet (ConfigMaps are always used); see values.yaml resultStore.
- name: NOETL_RESULT_STORE
  value: postgres
- name: NOETL_RESULT_STORE_DSN
  valueFrom:
    secretKeyRef:
      name: {{ required "resultStore.postgres.existingSecret is required when resultStore.type is postgres: name a Secret in the release namespace that holds the DSN" .Values.resultStore.postgres.existingSecret }}
      key: {{ .Values.resultStore.postgres.dsnKey }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the operator and the workers. */}}
{{- define "noetl.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "noetl.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}
