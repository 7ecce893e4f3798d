"""The embedded Kubernetes API sandbox: an API server stand-in on loopback, for tests and `argoplug run
--kube-sandbox`, reached through lightkube's real client.

It serves what argoplug's plugins and tools use, as the API server behaves (each module names the Go source
it follows): discovery; create (`generateName`), get, list (label and field selectors, `limit`/`continue`),
replace, JSON merge patch, JSON patch and server-side apply (managedFields, conflicts), delete (propagation
policies, preconditions); `resourceVersion` with 409 on a stale write; `Status` bodies; watches (410 Expired);
the `status` subresource; garbage collection through ownerReferences; ServiceAccount tokens (TokenRequest,
TokenReview) and RBAC from the stored Roles and bindings (SelfSubjectAccessReview, SubjectAccessReview, 403);
Argo's CRDs; pods bound to its one node and run by its kubelet as local processes, or by a script
(`kubelet`), with their logs; EKS tokens through a token webhook (`eks`, `remote_eks`). What it does not
model: admission webhooks, quotas, probes and volumes, conversion between versions, strategic merge patch
directives, aggregated APIs.
"""

from argoplug.kube.sandbox.server import ADMIN_USER, KubeSandbox, SandboxError, SandboxTLS, load_objects

__all__ = ["ADMIN_USER", "KubeSandbox", "SandboxError", "SandboxTLS", "load_objects"]
