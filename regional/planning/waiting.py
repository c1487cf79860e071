"""Why a machine waits: the planner's own reasons, and ``status.waiting`` on each LCMMachine.

Every rule that holds a machine back records one machine-readable reason (``Fleet.hold``): the rollout's
gates (``Canary``, ``FailureBudgetSpent``, ``WindowClosed``, waves.py), the other rules' (disruption
budgets, quorum, locks) and the ones here: ``Paused`` (the annotation), ``Halted`` (another machine is
stuck), ``WaitingForControlPlane`` (workers wait for the first manager and every control machine),
``ControlPlaneBusy`` (one control machine changes at a time), ``PrepareSlotTaken``, ``DeploySlotTaken``,
``UpgradeSlotTaken`` (the cluster's ``maxWorker*Count`` budgets are in use).

The planner writes each machine's hold to ``status.waiting {reason, message, since}`` (a status patch of its
own field: the agent writes ``status.conditions`` with merge patches, which would replace a list), keeps
``since`` while the reason stays, and clears it when the machine moves. Messages name limits and what is
awaited, not counts that change with every plan, so a waiting fleet costs one write per machine per reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from agent.kits.timestamps import rfc3339
from regional.planning.actions import Patch
from regional.planning.contract import PAUSED_ANNOTATION
from regional.planning.fleet import Fleet, Hold
from regional.planning.machines import MachineView

Budget = Literal["prepare", "deploy", "upgrade", "control"]
"""The budget a machine waits for a place in: one of the `maxWorker*Count`s, or the one control machine
changing at a time."""

PAUSED = Hold("Paused", f'{PAUSED_ANNOTATION} is "true" on the cluster: nothing is changed')


def hold_back(fleet: Fleet, v: MachineView, slot: Budget, *, control_plane_pending: bool = False) -> None:
    """Record why a machine with work to do did not get it: the halt, then the control plane, then the
    budget whose slots are all taken (the first of these that must change)."""
    if fleet.halted:
        fleet.hold(v, "Halted", "the rollout is halted: a machine is stuck (the cluster's OperationStuck "
                                "condition names it)")
    elif control_plane_pending:
        fleet.hold(v, "WaitingForControlPlane", "workers start once the first manager is Ready and every "
                                                "control machine is done")
    else:
        hold_slot(fleet, v, slot)


def hold_slot(fleet: Fleet, v: MachineView, slot: Budget) -> None:
    """Record that the budget a machine needs a place in is full."""
    spec = fleet.cluster.spec
    if slot == "control":
        fleet.hold(v, "ControlPlaneBusy", "another control machine is changing: one at a time")
    elif slot == "prepare":
        fleet.hold(v, "PrepareSlotTaken", f"maxWorkerPrepareCount ({spec.max_worker_prepare_count}) workers "
                                          "are preparing")
    elif slot == "deploy":
        fleet.hold(v, "DeploySlotTaken", f"maxWorkerDeployCount ({spec.max_worker_deploy_count}) workers "
                                         "are deploying")
    else:
        fleet.hold(v, "UpgradeSlotTaken", f"maxWorkerUpgradeCount ({spec.max_worker_upgrade_count}) "
                                          "workers are drained")


def moving(fleet: Fleet) -> set[str]:
    """Machines this plan changes: a spec patch, or a drain or removal created, flipped or dropped. While
    the cluster is paused these are the ones held by the pause."""
    names = set(fleet.patches)
    existing = {**fleet.drains, **fleet.removals}
    for want in fleet.wanted.values():
        state = (fleet.drains if want.operation == "swarm-drain" else fleet.removals).get(want.machine)
        if state is None or state.spec.requested != want.value:
            names.add(want.machine)
    wanted = {want.name for want in fleet.wanted.values()}
    names |= {machine for machine, state in existing.items() if state.metadata.name not in wanted}
    return names


def waiting_patches(views: Sequence[MachineView], holds: Mapping[str, Hold], now: datetime) -> list[Patch]:
    """``status.waiting`` of each machine where it changes: set to its hold, cleared without one."""
    patches = []
    for v in views:
        hold, have = holds.get(v.name), v.status.waiting
        if hold is None and have is None:
            continue
        if hold is not None and have is not None and Hold(have.reason, have.message) == hold:
            continue
        if hold is None:
            patch, reason = None, "no longer waiting"
        else:
            kept = have is not None and have.reason == hold.reason and have.since
            since = have.since if kept and have is not None else rfc3339(now)
            patch, reason = {"reason": hold.reason, "message": hold.message, "since": since}, hold.reason
        patches.append(Patch("lcmmachines", v.machine.metadata.namespace or "", v.name,
                             {"status": {"waiting": patch}}, subresource="status", reason=reason))
    return patches
