"""Kubernetes object semantics on top of the store: what the API server's generic registry does per verb.

Every write is checked completely before anything is stored (400 for a malformed request, 404/403 for the
namespace, 422 with every schema and metadata violation, 409 for a stale resourceVersion or a taken name),
so a refused request leaves no trace. A write that changes nothing keeps the resourceVersion and emits no
event, as on a real cluster. Deletion honours finalizers; deleting a namespace or a CRD takes what it holds
with it. CRDs are served the moment they are stored, and ServiceAccount token Secrets authenticate.

All methods run on the event loop's thread (see ``store``); none blocks on anything but sqlite.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from testbed.sim.errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    qualified,
)
from testbed.sim.metadata import (
    check_kind,
    check_preconditions,
    check_shape,
    created_metadata,
    decode_continue,
    encode_continue,
    generate_name,
    generation_part,
    immutable_causes,
    mark_deleting,
    metadata_causes,
    name_causes,
    new_finalizer_causes,
    parse_rv,
    private,
    scoped_namespace,
    updated_object,
)
from testbed.sim.patching import PatchType, apply_patch, check_patch_type
from testbed.sim.resources import (
    BUILTIN_TYPES,
    CRD_KEY,
    ResourceType,
    TypeSchema,
    exact_name,
    matcher,
    prepare,
    resource_type_from_crd,
    service_account_of,
)
from testbed.sim.store import Predicate, Store, Stored, WatchEvent, too_large

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public")


class Registry:
    """The simulator's API semantics; raises ``ApiError`` exactly where the API server would fail."""

    def __init__(self, store: Store, *, crd_paths: Sequence[Path] = ()) -> None:
        self._store = store
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_key: dict[str, ResourceType] = {}
        self._schemas: dict[str, TypeSchema] = {}
        self._tokens: dict[str, tuple[str, str]] = {}
        """ServiceAccount token -> (namespace, Secret name): one lookup per authenticated request."""
        for rt in BUILTIN_TYPES:
            self._register(rt)
        for crd in store.objects(CRD_KEY).values():
            self._register(resource_type_from_crd(crd.obj))
        for secret in store.objects("secrets").values():
            self._index_token(None, secret.obj)
        namespaces = self._by_key["namespaces"]
        for name in INITIAL_NAMESPACES:
            if store.get("namespaces", "", name) is None:
                self.create(namespaces, "", {"metadata": {"name": name}})
        for path in crd_paths:
            self._apply_crds(path)

    # -- types -------------------------------------------------------------------------------------------

    def resource_types(self) -> list[ResourceType]:
        return list(self._types.values())

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self._types.get((group, version, plural))
        if rt is None:
            raise _no_such_resource()
        return rt

    @property
    def resource_version(self) -> int:
        return self._store.resource_version

    def revision(self, rt: ResourceType) -> int:
        return self._store.revision(rt.key)

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        return self._current(rt, namespace, name).copy()

    def list(self, rt: ResourceType, namespace: str | None, *, label_selector: str = "",
             field_selector: str = "", limit: int = 0, continue_token: str = "",
             resource_version: str = "") -> dict[str, Any]:
        """One page of a consistent list: a continue token lists the rest as of the first page's version."""
        match = matcher(rt, label_selector, field_selector)
        if continue_token:
            if resource_version:
                raise bad_request("specifying resource version is not allowed when using continue")
            rv, start = decode_continue(continue_token)
            objects: Mapping[tuple[str, str], Stored] = self._store.snapshot(rt.key, rv)
        else:
            rv, start = self._store.resource_version, None
            if resource_version and parse_rv(resource_version) > rv:
                raise too_large(parse_rv(resource_version), rv)
            objects = self._store.objects(rt.key)
        name = exact_name(field_selector)
        keys = sorted(k for k in objects if (not namespace or k[0] == namespace)
                      and (name is None or k[1] == name) and (start is None or k > start))
        items: list[dict[str, Any]] = []
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        last = ("", "")
        for index, key in enumerate(keys):
            stored = objects[key]
            if match is not None and not match(stored.obj):
                continue
            if limit and len(items) == limit:
                metadata["continue"] = encode_continue(rv, last)
                if match is None:
                    metadata["remainingItemCount"] = len(keys) - index
                break
            items.append(stored.copy())
            last = key
        return {"kind": rt.list_kind, "apiVersion": rt.group_version, "metadata": metadata, "items": items}

    def watch(self, rt: ResourceType, namespace: str | None, *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "",
              bookmark_interval: float | None = None) -> AsyncGenerator[WatchEvent, None]:
        """Events from ``resource_version`` on ("" or "0": every current object as ADDED first).

        A type no longer served (404) and bad selectors (400) raise here, before an HTTP layer answers; errors
        of the stream itself (410 for a version older than the kept history) raise at the first iteration,
        after the 200, as the API server sends them."""
        self.resolve(rt.group, rt.version, rt.plural)  # still served (its CRD may be gone)
        predicate = matcher(rt, label_selector, field_selector)
        return self._events(rt, namespace, resource_version, exact_name(field_selector), predicate,
                            bookmark_interval)

    async def _events(self, rt: ResourceType, namespace: str | None, resource_version: str, name: str | None,
                      predicate: Predicate | None, bookmark_interval: float | None,
                      ) -> AsyncGenerator[WatchEvent, None]:
        watcher = self._store.watch(
            rt.key, namespace=namespace or None, name=name, predicate=predicate,
            since=None if resource_version in ("", "0") else parse_rv(resource_version),
            bookmark={"kind": rt.kind, "apiVersion": rt.group_version}, bookmark_interval=bookmark_interval)
        async with contextlib.aclosing(watcher):
            async for event in watcher:
                yield event

    # -- writes ------------------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        check_shape(body)
        obj = check_kind(rt, private(body))
        meta = obj.get("metadata") or {}
        namespace = scoped_namespace(rt, namespace, meta)
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        if rt.namespaced:
            self._check_namespace_open(rt, namespace, meta.get("name", ""))
        name, causes = meta.get("name", ""), []
        if name:
            causes = name_causes(name, rt.name_rule)
        elif meta.get("generateName"):
            causes = name_causes(meta["generateName"], rt.name_rule, "metadata.generateName", prefix=True)
            name = generate_name(meta["generateName"])
        else:
            causes = [Cause("metadata.name", "FieldValueRequired",
                            "metadata.name: Required value: name or generateName is required")]
        obj["metadata"] = created_metadata(meta, name=name, namespace=namespace,
                                           generation=rt.tracks_generation)
        if rt.status_subresource:
            obj.pop("status", None)
        obj = self._admit(rt, obj, None, causes)
        if self._store.get(rt.key, namespace, name) is not None:
            raise already_exists(rt.plural, rt.group, name)
        return private(obj) if dry_run else self._put(rt, None, obj).copy()

    def replace(self, rt: ResourceType, namespace: str, name: str, body: Any, *, subresource: str = "",
                dry_run: bool = False) -> dict[str, Any]:
        meta = check_shape(body)
        _check_subresource(rt, subresource)
        obj = check_kind(rt, private(body))
        if meta.get("name", "") != name:
            raise bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name on "
                              f"the URL ({name})")
        current = self._current(rt, scoped_namespace(rt, namespace, meta), name)
        if not meta.get("resourceVersion") and not rt.unconditional_update:
            raise invalid(rt.plural, rt.group, name, [Cause(
                "metadata.resourceVersion", "FieldValueInvalid",
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")])
        return self._update(rt, current, obj, subresource, dry_run)

    def patch(self, rt: ResourceType, namespace: str, name: str, patch_type: PatchType, patch: Any, *,
              subresource: str = "", dry_run: bool = False) -> dict[str, Any]:
        check_patch_type(patch_type, builtin=rt.builtin)
        _check_subresource(rt, subresource)
        current = self._current(rt, namespace, name)
        obj = apply_patch(current.obj, patch_type, patch)
        check_shape(obj)
        return self._update(rt, current, check_kind(rt, obj), subresource, dry_run)

    def delete(self, rt: ResourceType, namespace: str, name: str, *,
               preconditions: Mapping[str, Any] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Deletes, or with finalizers marks for deletion; returns the object as it was last stored."""
        current = self._current(rt, namespace, name)
        check_preconditions(rt, current.obj["metadata"], preconditions or {})
        if rt.key == "namespaces" and name in INITIAL_NAMESPACES:
            raise ApiError(403, "Forbidden",
                           f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                           kind="namespaces", name=name)
        if dry_run:
            return current.copy()
        if rt.key == "namespaces":
            return self._delete_namespace(rt, current).copy()
        if rt.key == CRD_KEY:
            self._drop_type(self._by_key.get(resource_type_from_crd(current.obj).key))
        return self._delete(rt, current).copy()

    def compact(self) -> None:
        self._store.compact()

    def stored(self, key: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The stored object of type ``key`` (``secrets``, ``serviceaccounts``), or None: for the
        authenticator, which must not turn a missing object into a 404."""
        found = self._store.get(key, namespace, name)
        return None if found is None else found.obj

    def authenticate_token(self, token: str) -> tuple[str, str] | None:
        """(namespace, ServiceAccount) for a live ServiceAccount token Secret whose account exists."""
        ref = self._tokens.get(token)
        secret = None if ref is None else self._store.get("secrets", *ref)
        if ref is None or secret is None or secret.obj["metadata"].get("deletionTimestamp"):
            return None
        account = service_account_of(secret.obj)
        if account is None or self._store.get("serviceaccounts", ref[0], account[1]) is None:
            return None
        return ref[0], account[1]

    def close(self) -> None:
        self._store.close()

    # -- internals ---------------------------------------------------------------------------------------

    def _current(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self._store.get(rt.key, namespace if rt.namespaced else "", name)
        if stored is None:
            raise not_found(rt.plural, rt.group, name)
        return stored

    def _check_namespace_open(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self._store.get("namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403, "Forbidden", f'{qualified(rt.plural, rt.group)} "{name}" is forbidden: unable to create '
                f"new content in namespace {namespace} because it is being terminated",
                kind=rt.plural, name=name, group=rt.group,
                causes=(Cause("metadata.namespace", "NamespaceTerminating",
                              f"namespace {namespace} is being terminated"),))

    def _update(self, rt: ResourceType, current: Stored, obj: dict[str, Any], subresource: str,
                dry_run: bool) -> dict[str, Any]:
        """The shared end of replace and patch: preconditions, the status split, checks, the write."""
        old = current.obj
        meta, old_meta = obj.get("metadata") or {}, old["metadata"]
        name = old_meta["name"]
        if (meta.get("resourceVersion") or old_meta["resourceVersion"]) != old_meta["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        check_preconditions(rt, old_meta, {"uid": meta.get("uid")})
        status_only = subresource == "status"
        new = updated_object(rt, obj, old, status_only=status_only)
        new = self._admit(rt, new, old, immutable_causes(rt, meta, old_meta), status_only=status_only)
        if rt.tracks_generation and generation_part(rt, new) != generation_part(rt, old):
            new["metadata"]["generation"] = old_meta.get("generation", 0) + 1
        if new == old:
            return current.copy()
        if dry_run:
            return private(new)
        stored = self._put(rt, old, new)
        if stored.obj["metadata"].get("deletionTimestamp") and not stored.obj["metadata"].get("finalizers"):
            self._delete(rt, stored)
        return stored.copy()

    def _admit(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None,
               found: Sequence[Cause], *, status_only: bool = False) -> dict[str, Any]:
        """The object as it will be stored (type rules, schema defaults, unknown fields pruned), or 422
        with ``found`` and every other violation."""
        causes = [*found, *prepare(rt, obj, old)]
        schema = self._schemas.get(rt.key)
        if schema is not None:
            obj, found_in_schema = schema.admit(obj, old, status_only=status_only)
            causes += found_in_schema
        causes += metadata_causes(obj["metadata"])
        if old is not None:
            causes += new_finalizer_causes(old["metadata"], obj["metadata"])
        if causes:
            raise invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        return obj

    def _put(self, rt: ResourceType, old: Mapping[str, Any] | None, obj: dict[str, Any]) -> Stored:
        stored = self._store.put(rt.key, obj)
        if rt.key == "secrets":
            self._index_token(old, stored.obj)
        elif rt.key == CRD_KEY and not stored.obj["metadata"].get("deletionTimestamp"):
            self._register(resource_type_from_crd(stored.obj))
        return stored

    def _delete(self, rt: ResourceType, stored: Stored) -> Stored:
        """Remove ``stored``, or only mark it while finalizers remain; then finish its namespace if due."""
        meta = stored.obj["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return stored
            return self._put(rt, stored.obj, mark_deleting(stored.obj, generation=rt.tracks_generation))
        gone = self._store.delete(rt.key, meta.get("namespace", ""), meta["name"])
        if rt.key == "secrets":
            self._index_token(gone.obj, None)
        if rt.namespaced:
            self._finalize_namespace(meta["namespace"])
        return gone

    def _delete_namespace(self, rt: ResourceType, ns: Stored) -> Stored:
        """Terminating, then everything in it deleted (finalizers still honoured), then gone once empty:
        the namespace controller's work, done at once."""
        name = ns.obj["metadata"]["name"]
        if not ns.obj["metadata"].get("deletionTimestamp"):
            marked = mark_deleting(ns.obj, generation=False)
            marked["status"] = {**(ns.obj.get("status") or {}), "phase": "Terminating"}
            ns = self._put(rt, ns.obj, marked)
        for resource, member in self._store.in_namespace(name):
            self._delete(self._by_key[resource], member)
        self._finalize_namespace(name)
        return ns

    def _finalize_namespace(self, namespace: str) -> None:
        """Remove a terminating namespace once nothing is left in it."""
        ns = self._store.get("namespaces", "", namespace)
        terminating = ns is not None and ns.obj["metadata"].get("deletionTimestamp")
        if ns is not None and terminating and not self._store.has_objects(namespace):
            self._delete(self._by_key["namespaces"], ns)

    def _drop_type(self, rt: ResourceType | None) -> None:
        """A deleted CRD takes its objects with it (finalizers are not waited for) and stops being served."""
        if rt is None:
            return
        for namespace, name in sorted(self._store.objects(rt.key)):
            self._store.delete(rt.key, namespace, name)
        self._store.close_watchers(rt.key)
        del self._by_key[rt.key]
        self._schemas.pop(rt.key, None)
        self._types = {k: t for k, t in self._types.items() if t.key != rt.key}

    def _register(self, rt: ResourceType) -> None:
        self._types = {k: t for k, t in self._types.items() if t.key != rt.key}
        self._types[(rt.group, rt.version, rt.plural)] = rt
        self._by_key[rt.key] = rt
        if rt.schema is not None:
            self._schemas[rt.key] = TypeSchema(rt.schema)

    def _index_token(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        before = None if old is None else service_account_of(old)
        if before is not None:
            self._tokens.pop(before[0], None)
        after = None if new is None else service_account_of(new)
        if after is not None and new is not None:
            self._tokens[after[0]] = (new["metadata"]["namespace"], new["metadata"]["name"])

    def _apply_crds(self, path: Path) -> None:
        """Create or bring up to date the CRDs of one manifest (a replace that changes nothing is free)."""
        crds = self._by_key[CRD_KEY]
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != crds.kind:
                continue
            current = self._store.get(CRD_KEY, "", doc.get("metadata", {}).get("name", ""))
            if current is None:
                self.create(crds, "", doc)
            else:
                doc["metadata"]["resourceVersion"] = current.obj["metadata"]["resourceVersion"]
                self.replace(crds, "", doc["metadata"]["name"], doc)


def _check_subresource(rt: ResourceType, subresource: str) -> None:
    if subresource and not (subresource == "status" and rt.status_subresource):
        raise _no_such_resource()


def _no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")
