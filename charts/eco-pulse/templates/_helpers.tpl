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

{{/* The serving certificate's names: the webhook's Service, and the fleet webhook's when on. */}}
{{- define "eco-pulse.webhookDnsNames" -}}
{{- $names := list -}}
{{- $services := list "eco-pulse-webhook" -}}
{{- if .Values.fleet.deferral.enabled }}{{ $services = append $services "eco-pulse-fleet-webhook" }}{{ end -}}
{{- range $service := $services -}}
{{- $host := printf "%s.%s.svc" $service $.Release.Namespace -}}
{{- $names = concat $names (list $host (printf "%s.cluster.local" $host) (printf "%s.%s" $service $.Release.Namespace) $service) -}}
{{- end -}}
{{- toJson $names -}}
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

{{/*
The name of a cluster-scoped object (MutatingWebhookConfiguration, ClusterRole, ClusterRoleBinding,
...): eco-pulse[-COMPONENT].NAMESPACE, plus .RELEASE when the release is not called eco-pulse.
A release is unique by its name and namespace, and a namespace name has no dot, so two releases
never share a name, nor meet the kustomize base's names (eco-pulse, eco-pulse-webhook: no dot).
Usage: include "eco-pulse.clusterName" (list . "webhook"), or (list . "") for the release's own.
*/}}
{{- define "eco-pulse.clusterName" -}}
{{- $ctx := index . 0 -}}
{{- $component := index . 1 -}}
{{- $name := "eco-pulse" -}}
{{- if $component }}{{ $name = printf "%s-%s" $name $component }}{{ end -}}
{{- $name = printf "%s.%s" $name $ctx.Release.Namespace -}}
{{- if ne $ctx.Release.Name "eco-pulse" }}{{ $name = printf "%s.%s" $name $ctx.Release.Name }}{{ end -}}
{{- $name | trunc 253 -}}
{{- end -}}
