"""One leadership term of the scheduler: watch the kinds, plan a cluster whenever one of its objects
changes, apply the plan.

Each kind has one watch (all namespaces, or the configured one) feeding one cache; LCMMachines and
LCMClusterStates are indexed by their cluster. Any change enqueues the clusters it concerns: a machine's or
cluster state's own cluster (both clusters when it moved), the cluster itself (also for its
GracefulRebootRequest, named like it), and every cluster for a ClusterRelease or KaaSRelease (they are few,
rarely created and never changed). A release's Mirantis fields lcm-agent does not act on (helm, images...) are
kept and named once in the log. Planning starts only once every cache has its first list, so no plan is made
from half the truth. The planner is pure and gets what the caches hold right now; its actions go through the
``Writer``; its ``requeue_after`` schedules the next look.

Everything here is built afresh for each term: a replica that lost the lease and won it back relists, and
never trusts a cache that stopped being fed while it was not leading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Any

from agent.adapters.followed import FollowedObjects, object_key, raw_field
from agent.adapters.kube import Kube, Object, Resource
from agent.api.models import (
    IGNORED_RELEASE_FIELDS,
    VERSION,
    ClusterRelease,
    GracefulRebootRequest,
    InvalidObjectError,
    KaaSRelease,
    LCMCluster,
    LCMClusterState,
    LCMMachine,
)
from agent.kits.tasks import first_of
from regional.planning.actions import Action, Plan, PlanInput
from regional.planning.durations import Key, Norm
from regional.planning.notices import Notice, cluster_notices, machine_notices
from regional.planning.reboot_requests import unclaimed
from regional.scheduler.leadership import LeaseLostError
from regional.scheduler.maintenance_routing import MaintenanceCaches
from regional.scheduler.queueing import WorkQueue, serve
from regional.scheduler.recording import EventRecorder, Involved
from regional.scheduler.settings import SchedulerSettings
from regional.scheduler.throttling import RateLimiter
from regional.scheduler.writing import Writer

log = logging.getLogger(__name__)

PlanFunction = Callable[[PlanInput], Plan]
ClusterKey = tuple[str, str]
"""(namespace, LCMCluster name)."""


def cluster_of(raw: Object) -> Hashable | None:
    """The cluster an LCMMachine or LCMClusterState belongs to, read from the raw object so that a malformed
    member still finds its cluster (which then plans without it, saying why)."""
    name = raw_field(raw, "spec", "clusterName")
    return (object_key(raw)[0], name) if isinstance(name, str) and name else None


class Controller:
    def __init__(
        self, kube: Kube, settings: SchedulerSettings, plan: PlanFunction, *, fence: Callable[[], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        item_norms: Callable[[], Mapping[Key, Norm]] = dict,
        on_plan: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.kube, self.settings, self.plan, self.clock = kube, settings, plan, clock
        self.item_norms = item_norms
        """The fleet's item durations as the MQTT roll-up knows them now (``ItemDurations.norms``)."""
        self.on_plan = on_plan
        """Told each planner run's wall time (the metrics' histogram)."""
        self.queue: WorkQueue[ClusterKey] = WorkQueue()
        self.releases = FollowedObjects(ClusterRelease, on_change=self._release_changed,
                                    on_invalid=self._invalid)
        self.kaas_releases = FollowedObjects(KaaSRelease, on_change=self._release_changed,
                                         on_invalid=self._invalid)
        self._named: set[str] = set()
        """Releases whose unused fields were already logged."""
        self.clusters = FollowedObjects(LCMCluster, on_change=self._cluster_changed, on_invalid=self._invalid)
        self.machines = FollowedObjects(LCMMachine, index=cluster_of, on_change=self._machine_changed,
                                    on_invalid=self._invalid)
        self.states = FollowedObjects(LCMClusterState, index=cluster_of, on_change=self._member_changed,
                                  on_invalid=self._invalid)
        self.maintenance = MaintenanceCaches(self.machines, self.clusters,
                                             on_change=self._maintenance_changed, on_invalid=self._invalid)
        self.reboot_requests = FollowedObjects(GracefulRebootRequest, on_change=self._cluster_changed,
                                               on_invalid=self._invalid)
        """Named like their cluster: a change plans the cluster of the same key."""
        self.recorder = EventRecorder(kube, instance=settings.lease.identity, qps=settings.events.qps,
                                      burst=settings.events.burst, fence=fence)
        caches: dict[str, FollowedObjects[Any]] = {
            "lcmmachines": self.machines, "lcmclusters": self.clusters, "lcmclusterstates": self.states,
            **{model.PLURAL: cache for model, cache in self.maintenance.followed()},
            "gracefulrebootrequests": self.reboot_requests}
        self.writer = Writer(kube, caches, RateLimiter(settings.writes.qps, settings.writes.burst),
                             fence=fence, recorder=self.recorder, in_flight=settings.writes_in_flight)
        self.plans = 0
        self.plan_seconds = 0.0
        """Wall time spent inside the planner (it is pure CPU: the scheduler's main compute cost)."""
        self._fenced = asyncio.Event()

    async def run(self) -> None:
        """Until cancelled; raises ``LeaseLostError`` when a write found the lease lost before the elector."""
        watched: list[tuple[type[Any], FollowedObjects[Any]]] = [
            (ClusterRelease, self.releases), (KaaSRelease, self.kaas_releases), (LCMCluster, self.clusters),
            (LCMMachine, self.machines), (LCMClusterState, self.states), *self.maintenance.followed(),
            (GracefulRebootRequest, self.reboot_requests)]
        tasks = [asyncio.create_task(self._watch(model, cache), name=f"watch-{model.PLURAL}")
                 for model, cache in watched]
        tasks.append(asyncio.create_task(self.recorder.run(), name="events"))
        try:
            await asyncio.gather(*(cache.synced.wait() for _, cache in watched))
            log.info("caches synced: %d releases, %d clusters, %d machines, %d cluster states",
                     len(self.releases), len(self.clusters), len(self.machines), len(self.states))
            for entry in self.clusters.entries():
                self.queue.add(object_key(entry.raw))
            tasks.append(asyncio.create_task(serve(self.queue, self.reconcile, self.settings.workers)))
            await first_of(*tasks, self._fenced.wait())
            for task in tasks:
                if task.done():
                    task.result()
                    raise RuntimeError(f"{task.get_name()} ended")
            raise LeaseLostError("a write found the lease lost")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reconcile(self, key: ClusterKey) -> None:
        """Plan one cluster from the caches and apply the plan."""
        namespace, name = key
        entry = self.clusters.entry(namespace, name)
        cluster = None if entry is None else entry.model()
        if cluster is None:  # deleted, or malformed (the cache said why)
            if entry is None:
                await self._apply(key, tuple(a for r in self._reboot_request(namespace, name)
                                             for a in unclaimed(r, self.clock())))
            return
        inputs = PlanInput(
            cluster=cluster, releases={r.metadata.name or "": r for r in self.releases.models()},
            machines=self.machines.models(key), cluster_states=self.states.models(key), now=self.clock(),
            settings=self.settings.planning, kaas_releases=self.kaas_releases.models(),
            item_norms=self.item_norms(),
            maintenance=self.maintenance.for_cluster(key),
            reboot_requests=self._reboot_request(namespace, name))
        started = time.perf_counter()
        plan = self.plan(inputs)
        took = time.perf_counter() - started
        self.plan_seconds += took
        self.plans += 1
        self.on_plan(took)
        duty = self.settings.plan_duty
        self.queue.hold(key, took * (1 - duty) / duty)
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)
        await self._apply(key, plan.actions)

    async def _apply(self, key: ClusterKey, actions: tuple[Action, ...]) -> None:
        """Apply a plan's writes; on a refused write, plan the cluster again when the refusal says."""
        namespace, name = key
        try:
            failure = await self.writer.apply(actions)
        except LeaseLostError:
            self._fenced.set()
            return
        if failure is None:
            self.queue.forget(key)
        elif failure.replan_now:
            self.queue.add(key)
        else:
            log.warning("cluster %s/%s: re-planning in %.1fs after a refused write", namespace, name,
                        self.queue.retry(key), extra={"cluster": name, "namespace": namespace})

    def _reboot_request(self, namespace: str, name: str) -> list[GracefulRebootRequest]:
        """The cluster's GracefulRebootRequest (named like it), when there is a well-formed one."""
        entry = self.reboot_requests.entry(namespace, name)
        request = None if entry is None else entry.model()
        return [] if request is None else [request]

    async def _watch(self, model: type[Any], cache: FollowedObjects[Any]) -> None:
        res = Resource(model.GROUP, VERSION, model.PLURAL, namespaced=model.NAMESPACED)
        namespace = self.settings.namespace if model.NAMESPACED else ""
        await cache.follow(self.kube, res, namespace, settings=self.settings.watch)

    def _release_changed(self, old: Object | None, new: Object | None) -> None:
        spec = raw_field(new, "spec") if new is not None else None
        name = "/".join(str(raw_field(new, *path) or "") for path in (("kind",), ("metadata", "name"))) \
            if new is not None else ""
        unused = sorted(f for f in IGNORED_RELEASE_FIELDS if isinstance(spec, dict) and f in spec)
        if unused and name not in self._named:
            self._named.add(name)
            log.info("%s: kept, not acted on: %s", name, ", ".join(unused), extra={"release": name})
        for entry in self.clusters.entries():
            self.queue.add(object_key(entry.raw))

    def _cluster_changed(self, old: Object | None, new: Object | None) -> None:
        raw = new if new is not None else old
        if raw is not None:
            self.queue.add(object_key(raw))
        self._notify("LCMCluster", new, cluster_notices(old, new))

    def _member_changed(self, old: Object | None, new: Object | None) -> None:
        for raw in (old, new):
            key = None if raw is None else cluster_of(raw)
            if isinstance(key, tuple):
                self.queue.add(key)

    def _machine_changed(self, old: Object | None, new: Object | None) -> None:
        self._member_changed(old, new)
        self._notify("LCMMachine", new, machine_notices(old, new))

    def _notify(self, kind: str, raw: Object | None, notices: list[Notice]) -> None:
        """The Events a change is worth (``regional.planning.notices``), on the changed object."""
        if raw is None or not notices:
            return
        namespace, name = object_key(raw)
        involved = Involved(kind, namespace, name, str(raw_field(raw, "metadata", "uid") or ""))
        for notice in notices:
            self.recorder.record(involved, notice.reason, notice.message, notice.type)
    def _maintenance_changed(self, old: Object | None, new: Object | None) -> None:
        for raw in (old, new):
            for key in () if raw is None else self.maintenance.concerned(raw):
                self.queue.add(key)

    def _invalid(self, raw: Object, exc: InvalidObjectError) -> None:
        namespace, name = object_key(raw)
        uid = str(raw_field(raw, "metadata", "uid") or "")
        self.recorder.record(Involved(exc.kind, namespace, name, uid), "InvalidObject",
                             f"not planned until fixed: {exc}", "Warning")
