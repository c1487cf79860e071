"""``plan``: one cluster's objects in, the writes that move its rollout on out (docs/scheduler.md).

The order is fixed: refuse (a missing or modified release, a disallowed upgrade) or stop (paused) before
anything else, so neither can change a machine; then leaving machines first (they get the budget slots
first: taking a machine out is often how a stuck rollout is mended), control machines, workers. The status
closes the plan. Planning the same objects again gives the same actions, and none once converged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from agent.api.models import LCMClusterState
from regional.planning.actions import Action, Patch, Plan, PlanInput
from regional.planning.contract import PAUSED_ANNOTATION
from regional.planning.deletion import deletion_phases, plan_leaving
from regional.planning.failures import drain_settings, drain_time_left, item_time_left, trouble
from regional.planning.fleet import Fleet
from regional.planning.locks import own_lock_writes
from regional.planning.machines import MachineView, view
from regional.planning.maintenance import plan_maintenance
from regional.planning.maintenance_requests import MAINTENANCE_REQUESTED, own_request_writes
from regional.planning.ordering import first_control, manager_addresses, ready_managers
from regional.planning.reboot_requests import judge
from regional.planning.reboots import plan_reboots, reboot_limit, reboot_time_lefts, reboot_trouble
from regional.planning.releases import check_releases
from regional.planning.rendering import Swarm, Templates
from regional.planning.rollout import plan_controls, plan_workers
from regional.planning.settings import PlanSettings
from regional.planning.status import Summary, cluster_status_patch, stuck_flags
from regional.planning.swarm_orders import state_writes
from regional.planning.waiting import PAUSED, moving, waiting_patches
from regional.planning.waves import gate_conditions, rollout_gate


def plan(inp: PlanInput) -> Plan:
    cluster = inp.cluster
    name = cluster.metadata.name
    machines = (view(m) for m in inp.machines if m.spec.cluster_name == name)
    views = sorted((v for v in machines if v is not None), key=lambda v: v.order)
    states = [s for s in inp.cluster_states if s.spec.cluster_name == name]
    drains = {s.spec.arg: s for s in states if s.spec.type == "swarm-drain"}
    removals = {s.spec.arg: s for s in states if s.spec.type == "swarm-remove"}
    settings = drain_settings(cluster, inp.settings)
    limit = reboot_limit(cluster, inp.settings)
    troubles = [t for v in views
                if (t := trouble(v, drains.get(v.name), settings, inp.now, inp.item_norms)
                    or reboot_trouble(v, limit, inp.now))]
    check = check_releases(cluster, inp.releases, views, inp.kaas_releases)
    gate = rollout_gate(cluster, cluster.spec.release, views, drains, inp.now)
    summary = Summary(
        cluster.spec.release, cluster.status.release, views, troubles, check.digests, refusal=check.refusal,
        gate_conditions=gate_conditions(gate), blocked="failure budget spent, " if gate.budget_spent else "",
        budget_warnings=tuple(w for s in drains.values() for w in s.status.warnings),
    )
    paused = cluster.metadata.annotations.get(PAUSED_ANNOTATION) == "true"
    if check.target is None:
        status = cluster_status_patch(cluster, replace(summary, paused=paused), inp.now)
        return Plan(tuple(a for a in (status,) if a is not None))
    first = first_control(views)
    managers = manager_addresses(ready_managers(views, first))
    swarm = Swarm(name or "", first, managers, cluster.spec.dedicated_control_plane)
    templates = Templates(check.target, cluster)
    fleet = Fleet(cluster, inp.releases, templates, swarm, views, drains, removals, halted=bool(troubles),
                  gate=gate, maintenance=inp.maintenance,
                  drain_timeout=int(settings.drain_time_limit))
    plan_leaving(fleet)
    maintenance = plan_maintenance(fleet)
    requests = judge(cluster, inp.reboot_requests, views, inp.now)
    plan_reboots(fleet, requests.pending, requests.unrecorded, inp.now)
    plan_workers(fleet, controls_pending=plan_controls(fleet))
    if paused:
        # The rules ran only to learn who would move: each of them is held by the pause, nothing else changes.
        # A machine waiting for a maintenance request of the scheduler's would move too: none is made now.
        asking = [n for n, hold in fleet.holds.items() if hold.reason == MAINTENANCE_REQUESTED]
        holds = {**fleet.holds, **dict.fromkeys([*moving(fleet), *asking], PAUSED)}
        status = cluster_status_patch(cluster, replace(summary, paused=True), inp.now)
        return Plan((*waiting_patches(views, holds, inp.now), *(a for a in (status,) if a is not None)))
    # Deletion phases first: "completed" must land before the finalizer's removal lets the object go.
    failing = {t.machine for t in troubles}
    actions: list[Action] = [*deletion_phases(views, failing, {*drains, *removals}, fleet)]
    actions += [
        Patch("lcmmachines", v.machine.metadata.namespace or "", v.name, patch, reason=reason)
        for v in views
        if v.name in fleet.patches
        for patch, reason in (fleet.patches[v.name],)
    ]
    actions += maintenance
    actions += state_writes(cluster, states, fleet.wanted)
    actions += own_lock_writes(fleet)
    actions += own_request_writes(fleet)
    actions += stuck_flags(views, troubles)
    actions += requests.writes
    actions += waiting_patches(views, fleet.holds, inp.now)
    status = cluster_status_patch(
        cluster, replace(summary, converged=fleet.converged, rebooting=len(fleet.rebooting)), inp.now)
    if status is not None:
        actions.append(status)
    requeue = _requeue_after(views, drains, inp, settings)
    if any(hold.reason == "WindowClosed" for hold in fleet.holds.values()):
        opening = gate.next_opening_in()
        requeue = opening if requeue is None or opening is None else min(requeue, opening)
    return Plan(tuple(actions), requeue)


def _requeue_after(
    views: Sequence[MachineView], drains: Mapping[str, LCMClusterState], inp: PlanInput,
    settings: PlanSettings,
) -> float | None:
    """Seconds until the earliest running item or drain would overrun its limit: a verdict due without any
    watch event. None when nothing is being timed."""
    lefts = [
        left
        for v in views
        if not v.settled and (left := item_time_left(v, settings, inp.now, inp.item_norms)) is not None
    ]
    lefts += [
        left
        for v in views
        if (drain := drains.get(v.name)) is not None
        and (left := drain_time_left(v, drain, settings, inp.now)) is not None
    ]
    lefts += reboot_time_lefts(views, reboot_limit(inp.cluster, inp.settings), inp.now)
    future = [left for left in lefts if left > 0]
    return min(future) if future else None
