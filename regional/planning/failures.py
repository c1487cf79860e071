"""When a rollout is stuck: an item that keeps failing or runs too long, an agent that cannot upgrade, a
drain that does not finish (its reason quotes why, as the executor wrote it: the services whose tasks did
not move, or the budget or quorum it waits for; a node left drained says so).

The agent retries a failed item by itself, with backoff; the planner only decides when to stop moving the
rollout on and call an operator. Both limits are measured from what the objects say (``attempt``,
``startedAt``, the drain's creation time) and ``now``, so the verdict is a pure function and clears by itself
when the machine recovers (an item that finally succeeds, an operator's fix). A reason names the limit, not
the attempt count: each retry would otherwise rewrite the cluster's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from agent.api.models import EXIT_CODE_RUNNING, LCMCluster, LCMClusterState
from agent.decisions.hashing import item_hash
from agent.decisions.reporting import clip
from agent.decisions.state import spec_error
from agent.kits.timestamps import parse_time
from regional.planning.durations import Key, Norm
from regional.planning.item_norms import overrun, time_limit
from regional.planning.machines import MachineView
from regional.planning.settings import PlanSettings

REASON_LIMIT = 300
"""Characters of a failure message quoted in a reason: the end of it, where the error is."""


@dataclass(frozen=True)
class Trouble:
    machine: str
    reason: str


def _item_trouble(
    v: MachineView, settings: PlanSettings, now: datetime, norms: Mapping[Key, Norm]
) -> str | None:
    if error := spec_error(v.spec):
        return error
    version = v.spec.agent_config.version
    for item in v.spec.state_items:
        entry = v.status.state_item_statuses.get(item.name)
        if entry is None or entry.exit_code == 0 or entry.hash != item_hash(item, version):
            continue
        running = entry.exit_code == EXIT_CODE_RUNNING
        # A retry in progress does not lift the halt: its earlier attempts all failed.
        failures = entry.attempt - 1 if running else entry.attempt
        if failures >= settings.max_item_attempts:
            limit = settings.max_item_attempts
            reason = f"item {item.name} failed {limit} times or more"
            return reason if running else f"{reason}: {clip(entry.message, REASON_LIMIT)}"
        started = parse_time(entry.started_at)
        allowed = time_limit(item, settings, norms)
        if running and started is not None and (now - started).total_seconds() > allowed.seconds:
            return overrun(item, allowed)
    return None


def _agent_trouble(v: MachineView, settings: PlanSettings) -> str | None:
    upgrade = v.status.lcm_agent_upgrade_status
    wanted = v.spec.agent_config.version
    if upgrade is None or not upgrade.error or not wanted or v.status.agent_version == wanted:
        return None
    if upgrade.attempt < settings.max_item_attempts:
        return None
    limit = settings.max_item_attempts
    return f"agent upgrade to {wanted} failed {limit} times or more: {clip(upgrade.error, REASON_LIMIT)}"


def _drain_trouble(
    v: MachineView, drain: LCMClusterState | None, settings: PlanSettings, now: datetime
) -> str | None:
    if drain is None:
        return None
    if drain.status.message and drain.status.attempt >= settings.max_item_attempts:
        message = clip(drain.status.message, REASON_LIMIT)
        return f"{drain.metadata.name} failed {settings.max_item_attempts} times or more: {message}"
    left = drain_time_left(v, drain, settings, now)
    if left is not None and left < 0:
        reason = f"drain of {v.name} not done after {settings.drain_time_limit:.0f}s"
        waiting = drain.status.waiting
        # A playbook's failure starts with the failed task's message, its log tail follows.
        first = drain.status.message.split("\n")[0]
        why = f"not drained, {waiting.message}" if waiting is not None else first
        return f"{reason}: {clip(why, REASON_LIMIT)}" if why else reason
    return None


def drain_settings(cluster: LCMCluster, settings: PlanSettings) -> PlanSettings:
    """The planner's limits with the cluster's own drain timeout (``drainTimeoutSeconds``), which wins."""
    seconds = cluster.spec.drain_timeout_seconds
    return settings if seconds is None else replace(settings, drain_time_limit=float(seconds))


def drain_time_left(
    v: MachineView, drain: LCMClusterState, settings: PlanSettings, now: datetime
) -> float | None:
    """Seconds before a requested drain that has not finished counts as stuck; None when none is waited on."""
    created = parse_time(drain.metadata.creation_timestamp)
    if created is None or not drain.spec.requested or v.status.swarm_cordon_drain == "cordondrained":
        return None
    return settings.drain_time_limit - (now - created).total_seconds()


def item_time_left(
    v: MachineView, settings: PlanSettings, now: datetime, norms: Mapping[Key, Norm]
) -> float | None:
    """Seconds before the machine's running item runs too long; None when none is running."""
    statuses = v.status.state_item_statuses
    lefts = [
        time_limit(item, settings, norms).seconds - (now - started).total_seconds()
        for item in v.spec.state_items
        if (entry := statuses.get(item.name)) is not None
        and entry.exit_code == EXIT_CODE_RUNNING
        and (started := parse_time(entry.started_at)) is not None
    ]
    return min(lefts, default=None)


def trouble(
    v: MachineView, drain: LCMClusterState | None, settings: PlanSettings, now: datetime,
    norms: Mapping[Key, Norm] | None = None,
) -> Trouble | None:
    """What is stuck on the machine, if anything; ``drain`` is its ``sd-`` LCMClusterState, ``norms`` the
    fleet's run durations (``PlanInput.item_norms``)."""
    if v.settled and drain is None:
        return None  # the common case, answered without looking at each item
    reason = _item_trouble(v, settings, now, norms or {}) or _agent_trouble(v, settings) or _drain_trouble(
        v, drain, settings, now
    )
    return Trouble(v.name, reason) if reason else None
