{{/* Labels on every object; selectors use app.kubernetes.io/name only (they are immutable). */}}
{{- define "eco-pulse.labels" -}}
app.kubernetes.io/part-of: eco-pulse
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "eco-pulse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "eco-pulse.webhookHost" -}}
eco-pulse-webhook.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* The pod settings both Deployments share: scheduling and security. */}}
{{- define "eco-pulse.podCommon" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
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
{{- end -}}

{{- define "eco-pulse.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: ["ALL"]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "eco-pulse.credentials" -}}
{{- if .Values.carbon.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.carbon.credentialsSecret }}
      optional: true
{{- end }}
{{- end -}}
