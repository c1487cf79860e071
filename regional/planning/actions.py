"""What the planner asks the scheduler's runtime to write: values only, applied in order.

The planner never talks to the API; the runtime applies each action through kubernetes_asyncio and re-plans
from the objects as they come back (a lost or refused write is simply planned again). ``reason`` is for the
scheduler's log and Events, so an operator can see why a machine was given its items or held back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from agent.api.models import (
    ClusterRelease,
    GracefulRebootRequest,
    KaaSRelease,
    LCMCluster,
    LCMClusterState,
    LCMMachine,
)
from regional.planning.durations import Key, Norm
from regional.planning.maintenance_objects import MaintenanceObjects
from regional.planning.settings import PlanSettings

Resource = Literal[
    "lcmmachines", "lcmclusters", "lcmclusterstates", "nodemaintenancerequests", "clustermaintenancerequests",
    "nodeworkloadlocks", "clusterworkloadlocks", "gracefulrebootrequests",
]
"""Plural of the namespaced kinds the planner writes (lcm.mirantis.com/v1alpha1; the reboot requests are
kaas.mirantis.com's, ``write_rules.GROUPS``)."""


@dataclass(frozen=True)
class Patch:
    """A JSON merge patch (RFC 7396) of one object, of its ``status`` subresource when named."""

    resource: Resource
    namespace: str
    name: str
    patch: Mapping[str, Any]
    subresource: Literal["status"] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Create:
    """A new object; ``body`` is complete (apiVersion, kind, metadata.name and namespace, spec)."""

    resource: Resource
    namespace: str
    body: Mapping[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class Delete:
    resource: Resource
    namespace: str
    name: str
    reason: str = ""


Action = Patch | Create | Delete


@dataclass(frozen=True)
class PlanInput:
    """Everything the planner may look at for one cluster, as the runtime's caches hold it right now."""

    cluster: LCMCluster
    releases: Mapping[str, ClusterRelease]
    """Every ClusterRelease known, by name (the cluster's current one, the one it upgrades from or to)."""
    machines: Sequence[LCMMachine]
    """The LCMMachines of this cluster: same namespace, ``spec.clusterName`` naming it."""
    cluster_states: Sequence[LCMClusterState]
    """The LCMClusterStates of this cluster."""
    now: datetime
    settings: PlanSettings = field(default_factory=PlanSettings)
    """When the rollout counts as stuck."""
    kaas_releases: Sequence[KaaSRelease] = ()
    """Every KaaSRelease known: their ``supportedClusterReleases`` say which upgrades are allowed."""
    item_norms: Mapping[Key, Norm] = field(default_factory=dict)
    """The fleet's run durations by (item name, item version) (``regional.planning.durations``): a running
    item is stuck well past them (``regional.planning.item_norms``). Empty: the fixed limit only."""
    maintenance: MaintenanceObjects = field(default_factory=MaintenanceObjects)
    """The maintenance requests and workload locks that concern this cluster."""
    reboot_requests: Sequence[GracefulRebootRequest] = ()
    """The GracefulRebootRequests of the cluster's namespace (the cluster's own is the one named like it)."""


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    requeue_after: float | None = None
    """Seconds after which to plan again even without a watch event (a time limit that will expire)."""
