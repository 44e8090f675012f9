{{/*
The rights of each ServiceAccount, in one place (docs/operator.md explains each rule).
"Watched" rules apply where Executions live: the release namespace (Role) or every namespace
(ClusterRole, watch.clusterWide). "Lease" rules apply in the release namespace only, where the
worker Leases live.

executions/finalizers (update): every ConfigMap or Job that noetl creates carries an
ownerReference to its Execution with blockOwnerDeletion: true; clusters running the
OwnerReferencesPermissionEnforcement admission plugin require this right to set it. For a custom
resource it grants nothing else (there is no finalizers endpoint).
*/}}

{{- define "noetl.operatorRules" -}}
# Watch Executions (kopf list+watch), re-read one after a write conflict, delete it when
# spec.ttlSecondsAfterFinished has passed.
- apiGroups: [noetl.io]
  resources: [executions]
  verbs: [get, list, watch, delete]
# Watch Playbooks; read the one an Execution references.
- apiGroups: [noetl.io]
  resources: [playbooks]
  verbs: [get, list, watch]
# Write phase, engine state, commands and results (Executions); Ready/Invalid (Playbooks).
- apiGroups: [noetl.io]
  resources: [executions/status, playbooks/status]
  verbs: [patch]
- apiGroups: [noetl.io]
  resources: [executions/finalizers]
  verbs: [update]
# job executor: one Job per command; list an Execution's Jobs to notice silent failures; delete
# them on cancel or failure.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, list, delete]
# Result store and large states/commands: ConfigMaps owned by the Execution (create, or replace
# with update when the name exists), read back on restart.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, update]
# Kubernetes Events on Executions and Playbooks (Started, Succeeded, Failed, ...).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "noetl.operatorLeaseRules" -}}
# Which workers are alive (worker executor): their Leases in the release namespace.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [list]
{{- end -}}

{{- define "noetl.workerRules" -}}
# Find the commands assigned to this worker (list+watch Executions); read Playbooks for
# sub-playbooks (by name, else by their path annotation in a list).
- apiGroups: [noetl.io]
  resources: [executions, playbooks]
  verbs: [get, list, watch]
# Report results: a JSON merge patch that adds events to status.inbox (never the spec).
- apiGroups: [noetl.io]
  resources: [executions/status]
  verbs: [patch]
- apiGroups: [noetl.io]
  resources: [executions/finalizers]
  verbs: [update]
# Large commands and events live in ConfigMaps owned by the Execution.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, update]
# Credentials (auth: NAME): a Secret named NAME or annotated noetl.io/credential in the
# Execution's namespace, read only where the tool runs.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list]
{{- end -}}

{{- define "noetl.workerLeaseRules" -}}
# Each worker registers, renews and on shutdown deletes its own Lease (named after its pod).
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, create, update, patch, delete]
{{- end -}}

{{- define "noetl.jobRules" -}}
# A Job pod runs one command of one Execution: read it (the owner of a large event's ConfigMap),
# report the result into status.inbox.
- apiGroups: [noetl.io]
  resources: [executions]
  verbs: [get]
# Sub-playbooks (tool kind playbook): found by name, else by their path annotation in a list.
- apiGroups: [noetl.io]
  resources: [playbooks]
  verbs: [get, list]
- apiGroups: [noetl.io]
  resources: [executions/status]
  verbs: [patch]
- apiGroups: [noetl.io]
  resources: [executions/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list]
{{- end -}}
