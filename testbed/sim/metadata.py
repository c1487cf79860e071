"""Object and list metadata rules: names, labels, annotations, finalizers, what a create or an update may
set, preconditions, continue tokens; pure functions the registry applies.

Messages follow apimachinery's validation wording, so a client (or a test written against a real cluster)
sees the same 4xx text from the simulator. Only what a client can get wrong is checked; the fields the server
owns (uid, creationTimestamp, resourceVersion, generation, deletion) are set here, never taken from a client.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from testbed.sim.errors import ApiError, Cause, bad_request, qualified
from testbed.sim.naming import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    LABEL_NAME_MESSAGE,
    SUBDOMAIN_MESSAGE,
    label_value_errors,
    qualified_name_errors,
)

if TYPE_CHECKING:
    from testbed.sim.resources import ResourceType

_MAX_ANNOTATIONS_BYTES = 256 * 1024
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""What apiserver's name generator draws from: no vowels (no words), no look-alike characters."""

NameRule = Literal["subdomain", "label", "segment"]
"""How names are checked: DNS subdomain (most types), DNS label (namespaces), path segment (RBAC)."""
SERVER_FIELDS = frozenset({
    "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
    "resourceVersion", "selfLink", "managedFields",
})
"""Metadata the server owns: what a client sends there is replaced (or, on update, must agree)."""


def now() -> str:
    """A timestamp as metadata carries it: RFC 3339, whole seconds, UTC."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))


def invalid_value(path: str, value: Any, message: str) -> Cause:
    return Cause(path, "FieldValueInvalid", f"{path}: Invalid value: {json.dumps(value)}: {message}")


def name_causes(name: str, rule: NameRule, path: str = "metadata.name", *,
                prefix: bool = False) -> list[Cause]:
    """Why ``name`` is not a valid object name under ``rule``; ``prefix`` checks a generateName."""
    if rule == "segment":
        bad = [f"may not contain '{c}'" for c in "/%" if c in name]
        if name in (".", "..") and not prefix:
            bad.append(f"may not be '{name}'")
        return [invalid_value(path, name, message) for message in bad]
    checked = name[:-1] + "a" if prefix and name.endswith("-") else name
    pattern, limit, message = ((DNS_LABEL, 63, LABEL_NAME_MESSAGE) if rule == "label"
                               else (DNS_SUBDOMAIN, 253, SUBDOMAIN_MESSAGE))
    causes = []
    if len(checked) > limit:
        causes.append(invalid_value(path, name, f"must be no more than {limit} characters"))
    if not re.fullmatch(pattern, checked):
        causes.append(invalid_value(path, name, message))
    return causes


def qualified_name_causes(key: str, path: str) -> list[Cause]:
    """A label key, annotation key or finalizer: an optional DNS-subdomain prefix, '/', a short name."""
    return [invalid_value(path, key, message) for message in qualified_name_errors(key)]


def metadata_causes(meta: Mapping[str, Any]) -> list[Cause]:
    """Label keys and values, annotation keys and total size, finalizer names."""
    causes: list[Cause] = []
    for key, value in (meta.get("labels") or {}).items():
        causes += qualified_name_causes(key, "metadata.labels")
        causes += [invalid_value("metadata.labels", value, message) for message in label_value_errors(value)]
    annotations = meta.get("annotations") or {}
    for key in annotations:
        causes += qualified_name_causes(key, "metadata.annotations")
    if sum(len(k) + len(v) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
        message = f"metadata.annotations: Too long: must have at most {_MAX_ANNOTATIONS_BYTES} bytes"
        causes.append(Cause("metadata.annotations", "FieldValueTooLong", message))
    for i, finalizer in enumerate(meta.get("finalizers") or ()):
        causes += qualified_name_causes(finalizer, f"metadata.finalizers[{i}]")
    return causes


def check_shape(body: Any) -> dict[str, Any]:
    """The body's metadata, after checking the types a JSON decoder into ObjectMeta would insist on (400)."""
    if not isinstance(body, Mapping):
        raise bad_request("the body of the request must be a JSON object")
    meta = body.get("metadata")
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise bad_request("metadata must be an object")
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not (isinstance(value, Mapping)
                                      and all(isinstance(v, str) for v in value.values())):
            raise bad_request(f"metadata.{field} must be a map of string to string")
    finalizers = meta.get("finalizers")
    if finalizers is not None and not (isinstance(finalizers, list)
                                       and all(isinstance(f, str) for f in finalizers)):
        raise bad_request("metadata.finalizers must be a list of strings")
    for field in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        if not isinstance(meta.get(field, ""), str):
            raise bad_request(f"metadata.{field} must be a string")
    return dict(meta)


def new_finalizer_causes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Cause]:
    """An object being deleted may lose finalizers but never gain one."""
    if not old.get("deletionTimestamp"):
        return []
    added = [f for f in new.get("finalizers") or () if f not in (old.get("finalizers") or ())]
    if not added:
        return []
    listed = ", ".join(json.dumps(f) for f in added)
    return [Cause("metadata.finalizers", "FieldValueForbidden",
                  "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being "
                  f"deleted, found new finalizers []string{{{listed}}}")]


def created_metadata(meta: Mapping[str, Any], *, name: str, namespace: str,
                     generation: bool) -> dict[str, Any]:
    """The metadata a new object is stored with: the client's part plus identity and birth time."""
    created = {k: v for k, v in meta.items() if k not in SERVER_FIELDS and k != "namespace"}
    created["name"] = name
    if namespace:
        created["namespace"] = namespace
    created["uid"] = str(uuid.uuid4())
    created["creationTimestamp"] = now()
    if generation:
        created["generation"] = 1
    return created


def updated_metadata(meta: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The client's new metadata with what it may not change taken from the stored object (name and
    namespace were checked against the URL; a changed uid was refused as a failed precondition)."""
    updated = {k: v for k, v in meta.items() if k not in SERVER_FIELDS}
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds", "generation", "resourceVersion"):
        if key in old:
            updated[key] = old[key]
        else:
            updated.pop(key, None)
    return updated


def updated_object(rt: ResourceType, obj: Mapping[str, Any], old: Mapping[str, Any], *,
                   status_only: bool) -> dict[str, Any]:
    """What an update may change: through ``/status`` only the status (metadata and spec stay as stored,
    as the API server's status strategy does); else everything but server-owned metadata and, when the
    type has a status endpoint, the status."""
    if status_only:
        new = {k: v for k, v in old.items() if k != "status"}
        new["metadata"] = dict(old["metadata"])
        if "status" in obj:
            new["status"] = obj["status"]
        return new
    new = {k: v for k, v in obj.items() if k != "status" or not rt.status_subresource}
    new["metadata"] = updated_metadata(obj.get("metadata") or {}, old["metadata"])
    if rt.status_subresource and "status" in old:
        new["status"] = old["status"]
    return new


def immutable_causes(rt: ResourceType, meta: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """A name (or namespace) changed by a patch; a replace was refused earlier for not matching its URL."""
    keys = ("name", "namespace") if rt.namespaced else ("name",)
    return [Cause(f"metadata.{key}", "FieldValueInvalid",
                  f"metadata.{key}: Invalid value: {json.dumps(meta[key])}: field is immutable")
            for key in keys if meta.get(key, old.get(key)) != old.get(key)]


def mark_deleting(obj: Mapping[str, Any], *, generation: bool) -> dict[str, Any]:
    """``obj`` with a deletionTimestamp (grace period 0: nothing waits but the finalizers), once."""
    meta = dict(obj["metadata"])
    if not meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = now()
        if generation and "generation" in meta:
            meta["generation"] += 1
    meta["deletionGracePeriodSeconds"] = 0
    return {**obj, "metadata": meta}


def check_kind(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj``, which must be of ``rt``'s apiVersion and kind (filled in if absent)."""
    api_version = obj.setdefault("apiVersion", rt.group_version)
    kind = obj.setdefault("kind", rt.kind)
    if api_version != rt.group_version:
        raise bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                          f"version ({rt.group_version})")
    if kind != rt.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    return obj


def private(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy no one else holds (and proof that ``obj`` is plain JSON)."""
    try:
        copy: dict[str, Any] = json.loads(json.dumps(obj))
    except (TypeError, ValueError) as exc:
        raise bad_request(f"the object is not valid JSON: {exc}") from exc
    return copy


def scoped_namespace(rt: ResourceType, namespace: str, meta: Mapping[str, Any]) -> str:
    """The namespace an object of ``rt`` lives in: the URL's, which the body may repeat but not contradict."""
    if not rt.namespaced:
        return ""
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                          "request")
    return namespace


def check_preconditions(rt: ResourceType, meta: Mapping[str, Any], preconditions: Mapping[str, Any]) -> None:
    """409 when a delete's (or an update body's) uid or resourceVersion precondition does not hold."""
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        expected = preconditions.get(field)
        if expected and expected != meta.get(field):
            target = f'{qualified(rt.plural, rt.group)} "{meta["name"]}"'
            raise ApiError(409, "Conflict",
                           f"Operation cannot be fulfilled on {target}: "
                           f"Precondition failed: {label} in precondition: {expected}, "
                           f"{label} in object meta: {meta.get(field)}",
                           kind=rt.plural, name=meta["name"], group=rt.group)


def generation_part(rt: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a generation counts: everything but metadata (and status, when it has its own endpoint)."""
    skip = ("metadata", "status") if rt.status_subresource else ("metadata",)
    return {k: v for k, v in obj.items() if k not in skip}


def parse_rv(text: str) -> int:
    if not text.isdigit():
        raise bad_request(f'invalid resource version "{text}"')
    return int(text)


def encode_continue(rv: int, last: tuple[str, str]) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": list(last)}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = data["start"]
        return int(data["rv"]), (str(namespace), str(name))
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from exc
