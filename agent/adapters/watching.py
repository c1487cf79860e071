"""Watching done right: list, watch from the list's version, follow bookmarks, relist on 410, back off.

Agent and scheduler both consume an endless stream of ``Snapshot`` (after every list: the whole truth,
so a consumer can notice objects deleted while it was not watching) and ``Change`` events. Everything that
can go wrong on the way (an expired version, a dropped connection, a silent stream, a 5xx, an API server
that is down) is absorbed here with a jittered, capped backoff, so consumers never see a transport error.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from agent.adapters.kube import Kube, KubeError, Object, Resource
from agent.kits.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchSettings:
    """Timings of one watch; seconds throughout."""

    server_timeout: int = 300
    """``timeoutSeconds`` asked of the server; each stream gets up to 20% more, jittered, so that a fleet
    of watchers does not reconnect in lockstep (client-go does the same)."""
    inactivity_timeout: float = 150.0
    """A stream silent for this long (no event, no bookmark) is treated as dead: a half-open TCP connection
    would otherwise hang the watcher forever. Must exceed the server's bookmark interval (60 s on k8s)."""
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=30.0))
    """Delay before a retry after a failed list or watch."""


@dataclass(frozen=True)
class Snapshot:
    """Every object matching the watch, as listed at ``resource_version``."""

    objects: list[Object]
    resource_version: str


@dataclass(frozen=True)
class Change:
    """One ADDED, MODIFIED or DELETED event."""

    type: str
    object: Object


def _rv(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


async def watch_resource(
    kube: Kube, res: Resource, namespace: str = "", *, field_selector: str = "", label_selector: str = "",
    settings: WatchSettings | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> AsyncIterator[Snapshot | Change]:
    """An endless stream of snapshots and changes; cancel the consuming task (or close it) to stop."""
    cfg = settings or WatchSettings()
    rv = ""
    failures = 0
    what = " ".join(filter(None, [res.plural, namespace, field_selector, label_selector]))
    while True:
        try:
            if not rv:
                listing = await kube.list_objects(
                    res, namespace, field_selector=field_selector, label_selector=label_selector)
                rv = _rv(listing)
                failures = 0
                yield Snapshot(list(listing.get("items", [])), rv)
            timeout = int(cfg.server_timeout * uniform(1.0, 1.2))
            stream = kube.watch(
                res, namespace, resource_version=rv, field_selector=field_selector,
                label_selector=label_selector, timeout_seconds=timeout,
                inactivity_timeout=cfg.inactivity_timeout)
            async with aclosing(stream):
                async for event in stream:
                    failures = 0
                    obj = event["object"]
                    rv = _rv(obj) or rv
                    if event["type"] != "BOOKMARK":
                        yield Change(event["type"], obj)
        except KubeError as exc:
            if exc.status == 410:
                log.info("watch of %s expired at resourceVersion %s; relisting", what, rv)
                rv = ""
                continue
            delay = cfg.backoff.delay(failures, uniform)
            failures += 1
            log.warning("watch of %s failed (%s); retrying in %.1fs", what, exc, delay,
                        extra={"attempt": failures})
            await sleep(delay)
