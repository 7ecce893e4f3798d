"""Remote EKS clusters in a local run: each EKS cluster an AWS sandbox declares (`eks_clusters`) is played
by a Kubernetes sandbox of its own, over TLS with a throwaway CA, that authenticates EKS tokens as EKS does
(`argoplug.kube.sandbox.eks.EksTokenAuthenticator`, against the AWS sandbox's STS, mapped by the cluster's
access entries) and authorizes them through its RBAC; DescribeCluster then answers that sandbox's URL and CA.

`argoplug run --aws-sandbox FILE` starts them with the AWS sandbox. The AWS sandbox is passed in (this
package may not import argoplug.aws): anything with `endpoint_url`, `eks_clusters` (name, kubernetes,
access_entries) and `point_eks_cluster(name, endpoint=, ca_pem=)`, as `argoplug.aws.sandbox.AwsSandbox` has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from argoplug.kube.sandbox.eks import AccessEntry, EksTokenAuthenticator
from argoplug.kube.sandbox.server import KubeSandbox, SandboxError, SandboxTLS, load_objects

__all__ = ["RemoteEksCluster", "RemoteEksClusters", "throwaway_tls"]


def throwaway_tls(folder: str | Path) -> SandboxTLS:
    """A CA made for this run and a server certificate for 127.0.0.1 and localhost, written into `folder`
    (`ca.crt`, `tls.crt`, `tls.key`). Raises SandboxError without `trustme` (the sandbox extra)."""
    try:
        import trustme
    except ImportError as exc:
        raise SandboxError(
            f"a remote EKS cluster sandbox needs trustme: pip install 'argoplug[sandbox]' ({exc})"
        ) from None
    folder = Path(folder)
    ca = trustme.CA(organization_name="argoplug sandbox")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = folder / "ca.crt", folder / "tls.crt", folder / "tls.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return SandboxTLS(cert_file=str(cert_file), key_file=str(key_file), ca_file=str(ca_file))


@dataclasses.dataclass
class RemoteEksCluster:
    """One running remote cluster: its EKS `name`, the `sandbox` playing it, and its `authenticator`
    (whose access entries may be changed while it runs)."""

    name: str
    sandbox: KubeSandbox
    authenticator: EksTokenAuthenticator

    def describe(self) -> str:
        entries = ", ".join(
            f"{entry.principal_arn} → {entry.username or '(EKS default username)'}"
            for entry in self.authenticator.access_entries()
        )
        return (
            f"EKS cluster {self.name}: Kubernetes sandbox at {self.sandbox.url} (accepts EKS tokens; access "
            f"entries: {entries or 'none'}); its pods' commands run on this machine, their images are not "
            "pulled"
        )


class RemoteEksClusters:
    """The Kubernetes sandboxes of `aws_sandbox.eks_clusters`, started on enter (after the AWS sandbox
    is) and stopped on exit. `clusters` maps each EKS name to its `RemoteEksCluster`.

    Raises SandboxError naming the cluster when its objects file cannot be read or created, or when the
    AWS sandbox has no such cluster.
    """

    def __init__(self, aws_sandbox: Any) -> None:
        self.aws_sandbox = aws_sandbox
        self.clusters: dict[str, RemoteEksCluster] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RemoteEksClusters:
        try:
            folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="argoplug-eks-")))
            for spec in self.aws_sandbox.eks_clusters:
                self.clusters[spec.name] = self._start(spec, folder / spec.name)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.clusters.clear()

    def _start(self, spec: Any, folder: Path) -> RemoteEksCluster:
        folder.mkdir()
        where = f"EKS cluster {spec.name}"
        try:
            objects = load_objects(spec.kubernetes) if spec.kubernetes else []
        except SandboxError as exc:
            raise SandboxError(f"{where}: {exc}") from None
        entries = [
            AccessEntry(principal_arn=e.principal_arn, username=e.username, groups=tuple(e.groups))
            for e in spec.access_entries
        ]
        authenticator = EksTokenAuthenticator(self.aws_sandbox.endpoint_url, entries, cluster_name=spec.name)
        tls = throwaway_tls(folder)
        sandbox = KubeSandbox(objects, tls=tls)
        sandbox.authenticator.add_token_webhook(authenticator.authenticate_token)
        try:
            self._stack.enter_context(sandbox)
        except SandboxError as exc:
            raise SandboxError(f"{where}: {exc}") from None
        self.aws_sandbox.point_eks_cluster(
            spec.name, endpoint=sandbox.url, ca_pem=Path(tls.ca_file).read_text()
        )
        return RemoteEksCluster(spec.name, sandbox, authenticator)

    def describe(self) -> list[str]:
        """One line per cluster (`RemoteEksCluster.describe`)."""
        return [cluster.describe() for cluster in self.clusters.values()]
