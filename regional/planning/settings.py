"""The planner's limits that are the runtime's to choose rather than each cluster's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanSettings:
    """When a rollout counts as stuck: it then halts and says why (``lcmOperationStuck``)."""

    max_item_attempts: int = 5
    """Failed runs of one item (same hash) before the rollout halts. The agent retries with backoff; five
    attempts span several minutes, enough to ride out a mirror or network hiccup, not a broken playbook."""
    item_time_limit: float = 3600.0
    """Seconds one run of an item may take (from its ``startedAt``) before the rollout halts."""
    drain_time_limit: float = 1800.0
    """Seconds a drain may take (from the LCMClusterState's creation) before the rollout halts."""
