"""Understack's published Nautobot WorkflowTemplates run as a cluster runs them (issue: "what real
WorkflowTemplates use"): `get-obm-ip` and `get-device-nautobot` call `nautobot-api` by templateRef, which
reads the Nautobot URL from a ConfigMap (`valueFrom.configMapKeyRef`), sends the token from a Secret, and
hands the HTTP result up through `valueFrom.expression` outputs with `jsonpath(..., '$.results.[0]...')`.

The templates are rackerlabs/understack's, unchanged (examples/understack/, each with its source path and
commit); Nautobot is a loopback HTTP server answering what its REST API answers for these paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import ROOT, PlainHttpServer
from .test_command import argoplug

UNDERSTACK = ROOT / "examples" / "understack"
TOKEN = "Token 0123456789abcdef-nautobot"
IP_ADDRESSES = {"count": 1, "results": [{"host": "10.46.96.157", "address": "10.46.96.157/26"}]}
DEVICE = {"count": 1, "results": [{"id": "dev-1", "name": "server-1", "serial": "ABC123"}]}


def cluster_objects(tmp_path: Path, url: str) -> tuple[Path, Path]:
    configmaps = tmp_path / "configmaps.yaml"
    configmaps.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nautobot\n  namespace: argo-events\n"
        f"  labels: {{workflows.argoproj.io/configmap-type: Parameter}}\ndata: {{url: '{url}'}}\n"
    )
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: nautobot-token, namespace: argo-events}\n"
        f"stringData: {{bearer_token: '{TOKEN}'}}\n"
    )
    return configmaps, secrets


@pytest.mark.parametrize(
    ("template", "path", "answer", "output", "expected"),
    [
        (
            "get-obm-ip",
            "/api/ipam/ip-addresses/?device_id=dev-1&interfaces=iDRAC&interfaces=iLO",
            IP_ADDRESSES,
            "ip",
            "10.46.96.157",
        ),
        # Its output carries `secret: true`, a field Argo's types do not have: a cluster runs it. The
        # expression's result is a map, which the controller writes as Go's %v writes it
        # (operator.go getTemplateOutputsFromScope -> AnyStringPtr, pkg/apis/workflow/v1alpha1/anystring.go).
        (
            "get-device-nautobot",
            "/api/dcim/devices/dev-1/",
            DEVICE,
            "device",
            "map[id:dev-1 name:server-1 serial:ABC123]",
        ),
    ],
)
def test_understacks_nautobot_templates_run_against_nautobot(
    tmp_path, template, path, answer, output, expected
) -> None:
    with PlainHttpServer({path: (200, json.dumps(answer))}) as nautobot:
        configmaps, secrets = cluster_objects(tmp_path, nautobot.url)
        done = argoplug(
            "run",
            UNDERSTACK / f"{template}.yaml",
            UNDERSTACK / "nautobot-api.yaml",
            "--from",
            f"workflowtemplate/{template}",
            "-p",
            "device_id=dev-1",
            "--configmaps",
            configmaps,
            "--secrets",
            secrets,
            "-o",
            "json",
        )
    assert done.returncode == 0, done.stdout + done.stderr
    [(method, sent_path, headers, _)] = nautobot.requests
    assert (method, sent_path, headers["Authorization"]) == ("GET", path, TOKEN)
    status = json.loads(done.stdout)["status"]
    assert status["phase"] == "Succeeded"
    [root] = [node for node in status["nodes"].values() if node["name"] == node["displayName"]]
    [parameter] = root["outputs"]["parameters"]
    assert (parameter["name"], parameter["value"]) == (output, expected)
    assert TOKEN not in done.stdout + done.stderr
    if template == "get-device-nautobot":
        assert 'json: unknown field "secret"' in done.stderr
