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
    """Seconds one run of an item may take (from its ``startedAt``) before the rollout halts: the limit
    while the fleet has not run the item often enough to know better, and the ceiling after."""
    norm_factor: float = 3.0
    """Learned limit (``regional.planning.item_norms``): a run is stuck past this many times the fleet's
    p95 for the same item and version. Three: a slow mirror or a loaded node doubles a run, not more."""
    norm_floor: float = 300.0
    """The learned limit is never below this (seconds): a two-second item that takes a minute once is a
    hiccup, not a stuck rollout."""
    norm_samples: int = 20
    """Successful runs of an item and version the fleet must have seen before its p95 is trusted."""
    drain_time_limit: float = 1800.0
    """Seconds a drain may take (from the LCMClusterState's creation) before the rollout halts."""
    reboot_time_limit: float = 900.0
    """Seconds a machine may take from ``spec.rebootRequired`` to being back (its agent reporting the reboot
    completed, its items done) before the rollout halts: a server's firmware and boot take minutes, a
    machine that has not come back in a quarter of an hour needs an operator."""
