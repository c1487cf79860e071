"""Applying a plan's actions: in order, rate limited, never a write the cache says is already done.

A plan is computed from the caches; by the time its writes get their tokens the caches may have moved on.
So each action is checked against the cache just before it is sent (and again after the token wait; the
pure rules are in ``regional.planning.write_rules``):

- a merge patch whose every field the object already has, a create of an object that exists, a delete of
  one that is gone or going: dropped, the write has been superseded;
- a patch identical to the last one sent to that object, while the object is still at the version that
  write produced: dropped. The server took it; a field it pruned or defaulted would otherwise make every
  re-plan send it again.

The server's answer to each write goes into the cache at once, so the next plan never repeats a write whose
watch event has not arrived. A plan's writes start in its order, several at once (one object's writes one
after the other); the first that fails stops those not started yet (later actions may depend on it): 409
and 404 put what the server knows into the cache and ask for an immediate re-plan; anything else asks for
a retry after a backoff. Before every write the fence is asked whether this replica still leads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.adapters.followed import FollowedObjects, raw_field
from agent.adapters.kube import Kube, KubeError, Object, Resource
from agent.api.models import VERSION, ApiObject
from regional.planning.actions import Action, Create, Delete, Patch
from regional.planning.write_rules import EVENT_REASONS, KINDS, digest, group_of, notable, reflects, target
from regional.scheduler.leadership import LeaseLostError
from regional.scheduler.recording import EventRecorder, Involved
from regional.scheduler.throttling import RateLimiter

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Failure:
    """The write that ended a plan; ``replan_now`` when the cache was corrected and a backoff is pointless."""

    action: Action
    error: KubeError
    replan_now: bool


class Writer:
    """Sends actions for every cluster of one leadership term; ``counts`` tallies writes by verb and kind."""

    def __init__(
        self, kube: Kube, caches: Mapping[str, FollowedObjects[Any]], limiter: RateLimiter, *,
        fence: Callable[[], bool], recorder: EventRecorder | None = None, in_flight: int = 16,
    ) -> None:
        self.kube, self.caches, self.limiter = kube, caches, limiter
        self.fence, self.recorder = fence, recorder
        self.in_flight = in_flight
        """Writes of one plan sent at once: one at a time, a thousand machines' writes would take a thousand
        round trips however high the rate limit."""
        self.counts: Counter[str] = Counter()
        """``"patch lcmmachines"``, ``"patch lcmclusters/status"``, ``"create lcmclusterstates"``...; and
        ``"superseded"``: actions dropped because the cache showed them done."""
        self.failures: Counter[tuple[str, str, int]] = Counter()
        """Refused writes by verb, resource (``lcmclusters/status``) and HTTP status (0: no answer)."""
        self._last: dict[tuple[str, str, str, str], tuple[str, int | None]] = {}

    async def apply(self, actions: tuple[Action, ...]) -> Failure | None:
        """Start the actions in order, up to ``in_flight`` at once; the first failure stops those not yet
        started and is returned once the running ones have finished. Writes to one object wait for the
        earlier ones to it, so an object sees the plan's writes in the plan's order."""
        running: set[asyncio.Task[Failure | None]] = set()
        last: dict[tuple[str, str, str], asyncio.Task[Failure | None]] = {}
        failures: list[Failure] = []

        def reap(done: Iterable[asyncio.Task[Failure | None]]) -> None:
            for task in done:
                running.discard(task)
                if (failure := task.result()) is not None:
                    failures.append(failure)

        try:
            for action in actions:
                while len(running) >= self.in_flight and not failures:
                    reap((await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED))[0])
                if failures:
                    break
                resource, namespace, name, _ = target(action)
                task = asyncio.create_task(self._apply_one(action, last.get((resource, namespace, name))))
                running.add(task)
                last[(resource, namespace, name)] = task
            if running:
                reap((await asyncio.wait(running))[0])
        finally:
            for task in running:
                task.cancel()
        return failures[0] if failures else None

    async def _apply_one(self, action: Action, after: asyncio.Task[Failure | None] | None) -> Failure | None:
        if after is not None and await asyncio.shield(after) is not None:
            return None  # an earlier write to this object failed: that failure ends the plan
        if self._superseded(action):
            return None
        await self.limiter.acquire()
        if self._superseded(action):
            return None
        if not self.fence():
            raise LeaseLostError("the lease was lost; not writing")
        try:
            answer = await self._send(action)
        except KubeError as exc:
            return await self._failed(action, exc)
        self._accepted(action, answer)
        return None

    def _superseded(self, action: Action) -> bool:
        cache = self.caches[action.resource]
        resource, namespace, name, sub = target(action)
        entry = cache.entry(namespace, name)
        if isinstance(action, Create):
            done = entry is not None
        elif isinstance(action, Delete):
            done = entry is None or bool(raw_field(entry.raw, "metadata", "deletionTimestamp"))
        else:
            last = self._last.get((resource, namespace, name, sub))
            done = entry is not None and (
                reflects(entry.raw, action.patch)
                or (last is not None and last[1] == entry.rv and last[0] == digest(action.patch)))
        if done:
            self.counts["superseded"] += 1
        return done

    async def _send(self, action: Action) -> Object:
        res = Resource(group_of(action.resource), VERSION, action.resource)
        if isinstance(action, Patch):
            return await self.kube.patch(res, action.namespace, action.name, dict(action.patch),
                                         subresource=action.subresource or "")
        if isinstance(action, Create):
            return await self.kube.create(res, action.namespace, action.body)
        return await self.kube.delete(res, action.namespace, action.name)

    def _accepted(self, action: Action, answer: Object) -> None:
        cache = self.caches[action.resource]
        resource, namespace, name, sub = target(action)
        verb, kind = _kind(action)
        self.counts[f"{verb} {kind}"] += 1
        if isinstance(action, Delete) and not raw_field(answer, "metadata", "finalizers"):
            cache.gone(namespace, name)
            self._last.pop((resource, namespace, name, sub), None)
        else:
            cache.answered(answer)
        if isinstance(action, Patch):
            entry = cache.entry(namespace, name)
            self._last[(resource, namespace, name, sub)] = (
                digest(action.patch), None if entry is None else entry.rv)
        log.info("%s %s %s/%s: %s", verb, KINDS[resource], namespace, name, action.reason or "-",
                 extra={"verb": verb, "kind": KINDS[resource], "namespace": namespace, "object": name})
        if self.recorder is not None and notable(action):
            uid = str(raw_field(answer, "metadata", "uid") or "")
            stuck = isinstance(action, Patch) and raw_field(dict(action.patch), "status", "lcmOperationStuck")
            involved = Involved(KINDS[resource], namespace, name, uid, f"{group_of(resource)}/{VERSION}")
            self.recorder.record(involved, EVENT_REASONS[type(action)], action.reason,
                                 "Warning" if stuck is True else "Normal")

    async def _failed(self, action: Action, exc: KubeError) -> Failure | None:
        """What a refused write means for the plan; None when the refusal is the wanted outcome."""
        cache = self.caches[action.resource]
        _, namespace, name, _ = target(action)
        if exc.status == 404 and isinstance(action, Delete):
            cache.gone(namespace, name)
            return None
        self.failures[(*_kind(action), exc.status)] += 1
        if exc.status == 404 and not isinstance(action, Create):
            cache.gone(namespace, name)
            return Failure(action, exc, replan_now=True)
        if exc.status == 409:
            replan_now = await self._refresh(action, cache, namespace, name)
            return Failure(action, exc, replan_now=replan_now)
        log.error("%s of %s %s/%s refused: %s", type(action).__name__.lower(), KINDS[action.resource],
                  namespace, name, exc, extra={"kind": KINDS[action.resource], "namespace": namespace,
                                               "object": name, "status": exc.status})
        if self.recorder is not None and exc.status == 422:
            self.recorder.record(Involved(KINDS[action.resource], namespace, name), "WriteRefused",
                                 f"{action.reason or type(action).__name__}: {exc}", "Warning")
        return Failure(action, exc, replan_now=False)

    async def _refresh(
        self, action: Action, cache: FollowedObjects[ApiObject], namespace: str, name: str,
    ) -> bool:
        """A conflict means the cache is behind: read the object so the re-plan starts from the truth."""
        try:
            res = Resource(group_of(action.resource), VERSION, action.resource)
            cache.answered(await self.kube.get(res, namespace, name))
        except KubeError as exc:
            if exc.status != 404:
                return False
            cache.gone(namespace, name)
        return True


def _kind(action: Action) -> tuple[str, str]:
    """The verb and the resource (a subresource after a slash) a write is counted under."""
    resource, _, _, sub = target(action)
    return type(action).__name__.lower(), f"{resource}/{sub}" if sub else resource
