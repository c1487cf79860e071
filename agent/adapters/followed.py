"""Followed objects: every object of one kind as last seen, newest version wins, optionally indexed.

The one facility behind everything that follows objects: the agent's own LCMMachine (``daemon.own_machine``),
the LCMClusterStates a control machine executes (``daemon.swarm_executor``) and the scheduler's five kinds.
Two sources feed it: the kind's watch (``follow``: ``Snapshot`` after every list, ``Change`` events) and the
server's answers to the holder's own requests (``answered``: a write's answer, or a fresh read). Whichever
source brings a version, it is taken only when it is newer than the one held: an answer can arrive after
the watch has already delivered a later write of someone else's (the scheduler answering an agent's status
with new items), and taking it then would bring back a spec that is gone. Watch events older than our own
write are dropped the same way (kopf's rule: never decide on a version from before your own write), which
keeps a consumer from repeating a write whose watch event has not arrived: the objects have already seen it.
resourceVersions are compared as integers (etcd revisions, and the simulator's); an object whose version
does not parse is simply replaced.

``version`` counts accepted changes: a consumer remembers the one it decided on and ``wait``s for it to
move. ``write`` is the one write path: a patch, a ``Retry`` policy, and the answer taken in.

Objects are parsed into the API models lazily, once per version, when a consumer first needs them: a
fleet's status writes arrive far more often than a cluster is planned. A malformed object is logged once
per version, with every bad field, and left out; the previous good version is not used either (acting on
stale data would be worse than waiting for a fix).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, NoReturn, TypeVar

from agent.adapters.kube import Kube, KubeError, Object, Resource
from agent.adapters.watching import Change, Snapshot, WatchSettings, watch_resource
from agent.api.models import ApiObject, InvalidObjectError
from agent.kits.backoff import Backoff
from agent.kits.tasks import first_of

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



class FollowedObjects(Generic[M]):
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
        """Set after the first list: until then the holder does not know what exists."""
        self.version = 0
        """Counts accepted changes; a consumer waits for it to differ from the one it decided on."""
        self._moved = asyncio.Event()

    def __len__(self) -> int:
        return len(self._objects)

    async def follow(
        self, kube: Kube, res: Resource, namespace: str = "", *, field_selector: str = "",
        label_selector: str = "", settings: WatchSettings | None = None,
    ) -> NoReturn:
        """Feed from the kind's watch until cancelled. The watch absorbs every API failure, so if it ends
        anyway (a bug) this raises instead of leaving consumers acting on frozen objects."""
        stream = watch_resource(kube, res, namespace, field_selector=field_selector,
                                label_selector=label_selector, settings=settings)
        async for event in stream:
            self.feed(event)
        raise RuntimeError(f"the watch of {res.plural} ended")

    async def moved_from(self, seen: int) -> None:
        """Returns once ``version`` differs from ``seen`` (at once if it already does)."""
        if self.version == seen:
            await self._moved.wait()

    async def wait(self, seen: int, stopping: asyncio.Event, seconds: float | None) -> None:
        """Until the objects move past ``seen``, ``stopping`` is set, or ``seconds`` pass."""
        await first_of(self.moved_from(seen), stopping.wait(), seconds=seconds)

    def feed(self, event: Snapshot | Change) -> None:
        """One item of the kind's watch stream."""
        if isinstance(event, Snapshot):
            self._snapshot(event.objects, resource_version({"metadata": {
                "resourceVersion": event.resource_version}}))
        elif event.type == "DELETED":
            self._remove(object_key(event.object), resource_version(event.object))
        else:
            self._accept(event.object)

    def answered(self, raw: Object) -> None:
        """The server's answer to one of our own requests (a write, or a fresh read), taken if it is newer
        than what is held (the watch may already have brought a later version)."""
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
        self._bump()

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
        self._bump()

    def _bump(self) -> None:
        self.version += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

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


@dataclass(frozen=True)
class Retry:
    """How hard one write tries before it gives up and returns None.

    A write the server refuses for good (400: malformed, 404: the object is gone, 422: invalid content) is
    never repeated, whatever the policy: this very patch can never land, and retrying would only spin. Any
    other failure (the API away, 409, 429, 5xx) is retried after the backoff's jittered delay, up to
    ``attempts`` tries in all (None: until it lands), and never once ``stopping`` is set."""

    attempts: int | None = 1


ONCE = Retry(1)
"""Best effort: a write whose content is written again anyway when it next changes (conditions, facts)."""
UNTIL_LANDED = Retry(None)
"""Outcomes that must reach the status (an item's result, a registration): retried until they land."""

async def write(
    kube: Kube, res: Resource, namespace: str, name: str, patch: Mapping[str, Any], *,
    into: FollowedObjects[Any], retry: Retry, backoff: Backoff, stopping: asyncio.Event | None = None,
    subresource: Literal["", "status"] = "status", what: str = "status write",
    fields: Mapping[str, Any] | None = None,
) -> Object | None:
    """The one write path for followed objects: a merge patch, retried by ``retry``, its answer taken into
    ``into`` (so no decision is made on a version from before it). Returns the answer, or None when the
    write gave up (logged as ``what`` failed, with ``fields`` as structured fields). A 404 leaves ``into``
    as it is: the watch says when an object is gone, and a refused write is no proof of that."""
    extra = dict(fields or {})
    failures = 0
    while True:
        try:
            raw = await kube.patch(res, namespace, name, dict(patch), subresource=subresource)
        except KubeError as exc:
            failures += 1
            hopeless = exc.status in (400, 404, 422)
            spent = retry.attempts is not None and failures >= retry.attempts
            if hopeless or spent or (stopping is not None and stopping.is_set()):
                log.warning("%s failed, giving up for now: %s", what, exc, extra=extra)
                return None
            delay = backoff.delay(failures - 1, random.uniform)
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay, extra=extra)
            await asyncio.sleep(delay)
            continue
        into.answered(raw)
        return raw
