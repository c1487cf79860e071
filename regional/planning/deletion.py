"""A machine leaving the cluster: drain, leave, remove, then let the object go.

A machine is leaving when it is marked for deletion (``spec.prepareDeletion`` or a deletion timestamp)
while the planner's finalizer ``lcm.mirantis.com/swarm-member`` holds it (it got it with its swarm item).
Its items are frozen as they are (no upgrade reaches a leaving machine), and, one step per plan:

1. drain: ``sd-<machine>`` true, until its ``status.swarmCordonDrain`` is ``cordondrained``;
2. leave: the decommission items of its release are added to its items as ``reconfigure`` items and run;
3. remove: ``sr-<machine>`` true, until the state's ``status.value`` is ``"true"``;
4. the finalizer goes, and with it the two states: the object may be deleted.

Each machine's ``status.prepareDeletionPhase`` says where it is (``deletion_phase``).

Drain and remove need a manager to carry them out (the first control machine other than the leaving one);
without one, or for a node that never joined, they are skipped. A control machine does not start leaving
while the other reachable managers would lose their quorum without it (``regional.planning.quorum``). A
leaving control machine counts as a changing one (one at a time), a worker's drain takes a slot of
``maxWorkerUpgradeCount``. Deletion goes on while the rollout is halted: taking a broken machine out is how
an operator mends a cluster.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from agent.api.models import PrepareDeletionPhase
from agent.decisions.state import counts_done
from regional.planning.actions import Patch
from regional.planning.contract import FINALIZER
from regional.planning.fleet import Fleet
from regional.planning.machines import MachineView
from regional.planning.quorum import REASON, quorum_refusal
from regional.planning.rendering import Target, without_finalizer
from regional.planning.waiting import hold_slot


def take_slot(fleet: Fleet, v: MachineView, drains: bool) -> bool:
    """Take the machine's budget slot, if free: the control plane's one, or a worker drain."""
    if v.control:
        if fleet.control_busy:
            return False
        fleet.control_busy = True
    elif drains:
        if fleet.cordoned >= fleet.cluster.spec.max_worker_upgrade_count:
            return False
        fleet.cordoned += 1
    return True


def plan_leaving(fleet: Fleet) -> None:
    for v in fleet.views:
        if v.leaving:
            _leave(fleet, v)


def _leave(fleet: Fleet, v: MachineView) -> None:
    swarm_ops = fleet.executor is not None and v.joined
    decommission = fleet.templates_of(v.spec.release).decommission(v.type)
    names = {item.name for item in v.spec.state_items}
    leaving_items = bool(decommission) and all(item.name in names for item in decommission)
    started = v.name in fleet.drains or v.name in fleet.removals or leaving_items
    if not started and swarm_ops and (refusal := quorum_refusal(fleet.views, v, removal=True)):
        fleet.hold(v, REASON, refusal)
        return
    if not started and not take_slot(fleet, v, drains=swarm_ops):
        hold_slot(fleet, v, "control" if v.control else "upgrade")  # leaving goes on while halted
        return
    if swarm_ops and (v.name in fleet.drains or not started):
        fleet.want("swarm-drain", v, True, "drain before leaving")
    if not leaving_items and v.name not in fleet.removals:
        if swarm_ops and v.status.swarm_cordon_drain != "cordondrained":
            if (drain := fleet.drains.get(v.name)) is not None:
                fleet.hold_drain(v, drain)
            return
        if decommission:
            items = (*v.spec.state_items, *(i for i in decommission if i.name not in names))
            if patch := fleet.diff(v, replace(Target.of(v.machine), items=items)):
                fleet.write(v, patch, "leave: decommission items")
            return
    if not all(counts_done(v.spec, v.status, item) for item in decommission):
        return
    if swarm_ops:
        fleet.want("swarm-remove", v, True, "remove the node that left")
        removal = fleet.removals.get(v.name)
        if removal is None or removal.status.value != "true":
            return
    if patch := fleet.diff(v, without_finalizer(v.machine)):
        fleet.write(v, patch, "left the swarm: the machine may go")
    fleet.drop("swarm-drain", v)
    fleet.drop("swarm-remove", v)


def deletion_phase(
    v: MachineView, failed: bool, operations: Collection[str], left: Collection[str],
) -> PrepareDeletionPhase | None:
    """``status.prepareDeletionPhase`` as Mirantis names it: ``started`` while the machine leaves,
    ``failed`` while a trouble holds it (a decommission item keeps failing, a drain does not end),
    ``completed`` once the planner's finalizer is gone (its node is out of the swarm), ``aborting`` when the
    deletion was called off (``prepareDeletion`` back to false) while drain or removal states of it remain,
    and cleared once they are gone. ``operations`` names the machines with such states, ``left`` those whose
    finalizer this very plan removes (``completed`` goes out before the object may vanish)."""
    current = v.status.prepare_deletion_phase
    if v.deleting:
        if FINALIZER not in v.machine.metadata.finalizers or v.name in left:
            return "completed"
        return "failed" if failed else "started"
    if current in ("started", "failed", "aborting"):
        return "aborting" if v.name in operations else None
    return current


def deletion_phases(
    views: Sequence[MachineView], failing: Collection[str], operations: Collection[str], fleet: Fleet,
) -> list[Patch]:
    """The status writes of ``prepareDeletionPhase`` where it changes (``failing``: machines in trouble)."""
    left = {name for name, (patch, _) in fleet.patches.items()
            if FINALIZER not in patch.get("metadata", {}).get("finalizers", [FINALIZER])}
    writes = []
    for v in views:
        phase = deletion_phase(v, v.name in failing, operations, left)
        if phase != v.status.prepare_deletion_phase:
            writes.append(Patch("lcmmachines", v.machine.metadata.namespace or "", v.name,
                                {"status": {"prepareDeletionPhase": phase}}, subresource="status",
                                reason=f"deletion {phase or 'called off'}"))
    return writes
