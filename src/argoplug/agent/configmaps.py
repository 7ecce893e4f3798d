"""ConfigMaps held locally, for `inputs.parameters[].valueFrom.configMapKeyRef` (`--configmaps FILE`).

Argo reads such a parameter from the ConfigMaps of the workflow's namespace that carry the label
`workflows.argoproj.io/configmap-type: Parameter` (`workflow/common/configmap.go`, `GetConfigMapValue`);
`ConfigMaps.value` answers with the same values and the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from argoplug.yaml_marks import yaml_problem

__all__ = ["PARAMETER_LABEL", "ConfigMapError", "ConfigMapMissing", "ConfigMaps"]

# The label Argo's controller watches ConfigMaps of parameters by (workflow/common/common.go).
PARAMETER_LABEL = ("workflows.argoproj.io/configmap-type", "Parameter")


class ConfigMapError(Exception):
    """The ConfigMaps file cannot be read, or holds what is not a ConfigMap; the message names the field."""


class ConfigMapMissing(LookupError):
    """The ConfigMap, or its key, is not there (Argo's `CodeNotFound`): a `valueFrom.default` applies."""


class ConfigMaps:
    """ConfigMaps by namespace and name, as the controller's informer holds them."""

    def __init__(self, configmaps: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> None:
        self._configmaps = dict(configmaps or {})

    @classmethod
    def from_file(cls, path: str | Path, *, namespace: str = "argo") -> ConfigMaps:
        """Read a YAML file of `kind: ConfigMap` documents (or a `kind: List` of them).

        A ConfigMap without `metadata.namespace` is in `namespace` (the workflow's). Raises
        ConfigMapError naming the file, the document and the field.
        """
        path = Path(path)
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigMapError(f"cannot read the ConfigMaps file {path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigMapError(f"{path}: not valid YAML: {yaml_problem(exc, path)}") from None
        found: dict[tuple[str, str], Mapping[str, Any]] = {}
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            where = f"{path}, document {index}"
            items = (
                document.get("items") or []
                if isinstance(document, Mapping) and document.get("kind") == "List"
                else [document]
            )
            for item in items:
                if not isinstance(item, Mapping) or item.get("kind") != "ConfigMap":
                    kind = item.get("kind") if isinstance(item, Mapping) else type(item).__name__
                    raise ConfigMapError(f"{where}: expected kind ConfigMap, got {kind!r}")
                metadata = item.get("metadata") or {}
                name = metadata.get("name")
                if not isinstance(name, str) or not name:
                    raise ConfigMapError(f"{where}: metadata.name: expected the ConfigMap's name")
                data = item.get("data") or {}
                if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
                    raise ConfigMapError(f"{where}: ConfigMap {name!r}: data: expected key → string value")
                key = (str(metadata.get("namespace") or namespace), name)
                if key in found:
                    raise ConfigMapError(f"{where}: ConfigMap {key[0]}/{name} is defined twice in {path}")
                found[key] = item
        return cls(found)

    def value(self, namespace: str, name: str, key: str) -> str:
        """The value of `key` in ConfigMap `namespace/name`, as `GetConfigMapValue` gives it.

        Raises ConfigMapMissing when the ConfigMap or the key is not there, ValueError when the ConfigMap
        lacks Argo's parameter label; each with Argo's message.
        """
        configmap = self._configmaps.get((namespace, name))
        label, wanted = PARAMETER_LABEL
        if configmap is None:
            raise ConfigMapMissing(
                f"ConfigMap '{name}' does not exist. Please make sure it has the label {label}: {wanted} to "
                "be detectable by the controller"
            )
        labels = (configmap.get("metadata") or {}).get("labels") or {}
        if labels.get(label) != wanted:
            raise ValueError(
                f"ConfigMap '{name}' needs to have the label {label}: {wanted} to load parameters"
            )
        data = configmap.get("data") or {}
        if key not in data:
            raise ConfigMapMissing(f"ConfigMap '{name}' does not have the key '{key}'")
        return str(data[key])
