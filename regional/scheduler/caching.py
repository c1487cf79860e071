"""The scheduler's view of one kind: every object as last seen, newest version wins, indexed by cluster.

Two sources feed a cache: the kind's watch (``Snapshot`` after every list, ``Change`` events) and the
answers to the scheduler's own writes. An answer is newer than anything the watch has delivered yet, so it
goes in at once, and watch events older than what the cache holds are dropped (kopf's rule: never decide on
a version from before your own write). That is what keeps a re-plan from repeating a write whose watch event
has not arrived: the cache has already seen the write. resourceVersions are compared as integers (etcd
revisions, and the simulator's); an object whose version does not parse is simply replaced.

Objects are parsed into the API models lazily, once per version, when a plan first needs them: a fleet's
status writes arrive far more often than a cluster is planned. A malformed object is logged once per
version, with every bad field, and left out of plans; the previous good version is not used either (acting
on stale data would be worse than waiting for a fix).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

from agent.adapters.kube import Object
from agent.adapters.watching import Change, Snapshot
from agent.api.models import ApiObject, InvalidObjectError

log = logging.getLogger(__name__)

ObjectKey = tuple[str, str]
"""(namespace, name); namespace "" for cluster-scoped kinds."""

M = TypeVar("M", bound=ApiObject)


def object_key(raw: Object) -> ObjectKey:
    meta = raw.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def resource_version(raw: Object) -> int | None:
    try:
        return int((raw.get("metadata") or {}).get("resourceVersion", ""))
    except (TypeError, ValueError):
        return None


def is_gone(raw: Object) -> bool:
    """Deleted for good: marked for deletion with no finalizer left to hold it."""
    meta = raw.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers")


OnChange = Callable[[Object | None, Object | None], None]
"""Called with (old, new) raw objects after every accepted change; None for absent."""
OnInvalid = Callable[[Object, InvalidObjectError], None]
"""Called once per malformed version, when it is first parsed."""


class Entry(Generic[M]):
    """One object's newest version; ``model()`` parses it on first use."""

    __slots__ = ("_error", "_model", "_on_invalid", "_parsed", "_type", "raw", "rv")

    def __init__(self, raw: Object, model_type: type[M], on_invalid: OnInvalid | None = None) -> None:
        self.raw = raw
        self.rv = resource_version(raw)
        self._type = model_type
        self._on_invalid = on_invalid
        self._model: M | None = None
        self._error: InvalidObjectError | None = None
        self._parsed = False

    def model(self) -> M | None:
        """The parsed object, or None when malformed (logged with its reason the first time)."""
        if not self._parsed:
            self._parsed = True
            try:
                self._model = self._type.from_raw(self.raw)
            except InvalidObjectError as exc:
                self._error = exc
                ns, name = object_key(self.raw)
                log.warning("skipping malformed %s %s: %s", exc.kind, f"{ns}/{name}" if ns else name, exc,
                            extra={"kind": exc.kind, "namespace": ns, "object": name,
                                   "causes": [f"{path}: {msg}" for path, msg in exc.causes]})
                if self._on_invalid is not None:
                    self._on_invalid(self.raw, exc)
        return self._model

    @property
    def error(self) -> InvalidObjectError | None:
        self.model()
        return self._error



class ObjectCache(Generic[M]):
    """Objects of one kind. ``index`` maps a raw object to the key it is filed under (its cluster)."""

    def __init__(
        self, model_type: type[M], *, index: Callable[[Object], Hashable | None] | None = None,
        on_change: OnChange | None = None, on_invalid: OnInvalid | None = None,
    ) -> None:
        self.model_type = model_type
        self._on_invalid = on_invalid
        self._index_of = index
        self._on_change = on_change or (lambda old, new: None)
        self._objects: dict[ObjectKey, Entry[M]] = {}
        self._by_index: defaultdict[Hashable, set[ObjectKey]] = defaultdict(set)
        self._tombstones: dict[ObjectKey, int] = {}
        self.synced = asyncio.Event()
        """Set after the first list: until then the cache does not know what exists."""

    def __len__(self) -> int:
        return len(self._objects)

    def feed(self, event: Snapshot | Change) -> None:
        """One item of the kind's watch stream."""
        if isinstance(event, Snapshot):
            self._snapshot(event.objects, resource_version({"metadata": {
                "resourceVersion": event.resource_version}}))
        elif event.type == "DELETED":
            self._remove(object_key(event.object), resource_version(event.object))
        else:
            self._accept(event.object)

    def wrote(self, raw: Object) -> None:
        """The server's answer to one of our writes: the newest version there is."""
        if is_gone(raw):
            self._remove(object_key(raw), resource_version(raw))
        else:
            self._accept(raw)

    def gone(self, namespace: str, name: str) -> None:
        """The server said the object no longer exists (our delete, or a 404)."""
        key = (namespace, name)
        entry = self._objects.get(key)
        self._remove(key, None if entry is None else entry.rv)

    def entry(self, namespace: str, name: str) -> Entry[M] | None:
        return self._objects.get((namespace, name))

    def entries(self) -> Iterator[Entry[M]]:
        return iter(list(self._objects.values()))

    def models(self, index: Hashable | None = None) -> list[M]:
        """Every well-formed object (of one index key when given), malformed ones left out."""
        keys = self._objects.keys() if index is None else sorted(self._by_index.get(index, ()))
        found = (self._objects[key].model() for key in keys)
        return [model for model in found if model is not None]

    def _snapshot(self, objects: list[Object], list_rv: int | None) -> None:
        listed = {object_key(raw): raw for raw in objects}
        for key, entry in list(self._objects.items()):
            newer_than_list = list_rv is not None and entry.rv is not None and entry.rv > list_rv
            if key not in listed and not newer_than_list:
                self._remove(key, None)
        for raw in listed.values():
            self._accept(raw)
        if list_rv is not None:
            self._tombstones = {k: rv for k, rv in self._tombstones.items() if rv > list_rv}
        self.synced.set()

    def _accept(self, raw: Object) -> None:
        key = object_key(raw)
        rv = resource_version(raw)
        old = self._objects.get(key)
        if rv is not None:
            if rv <= self._tombstones.get(key, -1):
                return
            if old is not None and old.rv is not None and rv <= old.rv:
                return
        self._tombstones.pop(key, None)
        self._objects[key] = Entry(raw, self.model_type, self._on_invalid)
        self._reindex(key, None if old is None else old.raw, raw)
        self._on_change(None if old is None else old.raw, raw)

    def _remove(self, key: ObjectKey, rv: int | None) -> None:
        old = self._objects.get(key)
        if old is not None and rv is not None and old.rv is not None and old.rv > rv:
            return  # re-created after this deletion
        if rv is not None:
            self._tombstones[key] = max(rv, self._tombstones.get(key, -1))
        if old is None:
            return
        del self._objects[key]
        self._reindex(key, old.raw, None)
        self._on_change(old.raw, None)

    def _reindex(self, key: ObjectKey, old: Object | None, new: Object | None) -> None:
        if self._index_of is None:
            return
        before = None if old is None else self._index_of(old)
        after = None if new is None else self._index_of(new)
        if before == after:
            return
        if before is not None:
            bucket = self._by_index[before]
            bucket.discard(key)
            if not bucket:
                del self._by_index[before]
        if after is not None:
            self._by_index[after].add(key)


def raw_field(raw: Object, *path: str) -> Any:
    """A nested field of a raw object, None when any level is missing or not an object."""
    value: Any = raw
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
