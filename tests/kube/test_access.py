"""How argoplug.kube finds a cluster: the pod's ServiceAccount (token re-read on rotation), a kubeconfig,
or an endpoint with a CA and a token source; and the errors that say what is missing."""

from __future__ import annotations

import base64
import json
import os

import pytest

from argoplug.kube.access import ClusterAccess, KubeSetupError, StaticToken, TokenFile, token_subject

POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def jwt(claims: dict[str, object]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def service_account_dir(tmp_path, token: str = "", namespace: str = "team-a"):
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(token or jwt({"sub": f"system:serviceaccount:{namespace}:default"}))
    (folder / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (folder / "namespace").write_text(namespace)
    return folder


def test_in_cluster_reads_the_pods_namespace_identity_and_server(tmp_path) -> None:
    access = ClusterAccess.in_cluster(service_account_dir(tmp_path), env=POD_ENV)
    assert access.server == "https://10.96.0.1:443"
    assert access.namespace == "team-a"
    assert access.identity == "system:serviceaccount:team-a:default"
    assert access.ca_file == str(tmp_path / "serviceaccount" / "ca.crt")


def test_in_cluster_with_an_ipv6_service_host_brackets_it(tmp_path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert ClusterAccess.in_cluster(service_account_dir(tmp_path), env=env).server == "https://[fd00::1]:443"


def test_in_cluster_without_a_token_says_to_automount_it(tmp_path) -> None:
    folder = service_account_dir(tmp_path)
    (folder / "token").unlink()
    with pytest.raises(KubeSetupError, match="automountServiceAccountToken: true"):
        ClusterAccess.in_cluster(folder, env=POD_ENV)


def test_outside_a_pod_in_cluster_names_the_missing_variables(tmp_path) -> None:
    with pytest.raises(
        KubeSetupError, match="KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set"
    ):
        ClusterAccess.in_cluster(service_account_dir(tmp_path), env={})


def test_the_token_file_is_re_read_when_the_kubelet_rotates_it(tmp_path) -> None:
    # The kubelet's AtomicWriter swaps a `..data` symlink: the token path then resolves to a new file.
    first, second = tmp_path / "..2026_12_03_1", tmp_path / "..2026_12_03_2"
    first.mkdir()
    second.mkdir()
    (first / "token").write_text("old-token\n")
    (second / "token").write_text("new-token\n")
    data = tmp_path / "..data"
    data.symlink_to(first.name)
    (tmp_path / "token").symlink_to("..data/token")
    source = TokenFile(tmp_path / "token")
    assert source.token() == "old-token"
    swap = tmp_path / "..data_tmp"
    swap.symlink_to(second.name)
    os.replace(swap, data)
    assert source.token() == "new-token"


def test_refresh_re_reads_the_token_file_even_when_it_looks_unchanged(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa")
    source = TokenFile(path)
    assert source.token() == "aaaa"
    stat = path.stat()
    path.write_text("bbbb")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime, same inode
    assert source.token() == "aaaa"
    assert source.token(refresh=True) == "bbbb"


def test_an_empty_or_missing_token_file_is_a_setup_error_naming_it(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    with pytest.raises(KubeSetupError, match=f"{path} is empty"):
        TokenFile(path).token()
    with pytest.raises(KubeSetupError, match="cannot read the ServiceAccount token"):
        TokenFile(tmp_path / "absent").token()


def test_tokens_never_appear_in_reprs() -> None:
    assert "s3cr3t" not in repr(StaticToken("s3cr3t"))
    access = ClusterAccess.from_endpoint("https://eks.example", token=StaticToken("s3cr3t"))
    assert "s3cr3t" not in repr(access)


def test_an_endpoints_ca_may_be_pem_or_base64_of_pem_as_eks_gives_it() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    encoded = base64.b64encode(pem.encode()).decode()
    for given in (pem, encoded, encoded.encode()):
        assert ClusterAccess.from_endpoint("https://x", token=StaticToken("t"), ca_data=given).ca_data == pem
    with pytest.raises(KubeSetupError, match="neither PEM nor base64"):
        ClusterAccess.from_endpoint("https://x", token=StaticToken("t"), ca_data="not a certificate!")


def test_a_callable_token_source_is_asked_again_with_refresh() -> None:
    calls: list[bool] = []

    def token(*, refresh: bool = False) -> str:
        calls.append(refresh)
        return "t2" if refresh else "t1"

    access = ClusterAccess.from_endpoint("https://x", token=token)
    assert access.token_source is not None
    assert access.token_source.token() == "t1"
    assert access.token_source.token(refresh=True) == "t2"
    assert calls == [False, True]


def test_from_environment_prefers_an_explicit_kubeconfig_then_the_pod(tmp_path, monkeypatch) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://from-kubeconfig:6443'}}]\n"
        "users: [{name: alice, user: {token: abc}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: alice, namespace: ns1}}]\n"
    )
    folder = service_account_dir(tmp_path)
    chosen = ClusterAccess.from_environment(env={**POD_ENV, "KUBECONFIG": str(kubeconfig)}, directory=folder)
    assert (chosen.server, chosen.namespace, chosen.identity) == (
        "https://from-kubeconfig:6443",
        "ns1",
        "alice",
    )
    assert ClusterAccess.from_environment(env=POD_ENV, directory=folder).server == "https://10.96.0.1:443"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(KubeSetupError, match="no Kubernetes cluster configured: not in a Kubernetes pod"):
        ClusterAccess.from_environment(env={}, directory=folder)


def test_an_unknown_context_names_the_file_and_the_context(tmp_path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")
    with pytest.raises(KubeSetupError, match=f"cannot use kubeconfig {kubeconfig} context 'prod'"):
        ClusterAccess.from_kubeconfig(kubeconfig, context="prod")


def test_token_subject_reads_a_jwts_sub_and_nothing_else() -> None:
    assert token_subject(jwt({"sub": "system:serviceaccount:a:b"})) == "system:serviceaccount:a:b"
    assert token_subject("opaque-token") == ""
    assert token_subject("a.%%%.c") == ""
