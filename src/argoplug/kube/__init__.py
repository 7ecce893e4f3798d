"""argoplug's Kubernetes layer: clients built with lightkube (imported lazily), errors translated to
argoplug's, and the embedded Kubernetes API sandbox (`argoplug.kube.sandbox`).

Plugins that create Kubernetes objects (`argoplug.plugins.kubernetes_secret`), `argoplug run
--kube-sandbox/--kubeconfig` and the tests call it; the core never imports it.
"""
