"""Kubernetes resource quantities (`80Mi`, `500m`, `1Gi`) in the canonical form Go writes them.

`argoplug.build.bundle` checks and normalizes the bundle's `resources` with them, so that the ConfigMap
matches what `argo executor-plugin build` (Go) would write for the same plugin.yaml.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["canonical_quantity", "quantity_value"]

_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DECIMAL_SUFFIXES = ("m", "", "k", "M", "G", "T", "P", "E")  # 1000 ** (index - 1)
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")  # 1024 ** index


def canonical_quantity(value: str | int | float) -> str:
    """Return the canonical text of the quantity `value` (`1024Mi` → `1Gi`, `0.5` → `500m`, `1000` → `1k`).

    As Go's `resource.Quantity.String()` writes it (k8s.io/apimachinery/pkg/api/resource/quantity.go):
    a binary suffix stays binary with the largest whole unit, anything else becomes the largest whole
    decimal unit from `m` up. Raises ValueError for a value that is not a plain or suffixed number (no
    exponents), or that is finer than 1m.
    """
    amount, binary = _parse(value)
    if binary and amount.denominator == 1:
        whole, power = int(amount), 0
        while whole and whole % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
            whole, power = whole // 1024, power + 1
        return f"{whole}{_BINARY_SUFFIXES[power]}"
    # Decimal, or binary but not a whole number of bytes (Go then writes it in decimal form).
    milli = amount * 1000
    if milli.denominator != 1:
        raise ValueError(f"expected a quantity in steps of 1m, got {value!r}")
    whole, index = int(milli), 0
    if whole == 0:
        return "0"
    while whole % 1000 == 0 and index < len(_DECIMAL_SUFFIXES) - 1:
        whole, index = whole // 1000, index + 1
    return f"{whole}{_DECIMAL_SUFFIXES[index]}"


def quantity_value(value: str | int | float) -> Fraction:
    """Return the amount `value` stands for, exactly (`80Mi` → 83886080, `50m` → 1/20); ValueError if bad."""
    return _parse(value)[0]


def _parse(value: str | int | float) -> tuple[Fraction, bool]:
    match = _QUANTITY.match(str(value)) if not isinstance(value, bool) else None
    if match is None:
        raise ValueError(f"expected a Kubernetes quantity like 80Mi, 1Gi, 50m or 2, got {value!r}")
    amount = Fraction(match.group(1))
    suffix = match.group(2) or ""
    if suffix in _BINARY_SUFFIXES[1:]:
        return amount * 1024 ** _BINARY_SUFFIXES.index(suffix), True
    return amount * Fraction(1000) ** (_DECIMAL_SUFFIXES.index(suffix) - 1), False
