"""The resource types the simulator serves (the built-in ones it needs, and those its CRDs define) and the
rules that come with a type.

A ``ResourceType`` is what the API server's discovery documents describe (group, version, names, scope,
verbs) plus what the registry needs to enforce a custom resource's rules (its structural schema, whether it
has a status subresource). CRD objects are turned into types here, and given the status the real API server's
controllers would write (accepted names, ``Established``), so clients that wait for a CRD see it ready.
Also here: what the strategies of Namespaces, Secrets and CRDs add to a write, which fields a selector may
name per type, and the compiled schema of a custom type.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from testbed.sim.errors import Cause, bad_request
from testbed.sim.metadata import NameRule, now
from testbed.sim.schema import StructuralSchema
from testbed.sim.selectors import SelectorError, parse_field_selector, parse_label_selector
from testbed.sim.store import Predicate

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"
COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ResourceType:
    """One served resource (one version of it). Mappings are left out of the hash so a type can key a dict."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = field(default=None, hash=False)
    printer_columns: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    status_subresource: bool = False
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def group_version(self) -> str:
        """The ``apiVersion`` of this type's objects: ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The storage key shared by every version of the resource: ``secrets``, ``lcmmachines.<group>``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def builtin(self) -> bool:
        """Built-in types are compiled into the real API server; custom ones come from CRDs."""
        return self.key in _BUILTIN_KEYS

    @property
    def tracks_generation(self) -> bool:
        """Kubernetes bumps ``metadata.generation`` for CRs and CRDs, not for Secrets, ConfigMaps, RBAC..."""
        return not self.builtin or self.key == CRD_KEY

    @property
    def unconditional_update(self) -> bool:
        """Whether a PUT without ``metadata.resourceVersion`` is accepted (CRs and CRDs refuse it)."""
        return self.builtin and self.key != CRD_KEY

    @property
    def name_rule(self) -> NameRule:
        """Namespaces are DNS labels; RBAC objects only path segments ("system:node" is a valid role name)."""
        if self.key == "namespaces":
            return "label"
        return "segment" if self.group == _RBAC else "subdomain"

    @property
    def field_selectors(self) -> tuple[str, ...]:
        """The fields a field selector may name for this type, as the API server supports them."""
        return (*COMMON_FIELDS, "type") if self.key == "secrets" else COMMON_FIELDS


def _builtin(group: str, kind: str, plural: str, *, namespaced: bool = True, short: tuple[str, ...] = (),
             status: bool = False) -> ResourceType:
    return ResourceType(group=group, version="v1", kind=kind, plural=plural, singular=kind.lower(),
                        namespaced=namespaced, short_names=short, status_subresource=status)


_RBAC = "rbac.authorization.k8s.io"
BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _builtin("", "Namespace", "namespaces", namespaced=False, short=("ns",), status=True),
    _builtin("", "Secret", "secrets"),
    _builtin("", "ConfigMap", "configmaps", short=("cm",)),
    _builtin("", "ServiceAccount", "serviceaccounts", short=("sa",)),
    _builtin("", "Event", "events", short=("ev",)),
    _builtin("coordination.k8s.io", "Lease", "leases"),
    _builtin(_RBAC, "Role", "roles"),
    _builtin(_RBAC, "RoleBinding", "rolebindings"),
    _builtin(_RBAC, "ClusterRole", "clusterroles", namespaced=False),
    _builtin(_RBAC, "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    _builtin("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions",
             namespaced=False, short=("crd", "crds"), status=True),
)
_BUILTIN_KEYS = frozenset(rt.key for rt in BUILTIN_TYPES)


def _storage_version(crd: Mapping[str, Any]) -> Mapping[str, Any]:
    versions = crd.get("spec", {}).get("versions") or []
    return next(v for v in versions if v.get("storage") and v.get("served"))


def resource_type_from_crd(crd: Mapping[str, Any]) -> ResourceType:
    """The type a (valid) CRD serves, at its served storage version; other versions are not served here."""
    spec = crd["spec"]
    names = spec["names"]
    version = _storage_version(crd)
    return ResourceType(
        group=spec["group"],
        version=version["name"],
        kind=names["kind"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        schema=(version.get("schema") or {}).get("openAPIV3Schema"),
        printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
        status_subresource="status" in (version.get("subresources") or {}),
    )


def validate_crd(crd: Mapping[str, Any]) -> list[Cause]:
    """The CRD rules a typo would break, worded as the apiextensions validation words them."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[Cause] = []
    for name in ("plural", "kind"):
        if not names.get(name):
            path = f"spec.names.{name}"
            causes.append(Cause(path, "FieldValueRequired", f"{path}: Required value"))
    if not spec.get("group"):
        causes.append(Cause("spec.group", "FieldValueRequired", "spec.group: Required value"))
    expected = f'{names.get("plural", "")}.{spec.get("group", "")}'
    name = crd.get("metadata", {}).get("name", "")
    if name != expected:
        message = f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group'
        causes.append(Cause("metadata.name", "FieldValueInvalid", message))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(Cause("spec.scope", "FieldValueNotSupported",
                            f'spec.scope: Unsupported value: "{spec.get("scope", "")}": supported values: '
                            '"Cluster", "Namespaced"'))
    versions: Sequence[Mapping[str, Any]] = spec.get("versions") or []
    storage = [v for v in versions if v.get("storage")]
    if len(storage) != 1 or not storage[0].get("served"):
        causes.append(Cause("spec.versions", "FieldValueInvalid",
                            "spec.versions: Invalid value: must have exactly one version marked as storage "
                            "version, and it must be served"))
    for i, version in enumerate(versions):
        if not (version.get("schema") or {}).get("openAPIV3Schema"):
            path = f"spec.versions[{i}].schema.openAPIV3Schema"
            causes.append(Cause(path, "FieldValueRequired", f"{path}: Required value: schemas are required"))
    return causes


def crd_status(crd: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The status the apiextensions controllers give an accepted CRD: names accepted, ``Established``."""
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f'{names["kind"]}List')
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now}
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    return {"acceptedNames": names, "conditions": conditions,
            "storedVersions": [_storage_version(crd)["name"]]}


SA_TOKEN_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 (a Secret type, not a password)
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def prepare(rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """What the API server's strategy for a few built-in types adds to a write (and its own checks).

    ``obj`` is the object about to be stored: its top level is private, nested parts may be shared with a
    stored version, so they are replaced, never changed in place.
    """
    if rt.key == "namespaces":
        obj["spec"] = {"finalizers": ["kubernetes"], **(obj.get("spec") or {})}
        if old is None:
            obj["status"] = {"phase": "Active"}
    elif rt.key == "secrets":
        return _prepare_secret(obj, old)
    elif rt.key == CRD_KEY:
        causes = validate_crd(obj)
        if not causes:
            conditions = (old or {}).get("status", {}).get("conditions") or [{}]
            obj["status"] = crd_status(obj, conditions[0].get("lastTransitionTime") or now())
        return causes
    return []


def _prepare_secret(obj: dict[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """``stringData`` folded into ``data``; a ServiceAccount token Secret gets its token, as the token
    controller gives it: 256 random bits, and the namespace, base64-encoded like all Secret data."""
    data = dict(obj.get("data") or {})
    data.update({k: _b64(v) for k, v in (obj.pop("stringData", None) or {}).items()})
    kind = obj.setdefault("type", "Opaque")
    if old is not None and old.get("type", "Opaque") != kind:
        message = f"type: Invalid value: {json.dumps(kind)}: field is immutable"
        return [Cause("type", "FieldValueInvalid", message)]
    if kind == SA_TOKEN_TYPE:
        if not (obj["metadata"].get("annotations") or {}).get(SA_NAME_ANNOTATION):
            path = f"metadata.annotations[{SA_NAME_ANNOTATION}]"
            return [Cause(path, "FieldValueRequired", f"{path}: Required value")]
        if "token" not in data:
            data["token"] = _b64(secrets.token_urlsafe(32))
            data["namespace"] = _b64(obj["metadata"]["namespace"])
    if data or "data" in obj:
        obj["data"] = data
    return []


def service_account_of(secret: Mapping[str, Any]) -> tuple[str, str] | None:
    """(token, ServiceAccount name) of a ServiceAccount token Secret that has its token."""
    if secret.get("type") != SA_TOKEN_TYPE:
        return None
    account = (secret["metadata"].get("annotations") or {}).get(SA_NAME_ANNOTATION)
    encoded = (secret.get("data") or {}).get("token")
    if not account or not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode(), account
    except (binascii.Error, UnicodeDecodeError):
        return None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def matcher(rt: ResourceType, label_selector: str, field_selector: str) -> Predicate | None:
    """The selectors as one predicate (None: everything matches); 400 with the parser's message."""
    if not label_selector and not field_selector:
        return None
    try:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.field_selectors)
    except SelectorError as exc:
        raise bad_request(str(exc)) from exc

    def match(obj: Mapping[str, Any]) -> bool:
        return labels.matches(obj["metadata"].get("labels") or {}) and fields.matches(obj)

    return match


def exact_name(field_selector: str) -> str | None:
    """The one name a field selector pins (a ``metadata.name=X`` term), so a lookup replaces a scan; the
    whole selector still filters. Selectors with escapes are left to the full parser."""
    if "\\" in field_selector:
        return None
    for term in field_selector.split(","):
        key, op, value = term.partition("==") if "==" in term else term.partition("=")
        if op and key.strip() == "metadata.name":
            return value.strip()
    return None


class TypeSchema:
    """A custom type's compiled schema, plus the part of it a ``/status`` write needs: there the rest of the
    object is the stored version, valid already, so only the new status is defaulted, pruned and checked
    (status writes are the bulk of a fleet's traffic)."""

    def __init__(self, openapi_v3_schema: Mapping[str, Any]) -> None:
        self._full = StructuralSchema(openapi_v3_schema)
        status = (openapi_v3_schema.get("properties") or {}).get("status")
        self._status = None if status is None else StructuralSchema(
            {"type": "object", "properties": {"status": status}})

    def admit(
        self, obj: dict[str, Any], old: Mapping[str, Any] | None, *, status_only: bool,
    ) -> tuple[dict[str, Any], list[Cause]]:
        """``obj`` with defaults applied and unknown fields pruned, and every violation found; ``old`` is the
        stored version an update starts from."""
        if not status_only or self._status is None:
            admitted = self._full.default_and_prune(obj, old)
            return admitted, self._full.validate(admitted, old)
        if "status" not in obj:
            return obj, []
        before = None if old is None or "status" not in old else {"status": old["status"]}
        part = self._status.default_and_prune({"status": obj["status"]}, before)
        rest = {k: v for k, v in obj.items() if k != "status"}
        return {**rest, **part}, self._status.validate(part, before)
