"""The scheduler process's root tasks: leader election around the controller, and companion tasks.

Only the leader plans and writes; each leadership term gets a fresh ``Controller``. Companions are other
long-running tasks that belong in the same process (the MQTT liveness subscriber is the first): they run
for the process's whole life, leader or not, and are told through ``CompanionContext.leading`` whether
this replica may write right now. Every root task is guarded as in the agent: one that fails or ends while
the process is not stopping stops the others and the process (a supervisor restarts it), instead of
leaving a scheduler that looks alive but no longer schedules.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from agent.adapters.kube import Kube
from agent.kits.tasks import guarded
from regional.planning.durations import Key, Norm
from regional.planning.planner import plan as planner
from regional.scheduler.controller import Controller, PlanFunction
from regional.scheduler.leadership import LeaderElector
from regional.scheduler.metrics import SchedulerCollector, plan_histogram
from regional.scheduler.settings import SchedulerSettings


@dataclass(frozen=True)
class CompanionContext:
    kube: Kube
    """The scheduler's own client (one connection pool per process)."""
    stopping: asyncio.Event
    """Set when the process stops; a companion returns soon after."""
    leading: Callable[[], bool]
    """Whether this replica holds the lease right now: a companion that writes must ask first."""
    registry: CollectorRegistry
    """The scheduler's metrics: a companion registers its collectors here (``registry.register``)."""


Companion = Callable[[CompanionContext], Coroutine[Any, Any, None]]
"""A task run beside the scheduler for the process's whole life, e.g. the MQTT liveness subscriber."""


class Scheduler:
    def __init__(
        self, kube: Kube, settings: SchedulerSettings, *, plan: PlanFunction = planner,
        companions: Mapping[str, Companion] | None = None,
        item_norms: Callable[[], Mapping[Key, Norm]] = dict, registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube, self.settings, self.plan = kube, settings, plan
        self.clock = clock
        """The planner's "now" for every term (a test moves it into a maintenance window)."""
        self.item_norms = item_norms
        """The fleet's item durations for the planner (``regional.scheduler.item_durations``)."""
        self.companions = dict(companions or {})
        """The hook for tasks that share this process; see ``Companion``."""
        self.elector = LeaderElector(kube, settings.lease)
        self.terms: list[Controller] = []
        """One controller per leadership term, newest last."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        """This process's metrics (``regional.scheduler.metrics``), served by ``--metrics-address``; more
        collectors may be registered on it, before or while the scheduler runs."""
        self.registry.register(SchedulerCollector(self.terms, self.elector.leading))
        self._plan_seconds = plan_histogram(self.registry)

    @property
    def writes(self) -> Counter[str]:
        """Writes of LCM objects over every term, by verb and resource (see ``Writer.counts``)."""
        total: Counter[str] = Counter()
        for term in self.terms:
            total.update(term.writer.counts)
        return total

    async def run(self, stopping: asyncio.Event) -> None:
        """Until ``stopping`` is set (returns) or a root task fails (raises, after stopping the others)."""
        context = CompanionContext(self.kube, stopping, self.elector.leading, self.registry)
        roots = {"leader election": self.elector.run(stopping, self._term),
                 **{name: companion(context) for name, companion in self.companions.items()}}
        failure = await guarded(roots, stopping)
        if failure is not None:
            raise failure

    async def _term(self) -> None:
        controller = Controller(self.kube, self.settings, self.plan, fence=self.elector.leading,
                                clock=self.clock, item_norms=self.item_norms,
                                on_plan=self._plan_seconds.observe)
        self.terms.append(controller)
        await controller.run()
