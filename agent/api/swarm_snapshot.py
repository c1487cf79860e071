"""One look at a swarm from a manager: its nodes, services and tasks, as values.

The swarm executor takes one before it drains, demotes or removes a node (``agent.adapters.swarm.snapshot``
reads it through the Docker API); the pure rules of ``agent.decisions.disruption`` decide from it whether
the operation would take a service below its disruption budget or the managers below their Raft quorum.
Only what those rules read is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_UNAVAILABLE_LABEL = "lcm.mirantis.com/max-unavailable"
"""Service label: at most this many of its replicas may be unavailable because of a drain."""
MIN_AVAILABLE_LABEL = "lcm.mirantis.com/min-available"
"""Service label: at least this many of its replicas must keep running while a node drains."""


@dataclass(frozen=True)
class SwarmNode:
    id: str
    address: str
    """``Status.Addr``: what the node advertised, which is its machine's InternalIP."""
    role: str
    """``manager`` or ``worker``."""
    availability: str
    """``active``, ``pause`` or ``drain``."""
    state: str
    """``ready``, ``down``, ``unknown``, ``disconnected``."""
    reachability: str = ""
    """A manager's ``ManagerStatus.Reachability`` (``reachable``, ``unreachable``, ``unknown``); "" for a
    worker."""


@dataclass(frozen=True)
class SwarmService:
    id: str
    name: str
    mode: str
    """``replicated``, ``global``, ``replicated-job`` or ``global-job``."""
    replicas: int = 0
    """Desired replicas of a replicated service (0 for the other modes)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    update_parallelism: int = 1
    """``UpdateConfig.Parallelism``: tasks replaced at once by an update (0: all of them)."""
    update_order: str = "stop-first"
    """``UpdateConfig.Order``: ``stop-first`` takes a task down before its replacement starts."""
    updating: bool = False
    """An update (or its rollback) is in progress: its tasks are being replaced right now."""


@dataclass(frozen=True)
class SwarmTask:
    service_id: str
    node_id: str
    running: bool
    """Its state is ``running`` and it is meant to keep running (desired state ``running``)."""


@dataclass(frozen=True)
class SwarmSnapshot:
    nodes: tuple[SwarmNode, ...] = ()
    services: tuple[SwarmService, ...] = ()
    tasks: tuple[SwarmTask, ...] = ()

    def nodes_at(self, address: str) -> tuple[SwarmNode, ...]:
        """The nodes that advertised ``address`` and are not down (a node that left and came back is listed
        twice, the old entry ``down``)."""
        return tuple(n for n in self.nodes if n.address == address and n.state != "down")
