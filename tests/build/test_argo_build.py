"""`argo executor-plugin build` in Python: Argo's real ConfigMap byte for byte, its README, its validation
and error messages, and the YAML Go writes (sigs.k8s.io/yaml over yaml.v2)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argoplug.build import argo, goyaml
from argoplug.build.argo import (
    ArgoBuildError,
    build_folder,
    canonical_quantity,
    configmap_manifest,
    configmap_text,
    load_plugin_manifest,
    readme_text,
    to_go_yaml,
    validate_sidecar,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
HELLO_SRC = VECTORS / "hello-plugin-src"
HELLO_CONFIGMAP = VECTORS / "hello-executor-plugin-configmap.yaml"
HEADER = "# This is an auto-generated file. DO NOT EDIT\n"
JSON_ERROR = "error unmarshaling JSON: while decoding JSON: json: "

# Argo's README for the hello plugin (as Argo's repository holds it), with this vector's image: the
# description keeps its own newline, so two blank lines follow it; one tab; a space after the last command.
HELLO_README = """<!-- This is an auto-generated file. DO NOT EDIT -->
# hello

* Needs: >= v3.3
* Image: python:alpine3.23

This is the "hello world" plugin.

Example:

```yaml
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: hello-example-
spec:
  entrypoint: main
  templates:
    - name: main
      plugin:
        hello: { }
```


Install:

    kubectl apply -f hello-executor-plugin-configmap.yaml

Uninstall:
\t
    kubectl delete cm hello-executor-plugin \n"""

# Argo's own test (workflow/util/plugins/configmap_test.go) and docs/contract.md §5.3.
MINIMAL_CONTAINER = {
    "ports": [{"containerPort": 1234}],
    "resources": {"limits": {}, "requests": {}},
    "securityContext": {},
}
MINIMAL_CONTAINER_TEXT = 'name: ""\nports:\n- containerPort: 1234\nresources: {}\nsecurityContext: {}\n'


def manifest(container: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ExecutorPlugin",
        "metadata": {"name": "my-plug", **metadata},
        "spec": {
            "sidecar": {
                "automountServiceAccountToken": True,
                "container": copy.deepcopy(MINIMAL_CONTAINER if container is None else container),
            }
        },
    }


def container_text(container: dict[str, Any]) -> str:
    return str(configmap_manifest(manifest(container))["data"]["sidecar.container"])


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    folder = tmp_path / "hello"
    shutil.copytree(HELLO_SRC, folder)
    return folder


def plugin_yaml(folder: Path, data: dict[str, Any]) -> None:
    (folder / "plugin.yaml").write_text(to_go_yaml(data))


def hello_manifest() -> dict[str, Any]:
    return load_plugin_manifest((HELLO_SRC / "plugin.yaml").read_text())


# ---- the build, against Argo's real output -----------------------------------------------------------------


def test_build_folder_writes_argos_configmap_byte_for_byte_and_its_readme(hello: Path) -> None:
    written = build_folder(hello)

    configmap, readme = hello / "hello-executor-plugin-configmap.yaml", hello / "README.md"
    assert written == [configmap, readme]
    text = configmap.read_text()
    assert text.startswith(HEADER)
    assert text[len(HEADER) :] == HELLO_CONFIGMAP.read_text()
    assert readme.read_text() == HELLO_README


def test_the_functions_give_what_build_folder_writes() -> None:
    plugin = hello_manifest()
    server = (HELLO_SRC / "server.py").read_text()

    assert configmap_text(plugin, server_text=server) == HEADER + HELLO_CONFIGMAP.read_text()
    assert readme_text(plugin) == HELLO_README
    data = configmap_manifest(plugin, server_text=server)["data"]
    assert data["sidecar.container"].startswith("args:\n- |\n  import json\n")


def test_the_minimal_container_is_written_as_argo_writes_it() -> None:
    built = configmap_manifest(manifest(annotations={"my-anno": "my-value"}, labels={"my-label": "my-value"}))

    assert built == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "my-plug-executor-plugin",
            "creationTimestamp": None,
            "annotations": {"my-anno": "my-value"},
            "labels": {"my-label": "my-value", "workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
        },
        "data": {"sidecar.automountServiceAccountToken": "true", "sidecar.container": MINIMAL_CONTAINER_TEXT},
    }


def test_the_configmap_text_has_the_header_then_sorted_keys_and_the_namespace() -> None:
    assert configmap_text(manifest(namespace="argo")) == (
        HEADER
        + "apiVersion: v1\ndata:\n"
        + '  sidecar.automountServiceAccountToken: "true"\n  sidecar.container: |\n'
        + "".join(f"    {line}\n" for line in MINIMAL_CONTAINER_TEXT.splitlines())
        + "kind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  labels:\n"
        + "    workflows.argoproj.io/configmap-type: ExecutorPlugin\n"
        + "  name: my-plug-executor-plugin\n  namespace: argo\n"
    )


@pytest.mark.parametrize("automount", [False, None])
def test_automount_false_or_absent_is_the_string_false(automount: bool | None) -> None:
    plugin = manifest()
    if automount is None:
        del plugin["spec"]["sidecar"]["automountServiceAccountToken"]
    else:
        plugin["spec"]["sidecar"]["automountServiceAccountToken"] = automount
    assert configmap_manifest(plugin)["data"]["sidecar.automountServiceAccountToken"] == "false"


def test_server_text_replaces_the_args() -> None:
    plugin = manifest({**MINIMAL_CONTAINER, "args": ["--port", "1234"]})
    text = configmap_manifest(plugin, server_text="print('hi')\n")["data"]["sidecar.container"]
    assert text.startswith("args:\n- |\n  print('hi')\nname: \"\"\n")


def test_the_readme_keeps_a_description_without_trailing_newline_as_is() -> None:
    plugin = manifest(annotations={"workflows.argoproj.io/description": "Says hello."})
    assert readme_text(plugin).splitlines()[3:8] == ["* Needs: ", "* Image: ", "", "Says hello.", ""]
    assert "Says hello.\n\nInstall:\n" in readme_text(plugin)


# ---- validation, in Argo's order ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        (["ports"], "at least one port is mandatory"),
        (["ports", "resources.requests", "securityContext"], "at least one port is mandatory"),
        (["resources.requests"], "resources requests are mandatory"),
        (["resources.requests", "resources.limits", "securityContext"], "resources requests are mandatory"),
        (["resources.limits"], "resources limits are mandatory"),
        (["resources.limits", "securityContext"], "resources limits are mandatory"),
        (["securityContext"], "security context is mandatory"),
    ],
)
def test_the_first_missing_field_is_reported_and_nothing_is_written(
    hello: Path, removed: list[str], message: str
) -> None:
    data = hello_manifest()
    for path in removed:
        *parents, last = path.split(".")
        node = data["spec"]["sidecar"]["container"]
        for key in parents:
            node = node[key]
        del node[last]
    plugin_yaml(hello, data)
    before = sorted(p.name for p in hello.iterdir())

    for check in (validate_sidecar, configmap_manifest, configmap_text):
        with pytest.raises(ArgoBuildError) as caught:
            check(data)
        assert str(caught.value) == f"sidecar is invalid: {message}"
    with pytest.raises(ArgoBuildError, match=f"^sidecar is invalid: {message}$"):
        build_folder(hello)
    assert sorted(p.name for p in hello.iterdir()) == before


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({**MINIMAL_CONTAINER, "ports": []}, "at least one port is mandatory"),
        (
            {**MINIMAL_CONTAINER, "resources": {"limits": {}, "requests": None}},
            "resources requests are mandatory",
        ),
        (
            {**MINIMAL_CONTAINER, "resources": {"limits": None, "requests": {}}},
            "resources limits are mandatory",
        ),
        ({**MINIMAL_CONTAINER, "securityContext": None}, "security context is mandatory"),
    ],
)
def test_empty_lists_and_nulls_count_as_missing(container: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgoBuildError, match=f"^sidecar is invalid: {message}$"):
        validate_sidecar(manifest(container))


def test_only_presence_is_checked() -> None:
    validate_sidecar(
        manifest({"ports": [{}], "resources": {"limits": {}, "requests": {}}, "securityContext": {}})
    )


def test_an_empty_plugin_yaml_fails_on_the_ports() -> None:
    assert load_plugin_manifest("") == {}
    with pytest.raises(ArgoBuildError, match=r"^sidecar is invalid: at least one port is mandatory$"):
        validate_sidecar({})


# ---- build_folder's own errors -----------------------------------------------------------------------------


def test_two_server_files_are_refused_and_nothing_is_written(hello: Path) -> None:
    (hello / "server.sh").write_text("echo hi\n")
    before = sorted(p.name for p in hello.iterdir())

    with pytest.raises(ArgoBuildError, match=r"^plugin hello has more than one server\.\* file$"):
        build_folder(hello)
    assert sorted(p.name for p in hello.iterdir()) == before


def test_no_server_file_keeps_the_manifests_args(hello: Path) -> None:
    (hello / "server.py").unlink()
    build_folder(hello)
    text = (hello / "hello-executor-plugin-configmap.yaml").read_text()
    assert "args:" not in text
    assert "  sidecar.container: |\n    command:\n    - python\n    - -c\n" in text


def test_a_missing_plugin_yaml_is_reported_as_go_reports_it(tmp_path: Path) -> None:
    with pytest.raises(ArgoBuildError) as caught:
        build_folder(tmp_path / "nowhere")
    assert str(caught.value) == f"open {tmp_path}/nowhere/plugin.yaml: no such file or directory"


def test_a_server_file_that_is_not_utf8_gets_replacement_characters(hello: Path) -> None:
    (hello / "server.py").write_bytes(b"print('caf\xe9')\n")
    build_folder(hello)
    text = (hello / "hello-executor-plugin-configmap.yaml").read_text()
    assert "    - |\n      print('caf\ufffd')\n" in text


# ---- strict parsing ----------------------------------------------------------------------------------------


def hello_text(old: str, new: str) -> str:
    text = (HELLO_SRC / "plugin.yaml").read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (hello_text("kind: ExecutorPlugin\n", "kind: ExecutorPlugin\nfoo: bar\n"), 'unknown field "foo"'),
        (hello_text("  name: hello\n", "  name: hello\n  nmae: x\n"), 'unknown field "nmae"'),
        (hello_text("  sidecar:\n", "  sidecar:\n    replicas: 2\n"), 'unknown field "replicas"'),
        (
            hello_text("      image:", "      imagePolicy: Always\n      image:"),
            'unknown field "imagePolicy"',
        ),
        (
            hello_text("        runAsUser:", "        runAsUsr: 1\n        runAsUser:"),
            'unknown field "runAsUsr"',
        ),
    ],
)
def test_an_unknown_field_is_an_error_naming_it(hello: Path, text: str, message: str) -> None:
    with pytest.raises(ArgoBuildError) as caught:
        load_plugin_manifest(text)
    assert str(caught.value) == f"{JSON_ERROR}{message}"
    (hello / "plugin.yaml").write_text(text)
    with pytest.raises(ArgoBuildError, match=message):
        build_folder(hello)
    assert not (hello / "README.md").exists()


def test_unknown_fields_are_refused_in_manifests_given_as_data_too() -> None:
    with pytest.raises(ArgoBuildError) as caught:
        configmap_text(manifest({**MINIMAL_CONTAINER, "x": 1}))
    assert str(caught.value) == f'{JSON_ERROR}unknown field "x"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            hello_text("containerPort: 4355", "containerPort: http"),
            f"{JSON_ERROR}cannot unmarshal string into Go struct field "
            "ContainerPort.spec.sidecar.container.ports.containerPort of type int32",
        ),
        (
            hello_text("runAsNonRoot: true", "runAsNonRoot: 'true'"),
            f"{JSON_ERROR}cannot unmarshal string into Go struct field "
            "SecurityContext.spec.sidecar.container.securityContext.runAsNonRoot of type bool",
        ),
        (
            hello_text("cpu: 200m", "cpu: 200 m"),
            "error unmarshaling JSON: while decoding JSON: quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            hello_text("kind: ExecutorPlugin\n", "kind: ExecutorPlugin\nkind: ExecutorPlugin\n"),
            'error converting YAML to JSON: yaml: unmarshal errors:\n  line 3: key "kind" already set in map',
        ),
        (
            "- a\n",
            f"{JSON_ERROR}cannot unmarshal array into Go value of type spec.Plugin",
        ),
    ],
)
def test_wrong_values_are_reported_as_go_reports_them(text: str, message: str) -> None:
    with pytest.raises(ArgoBuildError) as caught:
        load_plugin_manifest(text)
    assert str(caught.value) == message


def test_a_yaml_syntax_error_is_reported_by_line() -> None:
    with pytest.raises(ArgoBuildError, match=r"^error converting YAML to JSON: yaml: line \d+: "):
        load_plugin_manifest("metadata:\n  name: [hello\n")


def test_values_are_read_as_go_reads_yaml() -> None:
    text = hello_text("      image: python:alpine3.23\n", "      image: 3.10\n      Stdin: yes\n")
    text = text.replace("cpu: 200m", "cpu: 0.5").replace("memory: 64Mi", "memory: 1024Mi")
    container = load_plugin_manifest(text)["spec"]["sidecar"]["container"]
    assert container["image"] == "3.1"  # a YAML number, given to a string field
    assert container["stdin"] is True  # `yes` is YAML 1.1's true; keys match case-insensitively
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}


# ---- what Go writes of a container -------------------------------------------------------------------------


def test_zero_values_are_written_as_go_writes_them() -> None:
    text = container_text(
        {
            "ports": [{}],
            "resources": {"limits": {"cpu": "1000m"}, "requests": {"memory": "1536Mi"}},
            "securityContext": {"runAsUser": 0, "privileged": False, "capabilities": {}},
            "tty": False,
            "env": [{"name": "A", "value": ""}],
            "command": [],
            "livenessProbe": {"tcpSocket": {"port": 8080}},
        }
    )
    assert text == (
        "env:\n- name: A\n"
        "livenessProbe:\n  tcpSocket:\n    port: 8080\n"
        'name: ""\nports:\n- containerPort: 0\n'
        'resources:\n  limits:\n    cpu: "1"\n  requests:\n    memory: 1536Mi\n'
        "securityContext:\n  capabilities: {}\n  privileged: false\n  runAsUser: 0\n"
    )


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("100m", "100m"),
        ("0.5", "500m"),
        (0.5, "500m"),
        (2, '"2"'),
        ("1000", "1k"),
        ("1024Mi", "1Gi"),
        ("64Mi", "64Mi"),
        ("1.5Gi", "1536Mi"),
        ("1e3", '"1e3"'),
        ("0.1m", "100u"),
    ],
)
def test_quantities_are_written_as_go_writes_them(written: Any, canonical: str) -> None:
    text = container_text({**MINIMAL_CONTAINER, "resources": {"limits": {"cpu": written}, "requests": {}}})
    assert f"resources:\n  limits:\n    cpu: {canonical}\n" in text


def test_canonical_quantity_keeps_what_go_keeps_and_refuses_what_go_refuses() -> None:
    # Go reuses the text when it is already canonical, even with a sign or leading zeros.
    assert [canonical_quantity(q) for q in ("+1", "00100m", "1025Ki", "2048Ki", "0.1n", "12e2")] == [
        "+1",
        "00100m",
        "1025Ki",
        "2Mi",
        "1n",
        "1200",
    ]
    with pytest.raises(ArgoBuildError, match=r"^unable to parse quantity's suffix$"):
        canonical_quantity("1mi")
    with pytest.raises(ArgoBuildError, match=r"^quantities must match the regular expression"):
        canonical_quantity("1 Gi")


def test_a_server_with_trailing_spaces_or_tabs_is_double_quoted_as_go_does() -> None:
    text = container_text({**MINIMAL_CONTAINER, "args": ["x = 1  \ny = 2\n"]})
    assert text.startswith('args:\n- "x = 1  \\ny = 2\\n"\n')
    text = container_text({**MINIMAL_CONTAINER, "args": ["if x:\n\tpass\n"]})
    assert text.startswith('args:\n- "if x:\\n\\tpass\\n"\n')


def test_the_container_fields_are_kubernetes_own() -> None:
    # Every struct of the container against the Kubernetes 1.34 schema (the k8s.io/api Argo v4 builds on).
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.34.0-local-strict"
    definitions = json.loads((schemas / "_definitions.json").read_text())["$defs"]
    for name, spec in argo._STRUCTS.items():
        package, struct = name.split(".")
        if package != "v1":
            continue
        key = next(k for k in definitions if k.endswith(f".v1.{struct}") and (".core." in k or ".meta." in k))
        assert {item.split(":")[0].rstrip("!") for item in spec.split()} == set(
            definitions[key]["properties"]
        )


# ---- to_go_yaml --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("true", '"true"'),
        ("True", '"True"'),
        ("yes", '"yes"'),
        ("off", '"off"'),
        ("y", '"y"'),
        ("null", '"null"'),
        ("~", '"~"'),
        ("", '""'),
        ("1", '"1"'),
        ("1.5", '"1.5"'),
        ("0x1F", '"0x1F"'),
        ("1e3", '"1e3"'),
        ("1_000", '"1_000"'),
        (".inf", '".inf"'),
        ("1:20", '"1:20"'),
        ("2024-01-02", '"2024-01-02"'),
        ("1.2.3", "1.2.3"),
        (">= v3.3", "'>= v3.3'"),
        ("a: b", "'a: b'"),
        ("a:b", "a:b"),
        ("a #b", "'a #b'"),
        ("a#b", "a#b"),
        ("- x", "'- x'"),
        ("-x", "-x"),
        ("@x", "'@x'"),
        ("{x}", "'{x}'"),
        (" lead", "' lead'"),
        ("trail ", "'trail '"),
        ("it's", "it's"),
        ("'q'", "'''q'''"),
        ("tab\there", '"tab\\there"'),
        ("é", "é"),
        ("\U0001f600", '"\\U0001F600"'),
        (True, "true"),
        (1, "1"),
        (0.5, "0.5"),
        (3.0, "3"),
        (1e21, "1e+21"),
        (None, "null"),
        ({}, "{}"),
        ([], "[]"),
    ],
)
def test_scalars_are_quoted_exactly_when_go_quotes_them(value: Any, written: str) -> None:
    assert to_go_yaml({"k": value}) == f"k: {written}\n"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("a\nb", "|-\n  a\n  b\n"),
        ("a\nb\n", "|\n  a\n  b\n"),
        ("a\nb\n\n", "|+\n  a\n  b\n\n"),
        ("  indented\nb\n", "|2\n    indented\n  b\n"),
        ("a  \nb\n", '"a  \\nb\\n"\n'),
    ],
)
def test_multi_line_strings_are_literal_blocks_with_gos_chomping(value: str, written: str) -> None:
    assert to_go_yaml({"k": value}) == f"k: {written}" + ("" if written.endswith("\n") else "\n")
    assert to_go_yaml({"k": value, "z": 1}).endswith("\nz: 1\n")


def test_keys_are_sorted_as_yaml_v2_sorts_them() -> None:
    keys = ["b", "a10", "a9", "Z", "_x", "-y", "a"]
    assert [line.split(":")[0] for line in to_go_yaml(dict.fromkeys(keys, 1)).splitlines()] == [
        "-y",
        "_x",
        "Z",
        "a",
        "a9",
        "a10",
        "b",
    ]


def test_sequences_are_not_indented_under_their_key() -> None:
    data = {"list": [{"a": 1, "b": [1, 2]}, [3]], "map": {"x": []}}
    assert to_go_yaml(data) == "list:\n- a: 1\n  b:\n  - 1\n  - 2\n- - 3\nmap:\n  x: []\n"


def test_long_lines_are_folded_at_80_columns_as_go_folds_them() -> None:
    words = " ".join(["word"] * 20)
    assert (
        to_go_yaml({"k": words}) == "k: " + " ".join(["word"] * 16) + "\n  " + " ".join(["word"] * 4) + "\n"
    )


def test_a_top_level_scalar_has_no_document_end_marker() -> None:
    assert to_go_yaml("text") == "text\n"
    assert to_go_yaml("a\n\n") == "|+\n  a\n\n"
    assert to_go_yaml("") == '""\n'


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=100)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_what_to_go_yaml_writes_reads_back_as_go_reads_it(data: Any) -> None:
    assert goyaml.load(to_go_yaml(data)) == data
