"""The Status errors of the Kubernetes API sandbox, built as the API server builds them.

Each constructor mirrors one of k8s.io/apimachinery/pkg/api/errors/errors.go (NewNotFound, NewConflict,
NewInvalid, ...) so that the body, `reason`, `details` and `code` are the real server's. The store raises
them; the app writes `status` as the response body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "ApiStatusError",
    "FieldError",
    "already_exists",
    "apply_conflict",
    "bad_request",
    "conflict",
    "expired",
    "forbidden",
    "internal",
    "invalid",
    "method_not_supported",
    "not_found",
    "resource_not_found",
    "unauthorized",
    "unprocessable",
]

OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


class ApiStatusError(Exception):
    """A request the API server refuses; `status` is the `v1.Status` body it writes, `code` its HTTP code."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", ""))
        self.status = status

    @property
    def code(self) -> int:
        return int(self.status["code"])

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> ApiStatusError:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return ApiStatusError(body)


def _details(group: str, kind: str, name: str) -> dict[str, Any]:
    """StatusDetails with Go's omitempty: only the non-empty fields, in the struct's order."""
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    return details


def qualified(group: str, resource: str) -> str:
    """schema.GroupResource.String(): `secrets`, `deployments.apps`."""
    return f"{resource}.{group}" if group else resource


def _quote(value: str) -> str:
    """Go's %q for the names and values we print (printable text: JSON's quoting is the same)."""
    import json

    return json.dumps(value, ensure_ascii=False)


def not_found(group: str, resource: str, name: str) -> ApiStatusError:
    """NewNotFound: `secrets "x" not found`; details.kind is the resource (plural), as the server writes."""
    return _status(
        404,
        "NotFound",
        f"{qualified(group, resource)} {_quote(name)} not found",
        _details(group, resource, name),
    )


def resource_not_found() -> ApiStatusError:
    """The 404 for a path no API serves (NewGenericServerResponse 404 with empty details)."""
    return _status(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(group: str, resource: str, name: str) -> ApiStatusError:
    """NewAlreadyExists: `secrets "x" already exists`, 409."""
    return _status(
        409,
        "AlreadyExists",
        f"{qualified(group, resource)} {_quote(name)} already exists",
        _details(group, resource, name),
    )


def conflict(group: str, resource: str, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE) -> ApiStatusError:
    """NewConflict: `Operation cannot be fulfilled on secrets "x": <why>`, 409."""
    return _status(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on {qualified(group, resource)} {_quote(name)}: {why}",
        _details(group, resource, name),
    )


def apply_conflict(causes: Sequence[dict[str, Any]], message: str) -> ApiStatusError:
    """NewApplyConflict: a server-side apply conflict, 409 Conflict, the causes naming field and manager."""
    return _status(409, "Conflict", message, {"causes": list(causes)})


def bad_request(message: str) -> ApiStatusError:
    """NewBadRequest: 400 BadRequest, no details."""
    return _status(400, "BadRequest", message)


def unauthorized() -> ApiStatusError:
    """The authentication filter's 401 (endpoints/handlers/responsewriters: `Unauthorized`)."""
    return _status(401, "Unauthorized", "Unauthorized")


def forbidden(group: str, resource: str, name: str, why: str) -> ApiStatusError:
    """NewForbidden: `secrets "x" is forbidden: <why>` (no resource: `forbidden: <why>`), 403."""
    if not resource:
        message = f"forbidden: {why}"
    elif not name:
        message = f"{qualified(group, resource)} is forbidden: {why}"
    else:
        message = f"{qualified(group, resource)} {_quote(name)} is forbidden: {why}"
    return _status(403, "Forbidden", message, _details(group, resource, name))


def method_not_supported(group: str, resource: str, verb: str) -> ApiStatusError:
    """NewMethodNotSupported: `<verb> is not supported on resources of kind "<resource>"`, 405."""
    return _status(
        405,
        "MethodNotAllowed",
        f"{verb} is not supported on resources of kind {_quote(qualified(group, resource))}",
        _details(group, resource, ""),
    )


def expired(message: str) -> ApiStatusError:
    """NewResourceExpired: 410 Gone with reason Expired and no details (a watch from a too old version)."""
    return _status(410, "Expired", message)


def internal(message: str) -> ApiStatusError:
    """An error that is not a Status (ErrorToAPIStatus's default): 500 with no reason."""
    return _status(500, "", message)


def unprocessable(message: str) -> ApiStatusError:
    """NewGenericServerResponse 422 (a JSON patch that does not apply): the generic message, the error as
    the cause."""
    return _status(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]},
    )


class FieldError:
    """One field.Error of k8s.io/apimachinery/pkg/util/validation/field: `type` is the cause reason
    (FieldValueInvalid, FieldValueRequired, FieldValueForbidden, ...), `field` its path (`metadata.name`)."""

    _BODY: ClassVar[dict[str, str]] = {
        "FieldValueInvalid": "Invalid value",
        "FieldValueRequired": "Required value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueTooLong": "Too long",
    }

    def __init__(self, type_: str, field: str, detail: str, value: Any = None, *, has_value: bool = False):
        self.type = type_
        self.field = field
        self.detail = detail
        self.value = value
        self.has_value = has_value

    @classmethod
    def invalid(cls, field: str, value: Any, detail: str) -> FieldError:
        return cls("FieldValueInvalid", field, detail, value, has_value=True)

    @classmethod
    def required(cls, field: str, detail: str = "") -> FieldError:
        return cls("FieldValueRequired", field, detail)

    @classmethod
    def forbidden(cls, field: str, detail: str) -> FieldError:
        return cls("FieldValueForbidden", field, detail)

    def body(self) -> str:
        """field.Error.ErrorBody(): `Invalid value: "X": detail`, `Required value: detail`."""
        text = self._BODY[self.type]
        if self.has_value:
            value = _quote(self.value) if isinstance(self.value, str) else str(self.value)
            text = f"{text}: {value}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def invalid(group: str, kind: str, name: str, errors: Sequence[FieldError]) -> ApiStatusError:
    """NewInvalid: `Secret "X" is invalid: metadata.name: Invalid value: ...`, 422, details.causes.

    `kind` is the Kind (`Secret`) for validation errors; the store passes the resource where the server does
    (`metadata.resourceVersion ... must be specified for an update`). Several errors print as `[a, b]`.
    """
    qualified_kind = f"{kind}.{group}" if group else kind
    aggregate = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details = _details(group, kind, name)
    details["causes"] = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errors]
    return _status(422, "Invalid", f"{qualified_kind} {_quote(name)} is invalid: {aggregate}", details)
