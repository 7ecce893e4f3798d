"""Packaging: a bundle (`argoplug.yaml`) or a plain Argo plugin folder → ConfigMap, RBAC, IAM, Dockerfile.

`argoplug build` calls it; plugin packages contribute through the build hooks of `argoplug.hookspecs`.
"""
