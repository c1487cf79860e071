"""The scheduler's settings, grouped, with their units and why each default is what it is."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.adapters.watching import WatchSettings
from regional.planning.settings import PlanSettings
from regional.scheduler.leadership import LeaseSettings


@dataclass(frozen=True)
class Throttle:
    """A token bucket: ``qps`` per second (0: unlimited), ``burst`` at once."""

    qps: float
    burst: int


@dataclass(frozen=True)
class SchedulerSettings:
    namespace: str = ""
    """The one namespace to watch and act in; "" for all namespaces."""
    workers: int = 4
    """Clusters planned at once. Plans are CPU-bound and the writes they wait on share one rate limit, so
    more workers mostly help when many small clusters change at once."""
    writes: Throttle = Throttle(qps=50.0, burst=100)
    """Spec, status, create and delete writes of LCM objects. 50/s lets a thousand-machine rollout move
    each machine on within seconds while leaving most of an API server's write capacity to the agents,
    whose status writes are most of a rollout's traffic."""
    plan_duty: float = 0.5
    """The most of a core planning one cluster may take: after a plan of d seconds the cluster is not planned
    again for d * (1 - plan_duty) / plan_duty (changes meanwhile are folded into that next plan). A plan of
    1,000 machines costs about 0.2 s of CPU; planned on every status write it would starve the agents and
    the API server sharing the machine."""
    writes_in_flight: int = 16
    """Writes of one plan sent at once (each object's still in order). A thousand machines' writes one round
    trip at a time would hold a rollout to the API server's latency instead of ``writes.qps``."""
    events: Throttle = Throttle(qps=5.0, burst=25)
    """Kubernetes Events; separate from ``writes`` so that a chatty rollout never delays a real write."""
    planning: PlanSettings = field(default_factory=PlanSettings)
    """When the planner calls a rollout stuck (item attempts, time limits)."""
    watch: WatchSettings = field(default_factory=WatchSettings)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
