"""API errors as the Kubernetes API server reports them: an HTTP code plus a ``metav1.Status`` body.

Every layer of the simulator raises ``ApiError``; only the HTTP layer turns it into a response, so a client
sees exactly what a real API server would send (kubernetes_asyncio and kubectl parse these bodies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One ``details.causes[]`` entry: which field is wrong and why (``reason`` is a k8s CauseType)."""

    field: str
    reason: str
    message: str


@dataclass
class ApiError(Exception):
    """An error with the HTTP status code and the ``metav1.Status`` reason the API server would use."""

    code: int
    reason: str
    message: str
    kind: str = ""
    name: str = ""
    group: str = ""
    causes: Sequence[Cause] = field(default_factory=tuple)
    retry_after_seconds: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_status(self) -> dict[str, Any]:
        """The ``Status`` body, as a real API server writes it."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in self.causes]
        if self.retry_after_seconds is not None:
            details["retryAfterSeconds"] = self.retry_after_seconds
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status


def qualified(kind_plural: str, group: str) -> str:
    """``lcmmachines.lcm.mirantis.com`` or ``secrets``: how messages name a resource."""
    return f"{kind_plural}.{group}" if group else kind_plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    message = f'{qualified(plural, group)} "{name}" not found'
    return ApiError(404, "NotFound", message, kind=plural, name=name, group=group)


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
                    kind=plural, name=name, group=group)


def conflict(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": '
        "the object has been modified; please apply your changes to the latest version and try again",
        kind=plural, name=name, group=group,
    )


def invalid(kind: str, group: str, name: str, causes: Sequence[Cause]) -> ApiError:
    """422 with the schema's own messages, formatted like the API server's ``NewInvalid``."""
    messages = [c.message for c in causes]
    joined = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return ApiError(422, "Invalid", f'{qualified(kind, group)} "{name}" is invalid: {joined}',
                    kind=kind, name=name, group=group, causes=tuple(causes))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(
    user: str, verb: str, resource: str, group: str, namespace: str, name: str = "", subresource: str = "",
) -> ApiError:
    """403 as the API server words it: the subresource is named in the reason, not in the refused object."""
    target = f'{resource}.{group}' if group else resource
    named = f' "{name}"' if name else ""
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    refused = f"{resource}/{subresource}" if subresource else resource
    return ApiError(
        403, "Forbidden",
        f'{target}{named} is forbidden: User "{user}" cannot {verb} resource "{refused}" '
        f'in API group "{group}"{scope}',
        kind=resource, name=name, group=group,
    )


def status_ok(details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``Status`` a delete of a whole collection or a namespace returns on success."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = dict(details)
    return body
