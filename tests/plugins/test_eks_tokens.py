"""The EKS token chain over moto's HTTP server (real sockets): argoplug.aws.eks makes the token `aws eks
get-token` makes, and argoplug.kube.sandbox.eks checks it as aws-iam-authenticator does, calling the
presigned URL back against moto and mapping the role through access entries.

The fixtures `moto` (the module's AwsSandbox, account 100000000002, us-west-2, with the environment pointing
at it) and the autouse `isolated_aws` come from tests/plugins/conftest.py.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
import urllib.parse
import uuid
from typing import Any

import pytest
from sagemaker_support import ACCOUNT, REGION

from argoplug import aws
from argoplug.aws import eks
from argoplug.aws.sandbox import AwsSandbox
from argoplug.kube.access import ClusterAccess
from argoplug.kube.sandbox.eks import AccessEntry, EksTokenAuthenticator, TokenRejected, canonical_arn
from argoplug.kube.sandbox.rbac import UserInfo
from argoplug.plugin import PermanentError, TemporaryError

CLUSTER = "remote-cluster"


def decoded_url(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def encoded(url: str) -> str:
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def make_role(name: str = "", path: str = "/") -> str:
    """An IAM role in moto that the account may assume; its ARN."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam = aws.client("iam", region=REGION)
    name = name or f"eks-runner-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


def authenticator(
    sandbox: AwsSandbox, *entries: dict[str, Any], cluster: str = CLUSTER
) -> EksTokenAuthenticator:
    return EksTokenAuthenticator(sandbox.endpoint_url, list(entries), cluster_name=cluster)


# --- the token ----------------------------------------------------------------------------------------


def test_the_token_is_a_presigned_get_caller_identity_with_the_cluster_header_signed(
    moto: AwsSandbox,
) -> None:
    role = make_role()
    before = time.time()
    made = eks.eks_token(CLUSTER, region=REGION, role_arn=role, session_name="argo-ns-wf")
    url = decoded_url(made.token)
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == moto.endpoint_url  # AWS_ENDPOINT_URL_STS applies
    assert parts.path == "/"
    query = query_of(url)
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert query["X-Amz-Credential"].endswith(f"/{REGION}/sts/aws4_request")
    assert query["X-Amz-Credential"].startswith("ASIA")  # the assumed role's key, not the sidecar's
    assert "X-Amz-Security-Token" in query
    assert CLUSTER not in url  # a header, signed in, never in the URL
    # Reported as aws-cli does: 14 minutes after signing (the cluster accepts it for 15).
    assert before - 1 + 14 * 60 <= made.expires_at <= time.time() + 14 * 60
    assert "k8s-aws-v1" not in repr(made)


def test_without_an_endpoint_override_the_url_names_the_regional_sts(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: presigning needs credentials only."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    made = eks.eks_token(CLUSTER, region="eu-central-1")
    assert urllib.parse.urlsplit(decoded_url(made.token)).netloc == "sts.eu-central-1.amazonaws.com"
    assert decoded_url(made.token).startswith("https://")


def test_now_sets_the_signing_time(moto: AwsSandbox) -> None:
    then = int(time.time()) - 16 * 60
    made = eks.eks_token(CLUSTER, region=REGION, now=then)
    assert query_of(decoded_url(made.token))["X-Amz-Date"] == time.strftime(
        "%Y%m%dT%H%M%SZ", time.gmtime(then)
    )
    assert made.expires_at == then + 14 * 60
    # Only that call: the next one is signed at the real time.
    later = query_of(decoded_url(eks.eks_token(CLUSTER, region=REGION).token))["X-Amz-Date"]
    assert abs(time.mktime(time.strptime(later, "%Y%m%dT%H%M%SZ")) - time.timezone - time.time()) < 5


# --- the sandbox's authenticator ---------------------------------------------------------------------------


def test_the_sandbox_accepts_the_token_and_maps_the_role_to_its_access_entry(moto: AwsSandbox) -> None:
    role = make_role(path="/team/")  # an entry's role ARN may carry a path; the assumed-role ARN never does
    entry = {"principalArn": role, "username": "runner:{{SessionName}}", "groups": ["pod-runners"]}
    token = eks.eks_token(CLUSTER, region=REGION, role_arn=role, session_name="argo@wf").token
    check = authenticator(moto, entry)
    identity = check.verify(token)
    name = role.rsplit("/", 1)[-1]
    assert identity.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/argo@wf"
    assert identity.canonical_arn == f"arn:aws:iam::{ACCOUNT}:role/{name}"
    assert identity.session_name == "argo@wf"
    assert identity.user_id.startswith("AROA")
    user = check.authenticate_token(token)
    assert user is not None
    assert user.username == "runner:argo-wf"  # {{SessionName}} writes @ as -
    assert user.groups == ("pod-runners", "system:authenticated")
    assert user.uid == f"aws-iam-authenticator:{ACCOUNT}:{identity.user_id}"
    assert user.extra["canonicalArn"] == (identity.canonical_arn,)


def test_an_entry_without_a_username_gets_eks_default(moto: AwsSandbox) -> None:
    role = make_role(path="/apps/")
    token = eks.eks_token(CLUSTER, region=REGION, role_arn=role, session_name="s1").token
    user = authenticator(moto, {"principalArn": role}).authenticate_token(token)
    name = role.rsplit("/", 1)[-1]
    assert user == UserInfo(
        username=f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/s1",
        uid=user.uid if user else "",
        groups=("system:authenticated",),
        extra=user.extra if user else {},
    )


def test_an_unmapped_role_is_not_authenticated(moto: AwsSandbox) -> None:
    mapped, other = make_role(), make_role()
    token = eks.eks_token(CLUSTER, region=REGION, role_arn=other, session_name="s1").token
    check = authenticator(moto, {"principalArn": mapped, "groups": ["pod-runners"]})
    assert check.verify(token).canonical_arn == other  # a good token ...
    assert check.authenticate_token(token) is None  # ... of nobody this cluster knows: 401


def test_a_token_for_another_cluster_is_refused(moto: AwsSandbox) -> None:
    """The cluster name is a signed header the authenticator sends itself: STS's signature check fails."""
    role = make_role()
    token = eks.eks_token("another-cluster", region=REGION, role_arn=role, session_name="s1").token
    check = authenticator(moto, {"principalArn": role})
    with pytest.raises(TokenRejected, match="SignatureDoesNotMatch"):
        check.verify(token)
    assert check.authenticate_token(token) is None


def test_an_expired_token_is_refused(moto: AwsSandbox) -> None:
    role = make_role()
    check = authenticator(moto, {"principalArn": role})
    old = eks.eks_token(CLUSTER, region=REGION, role_arn=role, session_name="s1", now=time.time() - 16 * 60)
    with pytest.raises(TokenRejected, match=r"X-Amz-Date parameter is expired \(15 minute expiration\)"):
        check.verify(old.token)
    assert check.authenticate_token(old.token) is None
    recent = eks.eks_token(
        CLUSTER, region=REGION, role_arn=role, session_name="s1", now=time.time() - 14 * 60
    )
    assert check.authenticate_token(recent.token) is not None  # 14 minutes old: still good


@pytest.mark.parametrize(
    ("parameter", "change"),
    [
        ("X-Amz-Signature", lambda value: ("0" if value[0] != "0" else "1") + value[1:]),
        ("X-Amz-Date", lambda value: value[:-3] + ("00Z" if value[-3:] != "00Z" else "01Z")),
        ("X-Amz-Security-Token", lambda value: value[:-4] + "AAAA"),
        ("X-Amz-Credential", lambda value: value.replace(value[4:8], "ZZZZ", 1)),
        ("X-Amz-Expires", lambda value: "30"),
    ],
)
def test_a_tampered_token_is_refused(moto: AwsSandbox, parameter: str, change: Any) -> None:
    role = make_role()
    check = authenticator(moto, {"principalArn": role})
    url = decoded_url(eks.eks_token(CLUSTER, region=REGION, role_arn=role, session_name="s1").token)
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)
    changed = [(key, change(value) if key == parameter else value) for key, value in query]
    assert changed != query
    tampered = encoded(
        urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(query=urllib.parse.urlencode(changed)))
    )
    assert check.authenticate_token(tampered) is None


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda url: url.replace("Action=GetCallerIdentity", "Action=GetSessionToken"), "unexpected action"),
        (lambda url: url.replace("/?", "/x?"), "unexpected path"),
        (lambda url: url + "&Extra=1", 'non-whitelisted query parameter "Extra"'),
        (lambda url: url + "&action=GetCallerIdentity", "duplicate query parameter"),
        (lambda url: url.replace("X-Amz-Expires=60", "X-Amz-Expires=901"), "invalid X-Amz-Expires"),
        (lambda url: url.replace("host%3Bx-k8s-aws-id", "host"), "did not sign the x-k8s-aws-id header"),
        (
            lambda url: url.replace(f"http://{urllib.parse.urlsplit(url).netloc}", "https://sts.example.com"),
            "unexpected hostname",
        ),
    ],
)
def test_the_token_form_is_checked_as_the_authenticator_does(
    moto: AwsSandbox, edit: Any, reason: str
) -> None:
    role = make_role()
    url = decoded_url(eks.eks_token(CLUSTER, region=REGION, role_arn=role, session_name="s1").token)
    with pytest.raises(TokenRejected, match=reason):
        authenticator(moto, {"principalArn": role}).verify(encoded(edit(url)))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("eyJhbGciOiJIUzI1NiJ9.e30.c2ln", 'missing expected "k8s-aws-v1." prefix'),
        ("k8s-aws-v1.aHR0cHM6Ly9zdHM=", "illegal base64"),  # padded: RawURLEncoding refuses it
        ("k8s-aws-v1." + "A" * 5000, "token is too large"),
        (encoded("http://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity"), 'unexpected scheme "http"'),
    ],
)
def test_what_is_not_an_eks_token_is_refused(moto: AwsSandbox, token: str, reason: str) -> None:
    check = authenticator(moto)
    with pytest.raises(TokenRejected, match=reason):
        check.verify(token)
    assert check.authenticate_token(token) is None


def test_a_token_naming_aws_regional_sts_is_called_back_against_the_sandbox(
    moto: AwsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An IAM user's key (moto issues it), no STS override: the URL names sts.us-west-2.amazonaws.com, and
    the sandbox sends that call to moto."""
    iam = aws.client("iam", region=REGION)
    name = f"user-{uuid.uuid4().hex[:8]}"
    user_arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    aws.clear_cache()
    token = eks.eks_token(CLUSTER, region=REGION).token
    assert urllib.parse.urlsplit(decoded_url(token)).netloc == f"sts.{REGION}.amazonaws.com"
    user = authenticator(moto, {"principalArn": user_arn, "groups": ["ops"]}).authenticate_token(token)
    assert user is not None
    assert user.username == user_arn  # EKS's default username for an IAM user: its ARN
    assert user.groups == ("ops", "system:authenticated")


def test_keys_moto_never_issued_are_refused(moto: AwsSandbox) -> None:
    """The sandbox's fake sidecar key `testing`: real STS would answer InvalidClientTokenId."""
    token = eks.eks_token(CLUSTER, region=REGION).token
    with pytest.raises(TokenRejected, match="InvalidClientTokenId"):
        authenticator(moto).verify(token)


def test_access_entries_one_per_principal_and_canonical_arns() -> None:
    check = EksTokenAuthenticator(
        "http://127.0.0.1:9", [AccessEntry("arn:aws:iam::111122223333:role/a/b/r")], cluster_name="c"
    )
    with pytest.raises(ValueError, match="exists already"):
        check.add_access_entry({"principalArn": "arn:aws:iam::111122223333:role/r"})  # same role, no path
    with pytest.raises(ValueError, match="principalArn"):
        check.add_access_entry({"username": "x"})
    assert canonical_arn("arn:aws:sts::111122223333:assumed-role/R/S") == (
        "assumed-role",
        "arn:aws:iam::111122223333:role/R",
    )
    assert canonical_arn("arn:aws:iam::111122223333:user/u") == ("user", "arn:aws:iam::111122223333:user/u")
    with pytest.raises(ValueError, match="unrecognized resource user/moto for service sts"):
        canonical_arn("arn:aws:sts::111122223333:user/moto")


# --- the token source ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_token_source_renews_before_expiry_and_on_refresh(moto: AwsSandbox) -> None:
    clock = Clock()
    source = eks.EksTokenSource(
        CLUSTER, region=REGION, role_arn=make_role(), refresh_margin=60.0, clock=clock
    )
    first = source.token()
    assert source.made == 1
    clock.now += 13 * 60 - 1  # 14 minutes' expiry less the 60 s margin, not yet
    assert source.token() == first
    assert source.made == 1
    clock.now += 1
    source.token()
    assert source.made == 2
    source.token(refresh=True)  # after a 401
    assert source.made == 3
    assert source.token() and source.made == 3
    assert "k8s-aws-v1" not in repr(source)


def test_the_token_source_makes_one_token_for_concurrent_callers(moto: AwsSandbox) -> None:
    source = eks.EksTokenSource(CLUSTER, region=REGION, role_arn=make_role())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: source.token(), range(16)))
    assert len(tokens) == 1
    assert source.made == 1


def test_the_token_sources_tokens_are_accepted(moto: AwsSandbox) -> None:
    role = make_role()
    source = eks.EksTokenSource(CLUSTER, region=REGION, role_arn=role, session_name="s1")
    assert authenticator(moto, {"principalArn": role}).authenticate_token(source.token()) is not None


# --- the cluster ----------------------------------------------------------------------------------------


def create_cluster(name: str, pem: str | None) -> str:
    """An EKS cluster in moto; moto's CA is random text, so a test that needs a real one sets it."""
    from moto.eks.models import eks_backends

    created = aws.client("eks", region=REGION).create_cluster(
        name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={}
    )
    if pem is not None:
        data = base64.b64encode(pem.encode()).decode()
        eks_backends[ACCOUNT][REGION].clusters[name].certificate_authority = {"data": data}
    return str(created["cluster"]["arn"])


@pytest.fixture
def ca_pem() -> str:
    import trustme

    return trustme.CA().cert_pem.bytes().decode()


def test_describe_cluster_gives_endpoint_ca_and_arn(moto: AwsSandbox, ca_pem: str) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    arn = create_cluster(name, ca_pem)
    found = eks.describe_cluster(name, region=REGION, role_arn=make_role())
    assert found.endpoint.startswith("https://") and found.endpoint.rstrip("/").endswith(".eks.amazonaws.com")
    assert found.ca_data == ca_pem
    assert found.arn == arn == f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{name}"


def test_a_cluster_whose_ca_is_not_pem_is_permanent(moto: AwsSandbox) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    create_cluster(name, None)
    with pytest.raises(PermanentError, match=f"EKS cluster '{name}' in {REGION}: certificateAuthority.data"):
        eks.describe_cluster(name, region=REGION)


def test_a_missing_cluster_is_permanent_and_named(moto: AwsSandbox) -> None:
    with pytest.raises(PermanentError) as caught:
        eks.describe_cluster("no-such-cluster", region=REGION)
    assert "EKS cluster 'no-such-cluster' does not exist in region us-west-2" in caught.value.message
    assert "DescribeCluster" in caught.value.message


def test_eks_access_builds_a_cluster_access_with_the_token_source(moto: AwsSandbox, ca_pem: str) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    arn = create_cluster(name, ca_pem)
    role = make_role()
    access = eks.eks_access(
        name, region=REGION, role_arn=role, namespace="jobs", factory=ClusterAccess.from_endpoint
    )
    assert isinstance(access, ClusterAccess)
    assert access.server.endswith(".eks.amazonaws.com")
    assert access.ca_data == ca_pem
    assert access.namespace == "jobs"
    assert access.identity == role
    assert access.source == f"EKS cluster {arn}"
    assert isinstance(access.token_source, eks.EksTokenSource)
    assert access.token_source.token().startswith("k8s-aws-v1.")
    sidecar = eks.eks_access(name, region=REGION, factory=ClusterAccess.from_endpoint)
    assert sidecar.identity == "the sidecar's AWS identity"


# --- errors moto cannot make ------------------------------------------------------------------------------


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port and fake keys: a call that is not stubbed can never leave the machine."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_a_role_that_cannot_be_assumed_says_so(stubbed: None) -> None:
    """Stubbed: moto does not enforce trust policies (it lets any caller assume any role, even one that
    does not exist), so STS's AccessDenied on AssumeRole comes from botocore's Stubber."""
    from botocore.stub import Stubber

    role = "arn:aws:iam::111122223333:role/not-trusting"
    message = (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/sidecar/x is not authorized to perform: sts:AssumeRole"
    )
    with Stubber(aws.client("sts", region=REGION)) as stub:
        stub.add_client_error("assume_role", "AccessDenied", message, 403)
        with pytest.raises(PermanentError) as caught:
            eks.eks_token(CLUSTER, region=REGION, role_arn=role, session_name="s1")
    text = caught.value.message
    assert text.startswith(f"cannot assume role {role}: {message}. Let the sidecar's identity assume it")
    assert "trust policy" in text


def test_throttling_is_temporary(stubbed: None) -> None:
    """Stubbed: moto never throttles."""
    from botocore.stub import Stubber

    with Stubber(aws.client("eks", region=REGION)) as stub:
        stub.add_client_error("describe_cluster", "ThrottlingException", "Rate exceeded", 429)
        with pytest.raises(TemporaryError, match="AWS throttled DescribeCluster"):
            eks.describe_cluster(CLUSTER, region=REGION)
