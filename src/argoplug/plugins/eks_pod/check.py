"""`argoplug eks check`: every link of the chain the `eks-pod` plugin needs, tried in order and reported
PASS / FAIL / SKIP: the AWS credentials, the role (AssumeRole), the cluster (DescribeCluster), the EKS
token, the cluster's mapping of it (a 401 means no access entry), and RBAC for each call the plugin makes
(SelfSubjectAccessReview: create, get, list, watch and delete pods, get pods/log in the namespace).

Airflow's seed DAG `test_eks_connectivity` only describes the cluster; a missing access entry or Role then
shows only when the first pod fails. No token or credential is printed.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from argoplug.plugin import PermanentError, TemporaryError

__all__ = ["CHECKED_ACCESS", "Link", "check_links"]

# (verb, resource, subresource): the plugin's calls (handlers.PodJob) and watch, which `kubectl` users of
# the pods need; the Role `argoplug build` writes for the remote cluster grants exactly these.
CHECKED_ACCESS = (
    ("create", "pods", ""),
    ("get", "pods", ""),
    ("list", "pods", ""),
    ("watch", "pods", ""),
    ("delete", "pods", ""),
    ("get", "pods", "log"),
)


@dataclasses.dataclass(frozen=True)
class Link:
    """One link's outcome: `status` PASS, FAIL or SKIP (an earlier link failed), with what was seen."""

    name: str
    status: str
    detail: str


def check_links(
    cluster: str, *, namespace: str = "default", region: str, role_arn: str | None = None
) -> list[Link]:
    """Try each link of the chain to `cluster` in `region` (as `role_arn` when given) for pods in
    `namespace`; return them in order. Never raises for what a link finds: it is that link's FAIL."""
    from argoplug import aws
    from argoplug.aws import eks
    from argoplug.kube.access import ClusterAccess

    links: list[Link] = []

    def failed(name: str, exc: BaseException) -> None:
        detail = exc.message if isinstance(exc, PermanentError | TemporaryError) else f"{exc}"
        links.append(Link(name, "FAIL", detail))

    session = eks.DEFAULT_SESSION_NAME
    try:
        with aws.translated_errors():
            me = aws.client("sts", region=region).get_caller_identity()
        links.append(Link("AWS credentials", "PASS", f"the sidecar is {me['Arn']}"))
    except Exception as exc:
        failed("AWS credentials", exc)
        return _skip_rest(links, role_arn)
    if role_arn:
        try:
            with aws.translated_errors():
                assumed = aws.client("sts", region=region, role_arn=role_arn, session_name=session)
                arn = assumed.get_caller_identity()["Arn"]
            links.append(Link(f"assume role {role_arn}", "PASS", f"as {arn}"))
        except Exception as exc:
            failed(f"assume role {role_arn}", exc)
            return _skip_rest(links, None, after="assume role")
    try:
        found = eks.describe_cluster(cluster, region=region, role_arn=role_arn, session_name=session)
        links.append(Link(f"DescribeCluster {cluster}", "PASS", f"endpoint {found.endpoint}"))
    except Exception as exc:
        failed(f"DescribeCluster {cluster}", exc)
        return _skip_rest(links, None, after="describe")
    try:
        token = eks.eks_token(cluster, region=region, role_arn=role_arn, session_name=session)
        expires = datetime.datetime.fromtimestamp(token.expires_at, tz=datetime.UTC).strftime("%H:%M:%SZ")
        links.append(Link("EKS token", "PASS", f"a presigned sts:GetCallerIdentity, good until {expires}"))
    except Exception as exc:
        failed("EKS token", exc)
        return _skip_rest(links, None, after="token")
    access = ClusterAccess.from_endpoint(
        found.endpoint,
        token=eks.EksTokenSource(cluster, region=region, role_arn=role_arn, session_name=session),
        ca_data=found.ca_data,
        namespace=namespace,
        identity=role_arn or "the sidecar's IAM role",
    )
    with access.client() as client:
        links.extend(_rbac_links(client, cluster, namespace, role_arn))
    return links


def _rbac_links(client: Any, cluster: str, namespace: str, role_arn: str | None) -> list[Link]:
    from lightkube import ApiError
    from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
    from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

    principal = role_arn or "the sidecar's IAM role"
    links: list[Link] = []
    for number, (verb, resource, subresource) in enumerate(CHECKED_ACCESS):
        what = f"{verb} {resource}{'/' + subresource if subresource else ''} in {namespace}"
        review = SelfSubjectAccessReview(
            spec=SelfSubjectAccessReviewSpec(
                resourceAttributes=ResourceAttributes(
                    verb=verb, resource=resource, subresource=subresource or None, namespace=namespace
                )
            )
        )
        try:
            answer = client.create(review)
        except ApiError as exc:
            if exc.status.code == 401:
                links.append(
                    Link(
                        "the cluster maps the token",
                        "FAIL",
                        f"EKS cluster {cluster} answered 401: {principal} has no access entry (or aws-auth "
                        f"mapping): aws eks create-access-entry --cluster-name {cluster} --principal-arn "
                        f"<role ARN> --username <user>",
                    )
                )
                links.extend(
                    Link(f"may {v} {r}{'/' + s if s else ''}", "SKIP", "") for v, r, s in CHECKED_ACCESS
                )
                return links
            links.append(Link(f"may {what}", "FAIL", f"{exc.status.code}: {exc.status.message}"))
            continue
        except Exception as exc:
            links.append(Link(f"may {what}", "FAIL", f"{type(exc).__name__}: {exc}"))
            continue
        if number == 0:
            links.append(Link("the cluster maps the token", "PASS", "its requests are authenticated"))
        status = answer.status
        if status is not None and status.allowed:
            links.append(Link(f"may {what}", "PASS", status.reason or "allowed"))
        else:
            rule = (
                f'{{apiGroups: [""], resources: ["{resource}{"/" + subresource if subresource else ""}"], '
                f'verbs: ["{verb}"]}}'
            )
            reason = (status.reason if status is not None else "") or "no RBAC rule allows it"
            links.append(
                Link(
                    f"may {what}",
                    "FAIL",
                    f"{reason}; bind the user {principal} maps to a Role in {namespace} with {rule}",
                )
            )
    return links


def _skip_rest(links: list[Link], role_arn: str | None, *, after: str = "") -> list[Link]:
    names = []
    if role_arn and after == "":
        names.append(f"assume role {role_arn}")
    if after in ("", "assume role"):
        names.append("DescribeCluster")
    if after in ("", "assume role", "describe"):
        names.append("EKS token")
    names.append("the cluster maps the token")
    names.extend(f"may {v} {r}{'/' + s if s else ''}" for v, r, s in CHECKED_ACCESS)
    return links + [Link(name, "SKIP", "an earlier link failed") for name in names]
