"""Object storage for the simulator: sqlite on disk, every object in memory, and the watch fan-out.

This is the simulator's etcd plus the API server's watch cache. Each write takes the next value of one global
integer resourceVersion, goes through to sqlite (WAL, so a restart on the same file keeps every object and
the counter), replaces the object in memory and is appended to a bounded history. Watchers are registered
synchronously with a write, so no event can fall between a watcher's start and its first live event.

Stored objects are never mutated in place: a write swaps in a new ``Stored``. That lets the history keep
old versions by reference (for watch replay and for paginated lists at a past resourceVersion) without
copying, and lets readers share one JSON encoding of each version.

Everything runs on the event loop's thread: writes are synchronous and enqueue their events before
returning, which is what makes a bookmark at the current resourceVersion truthful.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from testbed.sim.errors import ApiError, Cause, gone

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
Predicate = Callable[[Mapping[str, Any]], bool]
ObjectKey = tuple[str, str]
"""(namespace, name) inside one resource; namespace is "" for cluster-scoped objects."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('resourceVersion', 0);
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One version of one object. ``obj`` is shared and must never be mutated; ``body`` is its JSON."""

    obj: Mapping[str, Any]
    body: str
    rv: int

    def copy(self) -> dict[str, Any]:
        """A private deep copy for a caller (json is faster than copy.deepcopy on such trees)."""
        return cast(dict[str, Any], json.loads(self.body))


class WatchEvent:
    """One event as a watcher receives it. ``encoded`` is the JSON of ``{"type", "object"}``, built once
    and shared by every watcher that gets this event; ``object`` decodes a private copy on demand."""

    __slots__ = ("encoded", "type")

    def __init__(self, type_: str, encoded: bytes) -> None:
        self.type = type_
        self.encoded = encoded

    @classmethod
    def of(cls, type_: str, body: str) -> WatchEvent:
        return cls(type_, f'{{"type":"{type_}","object":{body}}}'.encode())

    @property
    def object(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.encoded)["object"])


@dataclass(frozen=True, slots=True)
class _Change:
    """A history entry, kept as JSON text only: a decoded version costs four times its text, and history
    is only read again to replay a watch or to list a page at a past version. ``body`` is the new version
    (for DELETED, the last one stamped with the deletion's version), ``prev`` the one it replaced."""

    resource: str
    namespace: str
    name: str
    type: ChangeType
    rv: int
    body: str
    prev: str | None


class _Delivery:
    """One change on its way to watchers: both versions decoded once, each kind of event encoded once.
    Entering a watcher's filter is ADDED; leaving it is DELETED with the previous content at this change's
    version, as the API server's watch cache reports it."""

    __slots__ = ("_events", "change", "new", "prev")

    def __init__(self, change: _Change, new: Mapping[str, Any] | None = None,
                 prev: Mapping[str, Any] | None = None) -> None:
        self.change = change
        self.new = json.loads(change.body) if new is None else new
        self.prev = prev if prev is not None or change.prev is None else json.loads(change.prev)
        self._events: dict[str, WatchEvent] = {}

    def event(self, type_: ChangeType) -> WatchEvent:
        event = self._events.get(type_)
        if event is None:
            body = self.change.body
            if type_ == "DELETED" and self.change.type == "MODIFIED" and self.prev is not None:
                body = _stamp(self.prev, self.change.rv)
            event = self._events[type_] = WatchEvent.of(type_, body)
        return event


def _stamp(obj: Mapping[str, Any], rv: int) -> str:
    """The JSON of ``obj`` with ``metadata.resourceVersion`` set to ``rv``."""
    return json.dumps({**obj, "metadata": {**obj.get("metadata", {}), "resourceVersion": str(rv)}},
                      separators=(",", ":"))


class Watcher:
    """One watch stream: its filter, the events owed to it, and its consumer side (async-iterate it).

    Initial and replayed events wait in an unbounded backlog (there are at most as many as objects or kept
    changes); live ones in a queue of ``queue_size``. A watcher that falls that far behind is closed, as the
    API server closes slow watchers, so one stuck client cannot grow memory without bound. Its consumer
    then stops at once: everything it got is a gap-free prefix, so it can resume from its last version.
    """

    def __init__(self, store: Store, resource: str, *, namespace: str | None, name: str | None,
                 predicate: Predicate | None, queue_size: int, bookmark: Mapping[str, Any] | None,
                 bookmark_interval: float | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self._store = store
        self._predicate = predicate
        self._bookmark = bookmark
        self._interval = bookmark_interval
        self.backlog: collections.deque[WatchEvent] = collections.deque()
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue(queue_size)
        self.closed = False

    def passes(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        return self._predicate is None or self._predicate(obj)

    def select(self, delivery: _Delivery) -> WatchEvent | None:
        """The event this watcher sees for a change, if any."""
        now = delivery.change.type != "DELETED" and self.passes(delivery.new)
        before = delivery.prev is not None and self.passes(delivery.prev)
        if now:
            return delivery.event("MODIFIED" if before else "ADDED")
        return delivery.event("DELETED") if before else None

    def push(self, event: WatchEvent) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.closed = True

    def close(self) -> None:
        """End the stream: the consumer stops at its next read."""
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> WatchEvent:
        if self.backlog and not self.closed:
            return self.backlog.popleft()
        event: WatchEvent | None = None
        if not self.closed:
            try:
                async with asyncio.timeout(self._interval):
                    event = await self._queue.get()
            except TimeoutError:
                return self._bookmark_event()
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stop watching (a client that went away); idempotent."""
        self.closed = True
        self._store.unwatch(self)

    def _bookmark_event(self) -> WatchEvent:
        """Safe at the current version: every earlier change was enqueued when it was written, and the
        queue is empty."""
        meta = {"resourceVersion": str(self._store.resource_version)}
        return WatchEvent.of("BOOKMARK", json.dumps({**(self._bookmark or {}), "metadata": meta}))


class Store:
    """Objects of every resource, keyed by (resource key, namespace, name), with history and watchers.

    ``path`` None keeps everything in memory. At most ``history_limit`` events, and at most
    ``history_bytes`` of their JSON, are kept for watch replay and paginated lists: a count alone lets a
    few large objects written often (a machine with thousands of item slots) take gigabytes. Older ones
    are forgotten as a compaction would, so a watch from before them gets 410. ``queue_size`` bounds each
    watcher's backlog.
    """

    def __init__(self, path: Path | str | None = None, *, history_limit: int = 10_000,
                 history_bytes: int = 64 << 20, queue_size: int = 10_000) -> None:
        self._db = None if path is None else _open(Path(path))
        self._rv = 0
        self._objects: dict[str, dict[ObjectKey, Stored]] = collections.defaultdict(dict)
        self._by_namespace: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
        if self._db is not None:
            (self._rv,) = self._db.execute(
                "SELECT value FROM counters WHERE name = 'resourceVersion'").fetchone()
            for resource, namespace, name, body in self._db.execute(
                    "SELECT resource, namespace, name, body FROM objects"):
                obj = json.loads(body)
                stored = Stored(obj, body, int(obj["metadata"]["resourceVersion"]))
                self._remember(resource, namespace, name, stored)
        self._history: collections.deque[_Change] = collections.deque()
        self._history_limit = history_limit
        self._history_bytes_limit = history_bytes
        self._history_bytes = 0
        """Characters of JSON the history holds (bodies and previous versions)."""
        self._floor = self._rv
        """Every change with a resourceVersion above this is still in the history."""
        self._revisions: dict[str, int] = {}
        self._queue_size = queue_size
        self._watchers: dict[tuple[str, str | None], set[Watcher]] = collections.defaultdict(set)
        """By (resource, name): a watch on one object by name (every agent's) costs no other write a thing."""

    @property
    def resource_version(self) -> int:
        return self._rv

    def revision(self, resource: str) -> int:
        """The resourceVersion of the last change to ``resource`` (the start-up version if none since)."""
        return self._revisions.get(resource, self._floor)

    def get(self, resource: str, namespace: str, name: str) -> Stored | None:
        return self._objects[resource].get((namespace, name))

    def objects(self, resource: str) -> Mapping[ObjectKey, Stored]:
        """The live objects of one resource (read-only view)."""
        return self._objects[resource]

    def in_namespace(self, namespace: str) -> list[tuple[str, Stored]]:
        """(resource, object) for every object in ``namespace``."""
        return [(resource, self._objects[resource][(namespace, name)])
                for resource, name in sorted(self._by_namespace.get(namespace, ()))]

    def has_objects(self, namespace: str) -> bool:
        return bool(self._by_namespace.get(namespace))

    def snapshot(self, resource: str, rv: int) -> dict[ObjectKey, Stored]:
        """The objects of ``resource`` as they were at ``rv``, rebuilt by undoing the newer history;
        410 Expired when that part of the history is gone (a continue token that outlived compaction)."""
        if rv < self._floor:
            raise gone("The provided continue parameter is too old to display a consistent list result. "
                       "You can start a new list without the continue parameter.")
        state = dict(self._objects[resource])
        for change in reversed(self._history_after(rv)):
            key = (change.namespace, change.name)
            if change.resource == resource and change.prev is None:
                state.pop(key, None)
            elif change.resource == resource and change.prev is not None:
                obj = json.loads(change.prev)
                state[key] = Stored(obj, change.prev, int(obj["metadata"]["resourceVersion"]))
        return state

    def put(self, resource: str, obj: dict[str, Any]) -> Stored:
        """Store ``obj`` (which the store now owns) under the next resourceVersion; ADDED or MODIFIED."""
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        rv = self._rv + 1
        meta["resourceVersion"] = str(rv)
        body = json.dumps(obj, separators=(",", ":"))
        self._persist(rv, "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
                      (resource, namespace, name, body))
        prev = self.get(resource, namespace, name)
        stored = Stored(obj, body, rv)
        self._remember(resource, namespace, name, stored)
        change = _Change(resource, namespace, name, "ADDED" if prev is None else "MODIFIED", rv, body,
                         None if prev is None else prev.body)
        self._record(_Delivery(change, obj, None if prev is None else prev.obj))
        return stored

    def delete(self, resource: str, namespace: str, name: str) -> Stored:
        """Remove an existing object; its DELETED event carries its last content at the new version."""
        prev = self._objects[resource][(namespace, name)]
        rv = self._rv + 1
        self._persist(rv, "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
                      (resource, namespace, name))
        del self._objects[resource][(namespace, name)]
        self._by_namespace[namespace].discard((resource, name))
        change = _Change(resource, namespace, name, "DELETED", rv, _stamp(prev.obj, rv), prev.body)
        self._record(_Delivery(change, prev.obj, prev.obj))
        return prev

    @property
    def history_size(self) -> tuple[int, int]:
        """(events, characters of JSON) the watch history holds."""
        return len(self._history), self._history_bytes

    def compact(self) -> None:
        """Forget the history: watches and continue tokens from before now get 410."""
        self._history.clear()
        self._history_bytes = 0
        self._floor = self._rv

    def close_watchers(self, resource: str | None = None) -> None:
        """End every watch on ``resource`` (its type is gone), or every watch."""
        for key in [k for k in self._watchers if resource in (None, k[0])]:
            for watcher in self._watchers.pop(key):
                watcher.close()

    def close(self) -> None:
        self.close_watchers()
        if self._db is not None:
            self._db.close()

    def watch(self, resource: str, *, namespace: str | None = None, name: str | None = None,
              predicate: Predicate | None = None, since: int | None = None,
              bookmark: Mapping[str, Any] | None = None, bookmark_interval: float | None = None) -> Watcher:
        """Start a watch. ``since`` None: ADDED for every current match first; else replay the changes
        after ``since`` (410 if they are no longer all kept, 504 if ``since`` is in the future). With
        ``bookmark_interval``, an idle watcher gets a BOOKMARK built on ``bookmark`` (kind, apiVersion)."""
        if since is not None:
            self._check_since(since)
        watcher = Watcher(self, resource, namespace=namespace, name=name, predicate=predicate,
                          queue_size=self._queue_size, bookmark=bookmark, bookmark_interval=bookmark_interval)
        if since is None:
            objects = self._objects[resource]
            keys = sorted(objects if name is None else (k for k in objects if k[1] == name))
            watcher.backlog.extend(WatchEvent.of("ADDED", objects[k].body) for k in keys
                                   if watcher.passes(objects[k].obj))
        else:
            for change in self._history_after(since):
                if change.resource == resource and name in (None, change.name):
                    event = watcher.select(_Delivery(change))
                    if event is not None:
                        watcher.backlog.append(event)
        self._watchers[(resource, name)].add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        key = (watcher.resource, watcher.name)
        watchers = self._watchers.get(key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[key]

    def _check_since(self, since: int) -> None:
        if since > self._rv:
            raise too_large(since, self._rv)
        if since < self._floor:
            raise gone(f"too old resource version: {since} ({self._floor})")

    def _history_after(self, rv: int) -> list[_Change]:
        """The kept changes newer than ``rv``, oldest first (found from the newest end)."""
        return list(itertools.takewhile(lambda c: c.rv > rv, reversed(self._history)))[::-1]

    def _persist(self, rv: int, statement: str, params: tuple[str, ...]) -> None:
        """One change and the new counter in one transaction; memory follows only once it is stored."""
        if self._db is not None:
            with self._db:
                self._db.execute(statement, params)
                self._db.execute("UPDATE counters SET value = ? WHERE name = 'resourceVersion'", (rv,))
        self._rv = rv

    def _remember(self, resource: str, namespace: str, name: str, stored: Stored) -> None:
        self._objects[resource][(namespace, name)] = stored
        self._by_namespace[namespace].add((resource, name))

    def _record(self, delivery: _Delivery) -> None:
        change = delivery.change
        self._history.append(change)
        self._history_bytes += _weight(change)
        while len(self._history) > self._history_limit or self._history_bytes > self._history_bytes_limit:
            dropped = self._history.popleft()
            self._history_bytes -= _weight(dropped)
            self._floor = dropped.rv
        self._revisions[change.resource] = change.rv
        for key in ((change.resource, None), (change.resource, change.name)):
            for watcher in self._watchers.get(key, ()):
                event = watcher.select(delivery)
                if event is not None:
                    watcher.push(event)


def _weight(change: _Change) -> int:
    return len(change.body) + len(change.prev or "")


def _open(path: Path) -> sqlite3.Connection:
    # Created 0600 before sqlite opens it: the store holds tokens, and sqlite gives its -wal and -shm files
    # the database file's mode (its own default would be 0644 for all three).
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA journal_mode=WAL")
    # Durable across a crash of the process (not of the machine), which is what a simulator needs, at a
    # fraction of the cost of an fsync per write.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


def too_large(rv: int, current: int) -> ApiError:
    """504 for a resourceVersion the store has not reached yet (the API server waits, then says this)."""
    return ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {current}",
                    causes=(Cause("", "ResourceVersionTooLarge", "Too large resource version"),),
                    retry_after_seconds=1)
