{{/* Chart name, possibly overridden. */}}
{{- define "vmk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: <release>-<chart>, or just the release when it already says vmkernel (release
"vmkernel" gives vmkernel-vm-operator, vmkernel-vmkerneld, as deploy/ has them). */}}
{{- define "vmk.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if or (contains $name .Release.Name) (contains "vmkernel" .Release.Name) }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "vm-operator" (the binary), not "operator": <fullname>-operator would be the user role vmkernel-operator. */}}
{{- define "vmk.operatorName" -}}
{{- printf "%s-vm-operator" (include "vmk.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vmk.daemonName" -}}
{{- printf "%s-vmkerneld" (include "vmk.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "vmk.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vmk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vmkernel-operator
{{- end }}

{{- define "vmk.operatorSelector" -}}
app.kubernetes.io/name: {{ include "vmk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "vmk.daemonSelector" -}}
app.kubernetes.io/name: {{ include "vmk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: vmkerneld
{{- end }}

{{/* image reference: repository@digest, or repository:tag (tag defaults to appVersion). Argument: dict root image. */}}
{{- define "vmk.image" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end }}

{{/* Secrets holding the mutual-TLS material (same names whether helm or cert-manager makes them). */}}
{{- define "vmk.caSecret" -}}{{ include "vmk.fullname" . }}-ca{{- end }}
{{- define "vmk.daemonTlsSecret" -}}{{ include "vmk.daemonName" . }}-tls{{- end }}
{{- define "vmk.operatorTlsSecret" -}}{{ include "vmk.operatorName" . }}-tls{{- end }}

{{/* The name the operator expects in vmkerneld's server certificate, whatever address it dials. */}}
{{- define "vmk.daemonServerName" -}}{{ include "vmk.daemonName" . }}.{{ .Release.Namespace }}.svc{{- end }}
