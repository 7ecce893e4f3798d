"""Create the Understack example's objects in a live Nautobot and record its answers to the templates' calls.

Not part of the test suite: run it by hand against a real Nautobot (see README.md beside this file).

    NAUTOBOT_TOKEN=<api token> python tests/vectors/nautobot/record.py --url http://127.0.0.1:8080

Only the standard library is used. Objects are looked up by name first and created only when missing, so a
second run against the same Nautobot records the same devices. The token's value is never written: the
recordings carry the placeholder `Token <NAUTOBOT_TOKEN>` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

TOKEN_PLACEHOLDER = "<NAUTOBOT_TOKEN>"
BAD_TOKEN = "Token 0000000000000000000000000000000000000000"
MISSING_DEVICE_ID = "00000000-0000-4000-8000-000000000000"
KEPT_HEADERS = ("Content-Type", "API-Version")


class Nautobot:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(
        self, method: str, path: str, *, body: Any = None, authorization: str | None = "default"
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, with no header but Authorization (all Argo's HTTP template sends) unless a body."""
        headers = {}
        if authorization == "default":
            authorization = f"Token {self.token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            headers["Accept"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        status, _, data = self.call(method, path, body=body)
        if status >= 300:
            raise SystemExit(f"{method} {path} -> {status}: {data.decode(errors='replace')}")
        return json.loads(data) if data else None

    def get_or_create(self, endpoint: str, lookup: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        query = urllib.parse.urlencode(lookup)
        found = self.api("GET", f"/api/{endpoint}/?{query}")["results"]
        if found:
            print(f"found   {endpoint} {lookup} -> {found[0]['id']}")
            return found[0]
        created = self.api("POST", f"/api/{endpoint}/", {**lookup, **body})
        print(f"created {endpoint} {lookup} -> {created['id']}")
        return created


def common_objects(nb: Nautobot) -> dict[str, str]:
    """Status, namespace, location type, location, role and prefix shared by both devices; their ids."""
    ids = {
        "active": nb.api("GET", "/api/extras/statuses/?name=Active")["results"][0]["id"],
        "namespace": nb.api("GET", "/api/ipam/namespaces/?name=Global")["results"][0]["id"],
    }
    location_type = nb.get_or_create(
        "dcim/location-types", {"name": "Site"}, {"content_types": ["dcim.device", "ipam.prefix"]}
    )
    ids["location"] = nb.get_or_create(
        "dcim/locations", {"name": "DFW3"}, {"location_type": location_type["id"], "status": ids["active"]}
    )["id"]
    ids["role"] = nb.get_or_create("extras/roles", {"name": "server"}, {"content_types": ["dcim.device"]})[
        "id"
    ]
    nb.get_or_create(
        "ipam/prefixes",
        {"prefix": "10.46.96.128/26"},
        {
            "namespace": ids["namespace"],
            "status": ids["active"],
            "type": "network",
            "location": ids["location"],
        },
    )
    return ids


DEVICES = (
    # name, serial, manufacturer, device type, OBM interface, its IP address
    ("server-1", "ABC123", "Dell", "PowerEdge R7615", "iDRAC", "10.46.96.157/26"),
    ("server-2", "XYZ789", "HPE", "ProLiant DL360 Gen11", "iLO", "10.46.96.158/26"),
)


def make_device(nb: Nautobot, ids: dict[str, str], spec: tuple[str, ...]) -> dict[str, Any]:
    """One device with its OBM interface and that interface's IP address."""
    name, serial, manufacturer, model, obm, address = spec
    maker = nb.get_or_create("dcim/manufacturers", {"name": manufacturer}, {})
    device_type = nb.get_or_create("dcim/device-types", {"model": model}, {"manufacturer": maker["id"]})
    device = nb.get_or_create(
        "dcim/devices",
        {"name": name},
        {
            "serial": serial,
            "device_type": device_type["id"],
            "role": ids["role"],
            "location": ids["location"],
            "status": ids["active"],
        },
    )
    interface = nb.get_or_create(
        "dcim/interfaces",
        {"device_id": device["id"], "name": obm},
        {"device": device["id"], "type": "1000base-t", "status": ids["active"], "mgmt_only": True},
    )
    ip = nb.get_or_create(
        "ipam/ip-addresses", {"address": address}, {"namespace": ids["namespace"], "status": ids["active"]}
    )
    links = nb.api(
        "GET", f"/api/ipam/ip-address-to-interface/?ip_address={ip['id']}&interface={interface['id']}"
    )["results"]
    if not links:
        nb.api(
            "POST",
            "/api/ipam/ip-address-to-interface/",
            {"ip_address": ip["id"], "interface": interface["id"]},
        )
        print(f"assigned {address} -> {name} {obm}")
    return device


def record(
    nb: Nautobot, out: Path, name: str, about: str, uri: str, *, authorization: str | None = "default"
) -> None:
    """GET {url}/api{uri} as nautobot-api's http template does; write what came back to out/name.json."""
    path, _, query = f"/api{uri}".partition("?")
    status, headers, data = nb.call(
        "GET", f"{path}{'?' if query else ''}{query}", authorization=authorization
    )
    if authorization == "default":
        recorded_auth: str | None = f"Token {TOKEN_PLACEHOLDER}"
    else:
        recorded_auth = authorization
    body_text = data.decode()
    if nb.token in body_text:
        body_text = body_text.replace(nb.token, TOKEN_PLACEHOLDER)
    lowered = {key.lower(): value for key, value in headers.items()}
    recording = {
        "about": about,
        "request": {
            "method": "GET",
            "path": path,
            "query": query,
            "headers": {} if recorded_auth is None else {"Authorization": recorded_auth},
        },
        "response": {
            "status": status,
            "headers": {key: lowered[key.lower()] for key in KEPT_HEADERS if key.lower() in lowered},
            "body": json.loads(body_text),
        },
    }
    (out / f"{name}.json").write_text(json.dumps(recording, indent=2, sort_keys=False) + "\n")
    print(f"recorded {out.name}/{name}.json: GET {path}{'?' if query else ''}{query} -> {status}")


def record_all(nb: Nautobot, out: Path, devices: dict[str, dict[str, Any]]) -> None:
    """Every request the templates send, for each device, for a missing one, and with a bad or no token."""
    out.mkdir(parents=True, exist_ok=True)
    for name, device in devices.items():
        device_id = device["id"]
        record(nb, out, f"device-{name}", f"get-device-nautobot for {name}", f"/dcim/devices/{device_id}/")
        record(
            nb,
            out,
            f"ip-addresses-{name}",
            f"get-obm-ip for {name}",
            f"/ipam/ip-addresses/?device_id={device_id}&interfaces=iDRAC&interfaces=iLO",
        )
    record(
        nb,
        out,
        "device-not-found",
        "get-device-nautobot, no such device",
        f"/dcim/devices/{MISSING_DEVICE_ID}/",
    )
    record(
        nb,
        out,
        "ip-addresses-device-not-found",
        "get-obm-ip, no such device",
        f"/ipam/ip-addresses/?device_id={MISSING_DEVICE_ID}&interfaces=iDRAC&interfaces=iLO",
    )
    server_1 = devices["server-1"]["id"]
    record(
        nb,
        out,
        "device-bad-token",
        "get-device-nautobot for server-1 with a token Nautobot does not know",
        f"/dcim/devices/{server_1}/",
        authorization=BAD_TOKEN,
    )
    record(
        nb,
        out,
        "device-no-token",
        "get-device-nautobot for server-1 with no Authorization header",
        f"/dcim/devices/{server_1}/",
        authorization=None,
    )
    record(nb, out, "unknown-api-path", "a path under /api/ that Nautobot does not have", "/nosuch/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("NAUTOBOT_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    token = os.environ.get("NAUTOBOT_TOKEN")
    if not token:
        parser.error("set NAUTOBOT_TOKEN to an API token of the Nautobot at --url")
    nb = Nautobot(args.url, token)
    ids = common_objects(nb)
    devices = {"server-1": make_device(nb, ids, DEVICES[0])}
    # While no interface anywhere in Nautobot is named iLO, `interfaces=iLO` is not a valid filter choice
    # and get-obm-ip's query is refused (400): recorded in without-ilo/, a Nautobot holding server-1 alone.
    if nb.api("GET", "/api/dcim/interfaces/?name=iLO")["count"] == 0:
        record_all(nb, args.out / "without-ilo", devices)
    else:
        print("without-ilo/ not recorded: an interface named iLO exists already (record on a fresh Nautobot)")
    devices["server-2"] = make_device(nb, ids, DEVICES[1])
    record_all(nb, args.out, devices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
