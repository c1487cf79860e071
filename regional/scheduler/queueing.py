"""The work queue of clusters to plan: coalescing, one run per cluster at a time, delayed re-runs.

client-go's workqueue semantics, which every controller relies on:

- a key added while it waits runs once (a burst of a thousand status writes is one plan, not a thousand);
- a key added while it runs is not run concurrently: it is marked dirty and queued again when ``done``;
- ``add_after`` runs a key later (the plan's ``requeue_after``; the earliest request wins);
- ``retry`` runs it again after a per-key backoff that ``forget`` resets, so a cluster whose writes keep
  failing does not spin while the others go on;
- ``hold`` keeps a key from running again for a while, however often it is asked for (it still runs once
  after), so that planning a big cluster cannot take a whole core.

Different keys run concurrently, up to the number of workers ``serve`` starts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from agent.kits.backoff import Backoff
from agent.kits.tasks import cancel_and_wait

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, backoff: Backoff | None = None,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._not_before: dict[K, float] = {}
        self.backoff = backoff or Backoff(base=0.5, cap=60.0)
        self._uniform = uniform

    def __len__(self) -> int:
        """Keys waiting to run (running keys not counted)."""
        return self._ready.qsize()

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        held = self._not_before.get(key)
        if held is not None:
            wait = held - asyncio.get_running_loop().time()
            if wait > 0 and key not in self._processing:
                self.add_after(key, wait)
                return
            if wait <= 0:
                del self._not_before[key]
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def retry(self, key: K) -> float:
        """Run ``key`` again after its backoff (longer with each failure); returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = self.backoff.delay(failures, self._uniform)
        self.add_after(key, delay)
        return delay

    def hold(self, key: K, seconds: float) -> None:
        """``key`` runs again no sooner than ``seconds`` from now."""
        if seconds > 0:
            self._not_before[key] = asyncio.get_running_loop().time() + seconds

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts the backoff from the beginning."""
        self._failures.pop(key, None)

    async def get(self) -> K:
        key = await self._ready.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        """Drops the pending timers (the queue's owner is going away)."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)


async def serve(queue: WorkQueue[K], handle: Callable[[K], Awaitable[None]], workers: int) -> None:
    """Run ``handle`` on queued keys with ``workers`` concurrent workers, until cancelled.

    ``handle`` owns its errors; one that escapes is logged and the key retried, so a bug in one cluster's
    plan does not stop the others.
    """

    async def worker() -> None:
        while True:
            key = await queue.get()
            try:
                await handle(key)
            except Exception:
                log.exception("planning %s failed; retrying in %.1fs", key, queue.retry(key))
            finally:
                queue.done(key)

    tasks = [asyncio.create_task(worker(), name=f"scheduler-worker-{n}") for n in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(*tasks)
        queue.close()
